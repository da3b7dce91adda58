/*
 * stream_creds.c - a NATS credentials file checked before libnats is given
 * its name.
 *
 * libnats reads the file at each connect and reports a bad one as a bare
 * "Error" or as the server's refusal; this says what is wrong, naming the
 * file.  What is checked is the shape of a .creds file (nats-io/jwt
 * creds_utils.go FormatUserConfig):
 *
 *   -----BEGIN NATS USER JWT-----
 *   <header>.<claims>.<signature>        base64url, the user's JWT
 *   ------END NATS USER JWT------
 *   ... -----BEGIN USER NKEY SEED-----
 *   SU...                                the user's NKey seed
 *   ------END USER NKEY SEED------ ...
 *
 * that is: a regular file of at most MBS_CREDS_MAX bytes with a line that is
 * a JWT (three base64url parts) and a line that starts with "SU".  Whether
 * the server accepts them is the server's business (MBS_EAUTH).  The
 * contents are never quoted and the buffer is wiped before it is freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stream_int.h"

#define MBS_CREDS_MAX (64 << 10)

static bool b64url(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* [s, e) without surrounding blanks is "x.y.z", each part base64url. */
static bool is_jwt(const char *s, const char *e)
{
	int dots = 0;
	size_t part = 0;
	for (; s < e; s++) {
		if (*s == '.') {
			if (!part)
				return false;
			dots++;
			part = 0;
		} else if (b64url(*s)) {
			part++;
		} else {
			return false;
		}
	}
	return dots == 2 && part > 0;
}

/* What the lines of @buf hold: a JWT line, a user seed line. */
static void scan(const char *buf, size_t n, bool *jwt, bool *seed)
{
	const char *p = buf, *end = buf + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		const char *s = p;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		const char *t = e;
		while (t > s && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r'))
			t--;
		if (is_jwt(s, t))
			*jwt = true;
		if (t - s > 2 && s[0] == 'S' && s[1] == 'U')
			*seed = true;
		p = e + 1;
	}
}

int mbs_creds_check(const char *path, char *why, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(why, n, "cannot read it: %s", strerror(errno));
		return -1;
	}
	struct stat st;
	const char *bad = NULL;
	if (fstat(fd, &st) != 0)
		bad = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		bad = "not a regular file";
	else if (st.st_size == 0)
		bad = "it is empty";
	else if (st.st_size > MBS_CREDS_MAX)
		bad = "larger than 64 KiB: not a credentials file";
	if (bad) {
		snprintf(why, n, "%s", bad);
		close(fd);
		return -1;
	}
	size_t size = (size_t)st.st_size, got = 0;
	char *buf = malloc(size);
	if (!buf) {
		close(fd);
		snprintf(why, n, "out of memory");
		return -1;
	}
	while (got < size) {
		ssize_t k = read(fd, buf + got, size - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			bad = k < 0 ? strerror(errno) : "it shrank while read";
			break;
		}
		got += (size_t)k;
	}
	close(fd);
	bool jwt = false, seed = false;
	if (!bad)
		scan(buf, got, &jwt, &seed);
	explicit_bzero(buf, size);
	free(buf);
	if (bad)
		snprintf(why, n, "cannot read it: %s", bad);
	else if (!jwt)
		snprintf(why, n, "no user JWT in it (a .creds file holds one between "
		                 "'-----BEGIN NATS USER JWT-----' and its END line)");
	else if (!seed)
		snprintf(why, n, "no user NKey seed in it (a line starting with SU, "
		                 "after '-----BEGIN USER NKEY SEED-----')");
	else
		return 0;
	return -1;
}
