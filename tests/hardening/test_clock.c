/*
 * test_clock.c - the wall clock stepping back and forth, and the set of
 * pages every operation sees.
 *
 * The clock is moved, not waited for: clock_gettime() is wrapped at link
 * time (-Wl,--wrap=clock_gettime), and CLOCK_REALTIME reads as the real
 * time plus the offset a test sets.  That runs the library's own decisions
 * (record times, eviction, expiry) on its real paths, deterministically.
 *
 * What is proven:
 *  - a clock stepped back a day: a put is never the "oldest" page, is never
 *    evicted or expired by its own write, and eviction follows the order of
 *    writes; record times never decrease along the journal;
 *  - expired pages: count, iterate, get, delete and the snapshot's
 *    total_pages agree (an expired page is absent for all of them).
 * (A store of the layout before the clock joined the head is of store
 * format 1: rebuilt from the journal by the next open, hard-storefmt.)
 */
#include <inttypes.h>
#include <time.h>

#include "hard.h"
#include "bank.h"

static int64_t clock_offset_us;

int __real_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_gettime(clockid_t id, struct timespec *ts);

int __wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
	int rc = __real_clock_gettime(id, ts);
	int64_t ns;

	if (rc || id != CLOCK_REALTIME || !clock_offset_us)
		return rc;
	ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec + clock_offset_us * 1000;
	ts->tv_sec = ns / 1000000000;
	ts->tv_nsec = ns % 1000000000;
	return 0;
}

static const int64_t DAY_US = 86400LL * 1000000;

static int clock_setup(void **state)
{
	clock_offset_us = 0;
	return fx_setup(state);
}

static int clock_teardown(void **state)
{
	clock_offset_us = 0;
	return fx_teardown(state);
}

static bool page_there(mb_bank *b, const char *id)
{
	char *s = NULL;
	int rc = mb_page_get(b, id, &s, NULL);

	mb_free(s);
	assert_true(rc == 0 || rc == MB_ENOTFOUND);
	return rc == 0;
}

static uint64_t live_count(mb_bank *b)
{
	uint64_t n = 0;

	assert_int_equal(mb_page_count(b, &n), 0);
	return n;
}

static int count_cb(void *ctx, const char *id, const char *json)
{
	(void)id;
	(void)json;
	++*(uint64_t *)ctx;
	return 0;
}

static uint64_t walked(mb_bank *b)
{
	uint64_t n = 0;

	assert_int_equal(mb_page_iterate(b, NULL, MB_ITER_IDS, count_cb, &n), 0);
	return n;
}

/* Parse the "timestamp" of each journal event and check they increase. */
typedef struct times {
	char last[64];
	int n, bad;
} times;

static int time_cb(void *ctx, uint64_t seq, const char *ev)
{
	times *t = ctx;
	const char *p = strstr(ev, "\"timestamp\":\"");
	char now[64];
	size_t len;

	(void)seq;
	if (!p)
		return t->bad++, 0;
	p += 13;
	len = strcspn(p, "\"");
	if (len >= sizeof now)
		return t->bad++, 0;
	memcpy(now, p, len);
	now[len] = '\0';
	/* RFC 3339 UTC with fixed-width microseconds sorts as text */
	if (t->n && strcmp(now, t->last) <= 0) {
		fprintf(stderr, "record %" PRIu64 " at %s is not after %s\n", seq, now, t->last);
		t->bad++;
	}
	memcpy(t->last, now, len + 1);
	t->n++;
	return 0;
}

