/*
 * state.c - loading and storing the state records of state.h.
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "bank.h"
#include "state.h"

void st_be64(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		out[i] = (uint8_t)v;
}

uint64_t st_get_be64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

void st_pack_time(msgpack_packer *pk, int64_t t)
{
	if (t == MB_NEVER)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_int64(pk, t);
}

int st_read_time(mp_reader *r, int64_t *t)
{
	if (mp_read_nil(r)) {
		*t = MB_NEVER;
		return 0;
	}
	return mp_read_int(r, t);
}

static int read_u64(mp_reader *r, uint64_t *v)
{
	int64_t i;

	if (mp_read_int(r, &i) || i < 0)
		return MB_ECORRUPT;
	*v = (uint64_t)i;
	return 0;
}

/* The whole value was read: bytes after the document are damage. */
static int at_end(const mp_reader *r)
{
	return r->p == r->end ? 0 : MB_ECORRUPT;
}

/* Copy a string or nil into a fixed field; nil gives "" and *present false. */
static int read_field(mp_reader *r, char *out, size_t cap, bool *present)
{
	const char *s;
	uint32_t len;

	if (mp_read_nil(r)) {
		out[0] = '\0';
		if (present)
			*present = false;
		return 0;
	}
	if (mp_read_str(r, &s, &len) || len >= cap)
		return MB_ECORRUPT;
	memcpy(out, s, len);
	out[len] = '\0';
	if (present)
		*present = true;
	return 0;
}

/* A meta value @v as a reader past its array head of @fields fields (or
 * up to @older fewer, from older stores). */
static int meta_open(kv_val v, mp_reader *r, uint32_t fields, uint32_t older, uint32_t *n)
{
	*r = (mp_reader){ v.data, (const uint8_t *)v.data + v.len, false };
	if (mp_read_array(r, n) || *n > fields || *n < fields - older)
		return MB_ECORRUPT;
	return 0;
}

/* A meta record of @fields fields (or, with @older, that many fewer). */
static int meta_get_n(kv_txn *t, const char *name, mp_reader *r, uint32_t fields,
                      uint32_t older, uint32_t *n)
{
	kv_val v;
	int rc = kv_get(t, KV_META, (kv_val){ name, strlen(name) }, &v);

	return rc ? rc : meta_open(v, r, fields, older, n);
}

static int meta_get(kv_txn *t, const char *name, mp_reader *r, uint32_t fields)
{
	uint32_t n;

	return meta_get_n(t, name, r, fields, 0, &n);
}

static int meta_put(kv_txn *t, const char *name, mb_buf *b)
{
	int rc = b->failed ? MB_ENOMEM : kv_put(t, KV_META, (kv_val){ name, strlen(name) },
	                                        (kv_val){ b->data, b->len });
	buf_free(b);
	return rc;
}

int st_sync_load(kv_txn *t, st_sync *s)
{
	mp_reader r;
	int rc = meta_get(t, "sync", &r, 6);

	memset(s, 0, sizeof *s);
	s->last_success = s->last_sync = MB_NEVER;
	if (rc == MB_ENOTFOUND)
		return 0;
	if (rc || read_field(&r, s->status, sizeof s->status, &s->has_status) ||
	    st_read_time(&r, &s->last_success) || st_read_time(&r, &s->last_sync) ||
	    read_u64(&r, &s->errors) || read_u64(&r, &s->successes) ||
	    read_u64(&r, &s->hist_next) || at_end(&r))
		return rc ? rc : MB_ECORRUPT;
	return 0;
}

int st_sync_store(kv_txn *t, const st_sync *s)
{
	mb_buf b = { 0 };
	msgpack_packer pk;

	mp_packer_init(&pk, &b);
	msgpack_pack_array(&pk, 6);
	if (s->has_status)
		msgpack_pack_str_with_body(&pk, s->status, strlen(s->status));
	else
		msgpack_pack_nil(&pk);
	st_pack_time(&pk, s->last_success);
	st_pack_time(&pk, s->last_sync);
	msgpack_pack_uint64(&pk, s->errors);
	msgpack_pack_uint64(&pk, s->successes);
	msgpack_pack_uint64(&pk, s->hist_next);
	return meta_put(t, "sync", &b);
}

