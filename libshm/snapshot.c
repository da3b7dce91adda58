/*
 * snapshot.c - the four JSON files of the spec, from one read transaction.
 *
 * notion_pages.json is streamed one page at a time from a copy of the
 * pages (SPILL), so memory stays bounded however many pages there are; the
 * other three are small and bounded by the history limit.  Each file is
 * replaced atomically (file.h).
 *
 * SHORT READ.  While a read transaction is open, the pages that other
 * processes' writes free cannot be reused: every page those writes copy is
 * a new one, and LMDB never gives them back to the filesystem.  Worse, it
 * reuses its free pages oldest first, so once the store has grown every
 * write copies into pages that are cold in the CPU's caches and, in each
 * process, not yet mapped.  Formatting JSON costs about 3 us a page, so a
 * snapshot that formatted under its transaction held it for seconds on a
 * large bank, with writers running.  So the transaction only copies: the
 * pages' stored bytes, in key order, into a spill, and the small
 * documents into memory.  It then ends, and the files are formatted from
 * the copy.  The copy is of one transaction, so the files are still one
 * consistent instant.
 *
 * THE COPY HOLDS THE WRITER LOCK.  Even a copy of 20 ms (100,000 pages)
 * pinned pages: the writes of other processes meanwhile moved to new ones
 * (W1 fast, 4 processes: 10,000-20,000 pages in use after one checkpoint,
 * against 5,600), and the free pages stay in LMDB's free list, which every
 * commit after rewrites whole: the writes of a whole run were a third
 * slower after a single checkpoint.  So the transaction that copies is a
 * write transaction, aborted: no write commits while it copies, so none
 * frees a page it pins.  Writers wait for it instead (their records queue
 * in the write group, and go in one transaction after), about 0.2 us a
 * page.  A reader of the library (mb_page_iterate) still pins pages: its
 * header says so.
 *
 * SPILL.  Records [u32 key length][u32 value length][key][value], host
 * byte order, in key order: in memory up to SPILL_MEM (16 MiB: about
 * 60,000 pages of the bench's size; a worker may run in a small memory
 * limit, and the automatic checkpoint runs in writers), beyond that in an unlinked file in the directory being written
 * (O_TMPFILE, or a name unlinked at once; 0600).  A larger bank's snapshot
 * so needs, for its duration, free disk for the copy of its pages as well
 * as for the four files, and memory stays bounded.  The values are checked
 * when formatted, as they were when read from the store.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "checkpoint.h"
#include "cluster.h"
#include "docs.h"
#include "file.h"
#include "load.h"
#include "lockfile.h"
#include "progress.h"

static const char *const doc_files[4] = {
	"notion_pages.json", "sync_status.json", "error_log.json", "config_cache.json"
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* SPILL: the copy of the pages, in memory up to SPILL_MEM, then in a file. */
#define SPILL_MEM ((size_t)16 << 20)   /* the allocation's bound too */
#define SPILL_BUF (256u * 1024)

typedef struct spill {
	const char *dir;           /* where its file goes */
	size_t mem_max;            /* SPILL_MEM; tests: MEMBANK_TEST_SPILL_MEM */
	mb_buf mem;                /* the copy while fd < 0 */
	int fd;                    /* -1: in memory */
	uint8_t *buf;              /* the file's SPILL_BUF buffer */
	size_t n, pos;             /* bytes in buf (or mem); read position */
	uint64_t records;
} spill;

/* What a snapshot reads from the store, in one short read transaction
 * (SHORT READ): the pages spilled, the rest as text. */
typedef struct snap_read {
	spill sp;
	uint64_t stored;           /* pages in the store, expired ones too */
	int64_t now, last_updated;
	mb_config cfg;
	st_sync sync;
	st_removed rm;
	mb_buf small[4];           /* [1..3]: sync_status, error_log, config_cache */
	mb_buf state;              /* checkpoint.json's end (doc_checkpoint_state) */
} snap_read;

