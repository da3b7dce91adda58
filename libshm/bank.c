/*
 * bank.c - opening and closing a bank.
 *
 * The bank directory:
 *   membank.json     identity: {"format":1,"history_limit":N}; its absence
 *                    in a non-empty directory means "not a bank"
 *   open.lock        locked exclusively while a process opens the bank, so
 *                    that exactly one of them repairs or rebuilds
 *   store/           the LMDB cache (data.mdb, lock.mdb) and boot_id, the
 *                    marker of the boot whose unsynced writes it may hold
 *   journal/         the journal segments and sync.shm
 *   checkpoint.json and the four JSON files of the spec (the snapshot)
 *
 * MACHINE CRASHES.  LMDB runs without syncs, so after a machine crash its
 * file cannot be trusted.  Before the first write of a boot, store/boot_id
 * holds that boot's id (written and fsync'ed at open, before any write).  An
 * open that finds another boot's id throws the store away and rebuilds it
 * from the checkpoint and the journal before anyone reads.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <dirent.h>
#include <cjson/cJSON.h>

#include "bank.h"
#include "file.h"
#include "lockfile.h"

#define DEFAULT_MAP_SIZE ((size_t)64 << 20)
#define BOOT_ID_LEN 36

void mb_options_init(mb_options *o)
{
	memset(o, 0, sizeof *o);
	o->durability = MB_DURABILITY_FULL;
	o->create = true;
}

const char *mb_path(const mb_bank *b)
{
	return b ? b->path : NULL;
}

static int check_options(const mb_options *o)
{
	if (o->durability != MB_DURABILITY_FULL && o->durability != MB_DURABILITY_FAST)
		return mb_fail(NULL, MB_EINVAL, "options: durability must be full or fast");
	if (o->max_json_bytes > MB_MAX_JSON_BYTES)
		return mb_fail(NULL, MB_EINVAL, "options: max_json_bytes above %u", MB_MAX_JSON_BYTES);
	if (o->history_limit > MB_MAX_HISTORY)
		return mb_fail(NULL, MB_EINVAL, "options: history_limit above %u", MB_MAX_HISTORY);
	if (o->segment_bytes && o->segment_bytes < MBJ_MIN_SEGMENT_BYTES)
		return mb_fail(NULL, MB_EINVAL, "options: segment_bytes below %llu",
		               (unsigned long long)MBJ_MIN_SEGMENT_BYTES);
	if (o->map_size && o->map_size < ((size_t)1 << 20) / 4)
		return mb_fail(NULL, MB_EINVAL, "options: map_size below 256 KiB");
	return 0;
}

/* Filesystems whose locks LMDB cannot rely on. */
static bool network_fs(long type)
{
	switch ((unsigned long)type) {
	case 0x6969:      /* NFS */
	case 0x517b:      /* SMB */
	case 0xff534d42:  /* CIFS */
	case 0xfe534d42:  /* SMB2 */
	case 0x65735546:  /* FUSE */
	case 0x00c36400:  /* Ceph */
	case 0x01021997:  /* 9P */
	case 0x47504653:  /* GPFS */
		return true;
	}
	return false;
}

/* A real directory (never a symlink), created when allowed. */
static int ensure_dir(const char *path, bool create, unsigned mode, const void *tag)
{
	struct stat st;

	if (lstat(path, &st) && errno == ENOENT && create) {
		if (mkdir(path, mode) && errno != EEXIST)
			return mb_fail(tag, mb_errno_code(errno), "%s: cannot create: %s",
			               path, strerror(errno));
		chmod(path, mode);  /* group-shared: the umask must not narrow it */
	}
	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return mb_fail(tag, MB_ENOTBANK, "%s: no such bank", path);
		return mb_fail(tag, mb_errno_code(errno), "%s: %s", path, strerror(errno));
	}
	if (S_ISLNK(st.st_mode))
		return mb_fail(tag, MB_EUNSAFE, "%s: is a symlink; open its target instead", path);
	if (!S_ISDIR(st.st_mode))
		return mb_fail(tag, MB_ENOTBANK, "%s: not a directory", path);
	return 0;
}

