/*
 * test_storefmt.c - the store's format: every value is one msgpack document
 * (store format 2), a store of format 1 (as membank wrote it before: a page
 * be64 time ++ map, a time-index value empty, jend 24 raw bytes, no meta
 * "format") is rebuilt by the next open, transparently, and a value that is
 * not its documented shape reads as MB_ECORRUPT, never crashes.
 */
#include "hard.h"
#include "bank.h"
#include "internal.h"

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static void store_of(const char *path, char *out, size_t cap)
{
	snprintf(out, cap, "%s/store", path);
}

static kv_env *store_open(const char *path)
{
	char store[4096], err[256];
	kv_env *kv = NULL;

	store_of(path, store, sizeof store);
	if (kv_open(store, 0600, (size_t)64 << 20, &kv, err, sizeof err))
		fprintf(stderr, "kv_open %s: %s\n", store, err);
	return kv;
}

typedef struct raw {
	uint8_t *k, *v;
	size_t klen, vlen;
} raw;

/* Every entry of @db, copied (the cursor's pointers die with the txn). */
static size_t all_of(kv_txn *t, int db, raw *out, size_t cap)
{
	kv_cursor *c;
	kv_val k, v;
	size_t n = 0;
	int rc;

	assert_int_equal(kv_cursor_open(t, db, &c), 0);
	for (rc = kv_cursor_seek(c, NULL, &k, &v); !rc; rc = kv_cursor_next(c, &k, &v)) {
		assert_true(n < cap);
		out[n].k = malloc(k.len + 1);
		out[n].v = malloc(v.len + 1);
		memcpy(out[n].k, k.data, k.len);
		memcpy(out[n].v, v.data, v.len);
		out[n].klen = k.len;
		out[n++].vlen = v.len;
	}
	kv_cursor_close(c);
	assert_int_equal(rc, MB_ENOTFOUND);
	return n;
}

static void free_raw(raw *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(r[i].k);
		free(r[i].v);
	}
}

static void replace_in_file(const char *path, const char *from, const char *to)
{
	size_t len;
	char *text = slurp(path, &len), *at, *out;

	assert_non_null(text);
	assert_non_null(at = strstr(text, from));
	assert_true(asprintf(&out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from)) > 0);
	assert_int_equal(spit(path, out, strlen(out)), 0);
	free(out);
	free(text);
}

/* Rewrite the closed bank at @path as membank wrote it before store format
 * 2: the three values of another layout, no meta "format", membank.json
 * format 1 (the rest of it as it was). */
static void to_format1(const char *path)
{
	static raw r[512];
	kv_env *kv = store_open(path);
	uint8_t buf[4096], jend[24];
	const uint8_t *props;
	char ident[4096];
	int64_t ts;
	size_t n, plen;
	mbj_pos end;
	kv_txn *t;

	assert_non_null(kv);
	assert_int_equal(kv_begin(kv, true, &t), 0);
	n = all_of(t, KV_PAGES, r, 512);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(st_page_split((kv_val){ r[i].v, r[i].vlen }, &ts, &props, &plen), 0);
		assert_true(plen + 8 <= sizeof buf);
		st_be64(buf, (uint64_t)ts);
		memcpy(buf + 8, props, plen);
		assert_int_equal(kv_put(t, KV_PAGES, (kv_val){ r[i].k, r[i].klen },
		                        (kv_val){ buf, 8 + plen }), 0);
	}
	free_raw(r, n);
	n = all_of(t, KV_PTIME, r, 512);
	assert_true(n > 0);   /* the tests turn the index on: format 1 kept "" there */
	for (size_t i = 0; i < n; i++)
		assert_int_equal(kv_put(t, KV_PTIME, (kv_val){ r[i].k, r[i].klen },
		                        (kv_val){ "", 0 }), 0);
	free_raw(r, n);
	assert_int_equal(bank_jend_load(t, &end), 0);
	assert_true(end.seq > 0);
	le64(jend, end.segment);
	le64(jend + 8, end.offset);
	le64(jend + 16, end.seq);
	assert_int_equal(kv_put(t, KV_META, (kv_val){ "jend", 4 }, (kv_val){ jend, 24 }), 0);
	assert_int_equal(kv_del(t, KV_META, (kv_val){ "format", 6 }), 0);
	assert_int_equal(kv_commit(t), 0);
	kv_close(kv);
	snprintf(ident, sizeof ident, "%s/membank.json", path);
	replace_in_file(ident, "\"format\":2", "\"format\":1");
}

