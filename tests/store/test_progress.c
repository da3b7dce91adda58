/*
 * test_progress.c - mb_options.progress: restore, snapshot and rebuild call
 * it with done rising to total, and a non-zero return cancels the work
 * with MB_ECANCELED, leaving everything as it was.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>

#include "bank.h"
#include "kv.h"
#include "helpers.h"

#define NPAGES 10000u

/* What the callback saw, of one phase; cancel_at: return 1 once done
 * reaches it (0: never). */
typedef struct seen {
	char phase[32];
	uint64_t calls, last_done, total, bytes_total, cancel_at;
	bool rising, finished, after_finish;
} seen;

static int record(void *ctx, const mb_progress *p)
{
	seen *s = ctx;

	for (; s->phase[0] && strcmp(s->phase, p->phase); s++)
		;  /* one slot per phase; the array ends with a spare */
	snprintf(s->phase, sizeof s->phase, "%s", p->phase);
	if (s->calls && p->done < s->last_done)
		s->rising = false;
	if (!s->calls)
		s->rising = p->done == 0;  /* the first call is the start */
	s->after_finish |= s->finished;
	s->calls++;
	s->last_done = p->done;
	s->total = p->total;
	s->bytes_total = p->bytes_total;
	s->finished = p->finished;
	return s->cancel_at && p->done >= s->cancel_at;
}

/* The slot of phase @name; an empty one (phase "") when it was not seen. */
static seen *phase(seen *s, const char *name)
{
	static seen none;

	for (; s->phase[0]; s++)
		if (!strcmp(s->phase, name))
			return s;
	memset(&none, 0, sizeof none);
	return &none;
}

/* A bank of NPAGES pages at <dir>/<name>, opened with the recorder. */
static mb_bank *filled(const char *dir, const char *name, seen *s)
{
	char path[4096], id[32];
	mb_options o;
	mb_bank *b = NULL;
	mb_batch *bt;

	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	o.no_auto_checkpoint = true;
	o.progress = record;
	o.progress_ctx = s;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	assert_int_equal(mb_open(path, &o, &b), 0);
	assert_int_equal(mb_batch_begin(b, &bt), 0);
	for (unsigned i = 0; i < NPAGES; i++) {
		snprintf(id, sizeof id, "p%05u", i);
		assert_int_equal(mb_batch_page_put(bt, id, "{\"n\":1}", (size_t)-1), 0);
	}
	assert_int_equal(mb_batch_commit(bt), 0);
	return b;
}

static bool has_page(mb_bank *b, const char *id)
{
	cJSON *j = get_page(b, id);
	bool found = j != NULL;

	cJSON_Delete(j);
	return found;
}

static bool has_file(const char *dir, const char *name)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

/* entries of @dir whose name contains @part */
static int count_named(const char *dir, const char *part)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strstr(e->d_name, part) != NULL;
	closedir(d);
	return n;
}

static void test_snapshot_progress(void **state)
{
	char *dir = tmp_dir(), out[4096];
	seen s[4];
	mb_bank *b;
	mb_snapshot_info info;

	(void)state;
	memset(s, 0, sizeof s);
	b = filled(dir, "bank", s);
	memset(s, 0, sizeof s);
	snprintf(out, sizeof out, "%s/out", dir);
	assert_int_equal(mkdir(out, 0700), 0);
	assert_int_equal(mb_snapshot(b, out, &info), 0);
	assert_string_equal(phase(s, "snapshot")->phase, "snapshot");
	assert_true(s[0].rising);
	assert_true(s[0].finished);
	assert_false(s[0].after_finish);
	assert_int_equal(s[0].last_done, NPAGES);
	assert_int_equal(s[0].total, NPAGES);
	/* start, every 4096, end */
	assert_int_equal(s[0].calls, 2 + NPAGES / MB_PROGRESS_EVERY);

	/* cancelled: an error, and no file (nor a temp file) in out */
	rm_rf(out);
	assert_int_equal(mkdir(out, 0700), 0);
	memset(s, 0, sizeof s);
	s[0].cancel_at = MB_PROGRESS_EVERY;
	snprintf(s[0].phase, sizeof s[0].phase, "snapshot");
	assert_int_equal(mb_snapshot(b, out, &info), MB_ECANCELED);
	assert_non_null(strstr(mb_last_error(b), "snapshot: cancelled by the progress callback"));
	assert_false(s[0].finished);
	assert_int_equal(count_named(out, "json"), 0);
	assert_int_equal(count_named(out, "tmp"), 0);
	/* in the bank directory: no checkpoint is made */
	assert_int_equal(mb_snapshot(b, NULL, NULL), MB_ECANCELED);
	assert_false(has_file(dir, "bank/checkpoint.json"));
	assert_int_equal(mb_close(b), 0);
	rm_rf(dir);
	free(dir);
}

