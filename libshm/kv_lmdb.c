/*
 * kv_lmdb.c - the LMDB engine behind kv.h.
 *
 * Flags: MDB_NOSYNC because LMDB is a cache (the journal is the truth; the
 * journal part makes writes durable); MDB_NOTLS so that read transactions
 * are not tied to threads; MDB_WRITEMAP where the map's blocks can be
 * reserved (below); never MDB_NOMEMINIT.
 *
 * WRITEMAP.  A write transaction then changes its pages in the map itself:
 * a commit is a few stores to memory instead of a pwrite() of every dirty
 * page (about 9 of 4 KiB for one page put) and of the meta page; this is
 * most of the cost of a `fast` write (bench/, W1).  Its hazard is a full
 * disk: a page of the map with no block under it is SIGBUS at the store,
 * not an error.  So a process uses WRITEMAP only when every byte of its map
 * has a block reserved (fallocate, FALLOC_FL_KEEP_SIZE: the file's size and
 * bytes unchanged) on a filesystem where a reserved block stays writable
 * in place (ext4, XFS, tmpfs; not copy-on-write ones, which need new blocks
 * for every write).  Where it cannot (another filesystem, no space left to
 * reserve, meta pages that are not LMDB's), it opens without WRITEMAP and
 * writes with pwrite() as before; the two kinds of process can share a
 * store (LMDB's warning against mixing them is about its own msync and
 * fsync, which a NOSYNC store never relies on).
 *   LMDB with WRITEMAP sets data.mdb's size to its map size at every map
 * (open, growth, adopting another process's growth), also when that is
 * smaller than the file: it would cut the map of a process that grew it.
 * So each of those runs under a record lock on data.mdb (map_lock), with a size no smaller
 * than the file's and the meta pages' (map_size_now), and with the blocks
 * reserved first.
 *
 * PROCESS-WIDE REGISTRY.  LMDB forbids opening one environment twice in a
 * process, so environments are shared by (device, inode, pid) and counted.
 * This list and its mutex are the library's only global mutable state.  The
 * pid keeps a child after fork() from reusing its parent's environment.
 *
 * MAP GROWTH.  mdb_env_set_mapsize() may only run while this process has no
 * transaction open, so every transaction holds `resize` shared and growth
 * takes it exclusive.  Growth by another process shows up as
 * MDB_MAP_RESIZED at mdb_txn_begin() and is adopted the same way.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>

#include "file.h"
#include "internal.h"
#include "journal.h"
#include "kv.h"

#define KV_MAX_READERS 1022
#define KV_MAX_MAP ((uint64_t)1 << 40)

static const char *const db_names[KV_NDB] = {
	"pages", "ptime", "meta", "errtypes", "synchist", "errhist"
};

struct kv_env {
	MDB_env *env;
	MDB_dbi dbi[KV_NDB];
	pthread_rwlock_t resize;
	dev_t dev;
	ino_t ino;
	pid_t pid;
	int refs;
	struct kv_env *next;
	/* WRITEMAP (above): data.mdb, for its record lock and fallocate; -1 without */
	int map_fd;
	/* another process grew the map and its new blocks could not be
	 * reserved here: write transactions fail (MB_ENOSPC) until they are */
	atomic_bool unreserved;
	/* CARRY (kv.h): the scratch of this process's last write transaction
	 * as it committed, valid for the write transaction whose id is
	 * carry_id + 1 (0: none).  Written under LMDB's writer lock, with
	 * carry_id 0 meanwhile. */
	_Alignas(8) unsigned char carry[KV_TXN_SCRATCH];
	_Atomic size_t carry_id;
};

struct kv_txn {
	kv_env *e;
	MDB_txn *txn;
	bool write;
	_Alignas(8) unsigned char scratch[KV_TXN_SCRATCH];
};

