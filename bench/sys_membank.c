/*
 * sys_membank.c - membank through its public API (libmembank.so).
 *
 * The bank lives in DIR/bank.  Prefill sets cache_settings max_entries 0 and
 * ttl_seconds 0 so that eviction and expiry neither flatter nor hurt the
 * figures (--max-entries N sets another bound, e.g. the spec's default of
 * 1000, for a separate run), then puts every page once (fast durability: prefill is not
 * measured).  Each worker opens its own handle with the cell's durability.
 *
 * On a stream (issue 16): with MEMBANK_JOURNAL set (nats://HOSTS/STREAM) the
 * bank is bound to that stream, created with MEMBANK_BENCH_NATS_REPLICAS
 * replicas (default 3, as bench-nats).  libnats cannot be used across
 * fork(), so the parent never opens the bank then: prefill and the counts
 * run in a child of their own.  The prefill puts BENCH_BATCH pages a batch
 * (one message each: it is not measured).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "membank.h"


static bool on_stream(void)
{
	const char *u = getenv("MEMBANK_JOURNAL");
	return u && *u;
}

static int open_bank(const bench_cfg *cfg, bool full, mb_bank **out)
{
	char path[4096];
	mb_options o;
	int rc;

	mb_options_init(&o);
	o.durability = full ? MB_DURABILITY_FULL : MB_DURABILITY_FAST;
	o.map_size = (size_t)1 << 30;
	if (on_stream()) {
		const char *r = getenv("MEMBANK_BENCH_NATS_REPLICAS");
		o.journal_replicas = r ? (uint32_t)atoi(r) : 3;
	}
	snprintf(path, sizeof path, "%s/bank", cfg->dir);
	rc = mb_open(path, &o, out);
	if (rc != 0)
		fprintf(stderr, "membank: mb_open: %s: %s\n", mb_errname(rc),
		        mb_last_error(NULL));
	return rc;
}

static int fail(mb_bank *b, const char *what, int rc)
{
	fprintf(stderr, "membank: %s: %s: %s\n", what, mb_errname(rc), mb_last_error(b));
	return rc;
}

static int batch_put(mb_bank *b, const bench_cfg *cfg, uint32_t key, uint64_t n);

static int prefill_here(const bench_cfg *cfg)
{
	mb_bank *b;
	char key[BENCH_KEY_MAX], conf[128];
	int rc = open_bank(cfg, false, &b);
	int n = snprintf(conf, sizeof conf,
		"{\"cache_settings\":{\"max_entries\":%ld,\"ttl_seconds\":0}}", cfg->max_entries);

	if (rc != 0)
		return rc;
	rc = mb_config_update(b, conf, (size_t)n);
	if (rc != 0)
		fail(b, "mb_config_update", rc);
	for (uint32_t k = 0; rc == 0 && on_stream() && k < cfg->keys; k += BENCH_BATCH)
		rc = batch_put(b, cfg, k, k);
	for (uint32_t k = 0; rc == 0 && !on_stream() && k < cfg->keys; k++) {
		const bench_value *v = bench_value_get(k);

		bench_key(key, k);
		rc = mb_page_put(b, key, v->json, v->json_len);
		if (rc != 0)
			fail(b, "mb_page_put", rc);
	}
	mb_close(b);
	return rc;
}

/* @fn in a child of its own; its exit status, or -1. */
static int in_child(int (*fn)(const bench_cfg *), const bench_cfg *cfg)
{
	int st;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0)
		_exit(fn(cfg) == 0 ? 0 : 1);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int mbs_prefill(const bench_cfg *cfg)
{
	return on_stream() ? in_child(prefill_here, cfg) : prefill_here(cfg);
}

static int mbs_open(const bench_cfg *cfg, void **h)
{
	return open_bank(cfg, cfg->full, (mb_bank **)h);
}

