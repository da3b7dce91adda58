/*
 * apply.c - apply(): the one way a record changes the store.
 *
 * Every mutation goes through apply_record(), whether it was just journaled
 * by a writer, rolled forward after a writer died, or replayed by a rebuild.
 * It is deterministic: it reads only the record (its time included) and the
 * store, never the clock or the caller, so the same records in the same order
 * give the same store.  Records reach it checked (rec_decode), and the only
 * failures left are the store's own (full map, I/O, damaged values).
 *
 * ONE PASS, MANY RECORDS.  The records a transaction applies together (a
 * write group, a batch, a group from a stream) share an apply_ctx: the config is
 * read from the store once, not once per page, and the pages' last_updated
 * (meta "pages") is stored once, at apply_end(), with the time of the last
 * page write: the value a store applying them one by one ends with.
 *
 * THE TIME INDEX (ptime) exists only while eviction or expiry is on
 * (max_entries > 0 or ttl_seconds > 0): it costs every page write a second
 * B-tree.  A config update that turns them on builds it from the pages in
 * the same transaction; one that turns both off drops it.
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "config.h"

bool apply_index_on(const mb_config *c)
{
	return c->ttl_seconds > 0 || c->max_entries > 0;
}

/* Remove the time-index entry of page @id; *existed tells if it is there. */
static int page_unindex(kv_txn *t, const char *id, size_t len, bool index, bool *existed)
{
	const uint8_t *props;
	int64_t updated;
	size_t plen;
	kv_val v;
	int rc = kv_get(t, KV_PAGES, (kv_val){ id, len }, &v);

	*existed = rc == 0;
	if (rc == MB_ENOTFOUND)
		return 0;
	if (rc || (rc = st_page_split(v, &updated, &props, &plen)))
		return rc;
	if (index) {
		rc = st_ptime_del(t, updated, id, len);
		if (rc && rc != MB_ENOTFOUND)
			return rc;
	}
	return 0;
}

/* Remove page @id and its time-index entry; *existed tells if it was. */
static int page_remove(kv_txn *t, const char *id, size_t len, bool index, bool *existed)
{
	int rc = page_unindex(t, id, len, index, existed);

	return rc || !*existed ? rc : kv_del(t, KV_PAGES, (kv_val){ id, len });
}

/* Drop the least recently updated pages until at most @max remain; each
 * one counts in the store's evicted counter (st_removed). */
static int evict(kv_txn *t, int64_t max)
{
	uint64_t n, dropped = 0;
	kv_cursor *c;
	kv_val k, v;
	bool existed;
	char id[MB_MAX_ID_BYTES];
	const char *kid;
	int64_t ts;
	size_t len;
	int rc;

	if (max <= 0 || (rc = kv_count(t, KV_PAGES, &n)) || n <= (uint64_t)max)
		return 0;
	while (n-- > (uint64_t)max) {
		if ((rc = kv_cursor_open(t, KV_PTIME, &c)))
			return rc;
		if (!(rc = kv_cursor_seek(c, NULL, &k, &v)) &&
		    !(rc = st_ptime_split(k, &ts, &kid, &len)))
			memcpy(id, kid, len);
		kv_cursor_close(c);
		if (rc || (rc = page_remove(t, id, len, true, &existed)))
			return rc;
		dropped++;
	}
	return st_removed_add(t, dropped, 0);
}

/* The pages changed at @ts: meta "pages" is stored by apply_end(). */
static void pages_touched(apply_ctx *ax, int64_t ts)
{
	ax->pages_changed = true;
	ax->pages_ts = ts;
}

static int page_store(kv_txn *t, const mb_rec *r, const uint8_t *props, size_t plen,
                      bool is_new, apply_ctx *ax)
{
	int rc = st_page_put(t, r->a, r->alen, r->ts, props, plen);

	if (!rc && apply_index_on(&ax->cfg))
		rc = st_ptime_put(t, r->ts, r->a, r->alen);
	if (!rc)
		pages_touched(ax, r->ts);
	if (!rc && is_new)
		rc = evict(t, ax->cfg.max_entries);
	return rc;
}

/* The config, read once per apply_ctx (apply_config keeps it current). */
static int ctx_config(kv_txn *t, apply_ctx *ax)
{
	int rc;

	if (ax->have_cfg)
		return 0;
	if ((rc = st_config_load(t, &ax->cfg)))
		return rc;
	ax->have_cfg = true;
	return 0;
}

