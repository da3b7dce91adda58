/*
 * internal.h - what the parts of libshm share.  Nothing here is public.
 */
#ifndef MEMBANK_INTERNAL_H
#define MEMBANK_INTERNAL_H

#include <errno.h>
#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "membank.h"

/* ------------------------------------------------------------ errors.c */

/* Record the calling thread's message for handle @tag (NULL: no handle)
 * and return @code, so that failures read "return mb_fail(...)". */
int mb_fail(const void *tag, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void mb_clear_error(const void *tag);
/* snprintf for paths: -1 (and an empty string) when it does not fit. */
int mb_pathf(char *out, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A number that changes in every child after fork() (a pthread_atfork
 * handler counts forks), so a handle can tell it crossed one without a
 * getpid() system call on every operation. */
unsigned mb_fork_generation(void);
/* An errno value as an MB_E* code. */
int mb_errno_code(int err);

/* open(), but never onto descriptor 0, 1 or 2 (journal/fd.c says why):
 * every file the library opens goes through it.  -1 with errno. */
int mb_open_fd(const char *path, int flags, unsigned mode);

/* --------------------------------------------------------------- buf.c */

/* A growable byte buffer; zero-initialise.  After an allocation failure
 * every later add fails too and `failed` stays set, so a sequence of adds
 * can be checked once at its end. */
typedef struct mb_buf {
	char *data;
	size_t len, cap;
	bool failed;
} mb_buf;

int buf_reserve(mb_buf *b, size_t more);
int buf_grow_add(mb_buf *b, const void *p, size_t n);
int buf_adds(mb_buf *b, const char *s);

/* The adds that fit in place are inline: JSON is built a character at a
 * time (a snapshot formats every page), and three calls a character cost
 * more than the character.  The contents stay NUL-terminated. */
static inline int buf_add(mb_buf *b, const void *p, size_t n)
{
	if (b->failed || n >= b->cap - b->len)   /* cap > len once allocated; 0 - 0 before */
		return buf_grow_add(b, p, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static inline int buf_addc(mb_buf *b, char c)
{
	if (b->failed || b->cap - b->len < 2)
		return buf_grow_add(b, &c, 1);
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
	return 0;
}
void buf_free(mb_buf *b);
/* Hand the NUL-terminated contents to the caller (free()), reset @b. */
char *buf_take(mb_buf *b, size_t *len);

/* 10^0 .. 10^22: the powers of ten a double holds exactly (Clinger's fast
 * paths, jsonmp.c and mp.c). */
extern const double mb_pow10[23];

/* The bytes of the 8-byte word @w (its first byte the lowest, on a
 * little-endian machine) that end a plain run of JSON string text ('"',
 * '\\' or a control character), as their high bit; a bit may also be set
 * above the lowest hit (a borrow), never without one, so "none" and the
 * lowest bit are exact.  Text has long runs without one: the scanners of
 * strings skip eight bytes at a time with it. */
static inline uint64_t mb_json_stops8(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');

	return (((q - ones) & ~q) | ((bs - ones) & ~bs) | ((w - ones * 0x20) & ~w)) & high;
}

/* ----------------------------------------------------------- timefmt.c */

#define MB_TIME_LEN 28 /* "2026-11-26T00:29:55.123456Z" and its NUL */
int64_t mb_now_us(void);
void mb_format_time(int64_t us, char out[MB_TIME_LEN]);
int mb_parse_time(const char *s, size_t len, int64_t *us);

/* ---------------------------------------------------------------- mp.c */

/* @checked: the bytes were checked whole before (rec_decode), so a walk
 * over them (mp_skip, a record's text fields) only finds extents, still
 * within [p, end): a batch's operations are checked once, not once per
 * walk. */
typedef struct mp_reader {
	const uint8_t *p, *end;
	bool checked;
} mp_reader;

typedef enum mp_kind {
	MP_NIL, MP_BOOL, MP_INT, MP_FLOAT, MP_STR, MP_ARRAY, MP_MAP
} mp_kind;

/* Each returns 0 or MB_ECORRUPT (wrong type, or a length or count that the
 * bytes left cannot hold); a failed read may have consumed bytes. */
int mp_peek(const mp_reader *r, mp_kind *kind);
int mp_read_array(mp_reader *r, uint32_t *n);
int mp_read_map(mp_reader *r, uint32_t *n);
int mp_read_str(mp_reader *r, const char **s, uint32_t *len);
bool mp_read_nil(mp_reader *r);
int mp_read_bool(mp_reader *r, bool *v);
int mp_read_int(mp_reader *r, int64_t *v);
int mp_read_double(mp_reader *r, double *v);  /* int or float, finite */
/* Skip one whole value, checking it; depth counts containers. */
int mp_skip(mp_reader *r, unsigned depth);
/* The buffer holds exactly one valid value. */
int mp_check(const void *data, size_t len);
/* The same for a value that wraps documents @wrappers containers deep (a
 * record payload around properties): they may still nest MB_MAX_DEPTH. */
int mp_check_wrapped(const void *data, size_t len, unsigned wrappers);
/* Append one value as JSON text; strings must be valid UTF-8. */
int mp_to_json(mp_reader *r, mb_buf *b, unsigned depth);

int json_add_str(mb_buf *b, const char *s, size_t len);
int json_add_int(mb_buf *b, int64_t v);
/* The shortest text that reads back as the same double, with '.' or an
 * exponent so that it reads back as a float: 1.0, -0.0, 1e+300. */
int json_add_double(mb_buf *b, double d);

/* -------------------------------------------------------------- json.c */

struct cJSON;
struct msgpack_packer;

size_t mb_utf8_bad_at(const char *s, size_t len); /* (size_t)-1: valid */
bool mb_utf8_valid(const char *s, size_t len);
/* Parse JSON text of @len bytes ((size_t)-1: NUL-terminated) after checking
 * size against @max, UTF-8 and depth; @what names it in messages.  Numbers
 * become doubles: for documents of counts and settings only. */
int json_parse(const char *s, size_t len, size_t max, const char *what,
               const void *tag, struct cJSON **out);
/* A whole number from 0 to @max (at most MB_JSON_WHOLE_MAX) into *v; false
 * for anything else: not a number, negative, fractional, beyond @max.
 * cJSON keeps numbers as doubles, which hold every integer text up to
 * 2^53 - 1 exactly; an integer text beyond rounds to >= 2^53 and is refused
 * here rather than read as a neighbour (nor cast to uint64_t beyond its
 * range, which is undefined). */
#define MB_JSON_WHOLE_MAX 9007199254740991.0
bool json_whole(const struct cJSON *j, double max, uint64_t *v);
void mp_packer_init(struct msgpack_packer *pk, mb_buf *b);

/* ------------------------------------------------------------ jsonmp.c */

/* JSON text of @len bytes ((size_t)-1: NUL-terminated) -> one msgpack value
 * appended to @out, numbers exact (see jsonmp.c); checked like json_parse
 * with containers nested at most @max_depth.  On failure @out is as before. */
int json_to_mp(const char *s, size_t len, size_t max, unsigned max_depth, const char *what,
               const void *tag, mb_buf *out);
/* One JSON value at the start of the @avail bytes at @s (whitespace before
 * it skipped), what follows it left alone: its msgpack appended to @out and
 * the bytes it took in *@used.  A value that does not end within @max bytes
 * is refused as larger than the limit.  A file of many values (a snapshot's
 * pages) is read in one pass so, with no scan for each value's end first. */
int json_prefix_to_mp(const char *s, size_t avail, size_t max, unsigned max_depth,
                      const char *what, const void *tag, mb_buf *out, size_t *used);
/* The same for a JSON object, nested at most MB_MAX_DEPTH. */
int json_object_to_mp(const char *s, size_t len, size_t max, const char *what,
                      const void *tag, mb_buf *out);
/* The C locale (NULL if it could not be made): numbers are read and
 * written with '.' whatever setlocale() the process made. */
locale_t mb_c_locale(void);

#endif /* MEMBANK_INTERNAL_H */
