/*
 * test_torture.c - processes SIGKILLed at random instants lose nothing.
 *
 * Four workers write (full durability) and note each acknowledged
 * mutation in a ledger of their own; the parent kills them at random
 * instants, again and again, and restarts them.  Then: every acknowledged
 * mutation is in the bank, the store equals a replay of the journal (each
 * record applied exactly once), and the journal verifies clean.
 * MEMBANK_TORTURE_KILLS sets the number of kills (200 by default).
 *
 * Progress whatever the machine's speed: a worker alternates puts and error
 * logs, and a life that acknowledged nothing restarts where it was, so on a
 * slow machine a kill timer alone could let a worker acknowledge only one
 * kind, or nothing.  Three lives in four are killed only after the worker
 * acknowledged two more mutations (one of each kind) and then at a random
 * instant; the fourth at a random instant from its start (open included).
 */
#include <fcntl.h>
#include <signal.h>
#include <time.h>

#include "helpers.h"

#define WORKERS 4

static char bank_path[1024], ledger_dir[1024];

static void ledger_path(char *out, size_t cap, int w)
{
	snprintf(out, cap, "%s/ledger-%d", ledger_dir, w);
}

/* The highest k acknowledged so far (-1: none), and how many. */
static long ledger_scan(int w, long *count, char **seen, long seen_cap)
{
	char path[1100], line[32];
	long best = -1, k;
	FILE *fp;

	ledger_path(path, sizeof path, w);
	*count = 0;
	if (!(fp = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof line, fp)) {
		if (!strchr(line, '\n'))
			break;  /* a torn last line was never acknowledged */
		k = atol(line);
		if (k > best)
			best = k;
		if (seen && k >= 0 && k < seen_cap)
			(*seen)[k] = 1;
		++*count;
	}
	fclose(fp);
	return best;
}

static void worker(int w)
{
	char path[1100], id[32], msg[32], type[8], line[32];
	mb_options o;
	mb_bank *b;
	long count, k = ledger_scan(w, &count, NULL, 0) + 2;  /* skip the one in flight */
	int fd;

	mb_options_init(&o);
	o.durability = MB_DURABILITY_FULL;
	if (mb_open(bank_path, &o, &b))
		_exit(3);
	ledger_path(path, sizeof path, w);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	snprintf(type, sizeof type, "w%d", w);
	for (;; k++) {
		int rc;
		if (k % 2 == 0) {
			snprintf(msg, sizeof msg, "%ld", k);
			rc = mb_error_log(b, type, msg);
		} else {
			snprintf(id, sizeof id, "w%d-%ld", w, k);
			rc = mb_page_put(b, id, "{\"acked\":true}", (size_t)-1);
		}
		if (rc)
			_exit(4);
		int n = snprintf(line, sizeof line, "%ld\n", k);
		if (write(fd, line, (size_t)n) != n)
			_exit(5);
	}
}

static int setup(void **state)
{
	char *dir = tmp_dir();
	mb_bank *b;

	*state = dir;
	snprintf(bank_path, sizeof bank_path, "%s/bank", dir);
	snprintf(ledger_dir, sizeof ledger_dir, "%s", dir);
	if (mb_open(bank_path, NULL, &b))
		return -1;
	mb_config_update(b, "{\"cache_settings\":{\"max_entries\":0}}", (size_t)-1);
	mb_close(b);
	return 0;
}

static int teardown(void **state)
{
	rm_rf(*state);
	free(*state);
	return 0;
}

/* Wait until worker @w's ledger holds @want acknowledgements (bounded:
 * a worker that makes no progress in minutes is a failure, not a flake). */
static void wait_progress(int w, pid_t pid, long want)
{
	long count;

	for (int i = 0; i < 300 * 1000; i++) {
		ledger_scan(w, &count, NULL, 0);
		if (count >= want)
			return;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			fail_msg("worker %d exited on its own", w);
		usleep(1000);
	}
	fail_msg("worker %d: no progress (%ld of %ld acknowledged)", w, count, want);
}