typedef struct span {
	const char *key;
	uint32_t klen;
	const uint8_t *val;
	size_t vlen;
	bool used;
} span;

static int cmp_span(const void *a, const void *b)
{
	const span *x = a, *y = b;
	int c = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);

	return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* Split a msgpack map into key/value spans. */
static int spans_of(const uint8_t *p, size_t len, span **out, uint32_t *n)
{
	mp_reader r = { p, p + len, false };
	span *s;

	*out = NULL;
	if (mp_read_map(&r, n))
		return MB_ECORRUPT;
	if (!*n)
		return r.p == r.end ? 0 : MB_ECORRUPT;
	if (!(s = calloc(*n, sizeof *s)))
		return MB_ENOMEM;
	for (uint32_t i = 0; i < *n; i++) {
		if (mp_read_str(&r, &s[i].key, &s[i].klen)) {
			free(s);
			return MB_ECORRUPT;
		}
		s[i].val = r.p;
		if (mp_skip(&r, 1)) {
			free(s);
			return MB_ECORRUPT;
		}
		s[i].vlen = (size_t)(r.p - s[i].val);
	}
	if (r.p != r.end) {  /* bytes after the map: a damaged value */
		free(s);
		return MB_ECORRUPT;
	}
	*out = s;
	return 0;
}

static void pack_pair(msgpack_packer *pk, mb_buf *b, const span *s, const span *val)
{
	msgpack_pack_str_with_body(pk, s->key, s->klen);
	buf_add(b, val->val, val->vlen);
}

static bool is_nil(const span *s)
{
	return s->vlen == 1 && *s->val == 0xc0;
}

static span *sorted_copy(const span *s, uint32_t n)
{
	span *c = malloc((n ? n : 1) * sizeof *c);

	if (c && n) {
		memcpy(c, s, n * sizeof *c);
		qsort(c, n, sizeof *c, cmp_span);
	}
	return c;
}

static const span *find(const span *sorted, uint32_t n, const span *key)
{
	return n ? bsearch(key, sorted, n, sizeof *sorted, cmp_span) : NULL;
}

/* Shallow merge: keys of @old keep their order and take a patched value
 * (nil removes the key); new keys follow in the patch's order. */
static int merge_maps(const uint8_t *old, size_t olen, const uint8_t *patch, size_t plen,
                      mb_buf *out)
{
	span *o = NULL, *p = NULL, *os = NULL, *ps = NULL;
	uint32_t no = 0, np = 0, total = 0;
	const span *hit;
	msgpack_packer pk;
	int rc;

	if ((rc = spans_of(old, olen, &o, &no)) || (rc = spans_of(patch, plen, &p, &np)))
		goto out;
	if (!(os = sorted_copy(o, no)) || !(ps = sorted_copy(p, np))) {
		rc = MB_ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < no; i++)
		total += !(hit = find(ps, np, &o[i])) || !is_nil(hit);
	for (uint32_t j = 0; j < np; j++)
		total += !is_nil(&p[j]) && !find(os, no, &p[j]);
	mp_packer_init(&pk, out);
	msgpack_pack_map(&pk, total);
	for (uint32_t i = 0; i < no; i++)
		if (!(hit = find(ps, np, &o[i])))
			pack_pair(&pk, out, &o[i], &o[i]);
		else if (!is_nil(hit))
			pack_pair(&pk, out, &o[i], hit);
	for (uint32_t j = 0; j < np; j++)
		if (!is_nil(&p[j]) && !find(os, no, &p[j]))
			pack_pair(&pk, out, &p[j], &p[j]);
	rc = out->failed ? MB_ENOMEM : 0;
out:
	free(o);
	free(p);
	free(os);
	free(ps);
	return rc;
}

int apply_merged_len(const uint8_t *old, size_t olen, const uint8_t *patch, size_t plen,
                     size_t *len)
{
	mb_buf merged = { 0 };
	int rc = merge_maps(old, olen, patch, plen, &merged);

	*len = merged.len;
	buf_free(&merged);
	return rc;
}

static bool expired(int64_t updated, int64_t now, const mb_config *cfg)
{
	return cfg->ttl_seconds > 0 && now - updated >= cfg->ttl_seconds * 1000000;
}