/* The snapshot's read transaction covers the copy of the store, not the
 * formatting (snapshot.c, SHORT READ).  When formatting starts (the first
 * call of the snapshot phase), another process writes LATE pages and reads
 * the lag of the oldest open read: none is open.  The files hold the
 * instant the copy was taken, without those pages. */
#define LATE 20

typedef struct during {
	int ask, answer;       /* pipes to and from the writer child */
	bool asked;
	uint64_t lag;
} during;

static int write_during(void *ctx, const mb_progress *p)
{
	during *d = ctx;
	char c = 'w';

	if (strcmp(p->phase, "snapshot") || d->asked)
		return 0;
	d->asked = true;
	assert_int_equal(write(d->ask, &c, 1), 1);
	assert_int_equal(read(d->answer, &d->lag, sizeof d->lag), (ssize_t)sizeof d->lag);
	return 0;
}

static void late_writer(const char *path, int ask, int answer)
{
	mb_options o;
	mb_bank *b;
	uint64_t lag;
	char c, id[32];

	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	o.no_auto_checkpoint = true;
	if (read(ask, &c, 1) != 1 || mb_open(path, &o, &b))
		_exit(1);
	for (int i = 0; i < LATE; i++) {
		snprintf(id, sizeof id, "late%02d", i);
		if (mb_page_put(b, id, "{\"n\":2}", (size_t)-1))
			_exit(2);
	}
	lag = stat_of(b, "store", "reader_lag_txns");
	mb_close(b);
	_exit(write(answer, &lag, sizeof lag) == (ssize_t)sizeof lag ? 0 : 3);
}

static void test_snapshot_reads_briefly(void **state)
{
	char *dir = tmp_dir(), out[4096], path[4096], *text;
	int ask[2], answer[2];
	during d = { 0 };
	seen s[4];
	mb_options o;
	mb_bank *b;
	uint64_t n = 0;
	cJSON *j;
	pid_t pid;

	(void)state;
	memset(s, 0, sizeof s);
	b = filled(dir, "bank", s);
	assert_int_equal(mb_close(b), 0);
	snprintf(path, sizeof path, "%s/bank", dir);
	assert_int_equal(pipe(ask), 0);
	assert_int_equal(pipe(answer), 0);
	fflush(NULL);
	if ((pid = fork()) == 0) {
		close(ask[1]);
		close(answer[0]);
		late_writer(path, ask[0], answer[1]);
	}
	close(ask[0]);
	close(answer[1]);
	d.ask = ask[1];
	d.answer = answer[0];
	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	o.no_auto_checkpoint = true;
	o.progress = write_during;
	o.progress_ctx = &d;
	assert_int_equal(mb_open(path, &o, &b), 0);
	snprintf(out, sizeof out, "%s/out", dir);
	assert_int_equal(mkdir(out, 0700), 0);
	assert_int_equal(mb_snapshot(b, out, NULL), 0);
	assert_int_equal(wait_child(pid, 60), 0);
	assert_true(d.asked);
	assert_int_equal(d.lag, 0);   /* formerly LATE: the snapshot's read was open */
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, NPAGES + LATE);
	snprintf(path, sizeof path, "%s/notion_pages.json", out);
	assert_non_null(text = slurp(path, NULL));
	assert_non_null(j = cJSON_Parse(text));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "pages")), NPAGES);
	assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "pages"), "late00"));
	assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "pages"), "p09999"));
	assert_int_equal(num_at(j, "metadata", "total_pages"), NPAGES);
	cJSON_Delete(j);
	free(text);
	assert_int_equal(count_named(out, "spill"), 0);
	close(ask[1]);
	close(answer[0]);
	assert_int_equal(mb_close(b), 0);
	rm_rf(dir);
	free(dir);
}

/* The copy holds the writer lock (snapshot.c, THE COPY HOLDS THE WRITER
 * LOCK), so no commit frees a page it reads.  A child process holds the
 * store's writer lock; a snapshot started meanwhile may not finish before
 * the child lets go.  (With a read transaction it finished in milliseconds:
 * checked.  The 300 ms pause only gives a wrong snapshot time to show
 * itself; a right one can never finish early, however slow the machine.) */
typedef struct snap_thread {
	mb_bank *b;
	const char *out;
	int rc;
	atomic_bool done;
} snap_thread;

static void *snapshot_in_thread(void *arg)
{
	snap_thread *st = arg;

	st->rc = mb_snapshot(st->b, st->out, NULL);
	atomic_store(&st->done, true);
	return NULL;
}

