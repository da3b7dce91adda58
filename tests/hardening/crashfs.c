/*
 * crashfs.c - an LD_PRELOAD shim that records what a process writes to the
 * files under one directory, for power-loss simulation in the style of
 * SQLite's crash VFS (see test_crash.c, which replays the log).
 *
 * Environment:
 *   CRASHFS_PREFIX  absolute directory whose files are recorded (the
 *                   bank's journal directory)
 *   CRASHFS_LOG     the log file (appended; must be outside the prefix)
 *   CRASHFS_MARK    optional directory: a rename() into it is logged as a
 *                   CFS_MARK entry named by the new name's last component
 *                   (the bank's checkpoint/: a checkpoint committed)
 *
 * LOG FORMAT: entries back to back, each a header of four host-endian
 * fields { u32 op, u32 namelen, u64 off, u64 len }, then namelen bytes of
 * file name (relative to the prefix), then len bytes of data for writes.
 *   CFS_WRITE     data written at off
 *   CFS_SYNC      fsync/fdatasync of the file (len, off unused)
 *   CFS_TRUNCATE  the file cut or extended to off bytes
 *   CFS_UNLINK    the file removed
 *   CFS_CREATE    the file created (open with O_CREAT of a missing file)
 *   CFS_MARK      a rename into CRASHFS_MARK completed
 * Entries are written with one write() each under a mutex, so the log's
 * order is the order the calls returned in, across threads, and its size
 * at any moment covers every call that returned before.
 *
 * Only the calls libmembank and the journal use are wrapped: open64,
 * openat64 (and the plain names), pwrite64/pwrite, write, fsync,
 * fdatasync, ftruncate64/ftruncate, unlink, unlinkat, close.  Not for
 * sanitizer builds: ASan wants to be first in the library list.
 */
/* Both the plain and the *64 names are defined here: without this the
 * headers would rename one into the other (off_t is 64-bit on LP64). */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

enum { CFS_WRITE = 1, CFS_SYNC, CFS_TRUNCATE, CFS_UNLINK, CFS_CREATE, CFS_MARK };
#define MAX_FD 4096

struct cfs_hdr {
	uint32_t op, namelen;
	uint64_t off, len;
};

/* A preloaded shim is process-wide by nature: its state is too. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *names[MAX_FD];
static int log_fd = -2;
static char prefix[4096], mark[4096];
static size_t prefix_len, mark_len;

static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_fsync)(int), (*real_fdatasync)(int), (*real_close)(int);
static int (*real_ftruncate)(int, off_t);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_rename)(const char *, const char *);

static void init(void)
{
	const char *p = getenv("CRASHFS_PREFIX"), *l = getenv("CRASHFS_LOG");

	real_pwrite = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
	real_write = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	real_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open64");
	real_openat = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat64");
	real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
	real_ftruncate = (int (*)(int, off_t))dlsym(RTLD_NEXT, "ftruncate64");
	real_unlink = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
	real_unlinkat = (int (*)(int, const char *, int))dlsym(RTLD_NEXT, "unlinkat");
	real_rename = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
	if (getenv("CRASHFS_MARK") && *getenv("CRASHFS_MARK") == '/') {
		snprintf(mark, sizeof mark, "%s/", getenv("CRASHFS_MARK"));
		mark_len = strlen(mark);
	}
	if (p && l && *p == '/') {
		snprintf(prefix, sizeof prefix, "%s/", p);
		prefix_len = strlen(prefix);
		log_fd = real_open(l, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	} else {
		log_fd = -1;
	}
}

static void ensure_init(void)
{
	pthread_mutex_lock(&lock);
	if (log_fd == -2)
		init();
	pthread_mutex_unlock(&lock);
}

/* Append one entry; the caller holds the lock. */
static void emit(uint32_t op, const char *name, uint64_t off, const void *data, uint64_t len)
{
	struct cfs_hdr h = { op, (uint32_t)strlen(name), off, len };
	size_t n = sizeof h + h.namelen + (op == CFS_WRITE ? len : 0);
	char *buf = malloc(n);

	if (!buf)
		abort();
	memcpy(buf, &h, sizeof h);
	memcpy(buf + sizeof h, name, h.namelen);
	if (op == CFS_WRITE)
		memcpy(buf + sizeof h + h.namelen, data, len);
	if (real_write(log_fd, buf, n) != (ssize_t)n)
		abort();  /* a log with holes would make false crash images */
	free(buf);
}

/* The file name relative to the prefix when @path is under it, or NULL. */
static const char *relative(const char *path)
{
	return log_fd >= 0 && !strncmp(path, prefix, prefix_len) ? path + prefix_len : NULL;
}

static void track(int fd, bool created)
{
	char link[64], path[4096];
	const char *rel;
	ssize_t n;

	if (fd < 0 || fd >= MAX_FD || log_fd < 0)
		return;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	if ((n = readlink(link, path, sizeof path - 1)) <= 0)
		return;
	path[n] = '\0';
	pthread_mutex_lock(&lock);
	free(names[fd]);
	names[fd] = NULL;
	if ((rel = relative(path)) && !strchr(rel, '/')) {
		names[fd] = strdup(rel);
		if (created)
			emit(CFS_CREATE, rel, 0, NULL, 0);
	}
	pthread_mutex_unlock(&lock);
}

/* Would open(@path, @flags) create it? */
static bool creates(int dirfd, const char *path, int flags)
{
	struct stat st;

	return (flags & O_CREAT) && fstatat(dirfd, path, &st, 0) != 0 && errno == ENOENT;
}

