/*
 * test_faults.c - write and sync failures injected through mbj_io at every
 * call site in turn: a clear error, nothing half-appended accepted, and
 * after a failed fdatasync MBJ_EFATAL until a reopen.
 *
 * The mbj_io hooks take no context argument, so the fault plan is a file
 * static of this test program (tests may keep global state; the library
 * may not).
 */
#include <sys/wait.h>

#include "jtest.h"

enum { F_NONE, F_ENOSPC, F_EIO, F_SHORT, F_SHORT_THEN_EIO };

static struct {
	int mode;
	int pw_fail_at, pw_calls;   /* fail the n-th pwrite (1-based) */
	int fs_fail_at, fs_calls;   /* fail the n-th fdatasync */
	int tr_calls;
} F;

static ssize_t f_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	F.pw_calls++;
	if (F.pw_fail_at && F.pw_calls > F.pw_fail_at &&
	    F.mode == F_SHORT_THEN_EIO) {
		errno = EIO;
		return -1;
	}
	if (F.pw_calls != F.pw_fail_at)
		return pwrite(fd, buf, n, off);
	switch (F.mode) {
	case F_ENOSPC:
		errno = ENOSPC;
		return -1;
	case F_EIO:
		errno = EIO;
		return -1;
	default:
		if (n < 2) {
			errno = ENOSPC;
			return -1;
		}
		return pwrite(fd, buf, n / 2, off);
	}
}

static int f_fdatasync(int fd)
{
	F.fs_calls++;
	if (F.fs_calls == F.fs_fail_at) {
		errno = EIO;
		return -1;
	}
	return fdatasync(fd);
}

static int f_ftruncate(int fd, off_t len)
{
	F.tr_calls++;
	return ftruncate(fd, len);
}

static const mbj_io fault_io = { f_pwrite, f_fdatasync, f_ftruncate };

#define NREC 150
#define BIG 1000   /* payload bytes: 64 records per 64 KiB segment */

static void big_payload(uint64_t seq, uint8_t *buf)
{
	for (int i = 0; i < BIG; i++)
		buf[i] = (uint8_t)(seq * 11 + (uint64_t)i);
}

static int append_big(mbj_log *log, mbj_pos *end)
{
	uint8_t buf[BIG];
	mbj_record rec;
	int r = mbj_next_at(log, end, &rec);
	if (r != 0)
		return r < 0 ? r : -100;
	big_payload(end->seq + 1, buf);
	return mbj_append(log, end, 1, 0, buf, BIG, end);
}

static uint64_t read_big(const char *jdir)
{
	mbj_iter *it;
	mbj_record rec;
	uint8_t buf[BIG];
	uint64_t n = 0;
	int r;

	assert_int_equal(mbj_iter_open(jdir, 0, &it), 0);
	while ((r = mbj_iter_next(it, &rec)) == 1) {
		assert_int_equal(rec.seq, ++n);
		big_payload(rec.seq, buf);
		assert_int_equal(rec.len, BIG);
		assert_memory_equal(rec.payload, buf, BIG);
	}
	assert_int_equal(r, 0);
	mbj_iter_close(it);
	return n;
}

/* Run NREC appends (each synced when @sync) under the current plan.
 * Returns the number that succeeded; *rc the first failure (0: none). */
static uint64_t run_plan(const char *jdir, bool sync, int *rc, mbj_pos *end)
{
	mbj_options o = { .segment_bytes = JT_SMALL_SEG, .io = &fault_io };
	mbj_log *log;
	uint64_t good = 0;

	*end = (mbj_pos){ 0, 0, 0 };
	*rc = mbj_open(jdir, &o, &log);
	assert_int_equal(*rc, 0);
	for (int i = 0; i < NREC && *rc == 0; i++) {
		*rc = append_big(log, end);
		if (*rc == 0)
			good++;
		if (*rc == 0 && sync)
			*rc = mbj_sync(log, end->seq);
	}
	if (*rc)
		assert_true(strlen(mbj_errmsg(log)) > 0);
	mbj_close(log);
	return good;
}

/* Nothing half-appended is accepted, and the journal goes on. */
static void check_after(const char *jdir, uint64_t good, mbj_pos end)
{
	mbj_log *log;
	mbj_record rec;

	memset(&F, 0, sizeof(F));
	assert_int_equal(read_big(jdir), good);
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	assert_int_equal(mbj_next_at(log, &end, &rec), 0);
	assert_int_equal(append_big(log, &end), 0);
	assert_int_equal(mbj_sync(log, end.seq), 0);
	mbj_close(log);
	assert_int_equal(read_big(jdir), good + 1);
	mbj_report rep;
	assert_int_equal(mbj_verify(jdir, &rep), 0);
}

