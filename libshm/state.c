/*
 * state.c - loading and storing the state records of state.h.
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

void st_be64(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		out[i] = (uint8_t)v;
}

uint64_t st_get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
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

/* A meta record of @fields fields (or, with @older, that many fewer). */
static int meta_get_n(kv_txn *t, const char *name, mp_reader *r, uint32_t fields,
                      uint32_t older, uint32_t *n)
{
	kv_val v;
	int rc = kv_get(t, KV_META, (kv_val){ name, strlen(name) }, &v);

	if (rc)
		return rc;
	r->p = v.data;
	r->end = r->p + v.len;
	if (mp_read_array(r, n) || *n > fields || *n < fields - older)
		return MB_ECORRUPT;
	return 0;
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
	    read_u64(&r, &s->hist_next))
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
	    (n == 7 && read_u64(&r, &s->types_dropped)))
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
	return rc ? rc : st_read_time(&r, last_updated);
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

int st_removed_load(kv_txn *t, st_removed *s)
{
	mp_reader r;
	int rc = meta_get(t, "removed", &r, 2);

	memset(s, 0, sizeof *s);
	if (rc == MB_ENOTFOUND)
		return 0;
	if (rc || read_u64(&r, &s->evicted) || read_u64(&r, &s->purged))
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
 * in the transaction's scratch (kv.h), which a kv_drop() clears. */
typedef struct head_cache {
	bool loaded;
	bool legacy_clock;   /* the clock came from a "clock" record (24-byte jend) */
	st_head h;
} head_cache;

_Static_assert(sizeof(head_cache) <= KV_TXN_SCRATCH, "the head fits the scratch");

static void le64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t le64_get(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static int head_get(kv_txn *t, head_cache **out)
{
	head_cache *c = kv_txn_scratch(t);
	mp_reader r;
	kv_val v;
	int rc;

	*out = c;
	if (c->loaded)
		return 0;
	memset(c, 0, sizeof *c);
	c->h.clock = MB_NEVER;
	rc = kv_get(t, KV_META, (kv_val){ "jend", 4 }, &v);
	if (rc && rc != MB_ENOTFOUND)
		return rc;
	if (!rc) {
		const uint8_t *p = v.data;
		if (v.len != ST_HEAD_BYTES && v.len != ST_HEAD_BYTES_OLD)
			return MB_ECORRUPT;
		c->h.segment = le64_get(p);
		c->h.offset = le64_get(p + 8);
		c->h.seq = le64_get(p + 16);
		if (v.len == ST_HEAD_BYTES)
			c->h.clock = (int64_t)le64_get(p + 24);
	}
	if (rc || v.len == ST_HEAD_BYTES_OLD) {
		/* the layout before the clock joined the head */
		rc = meta_get(t, "clock", &r, 1);
		if (!rc && st_read_time(&r, &c->h.clock))
			return MB_ECORRUPT;
		if (rc && rc != MB_ENOTFOUND)
			return rc;
		c->legacy_clock = !rc;
	}
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

int st_head_store(kv_txn *t, uint64_t segment, uint64_t offset, uint64_t seq)
{
	uint8_t v[ST_HEAD_BYTES];
	head_cache *c;
	int rc = head_get(t, &c);

	if (rc)
		return rc;
	c->h.segment = segment;
	c->h.offset = offset;
	c->h.seq = seq;
	le64_put(v, segment);
	le64_put(v + 8, offset);
	le64_put(v + 16, seq);
	le64_put(v + 24, (uint64_t)c->h.clock);
	if ((rc = kv_put(t, KV_META, (kv_val){ "jend", 4 }, (kv_val){ v, sizeof v })))
		return rc;
	if (c->legacy_clock) {   /* now in the head */
		rc = kv_del(t, KV_META, (kv_val){ "clock", 5 });
		if (rc && rc != MB_ENOTFOUND)
			return rc;
		c->legacy_clock = false;
	}
	return 0;
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
	mp_reader r = { v.data, (const uint8_t *)v.data + v.len };
	uint32_t n;

	s->last_seen = MB_NEVER;
	if (mp_read_array(&r, &n) || n < 4 || n > 5 || read_u64(&r, &s->count) ||
	    read_u64(&r, &s->resolved) || read_field(&r, s->steps, sizeof s->steps, NULL) ||
	    st_read_time(&r, &s->resolved_at) || s->resolved > s->count ||
	    (n == 5 && st_read_time(&r, &s->last_seen)))
		return MB_ECORRUPT;
	return 0;
}

/* last_seen alone, without copying the steps. */
static int errtype_last_seen(kv_val v, int64_t *seen)
{
	mp_reader r = { v.data, (const uint8_t *)v.data + v.len };
	uint32_t n;

	*seen = MB_NEVER;
	if (mp_read_array(&r, &n) || n < 4 || n > 5)
		return MB_ECORRUPT;
	for (uint32_t i = 0; i < 4; i++)
		if (mp_skip(&r, 0))
			return MB_ECORRUPT;
	return n == 5 ? st_read_time(&r, seen) : 0;
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

int st_config_load(kv_txn *t, mb_config *c)
{
	mp_kind timeout_kind = MP_INT;
	mp_reader r;
	int rc = meta_get(t, "config", &r, 8);

	st_config_defaults(c);
	if (rc == MB_ENOTFOUND)
		return 0;
	if (rc || read_field(&r, c->api_version, sizeof c->api_version, NULL) ||
	    mp_read_int(&r, &c->retry_attempts) || mp_peek(&r, &timeout_kind) ||
	    mp_read_double(&r, &c->timeout_seconds) ||
	    read_field(&r, c->log_level, sizeof c->log_level, NULL) ||
	    mp_read_bool(&r, &c->structured_logging) || mp_read_int(&r, &c->ttl_seconds) ||
	    mp_read_int(&r, &c->max_entries) || st_read_time(&r, &c->last_update))
		return rc ? rc : MB_ECORRUPT;
	c->timeout_is_float = timeout_kind == MP_FLOAT;
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

int st_page_split(kv_val v, int64_t *updated, const uint8_t **props, size_t *len)
{
	if (v.len < 9)
		return MB_ECORRUPT;
	*updated = (int64_t)st_get_be64(v.data);
	*props = (const uint8_t *)v.data + 8;
	*len = v.len - 8;
	return 0;
}