static int check_fs(const char *path, bool allow)
{
	struct statfs fs;

	if (statfs(path, &fs))
		return mb_fail(NULL, mb_errno_code(errno), "%s: statfs: %s", path, strerror(errno));
	if (!allow && network_fs(fs.f_type))
		return mb_fail(NULL, MB_EUNSAFE, "%s: on a network filesystem (type 0x%lx), where "
		               "LMDB's locks do not work; set allow_network_fs to override",
		               path, (unsigned long)fs.f_type);
	return 0;
}

static char *join(const char *a, const char *b)
{
	char *p;

	return asprintf(&p, "%s/%s", a, b) < 0 ? NULL : p;
}

/* Read a small file whole; -1 with errno on failure. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/* Is the directory empty but for our lock file? */
static int dir_is_empty(const char *path, bool *empty)
{
	struct dirent *e;
	DIR *d = opendir(path);

	if (!d)
		return mb_errno_code(errno);
	*empty = true;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    strcmp(e->d_name, MB_LOCK_FILE))
			*empty = false;
	closedir(d);
	return 0;
}

/* A non-empty directory without an identity is not ours: say so before
 * creating anything in it (not even the lock file). */
static int refuse_foreign(mb_bank *b)
{
	char path[4096];
	struct stat st;
	bool empty = false;

	if (mb_pathf(path, sizeof path, "%s/%s", b->path, MB_IDENTITY_FILE))
		return mb_fail(NULL, MB_EINVAL, "%s: path too long", b->path);
	if (!lstat(path, &st) || errno != ENOENT || dir_is_empty(b->path, &empty) || empty)
		return 0;
	return mb_fail(NULL, MB_ENOTBANK, "%s: not empty and has no %s: not a membank bank",
	               b->path, MB_IDENTITY_FILE);
}

static int create_identity(mb_bank *b)
{
	char text[96];
	bool empty = false;
	int rc = dir_is_empty(b->path, &empty);

	if (rc)
		return mb_fail(NULL, rc, "%s: cannot list: %s", b->path, strerror(errno));
	if (!empty)
		return mb_fail(NULL, MB_ENOTBANK, "%s: not empty and has no %s: not a membank bank",
		               b->path, MB_IDENTITY_FILE);
	if (!b->opts.create)
		return mb_fail(NULL, MB_ENOTBANK, "%s: no bank here", b->path);
	b->history_limit = b->opts.history_limit ? b->opts.history_limit : MB_DEFAULT_HISTORY;
	snprintf(text, sizeof text, "{\"format\":%d,\"history_limit\":%u}\n",
	         MB_FORMAT_VERSION, b->history_limit);
	return mb_write_file_atomic(b->path, MB_IDENTITY_FILE, text, strlen(text),
	                            b->file_mode, NULL);
}

static int read_identity(mb_bank *b)
{
	char *path = join(b->path, MB_IDENTITY_FILE), text[512];
	const cJSON *f, *h;
	cJSON *j = NULL;
	ssize_t n;
	int rc = 0;

	if (!path)
		return mb_fail(NULL, MB_ENOMEM, "out of memory");
	n = read_small(path, text, sizeof text);
	if (n < 0 && errno == ENOENT) {
		free(path);
		return create_identity(b);
	}
	if (n < 0)
		rc = mb_fail(NULL, mb_errno_code(errno), "%s: %s", path, strerror(errno));
	else if (!(errno = 0) && !(j = cJSON_ParseWithLength(text, (size_t)n)) && errno == ENOMEM)
		rc = mb_fail(NULL, MB_ENOMEM, "%s: out of memory", path);
	else if (!j ||
	         !cJSON_IsNumber(f = cJSON_GetObjectItemCaseSensitive(j, "format")) ||
	         !cJSON_IsNumber(h = cJSON_GetObjectItemCaseSensitive(j, "history_limit")) ||
	         h->valuedouble < 1 || h->valuedouble > MB_MAX_HISTORY)
		rc = mb_fail(NULL, MB_ENOTBANK, "%s: not a membank identity file", path);
	else if (f->valuedouble != MB_FORMAT_VERSION)
		rc = mb_fail(NULL, f->valuedouble > MB_FORMAT_VERSION ? MB_EVERSION : MB_ENOTBANK,
		             "%s: format %g, this library reads format %d", path,
		             f->valuedouble, MB_FORMAT_VERSION);
	else
		b->history_limit = (uint32_t)h->valuedouble;
	cJSON_Delete(j);
	free(path);
	return rc;
}

