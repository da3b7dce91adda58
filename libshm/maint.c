/*
 * maint.c - stats, rebuild, and the journal as the API shows it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply.h"
#include "bank.h"
#include "checkpoint.h"
#include "cluster.h"
#include "docs.h"
#include "file.h"
#include "lockfile.h"
#include "progress.h"

static void add_kv(mb_buf *b, const char *key, uint64_t v, bool comma)
{
	if (comma)
		buf_addc(b, ',');
	buf_addc(b, '"');
	buf_adds(b, key);
	buf_adds(b, "\":");
	json_add_int(b, (int64_t)v);
}

static uint64_t file_size(const char *dir, const char *name)
{
	char path[4096];
	struct stat st;

	mb_pathf(path, sizeof path, "%s/%s", dir, name);
	return stat(path, &st) ? 0 : (uint64_t)st.st_size;
}

int mb_stats(mb_bank *b, char **out)
{
	mb_buf doc = { 0 };
	mbj_usage ju = { 0 };
	kv_info ki;
	mbj_pos end = { 0 }, ck;
	st_errors errs;
	st_removed rm;
	uint64_t stored = 0, live = 0;
	kv_txn *t;
	int rc;

	if (!out)
		return mb_fail(b, MB_EINVAL, "stats: output pointer is NULL");
	*out = NULL;
	if ((rc = bank_read_begin(b, &t)))
		return rc;
	if (!(rc = bank_jend_load(t, &end)) && !(rc = st_errors_load(t, &errs)) &&
	    !(rc = st_removed_load(t, &rm)) && !(rc = kv_count(t, KV_PAGES, &stored)))
		rc = apply_count_live(t, mb_now_us(), &live);
	kv_abort(t);
	if (rc || (rc = kv_info_get(b->kv, &ki)))
		return mb_fail(b, rc, "stats: %s", mb_strerror(rc));
	mbj_usage_of(b->journal_dir, &ju);
	buf_adds(&doc, "{\"path\":");
	json_add_str(&doc, b->path, strlen(b->path));
	buf_adds(&doc, ",\"durability\":");
	buf_adds(&doc, b->opts.durability == MB_DURABILITY_FULL ? "\"full\"" : "\"fast\"");
	add_kv(&doc, "pages", ki.entries[KV_PAGES], true);
	add_kv(&doc, "sync_history", ki.entries[KV_SYNCHIST], true);
	add_kv(&doc, "errors_kept", ki.entries[KV_ERRHIST], true);
	add_kv(&doc, "error_types", ki.entries[KV_ERRTYPES], true);
	add_kv(&doc, "error_types_dropped", errs.types_dropped, true);
	add_kv(&doc, "history_limit", b->history_limit, true);
	add_kv(&doc, "max_json_bytes", b->max_json_bytes, true);
	/* pages dropped by max_entries, expired but still stored (read as
	 * absent; the next snapshot purges them), purged by snapshots */
	add_kv(&doc, "pages_evicted", rm.evicted, true);
	add_kv(&doc, "pages_expired", stored - live, true);
	add_kv(&doc, "pages_purged", rm.purged, true);
	buf_adds(&doc, ",\"journal\":{");
	add_kv(&doc, "segments", ju.segments, false);
	add_kv(&doc, "bytes", ju.bytes, true);
	add_kv(&doc, "first_seq", ju.first_seq, true);
	add_kv(&doc, "last_seq", end.seq, true);
	add_kv(&doc, "durable_seq", mbj_durable_seq(b->jn), true);
	add_kv(&doc, "fdatasyncs", mbj_sync_count(b->jn), true);
	buf_adds(&doc, "},\"store\":{");
	add_kv(&doc, "file_bytes", file_size(b->store_dir, "data.mdb"), false);
	add_kv(&doc, "map_size", ki.map_size, true);
	add_kv(&doc, "map_used", ki.map_used, true);
	buf_adds(&doc, ki.writemap ? ",\"writemap\":true" : ",\"writemap\":false");
	add_kv(&doc, "last_txn", ki.last_txn, true);
	add_kv(&doc, "readers", ki.readers, true);
	add_kv(&doc, "max_readers", ki.max_readers, true);
	add_kv(&doc, "stale_readers", ki.stale_readers, true);
	add_kv(&doc, "reader_lag_txns", ki.oldest_reader ? ki.last_txn - ki.oldest_reader : 0, true);
	/* the checkpoint the bank directory's files are (seq 0: none) */
	if (checkpoint_position(b, b->path, &ck))
		memset(&ck, 0, sizeof ck);
	mb_clear_error(b);
	buf_adds(&doc, "},\"checkpoint\":{");
	add_kv(&doc, "seq", ck.seq, false);
	buf_adds(&doc, ",\"auto\":");
	bank_auto_stats(b, &doc);
	buf_adds(&doc, "},\"cluster\":");
	cluster_stats(b, end.seq, &doc);
	buf_addc(&doc, '}');
	if (!(*out = buf_take(&doc, NULL)))
		return mb_fail(b, MB_ENOMEM, "stats: out of memory");
	return 0;
}

