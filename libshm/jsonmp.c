/*
 * jsonmp.c - JSON text -> msgpack in one bounded pass, numbers kept exact.
 *
 * This is how page properties and config updates enter the bank (put,
 * merge, config update, and their files on restore).  A
 * parser that reads every number as a double (cJSON) cannot keep
 * 9007199254740993, 18446744073709551615 or the difference between 1 and
 * 1.0, so numbers are read here from their text:
 *  - an integer token (no '.', 'e' or 'E') is a msgpack integer: int64 from
 *    -9223372036854775808 up, uint64 up to 18446744073709551615; beyond
 *    that it is refused ("integer out of range (beyond 64 bits)").  "-0" is
 *    the integer 0 (JSON integers have no negative zero; Python reads it so);
 *  - any other token is a float64 (strtod in the C locale, correctly
 *    rounded; most are computed without it, bit for bit the same: see
 *    fast_float), even when integral (1.0), keeping its sign (-0.0); a value
 *    too large for a double (1e400) is refused, one too small reads as the
 *    nearest double (1e-400 is 0.0), as Python reads it.
 * mp_to_json() prints them back so that they read as the same value of the
 * same type: integers as decimal integers, floats as the shortest text that
 * reads back as the same double, always with '.' or an exponent.
 *
 * The checks are those of json_parse() with the same messages: size, strict
 * UTF-8, nesting at most @max_depth, no "\u0000", nothing after the value,
 * and no duplicate key in an object (it would make a merge ambiguous).
 * Strings may not hold raw control characters (RFC 8259).
 *
 * UTF-8 is checked in the same pass: a byte from 0x80 can only be inside a
 * string of a text that parses (anywhere else it stops the parse), so each
 * string's runs of plain bytes are checked as they are read.  A text with
 * invalid UTF-8 anywhere must fail with that message whatever else is wrong
 * with it (as when the whole text was checked first), so any failure scans
 * the whole text again and reports its first invalid byte instead.
 *
 * Output: msgpack-c's minimal encoding (the narrowest int, str, array and
 * map header; float64 for every float), written straight into the output
 * buffer (pack_template.h's rules, byte for byte).  A container's header is
 * reserved at its widest (5 bytes) and narrowed when its count is known.
 * Each narrowing moves the container's bytes once, so a byte moves at most
 * once per container around it (<= 64 times).  Memory: the output, one
 * escaped string's bytes and the keys of the open objects; no tree.
 */
#include <float.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct key_ref {
	size_t off;       /* of the key's bytes in the output */
	const char *ptr;  /* the same as a pointer, only while sorting */
	uint32_t len;
} key_ref;

typedef struct jp {
	const char *base, *p, *end;
	const char *what;
	const void *tag;
	unsigned max_depth;
	mb_buf *out;
	mb_buf str;          /* an escaped string's decoded bytes */
	key_ref *keys;       /* keys of the objects being parsed, innermost last */
	size_t nkeys, cap_keys;
} jp;

static int parse_value(jp *j, unsigned depth);

static size_t at(const jp *j)
{
	return (size_t)(j->p - j->base);
}

static int oom(const jp *j)
{
	return mb_fail(j->tag, MB_ENOMEM, "%s: out of memory", j->what);
}

static int invalid(const jp *j)
{
	return mb_fail(j->tag, MB_EINVAL, "%s: invalid JSON at byte %zu", j->what, at(j));
}

/* The first invalid UTF-8 byte of the text before @upto is the error, if
 * any: MB_EINVAL with its message, else 0. */
static int utf8_fail(const jp *j, const char *upto)
{
	size_t bad = mb_utf8_bad_at(j->base, (size_t)(upto - j->base));

	if (bad == (size_t)-1)
		return 0;
	return mb_fail(j->tag, MB_EINVAL, "%s: invalid UTF-8 at byte %zu", j->what, bad);
}