static int spill_write(mb_bank *b, spill *sp, const void *p, size_t len)
{
	const uint8_t *src = p;

	while (len) {
		ssize_t k = write(sp->fd, src, len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return mb_fail(b, k < 0 ? mb_errno_code(errno) : MB_EIO,
			               "snapshot: %s: spill file: %s", sp->dir,
			               k < 0 ? strerror(errno) : "short write");
		src += k;
		len -= (size_t)k;
	}
	return 0;
}

/* The copy outgrew memory: into a file, unlinked from the start (O_TMPFILE,
 * or a name unlinked at once), so nothing is ever left behind. */
static int spill_to_file(mb_bank *b, spill *sp)
{
	char path[4096];
	int rc;

	sp->fd = open(sp->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (sp->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		mb_pathf(path, sizeof path, "%s/.spill.%ld.%lld", sp->dir, (long)getpid(),
		         (long long)mono_us());
		sp->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (sp->fd >= 0)
			unlink(path);
	}
	if (sp->fd < 0)
		return mb_fail(b, mb_errno_code(errno), "snapshot: %s: spill file: %s", sp->dir,
		               strerror(errno));
	if (!(sp->buf = malloc(SPILL_BUF)))
		return mb_fail(b, MB_ENOMEM, "snapshot: out of memory");
	if ((rc = spill_write(b, sp, sp->mem.data, sp->mem.len)))
		return rc;
	buf_free(&sp->mem);
	sp->n = 0;
	return 0;
}

static int spill_put(mb_bank *b, spill *sp, const void *p, size_t len)
{
	int rc;

	if (sp->fd < 0) {
		if (len < sp->mem_max - sp->mem.len)   /* mb_buf needs one byte more */
			return buf_add(&sp->mem, p, len) ? mb_fail(b, MB_ENOMEM, "snapshot: out of memory")
			                                 : 0;
		if ((rc = spill_to_file(b, sp)))
			return rc;
	}
	if (sp->n + len > SPILL_BUF) {
		if ((rc = spill_write(b, sp, sp->buf, sp->n)))
			return rc;
		sp->n = 0;
		if (len > SPILL_BUF)
			return spill_write(b, sp, p, len);
	}
	memcpy(sp->buf + sp->n, p, len);
	sp->n += len;
	return 0;
}

/* Written: read it back from the start. */
static int spill_rewind(mb_bank *b, spill *sp)
{
	int rc;

	sp->pos = 0;
	if (sp->fd < 0) {
		sp->n = sp->mem.len;
		return 0;
	}
	if ((rc = spill_write(b, sp, sp->buf, sp->n)))
		return rc;
	sp->n = 0;
	if (lseek(sp->fd, 0, SEEK_SET) < 0)
		return mb_fail(b, mb_errno_code(errno), "snapshot: %s: spill file: %s", sp->dir,
		               strerror(errno));
	return 0;
}

static int spill_get(mb_bank *b, spill *sp, void *p, size_t len)
{
	uint8_t *dst = p;
	const uint8_t *from = sp->fd < 0 ? (const uint8_t *)sp->mem.data : sp->buf;

	while (len) {
		size_t take;

		if (sp->pos == sp->n) {
			ssize_t k = sp->fd < 0 ? 0 : read(sp->fd, sp->buf, SPILL_BUF);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				return mb_fail(b, k < 0 ? mb_errno_code(errno) : MB_EIO,
				               "snapshot: %s: spill file: %s", sp->dir,
				               k < 0 ? strerror(errno) : "ends early");
			sp->n = (size_t)k;
			sp->pos = 0;
		}
		take = sp->n - sp->pos < len ? sp->n - sp->pos : len;
		memcpy(dst, from + sp->pos, take);
		sp->pos += take;
		dst += take;
		len -= take;
	}
	return 0;
}

static void spill_free(spill *sp)
{
	if (sp->fd >= 0)
		close(sp->fd);
	free(sp->buf);
	buf_free(&sp->mem);
}

/* The pages' stored bytes into the spill, in key order. */
static int spill_pages(mb_bank *bk, kv_txn *t, spill *sp)
{
	kv_cursor *c;
	kv_val k, v;
	int rc;

	if ((rc = kv_cursor_open(t, KV_PAGES, &c)))
		return rc;
	for (rc = kv_cursor_seek(c, NULL, &k, &v); !rc; rc = kv_cursor_next(c, &k, &v)) {
		uint32_t len[2] = { (uint32_t)k.len, (uint32_t)v.len };

		if (v.len > UINT32_MAX) {
			rc = MB_ECORRUPT;
			break;
		}
		if ((rc = spill_put(bk, sp, len, sizeof len)) ||
		    (rc = spill_put(bk, sp, k.data, k.len)) || (rc = spill_put(bk, sp, v.data, v.len)))
			break;
		sp->records++;
	}
	kv_cursor_close(c);
	return rc == MB_ENOTFOUND ? 0 : rc;
}

/* Everything the files need, from one transaction that writes nothing. */
static int read_store(mb_bank *b, const char *dir, mbj_pos *end, snap_read *s)
{
	static int (*const build[4])(kv_txn *, mb_buf *) = {
		NULL, doc_sync_status, doc_error_log, doc_config
	};
	const char *test_max = getenv("MEMBANK_TEST_SPILL_MEM");
	kv_txn *t;
	int rc;

	s->sp.dir = dir;
	s->sp.mem_max = test_max ? strtoull(test_max, NULL, 10) : SPILL_MEM;
	if ((rc = bank_check(b)))
		return rc;
	if ((rc = kv_begin(b->kv, true, &t)))   /* the writer lock: see THE COPY */
		return mb_fail(b, rc, "snapshot: cannot begin reading the store: %s",
		               mb_strerror(rc));
	mb_clear_error(b);
	s->now = mb_now_us();
	if (!(rc = bank_jend_load(t, end)) && !(rc = st_config_load(t, &s->cfg)) &&
	    !(rc = st_sync_load(t, &s->sync)) && !(rc = st_pages_load(t, &s->last_updated)) &&
	    !(rc = st_removed_load(t, &s->rm)) && !(rc = kv_count(t, KV_PAGES, &s->stored)))
		rc = spill_pages(b, t, &s->sp);
	for (int i = 1; i < 4 && !rc; i++)
		if (!(rc = build[i](t, &s->small[i])))
			rc = buf_addc(&s->small[i], '\n');
	if (!rc)
		rc = doc_checkpoint_state(t, &s->state);
	kv_abort(t);
	if (rc && !*mb_last_error(b))
		mb_fail(b, rc, "snapshot: reading the store: %s", mb_strerror(rc));
	return rc;
}

static void snap_read_free(snap_read *s)
{
	spill_free(&s->sp);
	for (int i = 0; i < 4; i++)
		buf_free(&s->small[i]);
	buf_free(&s->state);
}

/* Stream {"pages":{...},"last_updated":..,"metadata":{...}} into @f from the
 * spill. */
static int write_pages(mb_bank *bk, snap_read *s, afile *f, mb_snapshot_info *info)
{
	const uint8_t *props;
	int64_t updated;
	mb_buf rec = { 0 }, b = { 0 };
	progress pr;
	uint64_t n = 0;
	size_t plen;
	int rc;

	if ((rc = spill_rewind(bk, &s->sp)) ||
	    (rc = progress_start(&pr, &bk->opts, bk, "snapshot", "pages", s->sp.records)))
		goto out;
	afile_write(f, "{\"pages\":{", 10);
	for (uint64_t i = 0; i < s->sp.records; i++) {
		uint32_t len[2];
		kv_val v;

		if ((rc = spill_get(bk, &s->sp, len, sizeof len)))
			break;
		rec.len = 0;
		if ((rc = buf_reserve(&rec, (size_t)len[0] + len[1])) ||
		    (rc = spill_get(bk, &s->sp, rec.data, (size_t)len[0] + len[1])))
			break;
		v = (kv_val){ rec.data + len[0], len[1] };
		if ((rc = st_page_split(v, &updated, &props, &plen)) ||
		    (rc = progress_step(&pr, 0)))
			break;
		if (apply_expired(updated, s->now, &s->cfg))
			continue;
		b.len = 0;
		buf_adds(&b, n ? ",\n" : "\n");
		if ((rc = json_add_str(&b, rec.data, len[0])) || (rc = buf_addc(&b, ':')) ||
		    (rc = doc_page(v, &b)) || (rc = afile_write(f, b.data, b.len)))
			break;
		n++;
	}
	if (rc)
		goto out;
	b.len = 0;
	buf_adds(&b, "},\"last_updated\":");
	doc_time(&b, s->last_updated);
	buf_adds(&b, ",\"metadata\":{\"total_pages\":");
	json_add_int(&b, (int64_t)n);
	buf_adds(&b, ",\"last_sync\":");
	doc_time(&b, s->sync.last_sync);
	buf_adds(&b, "}}\n");
	rc = b.failed ? MB_ENOMEM : afile_write(f, b.data, b.len);
	info->pages = n;
	if (!rc)
		progress_end(&pr);
out:
	buf_free(&rec);
	buf_free(&b);
	return rc;
}

/* checkpoint.json: the position @end the files cover, the store's state
 * after it (doc_checkpoint_state), and "write_us", the microseconds since
 * @t0 (CLOCK_MONOTONIC), when the checkpoint began. */
static int write_checkpoint_file(mb_bank *b, const mb_buf *state, const char *dir,
                                 const mbj_pos *end, int64_t t0)
{
	mb_buf text = { 0 };
	int rc = doc_checkpoint(end, mono_us() - t0, state, &text);

	if (rc)
		rc = mb_fail(b, rc, "snapshot: %s: %s", MB_CHECKPOINT_FILE, mb_strerror(rc));
	else
		rc = mb_write_file_atomic(dir, MB_CHECKPOINT_FILE, text.data, text.len,
		                          b->file_mode, b);
	buf_free(&text);
	return rc;
}

static int write_one(mb_bank *b, snap_read *s, const char *dir, int i, mb_snapshot_info *info)
{
	afile *f = malloc(sizeof *f);
	struct stat st;
	char path[4096];
	int rc;

	if (!f)
		return mb_fail(b, MB_ENOMEM, "snapshot: out of memory");
	if (!(rc = afile_open(f, dir, doc_files[i], b->file_mode, b))) {
		rc = i == 0 ? write_pages(b, s, f, info)
		            : afile_write(f, s->small[i].data, s->small[i].len);
		if (rc) {
			afile_abort(f);
			if (!*mb_last_error(b))
				mb_fail(b, rc, "snapshot: %s: %s", doc_files[i], mb_strerror(rc));
		} else
			rc = afile_commit(f);
	}
	free(f);
	mb_pathf(path, sizeof path, "%s/%s", dir, doc_files[i]);
	if (!rc && !stat(path, &st))
		info->bytes += (uint64_t)st.st_size;
	return rc;
}

/* The four files and checkpoint.json into @dir, from one read transaction
 * held only while the store is read (SHORT READ). */
static int write_all(mb_bank *b, const char *dir, mbj_pos *end, mb_snapshot_info *info,
                     int64_t t0)
{
	snap_read s = { .sp = { .fd = -1 } };
	int rc = read_store(b, dir, end, &s);

	for (int i = 0; i < 4 && !rc; i++)
		rc = write_one(b, &s, dir, i, info);
	if (!rc) {
		info->pages_evicted = s.rm.evicted;
		info->pages_purged = s.rm.purged;
		info->pages_expired = s.stored > info->pages ? s.stored - info->pages : 0;
		rc = write_checkpoint_file(b, &s.state, dir, end, t0);
	}
	snap_read_free(&s);
	info->seq = end->seq;
	return rc;
}

/* Expired pages go through the journal like any change, so a replay drops
 * them at the same point. */
static int purge_expired(mb_bank *b, mb_snapshot_info *info)
{
	mb_config cfg;
	mb_buf rec = { 0 };
	st_removed before, after;
	kv_cursor *c;
	kv_val k, v;
	kv_txn *t;
	int64_t cutoff, ts;
	const char *id;
	size_t len;
	int rc;

	if ((rc = bank_read_begin(b, &t)))
		return rc;
	rc = st_config_load(t, &cfg);
	cutoff = mb_now_us() - cfg.ttl_seconds * 1000000;
	if (!rc && cfg.ttl_seconds > 0 && !(rc = kv_cursor_open(t, KV_PTIME, &c))) {
		rc = kv_cursor_seek(c, NULL, &k, &v);
		if (!rc && (st_ptime_split(k, &ts, &id, &len) || ts >= cutoff))
			rc = MB_ENOTFOUND;
		kv_cursor_close(c);
	} else if (!rc)
		rc = MB_ENOTFOUND;
	if (!rc)
		rc = st_removed_load(t, &before);
	kv_abort(t);
	if (rc)
		return rc == MB_ENOTFOUND ? 0 : mb_fail(b, rc, "snapshot: %s", mb_strerror(rc));
	if ((rc = rec_encode_int(&rec, cutoff)) || (rc = bank_write(b, REC_PURGE, &rec))) {
		buf_free(&rec);
		return rc;
	}
	buf_free(&rec);
	/* only purge records move the counter, and they are written under
	 * the checkpoint lock this snapshot holds */
	if (!bank_read_begin(b, &t)) {
		if (!st_removed_load(t, &after))
			info->purged = after.purged - before.purged;
		kv_abort(t);
	}
	return 0;
}

/* Swap the bank directory's view of the files to checkpoint/<name>. */
static int link_view(mb_bank *b, const char *ckdir)
{
	char src[4096], tmp[4096], dst[4096];

	for (int i = 0; i < 5; i++) {
		const char *name = i < 4 ? doc_files[i] : MB_CHECKPOINT_FILE;
		mb_pathf(src, sizeof src, "%s/%s", ckdir, name);
		mb_pathf(tmp, sizeof tmp, "%s/.%s.link.%ld", b->path, name, (long)getpid());
		mb_pathf(dst, sizeof dst, "%s/%s", b->path, name);
		unlink(tmp);
		if (link(src, tmp) || rename(tmp, dst)) {
			int err = errno;
			unlink(tmp);
			return mb_fail(b, mb_errno_code(err), "snapshot: %s: %s", dst, strerror(err));
		}
		/* when dst already was a link to src (the same checkpoint
		 * again), rename() did nothing and tmp is still there */
		unlink(tmp);
	}
	return fsync_dir(b->path) ? mb_fail(b, MB_EIO, "snapshot: fsync %s: %s", b->path,
	                                    strerror(errno)) : 0;
}

/* Temp names that processes killed mid-snapshot leave in @dir: the files'
 * temp files (of dead writers only), and with @links the .<file>.link.<pid>
 * links of link_view(), which only the holder of the compactor lock makes. */
static void clean_leftovers(const char *dir, bool links)
{
	struct dirent *e;
	char prefix[64], path[4096];
	DIR *d;

	for (int i = 0; i < 5; i++)
		afile_clean_dead(dir, i < 4 ? doc_files[i] : MB_CHECKPOINT_FILE);
	if (!links || !(d = mb_opendir(dir)))
		return;
	while ((e = readdir(d)))
		for (int i = 0; i < 5; i++) {
			snprintf(prefix, sizeof prefix, ".%s.link.", i < 4 ? doc_files[i]
			                                                  : MB_CHECKPOINT_FILE);
			if (!strncmp(e->d_name, prefix, strlen(prefix)) &&
			    !mb_pathf(path, sizeof path, "%s/%s", dir, e->d_name))
				unlink(path);
		}
	closedir(d);
}

/* Remove checkpoint directories older than @keep (NULL: none), and the
 * .tmp-<pid> directories of snapshots killed mid-write: the caller holds the
 * compactor lock, so no live process is writing one. */
static void prune_checkpoints(const char *root, const char *keep)
{
	struct dirent *e;
	char sub[4096];
	DIR *d = mb_opendir(root);

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' ? keep && strcmp(e->d_name, keep) < 0
		                        : !strncmp(e->d_name, ".tmp-", 5)) {
			mb_pathf(sub, sizeof sub, "%s/%s", root, e->d_name);
			mb_rm_tree(sub);
		}
	closedir(d);
}

/* Install checkpoint/<seq> (already checked by the loader), point the bank
 * directory's files at it, then keep it and the one before it: older
 * checkpoints go, and so do the journal segments that the one before it
 * covers, so that recovery can still fall back on that one (and the longer
 * journal) if the newest cannot be read. */
static int checkpoint_commit(mb_bank *b, const char *root, const char *tmp,
                             const mbj_pos *end, mb_snapshot_info *info)
{
	char name[32], prev[32], final[4096];
	int rc;

	snprintf(name, sizeof name, "%020llu", (unsigned long long)end->seq);
	mb_pathf(final, sizeof final, "%s/%s", root, name);
	/* The same seq again is the same content: keep the one in place, for
	 * removing it first would leave a moment with no checkpoint at all. */
	if (access(final, F_OK) == 0)
		mb_rm_tree(tmp);
	else if (rename(tmp, final) || fsync_dir(root))
		return mb_fail(b, mb_errno_code(errno), "snapshot: %s: %s", final, strerror(errno));
	if ((rc = link_view(b, final)))
		return rc;
	if (checkpoint_older(root, name, prev) || !*prev)
		return 0;  /* the first checkpoint: the whole journal is still needed */
	prune_checkpoints(root, prev);
	if (mbj_remove_covered(b->journal_dir, strtoull(prev, NULL, 10) + 1,
	                       b->opts.journal_retention_s, &info->segments_removed))
		info->segments_removed = 0;  /* retried by the next snapshot */
	return 0;
}

/* The journal durable up to @seq, the last record a checkpoint covers,
 * before the checkpoint is installed and segments are removed: else a
 * machine crash could leave a journal that ends before the checkpoint (a
 * `fast` writer's records, or a `full` writer's between its commit and its
 * sync), and the next write would land behind a hole.  Group commit: one
 * fdatasync, shared with the writers waiting.  MBJ_EINVAL: @seq was not
 * appended this boot (the sync state starts afresh each boot), so the store
 * holds it from a rebuild that read it from the disk: durable already. */
static int journal_durable(mb_bank *b, uint64_t seq)
{
	int jrc;

	if (!seq || mbj_durable_seq(b->jn) >= seq)
		return 0;
	jrc = mbj_sync(b->jn, seq);
	return jrc && jrc != MBJ_EINVAL ? bank_journal_fail(b, jrc, "snapshot: journal sync") : 0;
}

/* Copy the four files of @from into @dir, each atomically, and check each
 * copy against the digest of what was loaded (@want, in doc_files order):
 * a file changed since is refused, for the store holds the old bytes. */
static int copy_files(mb_bank *b, const char *from, const char *dir, const load_digest *want,
                      mb_snapshot_info *info)
{
	enum { CHUNK = 1 << 20 };
	char path[4096], *chunk = malloc(CHUNK);
	afile *f = malloc(sizeof *f);
	int rc = f && chunk ? 0 : mb_fail(b, MB_ENOMEM, "out of memory");

	for (int i = 0; i < 4 && !rc; i++) {
		load_digest got = { 0, 0 };
		int fd;
		ssize_t n;
		mb_pathf(path, sizeof path, "%s/%s", from, doc_files[i]);
		if ((fd = mb_open_fd(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0)) < 0) {
			rc = mb_fail(b, mb_errno_code(errno), "%s: %s", path, strerror(errno));
			break;
		}
		if (!(rc = afile_open(f, dir, doc_files[i], b->file_mode, b))) {
			while (!rc && (n = read(fd, chunk, CHUNK)) > 0) {
				rc = afile_write(f, chunk, (size_t)n);
				got.crc = mbj_crc32c(got.crc, chunk, (size_t)n);
				got.bytes += (uint64_t)n;
				info->bytes += (uint64_t)n;
			}
			if (!rc && n < 0)
				rc = mb_fail(b, MB_EIO, "%s: %s", path, strerror(errno));
			if (!rc && (got.bytes != want[i].bytes || got.crc != want[i].crc))
				rc = mb_fail(b, MB_EINVAL, "%s: changed while it was being restored; "
				             "restore again", path);
			if (rc)
				afile_abort(f);
			else
				rc = afile_commit(f);
		}
		close(fd);
	}
	free(chunk);
	free(f);
	return rc;
}

/* A new checkpoint: from the store (@copy_from NULL), or the files a bank
 * was just restored from, which hold exactly what was loaded (position
 * {0,0,0}: no journal record yet; @want: their digests as loaded). */
static int checkpoint_in(mb_bank *b, mb_snapshot_info *info, const char *copy_from,
                         const load_digest *want)
{
	char root[4096], tmp[4096];
	mbj_pos end = { 0, 0, 0 };
	int64_t t0 = mono_us();
	struct stat st;
	int rc = 0;

	mb_pathf(root, sizeof root, "%s/checkpoint", b->path);
	mb_pathf(tmp, sizeof tmp, "%s/.tmp-%ld", root, (long)getpid());
	if (mkdir(root, b->dir_mode) && errno != EEXIST) {
		rc = mb_fail(b, mb_errno_code(errno), "snapshot: %s: %s", root, strerror(errno));
		goto out;
	}
	chmod(root, b->dir_mode);  /* group-shared: the umask must not narrow it */
	/* a planted symlink would take the checkpoint (and the journal
	 * segments deleted after it) somewhere else */
	if (lstat(root, &st) || !S_ISDIR(st.st_mode)) {
		rc = mb_fail(b, MB_EUNSAFE, "snapshot: %s: not a directory (a symlink?)", root);
		goto out;
	}
	prune_checkpoints(root, NULL);
	clean_leftovers(b->path, true);
	if (mkdir(tmp, b->dir_mode)) {
		rc = mb_fail(b, mb_errno_code(errno), "snapshot: %s: %s", tmp, strerror(errno));
		goto out;
	}
	chmod(tmp, b->dir_mode);
	if (copy_from) {
		kv_txn *t;
		/* the store holds exactly what was loaded from @copy_from */
		mb_buf state = { 0 };

		if (!(rc = copy_files(b, copy_from, tmp, want, info)) &&
		    !(rc = bank_read_begin(b, &t))) {
			rc = doc_checkpoint_state(t, &state);
			kv_abort(t);
			if (!rc)
				rc = write_checkpoint_file(b, &state, tmp, &end, t0);
		}
		buf_free(&state);
	} else if (!(rc = purge_expired(b, info)))
		rc = write_all(b, tmp, &end, info, t0);
	/* read back by the loader before anything relies on it: a checkpoint
	 * that could not be loaded would strand the bank at its next rebuild.
	 * A copy's notion_pages.json has the bytes that just loaded (its
	 * digest says so): only the small files are read again. */
	if (!rc && load_check(tmp, b->history_limit, copy_from != NULL, b))
		rc = mb_fail(b, MB_ECORRUPT, "snapshot: the checkpoint would not load back, so it "
		             "was not kept: %s", mb_last_error(b));
	if (!rc)
		rc = journal_durable(b, end.seq);
	if (!rc)
		rc = checkpoint_commit(b, root, tmp, &end, info);
	mb_rm_tree(tmp);
	if (!rc && !copy_from && b->cl) {
		/* kept in the cluster too, for new machines (never fails it) */
		char final[4096];
		mb_pathf(final, sizeof final, "%s/%020llu", root, (unsigned long long)end.seq);
		cluster_checkpoint_done(b, final, end.seq);
	}
out:
	return rc;
}

static int checkpoint(mb_bank *b, mb_snapshot_info *info, const char *copy_from,
                      const load_digest *want)
{
	lockfile lock;
	int rc = lockfile_acquire(&lock, LOCK_COMPACTOR, b->path, "compactor.lock", b->file_mode, b);

	if (!rc) {
		rc = checkpoint_in(b, info, copy_from, want);
		lockfile_release(&lock);
	}
	return rc;
}

int checkpoint_locked(mb_bank *b, mb_snapshot_info *info)
{
	double t0 = now_s();
	int rc;

	memset(info, 0, sizeof *info);
	rc = checkpoint_in(b, info, NULL, NULL);
	info->seconds = now_s() - t0;
	return rc;
}

int checkpoint_from_files(mb_bank *b, const char *dir, const load_digest want[4])
{
	mb_snapshot_info info;

	memset(&info, 0, sizeof info);
	return checkpoint(b, &info, dir, want);
}

static bool same_dir(const char *a, const char *b)
{
	struct stat sa, sb;

	return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int mb_snapshot(mb_bank *b, const char *dir, mb_snapshot_info *info)
{
	mb_snapshot_info local;
	struct stat st;
	mbj_pos end;
	double t0 = now_s();
	int rc;

	if (!info)
		info = &local;
	memset(info, 0, sizeof *info);
	if ((rc = bank_check(b)))
		return rc;
	if (!dir || same_dir(dir, b->path))
		rc = checkpoint(b, info, NULL, NULL);
	else if (lstat(dir, &st))
		rc = mb_fail(b, errno == ENOENT ? MB_EINVAL : mb_errno_code(errno),
		             "snapshot: %s: %s", dir, strerror(errno));
	else if (S_ISLNK(st.st_mode))
		rc = mb_fail(b, MB_EUNSAFE, "snapshot: %s: is a symlink", dir);
	else if (!S_ISDIR(st.st_mode))
		rc = mb_fail(b, MB_EINVAL, "snapshot: %s: not a directory", dir);
	else {
		clean_leftovers(dir, false);
		rc = write_all(b, dir, &end, info, mono_us());
	}
	info->seconds = now_s() - t0;
	return rc;
}