/* Apply every journal record from @from_seq on; *end is the last one's. */
static int replay(mb_bank *b, kv_txn *t, uint64_t from_seq, mbj_pos *end)
{
	progress pr;
	mbj_record rec;
	mbj_iter *it;
	mb_rec r;
	int jrc, rc = mbj_iter_open(b->journal_dir, from_seq, &it);

	if (rc == MBJ_EINVAL)
		return mb_fail(b->tag, MB_ECORRUPT,
		               "journal: cannot read from seq %llu: the records before the "
		               "oldest segment are gone and no checkpoint covers them",
		               (unsigned long long)from_seq);
	if (rc)
		return mb_fail(b->tag, bank_journal_code(rc), "journal: cannot read from seq %llu: %s",
		               (unsigned long long)from_seq, *mbj_iter_open_errmsg() ?
		               mbj_iter_open_errmsg() : mb_strerror(bank_journal_code(rc)));
	/* jrc holds the journal's MBJ_* codes, rc our MB_* codes: the two
	 * ranges overlap (MBJ_EVERSION == MB_ENOMEM) */
	if ((rc = progress_start(&pr, &b->opts, b->tag, "rebuild journal", "records", 0))) {
		mbj_iter_close(it);
		return rc;
	}
	while ((jrc = mbj_iter_next(it, &rec)) == 1) {
		if (rec.seq != end->seq + 1 && end->seq) {
			rc = mb_fail(b->tag, MB_ECORRUPT, "journal: seq %llu follows %llu",
			             (unsigned long long)rec.seq, (unsigned long long)end->seq);
			break;
		}
		if (rec_decode(rec.type, rec.ts_us, rec.payload, rec.len, &r)) {
			rc = mb_fail(b->tag, MB_ECORRUPT, "journal record %llu: bad payload",
			             (unsigned long long)rec.seq);
			break;
		}
		if ((rc = apply_record(t, b->history_limit, &r)))
			break;
		*end = rec.end;
		if ((rc = progress_step(&pr, 0)))
			break;
	}
	if (!rc && jrc < 0)
		rc = mb_fail(b->tag, bank_journal_code(jrc), "journal: %s", mbj_iter_errmsg(it));
	mbj_iter_close(it);
	if (!rc)
		progress_end(&pr);
	return rc;
}

/* The checkpoint's segment is gone and no record follows it (a repair moved
 * the damaged segment aside, records the checkpoint covers): the journal
 * goes on from {0,0,seq}, the next append creating segment seq + 1, rather
 * than at an offset in a file that is not there. */
static void segment_gone(mb_bank *b, mbj_pos *end)
{
	char path[4096];

	if (end->segment && !mb_pathf(path, sizeof path, "%s/%020llu.jnl", b->journal_dir,
	                              (unsigned long long)end->segment) &&
	    access(path, F_OK) && errno == ENOENT)
		end->segment = end->offset = 0;
}

/* A store built without a checkpoint starts from the bank's own cache
 * settings (bank.h): the journal from its first record then replays the
 * same on every rebuild.  The record's last_update stays "never": nothing
 * was configured. */
static int seed_config(mb_bank *b, kv_txn *t)
{
	mb_config c;

	st_config_defaults(&c);
	c.max_entries = b->init_max_entries;
	c.ttl_seconds = b->init_ttl_seconds;
	return st_config_store(t, &c);
}

/* The newest checkpoint that loads, and the journal after it.  A checkpoint
 * that cannot be loaded (damaged on disk) is passed over for the one before
 * it and a longer journal, which snapshots keep for this; only when none can
 * be used does the rebuild fail, with the newest one's error. */
