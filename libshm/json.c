/*
 * json.c - JSON text in: checked against our bounds, parsed by cJSON, and
 * packed as msgpack by msgpack-c.
 *
 * cJSON's own nesting limit (1000) is compiled into Debian's library and it
 * does not check UTF-8, so the text is scanned first: size, UTF-8, depth,
 * and "\u0000" (which cJSON would silently cut a string at).  Only then does
 * cJSON see it, through cJSON_ParseWithLengthOpts (never a NUL-terminated
 * read past the buffer).  cJSON_Utils is never used on outside input.
 *
 * cJSON keeps every number as a double, so it only reads documents whose
 * numbers are counts and bounded settings (restore's sync, error and
 * config files).  Page properties, whose numbers must stay exact, go
 * through jsonmp.c instead.
 */
#include <cjson/cJSON.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, <= U+10FFFF. */
size_t mb_utf8_bad_at(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		unsigned n, lo = 0x80, hi = 0xbf;
		/* runs of ASCII, most of any JSON, eight bytes at a time */
		while (len - i >= 8) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if (w & 0x8080808080808080ull)
				break;
			i += 8;
		}
		if (i >= len)
			break;
		if ((c = s[i]) < 0x80) { i++; continue; }
		if (c >= 0xc2 && c <= 0xdf) n = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0) lo = 0xa0;
			if (c == 0xed) hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0) lo = 0x90;
			if (c == 0xf4) hi = 0x8f;
		} else
			return i;
		if (len - i <= n)
			return i;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return i;
		for (unsigned k = 2; k <= n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return i;
		i += n + 1;
	}
	return (size_t)-1;
}

bool mb_utf8_valid(const char *s, size_t len)
{
	return mb_utf8_bad_at(s, len) == (size_t)-1;
}

/* Depth of brackets outside strings, and \u0000 inside them. */
static int scan_text(const char *s, size_t len, const char *what, const void *tag)
{
	unsigned depth = 0;
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\' && i + 1 < len) {
				if (s[i + 1] == 'u' && len - i >= 6 && !memcmp(s + i + 2, "0000", 4))
					return mb_fail(tag, MB_EINVAL,
					    "%s: \\u0000 at byte %zu is not supported", what, i);
				i++;
			} else if (c == '"')
				in_str = false;
		} else if (c == '"')
			in_str = true;
		else if (c == '{' || c == '[') {
			if (++depth > MB_MAX_DEPTH)
				return mb_fail(tag, MB_EINVAL,
				    "%s: nested deeper than %u at byte %zu", what, MB_MAX_DEPTH, i);
		} else if ((c == '}' || c == ']') && depth)
			depth--;
	}
	return 0;
}

int json_parse(const char *s, size_t len, size_t max, const char *what,
               const void *tag, cJSON **out)
{
	const char *end = NULL;
	size_t bad;
	cJSON *j;
	int rc;

	*out = NULL;
	if (!s)
		return mb_fail(tag, MB_EINVAL, "%s: missing", what);
	if (len == (size_t)-1)
		len = strnlen(s, max + 1);
	if (len > max)
		return mb_fail(tag, MB_EINVAL, "%s: larger than the limit of %zu bytes", what, max);
	if ((bad = mb_utf8_bad_at(s, len)) != (size_t)-1)
		return mb_fail(tag, MB_EINVAL, "%s: invalid UTF-8 at byte %zu", what, bad);
	if ((rc = scan_text(s, len, what, tag)))
		return rc;
	/* cJSON says nothing of why it failed, and points at byte 0 when its
	 * first allocation fails; malloc() sets errno, nothing else it calls
	 * sets ENOMEM */
	errno = 0;
	j = cJSON_ParseWithLengthOpts(s, len, &end, false);
	if (!j) {
		if (errno == ENOMEM || !end || end < s || end > s + len)
			return mb_fail(tag, MB_ENOMEM, "%s: out of memory parsing", what);
		return mb_fail(tag, MB_EINVAL, "%s: invalid JSON at byte %zu", what,
		               (size_t)(end - s));
	}
	while (end < s + len && strchr(" \t\r\n", *end) && *end)
		end++;
	if (end != s + len) {
		cJSON_Delete(j);
		return mb_fail(tag, MB_EINVAL, "%s: unexpected text after the JSON value at byte %zu",
		               what, (size_t)(end - s));
	}
	*out = j;
	return 0;
}

bool json_whole(const cJSON *j, double max, uint64_t *v)
{
	double d;

	if (!cJSON_IsNumber(j))
		return false;
	d = j->valuedouble;
	if (max > MB_JSON_WHOLE_MAX)
		max = MB_JSON_WHOLE_MAX;
	/* the comparisons are false for NaN */
	if (!(d >= 0 && d <= max && d == (double)(uint64_t)d))
		return false;
	*v = (uint64_t)d;
	return true;
}

static int buf_write(void *data, const char *p, size_t n)
{
	return buf_add(data, p, n) ? -1 : 0;
}

void mp_packer_init(msgpack_packer *pk, mb_buf *b)
{
	msgpack_packer_init(pk, b, buf_write);
}