static void test_snapshot_copy_holds_writer_lock(void **state)
{
	char *dir = tmp_dir(), out[4096], path[4096], c;
	int held[2], go[2];
	snap_thread st = { 0 };
	pthread_t thread;
	seen s[4];
	mb_options o;
	mb_bank *b;
	pid_t pid;

	(void)state;
	memset(s, 0, sizeof s);
	b = filled(dir, "bank", s);
	assert_int_equal(mb_close(b), 0);
	snprintf(path, sizeof path, "%s/bank", dir);
	assert_int_equal(pipe(held), 0);
	assert_int_equal(pipe(go), 0);
	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	o.no_auto_checkpoint = true;
	/* opened first: an open may write, and so wait for the lock too */
	assert_int_equal(mb_open(path, &o, &b), 0);
	fflush(NULL);
	if ((pid = fork()) == 0) {
		mb_bank *mine;
		kv_txn *t;
		if (mb_open(path, &o, &mine) || kv_begin(mine->kv, true, &t) ||
		    write(held[1], "h", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(1);
		kv_abort(t);
		_exit(mb_close(mine) ? 2 : 0);
	}
	assert_int_equal(read(held[0], &c, 1), 1);
	snprintf(out, sizeof out, "%s/out", dir);
	assert_int_equal(mkdir(out, 0700), 0);
	st.b = b;
	st.out = out;
	assert_int_equal(pthread_create(&thread, NULL, snapshot_in_thread, &st), 0);
	nanosleep(&(struct timespec){ 0, 300 * 1000000 }, NULL);
	assert_false(atomic_load(&st.done));    /* waiting for the writer lock */
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(st.rc, 0);
	assert_int_equal(wait_child(pid, 60), 0);
	snprintf(path, sizeof path, "%s/notion_pages.json", out);
	assert_int_equal(access(path, F_OK), 0);
	for (int i = 0; i < 2; i++) {
		close(held[i]);
		close(go[i]);
	}
	assert_int_equal(mb_close(b), 0);
	rm_rf(dir);
	free(dir);
}

/* The copy of the pages in memory, in a file from the start, or moved to a
 * file part way (snapshot.c, SPILL): the same four files, byte for byte. */
static void test_snapshot_spill_in_file(void **state)
{
	static const char *const limits[] = { NULL, "0", "100000" };
	static const char *const files[] = {
		"notion_pages.json", "sync_status.json", "error_log.json", "config_cache.json"
	};
	char *dir = tmp_dir(), out[4096], path[4096], *first[4] = { 0 };
	seen s[4];
	mb_bank *b;

	(void)state;
	memset(s, 0, sizeof s);
	b = filled(dir, "bank", s);
	for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
		snprintf(out, sizeof out, "%s/out%zu", dir, i);
		assert_int_equal(mkdir(out, 0700), 0);
		if (limits[i])
			setenv("MEMBANK_TEST_SPILL_MEM", limits[i], 1);
		assert_int_equal(mb_snapshot(b, out, NULL), 0);
		unsetenv("MEMBANK_TEST_SPILL_MEM");
		for (int f = 0; f < 4; f++) {
			size_t len;
			char *text;

			snprintf(path, sizeof path, "%s/%s", out, files[f]);
			assert_non_null(text = slurp(path, &len));
			if (!first[f])
				first[f] = text;
			else {
				assert_string_equal(text, first[f]);
				free(text);
			}
		}
		assert_int_equal(count_named(out, "spill"), 0);
	}
	assert_non_null(strstr(first[0], "\"p09999\":{\"properties\":{\"n\":1}"));
	for (int f = 0; f < 4; f++)
		free(first[f]);
	assert_int_equal(mb_close(b), 0);
	rm_rf(dir);
	free(dir);
}

static uint64_t pages_of(const char *path)
{
	mb_options o;
	mb_bank *b;
	uint64_t n = 0;

	mb_options_init(&o);
	o.create = false;
	assert_int_equal(mb_open(path, &o, &b), 0);
	assert_int_equal(mb_page_count(b, &n), 0);
	mb_close(b);
	return n;
}

static void test_restore_progress_and_cancel(void **state)
{
	char *dir = tmp_dir(), files[4096], target[4096], pages[4096];
	seen s[4];
	mb_options o;
	mb_bank *b;
	struct stat st;

	(void)state;
	memset(s, 0, sizeof s);
	b = filled(dir, "src", s);
	snprintf(files, sizeof files, "%s/files", dir);
	assert_int_equal(mkdir(files, 0700), 0);
	assert_int_equal(mb_snapshot(b, files, NULL), 0);
	mb_close(b);
	snprintf(pages, sizeof pages, "%s/notion_pages.json", files);
	assert_int_equal(stat(pages, &st), 0);

	/* the old bank (<dir>/bank): one page */
	snprintf(target, sizeof target, "%s/bank", dir);
	b = open_bank(dir, MB_DURABILITY_FAST);
	assert_int_equal(mb_page_put(b, "old", "{\"kept\":true}", (size_t)-1), 0);
	mb_close(b);

	mb_options_init(&o);
	o.progress = record;
	o.progress_ctx = s;

	/* cancelled at the first call past the start: the old bank stays,
	 * nothing is left beside it */
	memset(s, 0, sizeof s);
	snprintf(s[0].phase, sizeof s[0].phase, "restore");
	s[0].cancel_at = 1;
	assert_int_equal(mb_restore(files, target, &o, MB_RESTORE_FORCE), MB_ECANCELED);
	assert_non_null(strstr(mb_last_error(NULL), "restore: cancelled by the progress callback"));
	assert_int_equal(s[0].calls, 2);  /* the start, then 4096 pages */
	assert_int_equal(s[0].last_done, MB_PROGRESS_EVERY);
	assert_int_equal(pages_of(target), 1);
	b = open_bank(dir, MB_DURABILITY_FAST);
	assert_true(has_page(b, "old"));
	mb_close(b);
	assert_int_equal(count_named(dir, "restore"), 0);
	assert_false(has_file(target, "restore.pending"));

	/* run to the end: done rises to the page count, of the file's size */
	memset(s, 0, sizeof s);
	assert_int_equal(mb_restore(files, target, &o, MB_RESTORE_FORCE), 0);
	assert_string_equal(phase(s, "restore")->phase, "restore");
	assert_string_equal(phase(s, "snapshot")->phase, "");  /* the bank built aside reports nothing */
	assert_true(s[0].rising);
	assert_true(s[0].finished);
	assert_int_equal(s[0].last_done, NPAGES);
	assert_int_equal(s[0].total, NPAGES);
	assert_int_equal(s[0].bytes_total, (uint64_t)st.st_size);
	assert_int_equal(s[0].calls, 2 + NPAGES / MB_PROGRESS_EVERY);
	assert_int_equal(pages_of(target), NPAGES);
	rm_rf(dir);
	free(dir);
}

static void test_rebuild_progress_and_cancel(void **state)
{
	char *dir = tmp_dir();
	seen s[4];
	mb_bank *b;
	uint64_t n = 0, seq = 0;

	(void)state;
	memset(s, 0, sizeof s);
	b = filled(dir, "bank", s);
	assert_int_equal(mb_snapshot(b, NULL, NULL), 0);  /* checkpoint: NPAGES */
	for (int i = 0; i < 5000; i++)
		assert_int_equal(mb_sync_record(b, "success", NULL), 0);
	assert_int_equal(mb_journal_last_seq(b, &seq), 0);

	memset(s, 0, sizeof s);
	snprintf(s[1].phase, sizeof s[1].phase, "rebuild journal");
	s[1].cancel_at = MB_PROGRESS_EVERY;
	assert_int_equal(mb_rebuild(b), MB_ECANCELED);
	assert_non_null(strstr(mb_last_error(b), "rebuild journal: cancelled"));
	/* the store as it was */
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, NPAGES);
	assert_true(has_page(b, "p00042"));

	memset(s, 0, sizeof s);
	assert_int_equal(mb_rebuild(b), 0);
	assert_string_equal(phase(s, "rebuild")->phase, "rebuild");
	assert_true(phase(s, "rebuild")->finished);
	assert_true(phase(s, "rebuild")->rising);
	assert_int_equal(phase(s, "rebuild")->last_done, NPAGES);
	assert_string_equal(phase(s, "rebuild journal")->phase, "rebuild journal");
	assert_true(phase(s, "rebuild journal")->finished);
	assert_true(phase(s, "rebuild journal")->rising);
	assert_int_equal(phase(s, "rebuild journal")->last_done, 5000);
	assert_int_equal(phase(s, "rebuild journal")->total, 5000);
	assert_int_equal(mb_page_count(b, &n), 0);
	assert_int_equal(n, NPAGES);
	mb_close(b);
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_snapshot_progress),
		cmocka_unit_test(test_snapshot_reads_briefly),
		cmocka_unit_test(test_snapshot_copy_holds_writer_lock),
		cmocka_unit_test(test_snapshot_spill_in_file),
		cmocka_unit_test(test_restore_progress_and_cancel),
		cmocka_unit_test(test_rebuild_progress_and_cancel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