static void skip_ws(jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

/* ------------------------------------------------------------- output
 *
 * Each write first makes room (the common case inline); a failed
 * reservation sets out->failed, writes nothing, and parse_value() turns it
 * into MB_ENOMEM.  buf.c's invariant (room for a NUL after len) holds: room
 * is always len + n + 1. */

static bool room(jp *j, size_t n)
{
	mb_buf *b = j->out;

	return (b->data && b->cap - b->len > n && !b->failed) || !buf_reserve(b, n);
}

/* @head, then the low @n bytes of @v big-endian (n <= 8) */
static void put_head(jp *j, uint8_t head, uint64_t v, unsigned n)
{
	uint8_t *o;

	if (!room(j, 1 + n))
		return;
	o = (uint8_t *)j->out->data + j->out->len;
	o[0] = head;
	for (unsigned i = 0; i < n; i++)
		o[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	j->out->len += 1 + n;
}

/* msgpack_pack_uint64 */
static void put_uint(jp *j, uint64_t v)
{
	if (v < 0x80)
		put_head(j, (uint8_t)v, 0, 0);
	else if (v < 0x100)
		put_head(j, 0xcc, v, 1);
	else if (v < 0x10000)
		put_head(j, 0xcd, v, 2);
	else if (v < 0x100000000)
		put_head(j, 0xce, v, 4);
	else
		put_head(j, 0xcf, v, 8);
}

/* msgpack_pack_int64 of @v <= 0 (0 is the fixint 0) */
static void put_neg(jp *j, int64_t v)
{
	if (v >= -32)
		put_head(j, (uint8_t)v, 0, 0);
	else if (v >= -128)
		put_head(j, 0xd0, (uint64_t)v, 1);
	else if (v >= -32768)
		put_head(j, 0xd1, (uint64_t)v, 2);
	else if (v >= INT32_MIN)
		put_head(j, 0xd2, (uint64_t)v, 4);
	else
		put_head(j, 0xd3, (uint64_t)v, 8);
}

/* msgpack_pack_str_with_body */
static void put_str(jp *j, const char *s, size_t len)
{
	if (!room(j, 5 + len))
		return;
	if (len < 32)
		put_head(j, (uint8_t)(0xa0 | len), 0, 0);
	else if (len < 256)
		put_head(j, 0xd9, len, 1);
	else if (len < 65536)
		put_head(j, 0xda, len, 2);
	else
		put_head(j, 0xdb, len, 4);
	if (len)
		memcpy(j->out->data + j->out->len, s, len);
	j->out->len += len;
}

/* ------------------------------------------------------------ numbers */

/* The C locale, whatever the process set with setlocale(): JSON's decimal
 * point is always '.'.  glibc returns a static object for "C". */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

locale_t mb_c_locale(void)
{
	pthread_once(&c_locale_once, make_c_locale);
	return c_locale;
}

/* The extent of a number token at j->p (RFC 8259 grammar); *is_int when
 * it has neither fraction nor exponent. */
static int number_extent(jp *j, size_t *len, bool *is_int)
{
	const char *p = j->p, *e = j->end;

	*is_int = true;
	if (p < e && *p == '-')
		p++;
	if (p < e && *p == '0')
		p++;
	else if (p < e && *p >= '1' && *p <= '9')
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	else
		return invalid(j);
	if (p < e && *p == '.') {
		*is_int = false;
		if (++p >= e || *p < '0' || *p > '9')
			return j->p = p, invalid(j);
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		*is_int = false;
		if (++p < e && (*p == '+' || *p == '-'))
			p++;
		if (p >= e || *p < '0' || *p > '9')
			return j->p = p, invalid(j);
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	}
	*len = (size_t)(p - j->p);
	return 0;
}

/* An integer token: int64, or uint64 above INT64_MAX. */
static int pack_integer(jp *j, const char *s, size_t len)
{
	bool neg = *s == '-';
	uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : UINT64_MAX;

	for (size_t i = neg; i < len; i++) {
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (limit - d) / 10)
			return mb_fail(j->tag, MB_EINVAL, "%s: integer out of range (beyond 64 bits) "
			               "at byte %zu; write it as a string to keep it exactly", j->what, at(j));
		v = v * 10 + d;
	}
	if (neg)  /* -2^63 included: the negation wraps to its two's complement */
		put_neg(j, (int64_t)(0 - v));
	else
		put_uint(j, v);
	return 0;  /* an allocation failure shows in out->failed */
}

/* Clinger's fast path: a float token whose digits, without the point,
 * make an integer m <= 2^53 and whose power of ten k (the exponent less the
 * digits after the point) has |k| <= 22 is m * 10^k or m / 10^-k: both
 * operands are exact doubles, so the one rounding of that operation gives
 * the correctly rounded value, which is what strtod returns.  Most floats
 * JSON carries (prices, ratios, coordinates) are such.  False: strtod's. */
const double mb_pow10[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static bool fast_float(const char *s, size_t len, double *out)
{
	bool neg = *s == '-', eneg;
	uint64_t m = 0;
	int digits = 0;   /* significant digits in m (19 cannot overflow it) */
	long k = 0, e = 0;
	size_t i = neg;

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
	return false;     /* the operation must round to double once */
#endif
	for (bool point = false; i < len; i++) {
		if (s[i] == '.' && !point) {
			point = true;
			continue;
		}
		if (s[i] < '0' || s[i] > '9')
			break;
		if ((m || s[i] != '0') && ++digits > 19)
			return false;
		m = m * 10 + (uint64_t)(s[i] - '0');
		k -= point;
	}
	if (i < len) {    /* 'e' or 'E': number_extent checked the rest */
		eneg = s[++i] == '-';
		i += s[i] == '-' || s[i] == '+';
		for (; i < len; i++)
			if ((e = e * 10 + (s[i] - '0')) > 1000)
				return false;
		k += eneg ? -e : e;
	}
	if (m > (uint64_t)1 << 53 || k < -22 || k > 22)
		return false;
	*out = k < 0 ? (double)m / mb_pow10[-k] : (double)m * mb_pow10[k];
	if (neg)
		*out = -*out;
	return true;
}

/* A float token strtod's way (in the C locale), for those fast_float
 * leaves. */
static int strtod_float(jp *j, const char *s, size_t len, double *d)
{
	char small[64], *copy = len < sizeof small ? small : malloc(len + 1);
	locale_t c = mb_c_locale();

	if (!copy)
		return oom(j);
	memcpy(copy, s, len);
	copy[len] = '\0';
	/* ERANGE is also set for results below the normal range, which are
	 * the nearest double as they should be; only infinity is refused */
	*d = c ? strtod_l(copy, NULL, c) : strtod(copy, NULL);
	if (copy != small)
		free(copy);
	if (*d == HUGE_VAL || *d == -HUGE_VAL)
		return mb_fail(j->tag, MB_EINVAL, "%s: number out of range (beyond a double) at byte %zu",
		               j->what, at(j));
	return 0;
}

static int pack_float(jp *j, const char *s, size_t len)
{
	uint64_t bits;
	double d = 0;
	int rc;

	if (!fast_float(s, len, &d) && (rc = strtod_float(j, s, len, &d)))
		return rc;
	memcpy(&bits, &d, sizeof bits);
	put_head(j, 0xcb, bits, 8);  /* msgpack_pack_double */
	return 0;
}

static int parse_number(jp *j)
{
	size_t len = 0;
	bool is_int = true;
	int rc;

	if ((rc = number_extent(j, &len, &is_int)))
		return rc;
	rc = is_int ? pack_integer(j, j->p, len) : pack_float(j, j->p, len);
	j->p += len;
	return rc;
}

/* ------------------------------------------------------------ strings */

static int hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') :
		             c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) :
		             c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16;
		if (d > 15)
			return -1;
		*v = *v << 4 | d;
	}
	return 0;
}

