/*
 * test_group.c - write groups across processes (libshm/group.c).
 *
 * Every test makes its group deterministically: the test process holds the
 * leader lock while child processes queue their writes (it waits until it
 * sees them queued), then lets go or leads the pass itself.  No test waits
 * on time for an outcome; timeouts only bound a broken run.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bank.h"
#include "group.h"
#include "kv.h"
#include "helpers.h"

#define WAIT_S 120   /* a bound for a broken run, never an expectation */

typedef bank_fx fx;

/* The journal's records: count, and seq order without a gap. */
static uint64_t journal_records(const fx *f, uint8_t type)
{
	char jdir[4200];
	mbj_iter *it;
	mbj_record rec;
	uint64_t n = 0, last = 0;

	snprintf(jdir, sizeof jdir, "%s/journal", f->path);
	assert_int_equal(mbj_iter_open(jdir, 0, &it), 0);
	while (mbj_iter_next(it, &rec) == 1) {
		if (last)
			assert_int_equal(rec.seq, last + 1);
		last = rec.seq;
		n += rec.type == type;
	}
	mbj_iter_close(it);
	return n;
}

/* Wait until @n slots are queued (bounded). */
static void wait_queued(mb_bank *b, size_t n)
{
	for (int i = 0; i < WAIT_S * 1000 && gq_queued(b->gq) < n; i++)
		usleep(1000);
	assert_int_equal(gq_queued(b->gq), n);
}

/* After fork(): each side keeps only its own ends of @ready (the child
 * writes it) and @go (the parent writes it), so that the parent's exit,
 * even a failed test's, ends a child waiting on go. */
static void pipes_split(int ready[2], int go[2], bool child)
{
	close(child ? ready[0] : ready[1]);
	close(child ? go[1] : go[0]);
}

/* Child: open, do write @what on page @id, exit with 0, 2 (not found) or 1. */
static pid_t writer(const fx *f, const char *what, const char *id)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		mb_bank *b = NULL;
		int rc;

		if (mb_open(f->path, NULL, &b))
			_exit(1);
		if (!strcmp(what, "put"))
			rc = mb_page_put(b, id, "{\"by\":\"child\"}", (size_t)-1);
		else if (!strcmp(what, "merge"))
			rc = mb_page_merge(b, id, "{\"merged\":true}", (size_t)-1);
		else
			rc = mb_page_delete(b, id);
		if (rc == MB_ENOTFOUND && strstr(mb_last_error(b), "not found"))
			_exit(2);
		_exit(rc ? 1 : 0);
	}
	return pid;
}

/* Eight processes' writes in one pass: each gets its own result (a delete
 * of a missing page fails alone), the others land in one append. */
static void test_one_group_many_results(void **state)
{
	fx *f = *state;
	mb_bank *b = open_bank(f->dir, MB_DURABILITY_FULL);
	gq_figures f0, f1;
	pid_t pids[8];
	char id[16];
	bool recover;

	assert_non_null(b);
	assert_int_equal(mb_page_put(b, "base", "{\"v\":1}", (size_t)-1), 0);
	gq_stats(b->gq, &f0);
	gq_lock(b->gq, &recover);
	for (int i = 0; i < 6; i++) {
		snprintf(id, sizeof id, "p%d", i);
		pids[i] = writer(f, "put", id);
	}
	pids[6] = writer(f, "delete", "missing");
	pids[7] = writer(f, "merge", "base");
	wait_queued(b, 8);
	bank_lead_pass(b);   /* the test process leads: one pass for all */
	gq_unlock(b->gq);
	for (int i = 0; i < 8; i++)
		assert_int_equal(wait_child(pids[i], WAIT_S), i == 6 ? 2 : 0);
	gq_stats(b->gq, &f1);
	assert_int_equal(f1.passes - f0.passes, 1);
	assert_int_equal(f1.records - f0.records, 7);
	assert_int_equal(f1.by_type[REC_PAGE_PUT] - f0.by_type[REC_PAGE_PUT], 6);
	assert_int_equal(f1.by_type[REC_PAGE_MERGE] - f0.by_type[REC_PAGE_MERGE], 1);
	for (int i = 0; i < 6; i++) {
		snprintf(id, sizeof id, "p%d", i);
		cJSON *p = get_page(b, id);
		assert_non_null(p);
		assert_string_equal(str_at(p, "properties", "by"), "child");
		cJSON_Delete(p);
	}
	cJSON *base = get_page(b, "base");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(base, "properties"), "merged")));
	cJSON_Delete(base);
	assert_int_equal(journal_records(f, 1 /* REC_PAGE_PUT */), 7);
	char *text = NULL;
	assert_int_equal(mb_metrics(b, &text), 0);
	assert_non_null(strstr(text, "kind=\"page_put\"} 7\n"));
	assert_non_null(strstr(text, "kind=\"page_merge\"} 1\n"));
	assert_non_null(strstr(text, "kind=\"page_delete\"} 0\n"));
	mb_free(text);
	assert_rebuild_same(b);
	mb_close(b);
}

