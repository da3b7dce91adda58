/*
 * test_ops.c - every Memory Bank operation, asserting the values it gives.
 */
#include <math.h>

#include "helpers.h"
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

static void expect_einval(mb_bank *b, int rc, const char *needle);

static void test_page_put_get(void **state)
{
	fx *f = *state;
	cJSON *p;

	assert_int_equal(mb_page_put(f->b, "abc", "{\"title\":\"T\",\"n\":2,\"x\":{\"y\":[1,true,null]}}",
	                             (size_t)-1), 0);
	p = get_page(f->b, "abc");
	assert_non_null(p);
	assert_string_equal(str_at(p, "properties", "title"), "T");
	assert_int_equal((int)num_at(p, "properties", "n"), 2);
	assert_non_null(str_at(p, "last_updated", NULL));
	assert_int_equal(strlen(str_at(p, "last_updated", NULL)), 27);
	cJSON_Delete(p);
	/* put replaces */
	assert_int_equal(mb_page_put(f->b, "abc", "{\"other\":1}", (size_t)-1), 0);
	p = get_page(f->b, "abc");
	assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(p, "properties"), "title"));
	assert_int_equal((int)num_at(p, "properties", "other"), 1);
	cJSON_Delete(p);
}

static void test_page_exact_text(void **state)
{
	fx *f = *state;
	char *s;
	size_t len;

	assert_int_equal(mb_page_put(f->b, "t", "{ \"a\" : \"x\\\"y\\n\\u00e9\" , \"b\":[1.5,-2,1e300] }",
	                             (size_t)-1), 0);
	assert_int_equal(mb_page_get(f->b, "t", &s, &len), 0);
	assert_true(len > 0 && strlen(s) == len);
	assert_memory_equal(s, "{\"properties\":{\"a\":\"x\\\"y\\n\xc3\xa9\",\"b\":[1.5,-2,1e+300]},",
	                    strlen("{\"properties\":{\"a\":\"x\\\"y\\n\xc3\xa9\",\"b\":[1.5,-2,1e+300]},"));
	mb_free(s);
}

/* Numbers are kept exactly: integers that fit 64 bits as integers, floats
 * as the same double and still floats (1.0, -0.0); through put, merge,
 * iterate and the journal.  What cannot be kept exactly is refused. */
static const struct { const char *in, *out; } exact_numbers[] = {
	{ "9223372036854775807", "9223372036854775807" },
	{ "-9223372036854775808", "-9223372036854775808" },
	{ "18446744073709551615", "18446744073709551615" },
	{ "9223372036854775808", "9223372036854775808" },
	{ "9007199254740993", "9007199254740993" },
	{ "-9007199254740993", "-9007199254740993" },
	{ "1.0", "1.0" },
	{ "12345678.0", "12345678.0" },
	{ "-0.0", "-0.0" },
	{ "-0", "0" },           /* JSON integers have no negative zero (Python: 0) */
	{ "0", "0" },
	{ "0.1", "0.1" },
	{ "1e300", "1e+300" },
	{ "1E2", "100.0" },      /* an exponent makes a float, as in Python */
	{ "5e-324", "5e-324" },
	{ "1.7976931348623157e308", "1.7976931348623157e+308" },
	{ "-1.7976931348623157e308", "-1.7976931348623157e+308" },
	{ "2.2250738585072014e-308", "2.2250738585072014e-308" },
	{ "1e16", "1e+16" },
	{ "9007199254740993.0", "9007199254740992.0" },  /* a float is a double */
	{ "0.30000000000000004", "0.30000000000000004" },
	{ "1e-400", "0.0" },     /* below the smallest double: 0.0, as Python reads it */
	{ "[1.0,-0.0,{\"x\":[18446744073709551615,-1]}]", "[1.0,-0.0,{\"x\":[18446744073709551615,-1]}]" },
};

static char *props_of(mb_bank *b, const char *id)
{
	char *s, *start, *end, *out;

	if (mb_page_get(b, id, &s, NULL))
		return NULL;
	start = s + strlen("{\"properties\":");
	end = strstr(s, ",\"last_updated\":");
	assert_non_null(end);
	out = strndup(start, (size_t)(end - start));
	mb_free(s);
	return out;
}

static int collect_pages(void *ctx, const char *id, const char *page_json)
{
	(void)id;
	sb_add(ctx, page_json);
	return 0;
}

static int collect_events(void *ctx, uint64_t seq, const char *event)
{
	(void)seq;
	sb_add(ctx, event);
	return 0;
}

static void test_page_numbers_exact(void **state)
{
	fx *f = *state;
	char in[256], want[256], id[16], *got;
	strbuf it = { NULL, 0, 0 }, jr = { NULL, 0, 0 };

	for (size_t i = 0; i < sizeof exact_numbers / sizeof exact_numbers[0]; i++) {
		snprintf(id, sizeof id, "n%02zu", i);
		snprintf(in, sizeof in, "{\"n\": %s}", exact_numbers[i].in);
		snprintf(want, sizeof want, "{\"n\":%s}", exact_numbers[i].out);
		if (mb_page_put(f->b, id, in, (size_t)-1))
			fail_msg("put %s: %s", in, mb_last_error(f->b));
		got = props_of(f->b, id);
		if (!got || strcmp(got, want))
			fail_msg("put %s read back as %s, want %s", in, got, want);
		free(got);
		/* what reads back is stored again unchanged */
		snprintf(in, sizeof in, "{\"n\":%s}", exact_numbers[i].out);
		assert_int_equal(mb_page_put(f->b, id, in, (size_t)-1), 0);
		got = props_of(f->b, id);
		assert_string_equal(got, want);
		free(got);
		/* a merge keeps both its own numbers and the page's */
		snprintf(in, sizeof in, "{\"m\":%s}", exact_numbers[i].in);
		assert_int_equal(mb_page_merge(f->b, id, in, (size_t)-1), 0);
		snprintf(want, sizeof want, "{\"n\":%s,\"m\":%s}", exact_numbers[i].out,
		         exact_numbers[i].out);
		got = props_of(f->b, id);
		assert_string_equal(got, want);
		free(got);
	}
	assert_int_equal(mb_page_iterate(f->b, NULL, 0, collect_pages, &it), 0);
	assert_non_null(strstr(it.p, "{\"properties\":{\"n\":18446744073709551615,\"m\":18446744073709551615}"));
	assert_non_null(strstr(it.p, "{\"properties\":{\"n\":-0.0,\"m\":-0.0}"));
	assert_int_equal(mb_journal_read(f->b, 0, collect_events, &jr), 0);
	assert_non_null(strstr(jr.p, "\"properties\":{\"n\":9007199254740993}"));
	assert_non_null(strstr(jr.p, "\"properties\":{\"m\":12345678.0}"));
	free(it.p);
	free(jr.p);
}

static void test_page_numbers_refused(void **state)
{
	static const struct { const char *json, *needle; } bad[] = {
		{ "{\"n\":18446744073709551616}", "integer out of range (beyond 64 bits) at byte 5" },
		{ "{\"n\":-9223372036854775809}", "integer out of range (beyond 64 bits) at byte 5" },
		{ "{\"a\":[1,99999999999999999999999]}", "integer out of range (beyond 64 bits) at byte 8" },
		{ "{\"n\":1e400}", "number out of range (beyond a double) at byte 5" },
		{ "{\"n\":-1e400}", "number out of range (beyond a double) at byte 5" },
		{ "{\"n\":01}", "invalid JSON at byte 6" },
		{ "{\"n\":1.}", "invalid JSON at byte 7" },
		{ "{\"n\":.5}", "invalid JSON at byte 5" },
		{ "{\"n\":+1}", "invalid JSON at byte 5" },
		{ "{\"n\":1e}", "invalid JSON at byte 7" },
		{ "{\"n\":NaN}", "invalid JSON at byte 5" },
		{ "{\"n\":Infinity}", "invalid JSON at byte 5" },
	};
	fx *f = *state;
	char *before, *after;

	assert_int_equal(mb_page_put(f->b, "p", "{\"n\":1}", (size_t)-1), 0);
	before = state_of(f->b);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		expect_einval(f->b, mb_page_put(f->b, "p", bad[i].json, (size_t)-1), bad[i].needle);
		expect_einval(f->b, mb_page_merge(f->b, "p", bad[i].json, (size_t)-1), bad[i].needle);
	}
	after = state_of(f->b);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void test_page_merge(void **state)
{
	fx *f = *state;
	cJSON *p;

	assert_int_equal(mb_page_merge(f->b, "m", "{\"a\":1,\"b\":2}", (size_t)-1), 0);
	assert_int_equal(mb_page_merge(f->b, "m", "{\"b\":3,\"c\":4,\"a\":null}", (size_t)-1), 0);
	p = get_page(f->b, "m");
	assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(p, "properties"), "a"));
	assert_int_equal((int)num_at(p, "properties", "b"), 3);
	assert_int_equal((int)num_at(p, "properties", "c"), 4);
	cJSON_Delete(p);
}

