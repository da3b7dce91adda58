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
#include <pthread.h>
#include <sys/resource.h>

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

#define THREADS 16

typedef struct opener {
	const char *path;
	pthread_barrier_t *start;
	int i, rc;
	char msg[512];
} opener;

static void *open_and_put(void *arg)
{
	opener *o = arg;
	char id[16];
	mb_bank *b = NULL;

	pthread_barrier_wait(o->start);
	snprintf(id, sizeof id, "t%02d", o->i);
	if ((o->rc = mb_open(o->path, NULL, &b)) || (o->rc = mb_page_put(b, id, "{}", 2)))
		snprintf(o->msg, sizeof o->msg, "%s", b ? mb_last_error(b) : mb_last_error(NULL));
	mb_close(b);
	return NULL;
}

/* The same race between threads of one process (record locks do not
 * exclude them: the open lock's mutex does), five rounds. */
static void test_create_race_threads(void **state)
{
	fx *f = *state;
	pthread_barrier_t start;
	pthread_t th[THREADS];
	opener o[THREADS];
	uint64_t count = 0;

	for (int round = 0; round < 5; round++) {
		rm_rf(f->path);
		pthread_barrier_init(&start, NULL, THREADS);
		for (int i = 0; i < THREADS; i++) {
			o[i] = (opener){ .path = f->path, .start = &start, .i = i };
			assert_int_equal(pthread_create(&th[i], NULL, open_and_put, &o[i]), 0);
		}
		for (int i = 0; i < THREADS; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&start);
		for (int i = 0; i < THREADS; i++)
			if (o[i].rc)
				fail_msg("thread %d: %s: %s", i, mb_errname(o[i].rc), o[i].msg);
		assert_int_equal(count_pages(f->path, &count), 0);
		assert_int_equal(count, THREADS);
	}
}

/* ------------------------------------------------------------- restore */

/* A bank at <dir>/src with pages new0..new2, snapshot into <dir>/snap. */
static void make_snap(const fx *f, char *snap, size_t cap)
{
	char src[4096];
	mb_bank *b;

	snprintf(src, sizeof src, "%s/src", f->dir);
	snprintf(snap, cap, "%s/snap", f->dir);
	if (!access(snap, F_OK))
		return;
	assert_int_equal(mkdir(snap, 0700), 0);
	assert_non_null(b = open_opts(src, MB_DURABILITY_FAST, 0, 0));
	for (int i = 0; i < 3; i++) {
		char id[16];
		snprintf(id, sizeof id, "new%d", i);
		assert_int_equal(mb_page_put(b, id, "{\"v\":2}", (size_t)-1), 0);
	}
	assert_int_equal(mb_snapshot(b, snap, NULL), 0);
	mb_close(b);
}

/* The bank at f->path with pages old0..old2 (fresh). */
static void make_old(const fx *f)
{
	mb_bank *b;

	rm_rf(f->path);
	assert_non_null(b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0));
	for (int i = 0; i < 3; i++) {
		char id[16];
		snprintf(id, sizeof id, "old%d", i);
		assert_int_equal(mb_page_put(b, id, "{\"v\":1}", (size_t)-1), 0);
	}
	mb_close(b);
}

static bool has_page(mb_bank *b, const char *id)
{
	char *s = NULL;
	int rc = mb_page_get(b, id, &s, NULL);

	mb_free(s);
	return rc == 0;
}

/* A child restoring @snap over @path (forced), stopped at @step (0: never).
 * Returns once the child is stopped there (or running, for step 0). */
static pid_t start_restore(const char *snap, const char *path, int step)
{
	char at[16];
	int status;
	pid_t pid;

	fflush(NULL);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		int rc;
		snprintf(at, sizeof at, "%d", step);
		setenv("MEMBANK_TEST_RESTORE_STOP", at, 1);
		rc = mb_restore(snap, path, NULL, MB_RESTORE_FORCE);
		if (rc)
			printf("restore: %s: %s\n", mb_errname(rc), mb_last_error(NULL));
		fflush(NULL);
		_exit(rc ? 1 : 0);
	}
	if (!step)
		return pid;
	for (int i = 0; i < 12000; i++) {  /* two minutes */
		pid_t r = waitpid(pid, &status, WNOHANG | WUNTRACED);
		if (r == pid && WIFSTOPPED(status))
			return pid;
		assert_int_equal(r, 0);  /* exited before the step: a failure */
		usleep(10000);
	}
	fail_msg("the restore never reached step %d", step);
	return -1;
}