static int do_open(const char *path, int flags, mode_t mode)
{
	bool c;
	int fd;

	ensure_init();
	c = creates(AT_FDCWD, path, flags);
	fd = real_open(path, flags, mode);
	track(fd, c);
	return fd;
}

static int do_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	bool c;
	int fd;

	ensure_init();
	c = creates(dirfd, path, flags);
	fd = real_openat(dirfd, path, flags, mode);
	track(fd, c);
	return fd;
}

int open64(const char *path, int flags, ...);
int open(const char *path, int flags, ...);
int openat64(int dirfd, const char *path, int flags, ...);
int openat(int dirfd, const char *path, int flags, ...);

#define MODE_ARG(flags, mode) do { va_list ap; va_start(ap, flags); \
	mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0; va_end(ap); } while (0)

int open64(const char *path, int flags, ...)
{
	mode_t mode;
	MODE_ARG(flags, mode);
	return do_open(path, flags, mode);
}

int open(const char *path, int flags, ...)
{
	mode_t mode;
	MODE_ARG(flags, mode);
	return do_open(path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode;
	MODE_ARG(flags, mode);
	return do_openat(dirfd, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode;
	MODE_ARG(flags, mode);
	return do_openat(dirfd, path, flags, mode);
}

static ssize_t logged_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t w;

	ensure_init();
	pthread_mutex_lock(&lock);
	w = real_pwrite(fd, buf, n, off);
	if (w > 0 && fd >= 0 && fd < MAX_FD && names[fd])
		emit(CFS_WRITE, names[fd], (uint64_t)off, buf, (uint64_t)w);
	pthread_mutex_unlock(&lock);
	return w;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off);
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off);

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return logged_pwrite(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return logged_pwrite(fd, buf, n, off);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	off_t off;
	ssize_t w;

	ensure_init();
	if (fd < 0 || fd >= MAX_FD || !names[fd])
		return real_write(fd, buf, n);
	pthread_mutex_lock(&lock);
	off = lseek(fd, 0, SEEK_CUR);
	w = real_write(fd, buf, n);
	if (w > 0)
		emit(CFS_WRITE, names[fd], (uint64_t)off, buf, (uint64_t)w);
	pthread_mutex_unlock(&lock);
	return w;
}

static int logged_sync(int fd, int (*real)(int))
{
	int rc;

	ensure_init();
	rc = real(fd);
	pthread_mutex_lock(&lock);
	if (rc == 0 && fd >= 0 && fd < MAX_FD && names[fd])
		emit(CFS_SYNC, names[fd], 0, NULL, 0);
	pthread_mutex_unlock(&lock);
	return rc;
}

int fsync(int fd)
{
	return logged_sync(fd, real_fsync);
}

int fdatasync(int fd)
{
	return logged_sync(fd, real_fdatasync);
}

static int logged_truncate(int fd, off_t len)
{
	int rc;

	ensure_init();
	pthread_mutex_lock(&lock);
	rc = real_ftruncate(fd, len);
	if (rc == 0 && fd >= 0 && fd < MAX_FD && names[fd])
		emit(CFS_TRUNCATE, names[fd], (uint64_t)len, NULL, 0);
	pthread_mutex_unlock(&lock);
	return rc;
}

int ftruncate64(int fd, off_t len);
int ftruncate(int fd, off_t len);

int ftruncate64(int fd, off_t len)
{
	return logged_truncate(fd, len);
}

int ftruncate(int fd, off_t len)
{
	return logged_truncate(fd, len);
}

static void log_unlink(int dirfd, const char *path)
{
	char link[64], dir[4096], full[8192];
	const char *rel;
	ssize_t n;

	if (path[0] == '/') {
		snprintf(full, sizeof full, "%s", path);
	} else {
		snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
		if (dirfd == AT_FDCWD)
			snprintf(link, sizeof link, "/proc/self/cwd");
		if ((n = readlink(link, dir, sizeof dir - 1)) <= 0)
			return;
		dir[n] = '\0';
		snprintf(full, sizeof full, "%s/%s", dir, path);
	}
	pthread_mutex_lock(&lock);
	if ((rel = relative(full)) && !strchr(rel, '/'))
		emit(CFS_UNLINK, rel, 0, NULL, 0);
	pthread_mutex_unlock(&lock);
}

int unlink(const char *path)
{
	int rc;

	ensure_init();
	if ((rc = real_unlink(path)) == 0)
		log_unlink(AT_FDCWD, path);
	return rc;
}

int unlinkat(int dirfd, const char *path, int flags)
{
	int rc;

	ensure_init();
	if ((rc = real_unlinkat(dirfd, path, flags)) == 0 && !(flags & AT_REMOVEDIR))
		log_unlink(dirfd, path);
	return rc;
}

int close(int fd)
{
	ensure_init();
	if (fd >= 0 && fd < MAX_FD) {
		pthread_mutex_lock(&lock);
		free(names[fd]);
		names[fd] = NULL;
		pthread_mutex_unlock(&lock);
	}
	return real_close(fd);
}

/* A checkpoint directory renamed into place (snapshot.c uses absolute
 * paths with rename()). */
int rename(const char *from, const char *to)
{
	int rc;

	ensure_init();
	rc = real_rename(from, to);
	if (rc == 0 && log_fd >= 0 && mark_len && !strncmp(to, mark, mark_len) &&
	    !strchr(to + mark_len, '/')) {
		pthread_mutex_lock(&lock);
		emit(CFS_MARK, to + mark_len, 0, NULL, 0);
		pthread_mutex_unlock(&lock);
	}
	return rc;
}
