/*
 * test_migrate.c - the original Python class's directory migrates in place
 * on first open (once, under many concurrent openers, again after a crash);
 * restore reads what that class and people write (offsets, fractions, naive
 * times, absent files); pages that would expire on arrival need a choice.
 */
#include <pthread.h>
#include <sys/wait.h>

#include "hard.h"
#include "internal.h"

/* Written the way the original class wrote them: json.dump(indent=2),
 * datetime.now().isoformat() (naive, no Z).  "old" is three days old;
 * ttl_seconds is 3600, so it would expire on arrival. */
static void write_original(const char *dir, bool with_config)
{
	char now[64], old[64], p[4096], *text;
	time_t t = time(NULL);
	struct tm tm;

	strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%S.123456", gmtime_r(&t, &tm));
	t -= 3 * 86400;
	strftime(old, sizeof old, "%Y-%m-%dT%H:%M:%S", gmtime_r(&t, &tm));
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_true(asprintf(&text,
	        "{\n  \"pages\": {\n    \"a1\": {\n      \"properties\": {\n        \"title\": \"Roadmap\",\n"
	        "        \"n\": 1.5\n      },\n      \"last_updated\": \"%s\"\n    },\n"
	        "    \"old\": {\n      \"properties\": {},\n      \"last_updated\": \"%s\"\n    }\n  },\n"
	        "  \"last_updated\": \"%s\",\n  \"metadata\": {\n    \"total_pages\": 2,\n"
	        "    \"last_sync\": \"%s\"\n  }\n}", now, old, now, now) > 0);
	snprintf(p, sizeof p, "%s/notion_pages.json", dir);
	assert_int_equal(spit(p, text, strlen(text)), 0);
	free(text);
	assert_true(asprintf(&text,
	        "{\n  \"last_successful_sync\": \"%s\",\n  \"sync_history\": [\n    {\n"
	        "      \"timestamp\": \"%s\",\n      \"status\": \"success\",\n      \"error\": null\n"
	        "    }\n  ],\n  \"current_status\": \"success\",\n  \"error_count\": 0,\n"
	        "  \"success_count\": 1\n}", now, now) > 0);
	snprintf(p, sizeof p, "%s/sync_status.json", dir);
	assert_int_equal(spit(p, text, strlen(text)), 0);
	free(text);
	if (!with_config)
		return;
	assert_true(asprintf(&text,
	        "{\n  \"notion_settings\": {\n    \"api_version\": \"2022-06-28\",\n"
	        "    \"retry_attempts\": 3,\n    \"timeout_seconds\": 30\n  },\n"
	        "  \"logging_settings\": {\n    \"log_level\": \"INFO\",\n"
	        "    \"structured_logging\": true\n  },\n  \"cache_settings\": {\n"
	        "    \"ttl_seconds\": 3600,\n    \"max_entries\": 1000\n  },\n"
	        "  \"last_config_update\": \"%s\"\n}", now) > 0);
	snprintf(p, sizeof p, "%s/config_cache.json", dir);
	assert_int_equal(spit(p, text, strlen(text)), 0);
	free(text);
}

/* The original files, read now (to compare with what is kept). */
typedef struct originals {
	char *text[3];
	size_t len[3];
} originals;

static const char *const names[3] = { "notion_pages.json", "sync_status.json", "config_cache.json" };

static void read_originals(const char *dir, originals *o)
{
	char p[4096];

	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		assert_non_null(o->text[i] = slurp(p, &o->len[i]));
	}
}

static void assert_same(const char *dir, const originals *o)
{
	char p[4096];
	size_t n;

	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		char *t = slurp(p, &n);
		assert_non_null(t);
		assert_int_equal(n, o->len[i]);
		assert_memory_equal(t, o->text[i], n);
		free(t);
	}
}

static void free_originals(originals *o)
{
	for (int i = 0; i < 3; i++)
		free(o->text[i]);
}

static bool has(mb_bank *b, const char *id)
{
	char *j = NULL;
	int rc = mb_page_get(b, id, &j, NULL);

	mb_free(j);
	return rc == 0;
}

