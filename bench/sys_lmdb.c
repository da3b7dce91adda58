/*
 * sys_lmdb.c - raw LMDB: the engine's limit under membank's cache.
 *
 * One mdb_put or mdb_get per transaction, of the bytes membank's store keeps
 * for a page (be64 last_updated_us ++ msgpack map of the properties).  Fast
 * durability is MDB_NOSYNC; full is LMDB's synchronous commit.  A get copies
 * the properties out as JSON text {"properties":..,"last_updated":".."}, as
 * mb_page_get() must.  An event appends [ts, a, b] under the next be64 key of
 * "sync" or "errors" and deletes the entry 100 back (a bounded history).
 * MEMBANK_BENCH_LMDB_WRITEMAP=1 adds MDB_WRITEMAP, as membank's store uses
 * where it can reserve its map (libshm/kv_lmdb.c): the engine's limit in
 * that mode, for comparison (bench/run's baseline stays LMDB's default).
 */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"

#define HISTORY 100u

typedef struct lm {
	MDB_env *env;
	MDB_dbi pages, sync, errors;
} lm;

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static int check(int rc, const char *what)
{
	if (rc != 0)
		fprintf(stderr, "lmdb: %s: %s\n", what, mdb_strerror(rc));
	return rc;
}

static int lm_open_env(const bench_cfg *cfg, bool full, lm *l)
{
	char path[4096];
	MDB_txn *t;
	int rc;

	snprintf(path, sizeof path, "%s/lmdb", cfg->dir);
	mkdir(path, 0700);
	if ((rc = check(mdb_env_create(&l->env), "env_create")) != 0)
		return rc;
	mdb_env_set_maxdbs(l->env, 4);
	mdb_env_set_mapsize(l->env, (size_t)1 << 30);
	rc = mdb_env_open(l->env, path, (full ? 0 : MDB_NOSYNC) |
	                  (getenv("MEMBANK_BENCH_LMDB_WRITEMAP") ? MDB_WRITEMAP : 0), 0600);
	if (check(rc, "env_open") == 0)
		rc = check(mdb_txn_begin(l->env, NULL, 0, &t), "txn_begin");
	if (rc == 0) {
		rc = mdb_dbi_open(t, "pages", MDB_CREATE, &l->pages);
		rc = rc ? rc : mdb_dbi_open(t, "sync", MDB_CREATE, &l->sync);
		rc = rc ? rc : mdb_dbi_open(t, "errors", MDB_CREATE, &l->errors);
		rc = rc ? (mdb_txn_abort(t), rc) : mdb_txn_commit(t);
		check(rc, "dbi_open");
	}
	if (rc != 0)
		mdb_env_close(l->env);
	return rc;
}

/* The stored page: be64 time ++ msgpack properties, into @buf (>= 8 + mp). */
static size_t page_value(uint8_t *buf, size_t cap, const bench_value *v)
{
	if (8 + v->mp_len > cap)
		return 0;
	put_be64(buf, (uint64_t)bench_now_us());
	memcpy(buf + 8, v->mp, v->mp_len);
	return 8 + v->mp_len;
}

static int put_page(lm *l, MDB_txn *t, uint32_t key, uint64_t n)
{
	char id[BENCH_KEY_MAX];
	uint8_t buf[1024];
	MDB_val k, d;

	k.mv_size = bench_key(id, key);
	k.mv_data = id;
	d.mv_size = page_value(buf, sizeof buf, bench_value_get(n));
	d.mv_data = buf;
	return mdb_put(t, l->pages, &k, &d, 0);
}

static int lm_prefill(const bench_cfg *cfg)
{
	MDB_txn *t;
	lm l;
	int rc = lm_open_env(cfg, false, &l);

	if (rc != 0)
		return rc;
	rc = check(mdb_txn_begin(l.env, NULL, 0, &t), "txn_begin");
	for (uint32_t k = 0; rc == 0 && k < cfg->keys; k++)
		rc = check(put_page(&l, t, k, k), "put");
	if (rc == 0)
		rc = check(mdb_txn_commit(t), "commit");
	else
		mdb_txn_abort(t);
	mdb_env_sync(l.env, 1);
	mdb_env_close(l.env);
	return rc;
}

static int lm_open(const bench_cfg *cfg, void **h)
{
	lm *l = calloc(1, sizeof *l);
	int rc;

	if (!l)
		return -1;
	rc = lm_open_env(cfg, cfg->full, l);
	if (rc != 0) {
		free(l);
		return rc;
	}
	*h = l;
	return 0;
}