static void pwrite_faults(int mode, int expect)
{
	char base[64], jdir[80];
	mbj_pos end;
	int rc;

	memset(&F, 0, sizeof(F));
	jt_mkdir(base, jdir);
	run_plan(jdir, false, &rc, &end);
	assert_int_equal(rc, 0);
	jt_rm_rf(base);
	int total = F.pw_calls;
	assert_true(total > NREC);   /* records + headers + zero-fills */
	for (int k = 1; k <= total; k++) {
		memset(&F, 0, sizeof(F));
		F.mode = mode;
		F.pw_fail_at = k;
		jt_mkdir(base, jdir);
		uint64_t good = run_plan(jdir, false, &rc, &end);
		assert_int_equal(rc, expect);
		check_after(jdir, good, end);
		jt_rm_rf(base);
	}
}

static void test_pwrite_enospc_each_site(void **state)
{
	(void)state;
	pwrite_faults(F_ENOSPC, MBJ_ENOSPC);
}

static void test_pwrite_eio_each_site(void **state)
{
	(void)state;
	pwrite_faults(F_EIO, MBJ_EIO);
}

static void test_pwrite_short_each_site(void **state)
{
	(void)state;
	pwrite_faults(F_SHORT, MBJ_ENOSPC);
}

static void test_short_write_zero_back_fails(void **state)
{
	(void)state;
	pwrite_faults(F_SHORT_THEN_EIO, MBJ_ENOSPC);
}

static void test_fdatasync_eio_each_site(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_pos end;
	int rc;

	memset(&F, 0, sizeof(F));
	jt_mkdir(base, jdir);
	run_plan(jdir, true, &rc, &end);
	assert_int_equal(rc, 0);
	jt_rm_rf(base);
	int total = F.fs_calls;
	assert_true(total > 3);
	for (int k = 1; k <= total; k++) {
		memset(&F, 0, sizeof(F));
		F.fs_fail_at = k;
		jt_mkdir(base, jdir);
		/* a handle opened before the failure, in the same journal */
		mbj_log *other, *log;
		assert_int_equal(mbj_open(jdir, NULL, &other), 0);
		mbj_options o = { .segment_bytes = JT_SMALL_SEG, .io = &fault_io };
		assert_int_equal(mbj_open(jdir, &o, &log), 0);
		mbj_pos e = { 0, 0, 0 };
		uint64_t good = 0;
		rc = 0;
		for (int i = 0; i < NREC && rc == 0; i++) {
			rc = append_big(log, &e);
			good += rc == 0;
			if (rc == 0)
				rc = mbj_sync(log, e.seq);
		}
		assert_int_equal(rc, MBJ_EFATAL);
		/* from then on: refused, here and in the other handle */
		mbj_pos e2 = e;
		assert_int_equal(append_big(log, &e2), MBJ_EFATAL);
		assert_int_equal(mbj_sync(log, e.seq), MBJ_EFATAL);
		assert_int_equal(mbj_sync(other, e.seq), MBJ_EFATAL);
		assert_int_equal(append_big(other, &e2), MBJ_EFATAL);
		mbj_close(log);
		mbj_close(other);
		/* a reopen re-syncs everything and clears the failure */
		check_after(jdir, good, e);
		jt_rm_rf(base);
	}
}

static void test_ftruncate_used_when_zeroing_fails(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_pos end;
	int rc;

	memset(&F, 0, sizeof(F));
	F.mode = F_SHORT_THEN_EIO;
	F.pw_fail_at = 20;   /* a record write, well after the first fill */
	jt_mkdir(base, jdir);
	uint64_t good = run_plan(jdir, false, &rc, &end);
	assert_int_equal(rc, MBJ_ENOSPC);
	assert_int_equal(F.tr_calls, 1);
	check_after(jdir, good, end);
	jt_rm_rf(base);
}

/* The cut of a torn tail in mbj_next_at writes zeros: a failure there is
 * reported and cuts nothing; the next try does. */