struct kv_cursor {
	MDB_cursor *cur;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;
static kv_env *registry;

/* A fork() while another thread holds registry_lock would leave the child
 * a locked mutex and no thread to unlock it: hold it across fork(). */
static void fork_prepare(void)
{
	pthread_mutex_lock(&registry_lock);
}

static void fork_release(void)
{
	pthread_mutex_unlock(&registry_lock);
}

static void registry_init(void)
{
	pthread_atfork(fork_prepare, fork_release, fork_release);
}

static void registry_enter(void)
{
	pthread_once(&registry_once, registry_init);
	pthread_mutex_lock(&registry_lock);
}

/* The one place MDB_* codes become MB_E* codes. */
static int kv_code(int rc)
{
	switch (rc) {
	case MDB_SUCCESS: return 0;
	case MDB_NOTFOUND: return MB_ENOTFOUND;
	case MDB_MAP_FULL: return KV_EMAPFULL;
	case MDB_CORRUPTED: case MDB_PAGE_NOTFOUND: case MDB_INVALID:
	case MDB_BAD_TXN: return MB_ECORRUPT;
	case MDB_VERSION_MISMATCH: return MB_EVERSION;
	case MDB_PANIC: return MB_EFATAL;
	case ENOMEM: return MB_ENOMEM;
	case ENOSPC: return MB_ENOSPC;
	case EACCES: case EPERM: case EROFS: return MB_EPERM;
	case EIO: case EMFILE: case ENFILE: return MB_EIO;
	default: return MB_EINTERNAL;
	}
}

static MDB_val to_mdb(kv_val v)
{
	return (MDB_val){ .mv_size = v.len, .mv_data = (void *)v.data };
}

static kv_val from_mdb(MDB_val v)
{
	return (kv_val){ .data = v.mv_data, .len = v.mv_size };
}

static int open_dbis(kv_env *e)
{
	MDB_txn *txn;
	int rc;

	/* another process may grow the map between mdb_env_open() and here:
	 * adopt its size (nobody else uses this environment yet) */
	for (int tries = 0; (rc = mdb_txn_begin(e->env, NULL, 0, &txn)) == MDB_MAP_RESIZED &&
	                    tries < 8; tries++)
		mdb_env_set_mapsize(e->env, 0);
	if (rc)
		return rc;
	for (int i = 0; i < KV_NDB && !rc; i++)
		rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &e->dbi[i]);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);
}

/* The message of a data.mdb shorter than its pages in use. */
static int cut_short(char *err, size_t errlen, const char *dir, uint64_t size, uint64_t used)
{
	snprintf(err, errlen, "store %s/data.mdb: %llu bytes, but its meta page has %llu in use: "
	         "the file was cut short", dir, (unsigned long long)size, (unsigned long long)used);
	return KV_EINVALID;
}

/* LMDB maps data.mdb and trusts its meta page: a file cut shorter than the
 * pages the meta page says are in use (an interrupted copy, a damaged disk)
 * would be SIGBUS at the first read past its end.  Refuse it before any
 * page beyond the two meta pages (read with pread) is touched.  (A process
 * that writes its map in place checks this before LMDB maps it: map_prepare.) */
static int check_file_size(MDB_env *env, const char *dir, char *err, size_t errlen)
{
	MDB_envinfo info;
	MDB_stat st;
	struct stat fs;
	mdb_filehandle_t fd;
	uint64_t need;

	if (mdb_env_info(env, &info) || mdb_env_stat(env, &st) || mdb_env_get_fd(env, &fd) ||
	    fstat(fd, &fs))
		return 0;
	need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	if ((uint64_t)fs.st_size >= need)
		return 0;
	return cut_short(err, errlen, dir, (uint64_t)fs.st_size, need);
}

/* LMDB's meta page, data format 1 on a 64-bit machine: after the 16-byte
 * page header, mm_magic (u32), mm_version (u32), mm_address, mm_mapsize,
 * mm_dbs[2] of 48 bytes (the first's md_pad is the page size), mm_last_pg,
 * mm_txnid.  Pages 0 and 1 hold one each; the one with the larger txnid is
 * current.  Read here only to size the map before LMDB maps it. */
#define META_AT 16u
#define META_BYTES (META_AT + 136u)
#define META_MAGIC 0xBEEFC0DEu

