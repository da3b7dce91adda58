/*
 * test_hostile.c - hostile files and directories: each gives a clear error
 * and changes nothing.
 *
 * Already covered in tests/store/test_procs.c (test_open_checks) and not
 * repeated: a bank directory that is a symlink, a non-empty directory that
 * is not a bank, a bank of a newer format version.
 */
#include <sys/statvfs.h>

#include "hard.h"
#include "journal.h"

#define SEG1 "journal/00000000000000000001.jnl"

static void path_in(char *out, size_t cap, const char *dir, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

/* A bank with three pages, closed. */
static void make_bank(const fx *f)
{
	mb_bank *b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0);

	assert_non_null(b);
	assert_int_equal(mb_page_put(b, "a", "{\"v\":1}", (size_t)-1), 0);
	assert_int_equal(mb_page_put(b, "b", "{\"v\":2}", (size_t)-1), 0);
	assert_int_equal(mb_page_put(b, "c", "{\"v\":3}", (size_t)-1), 0);
	assert_int_equal(mb_close(b), 0);
}

static int page_v(mb_bank *b, const char *id)
{
	cJSON *j = get_page(b, id);
	int v = j ? (int)num_at(cJSON_GetObjectItem(j, "properties"), "v", NULL) : -1;

	cJSON_Delete(j);
	return v;
}

static const char *const snap_files[4] = {
	"notion_pages.json", "sync_status.json", "error_log.json", "config_cache.json",
};

/* Each of the four targets a symlink to a file outside: the symlink is
 * replaced (rename() replaces the link, never writes through it) and the
 * file it pointed to is untouched. */
static void test_snapshot_symlink_targets(void **state)
{
	fx *f = *state;
	char out[4096], victim[4096], link[4096], *text;
	struct stat st;
	mb_bank *b;

	make_bank(f);
	path_in(out, sizeof out, f->dir, "out");
	assert_int_equal(mkdir(out, 0700), 0);
	for (int i = 0; i < 4; i++) {
		snprintf(victim, sizeof victim, "%s/victim-%d", f->dir, i);
		assert_int_equal(spit(victim, "precious\n", 9), 0);
		path_in(link, sizeof link, out, snap_files[i]);
		assert_int_equal(symlink(victim, link), 0);
	}
	b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0);
	assert_int_equal(mb_snapshot(b, out, NULL), 0);
	mb_close(b);
	for (int i = 0; i < 4; i++) {
		snprintf(victim, sizeof victim, "%s/victim-%d", f->dir, i);
		text = slurp(victim, NULL);
		assert_string_equal(text, "precious\n");
		free(text);
		path_in(link, sizeof link, out, snap_files[i]);
		assert_int_equal(lstat(link, &st), 0);
		assert_true(S_ISREG(st.st_mode));
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	text = slurp(link, NULL);
	assert_non_null(strstr(text, "\"max_entries\""));
	free(text);
}

/* The snapshot directory itself a symlink: refused, nothing written. */
static void test_snapshot_dir_symlink(void **state)
{
	fx *f = *state;
	char real[4096], link[4096], p[4096];
	mb_bank *b;

	make_bank(f);
	path_in(real, sizeof real, f->dir, "real");
	path_in(link, sizeof link, f->dir, "link");
	assert_int_equal(mkdir(real, 0700), 0);
	assert_int_equal(symlink(real, link), 0);
	b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0);
	assert_int_equal(mb_snapshot(b, link, NULL), MB_EUNSAFE);
	assert_non_null(strstr(mb_last_error(b), "symlink"));
	mb_close(b);
	path_in(p, sizeof p, real, "notion_pages.json");
	assert_int_equal(access(p, F_OK), -1);
}

/* The bank's own checkpoint directory a symlink to somewhere else. */
static void test_checkpoint_dir_symlink(void **state)
{
	fx *f = *state;
	char real[4096], link[4096], p[4096];
	mb_bank *b;
	int rc;

	make_bank(f);
	path_in(real, sizeof real, f->dir, "elsewhere");
	path_in(link, sizeof link, f->path, "checkpoint");
	rm_rf(link);  /* the automatic one of make_bank()'s writes */
	assert_int_equal(mkdir(real, 0700), 0);
	assert_int_equal(symlink(real, link), 0);
	b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0);
	rc = mb_snapshot(b, NULL, NULL);
	printf("snapshot with checkpoint/ a symlink: %s: %s\n", mb_errname(rc), mb_last_error(b));
	assert_int_not_equal(rc, 0);
	/* nothing was written through the link */
	assert_int_equal(rmdir(real), 0);
	(void)p;
	mb_close(b);
}

/* The one store.invalid-* directory a bad store was moved to (its path in
 * @out); fails when there is none or more than one. */
static void find_aside(const fx *f, char *out, size_t cap)
{
	struct dirent *e;
	DIR *d = opendir(f->path);
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "store.invalid-", 14)) {
			snprintf(out, cap, "%s/%s", f->path, e->d_name);
			n++;
		}
	closedir(d);
	assert_int_equal(n, 1);
}

