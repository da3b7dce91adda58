/*
 * mp.c - a bounded msgpack reader, and msgpack -> JSON text.
 *
 * Every msgpack buffer read from disk (an LMDB value, a journal payload)
 * passes through here, never through msgpack-c's unpacker, which has no
 * limits: a 5-byte input can make it reserve gigabytes, and a depth over 32
 * reads as out-of-memory.  This reader checks every count and length against
 * the bytes present and caps the depth, and it decodes in the same pass, so
 * validation costs nothing extra.  msgpack-c is used for writing.
 *
 * Accepted: nil, bool, int (fix/8/16/32/64, signed and unsigned), float
 * 32/64, str (fix/8/16/32), array and map (fix/16/32) with string keys.
 * bin and ext are never written by membank and are rejected.  A uint64
 * above INT64_MAX (a page property) is read by mp_skip() and mp_to_json()
 * only; mp_read_int() serves membank's own fields, which are int64.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static uint64_t be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Take @n bytes; MB_ECORRUPT when fewer remain. */
static int take(mp_reader *r, size_t n, const uint8_t **out)
{
	if ((size_t)(r->end - r->p) < n)
		return MB_ECORRUPT;
	*out = r->p;
	r->p += n;
	return 0;
}

int mp_peek(const mp_reader *r, mp_kind *kind)
{
	uint8_t c;

	if (r->p >= r->end)
		return MB_ECORRUPT;
	c = *r->p;
	if (c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3))
		*kind = MP_INT;
	else if (c <= 0x8f || c == 0xde || c == 0xdf)
		*kind = MP_MAP;
	else if (c <= 0x9f || c == 0xdc || c == 0xdd)
		*kind = MP_ARRAY;
	else if (c <= 0xbf || (c >= 0xd9 && c <= 0xdb))
		*kind = MP_STR;
	else if (c == 0xc0)
		*kind = MP_NIL;
	else if (c == 0xc2 || c == 0xc3)
		*kind = MP_BOOL;
	else if (c == 0xca || c == 0xcb)
		*kind = MP_FLOAT;
	else
		return MB_ECORRUPT;
	return 0;
}

static int read_count(mp_reader *r, uint8_t fix_lo, uint8_t fix_hi,
                      uint8_t c16, uint8_t c32, uint32_t *n, unsigned per_item)
{
	const uint8_t *p;
	uint8_t c;
	int rc;

	if ((rc = take(r, 1, &p)))
		return rc;
	c = *p;
	if (c >= fix_lo && c <= fix_hi)
		*n = c - fix_lo;
	else if (c == c16 && !(rc = take(r, 2, &p)))
		*n = (uint32_t)be(p, 2);
	else if (c == c32 && !(rc = take(r, 4, &p)))
		*n = (uint32_t)be(p, 4);
	else
		return MB_ECORRUPT;
	/* each item takes at least one byte: a count larger than the bytes
	 * left is a lie, whatever it claims */
	if ((uint64_t)*n * per_item > (uint64_t)(r->end - r->p))
		return MB_ECORRUPT;
	return 0;
}

int mp_read_array(mp_reader *r, uint32_t *n)
{
	return read_count(r, 0x90, 0x9f, 0xdc, 0xdd, n, 1);
}

int mp_read_map(mp_reader *r, uint32_t *n)
{
	return read_count(r, 0x80, 0x8f, 0xde, 0xdf, n, 2);
}

int mp_read_str(mp_reader *r, const char **s, uint32_t *len)
{
	const uint8_t *p;
	uint8_t c;
	int rc;

	if ((rc = take(r, 1, &p)))
		return rc;
	c = *p;
	if (c >= 0xa0 && c <= 0xbf)
		*len = c - 0xa0;
	else if (c == 0xd9 && !(rc = take(r, 1, &p)))
		*len = p[0];
	else if (c == 0xda && !(rc = take(r, 2, &p)))
		*len = (uint32_t)be(p, 2);
	else if (c == 0xdb && !(rc = take(r, 4, &p)))
		*len = (uint32_t)be(p, 4);
	else
		return MB_ECORRUPT;
	if ((rc = take(r, *len, &p)))
		return rc;
	*s = (const char *)p;
	return 0;
}

bool mp_read_nil(mp_reader *r)
{
	if (r->p < r->end && *r->p == 0xc0) {
		r->p++;
		return true;
	}
	return false;
}

int mp_read_bool(mp_reader *r, bool *v)
{
	if (r->p >= r->end || (*r->p != 0xc2 && *r->p != 0xc3))
		return MB_ECORRUPT;
	*v = *r->p++ == 0xc3;
	return 0;
}