/* A writer killed after it queued: its record is applied by the next pass
 * (whole), and its slot is clean for the next owner. */
static void test_owner_killed_while_queued(void **state)
{
	fx *f = *state;
	mb_bank *b = open_bank(f->dir, MB_DURABILITY_FAST);
	pid_t pid;
	bool recover;

	assert_non_null(b);
	gq_lock(b->gq, &recover);
	pid = writer(f, "put", "orphan");
	wait_queued(b, 1);
	kill(pid, SIGKILL);
	assert_int_equal(wait_child(pid, WAIT_S), 128 + SIGKILL);
	gq_unlock(b->gq);
	/* this handle's first write claims a slot: the dead owner's queued
	 * record is applied first, then ours */
	assert_int_equal(mb_page_put(b, "after", "{\"v\":2}", (size_t)-1), 0);
	cJSON *p = get_page(b, "orphan");
	assert_non_null(p);
	cJSON_Delete(p);
	assert_int_equal(gq_queued(b->gq), 0);
	assert_int_equal(journal_records(f, 1), 2);
	mb_close(b);
}

/* A leader killed at @where (group.c, DEATHS): the writers of its group
 * all succeed, each record is in the journal exactly once. */
static void leader_killed(fx *f, const char *where)
{
	mb_bank *b = open_bank(f->dir, MB_DURABILITY_FULL);
	int go[2], ready[2];
	pid_t leader, w[3];
	char c = 0, id[16];
	bool recover;

	assert_non_null(b);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ready), 0);
	leader = fork();
	assert_true(leader >= 0);
	if (leader == 0) {
		mb_bank *lb = NULL;

		pipes_split(ready, go, true);
		if (mb_open(f->path, NULL, &lb))
			_exit(1);
		gq_lock(lb->gq, &recover);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(1);
		setenv("MEMBANK_TEST_GROUP_DIE", where, 1);
		bank_lead_pass(lb);
		_exit(3);   /* not reached: the hook kills it */
	}
	pipes_split(ready, go, false);
	assert_int_equal(read(ready[0], &c, 1), 1);
	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof id, "w%d", i);
		w[i] = writer(f, "put", id);
	}
	wait_queued(b, 3);
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(wait_child(leader, WAIT_S), 128 + SIGKILL);
	for (int i = 0; i < 3; i++)
		assert_int_equal(wait_child(w[i], WAIT_S), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof id, "w%d", i);
		cJSON *p = get_page(b, id);
		assert_non_null(p);
		cJSON_Delete(p);
	}
	assert_int_equal(journal_records(f, 1), 3);
	assert_rebuild_same(b);
	close(go[1]), close(ready[0]);
	mb_close(b);
}

static void test_leader_killed_before_append(void **state)
{
	leader_killed(*state, "mark");
}

static void test_leader_killed_after_append(void **state)
{
	leader_killed(*state, "append");
}

/* A record too large for a slot skips the queue: its writer leads. */
static void test_large_record_bypasses_queue(void **state)
{
	fx *f = *state;
	mb_bank *b = open_bank(f->dir, MB_DURABILITY_FAST);
	size_t n = GQ_PAYLOAD_BYTES + 4096;
	char *json = malloc(n + 32);
	cJSON *p;

	assert_non_null(b);
	snprintf(json, n + 32, "{\"big\":\"%0*d\"}", (int)n, 7);
	assert_int_equal(mb_page_put(b, "big", json, (size_t)-1), 0);
	assert_int_equal(mb_page_put(b, "small", "{\"v\":1}", (size_t)-1), 0);
	p = get_page(b, "big");
	assert_int_equal(strlen(str_at(p, "properties", "big")), n);
	cJSON_Delete(p);
	assert_int_equal(journal_records(f, 1), 2);
	free(json);
	mb_close(b);
}

/* Two writes in a row whose commits fail after their records reached the
 * journal: both report the failure and neither ever takes effect (the
 * second withdrawal used to find the first one's record between the
 * store's end and its own, give up, and let it apply later). */
