/*
 * bank.c - opening and closing a bank.
 *
 * The bank directory:
 *   membank.json     identity: {"format":2,"history_limit":N,
 *                    "max_json_bytes":N,
 *                    "cache_settings":{"max_entries":0,"ttl_seconds":0}};
 *                    its absence in a non-empty directory means "not a
 *                    bank".  cache_settings: what a store built without a
 *                    checkpoint starts with (absent in banks created before
 *                    it: the legacy 1000 and 3600, which their journals rely on).
 *                    max_json_bytes: the bound on JSON input every client
 *                    of the bank applies, set at creation (absent in banks
 *                    created before it: MB_DEFAULT_JSON_BYTES)
 *                    Format 1: a bank whose store may be of store format 1;
 *                    an open rebuilds such a store, then writes format 2
 *                    A directory holding only the original Python class's
 *                    files: any open (create or not: it is a conversion)
 *                    migrates those in place (restore_migrate())
 *   original-memory-bank/  after a migration: the original files, kept
 *   open.lock        locked exclusively while a process opens the bank, so
 *                    that exactly one of them creates, repairs or rebuilds,
 *                    and by a restore for its whole duration; its first
 *                    word says the bank was swapped out (bank.h)
 *   restore.pending  only after a restore was killed midway (restore.c)
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <dirent.h>
#include <cjson/cJSON.h>

#include "bank.h"
#include "cluster.h"
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
	if (o->max_json_bytes && (o->max_json_bytes > MB_MAX_JSON_BYTES ||
	                          o->max_json_bytes < MB_MIN_JSON_BYTES))
		return mb_fail(NULL, MB_EINVAL, "options: max_json_bytes %zu is out of range: "
		               "0 (the bank's; 1 MiB for a new bank) or %u to %u bytes",
		               o->max_json_bytes, MB_MIN_JSON_BYTES, MB_MAX_JSON_BYTES);
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
	int fd = mb_open_fd(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

bool bank_creation_entry(const char *name)
{
	static const char id_tmp[] = "." MB_IDENTITY_FILE ".tmp.";
	static const char mark_tmp[] = "." MB_RESTORE_MARK ".tmp.";

	return !strcmp(name, MB_LOCK_FILE) || !strcmp(name, MB_RESTORE_MARK) ||
	       !strncmp(name, id_tmp, sizeof id_tmp - 1) ||
	       !strncmp(name, mark_tmp, sizeof mark_tmp - 1);
}

/* Is the directory empty but for creation entries?  @purge (under the open
 * lock) removes a crashed creator's temp files. */
static int dir_is_empty(const char *path, bool *empty, bool purge)
{
	struct dirent *e;
	char sub[4096];
	DIR *d = mb_opendir(path);

	if (!d)
		return mb_errno_code(errno);
	*empty = true;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (!bank_creation_entry(e->d_name))
			*empty = false;
		else if (purge && e->d_name[0] == '.' &&
		         !mb_pathf(sub, sizeof sub, "%s/%s", path, e->d_name))
			unlink(sub);
	}
	closedir(d);
	return 0;
}

/* A non-empty directory without an identity is not ours: say so before
 * creating anything in it (not even the lock file).  Another process may be
 * creating the bank right now: its entries do not count (the check is
 * repeated under the open lock, where creation is finished or never
 * started). */
