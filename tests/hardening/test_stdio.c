/*
 * test_stdio.c - the library never holds a bank file on descriptor 0, 1 or
 * 2, whatever the program does with its standard descriptors.
 *
 * A program run from cron or with `<&- >&- 2>&-` has them closed; open()
 * hands out the lowest free number, and the program's output then went
 * into data.mdb or lock.mdb (a message at offset 0 destroyed LMDB's meta
 * page).  Each body runs in a child with 0..2 closed (before the bank is
 * opened, or after), writes junk to 0..2 as a careless program would, and
 * checks through /proc/self/fd that no descriptor 0..2 names a bank file;
 * the parent then checks the bank is whole.  Messages go to a copy of
 * stderr kept above 2.
 */
#include <limits.h>

#include "hard.h"
#include "journal.h"

static int report_fd = -1;

#define CHECK(cond) do { \
	if (!(cond)) { \
		dprintf(report_fd, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, \
		        __LINE__, #cond, mb_last_error(NULL)); \
		_exit(1); \
	} \
} while (0)

/* No descriptor 0..2 names a file under @bank; what a standard slot holds
 * is /dev/null or nothing.  Also: every descriptor naming a bank file is
 * >= 3 (the same fact, seen from the bank's side). */
static int bank_fds(const char *bank, const char *when)
{
	char link[64], target[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	CHECK(d != NULL);
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);
		ssize_t len;

		if (e->d_name[0] == '.' || fd == dirfd(d))
			continue;
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		if ((len = readlink(link, target, sizeof target - 1)) < 0)
			continue;
		target[len] = '\0';
		if (!strncmp(target, bank, strlen(bank))) {
			if (fd <= 2)
				dprintf(report_fd, "%s: descriptor %d is %s\n", when, fd, target);
			CHECK(fd > 2);
			n++;
		} else if (fd <= 2) {
			CHECK(!strcmp(target, "/dev/null"));
		}
	}
	closedir(d);
	return n;
}

/* Every fdatasync of the library passes here (-Wl,--wrap=fdatasync): the
 * file it syncs is open at that instant, even when its descriptor is
 * closed right after.  One on 0..2 is a bank file another thread's
 * message (a write to 2) could land in at that instant: the durable.mark
 * write and the stopped-leader sync opened theirs without keeping them
 * above 2.  Only when 0..2 were closed (report_fd set). */
int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
int __wrap_fdatasync(int fd)
{
	char link[64], target[PATH_MAX];
	ssize_t len;

	if (report_fd >= 0 && fd <= 2) {
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		len = readlink(link, target, sizeof target - 1);
		target[len > 0 ? len : 0] = '\0';
		dprintf(report_fd, "fdatasync of %s on descriptor %d\n", target, fd);
		CHECK(fd > 2);
	}
	return __real_fdatasync(fd);
}

/* What a careless program writes to its standard descriptors. */
static void scribble(void)
{
	static const char junk[] = "membank: this must never reach a bank file\n";

	for (int fd = 0; fd <= 2; fd++)
		if (write(fd, junk, sizeof junk - 1) < 0) {
			/* closed or read-only: nothing reached anything */
		}
}

static void close_stdio(void)
{
	report_fd = fcntl(2, F_DUPFD_CLOEXEC, 10);
	close(0);
	close(1);
	close(2);
}

static mb_bank *open_small(const char *path)
{
	mb_options o;
	mb_bank *b = NULL;

	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	o.segment_bytes = MBJ_MIN_SEGMENT_BYTES;  /* puts roll to new segments */
	CHECK(mb_open(path, &o, &b) == 0);
	return b;
}

/* Puts that roll segments, a snapshot, reads of the journal: every kind
 * of file the library opens, with junk written to 0..2 after each. */