int st_errors_load(kv_txn *t, st_errors *s)
{
	mp_reader r;
	uint32_t n;
	int rc = meta_get_n(t, "errors", &r, 7, 1, &n);

	memset(s, 0, sizeof *s);
	s->last_ts = MB_NEVER;
	if (rc == MB_ENOTFOUND)
		return 0;
	if (rc || read_u64(&r, &s->total) || read_u64(&r, &s->resolved) ||
	    read_u64(&r, &s->hist_next) || st_read_time(&r, &s->last_ts) ||
	    read_field(&r, s->last_type, sizeof s->last_type, NULL) ||
	    read_field(&r, s->last_msg, sizeof s->last_msg, NULL) ||
	    (n == 7 && read_u64(&r, &s->types_dropped)) || at_end(&r))
		return rc ? rc : MB_ECORRUPT;
	return 0;
}

int st_errors_store(kv_txn *t, const st_errors *s)
{
	mb_buf b = { 0 };
	msgpack_packer pk;

	mp_packer_init(&pk, &b);
	msgpack_pack_array(&pk, 7);
	msgpack_pack_uint64(&pk, s->total);
	msgpack_pack_uint64(&pk, s->resolved);
	msgpack_pack_uint64(&pk, s->hist_next);
	st_pack_time(&pk, s->last_ts);
	msgpack_pack_str_with_body(&pk, s->last_type, strlen(s->last_type));
	msgpack_pack_str_with_body(&pk, s->last_msg, strlen(s->last_msg));
	msgpack_pack_uint64(&pk, s->types_dropped);
	return meta_put(t, "errors", &b);
}

int st_pages_load(kv_txn *t, int64_t *last_updated)
{
	mp_reader r;
	int rc = meta_get(t, "pages", &r, 1);

	*last_updated = MB_NEVER;
	if (rc == MB_ENOTFOUND)
		return 0;
	return rc ? rc : (st_read_time(&r, last_updated) || at_end(&r)) ? MB_ECORRUPT : 0;
}

int st_pages_store(kv_txn *t, int64_t last_updated)
{
	mb_buf b = { 0 };
	msgpack_packer pk;

	mp_packer_init(&pk, &b);
	msgpack_pack_array(&pk, 1);
	st_pack_time(&pk, last_updated);
	return meta_put(t, "pages", &b);
}

int st_turn_load(kv_txn *t, uint64_t *seq, uint64_t *nonce)
{
	mp_reader r;
	int rc = meta_get(t, "turn", &r, 2);

	*seq = *nonce = 0;
	if (rc == MB_ENOTFOUND)
		return 0;
	if (rc || read_u64(&r, seq) || read_u64(&r, nonce) || at_end(&r))
		return rc ? rc : MB_ECORRUPT;
	return 0;
}

int st_turn_store(kv_txn *t, uint64_t seq, uint64_t nonce)
{
	mb_buf b = { 0 };
	msgpack_packer pk;

	mp_packer_init(&pk, &b);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint64(&pk, seq);
	msgpack_pack_uint64(&pk, nonce);
	return meta_put(t, "turn", &b);
}

int st_removed_load(kv_txn *t, st_removed *s)
{
	mp_reader r;
	int rc = meta_get(t, "removed", &r, 2);

	memset(s, 0, sizeof *s);
	if (rc == MB_ENOTFOUND)
		return 0;
	if (rc || read_u64(&r, &s->evicted) || read_u64(&r, &s->purged) || at_end(&r))
		return rc ? rc : MB_ECORRUPT;
	return 0;
}

