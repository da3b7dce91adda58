/*
 * test_recovery.c - the journal is the truth: rebuild, machine crashes,
 * checkpoints, snapshot and restore, and processes killed at any instant.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <time.h>

#include "helpers.h"
#include "load.h"

typedef struct fx {
	char *dir, path[1024];
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);

	f->dir = tmp_dir();
	snprintf(f->path, sizeof f->path, "%s/bank", f->dir);
	*state = f;
	unsetenv("MEMBANK_TEST_BOOT_ID");
	return f->dir ? 0 : -1;
}

static int teardown(void **state)
{
	fx *f = *state;

	unsetenv("MEMBANK_TEST_BOOT_ID");
	rm_rf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static mb_bank *open_at(const char *path, mb_durability d, uint64_t segment_bytes)
{
	mb_options o;
	mb_bank *b = NULL;

	mb_options_init(&o);
	o.durability = d;
	o.segment_bytes = segment_bytes;
	if (mb_open(path, &o, &b))
		fprintf(stderr, "open %s: %s\n", path, mb_last_error(NULL));
	return b;
}

/* A random workload of every mutation kind. */
static void workload(mb_bank *b, unsigned seed, int n)
{
	static const char *const types[] = { "rate_limited", "validation_error", "timeout", "conflict" };
	char id[32], props[256];

	srand(seed);
	for (int i = 0; i < n; i++) {
		int r = rand() % 100;
		snprintf(id, sizeof id, "page-%03d", rand() % 150);
		snprintf(props, sizeof props, "{\"title\":\"T\\u00e9 %d\",\"n\":%d,\"tags\":[\"a\",%d.5],"
		         "\"nested\":{\"deep\":{\"x\":\"line\\nbreak \\\"q\\\"\"}}}", i, r, i);
		if (r < 30)
			assert_int_equal(mb_page_put(b, id, props, (size_t)-1), 0);
		else if (r < 50) {
			snprintf(props, sizeof props, "{\"k%d\":%d,\"gone\":null}", rand() % 5, i);
			assert_int_equal(mb_page_merge(b, id, props, (size_t)-1), 0);
		} else if (r < 55)
			mb_page_delete(b, id);
		else if (r < 70)
			assert_int_equal(mb_sync_record(b, r % 2 ? "success" : "failed",
			                                 r % 2 ? NULL : "HTTP 502"), 0);
		else if (r < 72)
			assert_int_equal(mb_sync_record(b, "in_progress", NULL), 0);
		else if (r < 88)
			assert_int_equal(mb_error_log(b, types[r % 4], "it broke"), 0);
		else if (r < 95)
			assert_int_equal(mb_error_resolve(b, types[r % 4], "retried"), 0);
		else {
			snprintf(props, sizeof props, "{\"notion_settings\":{\"retry_attempts\":%d},"
			         "\"cache_settings\":{\"max_entries\":%d}}", r % 10, 100 + r);
			assert_int_equal(mb_config_update(b, props, (size_t)-1), 0);
		}
	}
}

static void test_rebuild_equals(void **state)
{
	fx *f = *state;
	mb_bank *b = open_at(f->path, MB_DURABILITY_FAST, 0);

	workload(b, 1, 1500);
	assert_rebuild_same(b);
	mb_close(b);
}

static void test_machine_crash_rebuilds(void **state)
{
	fx *f = *state;
	mb_bank *b;
	char *before, *after, marker[1100], text[64] = "";
	int fd;

	setenv("MEMBANK_TEST_BOOT_ID", "boot-one-aaaaaaaaaaaaaaaaaaaaaaaaaaa", 1);
	b = open_at(f->path, MB_DURABILITY_FULL, 0);
	workload(b, 2, 600);
	before = state_of(b);
	mb_close(b);
	/* another boot: the store may hold writes that never reached the disk;
	 * make it visibly wrong to prove it is rebuilt, not trusted */
	setenv("MEMBANK_TEST_BOOT_ID", "boot-two-bbbbbbbbbbbbbbbbbbbbbbbbbbb", 1);
	snprintf(marker, sizeof marker, "%s/store/data.mdb", f->path);
	fd = open(marker, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "garbage!", 8, 0), 8);
	close(fd);
	b = open_at(f->path, MB_DURABILITY_FULL, 0);
	assert_non_null(b);
	after = state_of(b);
	assert_string_equal(before, after);
	snprintf(marker, sizeof marker, "%s/store/boot_id", f->path);
	fd = open(marker, O_RDONLY);
	assert_true(read(fd, text, sizeof text - 1) > 0);
	close(fd);
	assert_string_equal(text, "boot-two-bbbbbbbbbbbbbbbbbbbbbbbbbbb");
	free(before);
	free(after);
	mb_close(b);
}

/* <dir>/<name>'s whole content, or NULL. */
static char *slurp_at(const char *dir, const char *name)
{
	char path[2048];

	snprintf(path, sizeof path, "%s/%s", dir, name);
	return slurp(path, NULL);
}

static const char *const files[4] = {
	"notion_pages.json", "sync_status.json", "error_log.json", "config_cache.json"
};

static void assert_same_files(const char *a, const char *b)
{
	for (int i = 0; i < 4; i++) {
		char *x = slurp_at(a, files[i]), *y = slurp_at(b, files[i]);
		assert_non_null(x);
		assert_non_null(y);
		if (strcmp(x, y))
			fail_msg("%s differs between %s and %s", files[i], a, b);
		free(x);
		free(y);
	}
}

static void test_checkpoint_plus_tail(void **state)
{
	fx *f = *state;
	mb_bank *b;
	mb_snapshot_info si;
	char *before, *after, out1[1100], out2[1100];

	setenv("MEMBANK_TEST_BOOT_ID", "boot-one-aaaaaaaaaaaaaaaaaaaaaaaaaaa", 1);
	b = open_at(f->path, MB_DURABILITY_FAST, 64 << 10);
	workload(b, 3, 2000);
	assert_int_equal(mb_snapshot(b, NULL, &si), 0);
	assert_true(si.seq > 0);
	assert_int_equal(si.segments_removed, 0);  /* the first: nothing to fall back on */
	workload(b, 5, 300);
	assert_int_equal(mb_snapshot(b, NULL, &si), 0);
	assert_true(si.segments_removed > 0);  /* those the checkpoint before it covers */
	workload(b, 4, 800);
	before = state_of(b);
	snprintf(out1, sizeof out1, "%s/out1", f->dir);
	mkdir(out1, 0700);
	assert_int_equal(mb_snapshot(b, out1, NULL), 0);
	mb_close(b);
	setenv("MEMBANK_TEST_BOOT_ID", "boot-two-bbbbbbbbbbbbbbbbbbbbbbbbbbb", 1);
	b = open_at(f->path, MB_DURABILITY_FAST, 64 << 10);  /* checkpoint + journal tail */
	assert_non_null(b);
	after = state_of(b);
	assert_string_equal(before, after);
	snprintf(out2, sizeof out2, "%s/out2", f->dir);
	mkdir(out2, 0700);
	assert_int_equal(mb_snapshot(b, out2, NULL), 0);
	assert_same_files(out1, out2);
	free(before);
	free(after);
	mb_close(b);
}

static void test_round_trip_bytes(void **state)
{
	fx *f = *state;
	mb_bank *b = open_at(f->path, MB_DURABILITY_FAST, 0);
	char out[1100], out2[1100], path2[1100];

	mb_config_update(b, "{\"cache_settings\":{\"max_entries\":0,\"ttl_seconds\":0},"
	                 "\"notion_settings\":{\"timeout_seconds\":12.5}}", (size_t)-1);
	workload(b, 5, 700);
	mb_page_put(b, "uni\xe2\x98\x83 \"q\"", "{\"emoji\":\"\\ud83d\\ude00\",\"ctl\":\"\\u0001\\t\","
	            "\"num\":[0.1,-0,1e-300,123456789012]}", (size_t)-1);
	snprintf(out, sizeof out, "%s/snap", f->dir);
	mkdir(out, 0700);
	assert_int_equal(mb_snapshot(b, out, NULL), 0);
	mb_close(b);
	snprintf(path2, sizeof path2, "%s/restored", f->dir);
	if (mb_restore(out, path2, NULL, 0))
		fail_msg("restore: %s", mb_last_error(NULL));
	b = open_at(path2, MB_DURABILITY_FAST, 0);
	snprintf(out2, sizeof out2, "%s/snap2", f->dir);
	mkdir(out2, 0700);
	assert_int_equal(mb_snapshot(b, out2, NULL), 0);
	assert_same_files(out, out2);
	mb_close(b);
}

/* Numbers survive snapshot -> restore -> snapshot exactly: 64-bit integers,
 * floats that stay floats (1.0, -0.0), the shortest text of each double. */
