/*
 * fd.c - the library never holds one of its files on descriptor 0, 1 or 2.
 *
 * A program run from cron, a daemon, or with `<&- >&- 2>&-` starts with its
 * standard descriptors closed.  open() returns the lowest free number, so a
 * bank file would land on 1 or 2, and the program's printf()s and error
 * messages would then be written into it: one message at offset 0 of
 * data.mdb destroyed LMDB's meta page.  SQLite guards against the same
 * thing (robust_open); so do we, in two ways:
 *   - every descriptor the library opens passes mbj_fd_above_stdio(), which
 *     moves one that landed on 0..2 above them and leaves /dev/null in the
 *     slot (so the next open does not land there either);
 *   - before LMDB opens data.mdb and lock.mdb itself (mdb_env_open, which
 *     we cannot wrap), mbj_stdio_fill() puts /dev/null on each closed
 *     standard descriptor.  The caller holds the library's open lock, so
 *     two threads do not race to fill the same slot.
 * Putting /dev/null on a closed standard descriptor changes nothing a
 * program could rely on: writes to it succeed instead of failing with EBADF.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "journal.h"

/* /dev/null onto @slot, which is free or holds a descriptor to replace.
 * A /dev/null that lands on another free standard slot stays there.
 * -1 when /dev/null cannot be opened (a chroot without /dev). */
static int null_onto(int slot)
{
	int nul = open("/dev/null", O_RDWR);

	if (nul < 0)
		return -1;
	if (nul == slot)
		return 0;
	if (dup2(nul, slot) < 0) {
		close(nul);
		return -1;
	}
	if (nul > 2)
		close(nul);
	return 0;
}

int mbj_fd_above_stdio(int fd)
{
	int hi, err;

	if (fd < 0 || fd > 2)
		return fd;
	hi = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	err = errno;
	/* dup2() replaces the low slot in one step: no instant where another
	 * thread's open could take it.  Without /dev/null, close it. */
	if (null_onto(fd))
		close(fd);
	errno = err;
	return hi;
}

void mbj_stdio_fill(void)
{
	for (int slot = 0; slot <= 2; slot++)
		if (fcntl(slot, F_GETFD) < 0 && errno == EBADF)
			null_onto(slot);
}