static void add_utf8(mb_buf *b, unsigned cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		u[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_add(b, u, n);
}

/* "\uXXXX" (a surrogate pair as two) at j->p, past the backslash-u. */
static int unicode_escape(jp *j)
{
	const char *start = j->p - 2;
	unsigned cp, lo;

	if (j->end - j->p < 4 || hex4(j->p, &cp))
		return invalid(j);
	j->p += 4;
	if (cp == 0) {
		j->p = start;
		return mb_fail(j->tag, MB_EINVAL, "%s: \\u0000 at byte %zu is not supported",
		               j->what, at(j));
	}
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return j->p = start, invalid(j);
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || hex4(j->p + 2, &lo) ||
		    lo < 0xdc00 || lo > 0xdfff)
			return j->p = start, invalid(j);
		j->p += 6;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	add_utf8(&j->str, cp);
	return 0;
}

static int escape(jp *j)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *hit;

	if (j->p >= j->end)
		return invalid(j);
	if (*j->p == 'u') {
		j->p++;
		return unicode_escape(j);
	}
	if (!*j->p || !(hit = strchr(from, *j->p)))
		return invalid(j);
	j->p++;
	return buf_addc(&j->str, to[hit - from]);
}

/* The end of the run of plain string bytes at @q (at a '"', '\\', control
 * character or the text's end); MB_EINVAL (the whole text's UTF-8 error)
 * when the run is not valid UTF-8.  Eight bytes at a time on a
 * little-endian machine (the word's first byte is its lowest). */