static void test_round_trip_numbers(void **state)
{
	static const char props[] =
		"{\"imax\":9223372036854775807,\"imin\":-9223372036854775808,"
		"\"umax\":18446744073709551615,\"p53\":9007199254740993,\"one\":1.0,"
		"\"big\":12345678.0,\"nz\":-0.0,\"iz\":0,\"tenth\":0.1,\"e\":1e+300,"
		"\"tiny\":5e-324,\"dmax\":1.7976931348623157e+308,"
		"\"deep\":[1.0,{\"x\":[-0.0,18446744073709551615,-1]}]}";
	fx *f = *state;
	mb_bank *b = open_at(f->path, MB_DURABILITY_FAST, 0);
	char out[1100], out2[1100], path2[1100], deep[64 * 6 + 16], *p = deep, *got, *t;

	assert_int_equal(mb_page_put(b, "num", props, (size_t)-1), 0);
	assert_int_equal(mb_config_update(b, "{\"notion_settings\":{\"timeout_seconds\":30.0}}",
	                                  (size_t)-1), 0);
	/* properties nested 64 deep (the most a put takes) restore too */
	for (int i = 0; i < 64; i++)
		p += sprintf(p, i ? "{\"a\":" : "{\"d\":");
	p += sprintf(p, "-0.0");
	memset(p, '}', 64);
	p[64] = '\0';
	assert_int_equal(mb_page_put(b, "deep", deep, (size_t)-1), 0);
	snprintf(out, sizeof out, "%s/snap", f->dir);
	mkdir(out, 0700);
	assert_int_equal(mb_snapshot(b, out, NULL), 0);
	mb_close(b);
	t = slurp_at(out, "notion_pages.json");
	assert_non_null(strstr(t, props));
	free(t);
	t = slurp_at(out, "config_cache.json");
	assert_non_null(strstr(t, "\"timeout_seconds\":30.0}"));
	free(t);
	snprintf(path2, sizeof path2, "%s/restored", f->dir);
	if (mb_restore(out, path2, NULL, 0))
		fail_msg("restore: %s", mb_last_error(NULL));
	b = open_at(path2, MB_DURABILITY_FAST, 0);
	assert_int_equal(mb_page_get(b, "num", &got, NULL), 0);
	assert_memory_equal(got, "{\"properties\":", 14);
	assert_memory_equal(got + 14, props, strlen(props));
	mb_free(got);
	snprintf(out2, sizeof out2, "%s/snap2", f->dir);
	mkdir(out2, 0700);
	assert_int_equal(mb_snapshot(b, out2, NULL), 0);
	assert_same_files(out, out2);
	mb_close(b);
}

static void test_restore_refuses_existing(void **state)
{
	fx *f = *state;
	mb_bank *b = open_at(f->path, MB_DURABILITY_FAST, 0), *c;
	char snap[1100], other[1100], *s;

	mb_page_put(b, "old", "{}", 2);
	snprintf(other, sizeof other, "%s/other", f->dir);
	c = open_at(other, MB_DURABILITY_FAST, 0);
	mb_page_put(c, "new", "{}", 2);
	snprintf(snap, sizeof snap, "%s/snap", f->dir);
	mkdir(snap, 0700);
	assert_int_equal(mb_snapshot(c, snap, NULL), 0);
	mb_close(c);
	mb_close(b);
	assert_int_equal(mb_restore(snap, f->path, NULL, 0), MB_EEXIST);
	b = open_at(f->path, MB_DURABILITY_FAST, 0);
	assert_int_equal(mb_page_get(b, "old", &s, NULL), 0);
	mb_free(s);
	/* open elsewhere: refused even with force (this process counts: a
	 * child holds it) */
	int opened[2], release[2];
	char byte = 0;
	assert_int_equal(pipe(opened), 0);
	assert_int_equal(pipe(release), 0);
	pid_t pid = fork();
	if (pid == 0) {  /* holds the bank open until told to close it */
		mb_bank *cb = open_at(f->path, MB_DURABILITY_FAST, 0);
		if (!cb || write(opened[1], "o", 1) != 1 || read(release[0], &byte, 1) != 1)
			_exit(1);
		mb_close(cb);
		_exit(0);
	}
	mb_close(b);
	assert_int_equal(read(opened[0], &byte, 1), 1);
	assert_int_equal(mb_restore(snap, f->path, NULL, MB_RESTORE_FORCE), MB_EPERM);
	assert_int_equal(write(release[1], "c", 1), 1);
	assert_int_equal(wait_child(pid, 60), 0);
	for (int i = 0; i < 2; i++) {
		close(opened[i]);
		close(release[i]);
	}
	assert_int_equal(mb_restore(snap, f->path, NULL, MB_RESTORE_FORCE), 0);
	b = open_at(f->path, MB_DURABILITY_FAST, 0);
	assert_int_equal(mb_page_get(b, "new", &s, NULL), 0);
	mb_free(s);
	assert_int_equal(mb_page_get(b, "old", &s, NULL), MB_ENOTFOUND);
	mb_close(b);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[2048];
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void test_restore_bad_files(void **state)
{
	static const struct { const char *file, *text, *needle; } bad[] = {
		{ "notion_pages.json", "{\"pages\":{\"a\":{\"properties\":{}", "byte" },
		{ "notion_pages.json", "[]", "expected '{'" },
		{ "notion_pages.json", "{\"pages\":{\"a\":{\"properties\":{\"n\":18446744073709551616},"
		  "\"last_updated\":\"2026-01-01T00:00:00.000000Z\"}},\"last_updated\":null,\"metadata\":"
		  "{\"total_pages\":1,\"last_sync\":null}}", "integer out of range (beyond 64 bits)" },
		{ "notion_pages.json", "{\"pages\":{\"a\":{\"properties\":{\"n\":-1e400},"
		  "\"last_updated\":\"2026-01-01T00:00:00.000000Z\"}},\"last_updated\":null,\"metadata\":"
		  "{\"total_pages\":1,\"last_sync\":null}}", "number out of range" },
		{ "notion_pages.json", "{\"pages\":{},\"last_updated\":null,\"metadata\":{\"total_pages\":1,"
		  "\"last_sync\":null}}", "total_pages is 1" },
		{ "notion_pages.json", "{\"pages\":{\"a\":{\"properties\":[],\"last_updated\":"
		  "\"2026-01-01T00:00:00.000000Z\"}},\"last_updated\":null,\"metadata\":{\"total_pages\":1,"
		  "\"last_sync\":null}}", "pages.\"a\"" },
		{ "notion_pages.json", "{\"pages\":{\"a\":{\"properties\":{},\"last_updated\":\"yesterday\"}},"
		  "\"last_updated\":null,\"metadata\":{\"total_pages\":1,\"last_sync\":null}}", "timestamp" },
		{ "sync_status.json", "{\"last_successful_sync\":null,\"sync_history\":[],"
		  "\"current_status\":null,\"error_count\":\"3\",\"success_count\":0}", "error_count" },
		{ "sync_status.json", "{\"last_successful_sync\":null,\"sync_history\":{},"
		  "\"current_status\":null,\"error_count\":0,\"success_count\":0}", "sync_history" },
		{ "sync_status.json", "{\"sync_history\":[]", "invalid JSON" },
		{ "sync_status.json", "{\"surprise\":1}", "unknown key" },
		{ "error_log.json", "{\"errors\":[],\"patterns\":{\"a\":2},\"resolutions\":{},"
		  "\"last_error\":{},\"error_stats\":{\"total_errors\":1,\"resolved_errors\":0}}", "disagree" },
		{ "config_cache.json", "{\"notion_settings\":{\"retry_attempts\":\"x\"}}", "retry_attempts" },
		{ "config_cache.json", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
		  "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", "nested deeper" },
	};
	fx *f = *state;
	mb_bank *b = open_at(f->path, MB_DURABILITY_FAST, 0);
	char snap[1100], target[1100], path[2048];
	struct stat st;

	mb_page_put(b, "p", "{}", 2);
	snprintf(snap, sizeof snap, "%s/snap", f->dir);
	mkdir(snap, 0700);
	assert_int_equal(mb_snapshot(b, snap, NULL), 0);
	mb_close(b);
	snprintf(target, sizeof target, "%s/target", f->dir);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *good = slurp_at(snap, bad[i].file);
		write_file(snap, bad[i].file, bad[i].text);
		int rc = mb_restore(snap, target, NULL, 0);
		if (rc != MB_EINVAL || !strstr(mb_last_error(NULL), bad[i].needle) ||
		    !strstr(mb_last_error(NULL), bad[i].file))
			fail_msg("case %zu: rc %d \"%s\"", i, rc, mb_last_error(NULL));
		assert_int_equal(stat(target, &st), -1);  /* no bank was made */
		write_file(snap, bad[i].file, good);
		free(good);
	}
	/* a file larger than the bound, without writing it (sparse) */
	snprintf(path, sizeof path, "%s/sync_status.json", snap);
	assert_int_equal(truncate(path, (off_t)MB_MAX_SYNC_FILE + 1), 0);
	assert_int_equal(mb_restore(snap, target, NULL, 0), MB_EINVAL);
	assert_non_null(strstr(mb_last_error(NULL), "at most"));
	assert_int_equal(stat(target, &st), -1);
}

/* The loader reads each page where it starts, with no scan for its end
 * first (json_prefix_to_mp): a page that does not end within the bound, and
 * an error with invalid UTF-8 only in a later page, are still named right. */