/* The meta "format" of the closed bank at @path (1 when absent). */
static int64_t format_of(const char *path)
{
	kv_env *kv = store_open(path);
	int64_t format = -1;
	kv_txn *t;

	assert_non_null(kv);
	assert_int_equal(kv_begin(kv, false, &t), 0);
	assert_int_equal(st_format_load(t, &format), 0);
	kv_abort(t);
	kv_close(kv);
	return format;
}

/* Every value of every database is exactly one msgpack document of its
 * documented shape (the current layout). */
static void assert_format2(mb_bank *b)
{
	static raw r[512];
	const uint8_t *props;
	int64_t ts, format;
	size_t n, plen;
	mbj_pos end;
	kv_txn *t;

	assert_int_equal(kv_begin(b->kv, false, &t), 0);
	assert_int_equal(st_format_load(t, &format), 0);
	assert_int_equal(format, MB_STORE_FORMAT);
	n = all_of(t, KV_PAGES, r, 512);
	assert_true(n > 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(r[i].v[0], 0x92);
		assert_int_equal(mp_check(r[i].v, r[i].vlen), 0);
		assert_int_equal(st_page_split((kv_val){ r[i].v, r[i].vlen }, &ts, &props, &plen), 0);
		assert_int_equal(mp_check(props, plen), 0);
	}
	free_raw(r, n);
	n = all_of(t, KV_PTIME, r, 512);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(r[i].vlen, 1);
		assert_int_equal(r[i].v[0], 0xc0);
	}
	free_raw(r, n);
	for (int db = KV_META; db < KV_NDB; db++) {
		n = all_of(t, db, r, 512);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(mp_check(r[i].v, r[i].vlen), 0);
		free_raw(r, n);
	}
	assert_int_equal(bank_jend_load(t, &end), 0);
	assert_true(end.seq > 0);
	kv_abort(t);
}

/* A bank with every kind of record, a checkpoint and a journal tail after
 * it; the time index on (max_entries), one page evicted. */
static mb_bank *fill(const char *path)
{
	mb_bank *b = open_opts(path, MB_DURABILITY_FAST, 0, 0);
	char id[32];

	assert_non_null(b);
	assert_int_equal(mb_config_update(b, "{\"cache_settings\":{\"max_entries\":40}}",
	                                  (size_t)-1), 0);
	for (int i = 0; i < 30; i++) {
		snprintf(id, sizeof id, "page-%02d", i);
		assert_int_equal(mb_page_put(b, id, "{\"title\":\"Roadmap\",\"n\":7,\"f\":1.5}",
		                             (size_t)-1), 0);
	}
	assert_int_equal(mb_page_merge(b, "page-03", "{\"owner\":\"ana\",\"n\":null}", (size_t)-1), 0);
	assert_int_equal(mb_page_delete(b, "page-04"), 0);
	assert_int_equal(mb_sync_record(b, "success", NULL), 0);
	assert_int_equal(mb_error_log(b, "rate_limited", "HTTP 429"), 0);
	assert_int_equal(mb_snapshot(b, NULL, NULL), 0);
	for (int i = 30; i < 45; i++) {   /* 5 evicted past 40 */
		snprintf(id, sizeof id, "page-%02d", i);
		assert_int_equal(mb_page_put(b, id, "{\"after\":\"checkpoint\"}", (size_t)-1), 0);
	}
	assert_int_equal(mb_page_merge(b, "page-40", "{\"x\":[1,2,{\"y\":-3}]}", (size_t)-1), 0);
	assert_int_equal(mb_sync_record(b, "failed", "HTTP 502"), 0);
	assert_int_equal(mb_error_resolve(b, "rate_limited", "back off"), 0);
	return b;
}