static void test_page_delete_count(void **state)
{
	fx *f = *state;
	uint64_t n = 99;
	char *s = (char *)1;

	assert_int_equal(mb_page_count(f->b, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(mb_page_put(f->b, "a", "{}", 2), 0);
	assert_int_equal(mb_page_put(f->b, "b", "{}", 2), 0);
	assert_int_equal(mb_page_count(f->b, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(mb_page_delete(f->b, "a"), 0);
	assert_int_equal(mb_page_delete(f->b, "a"), MB_ENOTFOUND);
	assert_non_null(strstr(mb_last_error(f->b), "not found"));
	assert_int_equal(mb_page_get(f->b, "a", &s, NULL), MB_ENOTFOUND);
	assert_null(s);
	assert_int_equal(mb_page_count(f->b, &n), 0);
	assert_int_equal(n, 1);
}

static int collect(void *ctx, const char *id, const char *page)
{
	strbuf *s = ctx;

	sb_add(s, id);
	sb_add(s, page ? "+" : "-");
	return strcmp(id, "stop") ? 0 : 42;
}

static void test_page_iterate(void **state)
{
	fx *f = *state;
	strbuf s = { NULL, 0, 0 };

	mb_page_put(f->b, "b", "{}", 2);
	mb_page_put(f->b, "a", "{}", 2);
	mb_page_put(f->b, "c", "{}", 2);
	assert_int_equal(mb_page_iterate(f->b, NULL, 0, collect, &s), 0);
	assert_string_equal(s.p, "a+b+c+");
	s.len = 0;
	assert_int_equal(mb_page_iterate(f->b, "a", MB_ITER_IDS, collect, &s), 0);
	assert_string_equal(s.p, "b-c-");
	mb_page_put(f->b, "stop", "{}", 2);
	s.len = 0;
	assert_int_equal(mb_page_iterate(f->b, NULL, MB_ITER_IDS, collect, &s), 42);
	assert_string_equal(s.p, "a-b-c-stop-");
	free(s.p);
}

static void test_sync_semantics(void **state)
{
	fx *f = *state;
	cJSON *d;

	d = sync_doc(f->b);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(d, "current_status")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(d, "last_successful_sync")));
	cJSON_Delete(d);
	assert_int_equal(mb_sync_record(f->b, "success", NULL), 0);
	assert_int_equal(mb_sync_record(f->b, "in_progress", NULL), 0);
	assert_int_equal(mb_sync_record(f->b, "failed", "HTTP 500"), 0);
	assert_int_equal(mb_sync_record(f->b, "success", ""), 0);  /* an error: a failure */
	d = sync_doc(f->b);
	assert_int_equal((int)num_at(d, "success_count", NULL), 1);
	assert_int_equal((int)num_at(d, "error_count", NULL), 2);
	assert_string_equal(str_at(d, "current_status", NULL), "success");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "sync_history")), 4);
	{
		cJSON *h = cJSON_GetArrayItem(cJSON_GetObjectItem(d, "sync_history"), 2);
		assert_string_equal(str_at(h, "status", NULL), "failed");
		assert_string_equal(str_at(h, "error", NULL), "HTTP 500");
		h = cJSON_GetArrayItem(cJSON_GetObjectItem(d, "sync_history"), 0);
		assert_true(cJSON_IsNull(cJSON_GetObjectItem(h, "error")));
		assert_string_equal(str_at(d, "last_successful_sync", NULL), str_at(h, "timestamp", NULL));
	}
	cJSON_Delete(d);
}

/* A failure status counts a failure without an error message: any ASCII
 * case of "failed", "failure", "error", recorded with error "".  Near
 * misses count neither; a batch records the same. */
static void test_sync_failure_status(void **state)
{
	fx *f = *state;
	static const char *const failures[] = { "failed", "FAILURE", "Error" };
	static const char *const neither[] = { "fail", "failedx", "errors", "Success", " error" };
	mb_batch *bt;
	cJSON *d, *h;

	for (size_t i = 0; i < 3; i++)
		assert_int_equal(mb_sync_record(f->b, failures[i], NULL), 0);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(mb_sync_record(f->b, neither[i], NULL), 0);
	assert_int_equal(mb_sync_record(f->b, "failed", "HTTP 429"), 0);
	assert_int_equal(mb_batch_begin(f->b, &bt), 0);
	assert_int_equal(mb_batch_sync_record(bt, "error", NULL), 0);
	assert_int_equal(mb_batch_commit(bt), 0);
	d = sync_doc(f->b);
	assert_int_equal((int)num_at(d, "error_count", NULL), 5);
	assert_int_equal((int)num_at(d, "success_count", NULL), 0);
	assert_string_equal(str_at(d, "current_status", NULL), "error");
	h = cJSON_GetObjectItem(d, "sync_history");
	assert_int_equal(cJSON_GetArraySize(h), 10);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(str_at(cJSON_GetArrayItem(h, i), "status", NULL), failures[i]);
		assert_string_equal(str_at(cJSON_GetArrayItem(h, i), "error", NULL), "");
	}
	for (int i = 3; i < 8; i++)
		assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(h, i), "error")));
	assert_string_equal(str_at(cJSON_GetArrayItem(h, 8), "error", NULL), "HTTP 429");
	assert_string_equal(str_at(cJSON_GetArrayItem(h, 9), "error", NULL), "");
	cJSON_Delete(d);
}

/* history_limit is the bank's, fixed at creation: reopening with 0 or the
 * same value works, with another fails with MB_EINVAL naming both values and
 * leaves the stored one in use. */
static void test_history_limit_of_existing_bank(void **state)
{
	fx *f = *state;
	char *dir = tmp_dir(), msg[256];
	mb_options o;
	mb_bank *b = NULL;
	cJSON *d;

	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	o.history_limit = 3;
	assert_int_equal(mb_open(dir, &o, &b), 0);
	mb_close(b);
	o.history_limit = 5;
	assert_int_equal(mb_open(dir, &o, &b), MB_EINVAL);
	assert_null(b);
	snprintf(msg, sizeof msg, "options: history_limit 5, but the bank at %s keeps 3 "
	         "(set when it was created; 0 takes the bank's)", dir);
	assert_string_equal(mb_last_error(NULL), msg);
	o.history_limit = 3;
	assert_int_equal(mb_open(dir, &o, &b), 0);
	mb_close(b);
	o.history_limit = 0;
	assert_int_equal(mb_open(dir, &o, &b), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(mb_sync_record(b, "running", NULL), 0);
	d = sync_doc(b);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "sync_history")), 3);
	cJSON_Delete(d);
	mb_close(b);
	rm_rf(dir);
	free(dir);
	(void)f;
}

static void test_sync_history_bounded(void **state)
{
	fx *f = *state;
	char status[16];
	cJSON *d, *h;

	for (int i = 0; i < 130; i++) {
		snprintf(status, sizeof status, "s%d", i);
		assert_int_equal(mb_sync_record(f->b, status, NULL), 0);
	}
	d = sync_doc(f->b);
	h = cJSON_GetObjectItem(d, "sync_history");
	assert_int_equal(cJSON_GetArraySize(h), MB_DEFAULT_HISTORY);
	assert_string_equal(str_at(cJSON_GetArrayItem(h, 0), "status", NULL), "s30");
	assert_string_equal(str_at(cJSON_GetArrayItem(h, 99), "status", NULL), "s129");
	cJSON_Delete(d);
}

static void test_error_resolve(void **state)
{
	fx *f = *state;
	cJSON *d;

	assert_int_equal(mb_error_log(f->b, "RateLimited", "429 a"), 0);
	assert_int_equal(mb_error_log(f->b, "RateLimited", "429 b"), 0);
	assert_int_equal(mb_error_log(f->b, "Timeout", "t"), 0);
	assert_int_equal(mb_error_resolve(f->b, "RateLimited", "back off"), 0);
	d = error_doc(f->b);
	assert_int_equal((int)num_at(d, "total_errors", NULL), 3);
	assert_int_equal((int)num_at(d, "resolved_errors", NULL), 2);
	assert_int_equal((int)num_at(d, "patterns", "RateLimited"), 2);
	assert_int_equal((int)num_at(d, "patterns", "Timeout"), 1);
	assert_string_equal(str_at(d, "last_error", "error_type"), "Timeout");
	assert_string_equal(str_at(d, "last_error", "message"), "t");
	cJSON_Delete(d);
	/* resolving again resolves nothing new; a later error is unresolved */
	assert_int_equal(mb_error_resolve(f->b, "RateLimited", "back off"), 0);
	assert_int_equal(mb_error_log(f->b, "RateLimited", "429 c"), 0);
	d = error_doc(f->b);
	assert_int_equal((int)num_at(d, "resolved_errors", NULL), 2);
	cJSON_Delete(d);
	assert_int_equal(mb_error_resolve(f->b, "RateLimited", "longer back off"), 0);
	d = error_doc(f->b);
	assert_int_equal((int)num_at(d, "total_errors", NULL), 4);
	assert_int_equal((int)num_at(d, "resolved_errors", NULL), 3);
	cJSON_Delete(d);
}