static void test_restore_pages_read_in_place(void **state)
{
	static const char head[] = "{\"pages\":{\"a\":{\"properties\":{\"s\":\"";
	static const char tail[] = "\"},\"last_updated\":\"2026-01-01T00:00:00.000000Z\"}},"
	                           "\"last_updated\":null,\"metadata\":{\"total_pages\":1,"
	                           "\"last_sync\":null}}";
	static const struct { const char *text, *needle; } bad[] = {
		/* a syntax error in "a", invalid UTF-8 only in "b": the first */
		{ "{\"pages\":{\"a\":{\"properties\":{\"x\":tru},\"last_updated\":"
		  "\"2026-01-01T00:00:00.000000Z\"},\"b\":{\"properties\":{\"y\":\"\xff\"},"
		  "\"last_updated\":\"2026-01-01T00:00:00.000000Z\"}},\"last_updated\":null,"
		  "\"metadata\":{\"total_pages\":2,\"last_sync\":null}}", "page: invalid JSON at byte 19" },
		/* invalid UTF-8 in "a" before its syntax error: UTF-8 is the error */
		{ "{\"pages\":{\"a\":{\"properties\":{\"x\":\"\xc3\",\"y\":tru},\"last_updated\":"
		  "\"2026-01-01T00:00:00.000000Z\"}},\"last_updated\":null,"
		  "\"metadata\":{\"total_pages\":1,\"last_sync\":null}}", "invalid UTF-8 at byte 20" },
		/* the file ends inside a page */
		{ "{\"pages\":{\"a\":{\"properties\":{\"x\":\"abc", "page: invalid JSON at byte" },
	};
	fx *f = *state;
	mb_bank *b = open_at(f->path, MB_DURABILITY_FAST, 0);
	char snap[1100], target[1100], path[2048], *chunk;
	struct stat st;
	FILE *fp;

	mb_page_put(b, "p", "{}", 2);
	snprintf(snap, sizeof snap, "%s/snap", f->dir);
	mkdir(snap, 0700);
	assert_int_equal(mb_snapshot(b, snap, NULL), 0);
	mb_close(b);
	snprintf(target, sizeof target, "%s/target", f->dir);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_file(snap, "notion_pages.json", bad[i].text);
		int rc = mb_restore(snap, target, NULL, 0);
		if (rc != MB_EINVAL || !strstr(mb_last_error(NULL), bad[i].needle) ||
		    !strstr(mb_last_error(NULL), "notion_pages.json: byte 14"))
			fail_msg("case %zu: rc %d \"%s\"", i, rc, mb_last_error(NULL));
		assert_int_equal(stat(target, &st), -1);
	}
	/* one page one byte over its bound, a valid file otherwise */
	snprintf(path, sizeof path, "%s/notion_pages.json", snap);
	assert_non_null(fp = fopen(path, "w"));
	assert_non_null(chunk = malloc(1 << 20));
	memset(chunk, 'x', 1 << 20);
	fputs(head, fp);
	/* the page is {"properties":{"s":"..."},"last_updated":"..."} */
	size_t around = strlen("{\"properties\":{\"s\":\"") + strlen(tail) -
	                strlen("},\"last_updated\":null,\"metadata\":{\"total_pages\":1,"
	                       "\"last_sync\":null}}");
	for (size_t left = MB_MAX_PAGE_JSON + 1 - around; left;) {
		size_t n = left < (1 << 20) ? left : (1 << 20);
		assert_int_equal(fwrite(chunk, 1, n, fp), n);
		left -= n;
	}
	fputs(tail, fp);
	assert_int_equal(fclose(fp), 0);
	free(chunk);
	assert_int_equal(mb_restore(snap, target, NULL, 0), MB_EINVAL);
	if (!strstr(mb_last_error(NULL), "notion_pages.json: byte 14: page: larger than the limit of"))
		fail_msg("%s", mb_last_error(NULL));
	assert_int_equal(stat(target, &st), -1);
	unlink(path);
}

/* notion_pages.json as a file edited by hand may have it: pages in any
 * order (a snapshot lists them in key order, and the loader appends those),
 * @ids given in this order, page i updated at second t[i]. */
static void write_pages(const char *dir, const char *const *ids, const int *t, int n)
{
	char doc[4096];
	size_t at = 0;

	at += (size_t)snprintf(doc + at, sizeof doc - at, "{\"pages\":{");
	for (int i = 0; i < n; i++)
		at += (size_t)snprintf(doc + at, sizeof doc - at, "%s\"%s\":{\"properties\":{\"i\":%d},"
		                       "\"last_updated\":\"2026-01-01T00:00:%02d.000000Z\"}",
		                       i ? "," : "", ids[i], i, t[i]);
	snprintf(doc + at, sizeof doc - at, "},\"last_updated\":null,\"metadata\":"
	         "{\"total_pages\":%d,\"last_sync\":null}}", n);
	write_file(dir, "notion_pages.json", doc);
}

/* Pages out of key order restore as in order (inserted, not appended),
 * with the time index eviction uses; a duplicate id is refused wherever
 * it comes, as before appends. */
static void test_restore_page_order(void **state)
{
	static const char *const ids[] = { "m", "c", "x", "a", "b" };
	static const int t[] = { 3, 1, 0, 2, 4 };
	static const char *const dup1[] = { "a", "b", "a" }, *const dup2[] = { "a", "a" };
	static const char *const dup3[] = { "b", "c", "a", "c" };
	fx *f = *state;
	char snap[1100], target[1100], out[1100], *text;
	struct stat st;
	uint64_t n = 0;
	mb_bank *b;

	snprintf(snap, sizeof snap, "%s/snap", f->dir);
	snprintf(target, sizeof target, "%s/target", f->dir);
	snprintf(out, sizeof out, "%s/out", f->dir);
	assert_int_equal(mkdir(snap, 0700), 0);
	assert_int_equal(mkdir(out, 0700), 0);
	write_file(snap, "config_cache.json", "{\"cache_settings\":{\"ttl_seconds\":0,"
	           "\"max_entries\":5}}");
	write_pages(snap, ids, t, 5);
	if (mb_restore(snap, target, NULL, 0))
		fail_msg("restore: %s", mb_last_error(NULL));
	b = open_at(target, MB_DURABILITY_FAST, 0);
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, 5);
	for (int i = 0; i < 5; i++) {
		cJSON *p = get_page(b, ids[i]);
		assert_non_null(p);
		assert_int_equal(num_at(p, "properties", "i"), i);
		cJSON_Delete(p);
	}
	/* the time index: a new page evicts the oldest, x */
	assert_int_equal(mb_page_put(b, "new", "{}", 2), 0);
	assert_int_equal(mb_page_get(b, "x", &text, NULL), MB_ENOTFOUND);
	assert_int_equal(mb_snapshot(b, out, NULL), 0);
	mb_close(b);
	text = slurp_at(out, "notion_pages.json");
	assert_non_null(text);
	/* listed in key order */
	assert_true(strstr(text, "\"a\":") < strstr(text, "\"b\":"));
	assert_true(strstr(text, "\"b\":") < strstr(text, "\"c\":"));
	assert_true(strstr(text, "\"c\":") < strstr(text, "\"m\":"));
	assert_true(strstr(text, "\"m\":") < strstr(text, "\"new\":"));
	assert_null(strstr(text, "\"x\":"));
	free(text);

	rm_rf(target);
	for (int k = 0; k < 3; k++) {
		write_pages(snap, k == 0 ? dup1 : k == 1 ? dup2 : dup3, t, k == 0 ? 3 : k == 1 ? 2 : 4);
		assert_int_equal(mb_restore(snap, target, NULL, 0), MB_EINVAL);
		if (!strstr(mb_last_error(NULL), "duplicate id"))
			fail_msg("case %d: %s", k, mb_last_error(NULL));
		assert_int_equal(stat(target, &st), -1);
	}
}

/* Snapshots taken while 4 processes write agree with themselves. */
static void test_snapshot_consistent_under_writes(void **state)
{
	fx *f = *state;
	mb_bank *b = open_at(f->path, MB_DURABILITY_FAST, 0);
	pid_t pids[4];
	char out[1100];

	mb_config_update(b, "{\"cache_settings\":{\"max_entries\":0}}", (size_t)-1);
	for (int p = 0; p < 4; p++)
		if ((pids[p] = fork()) == 0) {
			mb_bank *cb = open_at(f->path, MB_DURABILITY_FAST, 0);
			char id[32];
			for (int i = 0; i < 1500; i++) {
				snprintf(id, sizeof id, "w%d-%d", p, i);
				mb_page_put(cb, id, "{\"v\":1}", (size_t)-1);
				mb_sync_record(cb, i % 2 ? "success" : "failed", i % 2 ? NULL : "x");
				mb_error_log(cb, i % 3 ? "a" : "b", "m");
			}
			mb_close(cb);
			_exit(0);
		}
	snprintf(out, sizeof out, "%s/snap", f->dir);
	mkdir(out, 0700);
	for (int round = 0; round < 8; round++) {
		cJSON *pages, *sync, *errs;
		double sum = 0;
		char *t;
		assert_int_equal(mb_snapshot(b, round % 2 ? out : NULL, NULL), 0);
		const char *dir = round % 2 ? out : f->path;
		t = slurp_at(dir, "notion_pages.json");
		pages = cJSON_Parse(t);
		free(t);
		t = slurp_at(dir, "sync_status.json");
		sync = cJSON_Parse(t);
		free(t);
		t = slurp_at(dir, "error_log.json");
		errs = cJSON_Parse(t);
		free(t);
		assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(pages, "pages")),
		                 (int)num_at(pages, "metadata", "total_pages"));
		for (cJSON *c = cJSON_GetObjectItem(errs, "patterns")->child; c; c = c->next)
			sum += c->valuedouble;
		assert_int_equal((int)sum, (int)num_at(errs, "error_stats", "total_errors"));
		if (num_at(sync, "success_count", NULL) + num_at(sync, "error_count", NULL) <= 100)
			assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(sync, "sync_history")),
			                 (int)(num_at(sync, "success_count", NULL) + num_at(sync, "error_count", NULL)));
		cJSON_Delete(pages);
		cJSON_Delete(sync);
		cJSON_Delete(errs);
		usleep(50000);
	}
	for (int p = 0; p < 4; p++)
		assert_int_equal(wait_child(pids[p], 120), 0);
	mb_close(b);
}