static int lm_get(lm *l, uint32_t key)
{
	char id[BENCH_KEY_MAX], ts[32];
	bench_buf out = {0};
	MDB_txn *t;
	MDB_val k, d;
	int rc;

	k.mv_size = bench_key(id, key);
	k.mv_data = id;
	if ((rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &t)) != 0)
		return check(rc, "txn_begin");
	rc = check(mdb_get(t, l->pages, &k, &d), "get");
	if (rc == 0 && d.mv_size > 8) {
		size_t tn = bench_timestamp(ts, (int64_t)get_be64(d.mv_data));

		rc = bench_buf_put(&out, "{\"properties\":", 14);
		rc = rc ? rc : bench_mp_to_json(&out, (const uint8_t *)d.mv_data + 8, d.mv_size - 8);
		rc = rc ? rc : bench_buf_put(&out, ",\"last_updated\":\"", 17);
		rc = rc ? rc : bench_buf_put(&out, ts, tn);
		rc = rc ? rc : bench_buf_put(&out, "\"}", 2);
	}
	mdb_txn_abort(t);
	free(out.p);
	return rc;
}

/* msgpack [ts: int64, a: str, b: str | nil] into @p (>= 32 + a + b bytes). */
static size_t event_value(uint8_t *p, const char *a, const char *b)
{
	size_t al = strlen(a), bl = b ? strlen(b) : 0, n = 0;

	p[n++] = 0x93;
	p[n++] = 0xd3;
	put_be64(p + n, (uint64_t)bench_now_us());
	n += 8;
	p[n++] = 0xd9;
	p[n++] = (uint8_t)al;
	memcpy(p + n, a, al);
	n += al;
	if (!b) {
		p[n++] = 0xc0;
		return n;
	}
	p[n++] = 0xd9;
	p[n++] = (uint8_t)bl;
	memcpy(p + n, b, bl);
	return n + bl;
}

static int append_event(MDB_txn *t, MDB_dbi db, const char *a, const char *b)
{
	uint8_t kb[8], vb[600];
	uint64_t seq = 0;
	MDB_cursor *c;
	MDB_val k, d;
	int rc;

	if ((rc = mdb_cursor_open(t, db, &c)) != 0)
		return rc;
	rc = mdb_cursor_get(c, &k, &d, MDB_LAST);
	if (rc == 0 && k.mv_size == 8)
		seq = get_be64(k.mv_data);
	put_be64(kb, ++seq);
	k.mv_data = kb;
	k.mv_size = 8;
	d.mv_data = vb;
	d.mv_size = event_value(vb, a, b);
	rc = mdb_cursor_put(c, &k, &d, MDB_APPEND);
	mdb_cursor_close(c);
	if (rc == 0 && seq > HISTORY) {
		put_be64(kb, seq - HISTORY);
		rc = mdb_del(t, db, &k, NULL);
		rc = rc == MDB_NOTFOUND ? 0 : rc;
	}
	return rc;
}

static int lm_write(lm *l, bench_op op, uint32_t key, uint64_t n)
{
	MDB_txn *t;
	int rc;

	if ((rc = mdb_txn_begin(l->env, NULL, 0, &t)) != 0)
		return check(rc, "txn_begin");
	if (op == OP_UPSERT)
		rc = put_page(l, t, key, n);
	else if (n % 2 == 0)
		rc = append_event(t, l->sync, "success", NULL);
	else
		rc = append_event(t, l->errors, bench_error_type(), bench_error_message());
	if (rc != 0) {
		mdb_txn_abort(t);
		return check(rc, "write");
	}
	return check(mdb_txn_commit(t), "commit");
}

static int lm_op(void *h, const bench_cfg *cfg, bench_op op, uint32_t key, uint64_t n)
{
	(void)cfg;
	if (op == OP_GET)
		return lm_get(h, key);
	if (op == OP_UPSERT || op == OP_EVENT)
		return lm_write(h, op, key, n);
	return -1;
}

static void lm_close(void *h)
{
	lm *l = h;

	mdb_env_close(l->env);
	free(l);
}

const bench_sys bench_system = {
	.name = "lmdb",
	.prefill = lm_prefill,
	.open = lm_open,
	.op = lm_op,
	.close = lm_close,
};