static void test_error_stats_empty(void **state)
{
	fx *f = *state;
	char *s;

	assert_int_equal(mb_error_stats(f->b, &s), 0);
	assert_string_equal(s, "{\"total_errors\":0,\"resolved_errors\":0,\"patterns\":{},\"last_error\":{}}");
	mb_free(s);
}

static void test_config_defaults_and_merge(void **state)
{
	fx *f = *state;
	cJSON *d;

	d = config_doc(f->b);
	assert_int_equal((int)num_at(d, "notion_settings", "retry_attempts"), 3);
	assert_int_equal((int)num_at(d, "notion_settings", "timeout_seconds"), 30);
	/* a new bank drops no page: no eviction, no expiry */
	assert_int_equal((int)num_at(d, "cache_settings", "ttl_seconds"), 0);
	assert_int_equal((int)num_at(d, "cache_settings", "max_entries"), 0);
	assert_string_equal(str_at(d, "logging_settings", "log_level"), "INFO");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "logging_settings"),
	                                             "structured_logging")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(d, "last_config_update")));
	cJSON_Delete(d);
	assert_int_equal(mb_config_update(f->b, "{\"notion_settings\":{\"retry_attempts\":5},"
	                                  "\"logging_settings\":{\"log_level\":\"DEBUG\"}}", (size_t)-1), 0);
	d = config_doc(f->b);
	assert_int_equal((int)num_at(d, "notion_settings", "retry_attempts"), 5);
	assert_int_equal((int)num_at(d, "notion_settings", "timeout_seconds"), 30);
	assert_string_equal(str_at(d, "notion_settings", "api_version"), "2022-06-28");
	assert_string_equal(str_at(d, "logging_settings", "log_level"), "DEBUG");
	assert_non_null(str_at(d, "last_config_update", NULL));
	cJSON_Delete(d);
}

static void test_config_rejects(void **state)
{
	static const struct { const char *json, *needle; } bad[] = {
		{ "{\"notion_settings\":{\"retry_attempts\":\"3\"}}", "notion_settings.retry_attempts" },
		{ "{\"notion_settings\":{\"retry_attempts\":1.5}}", "notion_settings.retry_attempts" },
		{ "{\"notion_settings\":{\"retry_attempts\":101}}", "notion_settings.retry_attempts" },
		{ "{\"notion_settings\":{\"timeout_seconds\":0}}", "notion_settings.timeout_seconds" },
		{ "{\"notion_settings\":{\"api_version\":\"\"}}", "notion_settings.api_version" },
		{ "{\"logging_settings\":{\"log_level\":\"LOUD\"}}", "logging_settings.log_level" },
		{ "{\"logging_settings\":{\"structured_logging\":1}}", "logging_settings.structured_logging" },
		{ "{\"cache_settings\":{\"max_entries\":-1}}", "cache_settings.max_entries" },
		{ "{\"cache_settings\":{\"ttl\":5}}", "unknown key cache_settings.ttl" },
		{ "{\"cache\":{}}", "unknown key cache" },
		{ "{\"cache_settings\":5}", "cache_settings must be an object" },
		{ "{\"last_config_update\":\"x\"}", "set by the bank" },
		{ "[1]", "not a JSON object" },
		{ "{\"notion_settings\":{\"retry_attempts\":4},\"cache_settings\":{\"max_entries\":true}}",
		  "cache_settings.max_entries" },
	};
	fx *f = *state;
	char *before, *after;

	mb_config_get(f->b, &before);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(mb_config_update(f->b, bad[i].json, (size_t)-1), MB_EINVAL);
		if (!strstr(mb_last_error(f->b), bad[i].needle))
			fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i].json, mb_last_error(f->b),
			         bad[i].needle);
	}
	mb_config_get(f->b, &after);
	assert_string_equal(before, after);
	mb_free(before);
	mb_free(after);
}

/* Config numbers keep their value and type: timeout_seconds as written (30
 * or 30.0), integer fields take integers only, nothing rounds silently. */
static void test_config_numbers(void **state)
{
	static const struct { const char *in, *out; } ok[] = {
		{ "30.0", "30.0" }, { "30", "30" }, { "12.5", "12.5" }, { "1e3", "1000.0" },
		{ "0.001", "0.001" }, { "3600", "3600" },
	};
	static const char *const bad[] = {
		"{\"notion_settings\":{\"retry_attempts\":3.0}}",
		"{\"cache_settings\":{\"max_entries\":1e3}}",
		"{\"cache_settings\":{\"ttl_seconds\":999999999999.99999999}}",
		"{\"cache_settings\":{\"max_entries\":18446744073709551615}}",
		"{\"notion_settings\":{\"timeout_seconds\":3600.5}}",
		"{\"notion_settings\":{\"timeout_seconds\":-0.0}}",
	};
	fx *f = *state;
	char in[128], want[64], *doc, *before, *after;

	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		snprintf(in, sizeof in, "{\"notion_settings\":{\"timeout_seconds\":%s}}", ok[i].in);
		assert_int_equal(mb_config_update(f->b, in, (size_t)-1), 0);
		assert_int_equal(mb_config_get(f->b, &doc), 0);
		snprintf(want, sizeof want, "\"timeout_seconds\":%s}", ok[i].out);
		if (!strstr(doc, want))
			fail_msg("%s read back as %s", in, doc);
		mb_free(doc);
	}
	assert_int_equal(mb_config_update(f->b, "{\"cache_settings\":{\"max_entries\":999999999999}}",
	                                  (size_t)-1), 0);
	mb_config_get(f->b, &before);
	assert_non_null(strstr(before, "\"max_entries\":999999999999}"));
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(mb_config_update(f->b, bad[i], (size_t)-1), MB_EINVAL);
		if (!strstr(mb_last_error(f->b), "must be"))
			fail_msg("%s: %s", bad[i], mb_last_error(f->b));
	}
	mb_config_get(f->b, &after);
	assert_string_equal(before, after);
	mb_free(before);
	mb_free(after);
}

/* Bad input: MB_EINVAL and a message that names what was wrong. */
static void expect_einval(mb_bank *b, int rc, const char *needle)
{
	if (rc != MB_EINVAL || !strstr(mb_last_error(b), needle))
		fail_msg("want MB_EINVAL naming \"%s\", got %d \"%s\"", needle, rc, mb_last_error(b));
}

static char *nested(int depth)
{
	char *s = malloc((size_t)depth * 6 + 8), *p = s;

	for (int i = 0; i < depth; i++)
		p += sprintf(p, "{\"a\":");
	p += sprintf(p, "1");
	for (int i = 0; i < depth; i++)
		*p++ = '}';
	*p = '\0';
	return s;
}