static uint64_t dir_bytes(const char *dir)
{
	struct dirent *e;
	char p[2048];
	struct stat st;
	uint64_t n = 0;
	DIR *d = opendir(dir);

	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
			if (!stat(p, &st))
				n += (uint64_t)st.st_size;
		}
	if (d)
		closedir(d);
	return n;
}

static void test_journal_stays_bounded(void **state)
{
	fx *f = *state;
	mb_bank *b = open_at(f->path, MB_DURABILITY_FAST, 64 << 10);
	char jdir[1100];
	uint64_t most = 0, n;

	snprintf(jdir, sizeof jdir, "%s/journal", f->path);
	for (int round = 0; round < 40; round++) {
		workload(b, 100 + (unsigned)round, 400);
		assert_int_equal(mb_snapshot(b, NULL, NULL), 0);
		n = dir_bytes(jdir);
		if (n > most)
			most = n;
	}
	/* 16,000 mutations of ~200 bytes went through; at most a few 64 KiB
	 * segments (and sync.shm) are ever kept */
	assert_true(most < 6 * (64 << 10));
	mb_close(b);
}

static int add_event(void *ctx, uint64_t seq, const char *event)
{
	(void)seq;
	sb_add(ctx, event);
	sb_add(ctx, "\n");
	return 0;
}

static void test_journal_read(void **state)
{
	fx *f = *state;
	mb_bank *b = open_at(f->path, MB_DURABILITY_FAST, 0);
	strbuf s = { NULL, 0, 0 };
	uint64_t last;
	char *report;

	mb_page_put(b, "p", "{\"a\":1}", (size_t)-1);
	mb_sync_record(b, "failed", "boom");
	mb_error_resolve(b, "T", "steps");
	assert_int_equal(mb_journal_last_seq(b, &last), 0);
	assert_int_equal(last, 3);
	assert_int_equal(mb_journal_read(b, 2, add_event, &s), 0);
	assert_non_null(strstr(s.p, "\"op\":\"sync.record\",\"status\":\"failed\",\"error\":\"boom\""));
	assert_non_null(strstr(s.p, "\"op\":\"error.resolve\",\"error_type\":\"T\",\"steps\":\"steps\""));
	assert_null(strstr(s.p, "page.put"));
	free(s.p);
	assert_int_equal(mb_journal_verify(f->path, &report), 0);
	assert_non_null(strstr(report, "\"clean\":true"));
	assert_non_null(strstr(report, "\"records\":3"));
	mb_free(report);
	mb_close(b);
}

static bool parses(const char *dir, const char *name)
{
	char *t = slurp_at(dir, name);
	cJSON *j = t ? cJSON_Parse(t) : NULL;
	bool ok = j != NULL;

	cJSON_Delete(j);
	free(t);
	return ok;
}

/* A process killed anywhere inside a snapshot never leaves a partial file,
 * and the checkpoint it leaves is one recovery can use. */
static void test_snapshot_killed_anywhere(void **state)
{
	fx *f = *state;
	mb_bank *b = open_at(f->path, MB_DURABILITY_FAST, 64 << 10);
	char *before, *after, ck[1100];
	int kills = 0;

	setenv("MEMBANK_TEST_BOOT_ID", "boot-one-aaaaaaaaaaaaaaaaaaaaaaaaaaa", 1);
	mb_close(b);
	b = open_at(f->path, MB_DURABILITY_FAST, 64 << 10);
	mb_config_update(b, "{\"cache_settings\":{\"max_entries\":0}}", (size_t)-1);
	workload(b, 9, 1500);
	assert_int_equal(mb_snapshot(b, NULL, NULL), 0);
	workload(b, 8, 300);
	srand(7);
	for (int round = 0; round < 60; round++) {
		pid_t pid = fork();
		if (pid == 0) {
			mb_bank *cb = open_at(f->path, MB_DURABILITY_FAST, 64 << 10);
			for (;;)
				mb_snapshot(cb, NULL, NULL);
		}
		usleep((useconds_t)(2000 + rand() % 25000));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		kills++;
		for (int i = 0; i < 4; i++)
			if (access(f->path, F_OK) == 0) {
				char p[1200];
				snprintf(p, sizeof p, "%s/%s", f->path, files[i]);
				if (access(p, F_OK) == 0 && !parses(f->path, files[i]))
					fail_msg("round %d: %s is not whole", round, files[i]);
			}
		if (round % 10 == 0)
			workload(b, 10 + (unsigned)round, 50);
	}
	snprintf(ck, sizeof ck, "%s/checkpoint.json", f->path);
	assert_int_equal(access(ck, F_OK), 0);
	before = state_of(b);
	mb_close(b);
	setenv("MEMBANK_TEST_BOOT_ID", "boot-two-bbbbbbbbbbbbbbbbbbbbbbbbbbb", 1);
	b = open_at(f->path, MB_DURABILITY_FAST, 64 << 10);  /* rebuild from what was left */
	assert_non_null(b);
	after = state_of(b);
	assert_string_equal(before, after);
	printf("snapshot kills: %d\n", kills);
	free(before);
	free(after);
	mb_close(b);
}

static void test_ttl_purged_by_snapshot(void **state)
{
	fx *f = *state;
	mb_bank *b = open_at(f->path, MB_DURABILITY_FAST, 0);
	mb_snapshot_info si;
	uint64_t n;
	char *t;

	assert_int_equal(mb_config_update(b, "{\"cache_settings\":{\"ttl_seconds\":1}}", (size_t)-1), 0);
	mb_page_put(b, "old1", "{}", 2);
	mb_page_put(b, "old2", "{}", 2);
	usleep(1100 * 1000);
	mb_page_put(b, "fresh", "{}", 2);
	assert_int_equal(mb_snapshot(b, NULL, &si), 0);
	assert_int_equal(si.purged, 2);
	assert_int_equal(si.pages, 1);
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, 1);
	t = slurp_at(f->path, "notion_pages.json");
	assert_null(strstr(t, "old1"));
	assert_non_null(strstr(t, "\"total_pages\":1"));
	free(t);
	/* the purge is a journal record: a replay drops them at the same point */
	assert_int_equal(mb_rebuild(b), 0);
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, 1);
	mb_close(b);
}

static void test_journal_retention(void **state)
{
	fx *f = *state;
	mb_snapshot_info si;
	mb_options o;
	mb_bank *b;

	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	o.segment_bytes = 64 << 10;
	o.journal_retention_s = 3600;
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	workload(b, 11, 1500);
	assert_int_equal(mb_snapshot(b, NULL, &si), 0);
	assert_int_equal(si.segments_removed, 0);  /* covered, but younger than an hour */
	mb_close(b);
	o.journal_retention_s = 0;
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	workload(b, 12, 100);
	assert_int_equal(mb_snapshot(b, NULL, &si), 0);
	if (si.segments_removed < 1)
		fail_msg("removed %llu, seq %llu: %s", (unsigned long long)si.segments_removed, (unsigned long long)si.seq, mb_last_error(b));
	mb_close(b);
}

static mb_bank *open_kept(const char *path)
{
	mb_options o;
	mb_bank *b = NULL;

	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	o.segment_bytes = 64 << 10;
	o.journal_retention_s = 0;  /* covered segments go at once */
	if (mb_open(path, &o, &b))
		fprintf(stderr, "open %s: %s\n", path, mb_last_error(NULL));
	return b;
}

/* {"a":{"a":...{}}} nested @depth deep. */
static char *nested(int depth)
{
	strbuf s = { NULL, 0, 0 };

	for (int i = 1; i < depth; i++)
		sb_add(&s, "{\"a\":");
	sb_add(&s, "{}");
	for (int i = 1; i < depth; i++)
		sb_add(&s, "}");
	return s.p;
}

/* Issue 1: a page nested as deep as put accepts was refused by the loader
 * (it counted the {"properties":..} wrapper), so the bank's own checkpoint
 * could not be loaded: after a new boot the bank never opened again. */