static long kill_cycles(int kills)
{
	pid_t pids[WORKERS];
	long done = 0, base[WORKERS];

	for (long life = 0; done < kills; life++) {
		for (int w = 0; w < WORKERS; w++) {
			ledger_scan(w, &base[w], NULL, 0);
			if ((pids[w] = fork()) == 0)
				worker(w);
		}
		for (int w = 0; w < WORKERS; w++) {
			if (life % 4 != 3)
				wait_progress(w, pids[w], base[w] + 2);
			usleep((useconds_t)(rand() % 12000));  /* any instant: open, write, sync */
			kill(pids[w], SIGKILL);
		}
		for (int w = 0; w < WORKERS; w++) {
			int status;
			waitpid(pids[w], &status, 0);
			assert_true(WIFSIGNALED(status));  /* not an error exit */
			done++;
		}
	}
	return done;
}

static void check_worker(mb_bank *b, cJSON *stats, int w, long kills, long *acked, long *inflight)
{
	char type[8], id[32], *page;
	long count, best, applied_puts = 0, acked_puts = 0, acked_logs = 0;
	char *seen = calloc(1 << 20, 1);

	best = ledger_scan(w, &count, &seen, 1 << 20);
	snprintf(type, sizeof type, "w%d", w);
	for (long k = 0; k <= best + 2 * kills + 2; k++) {
		if (k % 2 == 0) {
			acked_logs += seen[k];
			continue;
		}
		snprintf(id, sizeof id, "w%d-%ld", w, k);
		int rc = mb_page_get(b, id, &page, NULL);
		if (seen[k] && rc)
			fail_msg("worker %d: acknowledged put %ld is lost", w, k);
		if (!rc) {
			applied_puts++;
			mb_free(page);
		}
		acked_puts += seen[k];
	}
	double n = num_at(stats, "patterns", type);
	long logs = n < 0 ? 0 : (long)n;  /* absent: no log of this worker applied */
	if (logs < acked_logs)
		fail_msg("worker %d: %ld error logs acknowledged, %ld in the bank", w, acked_logs, logs);
	*acked += count;
	*inflight += logs - acked_logs + applied_puts - acked_puts;
	free(seen);
}

static void test_kill_anywhere(void **state)
{
	const char *env = getenv("MEMBANK_TORTURE_KILLS");
	int want = env ? atoi(env) : 200;
	long kills, acked = 0, inflight = 0;
	char *report;
	cJSON *stats;
	mb_bank *b;

	(void)state;
	srand((unsigned)time(NULL));
	kills = kill_cycles(want);
	assert_int_equal(mb_journal_verify(bank_path, &report), 0);  /* a torn tail is clean */
	mb_free(report);
	assert_int_equal(mb_open(bank_path, NULL, &b), 0);
	stats = error_doc(b);
	for (int w = 0; w < WORKERS; w++)
		check_worker(b, stats, w, kills, &acked, &inflight);
	cJSON_Delete(stats);
	assert_rebuild_same(b);
	assert_int_equal(mb_journal_verify(bank_path, &report), 0);
	assert_non_null(strstr(report, "\"torn_tail\":false"));
	mb_free(report);
	assert_true(acked > 0);
	printf("torture: kills=%ld acknowledged=%ld lost=0 recovered_in_flight=%ld\n",
	       kills, acked, inflight);
	{
		/* how large the write groups of the run were (informative: the
		 * killed leaders are store-group's deterministic tests) */
		char *text = NULL, *g, *r;
		if (!mb_metrics(b, &text) && (g = strstr(text, "\nmembank_write_groups_total{")) &&
		    (r = strstr(text, "\nmembank_write_group_records_total{")))
			printf("torture: write groups: %llu records in %llu groups\n",
			       strtoull(strchr(r, '}') + 2, NULL, 10),
			       strtoull(strchr(g, '}') + 2, NULL, 10));
		mb_free(text);
	}
	mb_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kill_anywhere, setup, teardown),
	};
	return cmocka_run_group_tests_name("store-torture", tests, NULL, NULL);
}