/* Put or merge: a merge starts from the live properties, if any. */
static int apply_page_write(kv_txn *t, const mb_rec *r, apply_ctx *ax)
{
	static const uint8_t empty_map = 0x80;
	const uint8_t *old = &empty_map, *props = r->map;
	size_t olen = 1, plen = r->maplen;
	mb_buf merged = { 0 };
	const mb_config *cfg = &ax->cfg;
	int64_t updated;
	bool existed = true;
	kv_val v;
	int rc;

	if ((rc = ctx_config(t, ax)))
		return rc;
	if (r->type == REC_PAGE_MERGE) {
		rc = kv_get(t, KV_PAGES, (kv_val){ r->a, r->alen }, &v);
		if (rc && rc != MB_ENOTFOUND)
			return rc;
		if (!rc && (rc = st_page_split(v, &updated, &old, &olen)))
			return rc;
		if (!rc && expired(updated, r->ts, cfg)) {
			old = &empty_map;
			olen = 1;
		}
		if ((rc = merge_maps(old, olen, r->map, r->maplen, &merged)))
			return rc;
		props = (const uint8_t *)merged.data;
		plen = merged.len;
	}
	/* page_store's put replaces the page (one B-tree operation, not a
	 * delete and an insert); it invalidates @old, which merged no longer
	 * needs */
	/* with no time index and no eviction, the old page is not needed */
	if (!apply_index_on(cfg) ||
	    !(rc = page_unindex(t, r->a, r->alen, true, &existed)))
		rc = page_store(t, r, props, plen, !existed, ax);
	buf_free(&merged);
	return rc;
}

static int apply_page_delete(kv_txn *t, const mb_rec *r, apply_ctx *ax)
{
	bool existed;
	int rc = ctx_config(t, ax);

	if (!rc)
		rc = page_remove(t, r->a, r->alen, apply_index_on(&ax->cfg), &existed);
	if (!rc)
		pages_touched(ax, r->ts);
	return rc;
}

/* Drop every page updated before the cutoff (ttl purge); each one counts in
 * the store's purged counter (st_removed). */
static int apply_purge(kv_txn *t, const mb_rec *r)
{
	uint64_t dropped = 0;
	mb_config cfg;
	char id[MB_MAX_ID_BYTES];
	const char *kid;
	kv_cursor *c;
	kv_val k, v;
	bool existed;
	int64_t ts;
	size_t len;
	int rc;

	if ((rc = st_config_load(t, &cfg)) || cfg.ttl_seconds <= 0)
		return rc;  /* expiry was turned off since the purge was decided */
	for (;;) {
		if ((rc = kv_cursor_open(t, KV_PTIME, &c)))
			return rc;
		if (!(rc = kv_cursor_seek(c, NULL, &k, &v)) &&
		    !(rc = st_ptime_split(k, &ts, &kid, &len)) && ts >= r->num)
			rc = MB_ENOTFOUND;
		if (!rc)
			memcpy(id, kid, len);
		kv_cursor_close(c);
		if (rc)
			return rc == MB_ENOTFOUND ? st_removed_add(t, 0, dropped) : rc;
		if ((rc = page_remove(t, id, len, true, &existed)))
			return rc;
		dropped++;
	}
}

static int apply_sync(kv_txn *t, const mb_rec *r, uint32_t limit)
{
	mb_buf e = { 0 };
	st_sync s;
	int rc;

	if ((rc = st_sync_load(t, &s)))
		return rc;
	s.has_status = true;
	memcpy(s.status, r->a, r->alen);
	s.status[r->alen] = '\0';
	s.last_sync = r->ts;
	if (r->b)
		s.errors++;
	else if (r->alen == 7 && !memcmp(r->a, "success", 7)) {
		s.successes++;
		s.last_success = r->ts;
	}
	if (!(rc = st_hist_entry(&e, r->ts, r->a, r->alen, r->b, r->blen)))
		rc = st_hist_add(t, KV_SYNCHIST, &s.hist_next, &e, limit);
	buf_free(&e);
	return rc ? rc : st_sync_store(t, &s);
}

/* The error type of @r, now seen.  A type not kept yet (neither logged nor
 * resolved) first makes room: the least recently seen go beyond
 * MB_MAX_ERROR_TYPES, counted in s->types_dropped. */