static void test_deepest_page_survives_checkpoint(void **state)
{
	fx *f = *state;
	char *deep = nested(MB_MAX_DEPTH), *deeper = nested(MB_MAX_DEPTH + 1), *before, *after;
	char target[1100];
	mb_bank *b, *r;
	cJSON *page;

	setenv("MEMBANK_TEST_BOOT_ID", "boot-one-aaaaaaaaaaaaaaaaaaaaaaaaaaa", 1);
	b = open_kept(f->path);
	assert_int_equal(mb_page_put(b, "deep", deeper, (size_t)-1), MB_EINVAL);
	assert_int_equal(mb_page_put(b, "deep", deep, (size_t)-1), 0);
	workload(b, 21, 600);
	assert_int_equal(mb_snapshot(b, NULL, NULL), 0);
	workload(b, 22, 600);
	assert_int_equal(mb_snapshot(b, NULL, NULL), 0);  /* segments covered go */
	workload(b, 23, 100);
	before = state_of(b);
	mb_close(b);
	/* restore accepts the bank's own snapshot */
	snprintf(target, sizeof target, "%s/restored", f->dir);
	if (mb_restore(f->path, target, NULL, 0))
		fail_msg("restore: %s", mb_last_error(NULL));
	r = open_kept(target);
	assert_non_null(r);
	page = get_page(r, "deep");
	assert_non_null(page);
	cJSON_Delete(page);
	mb_close(r);
	/* a new boot rebuilds from the checkpoint */
	setenv("MEMBANK_TEST_BOOT_ID", "boot-two-bbbbbbbbbbbbbbbbbbbbbbbbbbb", 1);
	b = open_kept(f->path);
	assert_non_null(b);
	after = state_of(b);
	assert_string_equal(before, after);
	mb_close(b);
	free(before);
	free(after);
	free(deep);
	free(deeper);
}

/* Checkpoint directory names, newest first. */
static int checkpoints(const char *bank, char names[8][64])
{
	char root[1100];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(root, sizeof root, "%s/checkpoint", bank);
	d = opendir(root);
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.' && strlen(e->d_name) == 20 && n < 8)
			snprintf(names[n++], 64, "%s", e->d_name);
	if (d)
		closedir(d);
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (strcmp(names[i], names[j]) < 0) {
				char t[64];
				memcpy(t, names[i], 64);
				memcpy(names[i], names[j], 64);
				memcpy(names[j], t, 64);
			}
	return n;
}

static void cut_pages_file(const char *bank, const char *ck)
{
	char path[1200];
	struct stat st;

	snprintf(path, sizeof path, "%s/checkpoint/%s/notion_pages.json", bank, ck);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size / 2), 0);
}

/* The newest checkpoint damaged on disk: recovery falls back on the one
 * before it and the journal after that, which the snapshot kept. */
static void test_damaged_checkpoint_falls_back(void **state)
{
	fx *f = *state;
	char names[8][64], aside[1300], *before, *after;
	mb_bank *b;

	setenv("MEMBANK_TEST_BOOT_ID", "boot-one-aaaaaaaaaaaaaaaaaaaaaaaaaaa", 1);
	b = open_kept(f->path);
	for (int round = 0; round < 3; round++) {
		workload(b, 30 + (unsigned)round, 700);
		assert_int_equal(mb_snapshot(b, NULL, NULL), 0);
	}
	workload(b, 39, 200);
	before = state_of(b);
	mb_close(b);
	assert_int_equal(checkpoints(f->path, names), 2);  /* the newest and the one before */
	cut_pages_file(f->path, names[0]);
	setenv("MEMBANK_TEST_BOOT_ID", "boot-two-bbbbbbbbbbbbbbbbbbbbbbbbbbb", 1);
	b = open_kept(f->path);
	assert_non_null(b);
	after = state_of(b);
	assert_string_equal(before, after);
	snprintf(aside, sizeof aside, "%s/checkpoint/%s.damaged", f->path, names[0]);
	assert_int_equal(access(aside, F_OK), 0);  /* set aside, not deleted */
	/* and the bank goes on: the next snapshot is a good checkpoint again */
	assert_int_equal(mb_snapshot(b, NULL, NULL), 0);
	mb_close(b);
	free(before);
	free(after);
}

/* No checkpoint can be loaded: the open fails, naming the file, and
 * changes nothing. */
static void test_no_loadable_checkpoint_fails_clearly(void **state)
{
	fx *f = *state;
	char names[8][64];
	mb_bank *b;

	setenv("MEMBANK_TEST_BOOT_ID", "boot-one-aaaaaaaaaaaaaaaaaaaaaaaaaaa", 1);
	b = open_kept(f->path);
	for (int round = 0; round < 2; round++) {
		workload(b, 40 + (unsigned)round, 700);
		assert_int_equal(mb_snapshot(b, NULL, NULL), 0);
	}
	mb_close(b);
	assert_int_equal(checkpoints(f->path, names), 2);
	cut_pages_file(f->path, names[0]);
	cut_pages_file(f->path, names[1]);
	setenv("MEMBANK_TEST_BOOT_ID", "boot-two-bbbbbbbbbbbbbbbbbbbbbbbbbbb", 1);
	for (int i = 0; i < 2; i++) {  /* every time, not once */
		mb_options o;
		mb_options_init(&o);
		b = NULL;
		assert_int_equal(mb_open(f->path, &o, &b), MB_ECORRUPT);
		assert_null(b);
		assert_non_null(strstr(mb_last_error(NULL), "notion_pages.json"));
		assert_non_null(strstr(mb_last_error(NULL), names[0]));
	}
	assert_int_equal(checkpoints(f->path, names), 2);  /* nothing set aside or removed */
}

static bool has_pattern(mb_bank *b, const char *type)
{
	cJSON *e = error_doc(b);
	bool found = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "patterns"), type) != NULL;

	cJSON_Delete(e);
	return found;
}

/* Issue 1: patterns and resolutions grew by one entry per distinct error
 * type, past what the loader reads.  At most MB_MAX_ERROR_TYPES are kept:
 * the least recently seen go, counted; a rebuild from the checkpoint and
 * the journal drops exactly the same ones. */
static void test_error_types_bounded(void **state)
{
	fx *f = *state;
	char type[32], out1[1100], out2[1100];
	uint64_t logged = 0;
	cJSON *e;
	mb_bank *b;

	setenv("MEMBANK_TEST_BOOT_ID", "boot-one-aaaaaaaaaaaaaaaaaaaaaaaaaaa", 1);
	b = open_kept(f->path);
	for (unsigned i = 0; i < MB_MAX_ERROR_TYPES + 50; i++) {
		snprintf(type, sizeof type, "t%05u", i);
		assert_int_equal(i % 3 ? mb_error_log(b, type, "m") : mb_error_resolve(b, type, "s"), 0);
		logged += i % 3 != 0;
		if (i % 100 == 0) {  /* t00000 stays recent */
			assert_int_equal(mb_error_log(b, "t00000", "again"), 0);
			logged++;
		}
		if (i == 600)
			assert_int_equal(mb_snapshot(b, NULL, NULL), 0);
	}
	e = error_doc(b);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(e, "patterns")), MB_MAX_ERROR_TYPES);
	assert_int_equal((uint64_t)num_at(e, "total_errors", NULL), logged);
	cJSON_Delete(e);
	assert_int_equal(stat_of(b, "error_types_dropped", NULL), 50);
	assert_int_equal(stat_of(b, "error_types", NULL), MB_MAX_ERROR_TYPES);
	assert_true(has_pattern(b, "t00000"));
	assert_false(has_pattern(b, "t00001"));   /* the least recently seen */
	assert_false(has_pattern(b, "t00050"));
	assert_true(has_pattern(b, "t00051"));
	assert_true(has_pattern(b, "t01049"));
	assert_rebuild_same(b);
	/* the checkpoint carries what picks the next one dropped */
	assert_int_equal(mb_snapshot(b, NULL, NULL), 0);
	for (unsigned i = 0; i < 30; i++) {
		snprintf(type, sizeof type, "u%05u", i);
		assert_int_equal(mb_error_log(b, type, "m"), 0);
	}
	assert_int_equal(stat_of(b, "error_types_dropped", NULL), 80);
	snprintf(out1, sizeof out1, "%s/out1", f->dir);
	mkdir(out1, 0700);
	assert_int_equal(mb_snapshot(b, out1, NULL), 0);
	mb_close(b);
	setenv("MEMBANK_TEST_BOOT_ID", "boot-two-bbbbbbbbbbbbbbbbbbbbbbbbbbb", 1);
	b = open_kept(f->path);
	assert_non_null(b);
	assert_int_equal(stat_of(b, "error_types_dropped", NULL), 80);
	snprintf(out2, sizeof out2, "%s/out2", f->dir);
	mkdir(out2, 0700);
	assert_int_equal(mb_snapshot(b, out2, NULL), 0);
	assert_same_files(out1, out2);
	mb_close(b);
}

/* A file from before the bound (or the spec's, without last_seen) with more
 * types than are kept: restore keeps the most recently seen, ties in key
 * order, and counts the others. */
