/*
 * maint.c - stats, rebuild, and the journal as the API shows it.
 */
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
#include "docs.h"

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
	kv_txn *t;
	int rc;

	if (!out)
		return mb_fail(b, MB_EINVAL, "stats: output pointer is NULL");
	*out = NULL;
	if ((rc = bank_read_begin(b, &t)))
		return rc;
	if (!(rc = bank_jend_load(t, &end)))
		rc = st_errors_load(t, &errs);
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
	buf_adds(&doc, ",\"journal\":{");
	add_kv(&doc, "segments", ju.segments, false);
	add_kv(&doc, "bytes", ju.bytes, true);
	add_kv(&doc, "first_seq", ju.first_seq, true);
	add_kv(&doc, "last_seq", end.seq, true);
	add_kv(&doc, "durable_seq", mbj_durable_seq(b->jn), true);
	buf_adds(&doc, "},\"store\":{");
	add_kv(&doc, "file_bytes", file_size(b->store_dir, "data.mdb"), false);
	add_kv(&doc, "map_size", ki.map_size, true);
	add_kv(&doc, "map_used", ki.map_used, true);
	add_kv(&doc, "last_txn", ki.last_txn, true);
	add_kv(&doc, "readers", ki.readers, true);
	add_kv(&doc, "max_readers", ki.max_readers, true);
	add_kv(&doc, "reader_lag_txns", ki.oldest_reader ? ki.last_txn - ki.oldest_reader : 0, true);
	/* the checkpoint the bank directory's files are (seq 0: none) */
	if (checkpoint_position(b, b->path, &ck))
		memset(&ck, 0, sizeof ck);
	mb_clear_error(b);
	buf_adds(&doc, "},\"checkpoint\":{");
	add_kv(&doc, "seq", ck.seq, false);
	buf_adds(&doc, ",\"auto\":");
	bank_auto_stats(b, &doc);
	buf_adds(&doc, "}}");
	if (!(*out = buf_take(&doc, NULL)))
		return mb_fail(b, MB_ENOMEM, "stats: out of memory");
	return 0;
}

/* Apply every journal record from @from_seq on; *end is the last one's. */
static int replay(mb_bank *b, kv_txn *t, uint64_t from_seq, mbj_pos *end)
{
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
		               (unsigned long long)from_seq, mb_strerror(bank_journal_code(rc)));
	/* jrc holds the journal's MBJ_* codes, rc our MB_* codes: the two
	 * ranges overlap (MBJ_EVERSION == MB_ENOMEM) */
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
	}
	if (!rc && jrc < 0)
		rc = mb_fail(b->tag, bank_journal_code(jrc), "journal: %s", mbj_iter_errmsg(it));
	mbj_iter_close(it);
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
	kv_txn *t;
	int rc = kv_begin(b->kv, true, &t);

	if (rc)
		return mb_fail(b->tag, rc, "rebuild: cannot begin a write: %s", mb_strerror(rc));
	for (;;) {
		for (int db = 0; db < KV_NDB && !rc; db++)
			rc = kv_drop(t, db);
		/* a checkpoint of a newer format is not damage to pass over */
		if (rc || !(rc = checkpoint_load(b, t, name, &seq, &end)) ||
		    rc == KV_EMAPFULL || rc == MB_ENOMEM || rc == MB_EVERSION)
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
		               (unsigned long long)from_seq, mb_strerror(bank_journal_code(rc)));
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

static int journal_check(const char *bank_path, char **out, bool repair)
{
	const char *path = bank_path && *bank_path ? bank_path : getenv("MEMBANK_DIR");
	char dir[4096];
	mbj_report r;
	mb_buf doc = { 0 };
	int rc;

	if (out)
		*out = NULL;
	if (!path || !*path)
		path = "./memory-bank";
	mb_pathf(dir, sizeof dir, "%s/journal", path);
	memset(&r, 0, sizeof r);
	rc = repair ? mbj_repair(dir, &r) : mbj_verify(dir, &r);
	rc = bank_journal_code(rc);
	if (repair && !rc && (r.damaged || r.torn_tail))
		checkpoint_mark_stale(path);
	report_json(&r, rc, repair && !rc, &doc);
	if (out && !(*out = buf_take(&doc, NULL)))
		return mb_fail(NULL, MB_ENOMEM, "out of memory");
	buf_free(&doc);
	if (rc)
		return mb_fail(NULL, rc, "%s: %s%s%s", dir, r.damaged ? "damaged at " : mb_strerror(rc),
		               r.damaged ? r.damage_segment : "", r.damaged ? "" : "");
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