static void test_bad_input_changes_nothing(void **state)
{
	fx *f = *state;
	char longid[MB_MAX_ID_BYTES + 2], *before, *after, *deep = nested(65), *ok = nested(64);
	char *big = malloc(MB_DEFAULT_JSON_BYTES + 64);

	memset(longid, 'x', sizeof longid - 1);
	longid[sizeof longid - 1] = '\0';
	snprintf(big, 16, "{\"a\":\"");
	memset(big + 6, 'y', MB_DEFAULT_JSON_BYTES);
	strcpy(big + 6 + MB_DEFAULT_JSON_BYTES, "\"}");
	mb_page_put(f->b, "keep", "{\"v\":1}", (size_t)-1);
	before = state_of(f->b);
	expect_einval(f->b, mb_page_put(f->b, "", "{}", 2), "empty");
	expect_einval(f->b, mb_page_put(f->b, longid, "{}", 2), "longer than 255");
	expect_einval(f->b, mb_page_put(f->b, "bad\xff", "{}", 2), "UTF-8 at byte 3");
	expect_einval(f->b, mb_page_put(f->b, "keep", "{\"v\":", (size_t)-1), "invalid JSON at byte 5");
	expect_einval(f->b, mb_page_put(f->b, "keep", "[1,2]", (size_t)-1), "not a JSON object");
	expect_einval(f->b, mb_page_put(f->b, "keep", deep, (size_t)-1), "nested deeper than 64");
	expect_einval(f->b, mb_page_put(f->b, "keep", big, (size_t)-1), "larger than the limit");
	expect_einval(f->b, mb_page_put(f->b, "keep", "{\"s\":\"\xc0\x80\"}", (size_t)-1),
	              "invalid UTF-8 at byte 6");
	expect_einval(f->b, mb_page_put(f->b, "keep", "{\"s\":\"a\\u0000b\"}", (size_t)-1), "\\u0000");
	expect_einval(f->b, mb_page_put(f->b, "keep", "{\"a\":1,\"a\":2}", (size_t)-1), "duplicate key");
	expect_einval(f->b, mb_page_put(f->b, "keep", "{\"a\":1,\"\\u0061\":2}", (size_t)-1),
	              "duplicate key \"a\"");
	/* RFC 8259: control characters in a string must be escaped */
	expect_einval(f->b, mb_page_put(f->b, "keep", "{\"s\":\"a\tb\"}", (size_t)-1),
	              "invalid JSON at byte 7");
	expect_einval(f->b, mb_page_merge(f->b, "keep", "{} x", (size_t)-1), "after the JSON value");
	expect_einval(f->b, mb_page_put(f->b, "keep", NULL, 0), "missing");
	expect_einval(f->b, mb_sync_record(f->b, "", NULL), "status: empty");
	expect_einval(f->b, mb_sync_record(f->b, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	                                   NULL), "longer than 64");
	expect_einval(f->b, mb_error_log(f->b, "", "m"), "error type: empty");
	expect_einval(f->b, mb_error_log(f->b, "T", NULL), "message: missing");
	expect_einval(f->b, mb_error_resolve(f->b, "T\xed\xa0\x80", "s"), "invalid UTF-8");
	after = state_of(f->b);
	assert_string_equal(before, after);
	/* depth 64 is allowed */
	assert_int_equal(mb_page_put(f->b, "deep", ok, (size_t)-1), 0);
	free(before);
	free(after);
	free(deep);
	free(ok);
	free(big);
}

static void test_eviction(void **state)
{
	fx *f = *state;
	char id[8];
	uint64_t n;
	char *s;

	assert_int_equal(mb_config_update(f->b, "{\"cache_settings\":{\"max_entries\":5}}", (size_t)-1), 0);
	for (int i = 0; i < 8; i++) {
		snprintf(id, sizeof id, "p%d", i);
		assert_int_equal(mb_page_put(f->b, id, "{}", 2), 0);
	}
	mb_page_put(f->b, "p3", "{\"touched\":true}", (size_t)-1);  /* p3 is now the newest */
	mb_page_put(f->b, "p8", "{}", 2);
	assert_int_equal(mb_page_count(f->b, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(mb_page_get(f->b, "p0", &s, NULL), MB_ENOTFOUND);
	assert_int_equal(mb_page_get(f->b, "p4", &s, NULL), MB_ENOTFOUND);
	assert_int_equal(mb_page_get(f->b, "p3", &s, NULL), 0);
	mb_free(s);
	assert_int_equal(mb_page_get(f->b, "p5", &s, NULL), 0);
	mb_free(s);
}

/* The time index is kept only while eviction or expiry is on: turning
 * them on later builds it from the pages, and a lower bound applies at once. */
static void test_index_toggles(void **state)
{
	fx *f = *state;
	char id[8], *s;
	uint64_t n;

	assert_int_equal(mb_config_update(f->b, "{\"cache_settings\":{\"max_entries\":0,"
	                                  "\"ttl_seconds\":0}}", (size_t)-1), 0);
	for (int i = 0; i < 6; i++) {
		snprintf(id, sizeof id, "q%d", i);
		assert_int_equal(mb_page_put(f->b, id, "{}", 2), 0);
	}
	mb_page_merge(f->b, "q0", "{\"t\":1}", (size_t)-1);  /* q0 is now the newest */
	assert_int_equal(mb_config_update(f->b, "{\"cache_settings\":{\"max_entries\":3}}",
	                                  (size_t)-1), 0);
	assert_int_equal(mb_page_count(f->b, &n), 0);
	assert_int_equal(n, 3);  /* evicted at once, oldest first */
	assert_int_equal(mb_page_get(f->b, "q0", &s, NULL), 0);
	mb_free(s);
	assert_int_equal(mb_page_get(f->b, "q1", &s, NULL), MB_ENOTFOUND);
	assert_int_equal(mb_page_get(f->b, "q5", &s, NULL), 0);
	mb_free(s);
	/* off and on again: the index is dropped and rebuilt */
	assert_int_equal(mb_config_update(f->b, "{\"cache_settings\":{\"max_entries\":0}}",
	                                  (size_t)-1), 0);
	mb_page_put(f->b, "q6", "{}", 2);
	assert_int_equal(mb_config_update(f->b, "{\"cache_settings\":{\"max_entries\":2}}",
	                                  (size_t)-1), 0);
	assert_int_equal(mb_page_get(f->b, "q4", &s, NULL), MB_ENOTFOUND);
	assert_int_equal(mb_page_get(f->b, "q6", &s, NULL), 0);
	mb_free(s);
	assert_rebuild_same(f->b);
}

static void test_ttl(void **state)
{
	fx *f = *state;
	char *s;

	assert_int_equal(mb_config_update(f->b, "{\"cache_settings\":{\"ttl_seconds\":1}}", (size_t)-1), 0);
	assert_int_equal(mb_page_put(f->b, "old", "{}", 2), 0);
	usleep(1100 * 1000);
	assert_int_equal(mb_page_put(f->b, "new", "{}", 2), 0);
	assert_int_equal(mb_page_get(f->b, "old", &s, NULL), MB_ENOTFOUND);
	assert_int_equal(mb_page_get(f->b, "new", &s, NULL), 0);
	mb_free(s);
	/* a merge into an expired page starts from nothing */
	assert_int_equal(mb_page_merge(f->b, "old", "{\"b\":1}", (size_t)-1), 0);
	assert_int_equal(mb_page_get(f->b, "old", &s, NULL), 0);
	assert_non_null(strstr(s, "{\"properties\":{\"b\":1}"));
	mb_free(s);
}

/* Reopen @path as if after a machine crash: another boot's store is
 * thrown away and rebuilt from the checkpoint and the journal. */
static mb_bank *reopen_other_boot(mb_bank *b, const char *dir, const char *boot)
{
	mb_bank *nb;

	mb_close(b);
	setenv("MEMBANK_TEST_BOOT_ID", boot, 1);
	nb = open_bank(dir, MB_DURABILITY_FAST);
	unsetenv("MEMBANK_TEST_BOOT_ID");
	return nb;
}

static void put_n(mb_bank *b, const char *prefix, int n)
{
	char id[32];

	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof id, "%s%d", prefix, i);
		assert_int_equal(mb_page_put(b, id, "{\"n\":1}", (size_t)-1), 0);
	}
}

static void assert_cache(mb_bank *b, int ttl, int max)
{
	cJSON *d = config_doc(b);

	assert_non_null(d);
	assert_int_equal((int)num_at(d, "cache_settings", "ttl_seconds"), ttl);
	assert_int_equal((int)num_at(d, "cache_settings", "max_entries"), max);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(d, "last_config_update")));
	cJSON_Delete(d);
}

static void assert_pages(mb_bank *b, uint64_t want)
{
	uint64_t n = 0;

	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, want);
}

/* The issue: 16,000 pages pushed into a new bank left 1,000.  A new bank
 * records cache_settings 0/0 in membank.json; every store built without a
 * checkpoint (first open, rebuild, another boot) starts from them. */
static void test_new_bank_keeps_pages(void **state)
{
	fx *f = *state;
	char path[4096], text[256] = "";
	FILE *fp;
	char *s;

	snprintf(path, sizeof path, "%s/bank/membank.json", f->dir);
	assert_non_null(fp = fopen(path, "r"));
	assert_true(fread(text, 1, sizeof text - 1, fp) > 0);
	fclose(fp);
	assert_non_null(strstr(text, "\"cache_settings\":{\"max_entries\":0,\"ttl_seconds\":0}"));
	assert_cache(f->b, 0, 0);
	put_n(f->b, "k", 2000);
	assert_pages(f->b, 2000);
	assert_int_equal(mb_page_get(f->b, "k0", &s, NULL), 0);
	mb_free(s);
	assert_rebuild_same(f->b);
	assert_pages(f->b, 2000);
	assert_non_null(f->b = reopen_other_boot(f->b, f->dir, "00000000-counters-new-bank-boot-0001"));
	assert_cache(f->b, 0, 0);
	assert_pages(f->b, 2000);
}

/* A bank created before (membank.json without cache_settings) keeps the
 * values its journal was written under: 1000 and 3600. */