static int rebuild_once(mb_bank *b)
{
	char name[32] = "", bad[4][32], first[1024] = "";
	int nbad = 0, first_rc = 0;
	mbj_pos end = { 0 };
	uint64_t seq = 0;
	progress pr;
	kv_txn *t;
	int rc = kv_begin(b->kv, true, &t);

	if (rc)
		return mb_fail(b->tag, rc, "rebuild: cannot begin a write: %s", mb_strerror(rc));
	if ((rc = progress_start(&pr, &b->opts, b->tag, "rebuild", "pages", 0)))
		return kv_end(t, rc);
	for (;;) {
		progress_rewind(&pr);  /* (a damaged checkpoint passed over) */
		for (int db = 0; db < KV_NDB && !rc; db++)
			rc = kv_drop(t, db);
		if (!rc)
			rc = st_format_store(t);
		/* only damage is passed over: a checkpoint of a newer format, or
		 * one the system could not let us read (out of descriptors, an
		 * I/O error), is not damaged, and the next one would fail alike */
		if (rc || !(rc = checkpoint_load(b, t, name, &seq, &end, &pr)) ||
		    (rc != MB_ECORRUPT && rc != MB_ENOTFOUND))
			break;
		if (rc == MB_ENOTFOUND) {  /* none older than the damaged one */
			rc = mb_fail(b->tag, MB_ECORRUPT, "%s (and no older checkpoint to fall back "
			             "on)", first);
			first_rc = 0;
			break;
		}
		if (!first_rc) {
			first_rc = rc;
			snprintf(first, sizeof first, "%s", mb_last_error(b->tag));
		}
		if (nbad < 4)
			memcpy(bad[nbad++], name, 32);
		rc = 0;
	}
	if (!rc && !*name)
		rc = seed_config(b, t);
	if (!rc)
		progress_end(&pr);
	if (!rc)
		rc = replay(b, t, seq + 1, &end);
	if (!rc)
		segment_gone(b, &end);
	if (!rc)
		rc = bank_jend_store(t, &end);
	if (first_rc && rc && rc != KV_EMAPFULL && rc != MB_ENOMEM)
		rc = mb_fail(b->tag, MB_ECORRUPT, "%s (falling back on checkpoint %s: %s)", first,
		             name, mb_last_error(b->tag));
	if (!(rc = kv_end(t, rc)))
		for (int i = 0; i < nbad; i++)
			checkpoint_set_aside(b->path, bad[i]);
	return rc;
}

int bank_rebuild_store(mb_bank *b)
{
	int rc;

	for (int tries = 0; (rc = rebuild_once(b)) == KV_EMAPFULL; tries++)
		if (tries > 40 || (rc = kv_grow(b->kv)))
			return mb_fail(b->tag, MB_ENOSPC, "rebuild: the map cannot grow further");
	if (rc && !*mb_last_error(b->tag))
		mb_fail(b->tag, rc, "rebuild: %s", mb_strerror(rc));
	return rc;
}

int mb_rebuild(mb_bank *b)
{
	int rc = bank_check(b);

	if (!rc)
		rc = bank_boot_record(b);
	return rc ? rc : bank_rebuild_store(b);
}

/* ------------------------------------------------------------- journal */

int mb_journal_last_seq(mb_bank *b, uint64_t *seq)
{
	mbj_pos end;
	kv_txn *t;
	int rc;

	if (!seq)
		return mb_fail(b, MB_EINVAL, "journal: output pointer is NULL");
	if ((rc = bank_read_begin(b, &t)))
		return rc;
	rc = bank_jend_load(t, &end);
	kv_abort(t);
	*seq = rc ? 0 : end.seq;
	return rc ? mb_fail(b, rc, "journal: %s", mb_strerror(rc)) : 0;
}

