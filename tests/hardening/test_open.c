/*
 * test_open.c - opening, creating and restoring a bank while other
 * processes do the same: creation is atomic, a restore excludes openers for
 * its whole duration, a kill at any step of a restore leaves the old bank
 * or the new one whole at the path, and a handle on a replaced bank says
 * so instead of reading or writing the wrong files.
 *
 * Deterministic: processes start together on a pipe (no sleeps), and a
 * restore is stopped at a chosen step with MEMBANK_TEST_RESTORE_STOP=N (it
 * raises SIGSTOP there; the test then kills it, or lets it go on).
 */
#include <poll.h>

#include "hard.h"

/* Children wait on the read end until the parent closes the write end. */
typedef struct gate {
	int fd[2];
} gate;

static void gate_init(gate *g)
{
	assert_int_equal(pipe(g->fd), 0);
}

static void gate_wait(gate *g)
{
	char c;

	close(g->fd[1]);
	while (read(g->fd[0], &c, 1) < 0 && errno == EINTR)
		;
	close(g->fd[0]);
}

static void gate_open(gate *g)
{
	close(g->fd[0]);
	close(g->fd[1]);
}

static int count_pages(const char *path, uint64_t *n)
{
	mb_bank *b = NULL;
	int rc = mb_open(path, NULL, &b);

	if (!rc)
		rc = mb_page_count(b, n);
	mb_close(b);
	return rc;
}

/* ------------------------------------------------------- creation race */

#define CREATORS 64

/* @n processes open a bank that does not exist yet at the same instant and
 * each puts its own page: every open succeeds, into one bank. */
static void test_create_race(void **state)
{
	fx *f = *state;
	pid_t pids[CREATORS];
	uint64_t count = 0;
	int failed = 0;
	gate g;

	gate_init(&g);
	fflush(NULL);
	for (int i = 0; i < CREATORS; i++) {
		assert_true((pids[i] = fork()) >= 0);
		if (pids[i] == 0) {
			char id[16];
			mb_bank *b = NULL;
			int rc;

			gate_wait(&g);
			snprintf(id, sizeof id, "w%02d", i);
			if ((rc = mb_open(f->path, NULL, &b)) || (rc = mb_page_put(b, id, "{}", 2))) {
				printf("worker %d: %s: %s\n", i, mb_errname(rc),
				       b ? mb_last_error(b) : mb_last_error(NULL));
				fflush(NULL);
				_exit(1);
			}
			mb_close(b);
			_exit(0);
		}
	}
	gate_open(&g);
	for (int i = 0; i < CREATORS; i++)
		failed += wait_child(pids[i], 120) != 0;
	printf("%d of %d concurrent creators failed\n", failed, CREATORS);
	assert_int_equal(failed, 0);
	assert_int_equal(count_pages(f->path, &count), 0);
	assert_int_equal(count, CREATORS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_race, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