static void test_failed_commits_in_a_row_take_no_effect(void **state)
{
	fx *f = *state;
	mb_bank *b = open_bank(f->dir, MB_DURABILITY_FULL);
	char *s = NULL;

	assert_non_null(b);
	assert_int_equal(mb_page_put(b, "kept", "{\"v\":1}", (size_t)-1), 0);
	kv_test_fail_commits(2);
	assert_int_equal(mb_page_put(b, "lost1", "{\"v\":1}", (size_t)-1), MB_ENOSPC);
	assert_null(strstr(mb_last_error(b), "may still take effect"));
	assert_int_equal(mb_page_put(b, "lost2", "{\"v\":1}", (size_t)-1), MB_ENOSPC);
	assert_null(strstr(mb_last_error(b), "may still take effect"));
	kv_test_fail_commits(0);
	assert_int_equal(mb_page_put(b, "later", "{\"v\":1}", (size_t)-1), 0);
	assert_int_equal(mb_page_get(b, "lost1", &s, NULL), MB_ENOTFOUND);
	assert_int_equal(mb_page_get(b, "lost2", &s, NULL), MB_ENOTFOUND);
	assert_int_equal(journal_records(f, 9 /* REC_CANCELLED */), 2);
	assert_int_equal(journal_records(f, 1), 2);
	assert_rebuild_same(b);
	mb_close(b);
}

/* A slot above `claimed` (group.c, STATE), as a handle of the release
 * before leaves it: scans do not see it, and its owner, woken by its wait's
 * bound instead of by a leader, leads its record itself. */
static void test_slot_above_claimed(void **state)
{
	fx *f = *state;
	mb_bank *b = open_bank(f->dir, MB_DURABILITY_FAST);
	char path[4200];
	uint32_t *claimed;
	bool recover;
	void *map;
	pid_t pid;
	int fd;

	if (!b) {
		fail();
		return;
	}
	assert_int_equal(mb_page_put(b, "mine", "{}", 2), 0);   /* owns slot 0 */
	snprintf(path, sizeof path, "%s/store/group.shm", f->path);
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	claimed = (uint32_t *)((char *)map + GQ_CLAIMED_OFFSET);
	assert_int_equal(__atomic_load_n(claimed, __ATOMIC_SEQ_CST), 1);
	gq_lock(b->gq, &recover);
	pid = writer(f, "put", "older");                         /* slot 1 */
	wait_queued(b, 1);
	assert_int_equal(__atomic_load_n(claimed, __ATOMIC_SEQ_CST), 2);
	__atomic_store_n(claimed, 1, __ATOMIC_SEQ_CST);          /* as the old release */
	assert_int_equal(gq_queued(b->gq), 0);                   /* not scanned */
	gq_unlock(b->gq);                                        /* wakes nobody */
	assert_int_equal(wait_child(pid, WAIT_S), 0);
	cJSON *p = get_page(b, "older");
	assert_non_null(p);
	cJSON_Delete(p);
	assert_int_equal(mb_page_put(b, "mine2", "{}", 2), 0);
	assert_int_equal(journal_records(f, 1 /* REC_PAGE_PUT */), 3);
	munmap(map, 4096);
	close(fd);
	mb_close(b);
}

/* More handles than slots: the handles without one lead their own writes
 * (a claim that finds every slot owned is retried only now and then). */
static void test_more_handles_than_slots(void **state)
{
	fx *f = *state;
	enum { N = GQ_SLOTS + 6 };
	mb_bank *h[N];
	char id[16];
	uint64_t count = 0;

	for (int i = 0; i < N; i++) {
		h[i] = open_bank(f->dir, MB_DURABILITY_FAST);
		assert_non_null(h[i]);
	}
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < N; i++) {
			snprintf(id, sizeof id, "h%d-%d", i, round);
			assert_int_equal(mb_page_put(h[i], id, "{\"v\":1}", (size_t)-1), 0);
		}
	assert_int_equal(mb_page_count(h[0], &count), 0);
	assert_int_equal(count, 3 * N);
	assert_int_equal(journal_records(f, 1), 3 * N);
	for (int i = N - 1; i >= 0; i--)
		mb_close(h[i]);
}

/* A record that is not of its type's shape is refused alone, never
 * journaled, and the writes around it go on. */
static void test_malformed_record_refused_alone(void **state)
{
	fx *f = *state;
	mb_bank *b = open_bank(f->dir, MB_DURABILITY_FAST);
	mb_buf bad = { 0 };

	assert_non_null(b);
	buf_add(&bad, "\x92\xa1x\x01", 4);   /* ["x", 1]: properties not a map */
	assert_int_equal(bank_write(b, REC_PAGE_PUT, &bad), MB_EINVAL);
	assert_non_null(strstr(mb_last_error(b), "not of its type's shape"));
	assert_int_equal(bank_write(b, REC_CANCELLED, &bad), MB_EINVAL);
	buf_free(&bad);
	assert_int_equal(mb_page_put(b, "fine", "{\"v\":1}", (size_t)-1), 0);
	assert_int_equal(journal_records(f, 1), 1);
	assert_int_equal(journal_records(f, 9), 0);
	mb_close(b);
}