static int errtype_seen(kv_txn *t, const mb_rec *r, st_errtype *et, st_errors *s)
{
	int rc;

	if ((rc = st_errors_load(t, s)) || (rc = st_errtype_load(t, r->a, r->alen, et)))
		return rc;
	if (et->count == 0 && et->resolved_at == MB_NEVER &&
	    (rc = st_errtypes_trim(t, MB_MAX_ERROR_TYPES, &s->types_dropped)))
		return rc;
	et->last_seen = r->ts;
	return 0;
}

static int apply_error_log(kv_txn *t, const mb_rec *r, uint32_t limit)
{
	mb_buf e = { 0 };
	st_errtype et;
	st_errors s;
	int rc;

	if ((rc = errtype_seen(t, r, &et, &s)))
		return rc;
	et.count++;
	s.total++;
	s.last_ts = r->ts;
	memcpy(s.last_type, r->a, r->alen);
	s.last_type[r->alen] = '\0';
	memcpy(s.last_msg, r->b, r->blen);
	s.last_msg[r->blen] = '\0';
	if (!(rc = st_hist_entry(&e, r->ts, r->a, r->alen, r->b, r->blen)))
		rc = st_hist_add(t, KV_ERRHIST, &s.hist_next, &e, limit);
	buf_free(&e);
	if (!rc)
		rc = st_errtype_store(t, r->a, r->alen, &et);
	return rc ? rc : st_errors_store(t, &s);
}

static int apply_error_resolve(kv_txn *t, const mb_rec *r)
{
	st_errtype et;
	st_errors s;
	int rc;

	if ((rc = errtype_seen(t, r, &et, &s)))
		return rc;
	s.resolved += et.count - et.resolved;
	et.resolved = et.count;
	et.resolved_at = r->ts;
	memcpy(et.steps, r->b, r->blen);
	et.steps[r->blen] = '\0';
	if ((rc = st_errtype_store(t, r->a, r->alen, &et)))
		return rc;
	return st_errors_store(t, &s);
}

/* The time index of every page, built when eviction or expiry turns on. */
static int build_index(kv_txn *t)
{
	const uint8_t *props;
	int64_t updated;
	size_t plen;
	kv_cursor *c;
	kv_val k, v;
	int rc = kv_cursor_open(t, KV_PAGES, &c);

	for (rc = rc ? rc : kv_cursor_seek(c, NULL, &k, &v); !rc; rc = kv_cursor_next(c, &k, &v)) {
		if (k.len > MB_MAX_ID_BYTES) {
			rc = MB_ECORRUPT;
			break;
		}
		if ((rc = st_page_split(v, &updated, &props, &plen)) ||
		    (rc = st_ptime_put(t, updated, k.data, k.len)))
			break;
	}
	kv_cursor_close(c);
	return rc == MB_ENOTFOUND ? 0 : rc;
}

static int apply_config(kv_txn *t, const mb_rec *r, apply_ctx *ax)
{
	mb_config c;
	bool was_on;
	int rc;

	ax->have_cfg = false;   /* read again after this record */
	if ((rc = st_config_load(t, &c)))
		return rc;
	was_on = apply_index_on(&c);
	if ((rc = config_apply_patch(&c, r->map, r->maplen)))
		return rc;
	c.last_update = r->ts;
	if (was_on && !apply_index_on(&c))
		rc = kv_drop(t, KV_PTIME);
	else if (!was_on && apply_index_on(&c))
		rc = build_index(t);
	/* a lower bound applies now, not at the next new page */
	return rc ? rc : (rc = st_config_store(t, &c)) ? rc : evict(t, c.max_entries);
}

static int apply_batch(kv_txn *t, uint32_t history_limit, const mb_rec *r, apply_ctx *ax);
static int apply_group(kv_txn *t, uint32_t history_limit, const mb_rec *r, apply_ctx *ax);

static int apply_type(kv_txn *t, uint32_t history_limit, const mb_rec *r, apply_ctx *ax)
{
	switch (r->type) {
	case REC_PAGE_PUT:
	case REC_PAGE_MERGE: return apply_page_write(t, r, ax);
	case REC_PAGE_DELETE: return apply_page_delete(t, r, ax);
	case REC_SYNC: return apply_sync(t, r, history_limit);
	case REC_ERROR_LOG: return apply_error_log(t, r, history_limit);
	case REC_ERROR_RESOLVE: return apply_error_resolve(t, r);
	case REC_CONFIG: return apply_config(t, r, ax);
	case REC_PURGE: return apply_purge(t, r);
	case REC_CANCELLED: return 0;
	case REC_BATCH: return apply_batch(t, history_limit, r, ax);
	case REC_GROUP: return apply_group(t, history_limit, r, ax);
	}
	return MB_ECORRUPT;
}