static void test_clock_back_eviction(void **state)
{
	fx *f = *state;
	mb_bank *b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);
	times t = { .n = 0 };

	assert_non_null(b);
	assert_int_equal(mb_config_update(b, "{\"cache_settings\":{\"max_entries\":3,"
	                                  "\"ttl_seconds\":3600}}", (size_t)-1), 0);
	assert_int_equal(mb_page_put(b, "a", "{}", 2), 0);
	assert_int_equal(mb_page_put(b, "b", "{}", 2), 0);
	assert_int_equal(mb_page_put(b, "c", "{}", 2), 0);
	clock_offset_us = -DAY_US;  /* the clock steps back a day */
	assert_int_equal(mb_page_put(b, "d", "{}", 2), 0);
	assert_true(page_there(b, "d"));  /* not evicted by its own put */
	assert_false(page_there(b, "a")); /* the first written goes first */
	assert_true(page_there(b, "b"));
	assert_int_equal(mb_page_put(b, "e", "{}", 2), 0);
	assert_true(page_there(b, "e"));
	assert_false(page_there(b, "b"));
	assert_true(page_there(b, "c"));
	assert_true(page_there(b, "d"));
	/* an update makes a page the newest, whatever the clock says */
	assert_int_equal(mb_page_merge(b, "c", "{\"x\":1}", (size_t)-1), 0);
	assert_int_equal(mb_page_put(b, "f", "{}", 2), 0);
	assert_true(page_there(b, "c"));
	assert_false(page_there(b, "d"));
	assert_int_equal(live_count(b), 3);
	assert_int_equal(walked(b), 3);
	/* the clock comes back: nothing written under the stepped clock expires */
	clock_offset_us = 0;
	assert_int_equal(mb_page_put(b, "g", "{}", 2), 0);
	assert_true(page_there(b, "f"));
	assert_true(page_there(b, "g"));
	/* record times never decrease along the journal */
	assert_int_equal(mb_journal_read(b, 0, time_cb, &t), 0);
	assert_true(t.n >= 9);
	assert_int_equal(t.bad, 0);
	/* and a replay of the journal gives the same store */
	assert_rebuild_same(b);
	mb_close(b);
}

/* A put under a clock stepped back is not expired by the ttl at once, and a
 * clock stepped back between writes of the same process keeps times
 * increasing (sync history and error log are journaled the same way). */
static void test_clock_back_ttl(void **state)
{
	fx *f = *state;
	mb_bank *b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);
	times t = { .n = 0 };

	assert_non_null(b);
	assert_int_equal(mb_config_update(b, "{\"cache_settings\":{\"ttl_seconds\":60}}",
	                                  (size_t)-1), 0);
	assert_int_equal(mb_page_put(b, "x", "{}", 2), 0);
	clock_offset_us = -DAY_US;
	assert_int_equal(mb_page_put(b, "y", "{}", 2), 0);
	assert_int_equal(mb_sync_record(b, "success", NULL), 0);
	assert_int_equal(mb_error_log(b, "E", "m"), 0);
	assert_true(page_there(b, "x"));
	assert_true(page_there(b, "y"));
	assert_int_equal(live_count(b), 2);
	clock_offset_us = -2 * DAY_US;
	assert_int_equal(mb_page_merge(b, "y", "{\"v\":2}", (size_t)-1), 0);
	assert_true(page_there(b, "y"));
	assert_int_equal(mb_journal_read(b, 0, time_cb, &t), 0);
	assert_int_equal(t.bad, 0);
	/* a reopened handle reads the clock from the store, not its memory */
	mb_close(b);
	b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);
	assert_non_null(b);
	assert_int_equal(mb_page_put(b, "z", "{}", 2), 0);
	memset(&t, 0, sizeof t);
	assert_int_equal(mb_journal_read(b, 0, time_cb, &t), 0);
	assert_int_equal(t.bad, 0);
	assert_true(page_there(b, "z"));
	mb_close(b);
}

/* Expired pages are absent for every operation alike: count, iterate, get,
 * delete (MB_ENOTFOUND, nothing journaled) and the snapshot. */
static void test_expired_pages_agree(void **state)
{
	fx *f = *state;
	mb_bank *b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);
	mb_snapshot_info info;
	char id[16], snap[4096], p[4096], *s;
	uint64_t seq0, seq1;

	assert_non_null(b);
	assert_int_equal(mb_config_update(b, "{\"cache_settings\":{\"ttl_seconds\":10}}",
	                                  (size_t)-1), 0);
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof id, "old%d", i);
		assert_int_equal(mb_page_put(b, id, "{}", 2), 0);
	}
	clock_offset_us = 11 * 1000000LL;  /* the five are now older than the ttl */
	assert_int_equal(mb_page_put(b, "new", "{}", 2), 0);
	assert_int_equal(live_count(b), 1);
	assert_int_equal(walked(b), 1);
	assert_false(page_there(b, "old0"));
	assert_true(page_there(b, "new"));
	assert_int_equal(mb_journal_last_seq(b, &seq0), 0);
	assert_int_equal(mb_page_delete(b, "old3"), MB_ENOTFOUND);
	assert_non_null(strstr(mb_last_error(b), "not found"));
	assert_int_equal(mb_journal_last_seq(b, &seq1), 0);
	assert_int_equal(seq1, seq0);  /* a refused delete journals nothing */
	assert_int_equal(mb_page_delete(b, "new"), 0);
	assert_int_equal(live_count(b), 0);
	assert_int_equal(mb_page_put(b, "new2", "{}", 2), 0);
	/* the snapshot's total_pages is the same number */
	snprintf(snap, sizeof snap, "%s/snap", f->dir);
	assert_int_equal(mkdir(snap, 0700), 0);
	assert_int_equal(mb_snapshot(b, snap, &info), 0);
	assert_int_equal(info.pages, 1);
	snprintf(p, sizeof p, "%s/notion_pages.json", snap);
	s = slurp(p, NULL);
	assert_non_null(s);
	assert_non_null(strstr(s, "\"total_pages\":1"));
	assert_null(strstr(s, "old0"));
	free(s);
	/* a merge into an expired page starts from nothing, and counts again */
	assert_int_equal(mb_page_merge(b, "old1", "{\"b\":1}", (size_t)-1), 0);
	assert_int_equal(live_count(b), 2);
	assert_int_equal(walked(b), 2);
	mb_close(b);
}

