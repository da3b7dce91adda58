/*
 * test_bounds.c - network filesystems refused at open, the modes of every
 * file and directory the bank creates, and the bounds of README's Limits
 * table that tests/store/test_ops.c does not check already.
 *
 * Network filesystems cannot be mounted here, so statfs() is wrapped at
 * link time (-Wl,--wrap=statfs64: the library's call lands in
 * __wrap_statfs64 below), which reports the filesystem type a test chose
 * for paths under a prefix.  That exercises the real decision in bank.c
 * (network_fs() and the allow_network_fs override) on the real open path.
 */
#include <ftw.h>
#include <sys/vfs.h>

#include "hard.h"

/* The wrapper's setting: a test's only process-wide state, because the
 * wrapped call has no context. */
static char fake_prefix[4096];
static long fake_type;

int __real_statfs64(const char *path, struct statfs64 *buf);
int __wrap_statfs64(const char *path, struct statfs64 *buf);

int __wrap_statfs64(const char *path, struct statfs64 *buf)
{
	int rc = __real_statfs64(path, buf);

	if (rc == 0 && fake_type && fake_prefix[0] &&
	    !strncmp(path, fake_prefix, strlen(fake_prefix)))
		buf->f_type = fake_type;
	return rc;
}

static const struct { long type; const char *name; } remote[] = {
	{ 0x6969, "NFS" }, { 0x517b, "SMB" }, { (long)0xff534d42, "CIFS" },
	{ (long)0xfe534d42, "SMB2" }, { 0x65735546, "FUSE" }, { 0x00c36400, "Ceph" },
	{ 0x01021997, "9P" }, { 0x47504653, "GPFS" },
};

static void test_network_fs_refused(void **state)
{
	fx *f = *state;
	char p[4096];
	mb_options o;
	mb_bank *b = NULL;

	snprintf(fake_prefix, sizeof fake_prefix, "%s", f->dir);
	for (size_t i = 0; i < sizeof remote / sizeof remote[0]; i++) {
		fake_type = remote[i].type;
		assert_int_equal(mb_open(f->path, NULL, &b), MB_EUNSAFE);
		assert_null(b);
		assert_non_null(strstr(mb_last_error(NULL), "network filesystem"));
		assert_non_null(strstr(mb_last_error(NULL), "allow_network_fs"));
		/* refused before anything of a bank was written */
		snprintf(p, sizeof p, "%s/membank.json", f->path);
		assert_int_equal(access(p, F_OK), -1);
		printf("%s (0x%lx): refused\n", remote[i].name, remote[i].type);
	}
	/* the override opens it, and the bank works */
	mb_options_init(&o);
	o.allow_network_fs = true;
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	assert_int_equal(mb_page_put(b, "n", "{}", 2), 0);
	mb_close(b);
	/* and local filesystems are never refused */
	fake_type = 0xEF53;  /* ext4 */
	assert_int_equal(mb_open(f->path, NULL, &b), 0);
	mb_close(b);
	fake_type = 0;
}

/* ------------------------------------------------------------- modes */

typedef struct walk {
	unsigned file_mode, dir_mode;
	int files, dirs, wrong;
	char seen[8192];
} walk;

static walk *cur_walk;  /* nftw has no context argument */

static int visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	walk *w = cur_walk;
	unsigned want = S_ISDIR(st->st_mode) ? w->dir_mode : w->file_mode;

	(void)flag;
	if (S_ISDIR(st->st_mode))
		w->dirs++;
	else
		w->files++;
	if (ftw->level > 0 && strlen(w->seen) + strlen(path) + 2 < sizeof w->seen) {
		strcat(w->seen, path + ftw->base);
		strcat(w->seen, " ");
	}
	if ((st->st_mode & 0777) == want)
		return 0;
	printf("wrong mode %o (want %o): %s\n", st->st_mode & 0777, want, path);
	w->wrong++;
	return 0;
}

/* Everything a bank creates over its life: the store, the journal and its
 * sync state, the identity, the locks, a checkpoint and its view files. */
static void exercise(const char *path, const mb_options *o)
{
	mb_bank *b = NULL;

	assert_int_equal(mb_open(path, o, &b), 0);
	assert_int_equal(mb_page_put(b, "a", "{\"v\":1}", (size_t)-1), 0);
	assert_int_equal(mb_sync_record(b, "success", NULL), 0);
	assert_int_equal(mb_error_log(b, "T", "m"), 0);
	assert_int_equal(mb_config_update(b, "{\"cache_settings\":{\"ttl_seconds\":0}}", (size_t)-1), 0);
	assert_int_equal(mb_snapshot(b, NULL, NULL), 0);
	assert_int_equal(mb_page_put(b, "b", "{\"v\":2}", (size_t)-1), 0);
	assert_int_equal(mb_snapshot(b, NULL, NULL), 0);
	assert_int_equal(mb_close(b), 0);
}

