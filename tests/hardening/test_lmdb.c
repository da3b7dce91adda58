/*
 * test_lmdb.c - LMDB hazards under load: reader slots of killed processes,
 * storms of opens and closes, several processes growing the map at once, a
 * pinned reader's lag.
 *
 * Bounded for CI; longer runs by environment:
 *   MEMBANK_HARD_KILLS=N          readers killed (default 1100 > 1022 slots)
 *   MEMBANK_HARD_STORM_SECONDS=S  open/close storm length (default 8)
 */
#include <time.h>

#include "hard.h"

static long env_long(const char *name, long def)
{
	const char *v = getenv(name);
	long n = v && *v ? strtol(v, NULL, 10) : 0;

	return n > 0 ? n : def;
}

static cJSON *stats_of(mb_bank *b)
{
	char *s = NULL;

	assert_int_equal(mb_stats(b, &s), 0);
	return doc_of(0, s);
}

static double store_num(mb_bank *b, const char *key)
{
	cJSON *j = stats_of(b);
	double v = num_at(cJSON_GetObjectItem(j, "store"), key, NULL);

	cJSON_Delete(j);
	return v;
}

/* Tell the parent the read transaction is open, then hold it until killed. */
static int pin(void *ctx, const char *id, const char *page)
{
	(void)id, (void)page;
	if (write(*(int *)ctx, "r", 1) != 1)
		return 1;
	pause();
	return 0;
}

/* A child that opens the bank, starts a read and waits to be killed; exit
 * status 3 when it could not (a full reader table shows here). */
static void reader_child(const char *path, int fd)
{
	mb_bank *b = open_opts(path, MB_DURABILITY_FAST, 0, 0);
	int rc;

	if (!b)
		_exit(3);
	rc = mb_page_iterate(b, NULL, MB_ITER_IDS, pin, &fd);
	fprintf(stderr, "reader child: iterate: %s: %s\n", mb_errname(rc), mb_last_error(b));
	_exit(3);
}

#define BATCH 50

/* More readers killed mid-read than LMDB has slots (1022): every slot a
 * dead reader left must be reclaimed, or opens and reads would fail with
 * a full reader table. */
static void test_killed_readers_exceed_slots(void **state)
{
	fx *f = *state;
	long kills = env_long("MEMBANK_HARD_KILLS", 1100), done = 0;
	mb_bank *b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);
	pid_t pids[BATCH];
	cJSON *page;
	int p[2];
	char c;

	assert_non_null(b);
	assert_int_equal(mb_page_put(b, "p", "{\"v\":1}", (size_t)-1), 0);
	while (done < kills) {
		int n = kills - done < BATCH ? (int)(kills - done) : BATCH, status;
		assert_int_equal(pipe(p), 0);
		for (int i = 0; i < n; i++) {
			fflush(NULL);
			if ((pids[i] = fork()) == 0) {
				close(p[0]);
				reader_child(f->path, p[1]);
			}
			assert_true(pids[i] > 0);
		}
		close(p[1]);
		for (int i = 0; i < n; i++)
			assert_int_equal(read(p[0], &c, 1), 1);  /* all of them are reading */
		close(p[0]);
		for (int i = 0; i < n; i++)
			kill(pids[i], SIGKILL);
		for (int i = 0; i < n; i++) {
			assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
			assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		}
		done += n;
		/* the survivor keeps writing and reading between the batches */
		assert_int_equal(mb_page_merge(b, "p", "{\"w\":1}", (size_t)-1), 0);
	}
	mb_close(b);
	b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);
	assert_non_null(b);
	page = get_page(b, "p");
	assert_non_null(page);
	cJSON_Delete(page);
	printf("readers killed mid-read: %ld; readers now %g, max %g\n", done,
	       store_num(b, "readers"), store_num(b, "max_readers"));
	assert_true(store_num(b, "readers") <= 2);
	assert_int_equal(store_num(b, "max_readers"), 1022);
	mb_close(b);
}

/* Processes opening and closing the same bank at once, each writing and
 * reading in between: every call succeeds. */
static int storm_child(const char *path, int id, double until)
{
	char pid_id[32], *s = NULL;
	int rounds = 0;
	struct timespec ts;

	snprintf(pid_id, sizeof pid_id, "w%d", id);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if (ts.tv_sec + ts.tv_nsec / 1e9 > until)
			break;
		mb_bank *b = open_opts(path, MB_DURABILITY_FAST, 0, 0);
		if (!b)
			return 2;
		if (mb_page_merge(b, pid_id, "{\"n\":1}", (size_t)-1) || mb_page_get(b, pid_id, &s, NULL)) {
			fprintf(stderr, "storm child %d: %s\n", id, mb_last_error(b));
			return 3;
		}
		mb_free(s);
		if (mb_close(b))
			return 4;
		rounds++;
	}
	return rounds > 0 ? 0 : 5;
}

static void test_open_close_storm(void **state)
{
	fx *f = *state;
	long seconds = env_long("MEMBANK_HARD_STORM_SECONDS", 8);
	enum { N = 8 };
	pid_t pids[N];
	struct timespec ts;
	mb_bank *b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);
	uint64_t count;

	assert_non_null(b);
	mb_close(b);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	for (int i = 0; i < N; i++) {
		fflush(NULL);
		if ((pids[i] = fork()) == 0)
			_exit(storm_child(f->path, i, ts.tv_sec + ts.tv_nsec / 1e9 + (double)seconds));
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(wait_child(pids[i], (int)seconds + 60), 0);
	b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);
	assert_int_equal(mb_page_count(b, &count), 0);
	assert_int_equal(count, N);
	printf("open/close storm: %d processes for %ld s, no failed call\n", N, seconds);
	mb_close(b);
}

