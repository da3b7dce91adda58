/*
 * lockfile.c - see lockfile.h.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "lockfile.h"

static pthread_mutex_t kind_lock[LOCK_KINDS] = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER
};
static pthread_once_t once = PTHREAD_ONCE_INIT;
/* Locks of each kind this thread holds: a restore holds the target's open
 * lock while it opens the bank it builds aside (another file), so only the
 * outermost acquisition takes the mutex. */
static __thread int held[LOCK_KINDS];

static void child_reset(void)
{
	for (int i = 0; i < LOCK_KINDS; i++) {
		pthread_mutex_init(&kind_lock[i], NULL);
		held[i] = 0;
	}
}

static void mutex_enter(enum lock_kind kind)
{
	if (!held[kind]++)
		pthread_mutex_lock(&kind_lock[kind]);
}

static void mutex_leave(enum lock_kind kind)
{
	if (!--held[kind])
		pthread_mutex_unlock(&kind_lock[kind]);
}

static void init_once(void)
{
	pthread_atfork(NULL, NULL, child_reset);
}

/* Is the file @fd locks still the one at @path?  A restore replaces the
 * bank directory while openers wait on the old directory's lock. */
static bool still_there(int fd, const char *path)
{
	struct stat a, b;

	return !fstat(fd, &a) && !lstat(path, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int lockfile_acquire(lockfile *l, enum lock_kind kind, const char *dir, const char *name,
                     unsigned mode, const void *tag)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	char path[4096];
	int rc;

	l->fd = -1;
	l->kind = kind;
	if (mb_pathf(path, sizeof path, "%s/%s", dir, name))
		return mb_fail(tag, MB_EINVAL, "%s: path too long", dir);
	pthread_once(&once, init_once);
	mutex_enter(kind);
	for (int tries = 0;; tries++) {
		l->fd = mb_open_fd(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode);
		if (l->fd < 0) {
			rc = mb_fail(tag, mb_errno_code(errno), "%s: %s", path, strerror(errno));
			mutex_leave(kind);
			return rc;
		}
		fchmod(l->fd, mode);  /* group-shared: the umask must not narrow it */
		while (fcntl(l->fd, F_SETLKW, &fl)) {
			if (errno == EINTR)
				continue;
			rc = mb_fail(tag, mb_errno_code(errno), "%s: lock: %s", path, strerror(errno));
			lockfile_release(l);
			return rc;
		}
		if (still_there(l->fd, path))
			return 0;
		close(l->fd);  /* replaced while we waited: lock the new one */
		l->fd = -1;
		if (tries == 100) {
			mutex_leave(kind);
			return mb_fail(tag, MB_EIO, "%s: replaced 100 times while waiting for its lock",
			               path);
		}
	}
}

void lockfile_release(lockfile *l)
{
	if (l->fd < 0)
		return;
	close(l->fd);  /* drops the record lock */
	l->fd = -1;
	mutex_leave(l->kind);
}