typedef struct meta_fig {
	uint64_t map_size;  /* mm_mapsize */
	uint64_t used;      /* bytes of the pages in use: (mm_last_pg + 1) * page size */
	uint64_t txnid;
	uint32_t psize;
} meta_fig;

static uint64_t le64_at(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof v);
	return v;
}

static uint32_t le32_at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof v);
	return v;
}

/* true: @pg holds an LMDB meta page of sane figures */
static bool meta_parse(const uint8_t *pg, meta_fig *m)
{
	const uint8_t *mm = pg + META_AT;
	uint32_t ps = le32_at(mm + 24);
	uint64_t last = le64_at(mm + 120);

	if (le32_at(mm) != META_MAGIC || le32_at(mm + 4) != 1 || ps < 512 || ps > 65536 ||
	    (ps & (ps - 1)) || last >= KV_MAX_MAP / ps || le64_at(mm + 16) > KV_MAX_MAP)
		return false;
	*m = (meta_fig){ le64_at(mm + 16), (last + 1) * ps, le64_at(mm + 128), ps };
	return true;
}

/* The current meta page of data.mdb (@fd); false when page 0 is not
 * LMDB's (LMDB then refuses the file itself, and says why).  @max_map: the
 * larger map size of the two pages (either may be the newer by the time
 * it is used). */
static bool file_meta(int fd, meta_fig *out, uint64_t *max_map)
{
	uint8_t pg[META_BYTES];
	meta_fig m1;

	if (pread(fd, pg, sizeof pg, 0) != (ssize_t)sizeof pg || !meta_parse(pg, out))
		return false;
	*max_map = out->map_size;
	if (pread(fd, pg, sizeof pg, out->psize) == (ssize_t)sizeof pg && meta_parse(pg, &m1) &&
	    m1.psize == out->psize) {
		*max_map = m1.map_size > *max_map ? m1.map_size : *max_map;
		if (m1.txnid > out->txnid)
			*out = m1;
	}
	return true;
}

/* Filesystems where a block reserved by fallocate() stays the block a
 * write through the map lands in, so that such a write needs no new one. */
static bool fs_keeps_blocks(int fd)
{
	struct statfs fs;

	if (fstatfs(fd, &fs))
		return false;
	switch ((unsigned long)fs.f_type) {
	case EXT4_SUPER_MAGIC:   /* also ext2 and ext3 */
	case XFS_SUPER_MAGIC:
	case TMPFS_MAGIC:
		return true;
	default:
		return false;
	}
}

/* Reserve a block for every byte of [0, @size) of data.mdb: its size and
 * bytes stay as they are.  0 or an errno. */
static int reserve(int fd, uint64_t size)
{
	int r;

	while ((r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)size)) && errno == EINTR)
		;
	return r ? errno : 0;
}

/* The lock that orders every change of data.mdb's size by LMDB (WRITEMAP,
 * above): a POSIX record lock on its byte 0 (LMDB locks only lock.mdb), not
 * an flock, which a child forked meanwhile would inherit and could keep
 * after this process died.  Threads of one process are kept apart by the
 * registry lock (open) and `resize` (growth).  A close() of data.mdb here
 * would drop it: nothing closes the file while it is held, and a child
 * after fork() never closes its parent's descriptor (kv_close).  It is
 * held for a few system calls; 30 s is a process stopped while holding it. */
static int map_lock(int fd, bool lock)
{
	struct flock fl = { .l_type = lock ? F_WRLCK : F_UNLCK, .l_whence = SEEK_SET,
	                    .l_start = 0, .l_len = 1 };

	for (unsigned i = 0; fcntl(fd, F_SETLK, &fl); i++) {
		if (errno != EAGAIN && errno != EACCES && errno != EINTR)
			return mb_errno_code(errno);
		if (i >= 150000)
			return MB_EIO;
		nanosleep(&(struct timespec){ 0, 200 * 1000 }, NULL);
	}
	return 0;
}

/* Before mdb_env_open(): whether this process maps the store with WRITEMAP.
 * Yes: e->map_fd is data.mdb with map_lock held (released once LMDB has
 * mapped it) and every block of *map_size reserved, *map_size raised to the
 * file's size and its meta page's map size.  No: e->map_fd is -1 and LMDB
 * opens the store as without WRITEMAP.  KV_EINVALID: data.mdb is shorter
 * than the pages its meta page has in use (LMDB would extend it with zeros,
 * and the cut would go unseen). */
