/*
 * test_batch.c - batches: many mutations applied as one record, all or none.
 *
 * Proven here: a batch gives the state the same calls one by one give, as
 * one journal record; bad input fails its add alone; a delete of a page that
 * is absent at its point of the batch fails the whole batch and nothing
 * changes; the bounds; replay gives the same store; processes committing
 * batches at once lose nothing; and payloads whose properties nest the full
 * MB_MAX_DEPTH inside a record's wrappers replay (batched or withdrawn).
 */
#include "helpers.h"
#include "bank.h"
#include "internal.h"

typedef struct fx {
	char *dir;
	mb_bank *b;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);

	f->dir = tmp_dir();
	f->b = open_bank(f->dir, MB_DURABILITY_FAST);
	*state = f;
	return f->b ? 0 : -1;
}

static int teardown(void **state)
{
	fx *f = *state;

	mb_close(f->b);
	rm_rf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static uint64_t last_seq(mb_bank *b)
{
	uint64_t s = 0;

	assert_int_equal(mb_journal_last_seq(b, &s), 0);
	return s;
}

/* The same mutations, one by one on @one and as a batch on @two. */
static void apply_both(mb_bank *one, mb_bank *two)
{
	mb_batch *bt;

	assert_int_equal(mb_page_put(one, "a", "{\"n\":1,\"s\":\"x\"}", (size_t)-1), 0);
	assert_int_equal(mb_page_put(one, "b", "{\"n\":2}", (size_t)-1), 0);
	assert_int_equal(mb_page_merge(one, "a", "{\"m\":[1,2],\"s\":null}", (size_t)-1), 0);
	assert_int_equal(mb_page_delete(one, "b"), 0);
	assert_int_equal(mb_sync_record(one, "success", NULL), 0);
	assert_int_equal(mb_sync_record(one, "failed", "HTTP 502"), 0);
	assert_int_equal(mb_error_log(one, "rate_limited", "429"), 0);
	assert_int_equal(mb_error_resolve(one, "rate_limited", "back off"), 0);
	assert_int_equal(mb_config_update(one, "{\"notion_settings\":{\"retry_attempts\":7}}",
	                                  (size_t)-1), 0);

	assert_int_equal(mb_batch_begin(two, &bt), 0);
	assert_int_equal(mb_batch_page_put(bt, "a", "{\"n\":1,\"s\":\"x\"}", (size_t)-1), 0);
	assert_int_equal(mb_batch_page_put(bt, "b", "{\"n\":2}", (size_t)-1), 0);
	assert_int_equal(mb_batch_page_merge(bt, "a", "{\"m\":[1,2],\"s\":null}", (size_t)-1), 0);
	assert_int_equal(mb_batch_page_delete(bt, "b"), 0);  /* put earlier in the batch */
	assert_int_equal(mb_batch_sync_record(bt, "success", NULL), 0);
	assert_int_equal(mb_batch_sync_record(bt, "failed", "HTTP 502"), 0);
	assert_int_equal(mb_batch_error_log(bt, "rate_limited", "429"), 0);
	assert_int_equal(mb_batch_error_resolve(bt, "rate_limited", "back off"), 0);
	assert_int_equal(mb_batch_config_update(bt, "{\"notion_settings\":{\"retry_attempts\":7}}",
	                                        (size_t)-1), 0);
	assert_int_equal(mb_batch_count(bt), 9);
	assert_int_equal(mb_batch_commit(bt), 0);
}

/* Drop what differs only by time: every "...Z" timestamp becomes "T". */
static void untime(char *s)
{
	char *w = s;

	for (char *r = s; *r; ) {
		if (r[0] == '"' && r[1] >= '0' && r[1] <= '9' && strlen(r) > 28 && r[11] == 'T' &&
		    r[27] == 'Z' && r[28] == '"') {
			*w++ = 'T';
			r += 29;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

static void test_batch_equals_single_calls(void **state)
{
	fx *f = *state;
	char *d2 = tmp_dir(), *s1, *s2;
	mb_bank *two = open_bank(d2, MB_DURABILITY_FULL);
	uint64_t before;

	assert_non_null(two);
	before = last_seq(two);
	apply_both(f->b, two);
	assert_int_equal(last_seq(two), before + 1);  /* one record */
	s1 = state_of(f->b);
	s2 = state_of(two);
	untime(s1);
	untime(s2);
	assert_string_equal(s1, s2);
	assert_non_null(strstr(s2, "\"m\":[1,2]"));
	free(s1);
	free(s2);
	assert_rebuild_same(two);
	mb_close(two);
	rm_rf(d2);
	free(d2);
}

static int find_batch(void *ctx, uint64_t seq, const char *ev)
{
	(void)seq;
	if (strstr(ev, "\"op\":\"batch\""))
		*(char **)ctx = strdup(ev);
	return 0;
}

static void test_batch_event(void **state)
{
	fx *f = *state;
	mb_batch *bt;
	char *ev = NULL;

	assert_int_equal(mb_batch_begin(f->b, &bt), 0);
	assert_int_equal(mb_batch_page_put(bt, "p", "{\"k\":1.5}", (size_t)-1), 0);
	assert_int_equal(mb_batch_error_log(bt, "E", "m"), 0);
	assert_int_equal(mb_batch_commit(bt), 0);
	assert_int_equal(mb_journal_read(f->b, 0, find_batch, &ev), 0);
	assert_non_null(ev);
	assert_non_null(strstr(ev, "\"ops\":[{\"op\":\"page.put\",\"id\":\"p\",\"properties\":{\"k\":1.5}},"
	                           "{\"op\":\"error.log\",\"error_type\":\"E\",\"message\":\"m\"}]}"));
	free(ev);
}

static void expect(mb_bank *b, int rc, int want, const char *needle)
{
	if (rc != want || !strstr(mb_last_error(b), needle))
		fail_msg("want %d naming \"%s\", got %d \"%s\"", want, needle, rc, mb_last_error(b));
}

static void test_bad_input_fails_its_add_alone(void **state)
{
	fx *f = *state;
	mb_batch *bt;
	char *s, *before, *after;

	before = state_of(f->b);
	assert_int_equal(mb_batch_begin(f->b, &bt), 0);
	assert_int_equal(mb_batch_page_put(bt, "ok1", "{}", 2), 0);
	expect(f->b, mb_batch_page_put(bt, "bad", "{\"a\":", (size_t)-1), MB_EINVAL, "properties");
	expect(f->b, mb_batch_page_put(bt, "", "{}", 2), MB_EINVAL, "page id");
	expect(f->b, mb_batch_page_merge(bt, "m", "[1]", (size_t)-1), MB_EINVAL, "object");
	expect(f->b, mb_batch_sync_record(bt, "", NULL), MB_EINVAL, "status");
	expect(f->b, mb_batch_error_log(bt, NULL, "m"), MB_EINVAL, "error type");
	expect(f->b, mb_batch_config_update(bt, "{\"nope\":1}", (size_t)-1), MB_EINVAL, "nope");
	expect(f->b, mb_batch_page_delete(bt, NULL), MB_EINVAL, "page id");
	expect(NULL, mb_batch_page_put(NULL, "x", "{}", 2), MB_EINVAL, "batch");
	assert_int_equal(mb_batch_count(bt), 1);
	after = state_of(f->b);
	assert_string_equal(before, after);  /* adding writes nothing */
	free(after);
	assert_int_equal(mb_batch_page_put(bt, "ok2", "{}", 2), 0);
	assert_int_equal(mb_batch_commit(bt), 0);
	assert_int_equal(mb_page_get(f->b, "ok1", &s, NULL), 0);
	mb_free(s);
	assert_int_equal(mb_page_get(f->b, "ok2", &s, NULL), 0);
	mb_free(s);
	assert_int_equal(mb_page_get(f->b, "bad", &s, NULL), MB_ENOTFOUND);
	free(before);
	/* an aborted batch applies nothing; an empty commit writes nothing */
	uint64_t seq = last_seq(f->b);
	assert_int_equal(mb_batch_begin(f->b, &bt), 0);
	assert_int_equal(mb_batch_page_put(bt, "never", "{}", 2), 0);
	mb_batch_abort(bt);
	mb_batch_abort(NULL);
	assert_int_equal(mb_batch_begin(f->b, &bt), 0);
	assert_int_equal(mb_batch_commit(bt), 0);
	assert_int_equal(last_seq(f->b), seq);
	assert_int_equal(mb_page_get(f->b, "never", &s, NULL), MB_ENOTFOUND);
	expect(f->b, mb_batch_begin(f->b, NULL), MB_EINVAL, "NULL");
}

/* A config update inside a batch governs the operations after it, as it
 * would one call later: eviction turned on mid-batch drops the oldest
 * pages as the batch's later puts arrive.  (A pass reads the config once,
 * apply.c ONE PASS, and must read it again after such a record.) */
static void test_config_inside_batch(void **state)
{
	fx *f = *state;
	mb_batch *bt;
	char *s;

	assert_int_equal(mb_config_update(f->b, "{\"cache_settings\":{\"max_entries\":0,"
	                                  "\"ttl_seconds\":0}}", (size_t)-1), 0);
	assert_int_equal(mb_batch_begin(f->b, &bt), 0);
	assert_int_equal(mb_batch_page_put(bt, "p1", "{}", 2), 0);
	assert_int_equal(mb_batch_page_put(bt, "p2", "{}", 2), 0);
	assert_int_equal(mb_batch_config_update(bt, "{\"cache_settings\":{\"max_entries\":2}}",
	                                        (size_t)-1), 0);
	assert_int_equal(mb_batch_page_put(bt, "p3", "{}", 2), 0);
	assert_int_equal(mb_batch_page_put(bt, "p4", "{}", 2), 0);
	assert_int_equal(mb_batch_config_update(bt, "{\"cache_settings\":{\"max_entries\":0}}",
	                                        (size_t)-1), 0);
	assert_int_equal(mb_batch_page_put(bt, "p5", "{}", 2), 0);
	assert_int_equal(mb_batch_commit(bt), 0);
	assert_int_equal(mb_page_get(f->b, "p1", &s, NULL), MB_ENOTFOUND);
	assert_int_equal(mb_page_get(f->b, "p2", &s, NULL), MB_ENOTFOUND);
	for (const char *const *id = (const char *const[]){ "p3", "p4", "p5", NULL }; *id; id++) {
		assert_int_equal(mb_page_get(f->b, *id, &s, NULL), 0);
		mb_free(s);
	}
	assert_int_equal(mb_stats(f->b, &s), 0);
	assert_non_null(strstr(s, "\"pages\":3,"));
	assert_non_null(strstr(s, "\"pages_evicted\":2,"));
	mb_free(s);
	assert_rebuild_same(f->b);
}

static void test_missing_delete_fails_all(void **state)
{
	fx *f = *state;
	mb_batch *bt;
	char *before, *after;
	uint64_t seq;

	assert_int_equal(mb_page_put(f->b, "here", "{\"v\":1}", (size_t)-1), 0);
	before = state_of(f->b);
	seq = last_seq(f->b);
	/* absent in the store */
	assert_int_equal(mb_batch_begin(f->b, &bt), 0);
	assert_int_equal(mb_batch_page_put(bt, "new", "{}", 2), 0);
	assert_int_equal(mb_batch_page_delete(bt, "here"), 0);
	assert_int_equal(mb_batch_page_delete(bt, "nowhere"), 0);
	assert_int_equal(mb_batch_sync_record(bt, "success", NULL), 0);
	expect(f->b, mb_batch_commit(bt), MB_ENOTFOUND, "operation 3 (page delete): page \"nowhere\"");
	/* deleted earlier in the same batch */
	assert_int_equal(mb_batch_begin(f->b, &bt), 0);
	assert_int_equal(mb_batch_page_delete(bt, "here"), 0);
	assert_int_equal(mb_batch_page_merge(bt, "x", "{}", 2), 0);
	assert_int_equal(mb_batch_page_delete(bt, "here"), 0);
	expect(f->b, mb_batch_commit(bt), MB_ENOTFOUND, "operation 3");
	after = state_of(f->b);
	assert_string_equal(before, after);
	assert_int_equal(last_seq(f->b), seq);
	free(after);
	/* put, delete, put again: the page is there at the end */
	assert_int_equal(mb_batch_begin(f->b, &bt), 0);
	assert_int_equal(mb_batch_page_delete(bt, "here"), 0);
	assert_int_equal(mb_batch_page_put(bt, "here", "{\"v\":2}", (size_t)-1), 0);
	assert_int_equal(mb_batch_page_delete(bt, "here"), 0);
	assert_int_equal(mb_batch_page_put(bt, "here", "{\"v\":3}", (size_t)-1), 0);
	assert_int_equal(mb_batch_commit(bt), 0);
	after = NULL;
	assert_int_equal(mb_page_get(f->b, "here", &after, NULL), 0);
	assert_non_null(strstr(after, "{\"v\":3}"));
	mb_free(after);
	free(before);
	assert_rebuild_same(f->b);
}

static void test_bounds(void **state)
{
	fx *f = *state;
	mb_batch *bt;
	size_t big = (size_t)1000 * 1000;
	char *json = malloc(big + 16), id[16];
	int rc = 0, n = 0;

	/* 1 MB pages until the batch would pass the 32 MiB record limit */
	memcpy(json, "{\"s\":\"", 6);
	memset(json + 6, 'x', big - 8);
	memcpy(json + big - 2, "\"}", 3);
	assert_int_equal(mb_batch_begin(f->b, &bt), 0);
	while (n < 40 && !(rc = mb_batch_page_put(bt, (snprintf(id, sizeof id, "big%d", n), id),
	                                          json, (size_t)-1)))
		n++;
	expect(f->b, rc, MB_EINVAL, "record limit");
	assert_true(n >= 30 && n <= 34);
	assert_int_equal(mb_batch_count(bt), (size_t)n);
	assert_int_equal(mb_batch_commit(bt), 0);
	free(json);
	assert_int_equal(mb_page_get(f->b, "big0", &json, NULL), 0);
	mb_free(json);
	/* the operation count */
	assert_int_equal(mb_batch_begin(f->b, &bt), 0);
	for (unsigned i = 0; i < MB_MAX_BATCH_OPS; i++)
		if ((rc = mb_batch_sync_record(bt, "s", NULL)))
			break;
	assert_int_equal(rc, 0);
	expect(f->b, mb_batch_sync_record(bt, "s", NULL), MB_EINVAL, "100000 operations");
	assert_int_equal(mb_batch_commit(bt), 0);
	char *st = NULL;
	assert_int_equal(mb_sync_status(f->b, &st), 0);
	assert_non_null(strstr(st, "\"success_count\":0"));
	assert_non_null(strstr(st, "\"current_status\":\"s\""));
	mb_free(st);
}

/* Properties nested the full MB_MAX_DEPTH are accepted by a put; inside a
 * batch, and in a record withdrawn after a failed commit, they sit below
 * more containers, and a replay must still take them. */
static void test_full_depth_in_wrappers(void **state)
{
	fx *f = *state;
	char *deep = malloc(MB_MAX_DEPTH * 6 + 8), *p = deep, *s;
	mb_buf rec = { 0 };
	mbj_pos end;
	kv_txn *t;
	mb_batch *bt;

	for (unsigned i = 0; i < MB_MAX_DEPTH; i++)
		p += sprintf(p, "{\"a\":");
	*p++ = '1';
	for (unsigned i = 0; i < MB_MAX_DEPTH; i++)
		*p++ = '}';
	*p = '\0';
	assert_int_equal(mb_batch_begin(f->b, &bt), 0);
	assert_int_equal(mb_batch_page_put(bt, "deep-batched", deep, (size_t)-1), 0);
	assert_int_equal(mb_batch_commit(bt), 0);
	assert_rebuild_same(f->b);
	/* a put whose record is then withdrawn (as write.c does after a failed
	 * commit): the replay applies it as nothing */
	assert_int_equal(mb_page_put(f->b, "deep-withdrawn", deep, (size_t)-1), 0);
	assert_int_equal(bank_prep_page(f->b, "deep-withdrawn", deep, strlen(deep), &rec), 0);
	assert_int_equal(kv_begin(f->b->kv, false, &t), 0);
	assert_int_equal(bank_jend_load(t, &end), 0);
	kv_abort(t);
	assert_int_equal(mbj_retype(f->b->jn, &end, (uint32_t)rec.len, REC_CANCELLED), 0);
	buf_free(&rec);
	assert_int_equal(mb_rebuild(f->b), 0);
	assert_int_equal(mb_page_get(f->b, "deep-withdrawn", &s, NULL), MB_ENOTFOUND);
	assert_int_equal(mb_page_get(f->b, "deep-batched", &s, NULL), 0);
	mb_free(s);
	free(deep);
}

/* Four processes commit batches at once: exact totals. */
static void test_processes(void **state)
{
	fx *f = *state;
	char path[4096], id[32], *doc;
	pid_t pids[4];
	uint64_t n;

	snprintf(path, sizeof path, "%s/bank", f->dir);
	assert_int_equal(mb_config_update(f->b, "{\"cache_settings\":{\"max_entries\":0}}",
	                                  (size_t)-1), 0);
	for (int w = 0; w < 4; w++) {
		if ((pids[w] = fork()) == 0) {
			mb_bank *b = NULL;
			mb_batch *bt;
			if (mb_open(path, NULL, &b))
				_exit(2);
			for (int k = 0; k < 50; k++) {
				if (mb_batch_begin(b, &bt))
					_exit(3);
				for (int j = 0; j < 10; j++) {
					snprintf(id, sizeof id, "w%d-%d-%d", w, k, j);
					if (mb_batch_page_put(bt, id, "{}", 2))
						_exit(4);
				}
				if (mb_batch_error_log(bt, "E", "m") || mb_batch_commit(bt))
					_exit(5);
			}
			mb_close(b);
			_exit(0);
		}
	}
	for (int w = 0; w < 4; w++)
		assert_int_equal(wait_child(pids[w], 240), 0);
	assert_int_equal(mb_page_count(f->b, &n), 0);
	assert_int_equal(n, 4 * 50 * 10);
	assert_int_equal(mb_error_stats(f->b, &doc), 0);
	assert_non_null(strstr(doc, "\"total_errors\":200"));
	mb_free(doc);
	/* a batch begun before a fork is refused in the child */
	mb_batch *bt;
	assert_int_equal(mb_batch_begin(f->b, &bt), 0);
	pid_t pid = fork();
	if (pid == 0)
		_exit(mb_batch_page_put(bt, "x", "{}", 2) == MB_EFORKED &&
		      mb_batch_commit(bt) == MB_EFORKED ? 0 : 1);
	assert_int_equal(wait_child(pid, 60), 0);
	mb_batch_abort(bt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_batch_equals_single_calls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input_fails_its_add_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_inside_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_delete_fails_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_depth_in_wrappers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_processes, setup, teardown),
	};
	return cmocka_run_group_tests_name("store-batch", tests, NULL, NULL);
}