/* A foreign file where data.mdb should be: the store is a cache, so it is
 * moved aside (never deleted: the file as it was, in store.invalid-<time>)
 * and rebuilt from the journal. */
static void test_foreign_data_mdb(void **state)
{
	fx *f = *state;
	char p[4096], aside[4096], junk[8192], *after;
	size_t len = 0;
	mb_bank *b = NULL;
	int rc;

	make_bank(f);
	path_in(p, sizeof p, f->path, "store/data.mdb");
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (char)("not an lmdb file\n"[i % 17]);
	assert_int_equal(spit(p, junk, sizeof junk), 0);
	rc = mb_open(f->path, NULL, &b);
	printf("open with a foreign data.mdb: %s: %s\n", mb_errname(rc), mb_last_error(NULL));
	assert_int_equal(rc, 0);
	assert_int_equal(page_v(b, "a"), 1);
	assert_int_equal(page_v(b, "c"), 3);
	mb_close(b);
	find_aside(f, aside, sizeof aside);
	printf("moved aside: %s\n", aside);
	path_in(p, sizeof p, aside, "data.mdb");
	after = slurp(p, &len);
	assert_int_equal(len, sizeof junk);
	assert_memory_equal(after, junk, sizeof junk);
	free(after);
}

/* The same store damaged while another process has the bank open: not
 * moved (that process would go on with the moved one, and two writer
 * locks would exist): MB_ECORRUPT naming why, and the files as they were.
 * Once that process is gone, the next open rebuilds. */
static void test_invalid_store_in_use(void **state)
{
	fx *f = *state;
	char p[4096], junk[8192], go = 0, *after;
	int ready[2], done[2];
	size_t len = 0;
	mb_bank *b = NULL;
	pid_t pid;
	int rc;

	make_bank(f);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(done), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		mb_bank *cb = NULL;
		char c = mb_open(f->path, NULL, &cb) ? 'x' : 'y';
		if (write(ready[1], &c, 1) != 1 || read(done[0], &c, 1) != 1)
			_exit(2);
		mb_close(cb);
		_exit(0);
	}
	assert_int_equal(read(ready[0], &go, 1), 1);
	assert_int_equal(go, 'y');
	path_in(p, sizeof p, f->path, "store/data.mdb");
	memset(junk, 'J', sizeof junk);
	assert_int_equal(spit(p, junk, sizeof junk), 0);
	rc = mb_open(f->path, NULL, &b);
	printf("open with data.mdb damaged while in use: %s: %s\n", mb_errname(rc),
	       mb_last_error(NULL));
	assert_int_equal(rc, MB_ECORRUPT);
	assert_null(b);
	assert_non_null(strstr(mb_last_error(NULL), "another process"));
	after = slurp(p, &len);
	assert_int_equal(len, sizeof junk);
	assert_memory_equal(after, junk, sizeof junk);
	free(after);
	assert_int_equal(write(done[1], "q", 1), 1);
	assert_int_equal(wait_child(pid, 60), 0);
	b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0);
	assert_non_null(b);
	assert_int_equal(page_v(b, "b"), 2);
	mb_close(b);
	close(ready[0]);
	close(ready[1]);
	close(done[0]);
	close(done[1]);
}

/* data.mdb cut short (a copy interrupted, a disk error): open must not
 * crash (LMDB maps the file; pages past its end would be SIGBUS), and
 * must give a clear error or a correct bank. */
static void test_truncated_data_mdb(void **state)
{
	fx *f = *state;
	char p[4096], aside[4096];
	struct stat st;
	mb_bank *b = NULL;
	int rc;

	make_bank(f);
	path_in(p, sizeof p, f->path, "store/data.mdb");
	assert_int_equal(stat(p, &st), 0);
	assert_true(st.st_size > 3 * 4096);
	assert_int_equal(truncate(p, 3 * 4096), 0);
	rc = mb_open(f->path, NULL, &b);
	printf("open with data.mdb cut to 3 pages of %lld bytes: %s: %s\n", (long long)st.st_size,
	       mb_errname(rc), mb_last_error(NULL));
	/* a cut store is moved aside as it was and rebuilt */
	assert_int_equal(rc, 0);
	assert_int_equal(page_v(b, "a"), 1);
	assert_int_equal(page_v(b, "c"), 3);
	mb_close(b);
	find_aside(f, aside, sizeof aside);
	path_in(p, sizeof p, aside, "data.mdb");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 3 * 4096);
}

static void patch_segment(const fx *f, size_t off, const void *bytes, size_t n, bool fix_crc)
{
	char p[4096];
	uint8_t hdr[32];
	int fd;

	path_in(p, sizeof p, f->path, SEG1);
	fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, hdr, 32, 0), 32);
	memcpy(hdr + off, bytes, n);
	if (fix_crc) {
		uint32_t crc = mbj_crc32c(0, hdr, 28);
		for (int i = 0; i < 4; i++)
			hdr[28 + i] = (uint8_t)(crc >> (8 * i));
	}
	assert_int_equal(pwrite(fd, hdr, 32, 0), 32);
	close(fd);
}

