/*
 * test_recovery.c - the journal is the truth: rebuild, machine crashes,
 * checkpoints, snapshot and restore, and processes killed at any instant.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>

#include "helpers.h"

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

static char *slurp(const char *dir, const char *name)
{
	char path[2048];
	struct stat st;
	char *s;
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if ((fd = open(path, O_RDONLY)) < 0 || fstat(fd, &st))
		return NULL;
	s = calloc(1, (size_t)st.st_size + 1);
	if (read(fd, s, (size_t)st.st_size) != st.st_size) {
		free(s);
		s = NULL;
	}
	close(fd);
	return s;
}

static const char *const files[4] = {
	"notion_pages.json", "sync_status.json", "error_log.json", "config_cache.json"
};

static void assert_same_files(const char *a, const char *b)
{
	for (int i = 0; i < 4; i++) {
		char *x = slurp(a, files[i]), *y = slurp(b, files[i]);
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
	assert_true(si.segments_removed > 0);  /* covered segments are gone */
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
		char *good = slurp(snap, bad[i].file);
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
	assert_int_equal(truncate(path, (off_t)300 << 20), 0);
	assert_int_equal(mb_restore(snap, target, NULL, 0), MB_EINVAL);
	assert_non_null(strstr(mb_last_error(NULL), "at most"));
	assert_int_equal(stat(target, &st), -1);
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
		t = slurp(dir, "notion_pages.json");
		pages = cJSON_Parse(t);
		free(t);
		t = slurp(dir, "sync_status.json");
		sync = cJSON_Parse(t);
		free(t);
		t = slurp(dir, "error_log.json");
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
	char *t = slurp(dir, name);
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
	t = slurp(f->path, "notion_pages.json");
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
	assert_int_equal(mb_snapshot(b, NULL, &si), 0);
	if (si.segments_removed < 1)
		fail_msg("removed %llu, seq %llu: %s", (unsigned long long)si.segments_removed, (unsigned long long)si.seq, mb_last_error(b));
	mb_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rebuild_equals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_machine_crash_rebuilds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_plus_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_refuses_existing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_bad_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_consistent_under_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_stays_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_killed_anywhere, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ttl_purged_by_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_retention, setup, teardown),
	};
	return cmocka_run_group_tests_name("store-recovery", tests, NULL, NULL);
}