static void assert_migrated(const fx *f, const originals *o)
{
	char kept[4096], p[4096], *note;
	mb_bank *b = NULL;
	cJSON *c;

	assert_int_equal(mb_open(f->path, NULL, &b), 0);  /* migrates if not yet */
	mb_close(b);
	snprintf(kept, sizeof kept, "%s/%s", f->path, "original-memory-bank");
	assert_same(kept, o);
	snprintf(p, sizeof p, "%s/migration.json", kept);
	assert_non_null(note = slurp(p, NULL));
	assert_non_null(strstr(note, "\"pages\":2,\"expired_pages_kept\":1,\"ttl_seconds_was\":3600,"
	                              "\"ttl_seconds_now\":0"));
	free(note);
	assert_int_equal(mb_open(f->path, NULL, &b), 0);
	/* expired on arrival, kept: expiry is off */
	assert_true(has(b, "a1") && has(b, "old"));
	assert_non_null(c = config_doc(b));
	assert_int_equal(num_at(c, "cache_settings", "ttl_seconds"), 0);
	assert_int_equal(num_at(c, "cache_settings", "max_entries"), 1000);
	cJSON_Delete(c);
	assert_non_null(c = sync_doc(b));
	assert_int_equal((int)cJSON_GetArraySize(cJSON_GetObjectItem(c, "sync_history")), 1);
	assert_int_equal(num_at(c, "success_count", NULL), 1);
	cJSON_Delete(c);
	mb_close(b);
}

/* A directory of the original class opens as a bank (read-only options
 * too: it is a conversion), its files kept aside byte for byte.  Before:
 * MB_ENOTBANK "not a membank bank". */
static void test_migrate_on_open(void **state)
{
	fx *f = *state;
	mb_options o;
	originals orig;
	mb_bank *b = NULL;
	cJSON *page;

	write_original(f->path, true);
	read_originals(f->path, &orig);
	mb_options_init(&o);
	o.create = false;
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	assert_non_null(page = get_page(b, "a1"));
	assert_int_equal(num_at(cJSON_GetObjectItem(page, "properties"), "n", NULL) * 10, 15);
	/* naive time read as UTC, written back in membank's form */
	assert_int_equal(strlen(str_at(page, "last_updated", NULL)), 27);
	assert_non_null(strstr(str_at(page, "last_updated", NULL), ".123456Z"));
	cJSON_Delete(page);
	mb_close(b);
	assert_migrated(f, &orig);
	free_originals(&orig);
}

/* The original files' example max_entries (1000 in the spec's config) with
 * more pages than that: migration keeps them all and turns the bound off,
 * so the next new page evicts nothing; migration.json says so. */
static void test_migrate_more_pages_than_max_entries(void **state)
{
	fx *f = *state;
	char p[4200], *note;
	FILE *fp;
	mb_bank *b = NULL;
	uint64_t n = 0;

	assert_int_equal(mkdir(f->path, 0700), 0);
	snprintf(p, sizeof p, "%s/notion_pages.json", f->path);
	assert_non_null(fp = fopen(p, "w"));
	fprintf(fp, "{\"pages\": {");
	for (int i = 0; i < 30; i++)
		fprintf(fp, "%s\"p%02d\": {\"properties\": {\"i\": %d}, "
		        "\"last_updated\": \"2099-01-01T00:00:00\"}", i ? ", " : "", i, i);
	fprintf(fp, "}, \"last_updated\": null, \"metadata\": {\"total_pages\": 30, "
	        "\"last_sync\": null}}\n");
	fclose(fp);
	snprintf(p, sizeof p, "%s/config_cache.json", f->path);
	assert_non_null(fp = fopen(p, "w"));
	fprintf(fp, "{\"cache_settings\": {\"ttl_seconds\": 3600, \"max_entries\": 10}}\n");
	fclose(fp);
	assert_int_equal(mb_open(f->path, NULL, &b), 0);
	assert_int_equal(mb_page_put(b, "new", "{}", 2), 0);
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, 31);
	mb_close(b);
	snprintf(p, sizeof p, "%s/%s/migration.json", f->path, "original-memory-bank");
	assert_non_null(note = slurp(p, NULL));
	assert_non_null(strstr(note, "\"max_entries_was\":10,\"max_entries_now\":0"));
	free(note);
}

#define OPENERS 32

/* 32 processes open the original directory at once: one converts, all
 * succeed, every put lands in the one bank. */