int mp_read_int(mp_reader *r, int64_t *v)
{
	const uint8_t *p;
	unsigned n;
	uint8_t c;
	int rc;

	if ((rc = take(r, 1, &p)))
		return rc;
	c = *p;
	if (c <= 0x7f || c >= 0xe0) {
		*v = (int8_t)c;
		return 0;
	}
	if (c < 0xcc || c > 0xd3)
		return MB_ECORRUPT;
	n = 1u << ((c - 0xcc) & 3);
	if ((rc = take(r, n, &p)))
		return rc;
	if (c <= 0xcf) {
		uint64_t u = be(p, n);
		if (u > INT64_MAX)
			return MB_ECORRUPT;
		*v = (int64_t)u;
	} else {
		uint64_t u = be(p, n);
		unsigned shift = 64 - 8 * n;
		*v = shift ? (int64_t)(u << shift) >> shift : (int64_t)u;
	}
	return 0;
}

/* A uint64 above INT64_MAX at r->p: taken, true.  Anything else: false,
 * nothing taken. */
static bool read_big_uint(mp_reader *r, uint64_t *v)
{
	if (r->end - r->p < 9 || r->p[0] != 0xcf || !(r->p[1] & 0x80))
		return false;
	*v = be(r->p + 1, 8);
	r->p += 9;
	return true;
}

int mp_read_double(mp_reader *r, double *v)
{
	const uint8_t *p;
	mp_kind k;
	int rc;

	if ((rc = mp_peek(r, &k)))
		return rc;
	if (k == MP_INT) {
		int64_t i;
		if ((rc = mp_read_int(r, &i)))
			return rc;
		*v = (double)i;
		return 0;
	}
	if (k != MP_FLOAT || (rc = take(r, 1, &p)))
		return MB_ECORRUPT;
	if (*p == 0xca) {
		float f;
		uint32_t u;
		if ((rc = take(r, 4, &p)))
			return rc;
		u = (uint32_t)be(p, 4);
		memcpy(&f, &u, 4);
		*v = f;
	} else {
		uint64_t u;
		if ((rc = take(r, 8, &p)))
			return rc;
		u = be(p, 8);
		memcpy(v, &u, 8);
	}
	return isfinite(*v) ? 0 : MB_ECORRUPT;
}

static int skip(mp_reader *r, unsigned depth, unsigned limit);

/* One value of checked bytes (mp_reader.checked): its extent only, found
 * without recursion; the kinds are those skip() takes. */
static int skip_checked(mp_reader *r)
{
	uint64_t left = 1;   /* values still to pass */

	while (left--) {
		const uint8_t *p;
		uint64_t n = 0, items = 0;
		uint8_t c;

		if (take(r, 1, &p))
			return MB_ECORRUPT;
		c = *p;
		if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
			continue;
		if (c >= 0xa0 && c <= 0xbf)
			n = c & 0x1fu;
		else if (c >= 0x90 && c <= 0x9f)
			items = c & 0x0fu;
		else if (c >= 0x80 && c <= 0x8f)
			items = 2u * (c & 0x0fu);
		else if (c >= 0xcc && c <= 0xd3)
			n = 1u << ((c - 0xcc) & 3);
		else if (c == 0xca || c == 0xcb)
			n = c == 0xca ? 4 : 8;
		else if (c >= 0xd9 && c <= 0xdb) {
			unsigned w = 1u << (c - 0xd9);
			if (take(r, w, &p))
				return MB_ECORRUPT;
			n = be(p, w);
		} else if (c >= 0xdc && c <= 0xdf) {
			unsigned w = c & 1 ? 4 : 2;
			if (take(r, w, &p))
				return MB_ECORRUPT;
			items = be(p, w) * (c >= 0xde ? 2u : 1u);
		} else
			return MB_ECORRUPT;
		/* every value takes a byte at least: a count beyond the bytes
		 * left is damage, and bounds @left */
		if (take(r, n, &p) || items > (uint64_t)(r->end - r->p))
			return MB_ECORRUPT;
		left += items;
	}
	return 0;
}

int mp_skip(mp_reader *r, unsigned depth)
{
	return r->checked ? skip_checked(r) : skip(r, depth, MB_MAX_DEPTH);
}