static void test_restore_trims_error_types(void **state)
{
	fx *f = *state;
	char snap[1100], target[1100], k[32];
	strbuf e = { NULL, 0, 0 };
	mb_bank *b = open_at(f->path, MB_DURABILITY_FAST, 0);
	cJSON *doc;

	snprintf(snap, sizeof snap, "%s/snap", f->dir);
	mkdir(snap, 0700);
	assert_int_equal(mb_snapshot(b, snap, NULL), 0);
	mb_close(b);
	sb_add(&e, "{\"errors\":[],\"patterns\":{");
	for (unsigned i = 0; i < MB_MAX_ERROR_TYPES + 10; i++) {
		snprintf(k, sizeof k, "%s\"p%05u\":1", i ? "," : "", i);
		sb_add(&e, k);
	}
	sb_add(&e, "},\"resolutions\":{},\"last_error\":{},\"error_stats\":{\"total_errors\":");
	snprintf(k, sizeof k, "%u", MB_MAX_ERROR_TYPES + 10);
	sb_add(&e, k);
	sb_add(&e, ",\"resolved_errors\":0}}");
	write_file(snap, "error_log.json", e.p);
	free(e.p);
	/* membank's checkpoint.json beside them says when p00005 was seen
	 * (and names a type that is not a pattern: ignored) */
	write_file(snap, "checkpoint.json", "{\"format\":1,\"seq\":0,\"segment\":0,\"offset\":0,"
	           "\"error_types\":{\"dropped\":0,\"last_seen\":{\"p00005\":"
	           "\"2026-01-01T00:00:00.000000Z\",\"gone\":null}}}");
	snprintf(target, sizeof target, "%s/target", f->dir);
	if (mb_restore(snap, target, NULL, 0))
		fail_msg("restore: %s", mb_last_error(NULL));
	b = open_at(target, MB_DURABILITY_FAST, 0);
	assert_int_equal(stat_of(b, "error_types", NULL), MB_MAX_ERROR_TYPES);
	assert_int_equal(stat_of(b, "error_types_dropped", NULL), 10);
	assert_false(has_pattern(b, "p00000"));
	assert_true(has_pattern(b, "p00005"));  /* seen: newer than never */
	assert_false(has_pattern(b, "p00010"));
	assert_true(has_pattern(b, "p00011"));
	doc = error_doc(b);
	assert_int_equal((uint64_t)num_at(doc, "total_errors", NULL), MB_MAX_ERROR_TYPES + 10);
	cJSON_Delete(doc);
	assert_rebuild_same(b);
	mb_close(b);
}

/* The keys of @o, in order, are exactly @want ("a,b,c"). */
static void assert_keys(const cJSON *o, const char *want, const char *where)
{
	char got[512] = "";

	if (!cJSON_IsObject(o))
		fail_msg("%s: not an object", where);
	for (const cJSON *c = o->child; c; c = c->next)
		snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", c == o->child ? "" : ",",
		         c->string);
	if (strcmp(got, want))
		fail_msg("%s: keys \"%s\", the spec's are \"%s\"", where, got, want);
}

static cJSON *file_json(const char *dir, const char *name)
{
	char *t = slurp_at(dir, name);
	cJSON *j = t ? cJSON_Parse(t) : NULL;

	free(t);
	if (!j)
		fail_msg("%s/%s does not parse", dir, name);
	return j;
}

/* The four files have exactly the spec's keys, at every level (membank's
 * own state goes to checkpoint.json), and the bank restores from them alone,
 * without checkpoint.json, even after error types were dropped. */
static void test_files_have_spec_keys(void **state)
{
	fx *f = *state;
	char type[32], alone[1100], target[1100], path[2048];
	mb_bank *b = open_at(f->path, MB_DURABILITY_FAST, 0);
	const cJSON *c;
	cJSON *j;

	assert_int_equal(mb_page_put(b, "p1", "{\"a\":1}", 7), 0);
	assert_int_equal(mb_page_put(b, "p2", "{\"properties\":{\"b\":2}}", 22), 0);
	assert_int_equal(mb_sync_record(b, "success", NULL), 0);
	assert_int_equal(mb_sync_record(b, "error", "boom"), 0);
	for (unsigned i = 0; i < MB_MAX_ERROR_TYPES + 5; i++) {
		snprintf(type, sizeof type, "t%05u", i);
		assert_int_equal(mb_error_log(b, type, "m"), 0);
	}
	assert_int_equal(mb_error_resolve(b, "t01000", "restart"), 0);
	assert_int_equal(mb_config_update(b, "{\"cache_settings\":{\"ttl_seconds\":0}}",
	                                  strlen("{\"cache_settings\":{\"ttl_seconds\":0}}")), 0);
	assert_int_equal(mb_snapshot(b, NULL, NULL), 0);

	j = file_json(f->path, "notion_pages.json");
	assert_keys(j, "pages,last_updated,metadata", "notion_pages.json");
	for (c = cJSON_GetObjectItem(j, "pages")->child; c; c = c->next)
		assert_keys(c, "properties,last_updated", "notion_pages.json pages entry");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "pages")), 2);
	assert_keys(cJSON_GetObjectItem(j, "metadata"), "total_pages,last_sync", "metadata");
	cJSON_Delete(j);

	j = file_json(f->path, "sync_status.json");
	assert_keys(j, "last_successful_sync,sync_history,current_status,error_count,success_count",
	            "sync_status.json");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "sync_history")), 2);
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "sync_history"))
		assert_keys(c, "timestamp,status,error", "sync_history entry");
	cJSON_Delete(j);

	j = file_json(f->path, "error_log.json");
	assert_keys(j, "errors,patterns,resolutions,last_error,error_stats", "error_log.json");
	assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(j, "errors")) > 0);
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "errors"))
		assert_keys(c, "timestamp,error_type,message", "errors entry");
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "resolutions"))
		assert_keys(c, "steps,timestamp,resolved", "resolutions entry");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "resolutions")), 1);
	assert_keys(cJSON_GetObjectItem(j, "last_error"), "timestamp,error_type,message",
	            "last_error");
	assert_keys(cJSON_GetObjectItem(j, "error_stats"), "total_errors,resolved_errors",
	            "error_stats");
	cJSON_Delete(j);

	j = file_json(f->path, "config_cache.json");
	cJSON_ArrayForEach(c, j) {
		const char *k = c->string ? c->string : "";
		if (strcmp(k, "notion_settings") && strcmp(k, "logging_settings") &&
		    strcmp(k, "cache_settings") && strcmp(k, "last_config_update"))
			fail_msg("config_cache.json: key \"%s\"", k);
	}
	cJSON_Delete(j);

	/* membank's own state is in checkpoint.json */
	j = file_json(f->path, "checkpoint.json");
	assert_keys(j, "format,seq,segment,offset,write_us,pages_removed,error_types", "checkpoint.json");
	assert_keys(cJSON_GetObjectItem(j, "error_types"), "dropped,last_seen", "error_types");
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error_types"),
	                                     "dropped")->valueint, 5);
	cJSON_Delete(j);

	/* the four files alone restore (0 dropped, every type's last_seen unknown) */
	snprintf(alone, sizeof alone, "%s/alone", f->dir);
	mkdir(alone, 0700);
	for (int i = 0; i < 4; i++) {
		char *t = slurp_at(f->path, files[i]);
		write_file(alone, files[i], t);
		free(t);
	}
	mb_close(b);
	snprintf(path, sizeof path, "%s/checkpoint.json", alone);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(target, sizeof target, "%s/target", f->dir);
	if (mb_restore(alone, target, NULL, 0))
		fail_msg("restore of the four files alone: %s", mb_last_error(NULL));
	b = open_at(target, MB_DURABILITY_FAST, 0);
	assert_non_null(b);
	assert_int_equal(stat_of(b, "error_types", NULL), MB_MAX_ERROR_TYPES);
	assert_int_equal(stat_of(b, "error_types_dropped", NULL), 0);
	j = error_doc(b);
	assert_int_equal((uint64_t)num_at(j, "total_errors", NULL), MB_MAX_ERROR_TYPES + 5);
	cJSON_Delete(j);
	assert_rebuild_same(b);
	mb_close(b);
}

/* mb_stats' checkpoint.@key (seq) or checkpoint.auto.@key. */
static uint64_t ck_stat(mb_bank *b, const char *key)
{
	char *text = NULL;
	cJSON *j, *ck;
	double v;

	assert_int_equal(mb_stats(b, &text), 0);
	j = cJSON_Parse(text);
	ck = cJSON_GetObjectItem(j, "checkpoint");
	v = strcmp(key, "seq") ? num_at(ck, "auto", key) : num_at(ck, "seq", NULL);
	assert_true(v >= 0);
	cJSON_Delete(j);
	mb_free(text);
	return (uint64_t)v;
}

static uint64_t files_bytes(const char *dir)
{
	uint64_t n = 0;

	for (int i = 0; i < 4; i++) {
		char *t = slurp_at(dir, files[i]);
		cJSON *j = t ? cJSON_Parse(t) : NULL;
		if (!j)
			fail_msg("%s/%s is missing or does not parse", dir, files[i]);
		n += strlen(t);
		cJSON_Delete(j);
		free(t);
	}
	return n;
}

#define AUTO_PAD 200  /* every record of the workload below is larger */

/* @writes puts over @pages pages, no snapshot call. */
static void auto_workload(mb_bank *b, unsigned pages, unsigned writes)
{
	char id[32], props[AUTO_PAD + 64];
	char pad[AUTO_PAD + 1];

	memset(pad, 'x', AUTO_PAD);
	pad[AUTO_PAD] = '\0';
	for (unsigned i = 0; i < writes; i++) {
		snprintf(id, sizeof id, "page-%05u", i % pages);
		snprintf(props, sizeof props, "{\"n\":%u,\"pad\":\"%s\"}", i, pad);
		if (mb_page_put(b, id, props, (size_t)-1))
			fail_msg("put %u: %s", i, mb_last_error(b));
	}
}