static void test_existing_bank_keeps_legacy(void **state)
{
	static const char old_identity[] = "{\"format\":1,\"history_limit\":100}\n";
	fx *f = *state;
	char path[4096];
	mb_bank *b;
	FILE *fp;

	snprintf(path, sizeof path, "%s/legacy", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/legacy/membank.json", f->dir);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fwrite(old_identity, 1, strlen(old_identity), fp), strlen(old_identity));
	fclose(fp);
	chmod(path, 0600);
	snprintf(path, sizeof path, "%s/legacy", f->dir);
	assert_int_equal(mb_open(path, NULL, &b), 0);
	assert_cache(b, 3600, 1000);
	put_n(b, "k", 1003);
	assert_pages(b, 1000);
	assert_rebuild_same(b);
	assert_pages(b, 1000);
	mb_close(b);
	setenv("MEMBANK_TEST_BOOT_ID", "00000000-counters-legacy-boot-000001", 1);
	assert_int_equal(mb_open(path, NULL, &b), 0);
	unsetenv("MEMBANK_TEST_BOOT_ID");
	assert_cache(b, 3600, 1000);
	assert_pages(b, 1000);
	mb_close(b);
}

/* A damaged cache_settings in membank.json is refused, not read as 0. */
static void test_identity_cache_checked(void **state)
{
	static const char *const bad[] = {
		"{\"format\":1,\"history_limit\":100,\"cache_settings\":{\"max_entries\":0}}\n",
		"{\"format\":1,\"history_limit\":100,\"cache_settings\":{\"max_entries\":-1,\"ttl_seconds\":0}}\n",
		"{\"format\":1,\"history_limit\":100,\"cache_settings\":7}\n",
	};
	fx *f = *state;
	char path[4096];
	mb_bank *b = NULL;
	FILE *fp;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(path, sizeof path, "%s/bad%zu", f->dir, i);
		assert_int_equal(mkdir(path, 0700), 0);
		snprintf(path, sizeof path, "%s/bad%zu/membank.json", f->dir, i);
		assert_non_null(fp = fopen(path, "w"));
		fputs(bad[i], fp);
		fclose(fp);
		snprintf(path, sizeof path, "%s/bad%zu", f->dir, i);
		assert_int_equal(mb_open(path, NULL, &b), MB_ENOTBANK);
		assert_non_null(strstr(mb_last_error(NULL), "cache_settings"));
	}
}

/* journal.fdatasyncs counts group commit's syncs by every handle of the
 * bank: none for fast writes, one per full write from a lone writer (the
 * bench divides records by it). */
static void test_stats_fdatasyncs(void **state)
{
	fx *f = *state;
	mb_bank *full;
	uint64_t s0, seq0;

	put_n(f->b, "a", 1);  /* the first write's automatic checkpoint syncs too */
	s0 = stat_of(f->b, "journal", "fdatasyncs");
	seq0 = stat_of(f->b, "journal", "last_seq");
	put_n(f->b, "b", 5);
	assert_int_equal(stat_of(f->b, "journal", "fdatasyncs"), s0);
	assert_non_null(full = open_bank(f->dir, MB_DURABILITY_FULL));
	put_n(full, "c", 3);
	assert_int_equal(stat_of(f->b, "journal", "fdatasyncs"), s0 + 3);
	assert_int_equal(stat_of(full, "journal", "fdatasyncs"), s0 + 3);
	assert_int_equal(stat_of(full, "journal", "last_seq"), seq0 + 8);
	mb_close(full);
}

/* Every page max_entries drops is counted, by apply: a replay from the
 * journal (mb_rebuild), from a checkpoint (its checkpoint.json keeps the
 * counters) and a rebuild under another boot give the same numbers. */
static void test_eviction_counted(void **state)
{
	fx *f = *state;
	mb_snapshot_info info;

	assert_removed(f->b, 0, 0, 0);
	assert_int_equal(mb_config_update(f->b, "{\"cache_settings\":{\"max_entries\":5}}",
	                                  (size_t)-1), 0);
	put_n(f->b, "e", 12);
	assert_pages(f->b, 5);
	assert_removed(f->b, 7, 0, 0);
	assert_int_equal(mb_rebuild(f->b), 0);  /* no checkpoint: the whole journal */
	assert_removed(f->b, 7, 0, 0);
	memset(&info, 0xff, sizeof info);
	assert_int_equal(mb_snapshot(f->b, NULL, &info), 0);
	assert_int_equal(info.pages, 5);
	assert_int_equal(info.pages_evicted, 7);
	assert_int_equal(info.pages_purged, 0);
	assert_int_equal(info.pages_expired, 0);
	assert_int_equal(info.purged, 0);
	put_n(f->b, "f", 2);           /* after the checkpoint: 9 */
	assert_removed(f->b, 9, 0, 0);
	assert_int_equal(mb_rebuild(f->b), 0);  /* checkpoint's 7 + the journal's 2 */
	assert_removed(f->b, 9, 0, 0);
	assert_non_null(f->b = reopen_other_boot(f->b, f->dir, "00000000-counters-evict-boot-000001"));
	assert_removed(f->b, 9, 0, 0);
	/* a lower bound evicts at once, counted too */
	assert_int_equal(mb_config_update(f->b, "{\"cache_settings\":{\"max_entries\":2}}",
	                                  (size_t)-1), 0);
	assert_pages(f->b, 2);
	assert_removed(f->b, 12, 0, 0);
	assert_rebuild_same(f->b);
	assert_removed(f->b, 12, 0, 0);
}