static void check_modes(const char *path, unsigned fmode, unsigned dmode)
{
	static const char *const expect[] = {
		"membank.json", "open.lock", "compactor.lock", "boot_id", "data.mdb", "lock.mdb",
		"sync.shm", ".jnl", "checkpoint.json", "notion_pages.json", "sync_status.json",
		"error_log.json", "config_cache.json", "store", "journal", "checkpoint",
	};
	walk w = { fmode, dmode, 0, 0, 0, "" };

	cur_walk = &w;
	assert_int_equal(nftw(path, visit, 16, FTW_PHYS), 0);
	cur_walk = NULL;
	printf("%d files and %d directories, all %o/%o: %s\n", w.files, w.dirs, fmode, dmode, w.seen);
	for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
		if (!strstr(w.seen, expect[i]))
			fail_msg("the bank has no %s: the walk checked less than it should", expect[i]);
	assert_int_equal(w.wrong, 0);
}

static void test_modes_every_file(void **state)
{
	fx *f = *state;
	mode_t old = umask(0);  /* the umask cannot widen them */

	exercise(f->path, NULL);
	umask(old);
	check_modes(f->path, 0600, 0700);
}

static void test_modes_group_shared(void **state)
{
	fx *f = *state;
	mb_options o;
	mode_t old = umask(077);  /* nor narrow a group-shared bank */

	mb_options_init(&o);
	o.group_shared = true;
	exercise(f->path, &o);
	umask(old);
	check_modes(f->path, 0660, 0770);
}

/* ------------------------------------------------------------- bounds */

static void expect_rc(int rc, int want, const mb_bank *b, const char *needle)
{
	if (rc != want || (needle && !strstr(mb_last_error(b), needle)))
		fail_msg("want %s naming \"%s\", got %s \"%s\"", mb_errname(want), needle ? needle : "",
		         mb_errname(rc), mb_last_error(b));
}

static void test_option_bounds(void **state)
{
	fx *f = *state;
	mb_options o;
	mb_bank *b = NULL;

	mb_options_init(&o);
	o.history_limit = MB_MAX_HISTORY + 1;
	expect_rc(mb_open(f->path, &o, &b), MB_EINVAL, NULL, "history_limit");
	mb_options_init(&o);
	o.max_json_bytes = MB_MAX_JSON_BYTES + 1;
	expect_rc(mb_open(f->path, &o, &b), MB_EINVAL, NULL, "max_json_bytes");
	o.max_json_bytes = MB_MIN_JSON_BYTES - 1;
	expect_rc(mb_open(f->path, &o, &b), MB_EINVAL, NULL, "max_json_bytes 63 is out of range");
	mb_options_init(&o);
	o.segment_bytes = (64 << 10) - 1;
	expect_rc(mb_open(f->path, &o, &b), MB_EINVAL, NULL, "segment_bytes");
	mb_options_init(&o);
	o.map_size = (256 << 10) - 1;
	expect_rc(mb_open(f->path, &o, &b), MB_EINVAL, NULL, "map_size");
	assert_null(b);
	assert_int_equal(access(f->path, F_OK), -1);  /* nothing created */
	/* the ceilings themselves are accepted */
	mb_options_init(&o);
	o.history_limit = MB_MAX_HISTORY;
	o.max_json_bytes = MB_MAX_JSON_BYTES;
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	mb_close(b);
}

static char *json_of(size_t bytes, char fill)
{
	char *s = malloc(bytes + 1);

	memcpy(s, "{\"a\":\"", 6);
	memset(s + 6, fill, bytes - 8);
	memcpy(s + bytes - 2, "\"}", 3);
	return s;
}

/* membank.json of the bank at @path, replaced by @text. */
static void write_identity(const char *path, const char *text)
{
	char name[4200];
	FILE *fp;

	snprintf(name, sizeof name, "%s/membank.json", path);
	assert_non_null(fp = fopen(name, "w"));
	fputs(text, fp);
	fclose(fp);
}

static int put_with(const char *path, size_t max, const char *json)
{
	mb_options o;
	mb_bank *b = NULL;
	int rc;

	mb_options_init(&o);
	o.max_json_bytes = max;
	o.durability = MB_DURABILITY_FAST;
	if ((rc = mb_open(path, &o, &b)))
		return rc;
	rc = mb_page_put(b, "p", json, (size_t)-1);
	mb_close(b);
	return rc;
}