int mb_journal_read(mb_bank *b, uint64_t from_seq, mb_event_fn fn, void *ctx)
{
	uint64_t last;
	mbj_record rec;
	mb_buf ev = { 0 };
	mbj_iter *it;
	mb_rec r;
	int rc, jrc;

	if (!fn)
		return mb_fail(b, MB_EINVAL, "journal: callback is NULL");
	if ((rc = mb_journal_last_seq(b, &last)))
		return rc;
	if (from_seq > last)
		return 0;
	if ((rc = mbj_iter_open(b->journal_dir, from_seq, &it)) == MBJ_EINVAL)
		return mb_fail(b, MB_ENOTFOUND, "journal: records from seq %llu are no longer kept",
		               (unsigned long long)from_seq);
	if (rc)
		return mb_fail(b, bank_journal_code(rc), "journal: cannot read from seq %llu: %s",
		               (unsigned long long)from_seq, *mbj_iter_open_errmsg() ?
		               mbj_iter_open_errmsg() : mb_strerror(bank_journal_code(rc)));
	/* jrc holds the journal's MBJ_* codes; rc ours or the callback's */
	while ((jrc = mbj_iter_next(it, &rec)) == 1 && rec.seq <= last) {
		ev.len = 0;
		if (rec_decode(rec.type, rec.ts_us, rec.payload, rec.len, &r)) {
			rc = mb_fail(b, MB_ECORRUPT, "journal record %llu: bad payload",
			             (unsigned long long)rec.seq);
			break;
		}
		if ((rc = rec_event_json(rec.seq, &r, &ev))) {
			rc = mb_fail(b, rc, "journal record %llu: %s", (unsigned long long)rec.seq,
			             mb_strerror(rc));
			break;
		}
		if ((rc = fn(ctx, rec.seq, ev.data)))
			break;
	}
	if (!rc && jrc < 0)
		rc = mb_fail(b, bank_journal_code(jrc), "journal: %s", mbj_iter_errmsg(it));
	mbj_iter_close(it);
	buf_free(&ev);
	return rc;
}

/* Clean only when the check succeeded: a newer segment (MB_EVERSION) or an
 * I/O error leaves r->damaged unset but is not clean. */
static void report_json(const mbj_report *r, int rc, bool repaired, mb_buf *b)
{
	bool clean = rc == 0 && (!r->damaged || repaired);

	buf_adds(b, clean ? "{\"clean\":true" : "{\"clean\":false");
	add_kv(b, "segments", r->segments, true);
	add_kv(b, "records", r->records, true);
	add_kv(b, "first_seq", r->first_seq, true);
	add_kv(b, "last_seq", r->last_seq, true);
	buf_adds(b, r->torn_tail ? ",\"torn_tail\":true" : ",\"torn_tail\":false");
	buf_adds(b, ",\"damage\":");
	if (!r->damaged)
		buf_adds(b, "null");
	else {
		buf_adds(b, "{\"segment\":");
		json_add_str(b, r->damage_segment, strnlen(r->damage_segment, sizeof r->damage_segment));
		add_kv(b, "offset", r->damage_offset, true);
		add_kv(b, "seq", r->damage_seq, true);
		buf_adds(b, ",\"reason\":");
		json_add_str(b, r->reason, strnlen(r->reason, sizeof r->reason));
		buf_addc(b, '}');
	}
	if (repaired) {
		buf_adds(b, ",\"action\":");
		json_add_str(b, r->action, strnlen(r->action, sizeof r->action));
	}
	buf_addc(b, '}');
}

/* The store's committed end.  *known only when the store is this boot's
 * (after another boot it may hold writes that never reached the disk, and
 * the next open rebuilds it anyway) and names a segment (an end {0,0,N}
 * lies in a checkpoint, not in the journal). */
static int store_end_of(const char *path, mbj_pos *end, bool *known)
{
	char store[4096], mdb[4096], err[256];
	struct stat st;
	kv_env *kv;
	kv_txn *t;
	int rc;

	*known = false;
	mb_pathf(store, sizeof store, "%s/store", path);
	mb_pathf(mdb, sizeof mdb, "%s/data.mdb", store);
	if (lstat(mdb, &st) || !bank_store_this_boot(store))
		return 0;
	if ((rc = kv_open(store, 0600, (size_t)64 << 20, &kv, err, sizeof err)))
		return mb_fail(NULL, rc, "%s", err);
	if (!(rc = kv_begin(kv, false, &t))) {
		int64_t format;
		/* a store of format 1 not yet rebuilt by an open */
		if (!(rc = st_format_load(t, &format)))
			rc = format == 1 ? st_jend_load_v1(t, end) :
			     format == MB_STORE_FORMAT ? bank_jend_load(t, end) : MB_EVERSION;
		kv_abort(t);
	}
	kv_close(kv);
	if (rc)
		return mb_fail(NULL, rc, "%s: cannot read the committed end: %s", store,
		               mb_strerror(rc));
	*known = end->segment != 0;
	return 0;
}

