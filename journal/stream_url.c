/*
 * stream_url.c - the journal URL taken apart, every part bounded.
 *
 *   (nats|tls)://[CRED@]HOST[:PORT][,HOST[:PORT]...]/STREAM
 *   CRED = USER:PASSWORD | TOKEN   (%XX escapes decoded; ':' '@' '/' ',' escaped)
 *   HOST = a DNS name or IPv4 ([A-Za-z0-9._-], 1..253) | [IPv6]
 *   PORT = 1..65535 (default 4222)
 *   STREAM = [A-Za-z0-9_-]{1,64}
 * A message names the bad part and never quotes a credential.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream_int.h"

__attribute__((format(printf, 3, 4)))
static int bad(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	if (why && n) {
		int k = snprintf(why, n, "journal URL: ");
		va_start(ap, fmt);
		if (k > 0 && (size_t)k < n)
			vsnprintf(why + k, n - (size_t)k, fmt, ap);
		va_end(ap);
	}
	return MBS_EURL;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decode @n bytes of @s (%XX escapes) into @out (MBS_CRED_MAX + 1). */
static int cred(const char *s, size_t n, char *out, const char *what, char *why, size_t wn)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		int ch = (unsigned char)s[i];
		if (ch == '%') {
			if (i + 2 >= n)
				return bad(why, wn, "the %s has a truncated %%-escape", what);
			int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
			if (a < 0 || b < 0)
				return bad(why, wn, "the %s has a bad %%-escape", what);
			ch = a * 16 + b;
			i += 2;
		}
		if (ch == 0 || ch < 0x20 || ch == 0x7f)
			return bad(why, wn, "the %s has a control character", what);
		if (k >= MBS_CRED_MAX)
			return bad(why, wn, "the %s is longer than %d bytes", what, MBS_CRED_MAX);
		out[k++] = (char)ch;
	}
	out[k] = 0;
	if (k == 0)
		return bad(why, wn, "the %s is empty", what);
	return 0;
}

static bool host_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
}

/* One "HOST[:PORT]" of @n bytes: u->server[u->nhosts++]. */
static int one_host(const char *s, size_t n, mbs_url *u, char *why, size_t wn)
{
	int idx = u->nhosts + 1;
	if (u->nhosts >= MBS_HOSTS_MAX)
		return bad(why, wn, "more than %d servers", MBS_HOSTS_MAX);
	if (n == 0)
		return bad(why, wn, "server %d is empty", idx);
	size_t hlen;
	const char *port = NULL;
	size_t plen = 0;
	if (s[0] == '[') {
		const char *end = memchr(s, ']', n);
		if (!end)
			return bad(why, wn, "server %d: '[' without ']'", idx);
		hlen = (size_t)(end - s) + 1;
		for (size_t i = 1; i + 1 < hlen; i++) {
			char ch = s[i];
			if (!(hexval(ch) >= 0 || ch == ':' || ch == '.'))
				return bad(why, wn, "server %d: not an IPv6 address", idx);
		}
		if (hlen < 4)
			return bad(why, wn, "server %d: not an IPv6 address", idx);
		if (hlen < n) {
			if (s[hlen] != ':')
				return bad(why, wn, "server %d: junk after ']'", idx);
			port = s + hlen + 1;
			plen = n - hlen - 1;
		}
	} else {
		const char *colon = memchr(s, ':', n);
		hlen = colon ? (size_t)(colon - s) : n;
		if (colon) {
			port = colon + 1;
			plen = n - hlen - 1;
		}
		if (hlen == 0)
			return bad(why, wn, "server %d has no host", idx);
		for (size_t i = 0; i < hlen; i++)
			if (!host_char(s[i]))
				return bad(why, wn, "server %d: the host has a character "
				           "that is not [A-Za-z0-9._-] (byte %zu)", idx, i + 1);
	}
	if (hlen > MBS_HOST_MAX)
		return bad(why, wn, "server %d: the host is longer than %d bytes",
		           idx, MBS_HOST_MAX);
	unsigned long pv = 4222;
	if (port) {
		if (plen == 0 || plen > 5)
			return bad(why, wn, "server %d: the port is not 1..65535", idx);
		pv = 0;
		for (size_t i = 0; i < plen; i++) {
			if (port[i] < '0' || port[i] > '9')
				return bad(why, wn, "server %d: the port is not a number", idx);
			pv = pv * 10 + (unsigned long)(port[i] - '0');
		}
		if (pv == 0 || pv > 65535)
			return bad(why, wn, "server %d: the port is not 1..65535", idx);
	}
	snprintf(u->server[u->nhosts], sizeof u->server[0], "%s://%.*s:%lu",
	         u->tls ? "tls" : "nats", (int)hlen, s, pv);
	u->nhosts++;
	return 0;
}