static int refuse_foreign(mb_bank *b)
{
	char path[4096], other[256];
	struct stat st;
	bool empty = false;

	if (mb_pathf(path, sizeof path, "%s/%s", b->path, MB_IDENTITY_FILE))
		return mb_fail(NULL, MB_EINVAL, "%s: path too long", b->path);
	/* identity last, after every listing: a creator renames it in before
	 * it adds anything else, and a migration swaps in a whole directory
	 * that holds it, so content listed before it was found absent is not
	 * a bank being created or migrated.  (Looked for between two
	 * listings, a migration swapped in between made its journal look
	 * foreign: one of 32 concurrent first openers was refused.) */
	bool original = false;
	if (dir_is_empty(b->path, &empty, false))
		return 0;
	if (!empty)
		original = bank_is_original(b->path, other, sizeof other);
	if (original || !lstat(path, &st) || errno != ENOENT)
		return 0;
	if (!empty && *other)
		return mb_fail(NULL, MB_ENOTBANK, "%s: not empty and has no %s: not a membank bank "
		               "(it holds the original Memory Bank files, which an open migrates, "
		               "but also \"%s\": move that out first)", b->path, MB_IDENTITY_FILE,
		               other);
	if (!empty)
		return mb_fail(NULL, MB_ENOTBANK, "%s: not empty and has no %s: not a membank "
		               "bank", b->path, MB_IDENTITY_FILE);
	/* An empty directory and no bank to be created: leave it empty.  With
	 * open.lock there, a creator may be writing the identity: wait for it
	 * under the lock (create_identity() says "no bank here" after). */
	if (b->opts.create || mb_pathf(path, sizeof path, "%s/%s", b->path, MB_LOCK_FILE) ||
	    !lstat(path, &st) || errno != ENOENT)
		return 0;
	return mb_fail(NULL, MB_ENOTBANK, "%s: no bank here", b->path);
}

/* Is membank.json there?  (An open lists the directory only when not.) */
static bool has_identity(const mb_bank *b)
{
	char path[4096];
	struct stat st;

	return mb_pathf(path, sizeof path, "%s/%s", b->path, MB_IDENTITY_FILE) ||
	       !lstat(path, &st) || errno != ENOENT;
}

/* Under the open lock: the identity is written by exactly one opener, and
 * the others find it whole (a temp file renamed into place). */
static int create_identity(mb_bank *b)
{
	bool empty = false;
	int rc = dir_is_empty(b->path, &empty, true);

	if (rc)
		return mb_fail(NULL, rc, "%s: cannot list: %s", b->path, strerror(errno));
	if (!empty)
		return mb_fail(NULL, MB_ENOTBANK, "%s: not empty and has no %s: not a membank bank",
		               b->path, MB_IDENTITY_FILE);
	if (!b->opts.create)
		return mb_fail(NULL, MB_ENOTBANK, "%s: no bank here", b->path);
	b->history_limit = b->opts.history_limit ? b->opts.history_limit : MB_DEFAULT_HISTORY;
	b->init_max_entries = b->init_ttl_seconds = 0;  /* new banks: nothing dropped */
	b->max_json_bytes = b->opts.max_json_bytes ? b->opts.max_json_bytes : MB_DEFAULT_JSON_BYTES;
	if ((rc = cluster_bind(b, NULL, true)) || (rc = bank_write_identity(b)))
		return rc;
	b->created_here = true;
	return 0;
}

/* Under the open lock, after an open that created the bank failed (its
 * cluster could not be reached, a full disk): remove every entry it made
 * but the lock file, so that a typo in a host name does not bind a new
 * directory to that journal for life, and the directory is as it was
 * (empty but for creation entries).  Its files may still be open here:
 * unlinking them is harmless. */
static void uncreate(mb_bank *b)
{
	struct dirent *e;
	char sub[4096];
	DIR *d = mb_opendir(b->path);

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    !strcmp(e->d_name, MB_LOCK_FILE) ||
		    mb_pathf(sub, sizeof sub, "%s/%s", b->path, e->d_name))
			continue;
		if (strcmp(e->d_name, MB_IDENTITY_FILE) && mb_rm_tree(sub))
			unlink(sub);   /* not a directory */
	}
	closedir(d);
	/* the identity last: until it goes, the directory is a bank */
	if (!mb_pathf(sub, sizeof sub, "%s/%s", b->path, MB_IDENTITY_FILE))
		unlink(sub);
}

/* membank.json of a new bank (b->history_limit, b->max_json_bytes, the
 * journal it is bound to), renamed into place. */