/* Expired pages are counted while they wait (pages_expired: stored minus
 * live, computed), then as purged by the snapshot that removes them; the
 * purged count survives mb_rebuild and a rebuild under another boot (from
 * the checkpoint's "pages_removed"). */
static void test_expiry_counted(void **state)
{
	fx *f = *state;
	mb_bank *b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);
	mb_snapshot_info info;
	char id[16], snap[4096];

	assert_non_null(b);
	assert_int_equal(mb_config_update(b, "{\"cache_settings\":{\"ttl_seconds\":10}}",
	                                  (size_t)-1), 0);
	for (int i = 0; i < 4; i++) {
		snprintf(id, sizeof id, "old%d", i);
		assert_int_equal(mb_page_put(b, id, "{}", 2), 0);
	}
	clock_offset_us = 11 * 1000000LL;  /* the four are now older than the ttl */
	assert_int_equal(mb_page_put(b, "new", "{}", 2), 0);
	assert_int_equal(live_count(b), 1);
	assert_removed(b, 0, 4, 0);
	/* a snapshot elsewhere purges nothing and reports what waits */
	snprintf(snap, sizeof snap, "%s/snap", f->dir);
	assert_int_equal(mkdir(snap, 0700), 0);
	assert_int_equal(mb_snapshot(b, snap, &info), 0);
	assert_int_equal(info.pages, 1);
	assert_int_equal(info.purged, 0);
	assert_int_equal(info.pages_expired, 4);
	assert_int_equal(info.pages_purged, 0);
	/* the checkpoint purges them: counted in its result and in stats */
	assert_int_equal(mb_snapshot(b, NULL, &info), 0);
	assert_int_equal(info.pages, 1);
	assert_int_equal(info.purged, 4);
	assert_int_equal(info.pages_purged, 4);
	assert_int_equal(info.pages_expired, 0);
	assert_int_equal(info.pages_evicted, 0);
	assert_removed(b, 0, 0, 4);
	assert_int_equal(mb_rebuild(b), 0);
	assert_removed(b, 0, 0, 4);
	/* two more expire and are purged after the checkpoint: 4 + 2 */
	clock_offset_us = 0;
	assert_int_equal(mb_page_put(b, "old4", "{}", 2), 0);
	assert_int_equal(mb_page_put(b, "old5", "{}", 2), 0);
	clock_offset_us = 22 * 1000000LL;
	assert_removed(b, 0, 3, 4);   /* "new" too: written at +11 s */
	assert_int_equal(mb_snapshot(b, NULL, &info), 0);
	assert_int_equal(info.purged, 3);
	assert_int_equal(info.pages_purged, 7);
	assert_removed(b, 0, 0, 7);
	mb_close(b);
	setenv("MEMBANK_TEST_BOOT_ID", "00000000-counters-purge-boot-0000001", 1);
	b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);
	unsetenv("MEMBANK_TEST_BOOT_ID");
	assert_non_null(b);
	assert_removed(b, 0, 0, 7);
	assert_int_equal(mb_rebuild(b), 0);
	assert_removed(b, 0, 0, 7);
	mb_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_clock_back_eviction, clock_setup, clock_teardown),
		cmocka_unit_test_setup_teardown(test_clock_back_ttl, clock_setup, clock_teardown),
		cmocka_unit_test_setup_teardown(test_expired_pages_agree, clock_setup, clock_teardown),
		cmocka_unit_test_setup_teardown(test_expiry_counted, clock_setup, clock_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