/* A store of format 1 is rebuilt from the checkpoint and the journal by the
 * next open: same documents, every value msgpack, membank.json format 2 with
 * its other keys as they were.  journal verify reads it before that. */
static void test_format1_store_rebuilt(void **state)
{
	fx *f = *state;
	mb_bank *b = fill(f->path);
	char *before, *after, *report = NULL, ident[4096], *orig, *now;

	before = state_of(b);
	assert_format2(b);
	mb_close(b);
	snprintf(ident, sizeof ident, "%s/membank.json", f->path);
	assert_non_null(orig = slurp(ident, NULL));
	assert_non_null(strstr(orig, "\"format\":2,"));
	to_format1(f->path);
	assert_int_equal(format_of(f->path), 1);

	/* the journal check reads a format-1 store's committed end */
	assert_int_equal(mb_journal_verify(f->path, &report), 0);
	assert_non_null(strstr(report, "\"clean\":true"));
	mb_free(report);

	assert_non_null(b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0));
	after = state_of(b);
	assert_string_equal(before, after);
	assert_format2(b);
	assert_non_null(now = slurp(ident, NULL));
	assert_string_equal(now, orig);   /* format 2 again, nothing else changed */
	assert_rebuild_same(b);
	assert_int_equal(mb_page_put(b, "new", "{\"k\":1}", (size_t)-1), 0);
	mb_close(b);
	assert_int_equal(format_of(f->path), MB_STORE_FORMAT);
	free(before);
	free(after);
	free(orig);
	free(now);
}

/* membank.json of format 1 without cache_settings (a bank from before they
 * were recorded): the upgrade keeps it without. */
static void test_format1_identity_kept(void **state)
{
	static const char old_identity[] = "{\"format\":1,\"history_limit\":100}\n";
	fx *f = *state;
	char path[4096], *text;
	mb_bank *b;

	assert_int_equal(mkdir(f->path, 0700), 0);
	snprintf(path, sizeof path, "%s/membank.json", f->path);
	assert_int_equal(spit(path, old_identity, strlen(old_identity)), 0);
	assert_non_null(b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0));
	mb_close(b);
	assert_non_null(text = slurp(path, NULL));
	assert_string_equal(text, "{\"format\":2,\"history_limit\":100}\n");
	free(text);
}

/* A process that has the format-1 store open (only an older library can)
 * makes the open refuse (MB_EPERM, saying why) and change nothing; once it
 * is gone the open upgrades. */