int bank_write_identity(mb_bank *b)
{
	char text[1024];
	const char *url;
	size_t n;

	n = (size_t)snprintf(text, sizeof text, "{\"format\":%d,\"history_limit\":%u,"
	                     "\"max_json_bytes\":%zu,\"cache_settings\":{\"max_entries\":0,"
	                     "\"ttl_seconds\":0}", MB_FORMAT_VERSION, b->history_limit,
	                     b->max_json_bytes);
	if ((url = cluster_recorded_url(b))) {
		/* the stream it is bound to for life, never its credentials */
		mb_buf j = { 0 };
		json_add_str(&j, url, strlen(url));
		if (j.failed || n + j.len + 16 > sizeof text) {
			buf_free(&j);
			return mb_fail(NULL, MB_EINVAL, "journal URL: too long");
		}
		n += (size_t)snprintf(text + n, sizeof text - n, ",\"journal\":%.*s", (int)j.len, j.data);
		buf_free(&j);
	}
	snprintf(text + n, sizeof text - n, "}\n");
	return mb_write_file_atomic(b->path, MB_IDENTITY_FILE, text, strlen(text),
	                            b->file_mode, NULL);
}

/* membank.json's cache_settings (see the top): -1 when malformed. */
static int read_init_cache(mb_bank *b, const cJSON *c)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "max_entries");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "ttl_seconds");
	uint64_t me, ttl;

	b->init_max_entries = MB_LEGACY_MAX_ENTRIES;
	b->init_ttl_seconds = MB_LEGACY_TTL_SECONDS;
	if (!c)
		return 0;
	if (!json_whole(m, 1e12, &me) || !json_whole(t, 1e12, &ttl))
		return -1;
	b->init_max_entries = (int64_t)me;
	b->init_ttl_seconds = (int64_t)ttl;
	return 0;
}

/* *format receives membank.json's format (1 or MB_FORMAT_VERSION). */
static int read_identity(mb_bank *b, int *format)
{
	char *path = join(b->path, MB_IDENTITY_FILE), text[2048];
	const cJSON *f, *h, *mj, *jn;
	cJSON *j = NULL;
	uint64_t hl = 0, mjb = MB_DEFAULT_JSON_BYTES;
	ssize_t n;
	int rc = 0;

	if (!path)
		return mb_fail(NULL, MB_ENOMEM, "out of memory");
	n = read_small(path, text, sizeof text);
	if (n < 0 && errno == ENOENT) {
		free(path);
		*format = MB_FORMAT_VERSION;
		return create_identity(b);
	}
	if (n < 0)
		rc = mb_fail(NULL, mb_errno_code(errno), "%s: %s", path, strerror(errno));
	else if (!(errno = 0) && !(j = cJSON_ParseWithLength(text, (size_t)n)) && errno == ENOMEM)
		rc = mb_fail(NULL, MB_ENOMEM, "%s: out of memory", path);
	else if (!j ||
	         !cJSON_IsNumber(f = cJSON_GetObjectItemCaseSensitive(j, "format")) ||
	         !json_whole(h = cJSON_GetObjectItemCaseSensitive(j, "history_limit"),
	                     MB_MAX_HISTORY, &hl) || hl < 1)
		rc = mb_fail(NULL, MB_ENOTBANK, "%s: not a membank identity file", path);
	else if (f->valuedouble != MB_FORMAT_VERSION && f->valuedouble != 1)
		rc = mb_fail(NULL, f->valuedouble > MB_FORMAT_VERSION ? MB_EVERSION : MB_ENOTBANK,
		             "%s: format %g, this library reads formats 1 to %d", path,
		             f->valuedouble, MB_FORMAT_VERSION);
	else if (b->opts.history_limit && b->opts.history_limit != (uint32_t)hl)
		rc = mb_fail(NULL, MB_EINVAL, "options: history_limit %u, but the bank at %s "
		             "keeps %u (set when it was created; 0 takes the bank's)",
		             b->opts.history_limit, b->path, (uint32_t)hl);
	else if (read_init_cache(b, cJSON_GetObjectItemCaseSensitive(j, "cache_settings")))
		rc = mb_fail(NULL, MB_ENOTBANK, "%s: bad \"cache_settings\"", path);
	else if ((mj = cJSON_GetObjectItemCaseSensitive(j, "max_json_bytes")) &&
	         (!json_whole(mj, MB_MAX_JSON_BYTES, &mjb) || mjb < MB_MIN_JSON_BYTES))
		rc = mb_fail(NULL, MB_ENOTBANK, "%s: bad \"max_json_bytes\" (%u to %u)", path,
		             MB_MIN_JSON_BYTES, MB_MAX_JSON_BYTES);
	else if (b->opts.max_json_bytes > mjb)
		rc = mb_fail(NULL, MB_EINVAL, "options: max_json_bytes %zu, but the bank at %s "
		             "accepts at most %llu (set when it was created; a handle may only "
		             "lower it; 0 takes the bank's)", b->opts.max_json_bytes, b->path,
		             (unsigned long long)mjb);
	else if ((jn = cJSON_GetObjectItemCaseSensitive(j, "journal")) && !cJSON_IsString(jn))
		rc = mb_fail(NULL, MB_ENOTBANK, "%s: bad \"journal\" (a URL)", path);
	else if ((rc = cluster_bind(b, jn ? jn->valuestring : NULL, false)))
		;
	else {
		b->history_limit = (uint32_t)hl;
		b->max_json_bytes = (size_t)mjb;
		*format = (int)f->valuedouble;
	}
	cJSON_Delete(j);
	free(path);
	return rc;
}