/* Open a bank whose segment was damaged; the error must be @want and the
 * segment unchanged.  The store is removed first in @rebuild mode, so that
 * the journal must be read whole (as after a machine crash). */
static void expect_journal_refused(const fx *f, int want, const char *words, bool rebuild)
{
	char p[4096], *before, *after, *report = NULL;
	size_t n1 = 0, n2 = 0;
	mb_bank *b = NULL;
	int rc;

	if (rebuild) {
		path_in(p, sizeof p, f->path, "store/data.mdb");
		assert_int_equal(unlink(p), 0);
	}
	path_in(p, sizeof p, f->path, SEG1);
	before = slurp(p, &n1);
	rc = mb_open(f->path, NULL, &b);
	if (rc == 0) {  /* the damage may only show at the next write */
		rc = mb_page_put(b, "d", "{\"v\":4}", (size_t)-1);
		printf("write after damage: %s: %s\n", mb_errname(rc), mb_last_error(b));
		mb_close(b);
	} else {
		printf("open after damage: %s: %s\n", mb_errname(rc), mb_last_error(NULL));
	}
	assert_int_equal(rc, want);
	after = slurp(p, &n2);
	assert_int_equal(n1, n2);
	assert_memory_equal(before, after, n1);
	assert_int_equal(mb_journal_verify(f->path, &report), want);
	/* a newer segment is refused before a report is made */
	printf("verify: %s / %s\n", report ? report : "(no report)", mb_last_error(NULL));
	assert_non_null(strstr(report ? report : mb_last_error(NULL), words));
	mb_free(report);
	free(before);
	free(after);
}

static void test_journal_bad_magic(void **state)
{
	make_bank(*state);
	patch_segment(*state, 0, "XBJRNL\r\n", 8, false);
	expect_journal_refused(*state, MB_ECORRUPT, "magic", false);
}

static void test_journal_bad_magic_rebuild(void **state)
{
	make_bank(*state);
	patch_segment(*state, 0, "XBJRNL\r\n", 8, false);
	expect_journal_refused(*state, MB_ECORRUPT, "magic", true);
}

static void test_journal_newer_version(void **state)
{
	static const uint8_t v2[4] = { 2, 0, 0, 0 };

	make_bank(*state);
	patch_segment(*state, 8, v2, 4, true);
	expect_journal_refused(*state, MB_EVERSION, "\"clean\":false", false);
}

static void test_journal_newer_version_rebuild(void **state)
{
	static const uint8_t v2[4] = { 2, 0, 0, 0 };

	make_bank(*state);
	patch_segment(*state, 8, v2, 4, true);
	expect_journal_refused(*state, MB_EVERSION, "\"clean\":false", true);
}

/* ------------------------------------------------ read-only and full disks */

/* A read-only bind mount of the bank.  LMDB must write its lock file and
 * the bank its open.lock, so opening is refused with MB_EPERM; what a
 * reader can do without opening (verify, restore from it) still works. */
static int read_only_body(void *arg)
{
	const fx *f = arg;
	char p[4096], other[4096], *report = NULL;
	mb_bank *b = NULL;
	int rc;

	if (private_mounts())
		return CHILD_SKIP;
	if (mount(f->path, f->path, NULL, MS_BIND, NULL) ||
	    mount(NULL, f->path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL)) {
		printf("SKIP reason: read-only bind mount: %s\n", strerror(errno));
		return CHILD_SKIP;
	}
	path_in(p, sizeof p, f->path, "probe");
	NEED(open(p, O_WRONLY | O_CREAT, 0600) < 0 && errno == EROFS);
	rc = mb_open(f->path, NULL, &b);
	printf("open on a read-only mount: %s: %s\n", mb_errname(rc), mb_last_error(NULL));
	NEED(rc == MB_EPERM);
	NEED(strstr(mb_last_error(NULL), f->path) != NULL);
	NEED(mb_journal_verify(f->path, &report) == 0);
	NEED(strstr(report, "\"records\":3") != NULL);
	mb_free(report);
	/* a snapshot of a writable bank into the read-only directory */
	path_in(other, sizeof other, f->dir, "rw");
	NEED((b = open_opts(other, MB_DURABILITY_FAST, 0, 0)) != NULL);
	rc = mb_snapshot(b, f->path, NULL);
	printf("snapshot into a read-only directory: %s: %s\n", mb_errname(rc), mb_last_error(b));
	NEED(rc == MB_EPERM);
	NEED(mb_page_put(b, "still", "{}", 2) == 0);
	mb_close(b);
	return 0;
}

static void test_read_only_bank(void **state)
{
	fx *f = *state;

	make_bank(f);
	run_child(read_only_body, f, 60);
}

/* A tmpfs of @size at @dir; -1 (reason printed) when mounting is not
 * allowed here. */