static int plain_run(const jp *j, const char *q, const char **run_end)
{
	const char *run = q;
	uint64_t high = 0;   /* a byte from 0x80 was seen: check the run */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (j->end - q >= 8) {
		uint64_t w, stops;

		memcpy(&w, q, 8);
		if ((stops = mb_json_stops8(w))) {
			unsigned n = (unsigned)__builtin_ctzll(stops) / 8;

			high |= w & 0x8080808080808080ull & ((1ull << (8 * n)) - 1);
			q += n;
			goto done;
		}
		high |= w & 0x8080808080808080ull;
		q += 8;
	}
#endif
	for (; q < j->end; q++) {
		unsigned char c = (unsigned char)*q;
		if (c == '"' || c == '\\' || c < 0x20)
			break;
		high |= c & 0x80;
	}
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
done:
#endif
	*run_end = q;
	/* a run ends at an ASCII byte, so it is whole UTF-8 sequences iff the
	 * text is valid up to there */
	if (high && mb_utf8_bad_at(run, (size_t)(q - run)) != (size_t)-1)
		return utf8_fail(j, q);
	return 0;
}

/* A string at j->p (its opening quote) decoded into j->str; escapes only
 * add valid UTF-8. */
static int read_string(jp *j)
{
	int rc;

	j->str.len = 0;
	j->p++;
	for (;;) {
		const char *run = j->p;
		if ((rc = plain_run(j, run, &j->p)))
			return rc;
		buf_add(&j->str, run, (size_t)(j->p - run));
		if (j->p >= j->end || (unsigned char)*j->p < 0x20)
			return invalid(j);
		if (*j->p++ == '"')
			break;
		if ((rc = escape(j)))
			return rc;
	}
	return j->str.failed ? oom(j) : 0;
}

static int parse_string(jp *j)
{
	const char *run = j->p + 1, *q;
	int rc;

	/* a string without escapes (most) is packed from the text itself;
	 * j->str.len still gives its length (push_key) */
	if ((rc = plain_run(j, run, &q)))
		return rc;
	if (q < j->end && *q == '"') {
		j->str.len = (size_t)(q - run);
		put_str(j, run, j->str.len);
		j->p = q + 1;
		return 0;
	}
	rc = read_string(j);

	if (!rc)
		put_str(j, j->str.data ? j->str.data : "", j->str.len);
	return rc;
}

/* --------------------------------------------------------- containers */

/* Replace the 5 bytes reserved at @hdr with the narrowest header for @n
 * items and move the items down to it. */
static void narrow_header(mb_buf *b, size_t hdr, uint32_t n, bool map)
{
	uint8_t h[5];
	size_t hl;

	if (n < 16) {
		h[0] = (uint8_t)((map ? 0x80 : 0x90) | n);
		hl = 1;
	} else if (n < 65536) {
		h[0] = map ? 0xde : 0xdc;
		h[1] = (uint8_t)(n >> 8);
		h[2] = (uint8_t)n;
		hl = 3;
	} else {
		h[0] = map ? 0xdf : 0xdd;
		for (int i = 0; i < 4; i++)
			h[1 + i] = (uint8_t)(n >> (24 - 8 * i));
		hl = 5;
	}
	memcpy(b->data + hdr, h, hl);
	if (hl < 5) {
		memmove(b->data + hdr + hl, b->data + hdr + 5, b->len - hdr - 5);
		b->len -= 5 - hl;
	}
}