/* No aside directory beside the bank, no restore mark in it. */
static void assert_no_leftovers(const fx *f)
{
	char mark[4096];
	struct dirent *e;
	DIR *d = opendir(f->dir);

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".restore-") || strstr(e->d_name, ".old-"))
			fail_msg("left behind: %s/%s", f->dir, e->d_name);
	closedir(d);
	snprintf(mark, sizeof mark, "%s/restore.pending", f->path);
	assert_int_equal(access(mark, F_OK), -1);
}

/* kill -9 at every step of a restore, over a bank and onto a fresh path:
 * the next open finds the old bank or the new one whole (the old one up to
 * the swap, the new one from it), removes what the restore left, and
 * writes; a restore after a kill completes and leaves nothing either. */
static void test_restore_killed_at_each_step(void **state)
{
	fx *f = *state;
	char snap[4096];

	make_snap(f, snap, sizeof snap);
	for (int fresh = 0; fresh < 2; fresh++) {
		for (int step = 1; step <= 5; step++) {
			mb_bank *b;
			pid_t pid;
			bool swapped = step >= 4;

			if (fresh)
				rm_rf(f->path);
			else
				make_old(f);
			pid = start_restore(snap, f->path, step);
			kill(pid, SIGKILL);
			assert_int_equal(wait_child(pid, 60), 128 + SIGKILL);
			assert_non_null(b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0));
			printf("killed at step %d (%s): new pages %s, old pages %s\n", step,
			       fresh ? "fresh path" : "over a bank",
			       has_page(b, "new1") ? "present" : "absent",
			       has_page(b, "old1") ? "present" : "absent");
			assert_int_equal(has_page(b, "new0") && has_page(b, "new2"), swapped);
			assert_int_equal(has_page(b, "old0") && has_page(b, "old2"),
			                 !swapped && !fresh);
			assert_int_equal(mb_page_put(b, "after", "{}", 2), 0);
			mb_close(b);
			assert_no_leftovers(f);
		}
	}
	/* killed before the swap, then restored again: the second restore
	 * cleans up and completes */
	make_old(f);
	pid_t pid = start_restore(snap, f->path, 3);
	kill(pid, SIGKILL);
	assert_int_equal(wait_child(pid, 60), 128 + SIGKILL);
	assert_int_equal(mb_restore(snap, f->path, NULL, MB_RESTORE_FORCE), 0);
	assert_no_leftovers(f);
}

/* A restore's first checkpoint is a copy of the files it loaded: a file
 * changed between the load and the copy fails the restore (the store holds
 * the old bytes, the copy the new) and leaves nothing.  Before, the restore
 * succeeded with a store and a checkpoint that disagreed. */
static void test_restore_source_changed(void **state)
{
	fx *f = *state;
	char snap[4096], pages[4200], *text, *at;
	size_t len = 0;

	make_snap(f, snap, sizeof snap);
	rm_rf(f->path);
	snprintf(pages, sizeof pages, "%s/notion_pages.json", snap);
	assert_non_null(text = slurp(pages, &len));
	assert_non_null(at = strstr(text, "{\"v\":2}"));
	pid_t pid = start_restore(snap, f->path, 6);  /* loaded, not checkpointed */
	at[5] = '3';  /* the same size: only the digest can tell */
	assert_int_equal(spit(pages, text, len), 0);
	kill(pid, SIGCONT);
	assert_int_equal(wait_child(pid, 60), 1);
	assert_int_equal(access(f->path, F_OK), -1);
	assert_no_leftovers(f);
	/* the file as it is now restores */
	assert_int_equal(mb_restore(snap, f->path, NULL, 0), 0);
	at[5] = '2';
	assert_int_equal(spit(pages, text, len), 0);
	free(text);
}

#define WAITERS 8

/* Processes that open the bank while a restore runs wait for it, then
 * write into the new bank: every acknowledged put is there afterwards
 * (30 of 32 were lost when the restore checked for users only once). */