/* max_json_bytes is the bank's (membank.json), set at creation: every
 * handle applies it (the command and Python too: tests/cli, tests/python
 * JsonLimit); a handle may lower it for itself, never raise it.  Before,
 * each handle chose (the command 16 MiB, the library and Python 1 MiB), so
 * one client stored what another refused. */
static void test_max_json_bytes_option(void **state)
{
	fx *f = *state;
	char *small = json_of(101, 'x'), *hundred = json_of(100, 'x'), *ninety = json_of(90, 'z');
	char *big = json_of(2 << 20, 'y'), *mib = json_of(1 << 20, 'm');
	char *mib1 = json_of((1 << 20) + 1, 'n'), other[4200];
	mb_options o;
	mb_bank *b = NULL;

	mb_options_init(&o);
	o.max_json_bytes = 100;
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	expect_rc(mb_page_put(b, "s", small, (size_t)-1), MB_EINVAL, b, "larger than the limit of 100");
	expect_rc(mb_config_update(b, small, (size_t)-1), MB_EINVAL, b, "larger than the limit");
	small[100] = '\0';  /* 100 bytes, but no longer JSON: the size passed */
	expect_rc(mb_page_put(b, "s", small, 100), MB_EINVAL, b, "invalid JSON");
	assert_int_equal(mb_page_put(b, "h", hundred, (size_t)-1), 0);
	mb_close(b);
	/* a handle cannot raise it ... */
	mb_options_init(&o);
	o.max_json_bytes = MB_MAX_JSON_BYTES;
	b = NULL;
	expect_rc(mb_open(f->path, &o, &b), MB_EINVAL, NULL, "accepts at most 100");
	assert_null(b);
	/* ... takes it with 0, and may lower it for itself */
	small[100] = 'x';  /* 101 bytes of JSON again */
	expect_rc(put_with(f->path, 0, small), MB_EINVAL, NULL, NULL);
	assert_int_equal(put_with(f->path, 0, hundred), 0);
	expect_rc(put_with(f->path, 80, ninety), MB_EINVAL, NULL, NULL);
	assert_int_equal(put_with(f->path, 0, ninety), 0);

	/* a bank created with the ceiling accepts 2 MiB from every handle */
	snprintf(other, sizeof other, "%s-big", f->path);
	assert_int_equal(put_with(other, MB_MAX_JSON_BYTES, big), 0);
	assert_int_equal(put_with(other, 0, big), 0);  /* failed before: 1 MiB per handle */
	assert_int_equal(mb_open(other, NULL, &b), 0);
	assert_int_equal(mb_page_put(b, "big2", big, (size_t)-1), 0);
	mb_close(b);

	/* a bank without the key (created before it): 1 MiB */
	write_identity(other, "{\"format\":1,\"history_limit\":100}\n");
	assert_int_equal(put_with(other, 0, mib), 0);
	expect_rc(put_with(other, 0, mib1), MB_EINVAL, NULL, NULL);
	expect_rc(put_with(other, MB_MAX_JSON_BYTES, mib), MB_EINVAL, NULL, "accepts at most 1048576");
	/* an absurd stored value is not a bank of ours */
	write_identity(other, "{\"format\":1,\"history_limit\":100,\"max_json_bytes\":1e12}\n");
	expect_rc(put_with(other, 0, mib), MB_ENOTBANK, NULL, "max_json_bytes");
	write_identity(other, "{\"format\":1,\"history_limit\":100,\"max_json_bytes\":8}\n");
	expect_rc(put_with(other, 0, mib), MB_ENOTBANK, NULL, "max_json_bytes");
	free(small);
	free(hundred);
	free(ninety);
	free(big);
	free(mib);
	free(mib1);
}

/* A restore --force keeps the replaced bank's max_json_bytes (a property
 * of the bank, not of the four files); a restore into a new bank takes the
 * options' (default 1 MiB). */