static void test_cut_failure_in_next_at(void **state)
{
	(void)state;
	char base[64], jdir[80], path[128];
	mbj_pos ends[4];
	mbj_record rec;

	jt_mkdir(base, jdir);
	jt_build(jdir, JT_SMALL_SEG, 4, ends);
	jt_path(path, jdir, 1);
	int fd = open(path, O_RDWR);
	assert_int_equal(pwrite(fd, "\x30torn", 5, (off_t)ends[3].offset), 5);
	close(fd);
	for (int mode = F_ENOSPC; mode <= F_EIO; mode++) {
		memset(&F, 0, sizeof(F));
		F.mode = mode;
		F.pw_fail_at = 1;
		mbj_options o = { .io = &fault_io };
		mbj_log *log;
		mbj_pos end = ends[3];
		assert_int_equal(mbj_open(jdir, &o, &log), 0);
		assert_int_equal(mbj_next_at(log, &end, &rec),
		                 mode == F_ENOSPC ? MBJ_ENOSPC : MBJ_EIO);
		assert_non_null(strstr(mbj_errmsg(log), "zeroing"));
		mbj_close(log);
		mbj_report rep;
		assert_int_equal(mbj_verify(jdir, &rep), 0);
		assert_true(rep.torn_tail);
	}
	memset(&F, 0, sizeof(F));
	mbj_log *log;
	mbj_pos end = ends[3];
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	assert_int_equal(mbj_next_at(log, &end, &rec), 0);
	assert_int_equal(jt_append(log, &end), 0);
	mbj_close(log);
	mbj_report rep;
	assert_int_equal(mbj_verify(jdir, &rep), 0);
	assert_false(rep.torn_tail);
	assert_int_equal(rep.records, 5);
	jt_rm_rf(base);
}

/* ------------------------------------------------ THE TAIL CHECK (writer.c)
 *
 * A handle that appended last trusts sync.shm that nothing lies past its
 * end and reads no file.  Another process that dies inside its append
 * (after the bytes are written, before sync.shm names the new end) must
 * still be seen by that handle's next mbj_next_at: its record rolled
 * forward, a crashed roll's empty segment dropped.  The child dies at a
 * chosen pwrite: the first one of exactly @die_len bytes, after it wrote. */
static size_t die_len;
static const char *die_as_v2;   /* sync.shm: clear `appending` as a v2 writer would */

static ssize_t die_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t w = pwrite(fd, buf, n, off);

	if (n == die_len && die_as_v2) {
		/* `appending` is the last 4 bytes of the state (the padding
		 * after `ready` in version 2) */
		struct stat st;
		int sfd = open(die_as_v2, O_RDWR);
		uint32_t zero = 0;
		if (sfd < 0 || fstat(sfd, &st) ||
		    pwrite(sfd, &zero, 4, st.st_size - 4) != 4)
			_exit(4);
		close(sfd);
	}
	if (n == die_len)
		_exit(0);
	return w;
}

static const mbj_io die_io = { die_pwrite, NULL, NULL };

/* A child appends one record of @len payload bytes at @end and dies in the
 * pwrite of @dying bytes. */
static void child_dies_appending(const char *jdir, mbj_pos end, uint32_t len, size_t dying)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		mbj_options o = { .segment_bytes = JT_SMALL_SEG, .io = &die_io };
		mbj_log *log;
		mbj_record rec;
		uint8_t *buf = calloc(1, len ? len : 1);
		die_len = dying;
		if (!buf || mbj_open(jdir, &o, &log) || mbj_next_at(log, &end, &rec))
			_exit(2);
		memset(buf, 0x5a, len);
		mbj_append(log, &end, 9, 0, buf, len, &end);
		_exit(3);   /* did not die where asked */
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* A handle that has just appended (its fast path armed) at @end. */
static mbj_log *armed_handle(const char *jdir, mbj_pos *end)
{
	mbj_options o = { .segment_bytes = JT_SMALL_SEG };
	mbj_log *log;
	mbj_record rec;

	assert_int_equal(mbj_open(jdir, &o, &log), 0);
	assert_int_equal(mbj_next_at(log, end, &rec), 0);
	assert_int_equal(append_big(log, end), 0);
	assert_int_equal(mbj_next_at(log, end, &rec), 0);
	return log;
}

static void test_tail_check_sees_a_dead_writers_record(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_pos end = { 0, 0, 0 };
	mbj_record rec;

	jt_mkdir(base, jdir);
	mbj_log *log = armed_handle(jdir, &end);
	child_dies_appending(jdir, end, 100, MBJ_REC_HDR + 100);
	assert_int_equal(mbj_next_at(log, &end, &rec), 1);
	assert_int_equal(rec.seq, 2);
	assert_int_equal(rec.type, 9);
	assert_int_equal(rec.len, 100);
	assert_int_equal(rec.end.segment, end.segment);
	end = rec.end;
	assert_int_equal(mbj_next_at(log, &end, &rec), 0);
	uint8_t buf[BIG];
	big_payload(3, buf);
	assert_int_equal(mbj_append(log, &end, 1, 0, buf, BIG, &end), 0);
	mbj_close(log);
	mbj_report rep;
	assert_int_equal(mbj_verify(jdir, &rep), 0);
	assert_int_equal(rep.records, 3);
	jt_rm_rf(base);
}

