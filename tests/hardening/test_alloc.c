/*
 * test_alloc.c - allocation failure: the Nth allocation fails, for N = 1, 2,
 * ... until the operation completes without reaching N.
 *
 * This program defines malloc, calloc, realloc and free itself (forwarding
 * to glibc's __libc_* functions), so every allocation of the process goes
 * through them: libmembank's, cJSON's (its default hooks call malloc),
 * LMDB's, msgpack-c's and glibc's own (strdup, asprintf, opendir, fopen).
 * The interposer counts live blocks, which is how a leak shows: after a
 * failed operation the count must be what it was before.
 *
 * Each failure must be clean: no crash, MB_ENOMEM (or another MB_E* code
 * with a message), nothing leaked, and the bank as it was: state_of() is
 * unchanged, and stays so after the next successful write (a record left
 * in the journal by the failed call would be rolled forward by it).
 *
 * Under AddressSanitizer the allocator is ASan's and cannot be replaced:
 * the tests skip there (the leak count here does LeakSanitizer's job).
 */
#include <stdatomic.h>

#include "hard.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HAVE_INTERPOSER 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HAVE_INTERPOSER 0
#endif
#endif
#ifndef HAVE_INTERPOSER
#define HAVE_INTERPOSER 1
#endif

/* The interposer's state: the one place a test keeps process-wide state,
 * because malloc has no context argument. */
static atomic_long live;         /* blocks allocated and not freed */
static atomic_long countdown;    /* > 0: the allocation that brings it to 0 fails */
static atomic_bool fired;        /* the armed failure happened */
static atomic_long injected;     /* failures injected, for the report */

#if HAVE_INTERPOSER
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t m);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);
void *malloc(size_t n);
void *calloc(size_t n, size_t m);
void *realloc(void *p, size_t n);
void free(void *p);

static bool should_fail(void)
{
	if (atomic_load_explicit(&countdown, memory_order_relaxed) <= 0)
		return false;
	if (atomic_fetch_sub(&countdown, 1) != 1)
		return false;
	atomic_store(&fired, true);
	atomic_fetch_add(&injected, 1);
	errno = ENOMEM;
	return true;
}

void *malloc(size_t n)
{
	void *p = should_fail() ? NULL : __libc_malloc(n);

	if (p)
		atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
	return p;
}

void *calloc(size_t n, size_t m)
{
	void *p = should_fail() ? NULL : __libc_calloc(n, m);

	if (p)
		atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
	return p;
}

void *realloc(void *old, size_t n)
{
	void *p;

	if (should_fail())
		return NULL;
	p = __libc_realloc(old, n);
	if (p && !old)
		atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
	else if (!p && old && n == 0)
		atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
	return p;
}

void free(void *p)
{
	if (p)
		atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
	__libc_free(p);
}
#endif

static void arm(long n)
{
	atomic_store(&fired, false);
	atomic_store(&countdown, n);
}

static bool disarm(void)
{
	atomic_store(&countdown, 0);
	return atomic_load(&fired);
}

/* One operation under test: returns an MB_E* code; @out receives memory
 * to mb_free() (may stay NULL). */
typedef int (*op_fn)(mb_bank *b, const fx *f, char **out);

static int op_put(mb_bank *b, const fx *f, char **out)
{
	(void)f, (void)out;
	return mb_page_put(b, "p", "{\"title\":\"new\",\"tags\":[1,2,3],\"o\":{\"k\":\"v\"}}",
	                   (size_t)-1);
}

static int op_merge(mb_bank *b, const fx *f, char **out)
{
	(void)f, (void)out;
	return mb_page_merge(b, "keep", "{\"added\":{\"x\":[true,null]},\"v\":null}", (size_t)-1);
}

static int op_get(mb_bank *b, const fx *f, char **out)
{
	(void)f;
	return mb_page_get(b, "keep", out, NULL);
}

static int op_config(mb_bank *b, const fx *f, char **out)
{
	(void)f, (void)out;
	return mb_config_update(b, "{\"cache_settings\":{\"max_entries\":77},"
	                        "\"logging_settings\":{\"log_level\":\"DEBUG\"}}", (size_t)-1);
}

static int op_snapshot(mb_bank *b, const fx *f, char **out)
{
	char dir[4096];

	(void)out;
	snprintf(dir, sizeof dir, "%s/snap", f->dir);
	return mb_snapshot(b, dir, NULL);
}

static int op_checkpoint(mb_bank *b, const fx *f, char **out)
{
	(void)f, (void)out;
	return mb_snapshot(b, NULL, NULL);
}

static int op_stats(mb_bank *b, const fx *f, char **out)
{
	(void)f;
	return mb_stats(b, out);
}

static int op_metrics(mb_bank *b, const fx *f, char **out)
{
	(void)f;
	return mb_metrics(b, out);
}