static void test_persistence(void **state)
{
	fx *f = *state;
	char *before, *after;

	mb_page_put(f->b, "p", "{\"a\":[1,2]}", (size_t)-1);
	mb_sync_record(f->b, "success", NULL);
	mb_error_log(f->b, "E", "m");
	mb_config_update(f->b, "{\"cache_settings\":{\"max_entries\":0}}", (size_t)-1);
	before = state_of(f->b);
	mb_close(f->b);
	f->b = open_bank(f->dir, MB_DURABILITY_FULL);
	assert_non_null(f->b);
	after = state_of(f->b);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

/* msgpack from disk is checked like text from the API: UTF-8 in keys and
 * values, counts against the bytes present, depth. */
static void test_disk_msgpack_checked(void **state)
{
	static const uint8_t good[] = { 0x81, 0xa1, 'k', 0xa2, 0xc3, 0xa9 };
	static const uint8_t bad_value[] = { 0x81, 0xa1, 'k', 0xa2, 0xc3, 0x28 };
	static const uint8_t bad_key[] = { 0x81, 0xa1, 0xff, 0xc0 };
	static const uint8_t lying_count[] = { 0xdf, 0x7f, 0xff, 0xff, 0xff, 0xc0 };
	uint8_t deep[MB_MAX_DEPTH + 2];

	(void)state;
	memset(deep, 0x91, sizeof deep);
	deep[sizeof deep - 1] = 0xc0;
	assert_int_equal(mp_check(good, sizeof good), 0);
	assert_int_equal(mp_check(bad_value, sizeof bad_value), MB_ECORRUPT);
	assert_int_equal(mp_check(bad_key, sizeof bad_key), MB_ECORRUPT);
	assert_int_equal(mp_check(lying_count, sizeof lying_count), MB_ECORRUPT);
	assert_int_equal(mp_check(deep, sizeof deep), MB_ECORRUPT);
	assert_int_equal(mp_check(deep + 2, sizeof deep - 2), 0);
}

/* A walk over bytes checked before (mp_reader.checked) finds the extents
 * the full check finds, for every kind and width, and still stops at the
 * reader's end: a count or a length past the bytes is refused. */
static void test_checked_walk(void **state)
{
	static const uint8_t values[] = {
		0x82, 0xa1, 'a', 0x93, 0x01, 0xe0, 0xc0,          /* fixmap, fixarray */
		0xa1, 'b', 0xde, 0x00, 0x02,                       /* map16 */
		0xd9, 0x02, 'c', 'd', 0xdc, 0x00, 0x02, 0xc2, 0xc3,    /* str8, array16 */
		0xda, 0x00, 0x01, 'e',                             /* str16 */
		0xdd, 0x00, 0x00, 0x00, 0x08,                      /* array32 */
		0xcc, 0xff, 0xcd, 0x01, 0x00, 0xce, 0, 0, 1, 0,
		0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0,                   /* above INT64_MAX */
		0xca, 0x3f, 0x80, 0, 0, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0,
		0xdb, 0, 0, 0, 2, 'f', 'g',                        /* str32 */
		0xdf, 0, 0, 0, 1, 0xa0, 0xd0, 0x80,                /* map32, int8 */
	};
	static const uint8_t long_count[] = { 0xdd, 0x7f, 0xff, 0xff, 0xff, 0xc0 };
	static const uint8_t long_str[] = { 0xdb, 0x00, 0x00, 0x01, 0x00, 'x' };
	static const uint8_t bin[] = { 0xc4, 0x01, 0x00 };
	mp_reader full = { values, values + sizeof values, false };
	mp_reader fast = { values, values + sizeof values, true };
	mp_reader r;

	(void)state;
	assert_int_equal(mp_skip(&full, 0), 0);
	assert_int_equal(mp_skip(&fast, 0), 0);
	assert_ptr_equal(fast.p, full.p);
	assert_ptr_equal(fast.p, values + sizeof values);
	for (size_t cut = 0; cut < sizeof values; cut++) {   /* every truncation */
		r = (mp_reader){ values, values + cut, true };
		assert_int_equal(mp_skip(&r, 0), MB_ECORRUPT);
		assert_true(r.p <= values + cut);
	}
	r = (mp_reader){ long_count, long_count + sizeof long_count, true };
	assert_int_equal(mp_skip(&r, 0), MB_ECORRUPT);
	r = (mp_reader){ long_str, long_str + sizeof long_str, true };
	assert_int_equal(mp_skip(&r, 0), MB_ECORRUPT);
	r = (mp_reader){ bin, bin + sizeof bin, true };   /* a kind no record holds */
	assert_int_equal(mp_skip(&r, 0), MB_ECORRUPT);
}

static void test_errors_table(void **state)
{
	(void)state;
	assert_string_equal(mb_errname(MB_EINVAL), "MB_EINVAL");
	assert_string_equal(mb_strerror(MB_ENOTFOUND), "not found");
	assert_string_equal(mb_strerror(12345), "unknown error");
	assert_int_equal(mb_close(NULL), 0);
	mb_free(NULL);
}

/* mb_metrics: exact figures, the bank label, a type's label escaped, the
 * closing # EOF (the CLI's suite checks every line's grammar). */
static void test_metrics(void **state)
{
	fx *f = *state;
	char *text = NULL, want[4300];

	assert_int_equal(mb_page_put(f->b, "p1", "{}", 2), 0);
	assert_int_equal(mb_page_put(f->b, "p2", "{}", 2), 0);
	assert_int_equal(mb_sync_record(f->b, "success", NULL), 0);
	assert_int_equal(mb_error_log(f->b, "a\"b\\c\nd", "m"), 0);
	assert_int_equal(mb_metrics(f->b, &text), 0);
	snprintf(want, sizeof want, "\nmembank_pages{bank=\"%s\"} 2\n", mb_path(f->b));
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof want, "\nmembank_sync_successes_total{bank=\"%s\"} 1\n",
	         mb_path(f->b));
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof want, "\nmembank_errors_by_type_total{bank=\"%s\","
	         "type=\"a\\\"b\\\\c\\nd\"} 1\n", mb_path(f->b));
	assert_non_null(strstr(text, want));
	assert_non_null(strstr(text, "\n# TYPE membank_errors counter\n"));
	assert_int_equal(strncmp(text, "# HELP membank_", 15), 0);
	assert_string_equal(text + strlen(text) - 6, "# EOF\n");
	mb_free(text);
	text = (char *)"untouched";
	assert_int_equal(mb_metrics(f->b, NULL), MB_EINVAL);
	assert_int_not_equal(mb_metrics(NULL, &text), 0);
	assert_null(text);
}

/* The checkpoint's figures in mb_metrics, also when checkpoint.json is long
 * (many error types: its first bytes alone are not JSON), and how long it
 * took to write. */
static void test_metrics_checkpoint(void **state)
{
	fx *f = *state;
	char *text = NULL, want[4300], type[32];

	for (int i = 0; i < 40; i++) {
		snprintf(type, sizeof type, "error-type-%02d", i);
		assert_int_equal(mb_error_log(f->b, type, "m"), 0);
	}
	assert_int_equal(mb_snapshot(f->b, NULL, NULL), 0);
	assert_int_equal(mb_metrics(f->b, &text), 0);
	snprintf(want, sizeof want, "\nmembank_checkpoint_seq{bank=\"%s\"} 40\n", mb_path(f->b));
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof want, "\nmembank_checkpoint_duration_seconds{bank=\"%s\"} ",
	         mb_path(f->b));
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof want, "\nmembank_checkpoint_age_seconds{bank=\"%s\"} ",
	         mb_path(f->b));
	assert_non_null(strstr(text, want));
	mb_free(text);
}

/* ------------------------------------------------ JSON -> msgpack, golden
 *
 * The transcoder's verdict on tricky texts (escapes, surrogates, invalid
 * UTF-8 and where it is reported, nesting at the bound, every integer width
 * and sign, -0, 1e308, out-of-range numbers, duplicate keys, every header
 * width of str, array and map), as recorded from the transcoder of 0.2.0
 * (msgpack-c's packer with a UTF-8 pass before the parse): the output
 * bytes (length and FNV-1a 64 of them, after one byte already in the
 * buffer: the output appends) or the error message, byte for byte.  The
 * store's values and the journal's records are these bytes.
 *
 * A case is {head, unit, n, tail}: the text is head, unit n times, tail;
 * obj: as page properties (json_object_to_mp), else json_to_mp at depth 64. */