/* Issue "the four files are live without a daemon": with the defaults, a
 * bank of 10,000 pages written 20,000 times has its four files, current to
 * within the threshold (max(4 MiB, the files' size) of journal), without
 * any snapshot call; and with small segments the journal stays bounded. */
static void test_auto_checkpoint_defaults(void **state)
{
	fx *f = *state;
	uint64_t last, ck, limit;
	char *report = NULL;
	mb_bank *b = open_at(f->path, MB_DURABILITY_FAST, 0);
	const char *all = "{\"cache_settings\":{\"max_entries\":0}}";  /* the spec's 1000 */

	assert_int_equal(mb_config_update(b, all, strlen(all)), 0);
	auto_workload(b, 10000, 20000);
	assert_int_equal(mb_journal_last_seq(b, &last), 0);
	assert_int_equal(last, 20001);
	ck = ck_stat(b, "seq");
	limit = files_bytes(f->path);
	if (limit < (4u << 20))
		limit = 4u << 20;
	{
		char *t = slurp_at(f->path, "notion_pages.json");
		cJSON *j = cJSON_Parse(t);
		assert_int_equal(num_at(j, "metadata", "total_pages"), 10000);
		cJSON_Delete(j);
		free(t);
	}
	printf("auto checkpoint: seq %llu of %llu, %llu runs, files %llu bytes\n",
	       (unsigned long long)ck, (unsigned long long)last,
	       (unsigned long long)ck_stat(b, "runs"), (unsigned long long)files_bytes(f->path));
	assert_true(ck > 1);  /* not only the first write's */
	assert_true((last - ck) * AUTO_PAD <= limit);
	assert_true(ck_stat(b, "runs") >= 2);
	assert_int_equal(ck_stat(b, "failures"), 0);
	assert_rebuild_same(b);  /* the checkpoint and the journal after it */
	mb_close(b);
	assert_int_equal(mb_journal_verify(f->path, &report), 0);
	mb_free(report);
}

static void test_auto_checkpoint_bounds_journal(void **state)
{
	fx *f = *state;
	mb_options o;
	mb_bank *b = NULL;
	char *text = NULL;
	cJSON *j;
	uint64_t jbytes, limit;

	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	o.segment_bytes = 64 << 10;
	o.checkpoint_min_bytes = 256 << 10;
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	auto_workload(b, 2000, 30000);
	assert_int_equal(mb_stats(b, &text), 0);
	j = cJSON_Parse(text);
	jbytes = (uint64_t)num_at(j, "journal", "bytes");
	cJSON_Delete(j);
	mb_free(text);
	limit = files_bytes(f->path);
	if (limit < o.checkpoint_min_bytes)
		limit = o.checkpoint_min_bytes;
	printf("journal %llu bytes after 30,000 writes (%llu auto checkpoints; threshold %llu)\n",
	       (unsigned long long)jbytes, (unsigned long long)ck_stat(b, "runs"),
	       (unsigned long long)limit);
	/* the newest checkpoint's tail, the one before it's, and their segments */
	assert_true(jbytes <= 2 * limit + 3 * o.segment_bytes);
	assert_true(ck_stat(b, "runs") >= 5);
	assert_rebuild_same(b);
	mb_close(b);
}

/* no_auto_checkpoint leaves checkpoints to mb_snapshot() and the compactor. */
static void test_auto_checkpoint_off(void **state)
{
	fx *f = *state;
	char p[2048];
	mb_options o;
	mb_bank *b = NULL;

	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	o.no_auto_checkpoint = true;
	o.checkpoint_min_bytes = 1;
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	auto_workload(b, 100, 2000);
	assert_int_equal(ck_stat(b, "runs"), 0);
	assert_int_equal(ck_stat(b, "seq"), 0);
	for (int i = 0; i < 4; i++) {
		snprintf(p, sizeof p, "%s/%s", f->path, files[i]);
		assert_int_equal(access(p, F_OK), -1);
	}
	snprintf(p, sizeof p, "%s/checkpoint", f->path);
	assert_int_equal(access(p, F_OK), -1);
	mb_close(b);
}

/* Processes writing at once with a tiny threshold: a checkpoint is due at
 * almost every write.  While another process holds the compactor lock none
 * of them waits or checkpoints (each counts it busy, and pauses its looks);
 * then they take turns (the lock, tried without waiting), none fails, and
 * the bank rebuilt from the result equals the running one. */
static void test_auto_checkpoint_concurrent(void **state)
{
	fx *f = *state;
	enum { PROCS = 4, WRITES = 1500 };
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	pid_t pids[PROCS];
	char lockpath[1200];
	mb_options o;
	mb_bank *b = NULL;
	uint64_t last, before;
	int fd;

	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	o.checkpoint_min_bytes = 1;
	o.checkpoint_pct = 1;
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	assert_int_equal(mb_page_put(b, "first", "{}", 2), 0);  /* the first checkpoint */
	before = ck_stat(b, "seq");
	assert_int_equal(before, 1);
	mb_close(b);
	/* round 0: this process holds the compactor lock, as a compactor
	 * mid-snapshot would: the writers never wait for it and never
	 * checkpoint; round 1: they take turns */
	snprintf(lockpath, sizeof lockpath, "%s/compactor.lock", f->path);
	assert_true((fd = open(lockpath, O_RDWR)) >= 0);
	assert_int_equal(fcntl(fd, F_SETLK, &fl), 0);
	for (int round = 0; round < 2; round++) {
		fflush(NULL);
		for (int p = 0; p < PROCS; p++)
			if ((pids[p] = fork()) == 0) {
				char id[32], *text = NULL;
				mb_bank *c = NULL;
				cJSON *j, *a;
				if (mb_open(f->path, &o, &c))
					_exit(2);
				for (int i = 0; i < WRITES; i++) {
					snprintf(id, sizeof id, "r%d-p%d-%03d", round, p, i % 300);
					if (mb_page_put(c, id, "{\"v\":1}", (size_t)-1))
						_exit(3);
				}
				j = mb_stats(c, &text) ? NULL : cJSON_Parse(text);
				a = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "checkpoint"), "auto");
				/* a failed checkpoint never failed a write; none failed */
				if (num_at(a, "failures", NULL) != 0)
					_exit(4);
				if (round == 0 && (num_at(a, "runs", NULL) != 0 || num_at(a, "busy", NULL) < 1))
					_exit(5);
				/* a lock found held pauses the handle's looks (100 ms),
				 * not one try a write: 1500 writes would need 75 s to
				 * try it 750 times */
				if (round == 0 && num_at(a, "busy", NULL) > WRITES / 2)
					_exit(6);
				_exit(0);
			}
		for (int p = 0; p < PROCS; p++)
			assert_int_equal(wait_child(pids[p], 240), 0);
		if (round == 0) {
			assert_int_equal(mb_open(f->path, &o, &b), 0);
			assert_int_equal(ck_stat(b, "seq"), before);  /* nobody checkpointed */
			mb_close(b);
			close(fd);  /* drops the lock */
		}
	}
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	assert_int_equal(mb_journal_last_seq(b, &last), 0);
	assert_int_equal(last, 1 + 2 * PROCS * WRITES);
	assert_true(ck_stat(b, "seq") > before);
	files_bytes(f->path);
	assert_rebuild_same(b);
	mb_close(b);
}

/* @n bytes of the byte that json_add_str() writes longest (\u0001), then
 * @tag, NUL-terminated. */
static char *worst_text(size_t n, unsigned tag)
{
	char *s = malloc(n + 1);

	memset(s, 1, n);
	s[n] = '\0';
	if (n >= 2) {
		s[n - 2] = (char)('a' + tag / 26 % 26);
		s[n - 1] = (char)('a' + tag % 26);
	}
	return s;
}