static int skip(mp_reader *r, unsigned depth, unsigned limit)
{
	uint64_t u;
	uint32_t n, len;
	const char *s;
	int64_t i;
	double d;
	bool b;
	mp_kind k;
	int rc;

	if ((rc = mp_peek(r, &k)))
		return rc;
	switch (k) {
	case MP_NIL: r->p++; return 0;
	case MP_BOOL: return mp_read_bool(r, &b);
	case MP_INT: return read_big_uint(r, &u) ? 0 : mp_read_int(r, &i);
	case MP_FLOAT: return mp_read_double(r, &d);
	case MP_STR:
		/* text read from disk is checked like text from the API */
		if ((rc = mp_read_str(r, &s, &len)))
			return rc;
		return mb_utf8_valid(s, len) ? 0 : MB_ECORRUPT;
	case MP_ARRAY:
	case MP_MAP:
		if (depth >= limit)
			return MB_ECORRUPT;
		rc = k == MP_MAP ? mp_read_map(r, &n) : mp_read_array(r, &n);
		for (uint32_t j = 0; !rc && j < n; j++) {
			if (k == MP_MAP && (rc = mp_read_str(r, &s, &len)))
				break;
			if (k == MP_MAP && !mb_utf8_valid(s, len)) {
				rc = MB_ECORRUPT;
				break;
			}
			rc = skip(r, depth + 1, limit);
		}
		return rc;
	}
	return MB_ECORRUPT;
}

int mp_check(const void *data, size_t len)
{
	return mp_check_wrapped(data, len, 0);
}

int mp_check_wrapped(const void *data, size_t len, unsigned wrappers)
{
	mp_reader r = { data, (const uint8_t *)data + len, false };
	int rc = skip(&r, 0, MB_MAX_DEPTH + wrappers);

	return rc ? rc : (r.p == r.end ? 0 : MB_ECORRUPT);
}

/* ----------------------------------------------------------- to JSON */

/* One pass over the text: plain bytes go eight at a time, escapes as met.
 * Text from the store was valid UTF-8 when it was written; it is checked
 * again (damage on disk is MB_ECORRUPT, not bad JSON) only when a byte from
 * 0x80 was passed, so ASCII text (most) costs no second walk.  On failure
 * @b is as before. */
int json_add_str(mb_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, run = 0, start = b->len;
	uint64_t high = 0, w;
	int rc;

	buf_addc(b, '"');
	for (;;) {
		unsigned char c;
		char esc[7] = "\\u00";

		while (len - i >= 8 && (memcpy(&w, s + i, 8), !mb_json_stops8(w))) {
			high |= w;
			i += 8;
		}
		if (i == len)
			break;
		c = (unsigned char)s[i++];
		high |= c;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		buf_add(b, s + run, i - 1 - run);
		run = i;
		switch (c) {
		case '"': buf_adds(b, "\\\""); break;
		case '\\': buf_adds(b, "\\\\"); break;
		case '\n': buf_adds(b, "\\n"); break;
		case '\r': buf_adds(b, "\\r"); break;
		case '\t': buf_adds(b, "\\t"); break;
		case '\b': buf_adds(b, "\\b"); break;
		case '\f': buf_adds(b, "\\f"); break;
		default:
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			buf_add(b, esc, 6);
		}
	}
	buf_add(b, s + run, len - run);
	rc = buf_addc(b, '"');
	if ((high & 0x8080808080808080ull) && !mb_utf8_valid(s, len)) {
		b->len = start;
		if (b->data)
			b->data[start] = '\0';
		return MB_ECORRUPT;
	}
	return rc;
}

/* Python's repr() rule: the fewest significant digits that read back as
 * the very same double (17 always do); then ".0" when the text would read
 * as an integer (1.0, -0.0).  A normal double is told apart from every
 * other by 15 digits, so %.15g is already the shortest when it reads back
 * (it drops trailing zeros); a subnormal has fewer digits of precision and
 * is tried from one digit up (5e-324).  printf and strtod run in the C
 * locale so the point is '.', whatever the process's locale. */
/* The same text without printf and strtod, for most doubles JSON carries:
 * when d = m / 10^k exactly for an integer m < 10^15, with the smallest
 * such k, and 1e-4 <= |d| < 1e15.  Then the decimal m.10^-k reads back as
 * d (m and 10^k are exact doubles, so the division rounds once, as strtod
 * does: Clinger), and
 * a decimal of at most 15 digits that reads back as d is the nearest
 * 15-digit decimal to d, which %.15g prints: 15-digit decimals near d are
 * at least 10^-15 |d| apart, and reading back lands within 2^-53 |d|.
 * That range is where %g writes it without an exponent (the first digit's
 * power of ten from -4 to 14), and the smallest k leaves no trailing zero
 * to strip.  False: printf's way. */
