/*
 * file.c - atomic file replacement (see file.h).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bank.h"
#include "file.h"

int mb_open_fd(const char *path, int flags, unsigned mode)
{
	return mbj_fd_above_stdio(open(path, flags, (mode_t)mode));
}

DIR *mb_opendir(const char *path)
{
	int fd = mb_open_fd(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (fd >= 0 && !d) {
		int err = errno;
		close(fd);
		errno = err;
	}
	return d;
}

int fsync_dir(const char *dir)
{
	int fd = mb_open_fd(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	int rc = 0;

	if (fd < 0)
		return -1;
	if (fsync(fd))
		rc = -1;
	close(fd);
	return rc;
}

int afile_open(afile *f, const char *dir, const char *name, unsigned mode, const void *tag)
{
	struct timespec ts;

	memset(f, 0, offsetof(afile, buf));
	f->fd = -1;
	f->tag = tag;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (asprintf(&f->tmp, "%s/.%s.tmp.%ld.%ld", dir, name, (long)getpid(), ts.tv_nsec) < 0) {
		f->tmp = NULL;
		return mb_fail(tag, MB_ENOMEM, "out of memory");
	}
	f->dir = strdup(dir);
	f->name = strdup(name);
	if (!f->dir || !f->name) {
		afile_abort(f);
		return mb_fail(tag, MB_ENOMEM, "out of memory");
	}
	f->fd = mb_open_fd(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (f->fd < 0) {
		int err = errno;
		afile_abort(f);
		return mb_fail(tag, mb_errno_code(err), "%s/%s: cannot create temp file: %s",
		               dir, name, strerror(err));
	}
	fchmod(f->fd, mode);  /* the umask must not narrow a group-shared mode */
	return 0;
}

static int flush(afile *f)
{
	size_t off = 0;

	while (off < f->pending) {
		ssize_t n = write(f->fd, f->buf + off, f->pending - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? errno : ENOSPC;
			return mb_fail(f->tag, mb_errno_code(err), "%s/%s: write: %s",
			               f->dir, f->name, strerror(err));
		}
		off += (size_t)n;
	}
	f->pending = 0;
	return 0;
}

int afile_write(afile *f, const void *p, size_t n)
{
	const char *s = p;
	int rc;

	while (n) {
		size_t k = sizeof f->buf - f->pending;
		if (k > n)
			k = n;
		memcpy(f->buf + f->pending, s, k);
		f->pending += k;
		s += k;
		n -= k;
		if (f->pending == sizeof f->buf && (rc = flush(f)))
			return rc;
	}
	return 0;
}

int afile_commit(afile *f)
{
	char *target = NULL;
	int rc;

	if ((rc = flush(f)))
		goto fail;
	if (fsync(f->fd)) {
		rc = mb_fail(f->tag, mb_errno_code(errno), "%s/%s: fsync: %s", f->dir, f->name,
		             strerror(errno));
		goto fail;
	}
	close(f->fd);
	f->fd = -1;
	if (asprintf(&target, "%s/%s", f->dir, f->name) < 0) {
		target = NULL;
		rc = mb_fail(f->tag, MB_ENOMEM, "out of memory");
		goto fail;
	}
	if (rename(f->tmp, target)) {
		rc = mb_fail(f->tag, mb_errno_code(errno), "%s: rename: %s", target, strerror(errno));
		goto fail;
	}
	free(f->tmp);
	f->tmp = NULL;
	if (fsync_dir(f->dir))
		rc = mb_fail(f->tag, mb_errno_code(errno), "%s: fsync of the directory: %s",
		             f->dir, strerror(errno));
fail:
	free(target);
	afile_abort(f);
	return rc;
}

void afile_abort(afile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->tmp)
		unlink(f->tmp);
	free(f->tmp);
	free(f->dir);
	free(f->name);
	f->tmp = f->dir = f->name = NULL;
}

int mb_write_file_atomic(const char *dir, const char *name, const void *data,
                         size_t len, unsigned mode, const void *tag)
{
	afile *f = malloc(sizeof *f);
	int rc;

	if (!f)
		return mb_fail(tag, MB_ENOMEM, "out of memory");
	if (!(rc = afile_open(f, dir, name, mode, tag))) {
		if ((rc = afile_write(f, data, len)))
			afile_abort(f);
		else
			rc = afile_commit(f);
	}
	free(f);
	return rc;
}

int mb_rm_tree(const char *path)
{
	struct dirent *e;
	char sub[4096];
	struct stat st;
	DIR *d = mb_opendir(path);

	if (!d)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (mb_pathf(sub, sizeof sub, "%s/%s", path, e->d_name))
			continue;
		if (!lstat(sub, &st) && S_ISDIR(st.st_mode))
			mb_rm_tree(sub);
		else
			unlink(sub);
	}
	closedir(d);
	return rmdir(path);
}