size_t bank_stored_max_json(const char *bank_path)
{
	char *path = join(bank_path, MB_IDENTITY_FILE), text[512];
	ssize_t n = path ? read_small(path, text, sizeof text) : -1;
	cJSON *j = n > 0 ? cJSON_ParseWithLength(text, (size_t)n) : NULL;
	uint64_t v = 0;

	if (!json_whole(cJSON_GetObjectItemCaseSensitive(j, "max_json_bytes"), MB_MAX_JSON_BYTES,
	                &v) || v < MB_MIN_JSON_BYTES)
		v = 0;
	cJSON_Delete(j);
	free(path);
	return (size_t)v;
}

bool bank_stored_journal(const char *bank_path, char *out, size_t cap)
{
	char *path = join(bank_path, MB_IDENTITY_FILE), text[2048];
	ssize_t n = path ? read_small(path, text, sizeof text) : -1;
	cJSON *j = n > 0 ? cJSON_ParseWithLength(text, (size_t)n) : NULL;
	const cJSON *jn = cJSON_GetObjectItemCaseSensitive(j, "journal");
	bool bound = cJSON_IsString(jn) && *jn->valuestring;

	if (bound)
		snprintf(out, cap, "%s", jn->valuestring);
	cJSON_Delete(j);
	free(path);
	return bound;
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
	ssize_t n = read_small("/proc/sys/kernel/random/boot_id", text, sizeof text);

	if (n < BOOT_ID_LEN) {
		if (n >= 0)
			errno = EIO;  /* short: not an id */
		return -1;
	}
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

bool bank_store_this_boot(const char *store_dir)
{
	char boot[BOOT_ID_LEN + 1], *path = join(store_dir, "boot_id"), text[64];
	ssize_t n = path ? read_small(path, text, sizeof text) : -1;

	free(path);
	return n >= BOOT_ID_LEN && !boot_id(boot) && !strncmp(text, boot, BOOT_ID_LEN);
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
	mbj_pos end, was;
	kv_txn *t;
	int rc;

	for (int tries = 0; tries < 32; tries++) {
		if ((rc = kv_begin(b->kv, true, &t)))
			return mb_fail(NULL, rc, "%s: cannot begin a write: %s", b->path, mb_strerror(rc));
		if (!(rc = bank_jend_load(t, &end))) {
			was = end;
			if (!(rc = bank_roll_forward(b, t, &end)) &&
			    !memcmp(&was, &end, sizeof end)) {
				kv_abort(t);  /* nothing to finish: no commit, which a
				               * full disk could refuse to a reader */
				return 0;
			}
		}
		if (!rc)
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

/* LMDB maps store/lock.mdb and writes its header and reader slots through
 * the map: a hole in the file on a full disk is SIGBUS instead of an error.
 * Allocate its blocks first (created at LMDB's own size, 64 KiB for
 * KV_MAX_READERS slots; an existing file as it is).  Not while this process
 * has the environment open: closing any descriptor of the file would drop
 * LMDB's record locks. */
#define LOCK_MDB_BYTES ((off_t)64 << 10)
static int allocate_lock_mdb(mb_bank *b)
{
	char path[4096];
	struct stat st;
	int fd, err;

	if (kv_open_here(b->store_dir) ||
	    mb_pathf(path, sizeof path, "%s/lock.mdb", b->store_dir))
		return 0;
	if ((fd = mb_open_fd(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, b->file_mode)) < 0)
		return mb_fail(NULL, mb_errno_code(errno), "%s: %s", path, strerror(errno));
	err = fstat(fd, &st) ? errno :
	      posix_fallocate(fd, 0, st.st_size ? st.st_size : LOCK_MDB_BYTES);
	close(fd);
	if (err && err != EOPNOTSUPP && err != EINVAL)
		return mb_fail(NULL, mb_errno_code(err), "%s: cannot allocate it: %s", path,
		               strerror(err));
	return 0;
}

/* Write store/boot_id: a new file renamed into place, or, when that finds
 * no space, the id written over the old one in place (no new block; a torn
 * id reads as another boot's, which only costs a rebuild). */
static int record_boot(mb_bank *b, const void *tag)
{
	char path[4096];
	int rc = mb_write_file_atomic(b->store_dir, "boot_id", b->boot, strlen(b->boot),
	                              b->file_mode, tag);
	int fd;

	if (!rc || mb_pathf(path, sizeof path, "%s/boot_id", b->store_dir) ||
	    (fd = mb_open_fd(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0)) < 0)
		return rc;
	if (pwrite(fd, b->boot, BOOT_ID_LEN, 0) == BOOT_ID_LEN && !fsync(fd)) {
		mb_clear_error(tag);
		rc = 0;
	}
	close(fd);
	return rc;
}

int bank_boot_record(mb_bank *b)
{
	int rc;

	if (!atomic_load(&b->boot_pending))
		return 0;
	if ((rc = record_boot(b, b)))
		return mb_fail(b, rc, "cannot record this boot's id in %s/boot_id before the "
		               "first write: %s", b->store_dir, mb_last_error(b));
	atomic_store(&b->boot_pending, false);
	return 0;
}

/* membank.json of format 1, its store now of MB_STORE_FORMAT: the same
 * document with "format" MB_FORMAT_VERSION, so that a library of format 1
 * refuses the bank instead of misreading its store.  A failure (a full
 * disk) leaves format 1 for the next open to upgrade: the store is. */
static void upgrade_identity(mb_bank *b)
{
	char path[4096], text[512], *out = NULL;
	cJSON *j = NULL;
	ssize_t n;

	if (!mb_pathf(path, sizeof path, "%s/%s", b->path, MB_IDENTITY_FILE) &&
	    (n = read_small(path, text, sizeof text)) > 0 &&
	    (j = cJSON_ParseWithLength(text, (size_t)n)) &&
	    cJSON_ReplaceItemInObjectCaseSensitive(j, "format",
	                                           cJSON_CreateNumber(MB_FORMAT_VERSION)) &&
	    (out = cJSON_PrintUnformatted(j)) && strlen(out) + 2 <= sizeof text) {
		snprintf(text, sizeof text, "%s\n", out);
		mb_write_file_atomic(b->path, MB_IDENTITY_FILE, text, strlen(text), b->file_mode,
		                     NULL);
	}
	cJSON_free(out);
	cJSON_Delete(j);
	mb_clear_error(NULL);
}

/* The store's format (meta "format").  One of an older format (1: values
 * that were not all msgpack), or whose record is damaged, is rebuilt from
 * the checkpoint and the journal like a stale one (*build), in one
 * transaction that leaves it as it was if the rebuild fails; a newer one is
 * MB_EVERSION.  Not while another process has the store open: only a
 * library of format 1 can (every later one upgrades it at open), and it
 * would go on reading and writing the old layout. */
static int check_store_format(mb_bank *b, size_t map, bool *build)
{
	char err[256];
	int64_t format = 0;
	kv_txn *t;
	int rc = kv_begin(b->kv, false, &t);

	if (rc)
		return mb_fail(NULL, rc, "%s: cannot begin a read: %s", b->store_dir, mb_strerror(rc));
	rc = st_format_load(t, &format);
	kv_abort(t);
	if (rc && rc != MB_ECORRUPT)
		return mb_fail(NULL, rc, "%s: the store's format: %s", b->store_dir, mb_strerror(rc));
	if (!rc && format == MB_STORE_FORMAT)
		return 0;
	if (!rc && format > MB_STORE_FORMAT)
		return mb_fail(NULL, MB_EVERSION, "%s: store format %lld, this library reads "
		               "format %d", b->store_dir, (long long)format, MB_STORE_FORMAT);
	/* LMDB's record locks are per process: the check must not see ours */
	kv_close(b->kv);
	b->kv = NULL;
	if ((rc = bank_check_unused(b->path, "the store is of an older format and must be "
	                            "rebuilt by this open, but")))
		return rc;
	if ((rc = kv_open(b->store_dir, b->file_mode, map, &b->kv, err, sizeof err)))
		return mb_fail(NULL, rc == KV_EINVALID ? MB_ECORRUPT : rc, "%s", err);
	*build = true;
	return 0;
}

static int open_parts(mb_bank *b, const char *boot, int identity_format)
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
	/* Every process that maps the bank's shared states (journal/sync.shm,
	 * store/group.shm) has the store open from before it maps them until
	 * after, and no process opens the bank while this one holds its open
	 * lock: so, if no other process has the store open now, none maps
	 * them, and a state of another release (another version) can be
	 * initialised again instead of refused until the next boot. */
	jo.state_alone = !kv_in_use(b->store_dir);
	if ((rc = allocate_lock_mdb(b)))
		return rc;
	rc = kv_open(b->store_dir, b->file_mode, map, &b->kv, err, sizeof err);
	if (rc == KV_EINVALID) {
		/* Not a usable store (its meta pages overwritten, data.mdb cut
		 * short): a cache like a deleted one, moved aside and rebuilt. */
		if ((rc = kv_set_aside(b->store_dir, err, sizeof err)))
			return mb_fail(NULL, rc, "%s", err);
		if ((rc = ensure_dir(b->store_dir, true, b->dir_mode, NULL)))
			return rc;
		build = missing = true;
		rc = kv_open(b->store_dir, b->file_mode, map, &b->kv, err, sizeof err);
	}
	if (rc)
		return mb_fail(NULL, rc == KV_EINVALID ? MB_ECORRUPT : rc, "%s", err);
	if (!b->opts.keep_reader_slots)
		kv_reader_check(b->kv, NULL);  /* slots of processes killed mid-read */
	if (!build && (rc = check_store_format(b, map, &build)))
		return rc;
	if ((rc = mbj_open(b->journal_dir, &jo, &b->jn)))
		return bank_journal_fail(b, rc, "journal");
	if (build && (rc = bank_rebuild_store(b)))
		return rc;
	if ((rc = settle(b)) || (rc = bank_queue_open(b, jo.state_alone)))
		return rc;
	if (identity_format != MB_FORMAT_VERSION)
		upgrade_identity(b);
	/* A missing id a full disk cannot create is left for the first write
	 * (bank_boot_record): reads need none, and no opener discards a store
	 * for a missing id.  A stale one must go now, or the next opener
	 * would discard the store this handle uses. */
	snprintf(b->boot, sizeof b->boot, "%s", boot);
	if ((stale || missing) && (rc = record_boot(b, NULL))) {
		if (stale)
			return rc;
		atomic_store(&b->boot_pending, true);
		mb_clear_error(NULL);
	}
	return 0;
}

/* Map open.lock's word (see MB_OPEN_LOCK_REPLACED): a handle reads it with
 * one load before every operation.  The file is grown to hold it (sparse:
 * no space needed), and the word of a bank at its path is always 0. */
static int map_replaced(mb_bank *b, int fd)
{
	struct stat st;
	void *p;

	if (fstat(fd, &st) || (st.st_size < (off_t)sizeof(uint32_t) && ftruncate(fd, 8)))
		return mb_fail(NULL, mb_errno_code(errno), "%s/%s: %s", b->path, MB_LOCK_FILE,
		               strerror(errno));
	p = mmap(NULL, sizeof(uint32_t), PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return mb_fail(NULL, mb_errno_code(errno), "%s/%s: mmap: %s", b->path,
		               MB_LOCK_FILE, strerror(errno));
	b->replaced = p;
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
	int rc, migrate_tries = 0, identity_format = MB_FORMAT_VERSION;
	mb_bank *b;

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
	    (rc = check_fs(b->path, opts->allow_network_fs)) || (rc = refuse_foreign(b)))
		goto fail;
again:
	if ((rc = lockfile_acquire(&lock, LOCK_OPEN, b->path, MB_LOCK_FILE, b->file_mode, NULL)))
		goto fail;
	if (boot_id(boot)) {
		rc = mb_fail(NULL, errno == ENOENT ? MB_EIO : mb_errno_code(errno), "cannot read "
		             "this boot's id (/proc/sys/kernel/random/boot_id): %s", strerror(errno));
		goto fail;
	}
	if ((rc = map_replaced(b, lock.fd)) || (rc = restore_recover(b->path)))
		goto fail;
	if (migrate_tries < 2 && !has_identity(b) && bank_is_original(b->path, NULL, 0)) {
		/* the original class's files: converted in place, then opened
		 * like any bank (its open lock is the new bank's) */
		migrate_tries++;
		if ((rc = restore_migrate(b->path, opts, lock.fd))) {
			/* the directory as it was: the originals alone.  Removed
			 * under the lock, which is safe: a waiter finds the file
			 * it locked gone (lockfile.c) and locks a new one */
			char lp[4096];
			if (!has_identity(b) &&
			    !mb_pathf(lp, sizeof lp, "%s/%s", b->path, MB_LOCK_FILE))
				unlink(lp);
			goto fail;
		}
		munmap((void *)b->replaced, sizeof(uint32_t));
		b->replaced = NULL;
		lockfile_release(&lock);
		goto again;
	}
	if ((rc = read_identity(b, &identity_format)) ||
	    (rc = open_parts(b, boot, identity_format)) || (rc = cluster_open(b)))
		goto fail;
	lockfile_release(&lock);
	b->tag = b;
	*out = b;
	mb_clear_error(NULL);
	return 0;
fail:
	if (b->created_here)
		uncreate(b);
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
	if (b->fork_gen == mb_fork_generation()) {
		cluster_close(b);  /* first: its thread uses the store */
		mbj_close(b->jn);
	} else {
		cluster_forget(b);
	}
	/* the shared states are unmapped before the store is closed (see
	 * state_alone in open_parts) */
	bank_queue_close(b);
	kv_close(b->kv);
	bank_auto_free(b);
	if (b->replaced)
		munmap((void *)b->replaced, sizeof(uint32_t));
	free(b->path);
	free(b->store_dir);
	free(b->journal_dir);
	free(b);
	return 0;
}
