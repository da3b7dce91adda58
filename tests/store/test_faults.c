/*
 * test_faults.c - I/O failures under the store: a full disk, an I/O error,
 * a short write, a failed fdatasync, injected at the journal's system-call
 * seam (mbj_log.io) of a live bank.
 */
#include <errno.h>

#include "helpers.h"
#include "bank.h"
#include "journal_int.h"

typedef struct fx {
	char *dir, path[1024];
	mb_bank *b;
} fx;

static int fail_errno;      /* what the injected call fails with */
static int calls_left;      /* real calls before the failure */

static ssize_t bad_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (calls_left-- > 0)
		return pwrite(fd, buf, n, off);
	if (fail_errno == 0)  /* a short write: half of it lands */
		return pwrite(fd, buf, n / 2, off);
	errno = fail_errno;
	return -1;
}

static int bad_fdatasync(int fd)
{
	if (calls_left-- > 0)
		return fdatasync(fd);
	errno = fail_errno;
	return -1;
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);

	f->dir = tmp_dir();
	snprintf(f->path, sizeof f->path, "%s/bank", f->dir);
	assert_int_equal(mb_open(f->path, NULL, &f->b), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;

	mb_close(f->b);
	rm_rf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void put_acked(mb_bank *b, int n)
{
	char id[16];

	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof id, "acked-%d", i);
		assert_int_equal(mb_page_put(b, id, "{\"ok\":true}", (size_t)-1), 0);
	}
}

static void assert_acked(mb_bank *b, int n)
{
	char id[16], *s;

	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof id, "acked-%d", i);
		assert_int_equal(mb_page_get(b, id, &s, NULL), 0);
		mb_free(s);
	}
}

/* A write failure leaves nothing behind and the handle usable. */
static void write_fault(fx *f, int err, const char *needle, int want)
{
	char *before, *after;

	put_acked(f->b, 5);
	before = state_of(f->b);
	fail_errno = err;
	calls_left = 0;
	f->b->jn->io.pwrite = bad_pwrite;
	int rc = mb_page_put(f->b, "doomed", "{\"x\":1}", (size_t)-1);
	if (rc != want || !strstr(mb_last_error(f->b), needle))
		fail_msg("want %d naming \"%s\", got %d \"%s\"", want, needle, rc, mb_last_error(f->b));
	f->b->jn->io.pwrite = pwrite;
	after = state_of(f->b);
	assert_string_equal(before, after);
	/* the next write works and nothing half-written shows up */
	assert_int_equal(mb_page_put(f->b, "after", "{}", 2), 0);
	mb_close(f->b);
	assert_int_equal(mb_open(f->path, NULL, &f->b), 0);
	assert_acked(f->b, 5);
	free(before);
	assert_int_equal(mb_page_get(f->b, "doomed", &before, NULL), MB_ENOTFOUND);
	free(after);
	assert_rebuild_same(f->b);
}

static void test_disk_full(void **state)
{
	write_fault(*state, ENOSPC, "no space", MB_ENOSPC);
}

static void test_io_error(void **state)
{
	write_fault(*state, EIO, "journal append", MB_EIO);
}

static void test_short_write(void **state)
{
	fx *f = *state;

	put_acked(f->b, 5);
	fail_errno = 0;
	calls_left = 0;
	f->b->jn->io.pwrite = bad_pwrite;
	assert_int_not_equal(mb_page_put(f->b, "doomed", "{\"x\":1}", (size_t)-1), 0);
	f->b->jn->io.pwrite = pwrite;
	if (mb_page_put(f->b, "after", "{}", 2))
		fail_msg("after a short write: %s", mb_last_error(f->b));
	mb_close(f->b);
	assert_int_equal(mb_open(f->path, NULL, &f->b), 0);
	assert_acked(f->b, 5);
	{
		char *s;
		assert_int_equal(mb_page_get(f->b, "doomed", &s, NULL), MB_ENOTFOUND);
		assert_int_equal(mb_page_get(f->b, "after", &s, NULL), 0);
		mb_free(s);
	}
	assert_int_equal(mb_journal_verify(f->path, NULL), 0);
}

static void test_failed_fsync_is_fatal(void **state)
{
	fx *f = *state;
	mb_bank *other;
	char *s;

	put_acked(f->b, 5);
	fail_errno = EIO;
	calls_left = 0;
	f->b->jn->io.fdatasync = bad_fdatasync;
	assert_int_equal(mb_page_put(f->b, "unsure", "{}", 2), MB_EFATAL);
	assert_non_null(strstr(mb_last_error(f->b), "sync"));
	/* the handle refuses everything from now on, reads included */
	assert_int_equal(mb_sync_record(f->b, "success", NULL), MB_EFATAL);
	assert_int_equal(mb_page_get(f->b, "acked-0", &s, NULL), MB_EFATAL);
	assert_non_null(strstr(mb_last_error(f->b), "reopen"));
	mb_close(f->b);
	/* a reopen syncs the journal again and goes on */
	assert_int_equal(mb_open(f->path, NULL, &other), 0);
	f->b = other;
	assert_acked(f->b, 5);
	assert_int_equal(mb_page_put(f->b, "later", "{}", 2), 0);
	assert_int_equal(mb_journal_verify(f->path, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_fsync_is_fatal, setup, teardown),
	};
	return cmocka_run_group_tests_name("store-faults", tests, NULL, NULL);
}