/* This boot's id; MEMBANK_TEST_BOOT_ID stands in for it in tests of the
 * machine-crash path. */
static int boot_id(char out[BOOT_ID_LEN + 1])
{
	const char *fake = getenv("MEMBANK_TEST_BOOT_ID");
	char text[64];

	if (fake && *fake) {
		snprintf(out, BOOT_ID_LEN + 1, "%s", fake);
		return 0;
	}
	if (read_small("/proc/sys/kernel/random/boot_id", text, sizeof text) < BOOT_ID_LEN)
		return -1;
	memcpy(out, text, BOOT_ID_LEN);
	out[BOOT_ID_LEN] = '\0';
	return 0;
}

/* Compare store/boot_id with this boot.  *stale: another boot wrote it. */
static int boot_check(mb_bank *b, const char *boot, bool *stale, bool *missing)
{
	char *path = join(b->store_dir, "boot_id"), text[64];
	ssize_t n;

	if (!path)
		return mb_fail(NULL, MB_ENOMEM, "out of memory");
	n = read_small(path, text, sizeof text);
	free(path);
	*missing = n < 0;
	*stale = n >= 0 && strncmp(text, boot, BOOT_ID_LEN) != 0;
	return 0;
}

/* Throw away a store a machine crash may have left inconsistent. */
static int discard_store(mb_bank *b)
{
	static const char *const files[] = { "data.mdb", "lock.mdb" };

	for (size_t i = 0; i < 2; i++) {
		char *p = join(b->store_dir, files[i]);
		if (!p)
			return mb_fail(NULL, MB_ENOMEM, "out of memory");
		if (unlink(p) && errno != ENOENT) {
			int err = errno;
			free(p);
			return mb_fail(NULL, mb_errno_code(err), "%s/%s: %s", b->store_dir, files[i],
			               strerror(err));
		}
		free(p);
	}
	return 0;
}

/* Finish what a crashed writer left: roll whole records forward, cut a
 * torn tail.  Runs under the writer lock like any write. */
static int settle(mb_bank *b)
{
	mbj_pos end;
	kv_txn *t;
	int rc;

	for (int tries = 0; tries < 32; tries++) {
		if ((rc = kv_begin(b->kv, true, &t)))
			return mb_fail(NULL, rc, "%s: cannot begin a write: %s", b->path, mb_strerror(rc));
		if (!(rc = bank_jend_load(t, &end)) && !(rc = bank_roll_forward(b, t, &end)))
			rc = bank_jend_store(t, &end);
		rc = kv_end(t, rc);
		if (rc != KV_EMAPFULL)
			return rc;
		if ((rc = kv_grow(b->kv)))
			return mb_fail(NULL, rc, "%s: cannot grow the map", b->path);
	}
	return mb_fail(NULL, MB_ENOSPC, "%s: the map cannot grow enough", b->path);
}

/* No data.mdb yet: the store is created by this open. */
static bool store_is_new(const mb_bank *b)
{
	struct stat st;
	char *p = join(b->store_dir, "data.mdb");
	bool none = p && lstat(p, &st) && errno == ENOENT;

	free(p);
	return none;
}