static int push_key(jp *j)
{
	if (j->nkeys == j->cap_keys) {
		size_t cap = j->cap_keys ? j->cap_keys * 2 : 32;
		key_ref *k = realloc(j->keys, cap * sizeof *k);
		if (!k)
			return oom(j);
		j->keys = k;
		j->cap_keys = cap;
	}
	/* the key's bytes end the output: put_str just wrote them */
	j->keys[j->nkeys++] = (key_ref){ j->out->len - j->str.len, NULL, (uint32_t)j->str.len };
	return 0;
}

static int cmp_key(const void *a, const void *b)
{
	const key_ref *x = a, *y = b;
	int c = memcmp(x->ptr, y->ptr, x->len < y->len ? x->len : y->len);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The keys from @first on belong to one object: refuse a repeated one. */
static int check_dup_keys(jp *j, size_t first)
{
	size_t n = j->nkeys - first;
	key_ref *k;

	if (n < 2)
		return 0;  /* j->keys may still be NULL */
	k = j->keys + first;
	/* the output does not move while the keys are sorted */
	for (size_t i = 0; i < n; i++)
		k[i].ptr = j->out->data + k[i].off;
	/* a few keys (most objects) are compared pairwise: qsort costs more */
	if (n <= 16) {
		for (size_t a = 1; a < n; a++)
			for (size_t b = 0; b < a; b++)
				if (k[a].len == k[b].len && !memcmp(k[a].ptr, k[b].ptr, k[a].len))
					return mb_fail(j->tag, MB_EINVAL, "%s: duplicate key \"%.*s\"",
					               j->what, (int)(k[a].len < 64 ? k[a].len : 64),
					               k[a].ptr);
		return 0;
	}
	qsort(k, n, sizeof *k, cmp_key);
	for (size_t i = 1; i < n; i++)
		if (!cmp_key(&k[i - 1], &k[i]))
			return mb_fail(j->tag, MB_EINVAL, "%s: duplicate key \"%.*s\"", j->what,
			               (int)(k[i].len < 64 ? k[i].len : 64), k[i].ptr);
	return 0;
}

static int member(jp *j, bool map, unsigned depth)
{
	int rc;

	skip_ws(j);
	if (map) {
		if (j->p >= j->end || *j->p != '"')
			return invalid(j);
		if ((rc = parse_string(j)) || (rc = push_key(j)))
			return rc;
		skip_ws(j);
		if (j->p >= j->end || *j->p != ':')
			return invalid(j);
		j->p++;
	}
	return parse_value(j, depth);
}

static int parse_container(jp *j, unsigned depth, bool map)
{
	const char close = map ? '}' : ']';
	size_t hdr = j->out->len, first_key = j->nkeys;
	uint32_t n = 0;
	int rc = 0;

	if (depth >= j->max_depth)
		return mb_fail(j->tag, MB_EINVAL, "%s: nested deeper than %u at byte %zu", j->what,
		               j->max_depth, at(j));
	if (!room(j, 5))
		return oom(j);
	j->out->len += 5;  /* the header, written by narrow_header() */
	j->p++;
	skip_ws(j);
	if (j->p < j->end && *j->p == close)
		j->p++;
	else
		for (;;) {
			if ((rc = member(j, map, depth + 1)))
				return rc;
			n++;
			skip_ws(j);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			if (j->p >= j->end || *j->p != close)
				return invalid(j);
			j->p++;
			break;
		}
	if (j->out->failed)
		return oom(j);
	if (map && (rc = check_dup_keys(j, first_key)))
		return rc;
	j->nkeys = first_key;
	narrow_header(j->out, hdr, n, map);
	return 0;
}

static int literal(jp *j, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n))
		return invalid(j);
	j->p += n;
	put_head(j, *word == 't' ? 0xc3 : *word == 'f' ? 0xc2 : 0xc0, 0, 0);
	return 0;
}