/* Each operation in order, with the batch's time; the caller's transaction
 * makes them one. */
static int apply_batch(kv_txn *t, uint32_t history_limit, const mb_rec *r, apply_ctx *ax)
{
	mp_reader m = { r->map, r->map + r->maplen, true };  /* checked (rec_decode) */
	uint32_t n;
	mb_rec op;
	int rc = mp_read_array(&m, &n) ? MB_ECORRUPT : 0;

	for (uint32_t i = 0; !rc && i < n; i++)
		if (!(rc = rec_batch_next(&m, r->ts, &op) ? MB_ECORRUPT : 0))
			rc = apply_type(t, history_limit, &op, ax);
	return rc;
}

/* Each member as the record it was, with its own time (and the store's
 * clock advanced by each): the same as on the machine that published the
 * group, which applied them one by one. */
static int apply_group(kv_txn *t, uint32_t history_limit, const mb_rec *r, apply_ctx *ax)
{
	mp_reader m = { r->map, r->map + r->maplen, true };  /* checked (rec_decode) */
	const uint8_t *raw;
	int64_t nonce, ticket;
	size_t rawlen;
	uint32_t n;
	mb_rec op;
	int rc = mp_read_array(&m, &n) ? MB_ECORRUPT : 0;

	for (uint32_t i = 0; !rc && i < n; i++)
		if (!(rc = rec_group_next(&m, &op, &raw, &rawlen, &nonce, &ticket) ? MB_ECORRUPT : 0))
			rc = apply_one(t, history_limit, &op, ax);
	return rc;
}

void apply_begin(apply_ctx *ax)
{
	ax->have_cfg = false;
	ax->pages_changed = false;
	ax->pages_ts = 0;
}

int apply_one(kv_txn *t, uint32_t history_limit, const mb_rec *r, apply_ctx *ax)
{
	int rc = apply_type(t, history_limit, r, ax);

	return rc ? rc : st_clock_advance(t, r->ts);
}

int apply_end(kv_txn *t, apply_ctx *ax)
{
	int rc = ax->pages_changed ? st_pages_store(t, ax->pages_ts) : 0;

	ax->pages_changed = false;
	return rc;
}

int apply_record(kv_txn *t, uint32_t history_limit, const mb_rec *r)
{
	apply_ctx ax;
	int rc;

	apply_begin(&ax);
	rc = apply_one(t, history_limit, r, &ax);
	return rc ? rc : apply_end(t, &ax);
}

bool apply_expired(int64_t updated, int64_t now, const mb_config *cfg)
{
	return expired(updated, now, cfg);
}

int apply_live_page(kv_txn *t, const char *id, size_t len, int64_t now, kv_val *v)
{
	const uint8_t *props;
	int64_t updated;
	size_t plen;
	mb_config cfg;
	int rc = kv_get(t, KV_PAGES, (kv_val){ id, len }, v);

	if (rc || (rc = st_page_split(*v, &updated, &props, &plen)))
		return rc;
	if ((rc = st_config_load(t, &cfg)))
		return rc;
	return expired(updated, now, &cfg) ? MB_ENOTFOUND : 0;
}

/* Expired pages stay in the store until a snapshot purges them (a read
 * never writes); they are the head of the time index, so counting them
 * costs one step per expired page, not one per page. */
int apply_count_live(kv_txn *t, int64_t now, uint64_t *n)
{
	mb_config cfg;
	const char *id;
	int64_t ts;
	size_t len;
	kv_cursor *c;
	kv_val k, v;
	int rc = kv_count(t, KV_PAGES, n);

	if (rc || (rc = st_config_load(t, &cfg)) || cfg.ttl_seconds <= 0)
		return rc;
	if ((rc = kv_cursor_open(t, KV_PTIME, &c)))
		return rc;
	for (rc = kv_cursor_seek(c, NULL, &k, &v); !rc && *n; rc = kv_cursor_next(c, &k, &v)) {
		if ((rc = st_ptime_split(k, &ts, &id, &len)) || !expired(ts, now, &cfg))
			break;
		(*n)--;
	}
	kv_cursor_close(c);
	return rc == MB_ENOTFOUND ? 0 : rc;
}