static void test_restore_keeps_max_json_bytes(void **state)
{
	fx *f = *state;
	char files[4200], copy[4200];
	char *mib1 = json_of((1 << 20) + 1, 'n');
	mb_options o;
	mb_bank *b = NULL;

	mb_options_init(&o);
	o.max_json_bytes = MB_MAX_JSON_BYTES;
	o.durability = MB_DURABILITY_FAST;
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	assert_int_equal(mb_page_put(b, "big", mib1, (size_t)-1), 0);
	snprintf(files, sizeof files, "%s-files", f->path);
	assert_int_equal(mkdir(files, 0700), 0);
	assert_int_equal(mb_snapshot(b, files, NULL), 0);
	mb_close(b);
	assert_int_equal(mb_restore(files, f->path, NULL, MB_RESTORE_FORCE), 0);
	assert_int_equal(put_with(f->path, 0, mib1), 0);
	snprintf(copy, sizeof copy, "%s-copy", f->path);
	assert_int_equal(mb_restore(files, copy, NULL, 0), 0);
	expect_rc(put_with(copy, 0, mib1), MB_EINVAL, NULL, NULL);
	free(mib1);
}

static char *text_of(size_t n, char c)
{
	char *s = malloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* Text fields at their bound pass, one byte over fails, nothing changes. */
static void test_text_bounds(void **state)
{
	fx *f = *state;
	char *t4096 = text_of(MB_MAX_TEXT_BYTES, 'm'), *t4097 = text_of(MB_MAX_TEXT_BYTES + 1, 'm');
	char *ty128 = text_of(MB_MAX_TYPE_BYTES, 'T'), *ty129 = text_of(MB_MAX_TYPE_BYTES + 1, 'T');
	char *api65 = malloc(128), *v65 = text_of(65, 'v'), *before, *after;
	mb_bank *b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);

	assert_int_equal(mb_error_log(b, ty128, t4096), 0);
	assert_int_equal(mb_error_resolve(b, ty128, t4096), 0);
	assert_int_equal(mb_sync_record(b, "failed", t4096), 0);
	before = state_of(b);
	expect_rc(mb_error_log(b, ty129, "m"), MB_EINVAL, b, "longer than 128");
	expect_rc(mb_error_log(b, "T", t4097), MB_EINVAL, b, "longer than 4096");
	expect_rc(mb_error_resolve(b, "T", t4097), MB_EINVAL, b, "longer than 4096");
	expect_rc(mb_error_resolve(b, ty129, "s"), MB_EINVAL, b, "longer than 128");
	expect_rc(mb_sync_record(b, "failed", t4097), MB_EINVAL, b, "longer than 4096");
	snprintf(api65, 128, "{\"notion_settings\":{\"api_version\":\"%s\"}}", v65);
	expect_rc(mb_config_update(b, api65, (size_t)-1), MB_EINVAL, b, "api_version");
	expect_rc(mb_config_update(b, "{\"notion_settings\":{\"timeout_seconds\":3600.5}}",
	                           (size_t)-1), MB_EINVAL, b, "timeout_seconds");
	after = state_of(b);
	assert_string_equal(before, after);
	mb_close(b);
	free(before);
	free(after);
	free(t4096);
	free(t4097);
	free(ty128);
	free(ty129);
	free(api65);
	free(v65);
}

/* history_limit keeps exactly that many entries of each history. */
static void test_history_limit_enforced(void **state)
{
	fx *f = *state;
	mb_options o;
	mb_bank *b = NULL;
	cJSON *j;

	mb_options_init(&o);
	o.history_limit = 7;
	o.durability = MB_DURABILITY_FAST;
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(mb_sync_record(b, "success", NULL), 0);
		assert_int_equal(mb_error_log(b, "T", "m"), 0);
	}
	j = sync_doc(b);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "sync_history")), 7);
	assert_int_equal(num_at(j, "success_count", NULL), 20);
	cJSON_Delete(j);
	mb_close(b);
	/* fixed when the bank was created: a later open asking for another
	 * limit is refused, naming both; 0 (or the same) takes the bank's */
	o.history_limit = 50;
	assert_int_equal(mb_open(f->path, &o, &b), MB_EINVAL);
	assert_non_null(strstr(mb_last_error(NULL), "history_limit 50"));
	assert_non_null(strstr(mb_last_error(NULL), "keeps 7"));
	o.history_limit = 0;
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	assert_int_equal(mb_sync_record(b, "success", NULL), 0);
	j = sync_doc(b);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "sync_history")), 7);
	cJSON_Delete(j);
	mb_close(b);
}

/* The journal's record bound (32 MiB) is above anything the JSON bound
 * lets in?  Not for floats: "0.5," is 4 bytes of JSON and 9 of msgpack, so
 * 16 MiB of JSON packs to 36 MiB.  Such a put must fail cleanly and change
 * nothing.  Costs about 250 MB of cJSON nodes: MEMBANK_HARD_BIG=1 only. */
