/*
 * lockfile.c - see lockfile.h.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "lockfile.h"

static pthread_mutex_t kind_lock[LOCK_KINDS] = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER
};
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void child_reset(void)
{
	for (int i = 0; i < LOCK_KINDS; i++)
		pthread_mutex_init(&kind_lock[i], NULL);
}

static void init_once(void)
{
	pthread_atfork(NULL, NULL, child_reset);
}

static int lock_it(lockfile *l, enum lock_kind kind, const char *dir, const char *name,
                   unsigned mode, const void *tag, bool wait)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	char path[4096];
	int rc;

	l->fd = -1;
	l->kind = kind;
	if (mb_pathf(path, sizeof path, "%s/%s", dir, name))
		return mb_fail(tag, MB_EINVAL, "%s: path too long", dir);
	pthread_once(&once, init_once);
	if (!wait && pthread_mutex_trylock(&kind_lock[kind]))
		return 1;
	if (wait)
		pthread_mutex_lock(&kind_lock[kind]);
	l->fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode);
	if (l->fd < 0) {
		rc = mb_fail(tag, mb_errno_code(errno), "%s: %s", path, strerror(errno));
		pthread_mutex_unlock(&kind_lock[kind]);
		return rc;
	}
	fchmod(l->fd, mode);  /* group-shared: the umask must not narrow it */
	while (fcntl(l->fd, wait ? F_SETLKW : F_SETLK, &fl)) {
		if (errno == EINTR)
			continue;
		rc = !wait && (errno == EAGAIN || errno == EACCES) ? 1 :
		     mb_fail(tag, mb_errno_code(errno), "%s: lock: %s", path, strerror(errno));
		lockfile_release(l);
		return rc;
	}
	return 0;
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
	pthread_mutex_unlock(&kind_lock[l->kind]);
}