static int map_prepare(kv_env *e, const char *dir, unsigned mode, size_t *map_size,
                       char *err, size_t errlen)
{
	char path[4096];
	meta_fig m = { 0 };
	struct stat st;
	uint64_t size = *map_size, meta_map = 0;
	int fd;

	e->map_fd = -1;
	if (getenv("MEMBANK_TEST_NO_WRITEMAP") ||
	    mb_pathf(path, sizeof path, "%s/data.mdb", dir) ||
	    (fd = mb_open_fd(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode)) < 0)
		return 0;   /* LMDB's own open says what is wrong, if anything */
	if (!fs_keeps_blocks(fd) || map_lock(fd, true)) {
		close(fd);
		return 0;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    (st.st_size > 0 && !file_meta(fd, &m, &meta_map)))
		goto without;
	if ((uint64_t)st.st_size < m.used) {
		close(fd);   /* drops the lock */
		return cut_short(err, errlen, dir, (uint64_t)st.st_size, m.used);
	}
	size = size > (uint64_t)st.st_size ? size : (uint64_t)st.st_size;
	size = size > meta_map ? size : meta_map;
	if (size > KV_MAX_MAP || reserve(fd, size))
		goto without;
	*map_size = (size_t)size;
	e->map_fd = fd;
	return 0;
without:
	close(fd);   /* drops the lock */
	return 0;
}

/* A WRITEMAP map to at least @want bytes, never below the file or the map
 * size of a meta page (another process's growth), its blocks reserved
 * first.  @must (growth): a reservation that fails is MB_ENOSPC and nothing
 * changes; else (adopting another process's growth, which cannot be
 * refused) the map is adopted and write transactions wait for the blocks
 * (kv_begin). */
static int map_resize(kv_env *e, uint64_t want, bool must)
{
	uint64_t meta_map = 0;
	struct stat st;
	meta_fig m;
	int rc, r;

	if ((rc = map_lock(e->map_fd, true)))
		return rc;
	if (fstat(e->map_fd, &st)) {
		rc = mb_errno_code(errno);
		goto out;
	}
	want = want > (uint64_t)st.st_size ? want : (uint64_t)st.st_size;
	if (file_meta(e->map_fd, &m, &meta_map))
		want = want > meta_map ? want : meta_map;
	if (want > KV_MAX_MAP) {
		rc = MB_ENOSPC;
		goto out;
	}
	r = reserve(e->map_fd, want);
	if (r && must) {
		rc = r == ENOSPC || r == EFBIG ? MB_ENOSPC : mb_errno_code(r);
		goto out;
	}
	atomic_store(&e->unreserved, r != 0);
	rc = kv_code(mdb_env_set_mapsize(e->env, (size_t)want));
out:
	map_lock(e->map_fd, false);
	return rc;
}

/* LMDB creates data.mdb and lock.mdb with @mode less the umask: give them
 * @mode itself, or a group-shared bank would not be shared.  Fails
 * harmlessly on files another user created. */
static void keep_mode(MDB_env *env, const char *dir, unsigned mode)
{
	char lock[4096];
	mdb_filehandle_t fd;

	if (!mdb_env_get_fd(env, &fd))
		fchmod(fd, mode);
	if (!mb_pathf(lock, sizeof lock, "%s/lock.mdb", dir))
		chmod(lock, mode);
}

static void map_fd_close(kv_env *e)
{
	if (e->map_fd >= 0)
		close(e->map_fd);
	e->map_fd = -1;
}