static void test_journal_record_bound(void **state)
{
	fx *f = *state;
	size_t n = MB_MAX_JSON_BYTES - 16, i = 0;
	char *s, *before, *after;
	mb_options o;
	mb_bank *b = NULL;
	int rc;

	if (!getenv("MEMBANK_HARD_BIG")) {
		printf("SKIP reason: needs about 250 MB; set MEMBANK_HARD_BIG=1\n");
		skip();
	}
	s = malloc(n + 16);
	i += (size_t)sprintf(s, "{\"a\":[0.5");
	while (i + 8 < n)
		i += (size_t)sprintf(s + i, ",0.5");
	strcpy(s + i, "]}");
	mb_options_init(&o);
	o.max_json_bytes = MB_MAX_JSON_BYTES;
	o.durability = MB_DURABILITY_FAST;
	assert_int_equal(mb_open(f->path, &o, &b), 0);
	before = state_of(b);
	rc = mb_page_put(b, "floats", s, (size_t)-1);
	printf("%zu bytes of floats: %s: %s\n", strlen(s), mb_errname(rc), mb_last_error(b));
	assert_int_not_equal(rc, 0);
	assert_int_equal(rc, MB_EINVAL);
	assert_non_null(strstr(mb_last_error(b), "record limit"));
	after = state_of(b);
	assert_string_equal(before, after);
	assert_int_equal(mb_page_put(b, "small", "{}", 2), 0);
	mb_close(b);
	free(before);
	free(after);
	free(s);
}

/* The restore reader's file bounds: a file over its bound (sparse, so
 * the test costs nothing), a FIFO, a symlink: each refused before a byte
 * is read, naming the file, and no target is made. */
static void test_restore_file_bounds(void **state)
{
	static const struct { const char *name; long long size; } over[] = {
		{ "sync_status.json", (256ll << 20) + 1 },
		{ "error_log.json", (256ll << 20) + 1 },
		{ "config_cache.json", (256ll << 20) + 1 },
		{ "notion_pages.json", (16ll << 30) + 1 },
	};
	fx *f = *state;
	char from[4096], target[4096], p[4096], keep[4096], *saved;
	size_t len = 0;
	struct stat st;
	mb_bank *b = open_opts(f->path, MB_DURABILITY_FAST, 0, 0);
	int rc;

	snprintf(from, sizeof from, "%s/from", f->dir);
	snprintf(target, sizeof target, "%s/target", f->dir);
	assert_int_equal(mkdir(from, 0700), 0);
	assert_int_equal(mb_page_put(b, "a", "{}", 2), 0);
	assert_int_equal(mb_snapshot(b, from, NULL), 0);
	mb_close(b);
	for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", from, over[i].name);
		saved = slurp(p, &len);
		assert_int_equal(truncate(p, over[i].size), 0);
		rc = mb_restore(from, target, NULL, 0);
		printf("%s of %lld bytes: %s: %s\n", over[i].name, over[i].size, mb_errname(rc),
		       mb_last_error(NULL));
		assert_int_equal(rc, MB_EINVAL);
		assert_non_null(strstr(mb_last_error(NULL), over[i].name));
		assert_int_equal(lstat(target, &st), -1);
		/* a FIFO would block a reader that does not check: refused */
		assert_int_equal(unlink(p), 0);
		assert_int_equal(mkfifo(p, 0600), 0);
		assert_int_equal(mb_restore(from, target, NULL, 0), MB_EINVAL);
		assert_int_equal(lstat(target, &st), -1);
		/* a symlink to the real content is not followed */
		assert_int_equal(unlink(p), 0);
		snprintf(keep, sizeof keep, "%s/real-%zu", f->dir, i);
		assert_int_equal(spit(keep, saved, len), 0);
		assert_int_equal(symlink(keep, p), 0);
		rc = mb_restore(from, target, NULL, 0);
		assert_int_not_equal(rc, 0);
		printf("%s a symlink: %s: %s\n", over[i].name, mb_errname(rc), mb_last_error(NULL));
		assert_int_equal(lstat(target, &st), -1);
		assert_int_equal(unlink(p), 0);
		assert_int_equal(spit(p, saved, len), 0);
		free(saved);
	}
	assert_int_equal(mb_restore(from, target, NULL, 0), 0);  /* and whole again, it restores */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_network_fs_refused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_modes_every_file, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_modes_group_shared, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_option_bounds, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_max_json_bytes_option, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_restore_keeps_max_json_bytes, fx_setup,
		                                fx_teardown),
		cmocka_unit_test_setup_teardown(test_text_bounds, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_history_limit_enforced, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_restore_file_bounds, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_journal_record_bound, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