static void test_restore_excludes_openers(void **state)
{
	fx *f = *state;
	char snap[4096];
	pid_t rpid, pids[WAITERS];
	uint64_t count = 0;
	mb_bank *b;

	make_snap(f, snap, sizeof snap);
	make_old(f);
	rpid = start_restore(snap, f->path, 2);  /* built aside, not swapped */
	fflush(NULL);
	for (int i = 0; i < WAITERS; i++) {
		assert_true((pids[i] = fork()) >= 0);
		if (pids[i] == 0) {
			char id[16];
			mb_bank *w = NULL;
			int rc;

			snprintf(id, sizeof id, "w%d", i);
			if ((rc = mb_open(f->path, NULL, &w)) || (rc = mb_page_put(w, id, "{}", 2))) {
				printf("writer %d: %s: %s\n", i, mb_errname(rc),
				       w ? mb_last_error(w) : mb_last_error(NULL));
				fflush(NULL);
				_exit(1);
			}
			mb_close(w);
			_exit(0);
		}
	}
	/* while the restore is stopped, no writer gets through mb_open */
	for (int t = 0; t < 100; t++) {
		for (int i = 0; i < WAITERS; i++) {
			int status;
			if (waitpid(pids[i], &status, WNOHANG) == pids[i])
				fail_msg("writer %d finished while the restore held the bank", i);
		}
		usleep(10000);
	}
	kill(rpid, SIGCONT);
	assert_int_equal(wait_child(rpid, 120), 0);
	for (int i = 0; i < WAITERS; i++)
		assert_int_equal(wait_child(pids[i], 120), 0);
	assert_non_null(b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0));
	for (int i = 0; i < WAITERS; i++) {
		char id[16];
		snprintf(id, sizeof id, "w%d", i);
		if (!has_page(b, id))
			fail_msg("put %s was acknowledged during the restore and is gone", id);
	}
	assert_true(has_page(b, "new1"));
	assert_false(has_page(b, "old1"));
	assert_int_equal(mb_page_count(b, &count), 0);
	assert_int_equal(count, 3 + WAITERS);
	mb_close(b);
	assert_no_leftovers(f);
}

/* A handle whose bank was replaced anyway (here: its process lost LMDB's
 * lock on lock.mdb by closing another descriptor of that file, so the
 * restore could not see it) fails every read and write with MB_ERESTORED
 * instead of reading the deleted bank or writing into the new one. */
static void test_restored_handle_notices(void **state)
{
	fx *f = *state;
	char snap[4096], lock[4096], *s = NULL;
	uint64_t n = 0;
	mb_bank *b, *c;
	int fd, rc;

	make_snap(f, snap, sizeof snap);
	make_old(f);
	assert_non_null(b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0));
	assert_true(has_page(b, "old0"));
	snprintf(lock, sizeof lock, "%s/store/lock.mdb", f->path);
	assert_true((fd = open(lock, O_RDWR)) >= 0);
	close(fd);  /* drops every record lock this process had on the file */
	pid_t pid = start_restore(snap, f->path, 0);
	assert_int_equal(wait_child(pid, 120), 0);
	rc = mb_page_get(b, "old0", &s, NULL);
	printf("page get on the replaced bank: %s: %s\n", mb_errname(rc), mb_last_error(b));
	assert_int_equal(rc, MB_ERESTORED);
	assert_non_null(strstr(mb_last_error(b), "restored"));
	assert_int_equal(mb_page_put(b, "lost", "{}", 2), MB_ERESTORED);
	assert_int_equal(mb_page_count(b, &n), MB_ERESTORED);
	assert_int_equal(mb_sync_record(b, "success", NULL), MB_ERESTORED);
	assert_string_equal(mb_errname(MB_ERESTORED), "MB_ERESTORED");
	mb_close(b);
	assert_non_null(c = open_opts(f->path, MB_DURABILITY_FULL, 0, 0));
	assert_true(has_page(c, "new0"));
	assert_false(has_page(c, "lost"));
	assert_int_equal(mb_page_put(c, "next", "{}", 2), 0);
	mb_close(c);
}

/* This process's own handles are refused (a record lock cannot show them,
 * and probing would drop LMDB's lock), and keep working. */