static int env_create(const char *dir, unsigned mode, size_t map_size, kv_env *e,
                      char *err, size_t errlen)
{
	pthread_rwlockattr_t ra;
	int rc;

	e->map_fd = -1;
	if ((rc = mdb_env_create(&e->env)))
		goto fail;
	mdb_env_set_maxdbs(e->env, KV_NDB);
	mdb_env_set_maxreaders(e->env, KV_MAX_READERS);
	/* LMDB opens data.mdb and lock.mdb itself: with a standard descriptor
	 * closed, one would land on 1 or 2 and the program's output would be
	 * written into it (journal/fd.c).  /dev/null fills the gaps first; the
	 * registry lock (and the bank's open lock) keeps threads from racing. */
	mbj_stdio_fill();
	if ((rc = map_prepare(e, dir, mode, &map_size, err, errlen))) {
		mdb_env_close(e->env);
		e->env = NULL;
		return rc;
	}
	mdb_env_set_mapsize(e->env, map_size);
	rc = mdb_env_open(e->env, dir, MDB_NOSYNC | MDB_NOTLS | MDB_NORDAHEAD |
	                  (e->map_fd >= 0 ? MDB_WRITEMAP : 0), mode);
	if (e->map_fd >= 0)
		map_lock(e->map_fd, false);
	if (rc)
		goto fail;
	if ((rc = check_file_size(e->env, dir, err, errlen))) {
		mdb_env_close(e->env);
		e->env = NULL;
		map_fd_close(e);
		return rc;
	}
	keep_mode(e->env, dir, mode);
	if ((rc = open_dbis(e)))
		goto fail;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&e->resize, &ra);
	pthread_rwlockattr_destroy(&ra);
	return 0;
fail:
	snprintf(err, errlen, "store %s: %s", dir, mdb_strerror(rc));
	if (e->env)
		mdb_env_close(e->env);
	e->env = NULL;
	map_fd_close(e);
	return rc == MDB_INVALID ? KV_EINVALID : kv_code(rc);
}

int kv_open(const char *dir, unsigned mode, size_t map_size, kv_env **out,
            char *err, size_t errlen)
{
	struct stat st;
	kv_env *e;
	int rc = 0;

	*out = NULL;
	if (stat(dir, &st)) {
		snprintf(err, errlen, "store %s: %s", dir, strerror(errno));
		return mb_errno_code(errno);
	}
	registry_enter();
	for (e = registry; e; e = e->next)
		if (e->dev == st.st_dev && e->ino == st.st_ino && e->pid == getpid())
			break;
	if (e) {
		e->refs++;
	} else if (!(e = calloc(1, sizeof *e))) {
		rc = MB_ENOMEM;
	} else if ((rc = env_create(dir, mode, map_size, e, err, errlen))) {
		free(e);
		e = NULL;
	} else {
		e->dev = st.st_dev;
		e->ino = st.st_ino;
		e->pid = getpid();
		e->refs = 1;
		e->next = registry;
		registry = e;
	}
	pthread_mutex_unlock(&registry_lock);
	*out = e;
	return rc;
}

/* LMDB holds a shared fcntl lock on byte 0 of lock.mdb in every process
 * that has the environment open, so a write lock on it that succeeds proves
 * nobody does.  The probe's close() drops this process's record locks on
 * the file, so it runs only when no environment of @dir is open here.  A
 * lock file that cannot be opened, except one that does not exist, counts
 * as in use: callers act on "unused" (see kv.h). */
bool kv_in_use(const char *dir)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	char lock[4096];
	int fd;
	bool busy;

	if (kv_open_here(dir))
		return true;
	if (mb_pathf(lock, sizeof lock, "%s/lock.mdb", dir))
		return true;
	if ((fd = mb_open_fd(lock, O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0)) < 0)
		return errno != ENOENT;  /* no lock file: nobody has it open */
	busy = fcntl(fd, F_SETLK, &fl) != 0;
	close(fd);
	return busy;
}

int kv_set_aside(const char *dir, char *err, size_t errlen)
{
	char when[MB_TIME_LEN], aside[4096], *slash;
	int rc;

	if (kv_in_use(dir)) {
		snprintf(err, errlen, "store %s: not a valid LMDB environment, and open in another "
		         "process: it is moved aside and rebuilt by an open once no process has "
		         "the bank open", dir);
		return MB_ECORRUPT;
	}
	mb_format_time(mb_now_us(), when);
	if (mb_pathf(aside, sizeof aside, "%s.invalid-%s", dir, when))
		return MB_EINVAL;
	if (rename(dir, aside)) {
		rc = mb_errno_code(errno);
		snprintf(err, errlen, "store %s: cannot move it aside to %s: %s", dir, aside,
		         strerror(errno));
		return rc;
	}
	if ((slash = strrchr(aside, '/'))) {
		*slash = '\0';
		fsync_dir(aside);
	}
	return 0;
}