#define C(h, u, n, t, o) { h, u, n, t, o }
static const struct gcase { const char *head, *unit; unsigned n; const char *tail; bool obj; } gcases[] = {
	C("{\"title\":\"Quarterly planning notes 07\",\"status\":\"Done\",\"priority\":2,\"tags\":[\"sync\",\"notion\",\"bench\"],\"owner\":\"worker-07\",\"url\":\"https://www.notion.so/acme/page-0000055433\",\"estimate\":7.5,\"done\":true}", "", 0, "", true),
	C("{}", "", 0, "", true), C(" \t\r\n{ } \n", "", 0, "", true), C("[]", "", 0, "", false),
	C("{\"a\":[],\"b\":{},\"c\":[[]],\"d\":[{}]}", "", 0, "", true),
	C("{\"e\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}", "", 0, "", true),
	C("{\"u\":\"\\u00e9\\u20AC\\ud83d\\ude00x\"}", "", 0, "", true),
	C("{\"\\u00e9\":1,\"k\\n\":2}", "", 0, "", true),
	C("{\"s\":\"\\ud83d\"}", "", 0, "", true), C("{\"s\":\"\\ude00\"}", "", 0, "", true),
	C("{\"s\":\"\\ud83d\\u0041\"}", "", 0, "", true), C("{\"s\":\"\\ud83dx\"}", "", 0, "", true),
	C("{\"s\":\"a\\u0000b\"}", "", 0, "", true), C("{\"s\":\"\\u12g4\"}", "", 0, "", true),
	C("{\"s\":\"\\u12\"}", "", 0, "", true), C("{\"s\":\"\\x\"}", "", 0, "", true),
	C("{\"s\":\"\\", "", 0, "", true), C("{\"s\":\"abc", "", 0, "", true),
	C("{\"s\":\"a\tb\"}", "", 0, "", true), C("{\"s\":\"a\x01\"}", "", 0, "", true),
	C("{\"s\":\"\xff\"}", "", 0, "", true), C("{\"s\":\"\xc0\xaf\"}", "", 0, "", true),
	C("{\"s\":\"\xed\xa0\x80\"}", "", 0, "", true), C("{\"s\":\"\xe2\x82\"}", "", 0, "", true),
	C("{\"s\":\"\xf4\x90\x80\x80\"}", "", 0, "", true), C("{\"s\":\"\xf0\x9f\x98\x80\xc3\xa9\xe2\x82\xac\"}", "", 0, "", true),
	C("{\"\xc3\xa9\xff\":1}", "", 0, "", true), C("{\"a\" x \xff}", "", 0, "", true),
	C("{\"a\":1,\"a\":2,\"b\":\"\xff\"}", "", 0, "", true), C("\xef\xbb\xbf{}", "", 0, "", true),
	C("{\"a\":\"\xc3\"}", "", 0, "", true), C("{\"a\":\"x\\n\xc3\"}", "", 0, "", true),
	C("{\"a\":\"x\\n\xc3\xa9\\t\xe2\x82\xac\"}", "", 0, "", true),
	C("", "[", 63, "", false), C("", "[", 64, "", false), C("", "[", 65, "", false),
	C("", "[", 64, "\xff", false),
	C("{\"d\":", "[", 62, "1", true), C("{\"d\":", "[", 63, "1", true),
	C("", "[", 63, "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", false),
	C("{\"d\":", "{\"k\":", 62, "1}", true),
	C("[18446744073709551615,18446744073709551616]", "", 0, "", false),
	C("[18446744073709551615,-9223372036854775808,9007199254740993,9223372036854775807,9223372036854775808]", "", 0, "", false),
	C("[-9223372036854775809]", "", 0, "", false), C("[99999999999999999999999]", "", 0, "", false),
	C("[-0,0,-0.0,0.0,1.0,1,1e308,-1e308,1e-400,1E+2,1e-2,0.5,2.5e-3,-1.25E+10,123456789012345678901234567890.5]", "", 0, "", false),
	C("[1e309]", "", 0, "", false), C("[-1e400]", "", 0, "", false),
	C("[0.", "1", 100, "]", false), C("[1", "0", 400, ".5]", false),
	C("[127,128,255,256,65535,65536,4294967295,4294967296,-1,-31,-32,-33,-127,-128,-129,-32767,-32768,-32769,-2147483647,-2147483648,-2147483649]", "", 0, "", false),
	C("[01]", "", 0, "", false), C("[1.]", "", 0, "", false), C("[.5]", "", 0, "", false),
	C("[-]", "", 0, "", false), C("[1e]", "", 0, "", false), C("[+1]", "", 0, "", false),
	C("[1e+]", "", 0, "", false), C("[-a]", "", 0, "", false), C("[1.5e3x]", "", 0, "", false),
	C("[true,false,null]", "", 0, "", false), C("[tru]", "", 0, "", false), C("[nul", "", 0, "", false),
	C("[True]", "", 0, "", false), C("", "", 0, "", true), C("   ", "", 0, "", true),
	C("{\"a\":1} x", "", 0, "", true), C("{\"a\":1}}", "", 0, "", true), C("{\"a\":1,}", "", 0, "", true),
	C("{\"a\" 1}", "", 0, "", true), C("{a:1}", "", 0, "", true), C("{\"a\":1 \"b\":2}", "", 0, "", true),
	C("[1,2", "", 0, "", false), C("[1 2]", "", 0, "", false), C("[,]", "", 0, "", false),
	C("[1]", "", 0, "", true), C("1", "", 0, "", true), C("\"s\"", "", 0, "", true), C("null", "", 0, "", true),
	C("{\"a\":1,\"a\":2}", "", 0, "", true), C("{\"a\":1,\"\\u0061\":2}", "", 0, "", true),
	C("{\"x\":{\"a\":1,\"a\":2}}", "", 0, "", true), C("{\"a\":{\"a\":1},\"b\":{\"a\":2}}", "", 0, "", true),
	C("{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,\"k9\":9,\"ka\":10,\"kb\":11,\"kc\":12,\"kd\":13,\"ke\":14}", "", 0, "", true),
	C("{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,\"k9\":9,\"ka\":10,\"kb\":11,\"kc\":12,\"kd\":13,\"ke\":14,\"kf\":15}", "", 0, "", true),
	C("{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,\"k9\":9,\"ka\":10,\"kb\":11,\"kc\":12,\"kd\":13,\"ke\":14,\"kf\":15,\"kg\":16,\"k5\":17}", "", 0, "", true),
	C("{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,\"k9\":9,\"ka\":10,\"kb\":11,\"kc\":12,\"kd\":13,\"ke\":14,\"kf\":15,\"kg\":16,\"kh\":17,\"k\":", "", 0, "[]}", true),
	C("{\"s\":\"", "a", 31, "\"}", true), C("{\"s\":\"", "a", 32, "\"}", true),
	C("{\"s\":\"", "a", 255, "\"}", true), C("{\"s\":\"", "a", 256, "\"}", true),
	C("{\"s\":\"", "a", 65535, "\"}", true), C("{\"s\":\"", "a", 65536, "\"}", true),
	C("{\"s\":\"", "\\n", 40, "\"}", true), C("{\"s\":\"", "\\u00e9", 200, "\"}", true),
	C("{\"s\":\"", "\xc3\xa9", 20000, "\"}", true), C("{\"s\":\"", "\\ud83d\\ude00", 20000, "\"}", true),
	C("{\"", "k", 300, "\":1}", true),
	C("[0", ",0", 14, "]", false), C("[0", ",0", 15, "]", false), C("[0", ",0", 65534, "]", false),
	C("[0", ",0", 65535, "]", false), C("[0", ",1.5", 20000, "]", false),
	C("[[", "[0],", 100, "0]]", false), C("{\"a\":[", "{\"b\":\"c\",\"d\":[1,2.5,null]},", 500, "{}]}", true),
};
#undef C