int st_removed_store(kv_txn *t, const st_removed *s)
{
	mb_buf b = { 0 };
	msgpack_packer pk;

	mp_packer_init(&pk, &b);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint64(&pk, s->evicted);
	msgpack_pack_uint64(&pk, s->purged);
	return meta_put(t, "removed", &b);
}

int st_removed_add(kv_txn *t, uint64_t evicted, uint64_t purged)
{
	st_removed s;
	int rc;

	if (!evicted && !purged)
		return 0;
	if ((rc = st_removed_load(t, &s)))
		return rc;
	s.evicted += evicted;
	s.purged += purged;
	return st_removed_store(t, &s);
}

/* The head ("jend", see state.h), read once per transaction: every write
 * loads it, stamps its record after the clock, advances the clock and
 * stores the end, so one get and one put of one key serve them all.  Kept
 * in the transaction's scratch (kv.h), which a kv_drop() clears, and which
 * the next write transaction of this process inherits when no other commit
 * came between (kv.h, CARRY): then the head is not read at all.  It equals
 * the stored head, but for a clock advanced (st_clock_advance) in a
 * transaction that committed without storing the head, which every
 * writer does store; were one not to, the carried clock would be later
 * than the stored one, as if it had: a floor for later record times. */
typedef struct head_cache {
	bool loaded;
	st_head h;
} head_cache;

_Static_assert(sizeof(head_cache) <= KV_TXN_SCRATCH, "the head fits the scratch");

static int head_get(kv_txn *t, head_cache **out)
{
	head_cache *c = kv_txn_scratch(t);
	mp_reader r;
	int rc;

	*out = c;
	if (c->loaded)
		return 0;
	memset(c, 0, sizeof *c);
	c->h.clock = MB_NEVER;
	rc = meta_get(t, "jend", &r, 4);
	if (rc && rc != MB_ENOTFOUND)
		return rc;
	if (!rc && (read_u64(&r, &c->h.segment) || read_u64(&r, &c->h.offset) ||
	            read_u64(&r, &c->h.seq) || st_read_time(&r, &c->h.clock) || at_end(&r)))
		return MB_ECORRUPT;
	c->loaded = true;
	return 0;
}

int st_head_load(kv_txn *t, st_head *h)
{
	head_cache *c;
	int rc = head_get(t, &c);

	*h = c->h;
	return rc;
}

/* Every write stores the head: packed on the stack, at most 1 + 4 x 9
 * bytes. */
typedef struct fixbuf {
	uint8_t d[48];
	size_t len;
} fixbuf;

static int fix_write(void *data, const char *buf, size_t len)
{
	fixbuf *f = data;

	if (len > sizeof f->d - f->len)
		return -1;
	memcpy(f->d + f->len, buf, len);
	f->len += len;
	return 0;
}

