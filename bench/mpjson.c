/*
 * mpjson.c - msgpack -> JSON text, for the raw LMDB peer's get.
 *
 * A direct one-pass converter (no msgpack-c zone, no intermediate objects):
 * the cheapest honest way to turn the stored bytes into the JSON text that
 * W2 must return, so the peer's figure is a fair upper bound.  Every length
 * is checked against the bytes present; depth is capped.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

typedef struct rd {
	const uint8_t *p, *end;
	bench_buf *out;
} rd;

static uint64_t be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int need(const rd *r, size_t n)
{
	return (size_t)(r->end - r->p) >= n ? 0 : -1;
}

static int put_str(rd *r, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *s = r->p;

	if (need(r, n) != 0 || bench_buf_put(r->out, "\"", 1) != 0)
		return -1;
	r->p += n;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
		int rc;

		if (c == '"' || c == '\\')
			rc = bench_buf_put(r->out, (char[]){'\\', (char)c}, 2);
		else if (c < 0x20)
			rc = bench_buf_put(r->out, esc, 6);
		else
			rc = bench_buf_put(r->out, &s[i], 1);
		if (rc != 0)
			return -1;
	}
	return bench_buf_put(r->out, "\"", 1);
}

static int put_num(rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int put_num(rd *r, const char *fmt, ...)
{
	char tmp[40];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof tmp)
		return -1;
	return bench_buf_put(r->out, tmp, (size_t)n);
}

static int value(rd *r, unsigned depth);

static int container(rd *r, size_t n, bool map, unsigned depth)
{
	if (depth > 64 || bench_buf_put(r->out, map ? "{" : "[", 1) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (i && bench_buf_put(r->out, ",", 1) != 0)
			return -1;
		if (map && (value(r, depth + 1) != 0 || bench_buf_put(r->out, ":", 1) != 0))
			return -1;
		if (value(r, depth + 1) != 0)
			return -1;
	}
	return bench_buf_put(r->out, map ? "}" : "]", 1);
}

/* A length-prefixed item whose prefix is @n bytes after the type byte. */
static int sized(rd *r, unsigned n, int kind, unsigned depth)
{
	size_t len;

	if (need(r, n) != 0)
		return -1;
	len = (size_t)be(r->p, n);
	r->p += n;
	if (kind == 's')
		return put_str(r, len);
	return container(r, len, kind == 'm', depth);
}

static int scalar(rd *r, uint8_t c)
{
	static const unsigned width[] = {1, 2, 4, 8};
	unsigned w;
	uint64_t u;

	if (c == 0xca || c == 0xcb) {
		w = c == 0xca ? 4 : 8;
		if (need(r, w) != 0)
			return -1;
		u = be(r->p, w);
		r->p += w;
		if (w == 4) {
			uint32_t u32 = (uint32_t)u;
			float f;
			memcpy(&f, &u32, 4);
			return put_num(r, "%.9g", (double)f);
		}
		double d;
		memcpy(&d, &u, 8);
		return put_num(r, "%.17g", d);
	}
	if (c < 0xcc || c > 0xd3)
		return -1;
	w = width[(c - 0xcc) & 3];
	if (need(r, w) != 0)
		return -1;
	u = be(r->p, w);
	r->p += w;
	if (c <= 0xcf)
		return put_num(r, "%llu", (unsigned long long)u);
	if (w < 8 && (u >> (w * 8 - 1)))
		u |= ~0ull << (w * 8);   /* sign-extend */
	return put_num(r, "%lld", (long long)(int64_t)u);
}

static int value(rd *r, unsigned depth)
{
	uint8_t c;

	if (need(r, 1) != 0)
		return -1;
	c = *r->p++;
	if (c <= 0x7f)
		return put_num(r, "%u", c);
	if (c >= 0xe0)
		return put_num(r, "%d", (int)(int8_t)c);
	if (c <= 0x8f)
		return container(r, c & 0x0f, true, depth);
	if (c <= 0x9f)
		return container(r, c & 0x0f, false, depth);
	if (c <= 0xbf)
		return put_str(r, c & 0x1f);
	switch (c) {
	case 0xc0: return bench_buf_put(r->out, "null", 4);
	case 0xc2: return bench_buf_put(r->out, "false", 5);
	case 0xc3: return bench_buf_put(r->out, "true", 4);
	case 0xd9: return sized(r, 1, 's', depth);
	case 0xda: return sized(r, 2, 's', depth);
	case 0xdb: return sized(r, 4, 's', depth);
	case 0xdc: return sized(r, 2, 'a', depth);
	case 0xdd: return sized(r, 4, 'a', depth);
	case 0xde: return sized(r, 2, 'm', depth);
	case 0xdf: return sized(r, 4, 'm', depth);
	default: return scalar(r, c);
	}
}

int bench_mp_to_json(bench_buf *b, const uint8_t *mp, size_t len)
{
	rd r = {mp, mp + len, b};

	if (value(&r, 0) != 0 || r.p != r.end)
		return -1;
	return 0;
}