/* One value at j->p; @depth counts the containers around it. */
static int parse_value(jp *j, unsigned depth)
{
	int rc;

	skip_ws(j);
	if (j->p >= j->end)
		return invalid(j);
	switch (*j->p) {
	case '{': rc = parse_container(j, depth, true); break;
	case '[': rc = parse_container(j, depth, false); break;
	case '"': rc = parse_string(j); break;
	case 't': rc = literal(j, "true"); break;
	case 'f': rc = literal(j, "false"); break;
	case 'n': rc = literal(j, "null"); break;
	default: rc = parse_number(j);
	}
	if (!rc && j->out->failed)
		rc = oom(j);
	return rc;
}

/* The transcoder over [s, s + len): the whole text one value (@stop
 * NULL), or one value at its start, what follows it left alone.  *@stop:
 * where the parse ended (after the value, or where it failed). */
static int transcode(const char *s, size_t len, unsigned max_depth, const char *what,
                     const void *tag, mb_buf *out, const char **stop)
{
	size_t start = out->len;
	jp j = { .base = s, .p = s, .end = s + len, .what = what, .tag = tag,
	         .max_depth = max_depth, .out = out };
	int rc;

	/* the output is about the text's size (floats and containers may need
	 * more, escapes and separators less): one reservation for most */
	room(&j, stop ? 256 : len + 16);
	if (!(rc = parse_value(&j, 0)) && !stop) {
		skip_ws(&j);
		if (j.p != j.end)
			rc = mb_fail(tag, MB_EINVAL, "%s: unexpected text after the JSON value at byte %zu",
			             what, at(&j));
	}
	buf_free(&j.str);
	free(j.keys);
	if (stop)
		*stop = j.p;
	if (rc) {
		/* invalid UTF-8 anywhere is the error, as if checked first (in
		 * a prefix: anywhere up to the byte the parse stopped at) */
		int urc = utf8_fail(&j, stop && j.p < j.end ? j.p + 1 : j.end);

		rc = urc ? urc : rc;
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	} else {
		out->data[out->len] = '\0';  /* buf.c's trailing NUL */
	}
	return rc;
}

int json_to_mp(const char *s, size_t len, size_t max, unsigned max_depth, const char *what,
               const void *tag, mb_buf *out)
{
	if (!s)
		return mb_fail(tag, MB_EINVAL, "%s: missing", what);
	if (len == (size_t)-1)
		len = strnlen(s, max + 1);
	if (len > max)
		return mb_fail(tag, MB_EINVAL, "%s: larger than the limit of %zu bytes", what, max);
	return transcode(s, len, max_depth, what, tag, out, NULL);
}

int json_prefix_to_mp(const char *s, size_t avail, size_t max, unsigned max_depth,
                      const char *what, const void *tag, mb_buf *out, size_t *used)
{
	size_t len = avail < max ? avail : max, start = out->len;
	const char *stop = s;
	int rc = transcode(s, len, max_depth, what, tag, out, &stop);

	/* The parse sees at most @max bytes: one that failed at the cut, or a
	 * number that the cut may have shortened, is a value too large. */
	if (avail > max && stop == s + len &&
	    (rc || (s[len] >= '0' && s[len] <= '9') || s[len] == '.' || s[len] == 'e' ||
	     s[len] == 'E' || s[len] == '+' || s[len] == '-')) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
		return mb_fail(tag, MB_EINVAL, "%s: larger than the limit of %zu bytes", what, max);
	}
	*used = (size_t)(stop - s);
	return rc;
}

int json_object_to_mp(const char *s, size_t len, size_t max, const char *what,
                      const void *tag, mb_buf *out)
{
	size_t start = out->len;
	int rc = json_to_mp(s, len, max, MB_MAX_DEPTH, what, tag, out);

	if (!rc && ((uint8_t)out->data[start] & 0xf0) != 0x80 && (uint8_t)out->data[start] != 0xde &&
	    (uint8_t)out->data[start] != 0xdf) {
		out->len = start;
		return mb_fail(tag, MB_EINVAL, "%s: not a JSON object", what);
	}
	return rc;
}