/* The newest seq the journal holds (or keeps, after a repair) in order. */
static uint64_t kept_seq(const mbj_report *r)
{
	return r->damaged ? r->damage_seq - 1 : r->last_seq;
}

/* Records the store holds past the journal's end are missing: damage. */
static void report_missing(mbj_report *r, const mbj_pos *store)
{
	uint64_t kept = kept_seq(r);

	char add[128];

	if (r->damaged) {   /* keep what the journal found, say what it costs */
		size_t n = strnlen(r->reason, sizeof r->reason - 1);
		snprintf(add, sizeof add, "; records %llu to %llu, which the store holds, are "
		         "not in the journal", (unsigned long long)kept + 1,
		         (unsigned long long)store->seq);
		snprintf(r->reason + n, sizeof r->reason - n, "%s", add);
		return;
	}
	r->damaged = true;
	snprintf(r->damage_segment, sizeof r->damage_segment, "%020llu.jnl",
	         (unsigned long long)store->segment);
	r->damage_offset = store->offset;
	r->damage_seq = kept + 1;
	snprintf(r->reason, sizeof r->reason,
	         "records %llu to %llu are missing: the store holds them but the journal "
	         "ends at seq %llu", (unsigned long long)kept + 1,
	         (unsigned long long)store->seq, (unsigned long long)kept);
}

/* The bank directory's view of the files: hard links to checkpoint @ck,
 * each swapped in by rename() (as a snapshot does). */
static int link_view(const char *path, const char *ck)
{
	static const char *const names[5] = {
		"notion_pages.json", "sync_status.json", "error_log.json", "config_cache.json",
		MB_CHECKPOINT_FILE,
	};
	char src[4096], tmp[4096], dst[4096];

	for (int i = 0; i < 5; i++) {
		mb_pathf(src, sizeof src, "%s/%s", ck, names[i]);
		mb_pathf(tmp, sizeof tmp, "%s/.%s.link.%ld", path, names[i], (long)getpid());
		mb_pathf(dst, sizeof dst, "%s/%s", path, names[i]);
		unlink(tmp);
		if (link(src, tmp) || rename(tmp, dst)) {
			int err = errno;
			unlink(tmp);
			return mb_fail(NULL, mb_errno_code(err), "%s: %s", dst, strerror(err));
		}
	}
	return fsync_dir(path) ? mb_fail(NULL, MB_EIO, "fsync %s: %s", path, strerror(errno)) : 0;
}

/* A checkpoint of everything the store holds (up to @end), placed as the
 * newest under checkpoint/ with the position {0,0,seq}: its records live
 * in it, not in the journal, which restarts after it. */
static int checkpoint_store(const char *path, const mbj_pos *end)
{
	char store[4096], jdir[4096], root[4096], tmp[4096], fin[4096], old[4096], text[160];
	mb_snapshot_info info;
	struct stat st;
	mb_bank b;
	int rc;

	memset(&b, 0, sizeof b);
	mb_pathf(store, sizeof store, "%s/store", path);
	mb_pathf(jdir, sizeof jdir, "%s/journal", path);
	b.path = (char *)path;
	b.store_dir = store;
	b.journal_dir = jdir;
	b.pid = getpid();
	b.fork_gen = mb_fork_generation();
	b.file_mode = stat(store, &st) == 0 && (st.st_mode & 0070) ? 0660 : 0600;
	b.dir_mode = b.file_mode == 0660 ? 0770 : 0700;
	b.tag = &b;
	mb_pathf(root, sizeof root, "%s/checkpoint", path);
	mb_pathf(tmp, sizeof tmp, "%s/.tmp-repair-%ld", root, (long)getpid());
	mb_pathf(old, sizeof old, "%s/.old-repair-%ld", root, (long)getpid());
	mb_pathf(fin, sizeof fin, "%s/%020llu", root, (unsigned long long)end->seq);
	if (mkdir(root, b.dir_mode) && errno != EEXIST)
		return mb_fail(NULL, mb_errno_code(errno), "%s: %s", root, strerror(errno));
	if (lstat(root, &st) || !S_ISDIR(st.st_mode))
		return mb_fail(NULL, MB_EUNSAFE, "%s: not a directory (a symlink?)", root);
	mb_rm_tree(tmp);
	if (mkdir(tmp, b.dir_mode))
		return mb_fail(NULL, mb_errno_code(errno), "%s: %s", tmp, strerror(errno));
	if ((rc = kv_open(store, b.file_mode, (size_t)64 << 20, &b.kv, text, sizeof text))) {
		mb_fail(NULL, rc, "%s: %s", store, text);
		goto out;
	}
	rc = mb_snapshot(&b, tmp, &info);
	kv_close(b.kv);
	if (rc) {
		mb_fail(NULL, rc, "checkpoint of the store: %s", mb_last_error(&b));
		goto out;
	}
	if (info.seq != end->seq) {
		rc = mb_fail(NULL, MB_EIO, "the store changed while it was copied (seq %llu, then "
		             "%llu): is a process attached?", (unsigned long long)end->seq,
		             (unsigned long long)info.seq);
		goto out;
	}
	snprintf(text, sizeof text, "{\"format\":%d,\"seq\":%llu,\"segment\":0,\"offset\":0}\n",
	         MB_CHECKPOINT_FORMAT, (unsigned long long)end->seq);
	if ((rc = mb_write_file_atomic(tmp, MB_CHECKPOINT_FILE, text, strlen(text), b.file_mode,
	                               NULL)))
		goto out;
	mb_rm_tree(old);
	if ((!access(fin, F_OK) && rename(fin, old)) || rename(tmp, fin) || fsync_dir(root))
		rc = mb_fail(NULL, mb_errno_code(errno), "%s: %s", fin, strerror(errno));
	mb_rm_tree(old);
	if (!rc)
		rc = link_view(path, fin);
out:
	mb_rm_tree(tmp);
	return rc;
}