static void test_restore_refuses_own_handles(void **state)
{
	fx *f = *state;
	char snap[4096];
	mb_bank *b;
	int rc;

	make_snap(f, snap, sizeof snap);
	make_old(f);
	assert_non_null(b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0));
	rc = mb_restore(snap, f->path, NULL, MB_RESTORE_FORCE);
	printf("restore over a bank this process has open: %s: %s\n", mb_errname(rc),
	       mb_last_error(NULL));
	assert_int_equal(rc, MB_EPERM);
	assert_non_null(strstr(mb_last_error(NULL), "this process has the bank open"));
	assert_true(has_page(b, "old0"));
	assert_int_equal(mb_page_put(b, "more", "{}", 2), 0);
	mb_close(b);
	assert_no_leftovers(f);
	assert_int_equal(mb_restore(snap, f->path, NULL, MB_RESTORE_FORCE), 0);
}

/* A forced restore onto a directory that is not a bank refuses it and
 * leaves it as it was (it used to be deleted). */
static void test_restore_refuses_foreign_dir(void **state)
{
	fx *f = *state;
	char snap[4096], p[4096];
	int rc;

	make_snap(f, snap, sizeof snap);
	assert_int_equal(mkdir(f->path, 0700), 0);
	snprintf(p, sizeof p, "%s/precious.txt", f->path);
	assert_int_equal(spit(p, "keep me", 7), 0);
	rc = mb_restore(snap, f->path, NULL, MB_RESTORE_FORCE);
	printf("forced restore onto a directory that is not a bank: %s: %s\n", mb_errname(rc),
	       mb_last_error(NULL));
	assert_int_equal(rc, MB_ENOTBANK);
	assert_int_equal(access(p, F_OK), 0);
	snprintf(p, sizeof p, "%s/open.lock", f->path);
	assert_int_equal(access(p, F_OK), -1);
	assert_no_leftovers(f);
}

/* A creator or a restore killed while writing membank.json or
 * restore.pending leaves its temp file in a directory that is not a bank
 * yet: the next open still creates the bank (and removes the temp files),
 * and a restore onto such a directory still works. */
static void test_crashed_creator_leftovers(void **state)
{
	fx *f = *state;
	static const char *const temps[] = { ".membank.json.tmp.123.456",
	                                     ".restore.pending.tmp.123.456" };
	char snap[4096], p[4096];
	mb_bank *b;

	make_snap(f, snap, sizeof snap);
	for (int restore = 0; restore < 2; restore++) {
		rm_rf(f->path);
		assert_int_equal(mkdir(f->path, 0700), 0);
		for (int i = 0; i < 2; i++) {
			snprintf(p, sizeof p, "%s/%s", f->path, temps[i]);
			assert_int_equal(spit(p, "{", 1), 0);
		}
		snprintf(p, sizeof p, "%s/open.lock", f->path);
		assert_int_equal(spit(p, "", 0), 0);
		if (restore) {
			assert_int_equal(mb_restore(snap, f->path, NULL, 0), 0);
			assert_non_null(b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0));
			assert_true(has_page(b, "new0"));
		} else {
			assert_non_null(b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0));
			assert_int_equal(mb_page_put(b, "x", "{}", 2), 0);
			for (int i = 0; i < 2; i++) {
				snprintf(p, sizeof p, "%s/%s", f->path, temps[i]);
				assert_int_equal(access(p, F_OK), -1);
			}
		}
		mb_close(b);
		assert_no_leftovers(f);
	}
}

/* journal repair cuts and moves segments that running writers append to:
 * it is refused while a process (another, or this one) has the bank open,
 * and works once they are closed. */