static void test_migrate_concurrent(void **state)
{
	fx *f = *state;
	int pipefd[2], failed = 0;
	pid_t pids[OPENERS];
	originals orig;
	mb_bank *b = NULL;
	uint64_t n = 0;
	char c;

	write_original(f->path, true);
	read_originals(f->path, &orig);
	assert_int_equal(pipe(pipefd), 0);
	fflush(NULL);
	for (int i = 0; i < OPENERS; i++) {
		assert_true((pids[i] = fork()) >= 0);
		if (pids[i] == 0) {
			char id[16];
			int rc;
			close(pipefd[1]);
			while (read(pipefd[0], &c, 1) < 0 && errno == EINTR)
				;
			snprintf(id, sizeof id, "w%02d", i);
			if ((rc = mb_open(f->path, NULL, &b)) || (rc = mb_page_put(b, id, "{}", 2))) {
				printf("opener %d: %s: %s\n", i, mb_errname(rc),
				       b ? mb_last_error(b) : mb_last_error(NULL));
				fflush(NULL);
				_exit(1);
			}
			mb_close(b);
			_exit(0);
		}
	}
	close(pipefd[0]);
	close(pipefd[1]);
	for (int i = 0; i < OPENERS; i++)
		failed += wait_child(pids[i], 180) != 0;
	printf("%d of %d concurrent first openers failed\n", failed, OPENERS);
	assert_int_equal(failed, 0);
	assert_int_equal(mb_open(f->path, NULL, &b), 0);
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, OPENERS + 2);
	mb_close(b);
	assert_migrated(f, &orig);
	free_originals(&orig);
}

/* With @set, chmod the original files @dir/@sub<name> to it and return 0;
 * else their common mode (-1 when they differ). */
static int modes_of(const char *dir, const char *sub, int set)
{
	char p[4096];
	struct stat st;
	int mode = -2;

	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s/%s%s", dir, sub, names[i]);
		if (set) {
			assert_int_equal(chmod(p, (mode_t)set), 0);
			continue;
		}
		assert_int_equal(stat(p, &st), 0);
		if (mode == -2)
			mode = (int)(st.st_mode & 0777);
		else if (mode != (int)(st.st_mode & 0777))
			mode = -1;
	}
	return set ? 0 : mode;
}

/* An opener stopped (then killed) at each step of the conversion: before
 * the swap the original files are untouched where they were, after it the
 * bank is there with them kept; the next open finishes either way. */
static void test_migrate_killed(void **state)
{
	fx *f = *state;

	for (int step = 1; step <= 5; step++) {
		char at[16];
		originals orig;
		int status;
		pid_t pid;

		rm_rf(f->path);
		write_original(f->path, true);
		read_originals(f->path, &orig);
		/* readable by the original class's other workers */
		assert_int_equal(modes_of(f->path, "", 0644), 0);
		fflush(NULL);
		assert_true((pid = fork()) >= 0);
		if (pid == 0) {
			mb_bank *b = NULL;
			snprintf(at, sizeof at, "%d", step);
			setenv("MEMBANK_TEST_RESTORE_STOP", at, 1);
			_exit(mb_open(f->path, NULL, &b) ? 1 : 0);
		}
		for (int i = 0; i < 12000; i++) {
			pid_t r = waitpid(pid, &status, WNOHANG | WUNTRACED);
			if (r == pid && WIFSTOPPED(status))
				break;
			assert_int_equal(r, 0);
			usleep(10000);
		}
		kill(pid, SIGKILL);
		assert_int_equal(wait_child(pid, 60), 128 + SIGKILL);
		if (step < 4) {  /* the originals, where they were, as they were */
			assert_same(f->path, &orig);
			assert_int_equal(modes_of(f->path, "", 0), 0644);
		}
		assert_migrated(f, &orig);
		/* kept in the bank: private (they were made so at the swap) */
		assert_int_equal(modes_of(f->path, "original-memory-bank/", 0), 0600);
		free_originals(&orig);
	}
}

/* The names in @dir, sorted, joined by spaces, into @out. */
static void names_in(const char *dir, char *out, size_t cap)
{
	struct dirent **list;
	int n = scandir(dir, &list, NULL, alphasort);

	assert_true(n >= 0);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (list[i]->d_name[0] != '.' || strlen(list[i]->d_name) > 2)
			snprintf(out + strlen(out), cap - strlen(out), "%s ", list[i]->d_name);
		free(list[i]);
	}
	free(list);
}