/* Repair a journal that lacks records the store holds: never cut them
 * away.  They all go into a checkpoint first; then the journal (every
 * record of which the checkpoint also holds) is moved aside whole. */
static int keep_store(const char *path, const char *dir, const mbj_pos *store, mbj_report *r)
{
	uint64_t moved = 0;
	int rc = checkpoint_store(path, store);

	if (rc)
		return rc;
	if ((rc = bank_journal_code(mbj_set_aside(dir, &moved))))
		return mb_fail(NULL, rc, "%s: cannot move the segments aside: %s", dir,
		               mb_strerror(rc));
	snprintf(r->action, sizeof r->action,
	         "wrote checkpoint/%020llu from the store (seq 1 to %llu), moved %llu segment(s) "
	         "aside as .damaged", (unsigned long long)store->seq,
	         (unsigned long long)store->seq, (unsigned long long)moved);
	return 0;
}

/* A repair whose cut would leave the journal ending before the newest
 * checkpoint (damage before the seq it covers): the checkpoint holds every
 * record up to it, so the journal is moved aside whole and the checkpoint
 * says its records live in it ({0,0,seq}), or no open could start after
 * it.  Records after it are then only in the .damaged segments. */
static int rebase_on_checkpoint(const char *path, const char *dir, const char *ck,
                                const mbj_pos *pos, mbj_report *r)
{
	char text[160];
	struct stat st;
	uint64_t moved = 0;
	unsigned mode = stat(ck, &st) == 0 && (st.st_mode & 0070) ? 0660 : 0600;
	int rc;

	snprintf(text, sizeof text, "{\"format\":%d,\"seq\":%llu,\"segment\":0,\"offset\":0}\n",
	         MB_CHECKPOINT_FORMAT, (unsigned long long)pos->seq);
	if ((rc = mb_write_file_atomic(ck, MB_CHECKPOINT_FILE, text, strlen(text), mode, NULL)) ||
	    (rc = link_view(path, ck)))
		return rc;
	if ((rc = bank_journal_code(mbj_set_aside(dir, &moved))))
		return mb_fail(NULL, rc, "%s: cannot move the segments aside: %s", dir,
		               mb_strerror(rc));
	snprintf(r->action, sizeof r->action,
	         "checkpoint %020llu holds seq 1 to %llu, past the damage: moved %llu "
	         "segment(s) aside as .damaged", (unsigned long long)pos->seq,
	         (unsigned long long)pos->seq, (unsigned long long)moved);
	return 0;
}

