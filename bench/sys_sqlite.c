/*
 * sys_sqlite.c - SQLite in WAL mode, one connection per process.
 *
 * pages(id TEXT PRIMARY KEY, props TEXT): INSERT OR REPLACE and SELECT of
 * the JSON text; an event is an INSERT into sync_history or errors plus the
 * DELETE that keeps the newest 100, in one BEGIN IMMEDIATE transaction.
 * Fast durability is synchronous=NORMAL, full is synchronous=FULL;
 * busy_timeout 10 s so that writers wait for each other instead of failing.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

typedef struct sq {
	sqlite3 *db;
	sqlite3_stmt *put, *get, *ev[2], *trim[2], *begin, *commit;
} sq;

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"CREATE TABLE IF NOT EXISTS pages(id TEXT PRIMARY KEY, props TEXT);"
	"CREATE TABLE IF NOT EXISTS sync_history(id INTEGER PRIMARY KEY, ts TEXT, status TEXT, error TEXT);"
	"CREATE TABLE IF NOT EXISTS errors(id INTEGER PRIMARY KEY, ts TEXT, type TEXT, message TEXT);";

static int sq_err(sqlite3 *db, const char *what)
{
	fprintf(stderr, "sqlite: %s: %s\n", what, db ? sqlite3_errmsg(db) : "no handle");
	return -1;
}

static int sq_connect(const bench_cfg *cfg, bool full, sqlite3 **db)
{
	char path[4096], pragmas[128];

	snprintf(path, sizeof path, "%s/bench.sqlite", cfg->dir);
	if (sqlite3_open(path, db) != SQLITE_OK)
		return sq_err(*db, "open");
	sqlite3_busy_timeout(*db, 10000);
	snprintf(pragmas, sizeof pragmas, "PRAGMA synchronous=%s;", full ? "FULL" : "NORMAL");
	if (sqlite3_exec(*db, schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(*db, pragmas, NULL, NULL, NULL) != SQLITE_OK)
		return sq_err(*db, "schema");
	return 0;
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return sq_err(db, sql);
	return 0;
}

/* Run a prepared statement to completion and reset it. */
static int step(sq *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sq_err(s->db, "step");
	return 0;
}

static int bind_page(sqlite3_stmt *st, const char *id, size_t idlen, const bench_value *v)
{
	if (sqlite3_bind_text(st, 1, id, (int)idlen, SQLITE_TRANSIENT) != SQLITE_OK)
		return -1;
	return sqlite3_bind_text(st, 2, v->json, (int)v->json_len, SQLITE_STATIC) == SQLITE_OK ? 0 : -1;
}

static int sq_prefill(const bench_cfg *cfg)
{
	sq s = {0};
	char id[BENCH_KEY_MAX];
	int rc = sq_connect(cfg, false, &s.db);

	rc = rc ? rc : prep(s.db, "INSERT OR REPLACE INTO pages(id, props) VALUES(?, ?)", &s.put);
	if (rc == 0 && sqlite3_exec(s.db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		rc = sq_err(s.db, "begin");
	for (uint32_t k = 0; rc == 0 && k < cfg->keys; k++) {
		size_t n = bench_key(id, k);

		rc = bind_page(s.put, id, n, bench_value_get(k));
		rc = rc ? rc : step(&s, s.put);
	}
	if (rc == 0 && sqlite3_exec(s.db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = sq_err(s.db, "commit");
	sqlite3_finalize(s.put);
	sqlite3_close(s.db);
	return rc;
}

static void sq_close(void *h)
{
	sq *s = h;

	sqlite3_finalize(s->put);
	sqlite3_finalize(s->get);
	for (int i = 0; i < 2; i++) {
		sqlite3_finalize(s->ev[i]);
		sqlite3_finalize(s->trim[i]);
	}
	sqlite3_finalize(s->begin);
	sqlite3_finalize(s->commit);
	sqlite3_close(s->db);
	free(s);
}

static int sq_open(const bench_cfg *cfg, void **h)
{
	sq *s = calloc(1, sizeof *s);
	int rc;

	if (!s)
		return -1;
	rc = sq_connect(cfg, cfg->full, &s->db);
	rc = rc ? rc : prep(s->db, "INSERT OR REPLACE INTO pages(id, props) VALUES(?, ?)", &s->put);
	rc = rc ? rc : prep(s->db, "SELECT props FROM pages WHERE id = ?", &s->get);
	rc = rc ? rc : prep(s->db, "INSERT INTO sync_history(ts, status, error) VALUES(?, ?, ?)", &s->ev[0]);
	rc = rc ? rc : prep(s->db, "INSERT INTO errors(ts, type, message) VALUES(?, ?, ?)", &s->ev[1]);
	rc = rc ? rc : prep(s->db, "DELETE FROM sync_history WHERE id <= last_insert_rowid() - 100", &s->trim[0]);
	rc = rc ? rc : prep(s->db, "DELETE FROM errors WHERE id <= last_insert_rowid() - 100", &s->trim[1]);
	rc = rc ? rc : prep(s->db, "BEGIN IMMEDIATE", &s->begin);
	rc = rc ? rc : prep(s->db, "COMMIT", &s->commit);
	if (rc != 0) {
		sq_close(s);
		return rc;
	}
	*h = s;
	return 0;
}

static int sq_get(sq *s, uint32_t key)
{
	char id[BENCH_KEY_MAX];
	size_t n = bench_key(id, key);
	char *copy = NULL;
	int rc;

	sqlite3_bind_text(s->get, 1, id, (int)n, SQLITE_TRANSIENT);
	rc = sqlite3_step(s->get);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s->get, 0);
		int len = sqlite3_column_bytes(s->get, 0);

		copy = malloc((size_t)len + 1);   /* the caller owns the text, as with membank */
		if (copy && t)
			memcpy(copy, t, (size_t)len + 1);
	}
	sqlite3_reset(s->get);
	free(copy);
	return rc == SQLITE_ROW ? 0 : sq_err(s->db, "select");
}

static int sq_event(sq *s, uint64_t n)
{
	int i = (int)(n % 2);
	char ts[32];
	size_t tn = bench_timestamp(ts, bench_now_us());
	int rc = step(s, s->begin);

	sqlite3_bind_text(s->ev[i], 1, ts, (int)tn, SQLITE_TRANSIENT);
	sqlite3_bind_text(s->ev[i], 2, i ? bench_error_type() : "success", -1, SQLITE_STATIC);
	if (i)
		sqlite3_bind_text(s->ev[i], 3, bench_error_message(), -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s->ev[i], 3);
	rc = rc ? rc : step(s, s->ev[i]);
	rc = rc ? rc : step(s, s->trim[i]);
	if (rc == 0)
		return step(s, s->commit);
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static int sq_op(void *h, const bench_cfg *cfg, bench_op op, uint32_t key, uint64_t n)
{
	sq *s = h;
	char id[BENCH_KEY_MAX];
	size_t len;

	(void)cfg;
	switch (op) {
	case OP_UPSERT:
		len = bench_key(id, key);
		if (bind_page(s->put, id, len, bench_value_get(n)) != 0)
			return sq_err(s->db, "bind");
		return step(s, s->put);
	case OP_GET:
		return sq_get(s, key);
	case OP_EVENT:
		return sq_event(s, n);
	default:
		return -1;
	}
}

const bench_sys bench_system = {
	.name = "sqlite",
	.prefill = sq_prefill,
	.open = sq_open,
	.op = sq_op,
	.close = sq_close,
};