/* A migration that fails (a file that does not load: a FIFO, which must
 * not be waited on) leaves the directory as it was, entry for entry, with
 * the originals' modes: it used to leave open.lock behind.  Any open, the
 * reading ones too, then the fixed directory converts. */
static void test_failed_migration_leaves_nothing(void **state)
{
	fx *f = *state;
	char before[1024], after[1024], p[4096];
	mb_options o;
	mb_bank *b = NULL;
	uint64_t n = 0;

	write_original(f->path, true);
	snprintf(p, sizeof p, "%s/error_log.json", f->path);
	assert_int_equal(mkfifo(p, 0644), 0);
	assert_int_equal(modes_of(f->path, "", 0644), 0);
	names_in(f->path, before, sizeof before);
	for (int create = 0; create <= 1; create++) {
		mb_options_init(&o);
		o.create = create;
		assert_int_equal(mb_open(f->path, &o, &b), MB_EINVAL);
		assert_non_null(strstr(mb_last_error(NULL), "error_log.json"));
		names_in(f->path, after, sizeof after);
		assert_string_equal(after, before);
		assert_int_equal(modes_of(f->path, "", 0), 0644);
	}
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mb_open(f->path, NULL, &b), 0);
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, 2);
	mb_close(b);
}

/* Anything else in the directory: not the original's, never converted. */
static void test_foreign_not_migrated(void **state)
{
	fx *f = *state;
	char p[4096];
	mb_bank *b = NULL;

	write_original(f->path, true);
	snprintf(p, sizeof p, "%s/notes.txt", f->path);
	assert_int_equal(spit(p, "x", 1), 0);
	assert_int_equal(mb_open(f->path, NULL, &b), MB_ENOTBANK);
	assert_non_null(strstr(mb_last_error(NULL), "but also \"notes.txt\": move that out first"));
	snprintf(p, sizeof p, "%s/membank.json", f->path);
	assert_int_equal(access(p, F_OK), -1);
}

/* --------------------------------------------------------- timestamps */

static int64_t t_of(const char *s)
{
	int64_t us = -1;

	return mb_parse_time(s, strlen(s), &us) ? -1 : us;
}

/* RFC 3339 with Z or an offset (converted to UTC), any fraction digits
 * (truncated to microseconds) or none, naive ISO 8601 read as UTC.
 * Before: only "YYYY-MM-DDTHH:MM:SS.ffffffZ". */
static void test_time_forms(void **state)
{
	const int64_t base = INT64_C(1769860800000000);  /* 2026-01-31T12:00:00Z */

	(void)state;
	assert_int_equal(t_of("2026-01-31T12:00:00.000000Z"), base);
	assert_int_equal(t_of("2026-01-31T12:00:00Z"), base);
	assert_int_equal(t_of("2026-01-31T12:00:00"), base);
	assert_int_equal(t_of("2026-01-31 12:00:00"), base);
	assert_int_equal(t_of("2026-01-31T12:00:00+00:00"), base);
	assert_int_equal(t_of("2026-01-31T14:30:00+02:30"), base);
	assert_int_equal(t_of("2026-01-31T07:00:00-05:00"), base);
	assert_int_equal(t_of("2026-01-31T12:00:00.5Z"), base + 500000);
	assert_int_equal(t_of("2026-01-31T12:00:00.123"), base + 123000);
	assert_int_equal(t_of("2026-01-31T12:00:00.123456789+00:00"), base + 123456);
	assert_int_equal(t_of("2026-01-31t12:00:00.123456z"), base + 123456);
	/* still refused */
	assert_int_equal(t_of("2026-01-31T12:00:00."), -1);
	assert_int_equal(t_of("2026-01-31T12:00:00.Z"), -1);
	assert_int_equal(t_of("2026-01-31T12:00:00+0000"), -1);
	assert_int_equal(t_of("2026-01-31T12:00:00+24:00"), -1);
	assert_int_equal(t_of("2026-01-31T12:00:00Zx"), -1);
	assert_int_equal(t_of("2026-02-30T12:00:00Z"), -1);
	assert_int_equal(t_of("2025-02-29T12:00:00Z"), -1);
	assert_int_equal(t_of("2024-02-29T12:00:00Z") > 0, 1);
	assert_int_equal(t_of("2026-01-31T12:00:60Z"), -1);
	assert_int_equal(t_of("2026-01-31"), -1);
}