static void test_repair_refuses_open_bank(void **state)
{
	fx *f = *state;
	int ready[2], rc;
	char c = 0, *report = NULL;
	mb_bank *b;
	pid_t pid;
	gate g;

	make_old(f);
	gate_init(&g);
	assert_int_equal(pipe(ready), 0);
	fflush(NULL);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		mb_bank *cb = NULL;
		int ok = !mb_open(f->path, NULL, &cb);
		close(ready[0]);
		if (write(ready[1], &c, 1) != 1)
			_exit(2);
		gate_wait(&g);
		mb_close(cb);
		_exit(ok ? 0 : 1);
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	rc = mb_journal_repair(f->path, &report);
	printf("repair while another process has the bank open: %s: %s\n", mb_errname(rc),
	       mb_last_error(NULL));
	assert_int_equal(rc, MB_EPERM);
	assert_non_null(strstr(mb_last_error(NULL), "another process"));
	gate_open(&g);
	assert_int_equal(wait_child(pid, 60), 0);
	assert_non_null(b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0));
	assert_int_equal(mb_journal_repair(f->path, &report), MB_EPERM);
	assert_non_null(strstr(mb_last_error(NULL), "this process has the bank open"));
	assert_true(has_page(b, "old1"));
	mb_close(b);
	assert_int_equal(mb_journal_repair(f->path, &report), 0);
	assert_non_null(report);
	mb_free(report);
}

/* ------------------------------------------- out of file descriptors */

static int fds_in_use(void)
{
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	int n = -1;  /* the directory's own descriptor */

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* A failure for lack of descriptors is MB_EIO with the system's words
 * (strerror(EMFILE)), not a bare "input/output error" nor MB_EINTERNAL. */
static bool says_emfile(int rc, const char *msg, const char *what, int limit)
{
	if (!rc)
		return true;
	printf("  limit %d: %s: %s: %s\n", limit, what, mb_errname(rc), msg);
	return strstr(msg, strerror(EMFILE)) != NULL && rc == MB_EIO;
}

/* Open, read, write, snapshot and restore with 0..24 descriptors to spare:
 * whatever fails names the cause. */
static void test_out_of_descriptors(void **state)
{
	fx *f = *state;
	char snap[4096], other[4096];
	int base = fds_in_use();

	make_snap(f, snap, sizeof snap);
	make_old(f);
	snprintf(other, sizeof other, "%s/restored", f->dir);
	for (int spare = 0; spare <= 24; spare++) {
		pid_t pid;

		fflush(NULL);
		assert_true((pid = fork()) >= 0);
		if (pid == 0) {
			struct rlimit rl = { (rlim_t)(base + spare), (rlim_t)(base + spare) };
			mb_bank *b = NULL;
			char *s = NULL;
			int rc, lim = base + spare;
			bool ok = true;

			setrlimit(RLIMIT_NOFILE, &rl);
			rc = mb_open(f->path, NULL, &b);
			ok &= says_emfile(rc, mb_last_error(NULL), "open", lim);
			if (!rc) {
				rc = mb_page_get(b, "old1", &s, NULL);
				ok &= says_emfile(rc, mb_last_error(b), "page get", lim);
				mb_free(s);
				rc = mb_page_put(b, "x", "{}", 2);
				ok &= says_emfile(rc, mb_last_error(b), "page put", lim);
				rc = mb_snapshot(b, NULL, NULL);
				ok &= says_emfile(rc, mb_last_error(b), "snapshot", lim);
				mb_close(b);
			}
			rc = mb_restore(snap, other, NULL, MB_RESTORE_FORCE);
			ok &= says_emfile(rc, mb_last_error(NULL), "restore", lim);
			fflush(NULL);
			_exit(ok ? 0 : 1);
		}
		if (wait_child(pid, 120) != 0)
			fail_msg("with %d descriptors to spare a failure did not name its cause", spare);
	}
	/* a checkpoint that could not be read for want of descriptors is not
	 * damage: none was passed over and set aside */
	for (int i = 0; i < 2; i++) {
		char dir[4200];
		struct dirent *e;
		DIR *d;
		snprintf(dir, sizeof dir, "%s/checkpoint", i ? other : f->path);
		if (!(d = opendir(dir)))
			continue;
		while ((e = readdir(d)))
			if (strstr(e->d_name, ".damaged"))
				fail_msg("%s/%s: a readable checkpoint was set aside as damaged", dir, e->d_name);
		closedir(d);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_race, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_create_race_threads, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_restore_killed_at_each_step, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_restore_source_changed, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_restore_excludes_openers, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_restored_handle_notices, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_restore_refuses_own_handles, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_restore_refuses_foreign_dir, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_crashed_creator_leftovers, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_repair_refuses_open_bank, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_out_of_descriptors, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