static void test_format1_store_in_use(void **state)
{
	fx *f = *state;
	mb_bank *b = fill(f->path);
	char *before = state_of(b), *after, c;
	int ready[2], hold[2];
	pid_t pid;
	int rc;

	mb_close(b);
	to_format1(f->path);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(hold), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		kv_env *kv = store_open(f->path);
		close(ready[0]);
		close(hold[1]);
		if (!kv || write(ready[1], "r", 1) != 1)
			_exit(1);
		while (read(hold[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	b = NULL;
	rc = mb_open(f->path, NULL, &b);
	printf("open while a process has the format-1 store: %s: %s\n", mb_errname(rc),
	       mb_last_error(NULL));
	assert_int_equal(rc, MB_EPERM);
	assert_null(b);
	assert_non_null(strstr(mb_last_error(NULL), "older format"));
	assert_non_null(strstr(mb_last_error(NULL), "open in another process"));
	close(hold[1]);
	assert_int_equal(wait_child(pid, 60), 0);
	close(ready[0]);
	assert_int_equal(format_of(f->path), 1);   /* nothing changed */

	assert_non_null(b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0));
	after = state_of(b);
	assert_string_equal(before, after);
	assert_format2(b);
	mb_close(b);
	free(before);
	free(after);
}

static void put_meta(const char *path, const char *key, const void *v, size_t len)
{
	kv_env *kv = store_open(path);
	kv_txn *t;

	assert_non_null(kv);
	assert_int_equal(kv_begin(kv, true, &t), 0);
	assert_int_equal(kv_put(t, KV_META, (kv_val){ key, strlen(key) }, (kv_val){ v, len }), 0);
	assert_int_equal(kv_commit(t), 0);
	kv_close(kv);
}

/* A store of a newer format is MB_EVERSION, left as it is; a format record
 * that is damaged is a damaged cache: rebuilt. */
static void test_store_format_record(void **state)
{
	fx *f = *state;
	mb_bank *b = fill(f->path);
	char *before = state_of(b), *after;
	int rc;

	mb_close(b);
	put_meta(f->path, "format", "\x03", 1);
	b = NULL;
	rc = mb_open(f->path, NULL, &b);
	printf("open of a store of format 3: %s: %s\n", mb_errname(rc), mb_last_error(NULL));
	assert_int_equal(rc, MB_EVERSION);
	assert_non_null(strstr(mb_last_error(NULL), "store format 3"));
	assert_int_equal(format_of(f->path), 3);

	put_meta(f->path, "format", "\xa1x", 2);
	assert_non_null(b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0));
	after = state_of(b);
	assert_string_equal(before, after);
	assert_format2(b);
	mb_close(b);
	free(before);
	free(after);
}

/* ------------------------------------------------------ hostile values */

typedef int (*probe_fn)(mb_bank *b, const char *dir);

static int probe_get(mb_bank *b, const char *dir)
{
	char *s = NULL;
	int rc = mb_page_get(b, "p", &s, NULL);

	(void)dir;
	mb_free(s);
	return rc;
}

static int count_page(void *ctx, const char *id, const char *page)
{
	(void)id, (void)page;
	++*(int *)ctx;
	return 0;
}

static int probe_iterate(mb_bank *b, const char *dir)
{
	int n = 0, rc;

	(void)dir;
	rc = mb_page_iterate(b, NULL, 0, count_page, &n);
	/* its own message, not an earlier call's (probe_get ran before) */
	if (rc && !strstr(mb_last_error(b), "page iterate"))
		fail_msg("page iterate: message \"%s\"", mb_last_error(b));
	return rc;
}

static int probe_merge(mb_bank *b, const char *dir)
{
	(void)dir;
	return mb_page_merge(b, "p", "{\"m\":1}", (size_t)-1);
}

static int probe_snapshot(mb_bank *b, const char *dir)
{
	return mb_snapshot(b, dir, NULL);
}

static int probe_doc(mb_bank *b, int (*fn)(mb_bank *, char **))
{
	char *s = NULL;
	int rc = fn(b, &s);

	mb_free(s);
	return rc;
}

static int probe_sync(mb_bank *b, const char *dir)
{
	(void)dir;
	return probe_doc(b, mb_sync_status);
}

static int probe_errors(mb_bank *b, const char *dir)
{
	(void)dir;
	return probe_doc(b, mb_error_stats);
}

static int probe_config(mb_bank *b, const char *dir)
{
	(void)dir;
	return probe_doc(b, mb_config_get);
}

static int probe_stats(mb_bank *b, const char *dir)
{
	(void)dir;
	return probe_doc(b, mb_stats);
}

static int probe_last_seq(mb_bank *b, const char *dir)
{
	uint64_t seq;

	(void)dir;
	return mb_journal_last_seq(b, &seq);
}

static int probe_put(mb_bank *b, const char *dir)
{
	(void)dir;
	return mb_page_put(b, "q", "{}", (size_t)-1);
}

#define V(s) s, sizeof s - 1
/* a valid time, 1764000000000000 us (2025-11-24T16:00:00Z), as msgpack uint64 */
#define TS "\xcf\x00\x06\x44\x59\x41\x62\x40\x00"

typedef struct hostile {
	const char *what;
	int db;
	const char *key;
	const char *val;
	size_t len;
	probe_fn probes[4];
} hostile;

static const hostile cases[] = {
	{ "page: empty", KV_PAGES, "p", V(""), { probe_get, probe_iterate, probe_merge, probe_snapshot } },
	{ "page: format 1 (be64 ++ map)", KV_PAGES, "p", V("\x00\x06\x44\x59\x41\x62\x40\x00\x80"),
	  { probe_get, probe_iterate, probe_merge, probe_snapshot } },
	{ "page: array of 1", KV_PAGES, "p", V("\x91" TS), { probe_get, probe_iterate, probe_merge } },
	{ "page: array of 3", KV_PAGES, "p", V("\x93" TS "\x80\x01"), { probe_get, probe_iterate, probe_merge } },
	{ "page: time a string", KV_PAGES, "p", V("\x92\xa1x\x80"), { probe_get, probe_iterate, probe_merge } },
	{ "page: time past int64", KV_PAGES, "p", V("\x92\xcf\xff\xff\xff\xff\xff\xff\xff\xff\x80"),
	  { probe_get, probe_iterate } },
	{ "page: properties an array", KV_PAGES, "p", V("\x92" TS "\x90"), { probe_get, probe_iterate, probe_merge } },
	{ "page: properties missing", KV_PAGES, "p", V("\x92" TS), { probe_get, probe_iterate, probe_merge } },
	{ "page: properties cut short", KV_PAGES, "p", V("\x92" TS "\x81\xa1k\xa5va"),
	  { probe_get, probe_iterate, probe_merge, probe_snapshot } },
	{ "page: a byte after the document", KV_PAGES, "p", V("\x92" TS "\x81\xa1k\x01\xc0"),
	  { probe_get, probe_iterate, probe_merge, probe_snapshot } },
	{ "page: a second map after", KV_PAGES, "p", V("\x92" TS "\x80\x80"),
	  { probe_get, probe_iterate, probe_merge, probe_snapshot } },
	{ "jend: 24 raw bytes (format 1)", KV_META, "jend",
	  V("\x01\0\0\0\0\0\0\0\x40\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0"),
	  { probe_last_seq, probe_stats, probe_put } },
	{ "jend: array of 2", KV_META, "jend", V("\x92\x01\x02"), { probe_last_seq, probe_stats, probe_put } },
	{ "jend: negative", KV_META, "jend", V("\x93\x01\xff\x02"), { probe_last_seq, probe_put } },
	{ "jend: a string", KV_META, "jend", V("\x93\x01\xa1x\x02"), { probe_last_seq, probe_put } },
	{ "jend: a byte after", KV_META, "jend", V("\x93\x01\x02\x03\xc0"), { probe_last_seq, probe_put } },
	{ "sync: a byte after", KV_META, "sync", V("\x96\xa7success\xc0\xc0\x00\x01\x01\xc0"), { probe_sync } },
	{ "sync: array of 5", KV_META, "sync", V("\x95\xa7success\xc0\xc0\x00\x01"), { probe_sync } },
	{ "errors: a byte after", KV_META, "errors", V("\x97\x01\x00\x01\xc0\xc0\xc0\x00\xc0"), { probe_errors } },
	{ "errors: counts strings", KV_META, "errors", V("\x97\xa1x\x00\x01\xc0\xc0\xc0\x00"), { probe_errors } },
	{ "config: a byte after", KV_META, "config",
	  V("\x98\xaa" "2022-06-28\x03\x1e\xa4INFO\xc3\x00\x00\xc0\xc0"), { probe_config, probe_get } },
	{ "config: array of 7", KV_META, "config", V("\x97\xaa" "2022-06-28\x03\x1e\xa4INFO\xc3\x00\x00"),
	  { probe_config, probe_get } },
	{ "errtype: a byte after", KV_ERRTYPES, "T", V("\x95\x01\x00\xc0\xc0\xc0\xc0"), { probe_errors } },
	{ "errtype: array of 6", KV_ERRTYPES, "T", V("\x96\x01\x00\xc0\xc0\xc0\xc0"), { probe_errors } },
	{ "synchist: a byte after", KV_SYNCHIST, "\0\0\0\0\0\0\0\0", V("\x93" TS "\xa2ok\xc0\xc0"), { probe_sync } },
	{ "synchist: array of 2", KV_SYNCHIST, "\0\0\0\0\0\0\0\0", V("\x92" TS "\xa2ok"), { probe_sync } },
	{ "errhist: type an int", KV_ERRHIST, "\0\0\0\0\0\0\0\0", V("\x93" TS "\x01\xa1m"), { probe_snapshot } },
	{ "errhist: a byte after", KV_ERRHIST, "\0\0\0\0\0\0\0\0", V("\x93" TS "\xa1T\xa1m\x00"), { probe_snapshot } },
};

static size_t key_len(const hostile *h)
{
	return h->db == KV_SYNCHIST || h->db == KV_ERRHIST ? 8 : strlen(h->key);
}

/* A write under the store layer's feet, as a damaged disk or another
 * program would make it: what the layer cached in this process (kv.h,
 * CARRY) is forgotten, as another process's commit would make it be. */
static void raw_write(kv_txn *t)
{
	memset(kv_txn_scratch(t), 0, KV_TXN_SCRATCH);
}

/* Each hostile value alone in a healthy bank: every read that meets it
 * says MB_ECORRUPT; with the value put back, the bank is as it was. */
static void test_hostile_values(void **state)
{
	fx *f = *state;
	mb_bank *b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);
	char out[4096], *before, *after;
	uint8_t saved[256];
	kv_txn *t;
	kv_val v;

	assert_non_null(b);
	snprintf(out, sizeof out, "%s/out", f->dir);
	assert_int_equal(mkdir(out, 0700), 0);
	assert_int_equal(mb_page_put(b, "p", "{\"k\":\"v\"}", (size_t)-1), 0);
	assert_int_equal(mb_sync_record(b, "ok", NULL), 0);
	assert_int_equal(mb_error_log(b, "T", "m"), 0);
	assert_int_equal(mb_config_update(b, "{\"cache_settings\":{\"max_entries\":0}}", (size_t)-1), 0);
	before = state_of(b);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const hostile *h = &cases[i];
		kv_val key = { h->key, key_len(h) };
		size_t len;

		assert_int_equal(kv_begin(b->kv, true, &t), 0);
		raw_write(t);
		assert_int_equal(kv_get(t, h->db, key, &v), 0);
		assert_true(v.len <= sizeof saved);
		memcpy(saved, v.data, len = v.len);
		assert_int_equal(kv_put(t, h->db, key, (kv_val){ h->val, h->len }), 0);
		assert_int_equal(kv_commit(t), 0);
		for (int p = 0; p < 4 && h->probes[p]; p++) {
			int rc = h->probes[p](b, out);
			printf("%s, probe %d: %s: %s\n", h->what, p, mb_errname(rc), mb_last_error(b));
			if (rc != MB_ECORRUPT)
				fail_msg("%s: probe %d gave %s, not MB_ECORRUPT", h->what, p, mb_errname(rc));
		}
		assert_int_equal(kv_begin(b->kv, true, &t), 0);
		raw_write(t);
		assert_int_equal(kv_put(t, h->db, key, (kv_val){ saved, len }), 0);
		assert_int_equal(kv_commit(t), 0);
		/* a write refused after its append left a cancelled record the
		 * store has not applied yet: a rebuild replays the journal (and
		 * shows that nothing refused took effect) */
		assert_int_equal(mb_rebuild(b), 0);
		after = state_of(b);
		assert_string_equal(before, after);
		free(after);
	}
	free(before);
	mb_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_format1_store_rebuilt, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_format1_identity_kept, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_format1_store_in_use, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_format_record, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_values, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