/* ------------------------------------------------------------- restore */

/* Only some of the four files: the others read as empty ones; none at
 * all is refused.  Before: "sync_status.json: No such file or directory". */
static void test_restore_missing_files(void **state)
{
	fx *f = *state;
	char src[4096], out[4096], p[4096];
	mb_bank *b = NULL;
	uint64_t n = 9;
	cJSON *c;

	snprintf(src, sizeof src, "%s/src", f->dir);
	assert_int_equal(mkdir(src, 0700), 0);
	assert_int_equal(mb_restore(src, f->path, NULL, 0), MB_EINVAL);
	assert_non_null(strstr(mb_last_error(NULL), "none of notion_pages.json"));
	assert_int_equal(access(f->path, F_OK), -1);
	snprintf(p, sizeof p, "%s/sync_status.json", src);
	static const char sync[] = "{\"last_successful_sync\":\"2026-01-31T12:00:00+01:00\","
	        "\"sync_history\":[],\"current_status\":\"success\",\"error_count\":0,"
	        "\"success_count\":4}";
	assert_int_equal(spit(p, sync, sizeof sync - 1), 0);
	assert_int_equal(mb_restore(src, f->path, NULL, 0), 0);
	assert_int_equal(mb_open(f->path, NULL, &b), 0);
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, 0);
	assert_non_null(c = sync_doc(b));
	assert_string_equal(str_at(c, "last_successful_sync", NULL), "2026-01-31T11:00:00.000000Z");
	assert_int_equal(num_at(c, "success_count", NULL), 4);
	cJSON_Delete(c);
	/* the bank's own files are whole: a snapshot of it restores again */
	snprintf(out, sizeof out, "%s/out", f->dir);
	assert_int_equal(mkdir(out, 0700), 0);
	assert_int_equal(mb_snapshot(b, out, NULL), 0);
	mb_close(b);
	snprintf(p, sizeof p, "%s/again", f->dir);
	assert_int_equal(mb_restore(out, p, NULL, 0), 0);
}

/* Pages older than the files' ttl_seconds: refused without a choice,
 * nothing made; kept with ttl 0, or dropped.  Before: exit 0 and every
 * page read as absent. */
static void test_restore_expired_choice(void **state)
{
	fx *f = *state;
	char src[4096], keep[4096], drop[4096];
	mb_bank *b = NULL;
	uint64_t n = 0;
	cJSON *c;

	snprintf(src, sizeof src, "%s/src", f->dir);
	write_original(src, true);
	assert_int_equal(mb_restore(src, f->path, NULL, 0), MB_EINVAL);
	assert_non_null(strstr(mb_last_error(NULL), "1 of 2 pages are older than ttl_seconds=3600 "
	                                            "and would be expired on arrival"));
	assert_non_null(strstr(mb_last_error(NULL), "--keep-expired"));
	assert_int_equal(access(f->path, F_OK), -1);  /* nothing made */
	assert_int_equal(mb_restore(src, f->path, NULL,
	                            MB_RESTORE_KEEP_EXPIRED | MB_RESTORE_EXPIRE), MB_EINVAL);
	snprintf(keep, sizeof keep, "%s/keep", f->dir);
	assert_int_equal(mb_restore(src, keep, NULL, MB_RESTORE_KEEP_EXPIRED), 0);
	assert_int_equal(mb_open(keep, NULL, &b), 0);
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, 2);
	assert_non_null(c = config_doc(b));
	assert_int_equal(num_at(c, "cache_settings", "ttl_seconds"), 0);
	cJSON_Delete(c);
	assert_int_equal(mb_snapshot(b, NULL, NULL), 0);  /* purges nothing */
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, 2);
	mb_close(b);
	snprintf(drop, sizeof drop, "%s/drop", f->dir);
	assert_int_equal(mb_restore(src, drop, NULL, MB_RESTORE_EXPIRE), 0);
	assert_int_equal(mb_open(drop, NULL, &b), 0);
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, 1);
	assert_non_null(c = config_doc(b));
	assert_int_equal(num_at(c, "cache_settings", "ttl_seconds"), 3600);
	cJSON_Delete(c);
	mb_close(b);
}