int st_head_store(kv_txn *t, uint64_t segment, uint64_t offset, uint64_t seq)
{
	fixbuf f = { .len = 0 };
	msgpack_packer pk;
	head_cache *c;
	int rc = head_get(t, &c);

	if (rc)
		return rc;
	c->h.segment = segment;
	c->h.offset = offset;
	c->h.seq = seq;
	msgpack_packer_init(&pk, &f, fix_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint64(&pk, segment);
	msgpack_pack_uint64(&pk, offset);
	msgpack_pack_uint64(&pk, seq);
	st_pack_time(&pk, c->h.clock);
	return kv_put(t, KV_META, (kv_val){ "jend", 4 }, (kv_val){ f.d, f.len });
}

int bank_jend_load(kv_txn *t, mbj_pos *pos)
{
	st_head h;
	int rc = st_head_load(t, &h);

	*pos = (mbj_pos){ h.segment, h.offset, h.seq };
	return rc;
}

int bank_jend_store(kv_txn *t, const mbj_pos *pos)
{
	return st_head_store(t, pos->segment, pos->offset, pos->seq);
}

int st_clock_load(kv_txn *t, int64_t *ts)
{
	head_cache *c;
	int rc = head_get(t, &c);

	if (rc)
		return rc;
	if (c->h.clock == MB_NEVER)
		return st_pages_load(t, ts);
	*ts = c->h.clock;
	return 0;
}

/* Once advanced, the clock is recorded even when the pages' last_updated
 * stood in for it (a page write: they are equal), so that later loads
 * need no second record. */
int st_clock_advance(kv_txn *t, int64_t ts)
{
	head_cache *c;
	int64_t now;
	int rc = st_clock_load(t, &now);

	if (rc)
		return rc;
	head_get(t, &c);   /* loaded by st_clock_load */
	c->h.clock = ts > now ? ts : now;
	return 0;
}

int st_errtype_decode(kv_val v, st_errtype *s)
{
	mp_reader r = { v.data, (const uint8_t *)v.data + v.len, false };
	uint32_t n;

	s->last_seen = MB_NEVER;
	if (mp_read_array(&r, &n) || n < 4 || n > 5 || read_u64(&r, &s->count) ||
	    read_u64(&r, &s->resolved) || read_field(&r, s->steps, sizeof s->steps, NULL) ||
	    st_read_time(&r, &s->resolved_at) || s->resolved > s->count ||
	    (n == 5 && st_read_time(&r, &s->last_seen)) || at_end(&r))
		return MB_ECORRUPT;
	return 0;
}

/* last_seen alone, without copying the steps. */
static int errtype_last_seen(kv_val v, int64_t *seen)
{
	mp_reader r = { v.data, (const uint8_t *)v.data + v.len, false };
	uint32_t n;

	*seen = MB_NEVER;
	if (mp_read_array(&r, &n) || n < 4 || n > 5)
		return MB_ECORRUPT;
	for (uint32_t i = 0; i < 4; i++)
		if (mp_skip(&r, 0))
			return MB_ECORRUPT;
	return (n == 5 && st_read_time(&r, seen)) || at_end(&r) ? MB_ECORRUPT : 0;
}

typedef struct seen_type {
	int64_t seen;
	uint32_t len;
	char type[MB_MAX_TYPE_BYTES];
} seen_type;

/* Oldest first; ties in key order (memcmp, then length, as LMDB sorts). */
static int cmp_seen(const void *a, const void *b)
{
	const seen_type *x = a, *y = b;
	uint32_t n = x->len < y->len ? x->len : y->len;
	int c;

	if (x->seen != y->seen)
		return x->seen < y->seen ? -1 : 1;
	c = memcmp(x->type, y->type, n);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* One pass however many go (a bank from before the bound may hold many
 * more than are kept). */
int st_errtypes_trim(kv_txn *t, uint64_t keep, uint64_t *dropped)
{
	seen_type *all;
	uint64_t n, i = 0, excess;
	kv_cursor *c;
	kv_val k, v;
	int rc;

	if ((rc = kv_count(t, KV_ERRTYPES, &n)) || n < keep || !n)
		return rc;
	excess = n - keep + 1;
	if (!(all = malloc(n * sizeof *all)))
		return MB_ENOMEM;
	if ((rc = kv_cursor_open(t, KV_ERRTYPES, &c))) {
		free(all);
		return rc;
	}
	for (rc = kv_cursor_seek(c, NULL, &k, &v); !rc && i < n; rc = kv_cursor_next(c, &k, &v), i++) {
		if (k.len > MB_MAX_TYPE_BYTES || errtype_last_seen(v, &all[i].seen)) {
			rc = MB_ECORRUPT;
			break;
		}
		all[i].len = (uint32_t)k.len;
		memcpy(all[i].type, k.data, k.len);
	}
	kv_cursor_close(c);
	if (rc == MB_ENOTFOUND || (!rc && i == n))
		rc = 0;
	if (!rc) {
		qsort(all, i, sizeof *all, cmp_seen);
		for (uint64_t j = 0; j < excess && j < i && !rc; j++)
			if (!(rc = kv_del(t, KV_ERRTYPES, (kv_val){ all[j].type, all[j].len })))
				++*dropped;
	}
	free(all);
	return rc;
}

int st_errtype_load(kv_txn *t, const char *type, size_t len, st_errtype *s)
{
	kv_val v;
	int rc = kv_get(t, KV_ERRTYPES, (kv_val){ type, len }, &v);

	memset(s, 0, sizeof *s);
	s->resolved_at = s->last_seen = MB_NEVER;
	if (rc == MB_ENOTFOUND)
		return 0;
	return rc ? rc : st_errtype_decode(v, s);
}

int st_errtype_store(kv_txn *t, const char *type, size_t len, const st_errtype *s)
{
	mb_buf b = { 0 };
	msgpack_packer pk;
	int rc;

	mp_packer_init(&pk, &b);
	msgpack_pack_array(&pk, 5);
	msgpack_pack_uint64(&pk, s->count);
	msgpack_pack_uint64(&pk, s->resolved);
	if (s->resolved_at == MB_NEVER)
		msgpack_pack_nil(&pk);
	else
		msgpack_pack_str_with_body(&pk, s->steps, strlen(s->steps));
	st_pack_time(&pk, s->resolved_at);
	st_pack_time(&pk, s->last_seen);
	rc = b.failed ? MB_ENOMEM : kv_put(t, KV_ERRTYPES, (kv_val){ type, len },
	                                    (kv_val){ b.data, b.len });
	buf_free(&b);
	return rc;
}

void st_config_defaults(mb_config *c)
{
	memset(c, 0, sizeof *c);
	strcpy(c->api_version, "2022-06-28");
	c->retry_attempts = 3;
	c->timeout_seconds = 30;
	strcpy(c->log_level, "INFO");
	c->structured_logging = true;
	c->ttl_seconds = MB_LEGACY_TTL_SECONDS;
	c->max_entries = MB_LEGACY_MAX_ENTRIES;
	c->last_update = MB_NEVER;
}

/* The config this thread decoded last, by its stored bytes: every write
 * reads the config, which rarely changes.  Decoding is a function of the
 * bytes alone, so equal bytes give an equal config. */
#define CONFIG_MEMO_BYTES 256u
static _Thread_local struct {
	uint32_t len;           /* 0: empty */
	uint8_t raw[CONFIG_MEMO_BYTES];
	mb_config c;
} config_memo;

int st_config_load(kv_txn *t, mb_config *c)
{
	mp_kind timeout_kind = MP_INT;
	mp_reader r;
	kv_val v;
	uint32_t n;
	int rc = kv_get(t, KV_META, (kv_val){ "config", 6 }, &v);

	if (!rc && v.len && v.len == config_memo.len && !memcmp(v.data, config_memo.raw, v.len)) {
		*c = config_memo.c;
		return 0;
	}
	st_config_defaults(c);
	if (rc == MB_ENOTFOUND)
		return 0;
	if (rc || (rc = meta_open(v, &r, 8, 0, &n)) ||
	    read_field(&r, c->api_version, sizeof c->api_version, NULL) ||
	    mp_read_int(&r, &c->retry_attempts) || mp_peek(&r, &timeout_kind) ||
	    mp_read_double(&r, &c->timeout_seconds) ||
	    read_field(&r, c->log_level, sizeof c->log_level, NULL) ||
	    mp_read_bool(&r, &c->structured_logging) || mp_read_int(&r, &c->ttl_seconds) ||
	    mp_read_int(&r, &c->max_entries) || st_read_time(&r, &c->last_update) ||
	    at_end(&r))
		return rc ? rc : MB_ECORRUPT;
	c->timeout_is_float = timeout_kind == MP_FLOAT;
	if (v.len <= CONFIG_MEMO_BYTES) {
		memcpy(config_memo.raw, v.data, v.len);
		config_memo.len = (uint32_t)v.len;
		config_memo.c = *c;
	}
	return 0;
}

int st_config_store(kv_txn *t, const mb_config *c)
{
	mb_buf b = { 0 };
	msgpack_packer pk;

	mp_packer_init(&pk, &b);
	msgpack_pack_array(&pk, 8);
	msgpack_pack_str_with_body(&pk, c->api_version, strlen(c->api_version));
	msgpack_pack_int64(&pk, c->retry_attempts);
	/* an integer when it was written as one (it is then integral) */
	if (c->timeout_is_float)
		msgpack_pack_double(&pk, c->timeout_seconds);
	else
		msgpack_pack_int64(&pk, (int64_t)c->timeout_seconds);
	msgpack_pack_str_with_body(&pk, c->log_level, strlen(c->log_level));
	if (c->structured_logging)
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
	msgpack_pack_int64(&pk, c->ttl_seconds);
	msgpack_pack_int64(&pk, c->max_entries);
	st_pack_time(&pk, c->last_update);
	return meta_put(t, "config", &b);
}

int st_hist_add(kv_txn *t, int db, uint64_t *next, const mb_buf *entry, uint32_t limit)
{
	uint8_t key[8];
	kv_cursor *c;
	kv_val k, v;
	uint64_t n;
	int rc;

	if (entry->failed)
		return MB_ENOMEM;
	st_be64(key, (*next)++);
	if ((rc = kv_put(t, db, (kv_val){ key, 8 }, (kv_val){ entry->data, entry->len })))
		return rc;
	if ((rc = kv_count(t, db, &n)) || n <= limit)
		return rc;
	if ((rc = kv_cursor_open(t, db, &c)))
		return rc;
	for (rc = kv_cursor_seek(c, NULL, &k, &v); !rc && n > limit; n--) {
		if ((rc = kv_cursor_del(c)))
			break;
		rc = kv_cursor_seek(c, NULL, &k, &v);
	}
	kv_cursor_close(c);
	return rc == MB_ENOTFOUND ? 0 : rc;
}

/* ------------------------------------------------------------ pages */

/* [updated, {properties}]: an array of 2, the time as an int, the map. */
int st_page_put(kv_txn *t, const char *id, size_t len, int64_t updated,
                const uint8_t *props, size_t plen)
{
	mb_buf v = { 0 };
	int rc = st_page_value(&v, updated, props, plen);

	if (!rc)
		rc = kv_put(t, KV_PAGES, (kv_val){ id, len }, (kv_val){ v.data, v.len });
	buf_free(&v);
	return rc;
}

static bool is_map_head(uint8_t c)
{
	return (c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf;
}

/* A header parse, not a decode: a page read pays only this.  The common
 * header (a time after 1970-01-01T01:11:35Z packs as uint64) is read
 * inline; any other int form goes through the reader. */
int st_page_split(kv_val v, int64_t *updated, const uint8_t **props, size_t *len)
{
	const uint8_t *p = v.data, *end = p + v.len;
	mp_reader r = { p, end, false };
	uint32_t n;

	if (v.len >= 11 && p[0] == 0x92 && p[1] == 0xcf && p[2] < 0x80) {
		*updated = (int64_t)st_get_be64(p + 2);
		p += 10;
	} else if (mp_read_array(&r, &n) || n != 2 || mp_read_int(&r, updated) || r.p >= end) {
		return MB_ECORRUPT;
	} else {
		p = r.p;
	}
	if (!is_map_head(*p))
		return MB_ECORRUPT;
	*props = p;
	*len = (size_t)(end - p);
	return 0;
}

/* -------------------------------------------------------- time index */

size_t st_ptime_key(uint8_t *key, int64_t ts, const char *id, size_t len)
{
	st_be64(key, (uint64_t)(ts < 0 ? 0 : ts));
	memcpy(key + 8, id, len);
	return 8 + len;
}

int st_ptime_put(kv_txn *t, int64_t updated, const char *id, size_t len)
{
	static const uint8_t nil = 0xc0;
	uint8_t key[8 + MB_MAX_ID_BYTES];

	if (len > MB_MAX_ID_BYTES)
		return MB_ECORRUPT;
	return kv_put(t, KV_PTIME, (kv_val){ key, st_ptime_key(key, updated, id, len) },
	              (kv_val){ &nil, 1 });
}

int st_ptime_del(kv_txn *t, int64_t updated, const char *id, size_t len)
{
	uint8_t key[8 + MB_MAX_ID_BYTES];

	if (len > MB_MAX_ID_BYTES)
		return MB_ECORRUPT;
	return kv_del(t, KV_PTIME, (kv_val){ key, st_ptime_key(key, updated, id, len) });
}

int st_ptime_split(kv_val k, int64_t *updated, const char **id, size_t *len)
{
	if (k.len <= 8 || k.len > 8 + MB_MAX_ID_BYTES)
		return MB_ECORRUPT;
	*updated = (int64_t)st_get_be64(k.data);
	*id = (const char *)k.data + 8;
	*len = k.len - 8;
	return 0;
}

/* ------------------------------------------------------------ history */

int st_hist_entry(mb_buf *b, int64_t ts, const char *a, size_t alen, const char *c,
                  size_t clen)
{
	msgpack_packer pk;

	mp_packer_init(&pk, b);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_int64(&pk, ts);
	msgpack_pack_str_with_body(&pk, a, alen);
	if (c)
		msgpack_pack_str_with_body(&pk, c, clen);
	else
		msgpack_pack_nil(&pk);
	return b->failed ? MB_ENOMEM : 0;
}

int st_hist_decode(kv_val v, int64_t *ts, const char **a, uint32_t *alen, const char **c,
                   uint32_t *clen)
{
	mp_reader r = { v.data, (const uint8_t *)v.data + v.len, false };
	uint32_t n;

	*c = NULL;
	*clen = 0;
	if (mp_read_array(&r, &n) || n != 3 || mp_read_int(&r, ts) || mp_read_str(&r, a, alen) ||
	    (!mp_read_nil(&r) && mp_read_str(&r, c, clen)) || at_end(&r))
		return MB_ECORRUPT;
	return 0;
}

/* ------------------------------------------------- format, journal end */

int st_format_load(kv_txn *t, int64_t *format)
{
	kv_val v;
	mp_reader r;
	int rc = kv_get(t, KV_META, (kv_val){ "format", 6 }, &v);

	*format = 1;
	if (rc == MB_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	r = (mp_reader){ v.data, (const uint8_t *)v.data + v.len, false };
	return mp_read_int(&r, format) || *format < 1 || at_end(&r) ? MB_ECORRUPT : 0;
}

int st_format_store(kv_txn *t)
{
	mb_buf b = { 0 };
	msgpack_packer pk;

	mp_packer_init(&pk, &b);
	msgpack_pack_int64(&pk, MB_STORE_FORMAT);
	return meta_put(t, "format", &b);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int st_jend_load_v1(kv_txn *t, mbj_pos *pos)
{
	kv_val v;
	int rc = kv_get(t, KV_META, (kv_val){ "jend", 4 }, &v);

	memset(pos, 0, sizeof *pos);
	if (rc == MB_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	if (v.len != 24)
		return MB_ECORRUPT;
	pos->segment = get_le64(v.data);
	pos->offset = get_le64((const uint8_t *)v.data + 8);
	pos->seq = get_le64((const uint8_t *)v.data + 16);
	return 0;
}

int st_page_value(mb_buf *out, int64_t updated, const uint8_t *props, size_t len)
{
	msgpack_packer pk;

	out->len = 0;
	if (buf_reserve(out, 10 + len))
		return MB_ENOMEM;
	mp_packer_init(&pk, out);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_int64(&pk, updated);
	buf_add(out, props, len);
	return out->failed ? MB_ENOMEM : 0;
}