static void work(const fx *f, mb_bank *b, const char *when)
{
	char id[32], pad[2048], *report = NULL;
	mb_snapshot_info info;
	uint64_t last = 0;

	strcpy(pad, "{\"pad\":\"");
	memset(pad + 8, 'x', 2000);
	strcpy(pad + 2008, "\"}");
	for (int i = 0; i < 200; i++) {
		snprintf(id, sizeof id, "p%03d", i);
		CHECK(mb_page_put(b, id, pad, (size_t)-1) == 0);
		if (i % 50 == 0) {
			scribble();
			bank_fds(f->path, when);
		}
	}
	CHECK(mb_snapshot(b, NULL, &info) == 0);
	scribble();
	bank_fds(f->path, when);
	CHECK(mb_journal_last_seq(b, &last) == 0);
	CHECK(mb_journal_verify(f->path, &report) == 0);
	mb_free(report);
	scribble();
	CHECK(bank_fds(f->path, when) >= 3);  /* data.mdb, lock.mdb, a segment at least */
}

/* 0..2 closed before the bank is opened (cron, `<&- >&- 2>&-`). */
static int closed_before_body(void *arg)
{
	const fx *f = arg;
	mb_bank *b;

	close_stdio();
	b = open_small(f->path);
	scribble();
	bank_fds(f->path, "after open");
	work(f, b, "closed before open");
	CHECK(mb_close(b) == 0);
	b = open_small(f->path);   /* again: the files exist now */
	scribble();
	bank_fds(f->path, "after reopen");
	CHECK(mb_close(b) == 0);
	return 0;
}

/* 0..2 closed by the program after the bank is open: every later open
 * of the library (new segments, snapshot files) stays above them. */
static int closed_after_body(void *arg)
{
	const fx *f = arg;
	mb_bank *b = open_small(f->path);

	close_stdio();
	work(f, b, "closed after open");
	CHECK(mb_close(b) == 0);
	return 0;
}

/* 0..2 closed after the open of a `full` bank: its journal fills (a
 * zero-fill per MiB) write journal/durable.mark and fdatasync it, through a
 * descriptor opened for that moment; it must not be 0..2 either. */
static int closed_full_body(void *arg)
{
	const fx *f = arg;
	char id[32], pad[2048];
	mb_options o;
	mb_bank *b = NULL;

	mb_options_init(&o);
	o.durability = MB_DURABILITY_FULL;  /* default segments: fills of 1 MiB */
	CHECK(mb_open(f->path, &o, &b) == 0);
	close_stdio();
	strcpy(pad, "{\"pad\":\"");
	memset(pad + 8, 'x', 2000);
	strcpy(pad + 2008, "\"}");
	/* 0..2 free before every put (each open the library wraps leaves
	 * /dev/null there), so any open the put makes lands on them first;
	 * 1,200 puts of 2 KB: past a fill */
	for (int i = 0; i < 1200; i++) {
		close(0);
		close(1);
		close(2);
		snprintf(id, sizeof id, "p%03d", i % 200);
		CHECK(mb_page_put(b, id, pad, (size_t)-1) == 0);
	}
	work(f, b, "closed after a full open");
	CHECK(mb_close(b) == 0);
	return 0;
}

/* The bank is whole: 200 pages of the right size, and a page written now
 * reads back. */
static void check_bank(const fx *f)
{
	mb_bank *b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);
	uint64_t n = 0;
	cJSON *j;

	assert_non_null(b);
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, 200);
	j = get_page(b, "p199");
	assert_non_null(j);
	assert_int_equal(strlen(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "properties"),
	                                            "pad")->valuestring), 2000);
	cJSON_Delete(j);
	assert_int_equal(mb_page_put(b, "new", "{}", 2), 0);
	mb_close(b);
}

static void test_stdio_closed_before_open(void **state)
{
	run_child(closed_before_body, *state, 120);
	check_bank(*state);
}

static void test_stdio_closed_after_open(void **state)
{
	run_child(closed_after_body, *state, 120);
	check_bank(*state);
}

static void test_stdio_closed_full_sync(void **state)
{
	run_child(closed_full_body, *state, 120);
	check_bank(*state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stdio_closed_before_open, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stdio_closed_after_open, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stdio_closed_full_sync, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