static int small_fs(const char *dir, const char *size)
{
	char opt[64];

	snprintf(opt, sizeof opt, "size=%s,mode=0700", size);
	if (private_mounts())
		return -1;
	if (mount("tmpfs", dir, "tmpfs", 0, opt)) {
		printf("SKIP reason: mount tmpfs: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* Fill the filesystem of @dir with a ballast file until a write fails. */
static void fill(const char *dir, const char *name)
{
	static char block[4096];
	char p[4096];
	int fd;

	path_in(p, sizeof p, dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0600);
	while (fd >= 0 && write(fd, block, sizeof block) == (ssize_t)sizeof block)
		;
	if (fd >= 0) {
		while (write(fd, block, 1) == 1)
			;
		close(fd);
	}
}

/* Reserve @kib KiB in a ballast file, freed later to make room. */
static void ballast(const char *dir, int kib)
{
	static char block[1024];
	char p[4096];
	int fd;

	path_in(p, sizeof p, dir, "ballast");
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	for (int i = 0; fd >= 0 && i < kib; i++)
		if (write(fd, block, sizeof block) != (ssize_t)sizeof block)
			break;
	if (fd >= 0)
		close(fd);
}

/* Every page p0000..p<n-1> reads back whole. */
static void need_pages(mb_bank *b, int n)
{
	char id[32], *s = NULL;

	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof id, "p%04d", i);
		NEED(mb_page_get(b, id, &s, NULL) == 0);
		NEED(strstr(s, "yyyyyyyyyyyyyyyy") != NULL);
		mb_free(s);
	}
}

/* Pages written until the disk fills: the failing put says MB_ENOSPC,
 * every acknowledged page reads back, and after space is freed the bank
 * writes again and reopens (also as after a machine crash) whole. */
static int full_put_body(void *arg)
{
	const fx *f = arg;
	char mnt[4096], bank[4096], id[32], *props = malloc(24 * 1024), p[4096], *s = NULL;
	uint64_t count = 0;
	mb_bank *b;
	int rc = 0, acked = 0;

	path_in(mnt, sizeof mnt, f->dir, "small");
	NEED(mkdir(mnt, 0700) == 0);
	if (small_fs(mnt, "2m"))
		return CHILD_SKIP;
	ballast(mnt, 400);
	path_in(bank, sizeof bank, mnt, "bank");
	NEED((b = open_opts(bank, MB_DURABILITY_FULL, 256 << 10, 64 << 10)) != NULL);
	snprintf(props, 16, "{\"x\":\"");
	memset(props + 6, 'y', 20 * 1024);
	strcpy(props + 6 + 20 * 1024, "\"}");
	for (int i = 0; i < 400 && !rc; i++) {
		snprintf(id, sizeof id, "p%04d", i);
		if (!(rc = mb_page_put(b, id, props, (size_t)-1)))
			acked++;
	}
	printf("page put on a full disk after %d pages: %s: %s\n", acked, mb_errname(rc),
	       mb_last_error(b));
	NEED(rc == MB_ENOSPC);
	NEED(acked > 5);
	NEED(mb_page_count(b, &count) == 0);
	printf("pages readable after the failure: %llu\n", (unsigned long long)count);
	NEED(count == (uint64_t)acked);
	need_pages(b, acked);
	/* room again: the next write succeeds on the same handle */
	path_in(p, sizeof p, mnt, "ballast");
	NEED(unlink(p) == 0);
	NEED(mb_page_put(b, "after", "{\"x\":\"yyyyyyyyyyyyyyyyyyyyyyyyyyyy\"}", (size_t)-1) == 0);
	/* the put that failed: its record reached the journal before the
	 * store's commit failed; the failing call withdrew it (it applies as
	 * nothing), so the write above must not bring it back (a "ghost") */
	snprintf(id, sizeof id, "p%04d", acked);
	rc = mb_page_get(b, id, &s, NULL);
	mb_free(s);
	printf("the put that failed with MB_ENOSPC is %s after the next write\n",
	       rc == 0 ? "VISIBLE (ghost)" : "absent");
	NEED(rc == 0 || rc == MB_ENOTFOUND);
	NEED(rc == MB_ENOTFOUND);
	acked += rc == 0 ? 2 : 1;
	NEED(mb_page_count(b, &count) == 0 && count == (uint64_t)acked);
	mb_close(b);
	/* and a rebuild from the journal alone (a machine crash) has them all */
	setenv("MEMBANK_TEST_BOOT_ID", "00000000-full-disk-other-boot-000000", 1);
	NEED((b = open_opts(bank, MB_DURABILITY_FULL, 0, 64 << 10)) != NULL);
	NEED(mb_page_count(b, &count) == 0);
	printf("after a rebuild from the journal: %llu pages (acknowledged %d)\n",
	       (unsigned long long)count, acked);
	NEED(count == (uint64_t)acked);
	need_pages(b, acked - 1);
	mb_close(b);
	free(props);
	return 0;
}

static void test_disk_full_page_put(void **state)
{
	run_child(full_put_body, *state, 120);
}

/* Whether @b writes its map in place (mb_stats' store.writemap). */
static bool in_place(mb_bank *b)
{
	char *doc = NULL;
	bool yes;

	NEED(mb_stats(b, &doc) == 0);
	yes = strstr(doc, "\"writemap\":true") != NULL;
	mb_free(doc);
	return yes;
}

/* A process that writes its map in place adopts growth made by another
 * process (one that writes with pwrite(): MEMBANK_TEST_NO_WRITEMAP) when
 * the disk is full: the map is adopted, but the blocks under it cannot be
 * reserved (libshm/kv_lmdb.c, map_resize), so its writes fail with
 * MB_ENOSPC and change nothing while its reads serve; once there is room,
 * the next write reserves them and succeeds, and every byte of the store
 * has its block (no page of the map can be SIGBUS). */
static int full_adopt_body(void *arg)
{
	const fx *f = arg;
	char mnt[4096], bank[4096], p[4096], id[32], *props = malloc(10 * 1024);
	uint64_t count = 0;
	struct stat st;
	mb_bank *b;
	pid_t pid;
	int rc;

	path_in(mnt, sizeof mnt, f->dir, "small");
	NEED(mkdir(mnt, 0700) == 0);
	if (small_fs(mnt, "8m"))
		return CHILD_SKIP;
	path_in(bank, sizeof bank, mnt, "bank");
	NEED((b = open_opts(bank, MB_DURABILITY_FAST, 256 << 10, 256 << 10)) != NULL);
	NEED(in_place(b));
	NEED(mb_page_put(b, "first", "{}", 2) == 0);
	snprintf(props, 16, "{\"x\":\"");
	memset(props + 6, 'y', 8 * 1024);
	strcpy(props + 6 + 8 * 1024, "\"}");
	fflush(NULL);
	if ((pid = fork()) == 0) {   /* grows the map to 2 MiB, with pwrite() */
		mb_bank *cb;
		int ok;

		setenv("MEMBANK_TEST_NO_WRITEMAP", "1", 1);
		cb = open_opts(bank, MB_DURABILITY_FAST, 256 << 10, 256 << 10);
		ok = cb && !in_place(cb);
		for (int i = 0; ok && i < 160; i++) {
			snprintf(id, sizeof id, "p%04d", i);
			ok = mb_page_put(cb, id, props, (size_t)-1) == 0;
		}
		mb_close(cb);
		_exit(ok ? 0 : 1);
	}
	NEED(wait_child(pid, 60) == 0);
	fill(mnt, "fill");
	rc = mb_page_put(b, "after", "{}", 2);
	printf("an in-place writer adopting growth on a full disk: %s: %s\n", mb_errname(rc),
	       mb_last_error(b));
	NEED(rc == MB_ENOSPC);
	NEED(mb_page_count(b, &count) == 0);
	NEED(count == 161);
	path_in(p, sizeof p, mnt, "fill");
	NEED(unlink(p) == 0);
	NEED(mb_page_put(b, "after", "{}", 2) == 0);
	NEED(mb_page_count(b, &count) == 0 && count == 162);
	path_in(p, sizeof p, bank, "store/data.mdb");
	NEED(stat(p, &st) == 0);
	printf("data.mdb: %lld bytes, %lld allocated\n", (long long)st.st_size,
	       (long long)st.st_blocks * 512);
	NEED(st.st_size >= 2 << 20);
	NEED((uint64_t)st.st_blocks * 512 >= (uint64_t)st.st_size);
	mb_close(b);
	free(props);
	return 0;
}

static void test_disk_full_adopt_growth(void **state)
{
	run_child(full_adopt_body, *state, 120);
}

/* What an open may find missing or stale on a full disk. */
enum full_case { FULL_PLAIN, FULL_NO_BOOT_ID, FULL_OTHER_BOOT, FULL_NO_LOCK_MDB,
                 FULL_NO_SYNC_SHM, FULL_CASES };
static const char *const full_case_name[FULL_CASES] = {
	"nothing missing", "store/boot_id missing", "another boot's store",
	"store/lock.mdb missing", "journal/sync.shm missing",
};

/* Reads on a full disk: the open needs no new block (it used to commit an
 * empty settle, rewrite boot_id through a temp file, and map lock.mdb and
 * sync.shm with holes: SIGBUS), so reads work and a write fails with
 * MB_ENOSPC naming why; a part that must be created and cannot is a clean
 * MB_ENOSPC naming it, never a crash.  After space is freed, all writes. */
static int full_read_body(void *arg)
{
	const fx *f = arg;
	char mnt[4096], bank[4096], p[4096], id[32], *s = NULL;
	uint64_t count = 0;
	mb_bank *b;
	int rc;

	path_in(mnt, sizeof mnt, f->dir, "small");
	NEED(mkdir(mnt, 0700) == 0);
	if (small_fs(mnt, "2m"))
		return CHILD_SKIP;
	path_in(bank, sizeof bank, mnt, "bank");
	for (int c = 0; c < FULL_CASES; c++) {
		rm_rf(bank);
		NEED((b = open_opts(bank, MB_DURABILITY_FULL, 256 << 10, 64 << 10)) != NULL);
		for (int i = 0; i < 5; i++) {
			snprintf(id, sizeof id, "p%04d", i);
			NEED(mb_page_put(b, id, "{\"x\":\"yyyyyyyyyyyyyyyyyyyy\"}", (size_t)-1) == 0);
		}
		mb_close(b);
		if (c == FULL_NO_BOOT_ID)
			path_in(p, sizeof p, bank, "store/boot_id");
		else if (c == FULL_NO_LOCK_MDB)
			path_in(p, sizeof p, bank, "store/lock.mdb");
		else if (c == FULL_NO_SYNC_SHM)
			path_in(p, sizeof p, bank, "journal/sync.shm");
		if (c == FULL_NO_BOOT_ID || c == FULL_NO_LOCK_MDB || c == FULL_NO_SYNC_SHM)
			NEED(unlink(p) == 0);
		if (c == FULL_OTHER_BOOT)
			setenv("MEMBANK_TEST_BOOT_ID", "00000000-full-disk-read-other-boot00", 1);
		fill(mnt, "ballast");
		rc = mb_open(bank, NULL, &b);
		printf("%s, disk full: open: %s: %s\n", full_case_name[c], mb_errname(rc),
		       mb_last_error(NULL));
		if (c == FULL_NO_LOCK_MDB || c == FULL_NO_SYNC_SHM) {
			NEED(rc == 0 || rc == MB_ENOSPC);
			NEED(rc == 0 || strstr(mb_last_error(NULL), c == FULL_NO_LOCK_MDB ?
			                       "lock.mdb" : "sync.shm"));
		} else {
			NEED(rc == 0);
		}
		if (!rc) {
			NEED(mb_page_get(b, "p0003", &s, NULL) == 0);
			NEED(strstr(s, "yyyy") != NULL);
			mb_free(s);
			NEED(mb_page_count(b, &count) == 0 && count == 5);
			NEED(mb_sync_status(b, &s) == 0);
			mb_free(s);
			/* a small put may fit (the segment and the map have room) */
			rc = mb_page_put(b, "more", "{}", 2);
			printf("  and a put: %s: %s\n", mb_errname(rc), mb_last_error(b));
			NEED(rc == 0 || rc == MB_ENOSPC);
			if (c == FULL_NO_BOOT_ID)  /* no room for the id it needs first */
				NEED(rc == MB_ENOSPC && strstr(mb_last_error(b), "boot's id"));
			mb_close(b);
		}
		path_in(p, sizeof p, mnt, "ballast");
		NEED(unlink(p) == 0);
		NEED((b = open_opts(bank, MB_DURABILITY_FULL, 0, 64 << 10)) != NULL);
		NEED(mb_page_put(b, "more", "{}", 2) == 0);
		NEED(mb_page_count(b, &count) == 0 && count == 6);
		mb_close(b);
		unsetenv("MEMBANK_TEST_BOOT_ID");
	}
	return 0;
}

static void test_disk_full_reads(void **state)
{
	run_child(full_read_body, *state, 120);
}

/* A snapshot into a full filesystem: MB_ENOSPC, the previous snapshot
 * files unchanged, no temp file left; after space is freed it succeeds. */
static int full_snapshot_body(void *arg)
{
	const fx *f = arg;
	char mnt[4096], out[4096], p[4096], *before, *after, props[4096];
	struct dirent *e;
	mb_bank *b;
	DIR *d;
	int rc;

	path_in(mnt, sizeof mnt, f->dir, "small");
	NEED(mkdir(mnt, 0700) == 0);
	if (small_fs(mnt, "1m"))
		return CHILD_SKIP;
	path_in(out, sizeof out, mnt, "out");
	NEED(mkdir(out, 0700) == 0);
	NEED((b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0)) != NULL);
	NEED(mb_page_put(b, "first", "{\"v\":1}", (size_t)-1) == 0);
	NEED(mb_snapshot(b, out, NULL) == 0);
	path_in(p, sizeof p, out, "notion_pages.json");
	NEED((before = slurp(p, NULL)) != NULL);
	memset(props, 0, sizeof props);
	snprintf(props, 16, "{\"x\":\"");
	memset(props + 6, 'z', 3000);
	strcpy(props + 6 + 3000, "\"}");
	for (int i = 0; i < 200; i++) {
		char id[16];
		snprintf(id, sizeof id, "q%03d", i);
		NEED(mb_page_put(b, id, props, (size_t)-1) == 0);
	}
	fill(mnt, "ballast");
	rc = mb_snapshot(b, out, NULL);
	printf("snapshot on a full disk: %s: %s\n", mb_errname(rc), mb_last_error(b));
	NEED(rc == MB_ENOSPC);
	NEED((after = slurp(p, NULL)) != NULL);
	NEED(strcmp(before, after) == 0);
	free(after);
	NEED((d = opendir(out)) != NULL);
	while ((e = readdir(d)))
		NEED(!strstr(e->d_name, ".tmp"));
	closedir(d);
	path_in(p, sizeof p, mnt, "ballast");
	NEED(unlink(p) == 0);
	NEED(mb_snapshot(b, out, NULL) == 0);
	path_in(p, sizeof p, out, "notion_pages.json");
	NEED((after = slurp(p, NULL)) != NULL);
	NEED(strstr(after, "\"q199\"") != NULL);
	free(before);
	/* the copy of the pages in a file, as a bank above the memory bound
	 * has it (snapshot.c, SPILL): the full disk stops the snapshot there,
	 * and nothing changes, nothing is left */
	before = after;
	NEED(mb_page_put(b, "r", props, (size_t)-1) == 0);
	setenv("MEMBANK_TEST_SPILL_MEM", "0", 1);
	fill(mnt, "ballast");
	rc = mb_snapshot(b, out, NULL);
	printf("snapshot on a full disk, the copy in a file: %s: %s\n", mb_errname(rc),
	       mb_last_error(b));
	unsetenv("MEMBANK_TEST_SPILL_MEM");
	NEED(rc == MB_ENOSPC);
	NEED(strstr(mb_last_error(b), "spill file") != NULL);
	NEED((after = slurp(p, NULL)) != NULL);
	NEED(strcmp(before, after) == 0);
	free(after);
	free(before);
	NEED((d = opendir(out)) != NULL);
	rc = 0;
	while ((e = readdir(d)))
		rc += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	NEED(rc == 5);   /* the four files and checkpoint.json, nothing else */
	mb_close(b);
	return 0;
}

