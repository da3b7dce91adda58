/*
 * test_faults.c - write and sync failures injected through mbj_io at every
 * call site in turn: a clear error, nothing half-appended accepted, and
 * after a failed fdatasync MBJ_EFATAL until a reopen.
 *
 * The mbj_io hooks take no context argument, so the fault plan is a file
 * static of this test program (tests may keep global state; the library
 * may not).
 */
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