/* Several processes fill a bank whose map starts at 1 MiB: they grow it
 * at once, and adopt each other's growth.  Every page lands. */
static int grow_child(const char *path, int id, int pages)
{
	char *props = malloc(5000), pid_id[32];
	mb_bank *b = open_opts(path, MB_DURABILITY_FAST, 1 << 20, 0);

	if (!b || !props)
		return 2;
	snprintf(props, 16, "{\"x\":\"");
	memset(props + 6, 'a' + id, 4000);
	strcpy(props + 6 + 4000, "\"}");
	for (int i = 0; i < pages; i++) {
		snprintf(pid_id, sizeof pid_id, "g%d-%04d", id, i);
		if (mb_page_put(b, pid_id, props, (size_t)-1)) {
			fprintf(stderr, "grow child %d page %d: %s\n", id, i, mb_last_error(b));
			return 3;
		}
	}
	mb_close(b);
	free(props);
	return 0;
}

static void test_concurrent_map_growth(void **state)
{
	fx *f = *state;
	enum { N = 4, PAGES = 300 };
	pid_t pids[N];
	mb_bank *b = open_opts(f->path, MB_DURABILITY_FAST, 1 << 20, 0);
	uint64_t count;
	double map;
	char id[32], *s = NULL;

	assert_non_null(b);
	/* no eviction: every page must stay */
	assert_int_equal(mb_config_update(b, "{\"cache_settings\":{\"max_entries\":0}}",
	                                  (size_t)-1), 0);
	map = store_num(b, "map_size");
	assert_true(map <= (1 << 20));
	for (int i = 0; i < N; i++) {
		fflush(NULL);
		if ((pids[i] = fork()) == 0)
			_exit(grow_child(f->path, i, PAGES));
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(wait_child(pids[i], 120), 0);
	assert_int_equal(mb_page_count(b, &count), 0);
	assert_int_equal(count, N * PAGES);
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof id, "g%d-%04d", i, PAGES - 1);
		assert_int_equal(mb_page_get(b, id, &s, NULL), 0);
		assert_non_null(strchr(s, 'a' + i));
		mb_free(s);
	}
	printf("map grown by %d processes at once: %g -> %g bytes, %llu pages of 4 KB\n", N, map,
	       store_num(b, "map_size"), (unsigned long long)count);
	assert_true(store_num(b, "map_size") >= 4 * (1 << 20));
	mb_close(b);
}

/* A reader pinned in another process: its lag grows with every write, and
 * comes back to 0 once it is gone. */
static void test_pinned_reader_lag_grows(void **state)
{
	fx *f = *state;
	mb_bank *b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);
	double lag[4];
	int p[2];
	pid_t pid;
	char c;

	assert_int_equal(mb_page_put(b, "p", "{}", 2), 0);
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	if ((pid = fork()) == 0)
		reader_child(f->path, p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	for (int step = 0; step < 4; step++) {
		lag[step] = store_num(b, "reader_lag_txns");
		for (int i = 0; i < 10; i++)
			assert_int_equal(mb_page_put(b, "p", "{}", 2), 0);
	}
	printf("reader lag while pinned: %g %g %g %g\n", lag[0], lag[1], lag[2], lag[3]);
	for (int step = 1; step < 4; step++)
		assert_true(lag[step] >= lag[step - 1] + 10);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(p[0]);
	close(p[1]);
	mb_close(b);
	b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);  /* open clears the dead slot */
	assert_int_equal(store_num(b, "reader_lag_txns"), 0);
	mb_close(b);
}

/* A process that opens with keep_reader_slots (membank doctor) sees the
 * slot a reader killed mid-read left, counted as stale_readers, and leaves
 * it; the next ordinary open clears it. */
static int keep_slots_child(void *arg)
{
	const fx *f = arg;
	mb_options o;
	mb_bank *b = NULL;
	cJSON *j;
	char *s = NULL;

	mb_options_init(&o);
	o.create = false;
	o.keep_reader_slots = true;
	NEED(mb_open(f->path, &o, &b) == 0);
	NEED(mb_stats(b, &s) == 0);
	j = cJSON_Parse(s);
	NEED(num_at(cJSON_GetObjectItem(j, "store"), "stale_readers", NULL) == 1);
	cJSON_Delete(j);
	mb_free(s);
	mb_close(b);
	return 0;
}

static void test_stale_slots_kept_when_asked(void **state)
{
	fx *f = *state;
	mb_bank *b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0), *b2;
	int p[2];
	pid_t pid;
	char c;

	assert_non_null(b);   /* alive all along: LMDB keeps the reader table */
	assert_int_equal(mb_page_put(b, "p", "{}", 2), 0);
	assert_int_equal(store_num(b, "stale_readers"), 0);
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	if ((pid = fork()) == 0)
		reader_child(f->path, p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(p[0]);
	close(p[1]);
	assert_int_equal(store_num(b, "stale_readers"), 1);
	run_child(keep_slots_child, f, 60);
	assert_int_equal(store_num(b, "stale_readers"), 1);   /* left as found */
	b2 = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);    /* an ordinary open */
	assert_non_null(b2);
	assert_int_equal(store_num(b, "stale_readers"), 0);
	printf("a dead reader's slot: kept by an open with keep_reader_slots, cleared by the "
	       "next ordinary open\n");
	mb_close(b2);
	mb_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_killed_readers_exceed_slots, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_open_close_storm, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_map_growth, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_pinned_reader_lag_grows, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stale_slots_kept_when_asked, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