static const struct gexpect { int rc; size_t len; uint64_t fnv; const char *msg; } gexpect[] = {
	{ 0, 170, 0x179d7b3ceaf0c180ull, "" },
	{ 0, 2, 0x0a1fce07b68ef3a6ull, "" },
	{ 0, 2, 0x0a1fce07b68ef3a6ull, "" },
	{ 0, 2, 0x0a1fde07b68f0ed6ull, "" },
	{ 0, 16, 0x60fea03d6b78db3cull, "" },
	{ 0, 13, 0xed29c258af53d9c8ull, "" },
	{ 0, 15, 0x23b547451413aaf4ull, "" },
	{ 0, 10, 0x7a8eb07f5c68087aull, "" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 6" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 6" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 6" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 6" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: \\u0000 at byte 7 is not supported" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 8" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 8" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 7" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 7" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 9" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 7" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 7" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid UTF-8 at byte 6" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid UTF-8 at byte 6" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid UTF-8 at byte 6" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid UTF-8 at byte 6" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid UTF-8 at byte 6" },
	{ 0, 14, 0x519a2bb3909fbbb7ull, "" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid UTF-8 at byte 4" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid UTF-8 at byte 7" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid UTF-8 at byte 18" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 0" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid UTF-8 at byte 6" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid UTF-8 at byte 9" },
	{ 0, 13, 0x5855e4ced60c3cdaull, "" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 63" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 64" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: nested deeper than 64 at byte 64" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid UTF-8 at byte 64" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 68" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 69" },
	{ 0, 64, 0x24899cb3d679ffb4ull, "" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 317" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: integer out of range (beyond 64 bits) at byte 22; write it as a string to keep it exactly" },
	{ 0, 47, 0x1b4b6d6722508ad9ull, "" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: integer out of range (beyond 64 bits) at byte 1; write it as a string to keep it exactly" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: integer out of range (beyond 64 bits) at byte 1; write it as a string to keep it exactly" },
	{ 0, 113, 0xa51297b297e49c09ull, "" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: number out of range (beyond a double) at byte 1" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: number out of range (beyond a double) at byte 1" },
	{ 0, 11, 0xa72cd583a93da939ull, "" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: number out of range (beyond a double) at byte 1" },
	{ 0, 76, 0x0b2e02671525f135ull, "" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 2" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 3" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 1" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 1" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 3" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 1" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 4" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 1" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 6" },
	{ 0, 5, 0xd51dee95e5bf13f2ull, "" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 1" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 1" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 1" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 0" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 3" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: unexpected text after the JSON value at byte 8" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: unexpected text after the JSON value at byte 7" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 7" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 5" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 1" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: invalid JSON at byte 7" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 4" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 3" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "value: invalid JSON at byte 1" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: not a JSON object" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: not a JSON object" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: not a JSON object" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: not a JSON object" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: duplicate key \"a\"" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: duplicate key \"a\"" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: duplicate key \"a\"" },
	{ 0, 14, 0x411fea1f78ac23acull, "" },
	{ 0, 62, 0x138b96bc61bd6ff1ull, "" },
	{ 0, 68, 0x87d4af00a2849e3eull, "" },
	{ -1, 1, 0xaf644e4c8602ae42ull, "properties: duplicate key \"k5\"" },
	{ 0, 79, 0xab847eefabad935dull, "" },
	{ 0, 36, 0x067f807934988f9full, "" },
	{ 0, 38, 0x0f1063ed32d30978ull, "" },
	{ 0, 261, 0xa9c3d0b7c23521b6ull, "" },
	{ 0, 263, 0x424e131d73747040ull, "" },
	{ 0, 65542, 0xf56ea3b358bc5f44ull, "" },
	{ 0, 65545, 0x18970a7afc5fd419ull, "" },
	{ 0, 46, 0xb9b6b2a686841ab0ull, "" },
	{ 0, 407, 0x2417c82cd173a270ull, "" },
	{ 0, 40007, 0xf8884eef090db0a5ull, "" },
	{ 0, 80009, 0x0265bfcec2d38831ull, "" },
	{ 0, 306, 0x639126cd8925d353ull, "" },
	{ 0, 17, 0xc9befcd906341e1dull, "" },
	{ 0, 20, 0xb275e8bde881a13aull, "" },
	{ 0, 65539, 0x8a982d4ec0802300ull, "" },
	{ 0, 65542, 0x5422a8c51dc85ed2ull, "" },
	{ 0, 180005, 0xc82f43f7c948bc05ull, "" },
	{ 0, 206, 0x48823cf7c57f0388ull, "" },
	{ 0, 9508, 0x07dc2e560131423dull, "" },
};

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
	return h;
}

static void test_json_golden(void **state)
{
	(void)state;
	assert_int_equal(sizeof gcases / sizeof *gcases, sizeof gexpect / sizeof *gexpect);
	for (size_t i = 0; i < sizeof gcases / sizeof *gcases; i++) {
		const struct gcase *g = &gcases[i];
		size_t hl = strlen(g->head), ul = strlen(g->unit), tl = strlen(g->tail);
		size_t len = hl + ul * g->n + tl;
		char *s = malloc(len + 1), *p = s;
		mb_buf out = { 0 };
		int rc;

		assert_non_null(s);
		memcpy(p, g->head, hl);
		p += hl;
		for (unsigned k = 0; k < g->n; k++, p += ul)
			memcpy(p, g->unit, ul);
		memcpy(p, g->tail, tl);
		s[len] = 'x';  /* never read: the length bounds the text */
		buf_add(&out, "\x93", 1);
		rc = g->obj ? json_object_to_mp(s, len, 1 << 20, "properties", NULL, &out)
		            : json_to_mp(s, len, 1 << 20, 64, "value", NULL, &out);
		if (rc != gexpect[i].rc || out.len != gexpect[i].len ||
		    fnv1a(out.data, out.len) != gexpect[i].fnv ||
		    strcmp(rc ? mb_last_error(NULL) : "", gexpect[i].msg))
			fail_msg("case %zu (%.40s...): rc %d, %zu bytes, \"%s\"", i, g->head, rc,
			         out.len, rc ? mb_last_error(NULL) : "");
		buf_free(&out);
		free(s);
	}
}

/* A float token's double, as json_to_mp packs it (0xcb, 8 bytes big-endian). */
static uint64_t packed_bits(const char *tok)
{
	mb_buf out = { 0 };
	uint64_t bits = 0;

	if (json_to_mp(tok, strlen(tok), 1 << 20, 64, "value", NULL, &out) || out.len != 9 ||
	    ((const uint8_t *)out.data)[0] != 0xcb)
		fail_msg("%s: not packed as a float64", tok);
	for (int i = 1; i < 9; i++)
		bits = bits << 8 | ((const uint8_t *)out.data)[i];
	buf_free(&out);
	return bits;
}

static uint64_t strtod_bits(const char *tok)
{
	double d = strtod_l(tok, NULL, mb_c_locale());
	uint64_t bits;

	memcpy(&bits, &d, sizeof bits);
	return bits;
}

/* Floats are read as strtod reads them, bit for bit, whether the fast path
 * (jsonmp.c, Clinger's) takes them or not: its edges, then a million
 * tokens of random digits, point and exponent (a fixed seed). */
static void test_float_parse_exact(void **state)
{
	static const char *const edges[] = {
		"0.0", "-0.0", "0e0", "-0e-5", "1.0", "-1.5", "0.1", "0.3", "1e22", "1e23", "1e-22",
		"1e-23", "9007199254740992.0", "9007199254740993.0", "9007199254740992e22",
		"9007199254740993e-22", "4.9406564584124654e-324", "2.2250738585072014e-308",
		"1.7976931348623157e308", "1e-400", "123456789012345678.9", "0.0000000000000000000001",
		"1.00000000000000000000000000001", "12345678.0", "3.14159", "-2.718281828459045",
		"1E+5", "1e-0", "100000000000000000000000e-23", "0.000000000000000000000000000001e30",
	};
	uint64_t x = 0x9e3779b97f4a7c15ull;
	char tok[80];

	(void)state;
	for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
		if (packed_bits(edges[i]) != strtod_bits(edges[i]))
			fail_msg("%s: packed %016llx, strtod %016llx", edges[i],
			         (unsigned long long)packed_bits(edges[i]),
			         (unsigned long long)strtod_bits(edges[i]));
	for (int n = 0; n < 1000000; n++) {
		size_t len = 0;
		int digits, point;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		digits = 1 + (int)(x % 20);
		point = (int)((x >> 8) % (unsigned)digits);
		if (x >> 63)
			tok[len++] = '-';
		for (int d = 0; d < digits; d++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			tok[len++] = (char)('0' + (d == 0 && digits > 1 && point > 0 ? 1 + x % 9 : x % 10));
			if (d == point)
				tok[len++] = '.', tok[len++] = (char)('0' + (x >> 20) % 10);
		}
		if ((x >> 30) % 3 == 0)
			len += (size_t)snprintf(tok + len, sizeof tok - len, "e%d",
			                        (int)((x >> 33) % 61) - 30);
		tok[len] = '\0';
		if (packed_bits(tok) != strtod_bits(tok))
			fail_msg("%s: packed %016llx, strtod %016llx", tok,
			         (unsigned long long)packed_bits(tok), (unsigned long long)strtod_bits(tok));
	}
}

/* json_add_double's text (its printf-free path for short decimals, mp.c
 * fast_double) against the rule done the slow way: the fewest of 15, 16,
 * 17 significant digits (%.Ng) that strtod reads back as the same double,
 * ".0" added when that reads as an integer.  Edge cases, integers, short
 * decimals of every scale the fast path takes and a little beyond, and
 * random bit patterns; a million of them, from a fixed seed. */
static void reference_double(double d, char out[40])
{
	for (int digits = fpclassify(d) == FP_SUBNORMAL ? 1 : 15; digits <= 17; digits++) {
		snprintf(out, 40, "%.*g", digits, d);
		if (strtod(out, NULL) == d)
			break;
	}
	if (!strpbrk(out, ".eE"))
		strcat(out, ".0");
}

static void check_double(double d)
{
	char want[40];
	mb_buf got = { 0 };

	reference_double(d, want);
	assert_int_equal(json_add_double(&got, d), 0);
	if (strcmp(got.data, want))
		fail_msg("%a: json_add_double %s, the rule %s", d, got.data, want);
	buf_free(&got);
}

static void test_float_format_exact(void **state)
{
	static const double edges[] = {
		0.0, -0.0, 0.5, -1.5, 0.1, 0.2, 0.3, 0.1 + 0.2, 1.0 / 3, 2.0 / 3, 1e-4, 9.999e-5,
		1.2345e-4, 0.00012345678901234, 1e15, 999999999999999.0, 999999999999999.9,
		1e14 + 0.5, 123456789012345.6, 9007199254740992.0, 9007199254740993.0, 1e16, 1e22,
		1e23, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 3.14159,
		-2.718281828459045, 100.0, 1000000.0, 0.05, 0.005, 0.0005, 0.00005, 12.25, 1e-5,
	};
	uint64_t x = 0x9e3779b97f4a7c15ull;

	(void)state;
	for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
		check_double(edges[i]);
	check_double(INFINITY);  /* what printf makes of them; values never hold them */
	check_double(NAN);
	for (int n = 0; n < 1000000; n++) {
		double d;
		uint64_t bits;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		switch (x % 4) {
		case 0:   /* random bits: most need 16 or 17 digits */
			bits = x * 0x2545f4914f6cdd1dull;
			memcpy(&d, &bits, sizeof d);
			if (isnan(d))
				continue;
			break;
		case 1:   /* a short decimal, 10^-20 to 10^16 */
			d = (double)((x >> 8) % 100000) / pow(10, (double)((x >> 40) % 25)) *
			    pow(10, (double)((x >> 50) % 12));
			break;
		case 2:   /* m / 10^k with up to 17 digits */
			d = (double)((x >> 4) % 100000000000000000ull) / pow(10, (double)((x >> 58) % 20));
			break;
		default:  /* integers */
			d = (double)(int64_t)(x >> (x % 64));
		}
		check_double((x >> 32) & 1 ? -d : d);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_page_put_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page_exact_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page_numbers_exact, setup, teardown),
		cmocka_unit_test(test_float_parse_exact),
		cmocka_unit_test(test_float_format_exact),
		cmocka_unit_test_setup_teardown(test_page_numbers_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page_merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page_delete_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page_iterate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_semantics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_failure_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_history_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_limit_of_existing_bank, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_stats_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_defaults_and_merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_numbers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eviction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_toggles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_bank_keeps_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_existing_bank_keeps_legacy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identity_cache_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eviction_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_fdatasyncs, setup, teardown),
		cmocka_unit_test(test_errors_table),
		cmocka_unit_test(test_disk_msgpack_checked),
		cmocka_unit_test(test_checked_walk),
		cmocka_unit_test(test_json_golden),
		cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
	};
	return cmocka_run_group_tests_name("store-ops", tests, NULL, NULL);
}