static void test_disk_full_snapshot(void **state)
{
	run_child(full_snapshot_body, *state, 120);
}

/* Regression (fuzz-restore, crash-3b62d7e1): a notion_pages.json whose
 * last_updated value is longer than its 64-byte bound freed an
 * uninitialised cJSON pointer (load.c parse_at).  Also the fuzzer's own
 * input, and a truncated value: MB_EINVAL, no target left. */
static void test_restore_fuzz_regressions(void **state)
{
	static const char *const docs[][2] = {  /* before and after a long value */
		{ "{\"pages\":{},\"last_updated\":\"",
		  "\",\"metadata\":{\"total_pages\":0,\"last_sync\":null}}" },
		{ "{\"pages\":{},\"last_updated\":n", "\x8f:{\"total_pages\":0,\"last_sync\":null}}" },
		{ "{\"pages\":{},\"last_updated\":\"", "" },
	};
	fx *f = *state;
	char from[4096], target[4096], p[4096], text[1024], eee[200];
	struct stat st;
	mb_bank *b;

	make_bank(f);
	path_in(from, sizeof from, f->dir, "from");
	path_in(target, sizeof target, f->dir, "target");
	assert_int_equal(mkdir(from, 0700), 0);
	b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0);
	assert_int_equal(mb_snapshot(b, from, NULL), 0);
	mb_close(b);
	memset(eee, 'e', sizeof eee - 1);
	eee[sizeof eee - 1] = '\0';
	for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
		snprintf(text, sizeof text, "%s%s%s", docs[i][0], eee, docs[i][1]);
		path_in(p, sizeof p, from, "notion_pages.json");
		assert_int_equal(spit(p, text, strlen(text)), 0);
		assert_int_equal(mb_restore(from, target, NULL, 0), MB_EINVAL);
		assert_non_null(strstr(mb_last_error(NULL), "notion_pages.json"));
		assert_int_equal(lstat(target, &st), -1);
	}
}