/* BENCH_BATCH upserts of consecutive pages from @key, as one batch. */
static int batch_put(mb_bank *b, const bench_cfg *cfg, uint32_t key, uint64_t n)
{
	char id[BENCH_KEY_MAX];
	mb_batch *bt;
	int rc = mb_batch_begin(b, &bt);

	for (uint32_t i = 0; !rc && i < BENCH_BATCH; i++) {
		const bench_value *v = bench_value_get(n + i);
		bench_key(id, (key + i) % cfg->keys);
		rc = mb_batch_page_put(bt, id, v->json, v->json_len);
	}
	if (rc) {
		mb_batch_abort(bt);
		return fail(b, "mb_batch_page_put", rc);
	}
	rc = mb_batch_commit(bt);
	return rc ? fail(b, "mb_batch_commit", rc) : 0;
}

static int mbs_op(void *h, const bench_cfg *cfg, bench_op op, uint32_t key, uint64_t n)
{
	mb_bank *b = h;
	char id[BENCH_KEY_MAX];
	const bench_value *v;
	char *json = NULL;
	int rc;

	(void)cfg;
	bench_key(id, key);
	switch (op) {
	case OP_UPSERT:
		v = bench_value_get(n);
		rc = mb_page_put(b, id, v->json, v->json_len);
		return rc ? fail(b, "mb_page_put", rc) : 0;
	case OP_GET:
		rc = mb_page_get(b, id, &json, NULL);
		mb_free(json);
		return rc ? fail(b, "mb_page_get", rc) : 0;
	case OP_EVENT:
		if (n % 2 == 0)
			rc = mb_sync_record(b, "success", NULL);
		else
			rc = mb_error_log(b, bench_error_type(), bench_error_message());
		return rc ? fail(b, "event", rc) : 0;
	case OP_BATCH:
		return batch_put(b, cfg, key, n);
	default:
		return -1;
	}
}

static void mbs_close(void *h)
{
	mb_close(h);
}

/* The number after "@key": in @json, or -1. */
static int stat_of(const char *json, const char *key, uint64_t *v)
{
	const char *p = strstr(json, key);

	if (!p)
		return -1;
	*v = strtoull(p + strlen(key), NULL, 10);
	return 0;
}

/* Journal records and fdatasyncs so far (mb_stats' journal.last_seq and
 * journal.fdatasyncs), from a handle opened and closed here, in the parent
 * between cells (no worker inherits it). */
static int counts_here(const bench_cfg *cfg, uint64_t *records, uint64_t *syncs)
{
	mb_bank *b;
	char *json = NULL;
	int rc = open_bank(cfg, false, &b);

	if (rc != 0)
		return rc;
	rc = mb_stats(b, &json);
	if (rc == 0 && (stat_of(json, "\"last_seq\":", records) ||
	                stat_of(json, "\"fdatasyncs\":", syncs)))
		rc = -1;
	mb_free(json);
	mb_close(b);
	return rc;
}

/* On a stream: counts_here in a child, the two figures back by a pipe. */
static int counts_pipe = -1;

static int counts_child(const bench_cfg *cfg)
{
	uint64_t v[2];

	if (counts_here(cfg, &v[0], &v[1]) != 0)
		return -1;
	return write(counts_pipe, v, sizeof v) == (ssize_t)sizeof v ? 0 : -1;
}

static int mbs_sync_counts(const bench_cfg *cfg, uint64_t *records, uint64_t *syncs)
{
	int fd[2], rc;
	uint64_t v[2];

	if (!on_stream())
		return counts_here(cfg, records, syncs);
	if (pipe(fd) != 0)
		return -1;
	counts_pipe = fd[1];
	rc = in_child(counts_child, cfg);
	close(fd[1]);
	if (rc == 0 && read(fd[0], v, sizeof v) != (ssize_t)sizeof v)
		rc = -1;
	close(fd[0]);
	if (rc == 0) {
		*records = v[0];
		*syncs = v[1];
	}
	return rc;
}

const bench_sys bench_system = {
	.name = "membank",
	.prefill = mbs_prefill,
	.open = mbs_open,
	.op = mbs_op,
	.close = mbs_close,
	.sync_counts = mbs_sync_counts,
};