void kv_close(kv_env *e)
{
	kv_env **pp;

	if (!e)
		return;
	registry_enter();
	if (--e->refs == 0) {
		for (pp = &registry; *pp && *pp != e; pp = &(*pp)->next)
			;
		if (*pp)
			*pp = e->next;
		/* a child after fork() must not touch its parent's environment:
		 * it only forgets it */
		if (e->pid == getpid()) {
			mdb_env_close(e->env);
			pthread_rwlock_destroy(&e->resize);
			map_fd_close(e);
		}
		free(e);
	}
	pthread_mutex_unlock(&registry_lock);
}

bool kv_open_here(const char *dir)
{
	struct stat st;
	kv_env *e;

	if (stat(dir, &st))
		return false;
	registry_enter();
	for (e = registry; e; e = e->next)
		if (e->dev == st.st_dev && e->ino == st.st_ino && e->pid == getpid())
			break;
	pthread_mutex_unlock(&registry_lock);
	return e != NULL;
}

int kv_reader_check(kv_env *e, int *cleared)
{
	int dead = 0, rc = mdb_reader_check(e->env, &dead);

	if (cleared)
		*cleared = dead;
	return kv_code(rc);
}

int kv_grow(kv_env *e)
{
	MDB_envinfo info;
	uint64_t size;
	int rc;

	pthread_rwlock_wrlock(&e->resize);
	mdb_env_info(e->env, &info);
	size = (uint64_t)info.me_mapsize * 2;
	if (size > KV_MAX_MAP)
		rc = MB_ENOSPC;
	else if (e->map_fd >= 0)
		rc = map_resize(e, size, true);
	else
		rc = kv_code(mdb_env_set_mapsize(e->env, size));
	pthread_rwlock_unlock(&e->resize);
	return rc;
}

/* Another process grew the map: adopt its size. */
static void adopt_map(kv_env *e)
{
	pthread_rwlock_wrlock(&e->resize);
	if (e->map_fd >= 0)
		map_resize(e, 0, false);
	else
		mdb_env_set_mapsize(e->env, 0);
	pthread_rwlock_unlock(&e->resize);
}