/* A FIFO planted where the bank reads a small file (membank.json,
 * checkpoint.json): open() of a FIFO blocks until a writer comes, so a
 * reader that does not ask for O_NONBLOCK would hang forever.  In a child
 * with a timeout, so that a regression fails instead of hanging. */
static int fifo_body(void *arg)
{
	const fx *f = arg;
	char p[4096];
	mb_bank *b = NULL;
	int rc;

	path_in(p, sizeof p, f->path, "membank.json");
	NEED(unlink(p) == 0 && mkfifo(p, 0600) == 0);
	rc = mb_open(f->path, NULL, &b);
	printf("open with membank.json a FIFO: %s: %s\n", mb_errname(rc), mb_last_error(NULL));
	NEED(rc == MB_ENOTBANK && b == NULL);
	return 0;
}

static void test_fifo_in_bank(void **state)
{
	make_bank(*state);
	run_child(fifo_body, *state, 20);
}

/* The store is a cache: deleting it (the whole store/, or data.mdb alone
 * with boot_id kept) must give back the whole bank from the checkpoint
 * and the journal, also after the checkpoint removed the segments it
 * covers. */
enum store_loss { DIR_DELETED, FILES_DELETED, META_OVERWRITTEN };

static void store_deleted(const fx *f, enum store_loss how)
{
	char p[4096], id[32], *before, *after;
	uint64_t count = 0;
	mb_bank *b = open_opts(f->path, MB_DURABILITY_FAST, 0, 64 << 10);
	mb_snapshot_info info;

	assert_non_null(b);
	assert_int_equal(mb_config_update(b, "{\"cache_settings\":{\"max_entries\":0}}", (size_t)-1), 0);
	for (int i = 0; i < 300; i++) {
		snprintf(id, sizeof id, "page-%03d", i);
		assert_int_equal(mb_page_put(b, id, "{\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", (size_t)-1), 0);
	}
	assert_int_equal(mb_snapshot(b, NULL, &info), 0);
	for (int i = 300; i < 310; i++) {  /* a tail after the checkpoint */
		snprintf(id, sizeof id, "page-%03d", i);
		assert_int_equal(mb_page_put(b, id, "{}", 2), 0);
	}
	before = state_of(b);
	mb_close(b);
	printf("checkpoint at seq %llu removed %llu journal segments\n",
	       (unsigned long long)info.seq, (unsigned long long)info.segments_removed);
	if (how == META_OVERWRITTEN) {
		/* what a program with its stdout on data.mdb wrote there: both
		 * meta pages (LMDB then refuses the file with MDB_INVALID) */
		static const char msg[] = "membank: page get: page \"x\": not found\n";
		char junk[8192];
		for (size_t i = 0; i < sizeof junk; i++)
			junk[i] = msg[i % (sizeof msg - 1)];
		path_in(p, sizeof p, f->path, "store/data.mdb");
		int fd = open(p, O_WRONLY);
		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, junk, sizeof junk, 0), (ssize_t)sizeof junk);
		close(fd);
	} else if (how == DIR_DELETED) {
		path_in(p, sizeof p, f->path, "store");
		rm_rf(p);
	} else {
		path_in(p, sizeof p, f->path, "store/data.mdb");
		assert_int_equal(unlink(p), 0);
		path_in(p, sizeof p, f->path, "store/lock.mdb");
		assert_int_equal(unlink(p), 0);
	}
	b = open_opts(f->path, MB_DURABILITY_FAST, 0, 64 << 10);
	assert_non_null(b);
	assert_int_equal(mb_page_count(b, &count), 0);
	after = state_of(b);
	printf("store %s: %llu pages after reopening (310 before)\n",
	       how == DIR_DELETED ? "directory deleted" : how == FILES_DELETED ?
	       "files deleted" : "meta pages overwritten", (unsigned long long)count);
	assert_int_equal(count, 310);
	assert_string_equal(before, after);
	mb_close(b);
	free(before);
	free(after);
}