static uint64_t size_of(const char *dir, const char *name)
{
	char path[1200];
	struct stat st;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

/* Issue 1, the whole class: for each file, a bank filled with the longest
 * text every bound allows writes at most what the loader's formula for that
 * file allows per entry (load.h), and its snapshot loads back. */
static void test_loader_limits_cover_worst_files(void **state)
{
	fx *f = *state;
	const unsigned hist = 4, types = 6;
	char out[1100], target[1100], *id, cfg[600];
	uint64_t n;
	mb_options o;
	mb_bank *b;

	setenv("MEMBANK_TEST_BOOT_ID", "boot-one-aaaaaaaaaaaaaaaaaaaaaaaaaaa", 1);
	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	o.history_limit = hist;
	o.max_json_bytes = MB_MAX_JSON_BYTES;
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	for (unsigned i = 0; i < hist + 2; i++) {
		char *st = worst_text(MB_MAX_STATUS_BYTES, i), *msg = worst_text(MB_MAX_TEXT_BYTES, i);
		assert_int_equal(mb_sync_record(b, st, msg), 0);
		free(st);
		free(msg);
	}
	for (unsigned i = 0; i < types; i++) {
		char *ty = worst_text(MB_MAX_TYPE_BYTES, i), *msg = worst_text(MB_MAX_TEXT_BYTES, i);
		assert_int_equal(mb_error_log(b, ty, msg), 0);
		assert_int_equal(mb_error_resolve(b, ty, msg), 0);
		free(ty);
		free(msg);
	}
	snprintf(cfg, sizeof cfg, "{\"notion_settings\":{\"api_version\":\"");
	for (int i = 0; i < 62; i++)
		strcat(cfg, "\\u0001");
	strcat(cfg, "zz\",\"timeout_seconds\":0.1234567890123},\"logging_settings\":"
	       "{\"log_level\":\"CRITICAL\",\"structured_logging\":false}}");
	assert_int_equal(mb_config_update(b, cfg, (size_t)-1), 0);
	/* a page id as long as allowed, and properties that print much larger
	 * than their input (9E9 prints as 9000000000.0): its JSON is larger
	 * than max_json_bytes */
	id = worst_text(MB_MAX_ID_BYTES, 0);
	{
		size_t count = (6u << 20) / 4;
		strbuf p = { NULL, 0, 0 };
		sb_add(&p, "{\"n\":[9E9");
		for (size_t i = 1; i < count; i++)
			sb_add(&p, ",9E9");
		sb_add(&p, "]}");
		assert_int_equal(mb_page_put(b, id, p.p, (size_t)-1), 0);
		free(p.p);
	}
	snprintf(out, sizeof out, "%s/out", f->dir);
	mkdir(out, 0700);
	assert_int_equal(mb_snapshot(b, out, NULL), 0);
	n = size_of(out, "sync_status.json");
	assert_true(n > hist * 6 * MB_MAX_TEXT_BYTES);  /* the worst case was reached */
	assert_true(n <= MB_DOC_FIXED_MAX + hist * MB_SYNC_ENTRY_MAX);
	n = size_of(out, "error_log.json");
	assert_true(n > (hist + types) * 6 * MB_MAX_TEXT_BYTES);
	assert_true(n <= MB_DOC_FIXED_MAX + (hist + 1) * MB_ERROR_ENTRY_MAX + types * MB_ERRTYPE_MAX);
	n = size_of(out, "config_cache.json");
	assert_true(n > 6 * 62 && n <= MB_MAX_CONFIG_FILE);
	n = size_of(out, "checkpoint.json");  /* each type's last_seen */
	assert_true(n > types * 5 * MB_MAX_TYPE_BYTES);
	assert_true(n <= MB_DOC_FIXED_MAX + types * (MB_JSON_STR_MAX(MB_MAX_TYPE_BYTES) + 2 +
	                                             MB_JSON_TIME_MAX));
	assert_true(n <= MB_MAX_CHECKPOINT_FILE);
	n = size_of(out, "notion_pages.json");
	assert_true(n > MB_MAX_JSON_BYTES);
	/* the bank's own snapshot restores, and is its checkpoint */
	snprintf(target, sizeof target, "%s/target", f->dir);
	if (mb_restore(out, target, NULL, 0))
		fail_msg("restore: %s", mb_last_error(NULL));
	if (mb_snapshot(b, NULL, NULL))
		fail_msg("snapshot: %s", mb_last_error(b));
	mb_close(b);
	setenv("MEMBANK_TEST_BOOT_ID", "boot-two-bbbbbbbbbbbbbbbbbbbbbbbbbbb", 1);
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, 1);
	mb_close(b);
	free(id);
}

/* A merge may not grow a page beyond what a put could store (the snapshot
 * and the loader are bounded by it). */
static void test_merge_bounded(void **state)
{
	fx *f = *state;
	size_t len = 12u << 20;
	char *big = malloc(len + 32);
	mb_options o;
	mb_bank *b;

	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	o.max_json_bytes = MB_MAX_JSON_BYTES;
	assert_non_null(big);
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	for (int k = 0; k < 3; k++) {
		memcpy(big, "{\"k0\":\"", 7);  /* {"k0":"xxx...x"} */
		big[3] = (char)('0' + k);
		memset(big + 7, 'x', len);
		memcpy(big + 7 + len, "\"}", 3);
		assert_int_equal(mb_page_merge(b, "p", big, (size_t)-1), k < 2 ? 0 : MB_EINVAL);
	}
	assert_non_null(strstr(mb_last_error(b), "above the limit"));
	/* replacing a key keeps the size: allowed */
	assert_int_equal(mb_page_merge(b, "p", "{\"k0\":\"small\"}", (size_t)-1), 0);
	assert_int_equal(mb_snapshot(b, NULL, NULL), 0);
	assert_rebuild_same(b);
	mb_close(b);
	free(big);
}

/* Entries of @dir whose name starts with '.' and contains @part. */
static int count_hidden(const char *dir, const char *part)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	while (d && (e = readdir(d)))
		if (e->d_name[0] == '.' && strstr(e->d_name, part))
			n++;
	if (d)
		closedir(d);
	return n;
}

/* Issue 9: a snapshot of an unchanged bank renames a link onto a link of
 * the same inode, which does nothing; the temp link must still go. */
static void test_snapshot_unchanged_leaves_no_links(void **state)
{
	fx *f = *state;
	mb_bank *b = open_at(f->path, MB_DURABILITY_FAST, 0);
	char stray[1200];
	int fd;

	assert_int_equal(mb_page_put(b, "p", "{\"a\":1}", (size_t)-1), 0);
	assert_int_equal(mb_snapshot(b, NULL, NULL), 0);
	assert_int_equal(mb_snapshot(b, NULL, NULL), 0);  /* same seq: same inodes */
	assert_int_equal(count_hidden(f->path, ".link."), 0);
	/* the links a snapshot killed between link() and rename() left */
	snprintf(stray, sizeof stray, "%s/.error_log.json.link.999999", f->path);
	fd = open(stray, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mb_snapshot(b, NULL, NULL), 0);
	assert_int_equal(count_hidden(f->path, ".link."), 0);
	/* the directory a checkpoint killed mid-write left (another pid) */
	snprintf(stray, sizeof stray, "%s/checkpoint/.tmp-999999", f->path);
	assert_int_equal(mkdir(stray, 0700), 0);
	snprintf(stray, sizeof stray, "%s/checkpoint/.tmp-999999/notion_pages.json", f->path);
	fd = open(stray, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mb_snapshot(b, NULL, NULL), 0);  /* the first checkpoint is still alone */
	snprintf(stray, sizeof stray, "%s/checkpoint", f->path);
	assert_int_equal(count_hidden(stray, ".tmp-"), 0);
	mb_close(b);
}

/* Issue 10: temp files of a `snapshot --out` killed mid-write are removed
 * by the next snapshot into the same place; a live writer's are not. */
static void test_out_dir_temp_files_of_dead_writers(void **state)
{
	fx *f = *state;
	mb_bank *b = open_at(f->path, MB_DURABILITY_FAST, 0);
	char out[1100], dead[1200], live[1200];
	int fd, lfd;

	snprintf(out, sizeof out, "%s/out", f->dir);
	mkdir(out, 0700);
	for (int i = 0; i < 300; i++) {
		char id[32];
		snprintf(id, sizeof id, "page-%04d", i);
		assert_int_equal(mb_page_put(b, id, "{\"title\":\"some text to write\"}", (size_t)-1), 0);
	}
	/* a writer that died: its temp file is there, nobody holds it */
	snprintf(dead, sizeof dead, "%s/.notion_pages.json.tmp.999999.12345", out);
	fd = open(dead, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	/* a writer still writing (here: this process, another descriptor) */
	snprintf(live, sizeof live, "%s/.sync_status.json.tmp.%ld.6789", out, (long)getpid());
	lfd = open(live, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(lfd >= 0);
	assert_int_equal(flock(lfd, LOCK_EX), 0);
	/* real writers killed at assorted points */
	for (int k = 0; k < 12; k++) {
		pid_t pid = fork();
		if (pid == 0) {
			mb_bank *cb = open_at(f->path, MB_DURABILITY_FAST, 0);
			for (;;)
				mb_snapshot(cb, out, NULL);
		}
		usleep((useconds_t)(3000 + 1500 * k));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	assert_int_equal(mb_snapshot(b, out, NULL), 0);
	assert_int_equal(access(dead, F_OK), -1);
	assert_int_equal(access(live, F_OK), 0);
	assert_int_equal(count_hidden(out, ".tmp."), 1);  /* the live one only */
	close(lfd);
	assert_int_equal(mb_snapshot(b, out, NULL), 0);
	assert_int_equal(count_hidden(out, ".tmp."), 0);
	assert_true(parses(out, "notion_pages.json"));
	mb_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rebuild_equals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_machine_crash_rebuilds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_plus_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip_numbers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_refuses_existing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_bad_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_pages_read_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_page_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_consistent_under_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_stays_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_killed_anywhere, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ttl_purged_by_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_unchanged_leaves_no_links, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deepest_page_survives_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_checkpoint_falls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_loadable_checkpoint_fails_clearly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_types_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_trims_error_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_files_have_spec_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auto_checkpoint_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auto_checkpoint_bounds_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auto_checkpoint_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auto_checkpoint_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loader_limits_cover_worst_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_merge_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_dir_temp_files_of_dead_writers, setup, teardown),
	};
	return cmocka_run_group_tests_name("store-recovery", tests, NULL, NULL);
}