int kv_begin(kv_env *e, bool write, kv_txn **out)
{
	kv_txn *t = malloc(sizeof *t);
	int rc;

	*out = NULL;
	if (!t)
		return MB_ENOMEM;
	for (int tries = 0;; tries++) {
		pthread_rwlock_rdlock(&e->resize);
		rc = mdb_txn_begin(e->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
		if (!rc)
			break;
		pthread_rwlock_unlock(&e->resize);
		if (rc == MDB_MAP_RESIZED && tries < 8)
			adopt_map(e);
		else if (rc == MDB_READERS_FULL && tries < 8)
			mdb_reader_check(e->env, NULL);
		else {
			free(t);
			return kv_code(rc);
		}
	}
	/* another process's growth adopted without its blocks (map_resize) */
	if (write && atomic_load(&e->unreserved)) {
		MDB_envinfo info;

		mdb_env_info(e->env, &info);
		if (reserve(e->map_fd, info.me_mapsize)) {
			mdb_txn_abort(t->txn);
			pthread_rwlock_unlock(&e->resize);
			free(t);
			return MB_ENOSPC;
		}
		atomic_store(&e->unreserved, false);
	}
	t->e = e;
	t->write = write;
	size_t carried = write ? atomic_load_explicit(&e->carry_id, memory_order_acquire) : 0;
	if (carried && mdb_txn_id(t->txn) == carried + 1)
		memcpy(t->scratch, e->carry, sizeof t->scratch);
	else
		memset(t->scratch, 0, sizeof t->scratch);
	*out = t;
	return 0;
}

void *kv_txn_scratch(kv_txn *t)
{
	return t->scratch;
}

/* LMDB 0.9.24 reports a short pwrite() as EIO (mdb_page_flush: "TODO: Use
 * which error code?"), and a short write is what a full disk gives when
 * part of a commit's pages fit.  EIO with less than 1 MiB left on the
 * store's filesystem is taken for what it almost surely is. */
static int commit_code(MDB_env *env, int rc)
{
	mdb_filehandle_t fd;
	struct statvfs fs;

	if (rc == EIO && !mdb_env_get_fd(env, &fd) && !fstatvfs(fd, &fs) &&
	    (uint64_t)fs.f_bavail * fs.f_frsize < ((uint64_t)1 << 20))
		rc = ENOSPC;
	return kv_code(rc);
}

/* Tests: the next kv_test_commit_failures commits fail as a full disk
 * would (the transaction aborted), to reach the paths behind a failed
 * commit deterministically. */
static atomic_int commit_failures;

void kv_test_fail_commits(int n)
{
	atomic_store(&commit_failures, n);
}

int kv_commit(kv_txn *t)
{
	int rc;

	if (atomic_load_explicit(&commit_failures, memory_order_relaxed) > 0 &&
	    atomic_fetch_sub(&commit_failures, 1) > 0) {
		mdb_txn_abort(t->txn);
		rc = MB_ENOSPC;
	} else {
		size_t id = t->write ? mdb_txn_id(t->txn) : 0;

		/* CARRY: a failed commit must leave none (the next write
		 * transaction gets this one's id again) */
		atomic_store_explicit(&t->e->carry_id, 0, memory_order_relaxed);
		if (id)
			memcpy(t->e->carry, t->scratch, sizeof t->scratch);
		rc = commit_code(t->e->env, mdb_txn_commit(t->txn));
		if (!rc && id)
			atomic_store_explicit(&t->e->carry_id, id, memory_order_release);
	}

	pthread_rwlock_unlock(&t->e->resize);
	free(t);
	return rc;
}

void kv_abort(kv_txn *t)
{
	if (!t)
		return;
	mdb_txn_abort(t->txn);
	pthread_rwlock_unlock(&t->e->resize);
	free(t);
}

int kv_end(kv_txn *t, int rc)
{
	if (!rc)
		return kv_commit(t);
	kv_abort(t);
	return rc;
}

int kv_get(kv_txn *t, int db, kv_val key, kv_val *val)
{
	MDB_val k = to_mdb(key), v;
	int rc = mdb_get(t->txn, t->e->dbi[db], &k, &v);

	if (!rc)
		*val = from_mdb(v);
	return kv_code(rc);
}

int kv_put(kv_txn *t, int db, kv_val key, kv_val val)
{
	MDB_val k = to_mdb(key), v = to_mdb(val);

	return kv_code(mdb_put(t->txn, t->e->dbi[db], &k, &v, 0));
}

int kv_put_new(kv_txn *t, int db, kv_val key, kv_val val, bool append, bool *appended)
{
	MDB_val k = to_mdb(key), v = to_mdb(val);
	int rc = MDB_KEYEXIST;

	/* MDB_APPEND refuses (MDB_KEYEXIST) a key that does not sort after
	 * the last one, present or not: only MDB_NOOVERWRITE tells which */
	if (append)
		rc = mdb_put(t->txn, t->e->dbi[db], &k, &v, MDB_APPEND);
	if (appended)
		*appended = rc != MDB_KEYEXIST;
	if (rc == MDB_KEYEXIST)
		rc = mdb_put(t->txn, t->e->dbi[db], &k, &v, MDB_NOOVERWRITE);
	return rc == MDB_KEYEXIST ? MB_EEXIST : kv_code(rc);
}

int kv_del(kv_txn *t, int db, kv_val key)
{
	MDB_val k = to_mdb(key);

	return kv_code(mdb_del(t->txn, t->e->dbi[db], &k, NULL));
}

int kv_count(kv_txn *t, int db, uint64_t *n)
{
	MDB_stat st;
	int rc = mdb_stat(t->txn, t->e->dbi[db], &st);

	*n = rc ? 0 : st.ms_entries;
	return kv_code(rc);
}

int kv_drop(kv_txn *t, int db)
{
	memset(t->scratch, 0, sizeof t->scratch);   /* what it cached may be gone */
	return kv_code(mdb_drop(t->txn, t->e->dbi[db], 0));
}

/* mdb_reader_list() only prints: "    pid     thread     txnid" lines. */
/* One line of mdb_reader_list(): "pid thread txnid" ("-": between
 * transactions).  A slot whose process is gone is stale: it is counted,
 * and its transaction is not the oldest live reader's. */
static int scan_reader(const char *msg, void *ctx)
{
	unsigned long long pid, txn;
	char thread[32];
	kv_info *info = ctx;
	int n = sscanf(msg, "%llu %31s %llu", &pid, thread, &txn);

	if (n < 2)
		return 0;   /* the header line */
	if (kill((pid_t)pid, 0) && errno == ESRCH) {
		info->stale_readers++;
		return 0;
	}
	if (n == 3 && txn && (!info->oldest_reader || txn < info->oldest_reader))
		info->oldest_reader = txn;
	return 0;
}

int kv_info_get(kv_env *e, kv_info *info)
{
	MDB_envinfo ei;
	MDB_stat st;
	kv_txn *t;
	int rc;

	memset(info, 0, sizeof *info);
	if ((rc = kv_begin(e, false, &t)))
		return rc;
	mdb_env_info(e->env, &ei);
	mdb_env_stat(e->env, &st);
	info->map_size = ei.me_mapsize;
	info->map_used = (uint64_t)(ei.me_last_pgno + 1) * st.ms_psize;
	info->last_txn = ei.me_last_txnid;
	info->readers = ei.me_numreaders;
	info->max_readers = ei.me_maxreaders;
	info->writemap = e->map_fd >= 0;
	mdb_reader_list(e->env, scan_reader, info);
	for (int i = 0; i < KV_NDB; i++)
		kv_count(t, i, &info->entries[i]);
	kv_abort(t);
	return 0;
}

int kv_cursor_open(kv_txn *t, int db, kv_cursor **out)
{
	kv_cursor *c = malloc(sizeof *c);
	int rc;

	*out = NULL;
	if (!c)
		return MB_ENOMEM;
	if ((rc = mdb_cursor_open(t->txn, t->e->dbi[db], &c->cur))) {
		free(c);
		return kv_code(rc);
	}
	*out = c;
	return 0;
}

static int cursor_get(kv_cursor *c, MDB_val *k, kv_val *ko, kv_val *vo, MDB_cursor_op op)
{
	MDB_val v;
	int rc = mdb_cursor_get(c->cur, k, &v, op);

	if (!rc) {
		*ko = from_mdb(*k);
		*vo = from_mdb(v);
	}
	return kv_code(rc);
}

int kv_cursor_seek(kv_cursor *c, const kv_val *key, kv_val *k, kv_val *v)
{
	MDB_val mk = { 0, NULL };

	if (!key)
		return cursor_get(c, &mk, k, v, MDB_FIRST);
	mk = to_mdb(*key);
	return cursor_get(c, &mk, k, v, MDB_SET_RANGE);
}

int kv_cursor_next(kv_cursor *c, kv_val *k, kv_val *v)
{
	MDB_val mk;

	return cursor_get(c, &mk, k, v, MDB_NEXT);
}

int kv_cursor_last(kv_cursor *c, kv_val *k, kv_val *v)
{
	MDB_val mk;

	return cursor_get(c, &mk, k, v, MDB_LAST);
}

int kv_cursor_prev(kv_cursor *c, kv_val *k, kv_val *v)
{
	MDB_val mk;

	return cursor_get(c, &mk, k, v, MDB_PREV);
}

int kv_cursor_del(kv_cursor *c)
{
	return kv_code(mdb_cursor_del(c->cur, 0));
}

void kv_cursor_close(kv_cursor *c)
{
	if (!c)
		return;
	mdb_cursor_close(c->cur);
	free(c);
}