/* @n pages updated @age_s seconds ago in @dir/notion_pages.json, and a
 * config_cache.json with @max_entries and ttl_seconds 3600 unless
 * @max_entries < 0 (no config_cache.json: the files of the report). */
static void write_many(const char *dir, int n, long age_s, long max_entries)
{
	char p[4200], when[64];
	time_t t = time(NULL) - age_s;
	struct tm tm;
	FILE *fp;

	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", gmtime_r(&t, &tm));
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(p, sizeof p, "%s/notion_pages.json", dir);
	assert_non_null(fp = fopen(p, "w"));
	fprintf(fp, "{\"pages\": {");
	for (int i = 0; i < n; i++)
		fprintf(fp, "%s\"p%05d\": {\"properties\": {\"i\": %d}, \"last_updated\": \"%s\"}",
		        i ? ", " : "", i, i, when);
	fprintf(fp, "}, \"last_updated\": null, \"metadata\": {\"total_pages\": %d, "
	        "\"last_sync\": null}}\n", n);
	fclose(fp);
	if (max_entries < 0)
		return;
	snprintf(p, sizeof p, "%s/config_cache.json", dir);
	assert_non_null(fp = fopen(p, "w"));
	fprintf(fp, "{\"cache_settings\": {\"ttl_seconds\": 3600, \"max_entries\": %ld}}\n",
	        max_entries);
	fclose(fp);
}

/* The bank at @path holds @pages pages, with these cache_settings; a new
 * page then evicts none (nor does a rebuild from the checkpoint). */
static void assert_all_kept(const char *path, uint64_t pages, int64_t max, int64_t ttl)
{
	mb_bank *b = NULL;
	uint64_t n = 0;
	cJSON *c;

	assert_int_equal(mb_open(path, NULL, &b), 0);
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, pages);
	assert_non_null(c = config_doc(b));
	assert_int_equal(num_at(c, "cache_settings", "max_entries"), max);
	assert_int_equal(num_at(c, "cache_settings", "ttl_seconds"), ttl);
	cJSON_Delete(c);
	assert_int_equal(mb_page_put(b, "new", "{}", 2), 0);
	assert_int_equal(mb_rebuild(b), 0);
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, pages + 1);
	assert_true(has(b, "p00000"));
	mb_close(b);
}

/* The report: notion_pages.json alone (1,200 pages, three days old) was
 * restored with --keep-expired into 1,000 pages and max_entries 1000: the
 * absent config read as the legacy 1000 and 3600, and turning expiry off
 * applied the bound at once.  Now an absent config_cache.json is a new
 * bank's (both 0): nothing expires, no choice is needed, all are kept. */
static void test_restore_no_config_keeps_all(void **state)
{
	fx *f = *state;
	char src[4096], keep[4096], *rep = NULL;

	snprintf(src, sizeof src, "%s/src", f->dir);
	write_many(src, 1200, 3 * 86400, -1);
	snprintf(keep, sizeof keep, "%s/keep", f->dir);
	assert_int_equal(mb_restore_report(src, keep, NULL, MB_RESTORE_KEEP_EXPIRED, &rep), 0);
	assert_non_null(rep);
	assert_string_equal(rep, "{\"pages\":1200,\"expired_pages\":0,\"expired_pages_kept\":0,"
	                         "\"expired_pages_dropped\":0,\"config_cache_json\":false,"
	                         "\"ttl_seconds_was\":0,\"ttl_seconds_now\":0,"
	                         "\"max_entries_was\":0,\"max_entries_now\":0}");
	mb_free(rep);
	assert_all_kept(keep, 1200, 0, 0);
	/* without a flag: nothing would expire, so none is needed */
	assert_int_equal(mb_restore(src, f->path, NULL, 0), 0);
	assert_all_kept(f->path, 1200, 0, 0);
}

/* A config_cache.json whose max_entries is below the pages: before, the
 * restore kept 30 pages under max_entries 10 (the next new page evicted
 * 20), and with --keep-expired the ttl update evicted 20 at once.  Now the
 * bound is turned off and the report says so, as the migration did. */