/* The dead writer rolled to a new segment: its record is found there. */
static void test_tail_check_sees_a_dead_writers_roll(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_pos end = { 0, 0, 0 };
	mbj_record rec;
	uint32_t len = (uint32_t)JT_SMALL_SEG;   /* does not fit: a roll */

	jt_mkdir(base, jdir);
	mbj_log *log = armed_handle(jdir, &end);
	assert_int_equal(end.segment, 1);
	child_dies_appending(jdir, end, len, MBJ_REC_HDR + len);
	assert_int_equal(mbj_next_at(log, &end, &rec), 1);
	assert_int_equal(rec.seq, 2);
	assert_int_equal(rec.len, len);
	assert_int_equal(rec.end.segment, 2);
	end = rec.end;
	assert_int_equal(append_big(log, &end), 0);
	assert_int_equal(end.seq, 3);
	mbj_close(log);
	mbj_report rep;
	assert_int_equal(mbj_verify(jdir, &rep), 0);
	assert_int_equal(rep.records, 3);
	jt_rm_rf(base);
}

/* The dead writer had created the next segment (its header written) and
 * no record: the empty segment is dropped and the handle appends where it
 * was, in segment 1. */
static void test_tail_check_drops_a_dead_writers_empty_roll(void **state)
{
	(void)state;
	char base[64], jdir[80], path[128];
	mbj_pos end = { 0, 0, 0 };
	mbj_record rec;
	struct stat st;

	jt_mkdir(base, jdir);
	mbj_log *log = armed_handle(jdir, &end);
	child_dies_appending(jdir, end, (uint32_t)JT_SMALL_SEG, MBJ_SEG_HDR);
	jt_path(path, jdir, 2);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(mbj_next_at(log, &end, &rec), 0);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(append_big(log, &end), 0);
	assert_int_equal(end.segment, 1);
	assert_int_equal(end.seq, 2);
	mbj_close(log);
	mbj_report rep;
	assert_int_equal(mbj_verify(jdir, &rep), 0);
	assert_int_equal(rep.records, 2);
	jt_rm_rf(base);
}

/* A sync.shm of version 2 (made this boot by a process of the previous
 * version, whose writers never set `appending`) opens, and a handle on it
 * reads the files at every check: a v2 writer that died after its pwrite
 * is found. */
static void test_tail_check_on_a_version_2_state(void **state)
{
	(void)state;
	char base[64], jdir[80], shm[128];
	mbj_pos end = { 0, 0, 0 };
	mbj_record rec;
	uint32_t two = 2;

	jt_mkdir(base, jdir);
	jt_build(jdir, JT_SMALL_SEG, 1, &end);
	snprintf(shm, sizeof shm, "%s/sync.shm", jdir);
	int fd = open(shm, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, &two, 4, 8), 4);   /* the version field */
	close(fd);
	mbj_log *log = armed_handle(jdir, &end);
	assert_int_equal(end.seq, 2);
	die_as_v2 = shm;
	child_dies_appending(jdir, end, 100, MBJ_REC_HDR + 100);
	die_as_v2 = NULL;
	assert_int_equal(mbj_next_at(log, &end, &rec), 1);
	assert_int_equal(rec.seq, 3);
	assert_int_equal(rec.len, 100);
	mbj_close(log);
	jt_rm_rf(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pwrite_enospc_each_site),
		cmocka_unit_test(test_pwrite_eio_each_site),
		cmocka_unit_test(test_pwrite_short_each_site),
		cmocka_unit_test(test_short_write_zero_back_fails),
		cmocka_unit_test(test_fdatasync_eio_each_site),
		cmocka_unit_test(test_ftruncate_used_when_zeroing_fails),
		cmocka_unit_test(test_cut_failure_in_next_at),
		cmocka_unit_test(test_tail_check_sees_a_dead_writers_record),
		cmocka_unit_test(test_tail_check_sees_a_dead_writers_roll),
		cmocka_unit_test(test_tail_check_drops_a_dead_writers_empty_roll),
		cmocka_unit_test(test_tail_check_on_a_version_2_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
