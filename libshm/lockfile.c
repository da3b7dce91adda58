/*
 * lockfile.c - see lockfile.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "lockfile.h"

static pthread_mutex_t kind_lock[LOCK_KINDS] = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER
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

/* Is process @pid stopped (SIGSTOP, or a debugger)?  The state letter in
 * /proc/<pid>/stat follows the command name in parentheses. */
static bool process_stopped(pid_t pid)
{
	char path[64], text[512];
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "re")))
		return false;
	n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = '\0';
	char *p = strrchr(text, ')');
	return p && p[1] == ' ' && (p[2] == 'T' || p[2] == 't');
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Take the record lock (see lockfile.h, WAITING).  0, or an errno. */
static int wait_lock(int fd, pid_t *stopped)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	uint64_t stopped_since = 0;
	long nap_us = 250;

	*stopped = 0;
	for (;;) {
		if (fcntl(fd, F_SETLK, &fl) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EACCES)
			return errno;
		struct flock who = fl;
		if (fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK &&
		    who.l_pid > 0 && process_stopped(who.l_pid)) {
			if (!stopped_since)
				stopped_since = mono_ms();
			else if (mono_ms() - stopped_since > LOCK_STOPPED_MS) {
				*stopped = who.l_pid;
				return EAGAIN;
			}
		} else {
			stopped_since = 0;
		}
		nanosleep(&(struct timespec){ 0, nap_us * 1000 }, NULL);
		if (nap_us < 2000)
			nap_us *= 2;
	}
}

/* A try never nests: a thread that already holds a lock of this kind (a
 * snapshot writing its checkpoint, whose own purge is a write) must not
 * start a second one (the automatic checkpoint) inside it.  Record locks
 * could not tell: the process already owns the file's lock. */
static bool mutex_try_enter(enum lock_kind kind)
{
	if (held[kind])
		return false;
	if (pthread_mutex_trylock(&kind_lock[kind]))
		return false;
	held[kind] = 1;
	return true;
}

/* Take the lock: waiting (polled, see WAITING) or, without @wait, only if
 * it is free now (1 when it is not). */
static int lock_it(lockfile *l, enum lock_kind kind, const char *dir, const char *name,
                   unsigned mode, const void *tag, bool wait)
{
	char path[4096];
	pid_t stopped;
	int rc, e;

	l->fd = -1;
	l->kind = kind;
	if (mb_pathf(path, sizeof path, "%s/%s", dir, name))
		return mb_fail(tag, MB_EINVAL, "%s: path too long", dir);
	pthread_once(&once, init_once);
	if (!wait && !mutex_try_enter(kind))
		return 1;
	if (wait)
		mutex_enter(kind);
	for (int tries = 0;; tries++) {
		l->fd = mb_open_fd(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode);
		if (l->fd < 0) {
			rc = mb_fail(tag, mb_errno_code(errno), "%s: %s", path, strerror(errno));
			mutex_leave(kind);
			return rc;
		}
		fchmod(l->fd, mode);  /* group-shared: the umask must not narrow it */
		if (!wait) {
			struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
			while ((e = fcntl(l->fd, F_SETLK, &fl) ? errno : 0) == EINTR)
				;
			if (e == EAGAIN || e == EACCES) {
				lockfile_release(l);
				return 1;
			}
			stopped = 0;
		} else {
			e = wait_lock(l->fd, &stopped);
		}
		if (e) {
			if (stopped)
				rc = mb_fail(tag, MB_EIO, "%s: held by process %d, which has been stopped "
				             "(SIGSTOP or a debugger) for %d s: continue it (kill -CONT %d) "
				             "or end it", path, (int)stopped, LOCK_STOPPED_MS / 1000,
				             (int)stopped);
			else
				rc = mb_fail(tag, mb_errno_code(e), "%s: lock: %s", path, strerror(e));
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

int lockfile_acquire(lockfile *l, enum lock_kind kind, const char *dir, const char *name,
                     unsigned mode, const void *tag)
{
	return lock_it(l, kind, dir, name, mode, tag, true);
}

int lockfile_try(lockfile *l, enum lock_kind kind, const char *dir, const char *name,
                 unsigned mode, const void *tag)
{
	return lock_it(l, kind, dir, name, mode, tag, false);
}

void lockfile_release(lockfile *l)
{
	if (l->fd < 0)
		return;
	close(l->fd);  /* drops the record lock */
	l->fd = -1;
	mutex_leave(l->kind);
}
