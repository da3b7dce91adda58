/*
 * errors.c - the one table of MB_E* codes, and each thread's last message.
 *
 * The last-error message lives in thread-local storage, tagged with the
 * handle it belongs to, so two threads failing on one handle at once never
 * see each other's message, and a handle-less call (mb_open, mb_restore)
 * reports under the NULL tag.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define MB_ERRNO_MAP(XX)                                                     \
	XX(MB_OK, "success")                                                 \
	XX(MB_EINVAL, "invalid input")                                       \
	XX(MB_ENOTFOUND, "not found")                                        \
	XX(MB_ENOMEM, "out of memory")                                       \
	XX(MB_EIO, "input/output error")                                     \
	XX(MB_ECORRUPT, "damaged data")                                      \
	XX(MB_EVERSION, "written by a newer format version")                 \
	XX(MB_ENOTBANK, "not a membank bank")                                \
	XX(MB_EFORKED, "handle used in a child process after fork()")        \
	XX(MB_EPERM, "permission denied")                                    \
	XX(MB_ENOSPC, "no space left on device")                             \
	XX(MB_EFATAL, "a sync failed: the handle is unusable, reopen the bank") \
	XX(MB_EEXIST, "the bank exists and is not empty")                    \
	XX(MB_EUNSAFE, "refused: symlink or network filesystem")             \
	XX(MB_EINTERNAL, "unexpected storage engine error")                  \
	XX(MB_ERESTORED, "the bank was restored: reopen it")                \
	XX(MB_ECANCELED, "cancelled by the progress callback")              \
	XX(MB_EUNAVAIL, "the journal's cluster is unreachable")             \
	XX(MB_EDIVERGED, "the journal's stream is behind this machine or was recreated: writes refused")

const char *mb_strerror(int code)
{
	switch (code) {
#define XX(name, msg) case name: return msg;
	MB_ERRNO_MAP(XX)
#undef XX
	default: return "unknown error";
	}
}

const char *mb_errname(int code)
{
	switch (code) {
#define XX(name, msg) case name: return #name;
	MB_ERRNO_MAP(XX)
#undef XX
	default: return "MB_E?";
	}
}

static __thread struct {
	const void *tag;
	char msg[512];
} last_error;

/* The message is built aside first: an argument may be the previous
 * message itself (wrapping it with more context). */
int mb_fail(const void *tag, int code, const char *fmt, ...)
{
	char msg[sizeof last_error.msg];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	last_error.tag = tag;
	memcpy(last_error.msg, msg, sizeof msg);
	return code;
}

void mb_clear_error(const void *tag)
{
	if (last_error.tag == tag)
		last_error.msg[0] = '\0';
}

const char *mb_last_error(const mb_bank *bank)
{
	if (last_error.tag != (const void *)bank)
		return "";
	return last_error.msg;
}

int mb_errno_code(int err)
{
	switch (err) {
	case 0: return MB_OK;
	case ENOMEM: return MB_ENOMEM;
	case ENOSPC: case EDQUOT: case EFBIG: return MB_ENOSPC;
	case EACCES: case EPERM: case EROFS: return MB_EPERM;
	case ELOOP: return MB_EUNSAFE;
	case ENOENT: case ENOTDIR: return MB_ENOTBANK;
	default: return MB_EIO;
	}
}

int mb_pathf(char *out, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, cap, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

/* Process-wide, like the environment registry: a fork concerns the whole
 * process.  Only ever incremented, in the child. */
static unsigned fork_generation;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void count_fork(void)
{
	__atomic_add_fetch(&fork_generation, 1, __ATOMIC_RELAXED);
}

static void watch_forks(void)
{
	pthread_atfork(NULL, NULL, count_fork);
}

unsigned mb_fork_generation(void)
{
	pthread_once(&fork_once, watch_forks);
	return __atomic_load_n(&fork_generation, __ATOMIC_RELAXED);
}