static void test_restore_max_entries_below_pages(void **state)
{
	fx *f = *state;
	char src[4096], old[4096], keep[4096], drop[4096], *rep = NULL;

	snprintf(src, sizeof src, "%s/src", f->dir);
	write_many(src, 30, 0, 10);
	assert_int_equal(mb_restore_report(src, f->path, NULL, 0, &rep), 0);
	assert_non_null(strstr(rep, "\"pages\":30,"));
	assert_non_null(strstr(rep, "\"config_cache_json\":true,\"ttl_seconds_was\":3600,"
	                            "\"ttl_seconds_now\":3600,\"max_entries_was\":10,"
	                            "\"max_entries_now\":0}"));
	mb_free(rep);
	assert_all_kept(f->path, 30, 0, 3600);

	snprintf(old, sizeof old, "%s/old", f->dir);
	write_many(old, 30, 3 * 86400, 10);
	snprintf(keep, sizeof keep, "%s/keep", f->dir);
	assert_int_equal(mb_restore_report(old, keep, NULL, MB_RESTORE_KEEP_EXPIRED, &rep), 0);
	assert_non_null(strstr(rep, "\"expired_pages\":30,\"expired_pages_kept\":30,"
	                            "\"expired_pages_dropped\":0,"));
	assert_non_null(strstr(rep, "\"max_entries_was\":10,\"max_entries_now\":0}"));
	mb_free(rep);
	assert_all_kept(keep, 30, 0, 0);

	/* --expire: the dropped are counted; the bound stays when what is kept
	 * fits in it (none here) */
	snprintf(drop, sizeof drop, "%s/drop", f->dir);
	assert_int_equal(mb_restore_report(old, drop, NULL, MB_RESTORE_EXPIRE, &rep), 0);
	assert_non_null(strstr(rep, "\"pages\":30,\"expired_pages\":30,\"expired_pages_kept\":0,"
	                            "\"expired_pages_dropped\":30,"));
	assert_non_null(strstr(rep, "\"max_entries_was\":10,\"max_entries_now\":10}"));
	mb_free(rep);
	/* a failed restore reports nothing */
	rep = (char *)"x";
	assert_int_equal(mb_restore_report(old, drop, NULL, 0, &rep), MB_EEXIST);
	assert_null(rep);
}

/* Migration of an original directory without config_cache.json, more
 * pages than the legacy 1000, all older than the legacy ttl: before, the
 * ttl update (expired pages are kept) applied max_entries 1000 at once and
 * 200 pages were evicted although migration.json said max_entries_now 0. */
static void test_migrate_no_config_keeps_all(void **state)
{
	fx *f = *state;
	char p[4200], *note;

	write_many(f->path, 1200, 3 * 86400, -1);
	assert_all_kept(f->path, 1200, 0, 0);
	snprintf(p, sizeof p, "%s/%s/migration.json", f->path, "original-memory-bank");
	assert_non_null(note = slurp(p, NULL));
	assert_non_null(strstr(note, "\"pages\":1200,\"expired_pages_kept\":0,"
	                             "\"ttl_seconds_was\":0,\"ttl_seconds_now\":0,"
	                             "\"max_entries_was\":0,\"max_entries_now\":0}"));
	free(note);
}

/* The same with the original's example config (1000, 3600): the bound is
 * turned off before expiry is, so the ttl update evicts nothing.  Before:
 * 1,000 pages. */
static void test_migrate_expired_more_than_max(void **state)
{
	fx *f = *state;
	char p[4200], *note;

	write_many(f->path, 1200, 3 * 86400, 1000);
	assert_all_kept(f->path, 1200, 0, 0);
	snprintf(p, sizeof p, "%s/%s/migration.json", f->path, "original-memory-bank");
	assert_non_null(note = slurp(p, NULL));
	assert_non_null(strstr(note, "\"pages\":1200,\"expired_pages_kept\":1200,"
	                             "\"ttl_seconds_was\":3600,\"ttl_seconds_now\":0,"
	                             "\"max_entries_was\":1000,\"max_entries_now\":0}"));
	free(note);
}

/* Keys of config_cache.json beyond the documented ones are kept and
 * written back where they were (after their section's fields, top-level
 * ones before last_config_update); updates still refuse them; a rebuild
 * keeps them; too many bytes of them are refused.  Before: "unknown key". */