/* A restore into a fresh target; a failed one must leave no target. */
static int op_restore(mb_bank *b, const fx *f, char **out)
{
	char from[4096], target[4096];
	mb_options o;

	(void)b, (void)out;
	snprintf(from, sizeof from, "%s/snap", f->dir);
	snprintf(target, sizeof target, "%s/restored", f->dir);
	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	return mb_restore(from, target, &o, 0);
}

static int op_open(mb_bank *b, const fx *f, char **out)
{
	char path[4096];
	mb_options o;
	mb_bank *other = NULL;
	int rc;

	(void)b, (void)out;
	snprintf(path, sizeof path, "%s/other", f->dir);
	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	rc = mb_open(path, &o, &other);
	if (!rc && !other)
		return MB_EINTERNAL;
	mb_close(other);
	return rc;
}

static int count_cb(void *ctx, const char *id, const char *json)
{
	(void)id, (void)json;
	++*(int *)ctx;
	return 0;
}

static int event_cb(void *ctx, uint64_t seq, const char *json)
{
	(void)seq, (void)json;
	++*(int *)ctx;
	return 0;
}

static int op_iterate(mb_bank *b, const fx *f, char **out)
{
	int n = 0;

	(void)f, (void)out;
	return mb_page_iterate(b, NULL, 0, count_cb, &n);
}

static int op_journal_read(mb_bank *b, const fx *f, char **out)
{
	int n = 0;

	(void)f, (void)out;
	return mb_journal_read(b, 1, event_cb, &n);
}

static int op_error_log(mb_bank *b, const fx *f, char **out)
{
	(void)f, (void)out;
	return mb_error_log(b, "Alloc", "an allocation failed somewhere");
}

static const int clean_codes[] = { MB_ENOMEM, MB_EIO, MB_ECORRUPT, MB_EINTERNAL, MB_ENOSPC };

static bool clean_code(int rc)
{
	for (size_t i = 0; i < sizeof clean_codes / sizeof clean_codes[0]; i++)
		if (rc == clean_codes[i])
			return true;
	return false;
}

/* ghosts: failed writes that took effect later anyway.  A failure after
 * the record was appended to the journal (in apply or in the LMDB commit)
 * leaves the record there; the failing call withdraws it (mbj_retype to a
 * record that applies as nothing), so the next writer must not bring it
 * back.  Any ghost fails the test. */
typedef struct stats {
	long attempts, enomem, other, ghosts;
} stats;

/* What a failed @op may have left: nothing in the bank, nothing leaked. */
static void check_failure(mb_bank *b, const fx *f, int rc, const char *before, long live0,
                          bool restore)
{
	char *after, target[4096];
	struct stat st;

	assert_true(clean_code(rc));
	assert_true(*mb_last_error(restore ? NULL : b) || rc == MB_ENOMEM);
	assert_int_equal(atomic_load(&live), live0);
	after = state_of(b);
	assert_string_equal(before, after);
	free(after);
	/* the next successful write must not roll the failed call forward */
	assert_int_equal(mb_error_log(b, "probe", "after a failure"), 0);
	after = state_of(b);
	assert_non_null(strstr(after, "\"total_errors\":"));
	free(after);
	if (restore) {
		snprintf(target, sizeof target, "%s/restored", f->dir);
		assert_int_equal(lstat(target, &st), -1);
	}
}

/* The part of the state a probe write does not change: the pages and the
 * config. */
static char *pages_and_config(mb_bank *b)
{
	strbuf s = { NULL, 0, 0 };
	char *c = NULL;

	assert_int_equal(mb_config_get(b, &c), 0);
	sb_add(&s, c);
	mb_free(c);
	mb_page_iterate(b, NULL, 0, sb_add_page, &s);
	return s.p;
}

