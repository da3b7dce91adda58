/*
 * hard.h - what the hardening tests share, on top of tests/store/helpers.h:
 * its fixture as fx, whole-file writes, a bank with a small
 * journal segment, and running a test body in a private mount namespace
 * (for read-only and full filesystems) in a child with a timeout.
 */
#ifndef MEMBANK_HARD_H
#define MEMBANK_HARD_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>

#include "../store/helpers.h"

typedef bank_fx fx;

static inline int spit(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int rc = fd >= 0 && write(fd, p, n) == (ssize_t)n ? 0 : -1;

	if (fd >= 0)
		close(fd);
	return rc;
}

static inline mb_bank *open_opts(const char *path, mb_durability d, size_t map, uint64_t seg)
{
	mb_options o;
	mb_bank *b = NULL;
	int rc;

	mb_options_init(&o);
	o.durability = d;
	o.map_size = map;
	o.segment_bytes = seg;
	if ((rc = mb_open(path, &o, &b)))
		fprintf(stderr, "open %s: %s: %s\n", path, mb_errname(rc), mb_last_error(NULL));
	return b;
}

/* Make this process's mounts private, so that what a test mounts is seen by
 * nobody else and goes away with it.  -1 (with the reason printed) when the
 * system does not allow it (not root, no CAP_SYS_ADMIN, seccomp). */
static inline int private_mounts(void)
{
	if (unshare(CLONE_NEWNS)) {
		printf("SKIP reason: unshare(CLONE_NEWNS): %s\n", strerror(errno));
		return -1;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		printf("SKIP reason: making / private: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* Exit codes of a child test body: 0 passed, 77 skipped, else failed. */
#define CHILD_SKIP 77

/* Run @body(@arg) in a child (its own mount namespace possible), at most
 * @seconds; the test fails on a failing body, is skipped on CHILD_SKIP. */
static inline void run_child(int (*body)(void *), void *arg, int seconds)
{
	pid_t pid;
	int rc;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		rc = body(arg);
		fflush(NULL);
		_exit(rc);
	}
	rc = wait_child(pid, seconds);
	if (rc == CHILD_SKIP)
		skip();
	assert_int_equal(rc, 0);
}

/* In a child body (cmocka's asserts belong to the parent): a failed check
 * prints what and where and ends the child with status 1. */
static inline void need_at(bool ok, const char *what, const char *file, int line)
{
	if (ok)
		return;
	fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", file, line, what,
	        mb_last_error(NULL));
	fflush(NULL);
	_exit(1);
}
#define NEED(cond) need_at((cond), #cond, __FILE__, __LINE__)

#endif