static void test_config_extra_keys(void **state)
{
	static const char cfg[] =
	        "{\"notion_settings\":{\"database_id\":\"abc\",\"retry_attempts\":4},"
	        "\"cache_settings\":{\"deep\":{\"a\":[1,2.5,null]},\"ttl_seconds\":0},"
	        "\"workspace\":\"w\",\"last_config_update\":null}";
	static const char want[] =
	        "{\"notion_settings\":{\"api_version\":\"2022-06-28\",\"retry_attempts\":4,"
	        "\"timeout_seconds\":30,\"database_id\":\"abc\"},\"logging_settings\":"
	        "{\"log_level\":\"INFO\",\"structured_logging\":true},\"cache_settings\":"
	        "{\"ttl_seconds\":0,\"max_entries\":0,\"deep\":{\"a\":[1,2.5,null]}},"
	        "\"workspace\":\"w\",\"last_config_update\":null}";
	fx *f = *state;
	char src[4096], out[4096], again[4096], p[4096], *doc = NULL, *a, *b2;
	mb_bank *b = NULL;

	snprintf(src, sizeof src, "%s/src", f->dir);
	assert_int_equal(mkdir(src, 0700), 0);
	snprintf(p, sizeof p, "%s/config_cache.json", src);
	assert_int_equal(spit(p, cfg, sizeof cfg - 1), 0);
	assert_int_equal(mb_restore(src, f->path, NULL, 0), 0);
	assert_int_equal(mb_open(f->path, NULL, &b), 0);
	assert_int_equal(mb_config_get(b, &doc), 0);
	assert_string_equal(doc, want);
	mb_free(doc);
	assert_int_equal(mb_config_update(b, "{\"workspace\":\"v\"}", (size_t)-1), MB_EINVAL);
	assert_int_equal(mb_config_update(b, "{\"cache_settings\":{\"max_entries\":7}}",
	                                  (size_t)-1), 0);
	assert_int_equal(mb_rebuild(b), 0);
	assert_int_equal(mb_config_get(b, &doc), 0);
	assert_non_null(strstr(doc, "\"max_entries\":7,\"deep\":{\"a\":[1,2.5,null]}},"
	                            "\"workspace\":\"w\",\"last_config_update\":\""));
	assert_non_null(strstr(doc, "\"database_id\":\"abc\"}"));
	mb_free(doc);
	/* snapshot -> restore -> snapshot: the same bytes */
	snprintf(out, sizeof out, "%s/out", f->dir);
	snprintf(again, sizeof again, "%s/again", f->dir);
	assert_int_equal(mkdir(out, 0700), 0);
	assert_int_equal(mb_snapshot(b, out, NULL), 0);
	mb_close(b);
	assert_int_equal(mb_restore(out, again, NULL, 0), 0);
	snprintf(p, sizeof p, "%s/config_cache.json", out);
	assert_non_null(a = slurp(p, NULL));
	snprintf(p, sizeof p, "%s/config_cache.json", again);
	assert_non_null(b2 = slurp(p, NULL));
	assert_string_equal(a, b2);
	free(a);
	free(b2);
	/* more than CONFIG_EXTRA_MAX bytes of extras: refused, naming why */
	{
		static char big[9100] = "{\"blob\":\"";
		size_t n = 9000, k = strlen(big);

		memset(big + k, 'x', n);
		memcpy(big + k + n, "\"}", 3);
		snprintf(p, sizeof p, "%s/config_cache.json", src);
		assert_int_equal(spit(p, big, strlen(big)), 0);
		snprintf(p, sizeof p, "%s/big", f->dir);
		assert_int_equal(mb_restore(src, p, NULL, 0), MB_EINVAL);
		assert_non_null(strstr(mb_last_error(NULL), "config_cache.json: config: keys beyond "
		                                            "the documented ones"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_migrate_on_open, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_migrate_more_pages_than_max_entries, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_migrate_concurrent, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_migrate_killed, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_foreign_not_migrated, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_failed_migration_leaves_nothing, fx_setup,
		                                fx_teardown),
		cmocka_unit_test(test_time_forms),
		cmocka_unit_test_setup_teardown(test_restore_missing_files, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_restore_expired_choice, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_config_extra_keys, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_restore_no_config_keeps_all, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_restore_max_entries_below_pages, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_migrate_no_config_keeps_all, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_migrate_expired_more_than_max, fx_setup,
		                                fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