static void run_op(const fx *f, op_fn op, const char *name, bool restore, bool write)
{
	stats st = { 0, 0, 0, 0 };
	char *out = NULL, *before, *after;
	mb_bank *b;
	long n, live0;
	int rc;
	bool hit;

	b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0);
	assert_non_null(b);
	assert_int_equal(mb_page_put(b, "keep", "{\"v\":1,\"w\":\"x\"}", (size_t)-1), 0);
	/* a first run warms every lazy allocation (LMDB's reader slot, ...) */
	rc = op(b, f, &out);
	mb_free(out);
	out = NULL;
	if (restore) {
		char t[4096];
		snprintf(t, sizeof t, "%s/snap", f->dir);
		mkdir(t, 0700);
		assert_int_equal(mb_snapshot(b, t, NULL), 0);
		snprintf(t, sizeof t, "%s/restored", f->dir);
		rm_rf(t);
	}
	for (n = 1; n < 5000; n++) {
		before = write ? pages_and_config(b) : state_of(b);
		live0 = atomic_load(&live);
		arm(n);
		rc = op(b, f, &out);
		hit = disarm();
		mb_free(out);
		out = NULL;
		st.attempts++;
		if (!hit) {
			assert_int_equal(rc, 0);
			free(before);
			break;
		}
		if (rc == 0) {
			/* the failure was absorbed (a fallback, a retry): fine, but
			 * nothing may leak either */
			if (!write)
				assert_int_equal(atomic_load(&live), live0);
		} else {
			if (!clean_code(rc) || rc != MB_ENOMEM)
				printf("%s: allocation %ld failed: %s: %s\n", name, n, mb_errname(rc),
				       mb_last_error(restore || op == op_open ? NULL : b));
			if (rc == MB_ENOMEM)
				st.enomem++;
			else
				st.other++;
			if (write) {
				assert_true(clean_code(rc));
				assert_int_equal(atomic_load(&live), live0);
				after = pages_and_config(b);
				assert_string_equal(before, after);
				free(after);
				assert_int_equal(mb_error_log(b, "probe", "after a failure"), 0);
				after = pages_and_config(b);
				if (strcmp(before, after))
					st.ghosts++;
				assert_string_equal(before, after);
				free(after);
			} else {
				check_failure(b, f, rc, before, live0, restore);
			}
		}
		if (rc == 0 && write) {
			/* undo, so that the next N starts from the same state */
			mb_close(b);
			rm_rf(f->path);
			b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0);
			assert_int_equal(mb_page_put(b, "keep", "{\"v\":1,\"w\":\"x\"}", (size_t)-1), 0);
			/* and warm the new handle's lazy allocations again (its
			 * journal reader's buffer: the first write of a journal
			 * reads no segment) */
			assert_int_equal(mb_page_put(b, "keep", "{\"v\":1,\"w\":\"x\"}", (size_t)-1), 0);
		}
		if (restore) {
			char t[4096];
			snprintf(t, sizeof t, "%s/restored", f->dir);
			rm_rf(t);
		}
		free(before);
	}
	printf("%s: %ld runs, the first %ld allocations each failed once: %ld MB_ENOMEM, "
	       "%ld other clean errors, the rest absorbed; %ld failed calls rolled forward "
	       "later (ghosts)\n", name, st.attempts, n - 1, st.enomem, st.other, st.ghosts);
	assert_true(n > 1);
	assert_true(n < 5000);
	mb_close(b);
}

static bool no_interposer(void)
{
	if (!HAVE_INTERPOSER)
		printf("SKIP reason: the allocator cannot be replaced under a sanitizer\n");
	return !HAVE_INTERPOSER;
}

static void test_alloc_page_put(void **state)
{
	if (no_interposer())
		skip();
	run_op(*state, op_put, "mb_page_put", false, true);
}

static void test_alloc_page_merge(void **state)
{
	if (no_interposer())
		skip();
	run_op(*state, op_merge, "mb_page_merge", false, true);
}

static void test_alloc_page_get(void **state)
{
	if (no_interposer())
		skip();
	run_op(*state, op_get, "mb_page_get", false, false);
}

static void test_alloc_config_update(void **state)
{
	if (no_interposer())
		skip();
	run_op(*state, op_config, "mb_config_update", false, true);
}

static void test_alloc_snapshot(void **state)
{
	fx *f = *state;
	char dir[4096];

	if (no_interposer())
		skip();
	snprintf(dir, sizeof dir, "%s/snap", f->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	run_op(f, op_snapshot, "mb_snapshot", false, false);
}

static void test_alloc_checkpoint(void **state)
{
	if (no_interposer())
		skip();
	run_op(*state, op_checkpoint, "mb_snapshot (checkpoint)", false, false);
}

static void test_alloc_stats(void **state)
{
	if (no_interposer())
		skip();
	run_op(*state, op_stats, "mb_stats", false, false);
}

static void test_alloc_metrics(void **state)
{
	if (no_interposer())
		skip();
	run_op(*state, op_metrics, "mb_metrics", false, false);
}

static void test_alloc_restore(void **state)
{
	if (no_interposer())
		skip();
	run_op(*state, op_restore, "mb_restore", true, false);
}

static void test_alloc_iterate(void **state)
{
	if (no_interposer())
		skip();
	run_op(*state, op_iterate, "mb_page_iterate", false, false);
}

static void test_alloc_journal_read(void **state)
{
	if (no_interposer())
		skip();
	run_op(*state, op_journal_read, "mb_journal_read", false, false);
}

static void test_alloc_error_log(void **state)
{
	if (no_interposer())
		skip();
	run_op(*state, op_error_log, "mb_error_log", false, false);
}

static void test_alloc_open(void **state)
{
	if (no_interposer())
		skip();
	run_op(*state, op_open, "mb_open", false, false);
	printf("allocation failures injected in this program so far: %ld\n",
	       atomic_load(&injected));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_alloc_page_put, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_page_merge, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_page_get, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_config_update, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_snapshot, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_checkpoint, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_stats, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_metrics, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_restore, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_iterate, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_journal_read, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_error_log, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_alloc_open, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