static bool fast_double(double d, char out[40])
{
	double a = fabs(d);
	char dig[20], *p = out;
	uint64_t m = 0;
	int k, n = 0;

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
	return false;     /* the division must round to double once */
#endif
	if (!(a >= 1e-4 && a < 1e15))   /* NaN, infinities, zeros fail too */
		return false;
	for (k = 0; k < 20; k++) {
		double t = a * mb_pow10[k];

		if (t >= 1e15)
			return false;
		m = (uint64_t)(t + 0.5);
		if ((double)m / mb_pow10[k] == a)
			break;
	}
	if (k == 20)
		return false;
	do
		dig[n++] = (char)('0' + m % 10);
	while (m /= 10);
	if (d < 0)
		*p++ = '-';
	if (n <= k)
		*p++ = '0';
	for (int i = n; i-- > k;)
		*p++ = dig[i];
	*p++ = '.';
	if (!k)
		*p++ = '0';       /* Python's 1.0 */
	for (int i = k; i-- > 0;)
		*p++ = i < n ? dig[i] : '0';
	*p = '\0';
	return true;
}

int json_add_double(mb_buf *b, double d)
{
	locale_t c;
	locale_t old;
	char tmp[40];

	if (fast_double(d, tmp))
		return buf_adds(b, tmp);
	c = mb_c_locale();
	old = c ? uselocale(c) : (locale_t)0;
	for (int digits = fpclassify(d) == FP_SUBNORMAL ? 1 : 15; digits <= 17; digits++) {
		snprintf(tmp, sizeof tmp, "%.*g", digits, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	if (c)
		uselocale(old);
	if (!strpbrk(tmp, ".eE"))
		strcat(tmp, ".0");
	return buf_adds(b, tmp);
}

/* Decimal digits of @v, with '-' before when @neg; printf's "%llu" and
 * "%lld" cost more than a page's other work together. */
static int add_decimal(mb_buf *b, uint64_t v, bool neg)
{
	char tmp[24], *p = tmp + sizeof tmp;

	do
		*--p = (char)('0' + v % 10);
	while (v /= 10);
	if (neg)
		*--p = '-';
	return buf_add(b, p, (size_t)(tmp + sizeof tmp - p));
}

int json_add_int(mb_buf *b, int64_t v)
{
	/* the magnitude as unsigned: INT64_MIN has no positive int64 */
	return add_decimal(b, v < 0 ? -(uint64_t)v : (uint64_t)v, v < 0);
}

static int json_add_uint(mb_buf *b, uint64_t v)
{
	return add_decimal(b, v, false);
}

static int container_to_json(mp_reader *r, mb_buf *b, unsigned depth, bool map)
{
	uint32_t n, len;
	const char *s;
	int rc;

	if (depth >= MB_MAX_DEPTH)
		return MB_ECORRUPT;
	rc = map ? mp_read_map(r, &n) : mp_read_array(r, &n);
	buf_addc(b, map ? '{' : '[');
	for (uint32_t j = 0; !rc && j < n; j++) {
		if (j)
			buf_addc(b, ',');
		if (map && !(rc = mp_read_str(r, &s, &len))) {
			rc = json_add_str(b, s, len);
			buf_addc(b, ':');
		}
		if (!rc)
			rc = mp_to_json(r, b, depth + 1);
	}
	if (!rc)
		buf_addc(b, map ? '}' : ']');
	return rc;
}

int mp_to_json(mp_reader *r, mb_buf *b, unsigned depth)
{
	uint64_t u;
	uint32_t len;
	const char *s;
	int64_t i;
	double d;
	bool v;
	mp_kind k;
	int rc;

	if ((rc = mp_peek(r, &k)))
		return rc;
	switch (k) {
	case MP_NIL: r->p++; rc = buf_adds(b, "null"); break;
	case MP_BOOL:
		if (!(rc = mp_read_bool(r, &v)))
			rc = buf_adds(b, v ? "true" : "false");
		break;
	case MP_INT:
		if (read_big_uint(r, &u))
			rc = json_add_uint(b, u);
		else if (!(rc = mp_read_int(r, &i)))
			rc = json_add_int(b, i);
		break;
	case MP_FLOAT:
		if (!(rc = mp_read_double(r, &d)))
			rc = json_add_double(b, d);
		break;
	case MP_STR:
		if (!(rc = mp_read_str(r, &s, &len)))
			rc = json_add_str(b, s, len);
		break;
	case MP_ARRAY: return container_to_json(r, b, depth, false);
	case MP_MAP: return container_to_json(r, b, depth, true);
	}
	return rc ? rc : (b->failed ? MB_ENOMEM : 0);
}