static void test_store_dir_deleted(void **state)
{
	store_deleted(*state, DIR_DELETED);
}

static void test_store_files_deleted(void **state)
{
	store_deleted(*state, FILES_DELETED);
}

/* data.mdb's meta pages overwritten (by a program whose stdout was on it):
 * the store is rebuilt like a deleted one, with every page. */
static void test_store_meta_overwritten(void **state)
{
	char aside[4096];

	store_deleted(*state, META_OVERWRITTEN);
	find_aside(*state, aside, sizeof aside);
}

/* Parts of a bank replaced by symlinks to somewhere else: store/,
 * journal/, a journal segment, membank.json, the write queue.  Each refused
 * at open, the link's target untouched. */
static void test_symlinked_parts(void **state)
{
	static const char *const parts[] = {
		"store", "journal", SEG1, "membank.json", "store/group.shm",
	};
	fx *f = *state;
	char p[4096], aside[4096], *before, *after;
	size_t n1 = 0, n2 = 0;
	mb_bank *b = NULL;
	int rc;

	make_bank(f);
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		path_in(p, sizeof p, f->path, parts[i]);
		snprintf(aside, sizeof aside, "%s/moved-%zu", f->dir, i);
		assert_int_equal(rename(p, aside), 0);
		assert_int_equal(symlink(aside, p), 0);
		before = strchr(parts[i], '.') ? slurp(aside, &n1) : NULL;
		rc = mb_open(f->path, NULL, &b);
		printf("%s a symlink: %s: %s\n", parts[i], mb_errname(rc), mb_last_error(NULL));
		assert_int_not_equal(rc, 0);
		assert_null(b);
		/* the journal reports ELOOP as MB_EIO (its code map): clear enough */
		assert_true(rc == MB_EUNSAFE || rc == MB_EIO);
		assert_true(strstr(mb_last_error(NULL), "symlink") ||
		            strstr(mb_last_error(NULL), "symbolic link"));
		if (before) {
			after = slurp(aside, &n2);
			assert_int_equal(n1, n2);
			assert_memory_equal(before, after, n1);
			free(after);
			free(before);
		}
		assert_int_equal(unlink(p), 0);
		assert_int_equal(rename(aside, p), 0);
	}
	b = open_opts(f->path, MB_DURABILITY_FULL, 0, 0);  /* whole again: it opens */
	assert_int_equal(page_v(b, "c"), 3);
	mb_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_snapshot_symlink_targets, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_dir_symlink, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_dir_symlink, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_foreign_data_mdb, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_invalid_store_in_use, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_truncated_data_mdb, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_journal_bad_magic, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_journal_bad_magic_rebuild, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_journal_newer_version, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_journal_newer_version_rebuild, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_read_only_bank, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_disk_full_page_put, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_disk_full_adopt_growth, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_disk_full_snapshot, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_disk_full_reads, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_restore_fuzz_regressions, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_fifo_in_bank, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_dir_deleted, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_files_deleted, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_store_meta_overwritten, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_symlinked_parts, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