/* Write a 32-bit @v at @off of the bank's file @name (a state of another
 * version: both states keep their version at offset 8, after the magic);
 * the value there before, or ~0u when @v is ~0u (read only). */
static uint32_t state_word(const fx *f, const char *name, off_t off, uint32_t v)
{
	char path[4200];
	uint32_t old = 0;
	int fd;

	snprintf(path, sizeof path, "%s/%s", f->path, name);
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &old, 4, off), 4);
	if (v != ~0u)
		assert_int_equal(pwrite(fd, &v, 4, off), 4);
	close(fd);
	return old;
}

/* The only segment's mtime set far back (so a rewrite is seen), or read. */
static time_t segment_mtime(const fx *f, bool set_back)
{
	char path[4200];
	struct stat st;

	snprintf(path, sizeof path, "%s/journal/%020llu.jnl", f->path, 1ull);
	if (set_back) {
		struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
		assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
	}
	assert_int_equal(stat(path, &st), 0);
	return st.st_mtim.tv_sec;
}

/* States (group.shm, sync.shm) of another release, left this boot by
 * processes that are gone: the next open initialises them again instead of
 * refusing until a reboot; the journal's segments are written again first
 * (that release's fdatasync may have failed unseen), and nothing is lost. */
static void test_other_version_unused_taken_over(void **state)
{
	fx *f = *state;
	mb_bank *b = open_bank(f->dir, MB_DURABILITY_FULL);
	uint32_t gv, sv;

	assert_non_null(b);
	assert_int_equal(mb_page_put(b, "before", "{\"v\":1}", (size_t)-1), 0);
	mb_close(b);
	gv = state_word(f, "store/group.shm", 8, 99);
	sv = state_word(f, "journal/sync.shm", 8, 77);
	assert_int_equal(segment_mtime(f, true), 1000000000);
	b = open_bank(f->dir, MB_DURABILITY_FULL);
	assert_non_null(b);
	assert_int_equal(state_word(f, "store/group.shm", 8, ~0u), gv);
	assert_int_equal(state_word(f, "journal/sync.shm", 8, ~0u), sv);
	assert_true(segment_mtime(f, false) > 1000000000);     /* rewritten */
	assert_int_equal(mb_page_put(b, "after", "{\"v\":2}", (size_t)-1), 0);
	cJSON *p = get_page(b, "before");
	assert_non_null(p);
	cJSON_Delete(p);
	mb_close(b);
	assert_int_equal(journal_records(f, 1 /* REC_PAGE_PUT */), 2);
}

/* The same states while a process has the bank open: refused, with a
 * message that names the file and says what to do, and left as they are. */
static void test_other_version_in_use_refused(void **state)
{
	fx *f = *state;
	static const char *files[] = { "store/group.shm", "journal/sync.shm" };
	int ready[2], go[2];
	mb_bank *b = open_bank(f->dir, MB_DURABILITY_FAST);
	char c = 0;
	pid_t pid;

	assert_non_null(b);
	mb_close(b);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		mb_bank *h = NULL;
		int rc;

		pipes_split(ready, go, true);
		rc = mb_open(f->path, NULL, &h);
		if (write(ready[1], rc ? "n" : "y", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(3);
		mb_close(h);
		_exit(rc ? 1 : 0);
	}
	pipes_split(ready, go, false);
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	for (int i = 0; i < 2; i++) {
		uint32_t was = state_word(f, files[i], 8, 99);

		b = NULL;
		assert_int_equal(mb_open(f->path, NULL, &b), MB_EVERSION);
		assert_null(b);
		assert_non_null(strstr(mb_last_error(NULL), strrchr(files[i], '/') + 1));
		assert_non_null(strstr(mb_last_error(NULL), "another version (99)"));
		assert_non_null(strstr(mb_last_error(NULL), "close the processes"));
		assert_int_equal(state_word(f, files[i], 8, was), 99);   /* untouched */
	}
	assert_int_equal(write(go[1], "x", 1), 1);
	assert_int_equal(wait_child(pid, WAIT_S), 0);
	b = open_bank(f->dir, MB_DURABILITY_FAST);
	assert_non_null(b);
	assert_int_equal(mb_page_put(b, "p", "{}", 2), 0);
	mb_close(b);
	close(ready[0]);
	close(go[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_one_group_many_results, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_owner_killed_while_queued, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_leader_killed_before_append, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_leader_killed_after_append, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_large_record_bypasses_queue, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_failed_commits_in_a_row_take_no_effect, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_slot_above_claimed, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_more_handles_than_slots, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_malformed_record_refused_alone, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_other_version_unused_taken_over, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_other_version_in_use_refused, fx_setup,
		                                fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