int mbs_url_parse(const char *url, mbs_url *u, char *why, size_t wn)
{
	memset(u, 0, sizeof *u);
	if (why && wn)
		why[0] = 0;
	if (!url || !*url)
		return bad(why, wn, "empty");
	size_t len = strnlen(url, MBS_URL_MAX + 1);
	if (len > MBS_URL_MAX)
		return bad(why, wn, "longer than %d bytes", MBS_URL_MAX);
	const char *p;
	if (strncmp(url, "nats://", 7) == 0) {
		p = url + 7;
	} else if (strncmp(url, "tls://", 6) == 0) {
		u->tls = true;
		p = url + 6;
	} else {
		return bad(why, wn, "the scheme is not nats:// or tls://");
	}
	const char *end = url + len;
	const char *slash = NULL;          /* the last '/': STREAM follows */
	for (const char *q = end; q > p; q--)
		if (q[-1] == '/') {
			slash = q - 1;
			break;
		}
	if (!slash)
		return bad(why, wn, "no /STREAM after the servers");
	const char *st = slash + 1;
	size_t sl = (size_t)(end - st);
	if (sl == 0)
		return bad(why, wn, "the stream name is empty");
	if (sl > MBS_STREAM_MAX)
		return bad(why, wn, "the stream name is longer than %d bytes", MBS_STREAM_MAX);
	for (size_t i = 0; i < sl; i++) {
		char ch = st[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			return bad(why, wn, "the stream name has a character that is not "
			           "[A-Za-z0-9_-] (byte %zu)", i + 1);
	}
	memcpy(u->stream, st, sl);

	/* Credentials: up to the last '@' before the stream. */
	const char *at = NULL;
	for (const char *q = p; q < slash; q++)
		if (*q == '@')
			at = q;
	int rc;
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (colon) {
			if ((rc = cred(p, (size_t)(colon - p), u->user, "user", why, wn)))
				return rc;
			if ((rc = cred(colon + 1, (size_t)(at - colon - 1), u->pass, "password",
			               why, wn)))
				return rc;
		} else if ((rc = cred(p, (size_t)(at - p), u->token, "token", why, wn))) {
			return rc;
		}
		p = at + 1;
	}
	if (p == slash)
		return bad(why, wn, "no server before /STREAM");
	for (const char *h = p; h <= slash;) {
		const char *comma = memchr(h, ',', (size_t)(slash - h));
		const char *he = comma ? comma : slash;
		if ((rc = one_host(h, (size_t)(he - h), u, why, wn)))
			return rc;
		h = he + 1;
	}
	size_t k = (size_t)snprintf(u->redacted, sizeof u->redacted, "%s://",
	                            u->tls ? "tls" : "nats");
	for (int i = 0; i < u->nhosts && k < sizeof u->redacted; i++)
		k += (size_t)snprintf(u->redacted + k, sizeof u->redacted - k, "%s%s",
		                      i ? "," : "", strstr(u->server[i], "://") + 3);
	if (k < sizeof u->redacted)
		snprintf(u->redacted + k, sizeof u->redacted - k, "/%s", u->stream);
	return 0;
}

int mbs_url_check(const char *url, char *why, size_t n)
{
	mbs_url *u = malloc(sizeof *u);
	if (!u) {
		if (why && n)
			snprintf(why, n, "out of memory");
		return MBJ_ENOMEM;
	}
	int rc = mbs_url_parse(url, u, why, n);
	memset(u, 0, sizeof *u);
	free(u);
	return rc;
}