static int open_parts(mb_bank *b, const char *boot)
{
	mbj_options jo = { .segment_bytes = b->opts.segment_bytes, .file_mode = (int)b->file_mode,
	                   .dir_mode = (int)b->dir_mode };
	size_t map = b->opts.map_size ? b->opts.map_size : DEFAULT_MAP_SIZE;
	bool stale = false, missing = false, build;
	char err[256];
	int rc;

	if ((rc = ensure_dir(b->store_dir, true, b->dir_mode, NULL)) ||
	    (rc = ensure_dir(b->journal_dir, true, b->dir_mode, NULL)) ||
	    (rc = boot_check(b, boot, &stale, &missing)))
		return rc;
	if (stale && (rc = discard_store(b)))
		return rc;
	/* A store created now (a new bank, or one deleted: it is only a
	 * cache) is built from the checkpoint and the journal like a stale
	 * one: rolling forward from empty would miss what the checkpoint
	 * covers once its segments are removed. */
	build = stale || store_is_new(b);
	if ((rc = kv_open(b->store_dir, b->file_mode, map, &b->kv, err, sizeof err)))
		return mb_fail(NULL, rc, "%s", err);
	kv_reader_check(b->kv, NULL);  /* slots of processes killed mid-read */
	if ((rc = mbj_open(b->journal_dir, &jo, &b->jn)))
		return bank_journal_fail(b, rc, "journal");
	if (build && (rc = bank_rebuild_store(b)))
		return rc;
	if ((rc = settle(b)))
		return rc;
	if (stale || missing)
		return mb_write_file_atomic(b->store_dir, "boot_id", boot, strlen(boot),
		                            b->file_mode, NULL);
	return 0;
}

static int bank_init(mb_bank *b, const char *path, const mb_options *o)
{
	if (!path || !*path)
		path = getenv("MEMBANK_DIR");
	if (!path || !*path)
		path = "./memory-bank";
	b->opts = *o;
	b->pid = getpid();
	b->fork_gen = mb_fork_generation();
	b->file_mode = o->group_shared ? 0660 : 0600;
	b->dir_mode = o->group_shared ? 0770 : 0700;
	b->path = strdup(path);
	b->store_dir = join(path, "store");
	b->journal_dir = join(path, "journal");
	if (!b->path || !b->store_dir || !b->journal_dir)
		return mb_fail(NULL, MB_ENOMEM, "out of memory");
	return 0;
}

int mb_open(const char *path, const mb_options *opts, mb_bank **out)
{
	char boot[BOOT_ID_LEN + 1];
	mb_options defaults;
	lockfile lock = { -1, LOCK_OPEN };
	mb_bank *b;
	int rc;

	if (!out)
		return mb_fail(NULL, MB_EINVAL, "mb_open: out is NULL");
	*out = NULL;
	mb_options_init(&defaults);
	if (!opts)
		opts = &defaults;
	if ((rc = check_options(opts)))
		return rc;
	if (!(b = calloc(1, sizeof *b)))
		return mb_fail(NULL, MB_ENOMEM, "out of memory");
	if ((rc = bank_init(b, path, opts)) || (rc = bank_auto_init(b)) ||
	    (rc = ensure_dir(b->path, opts->create, b->dir_mode, NULL)) ||
	    (rc = check_fs(b->path, opts->allow_network_fs)) || (rc = refuse_foreign(b)) ||
	    (rc = lockfile_acquire(&lock, LOCK_OPEN, b->path, MB_LOCK_FILE, b->file_mode, NULL)))
		goto fail;
	if (boot_id(boot)) {
		rc = mb_fail(NULL, MB_EIO, "cannot read this boot's id");
		goto fail;
	}
	if ((rc = read_identity(b)) || (rc = open_parts(b, boot)))
		goto fail;
	lockfile_release(&lock);
	b->tag = b;
	*out = b;
	mb_clear_error(NULL);
	return 0;
fail:
	lockfile_release(&lock);
	mb_close(b);
	return rc;
}

int mb_close(mb_bank *b)
{
	if (!b)
		return 0;
	/* a child after fork() only frees its memory: the journal's fds and
	 * the environment belong to the parent */
	if (b->fork_gen == mb_fork_generation())
		mbj_close(b->jn);
	kv_close(b->kv);
	bank_auto_free(b);
	free(b->path);
	free(b->store_dir);
	free(b->journal_dir);
	free(b);
	return 0;
}