static int journal_check(const char *bank_path, char **out, bool repair)
{
	const char *path = bank_path && *bank_path ? bank_path : getenv("MEMBANK_DIR");
	char dir[4096], ident[4096];
	struct stat st;
	mbj_report r;
	mbj_pos store = { 0 };
	mb_buf doc = { 0 };
	lockfile lock = { .fd = -1 };
	bool known = false, kept_store = false;   /* kept_store: a message is set */
	int rc;

	if (out)
		*out = NULL;
	if (!path || !*path)
		path = "./memory-bank";
	mb_pathf(dir, sizeof dir, "%s/journal", path);
	mb_pathf(ident, sizeof ident, "%s/%s", path, MB_IDENTITY_FILE);
	memset(&r, 0, sizeof r);
	/* No journal directory: not a bank (or not one yet), which is not an
	 * I/O error. */
	if (lstat(dir, &st) && errno == ENOENT) {
		rc = MB_ENOTBANK;
		goto report;
	}
	/* the local journal of a bank on a stream is a copy of the stream's
	 * (local seq == stream seq): a repair would cut it or move it aside
	 * under a checkpoint the stream knows nothing of */
	if (repair) {
		char url[1024];
		if (bank_stored_journal(path, url, sizeof url))
			return mb_fail(NULL, MB_EINVAL, "journal repair: %s: the bank is bound to "
			               "journal %s, whose stream is its journal: not repairing the "
			               "local copy; move the directory aside and open it with the "
			               "journal again (it starts from the cluster's checkpoint and "
			               "the stream)", path, url);
	}
	/* a repair excludes opens while it changes the bank */
	if (repair && !access(ident, F_OK)) {
		unsigned mode = !stat(path, &st) && (st.st_mode & 0070) ? 0660 : 0600;
		if ((rc = lockfile_acquire(&lock, LOCK_OPEN, path, MB_LOCK_FILE, mode, NULL)))
			return rc;
		/* running writers append to the segments a repair moves */
		if ((rc = bank_check_unused(path, "journal repair"))) {
			lockfile_release(&lock);
			return rc;
		}
	}
	rc = mbj_verify(dir, &r);
	if ((rc == 0 || rc == MBJ_ECORRUPT) && !access(ident, F_OK)) {
		/* verify does without the store if it cannot be read (a
		 * read-only mount); a repair that cannot tell what the store
		 * holds could drop it, so it refuses */
		int src = store_end_of(path, &store, &known);
		if (src && repair) {
			lockfile_release(&lock);
			return mb_fail(NULL, src, "%s: cannot read the store's committed end (%s): "
			               "not repairing, which could drop records only the store "
			               "holds", path, mb_last_error(NULL));
		}
	}
	if (known && store.seq > kept_seq(&r)) {
		if (repair) {
			memset(&r, 0, sizeof r);
			mbj_verify(dir, &r);
			report_missing(&r, &store);
			rc = keep_store(path, dir, &store, &r);
			kept_store = true;
		} else {
			report_missing(&r, &store);
			rc = MB_ECORRUPT;
		}
	} else if (repair && (rc == 0 || rc == MBJ_ECORRUPT)) {
		char ck[4096];
		mbj_pos pos;
		bool found = false;
		if (!checkpoint_newest(path, ck, sizeof ck, &pos, &found) && found &&
		    pos.seq > kept_seq(&r) && (r.damaged || r.torn_tail)) {
			rc = rebase_on_checkpoint(path, dir, ck, &pos, &r);
			kept_store = true;   /* its own messages */
		}
		else
			rc = bank_journal_code(mbj_repair(dir, &r));
	} else {
		rc = bank_journal_code(rc);
	}
report:
	if (repair && !rc && (r.damaged || r.torn_tail))
		checkpoint_mark_stale(path);
	lockfile_release(&lock);
	report_json(&r, rc, repair && !rc, &doc);
	if (out && !(*out = buf_take(&doc, NULL)))
		return mb_fail(NULL, MB_ENOMEM, "out of memory");
	buf_free(&doc);
	if (rc == MB_ENOTBANK)
		return mb_fail(NULL, rc, "%s: no journal here (not a bank)", dir);
	if (rc && kept_store)
		return rc;   /* the message says what failed */
	if (rc)
		return r.damaged ? mb_fail(NULL, rc, "%s: damaged at %s: %s", dir, r.damage_segment,
		                           r.reason)
		                 : mb_fail(NULL, rc, "%s: %s", dir, mb_strerror(rc));
	return 0;
}

int mb_journal_verify(const char *bank_path, char **out)
{
	return journal_check(bank_path, out, false);
}

int mb_journal_repair(const char *bank_path, char **out)
{
	return journal_check(bank_path, out, true);
}
