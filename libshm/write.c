/*
 * write.c - the write path, and every mutation of the API.
 *
 * One write, under LMDB's writer lock (shared by every process):
 *   1. load the committed journal end from the store;
 *   2. roll forward whole records past it (a writer died between its append
 *      and its commit) and cut a torn tail: nobody has to remember a
 *      recovery step, the next writer does it;
 *   3. append the record (seq = end + 1, time taken now, under the lock);
 *   4. apply it and store the new end in the same transaction; commit
 *      without a sync (LMDB is a cache).
 * Then, outside the lock, in full durability: wait until the journal is
 * durable up to the record (group commit: one fdatasync serves everyone
 * whose record it covers).
 *
 * A full map aborts the transaction; after growing it the write runs again.
 * If the record was already appended, step 2 applies it, so it is applied
 * exactly once and never appended twice.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "bank.h"
#include "config.h"

int bank_check(mb_bank *b)
{
	if (!b)
		return mb_fail(NULL, MB_EINVAL, "the bank handle is NULL");
	if (b->fork_gen != mb_fork_generation())
		return mb_fail(b, MB_EFORKED, "this handle was opened by process %ld and is used "
		               "in process %ld after fork(); open the bank again in the child",
		               (long)b->pid, (long)getpid());
	if (b->replaced && __atomic_load_n(b->replaced, __ATOMIC_ACQUIRE) == MB_OPEN_LOCK_REPLACED)
		return mb_fail(b, MB_ERESTORED, "%s: the bank was restored (replaced by another) "
		               "since this handle opened it; close it and open the bank again",
		               b->path);
	if (atomic_load(&b->fatal))
		return mb_fail(b, MB_EFATAL, "a journal sync failed earlier on this handle: "
		               "nothing after it is known to be durable; close and reopen the bank");
	return 0;
}

/* The committed end is the head's (state.h: "jend"), with the clock. */
int bank_jend_load(kv_txn *t, mbj_pos *pos)
{
	st_head h;
	int rc = st_head_load(t, &h);

	*pos = (mbj_pos){ h.segment, h.offset, h.seq };
	return rc;
}

int bank_jend_store(kv_txn *t, const mbj_pos *pos)
{
	return st_head_store(t, pos->segment, pos->offset, pos->seq);
}

int bank_journal_code(int jrc)
{
	static const int codes[] = { 0, MB_EIO, MB_ECORRUPT, MB_EVERSION, MB_ENOMEM,
	                             MB_EINVAL, MB_ENOSPC, MB_EFATAL };

	if (jrc >= 0)
		return 0;
	return -jrc < (int)(sizeof codes / sizeof codes[0]) ? codes[-jrc] : MB_EIO;
}

int bank_journal_fail(mb_bank *b, int jrc, const char *what)
{
	int code = bank_journal_code(jrc);
	const char *msg = b->jn ? mbj_errmsg(b->jn) : mbj_open_errmsg();

	if (code == MB_EFATAL)
		atomic_store(&b->fatal, true);
	/* an I/O error's message is the system's cause ("open ...: Too many
	 * open files"): "input/output error" before it would mislead */
	if (code == MB_EIO && *msg)
		return mb_fail(b->tag, code, "%s: %s", what, msg);
	return mb_fail(b->tag, code, "%s: %s%s%s", what, mb_strerror(code), *msg ? ": " : "", msg);
}

static int apply_journaled(mb_bank *b, kv_txn *t, const mbj_record *rec)
{
	mb_rec r;
	int rc = rec_decode(rec->type, rec->ts_us, rec->payload, rec->len, &r);

	if (rc)
		return mb_fail(b->tag, MB_ECORRUPT, "journal record %llu (type %u) has a payload "
		               "that is not of its type's shape", (unsigned long long)rec->seq, rec->type);
	rc = apply_record(t, b->history_limit, &r);
	if (rc && rc != KV_EMAPFULL)
		mb_fail(b->tag, rc, "applying journal record %llu: %s",
		        (unsigned long long)rec->seq, mb_strerror(rc));
	return rc;
}

int bank_roll_forward(mb_bank *b, kv_txn *t, mbj_pos *end)
{
	mbj_record rec;
	int rc;

	while ((rc = mbj_next_at(b->jn, end, &rec)) == 1) {
		if ((rc = apply_journaled(b, t, &rec)))
			return rc;
		*end = rec.end;
	}
	return rc ? bank_journal_fail(b, rc, "journal") : 0;
}

/* Our record, once it is in the journal (end.seq 0: not yet). */
typedef struct appended {
	mbj_pos end;
	uint32_t len;
} appended;

/* The record's time: now, but always after the newest record applied, so
 * that record times strictly increase along the journal whatever the wall
 * clock does (a clock stepped back must not make a new page the "oldest"
 * that eviction drops first, nor expire it at once). */
static int record_time(kv_txn *t, int64_t *ts)
{
	int64_t last;
	int rc = st_clock_load(t, &last);

	*ts = mb_now_us();
	if (!rc && last != MB_NEVER && *ts <= last)
		*ts = last + 1;
	return rc;
}

static int append_and_apply(mb_bank *b, kv_txn *t, uint8_t type, const mb_buf *payload,
                            mbj_pos *end, appended *a)
{
	mbj_record rec = { .type = type, .payload = (const uint8_t *)payload->data,
	                   .len = (uint32_t)payload->len };
	mbj_pos new_end;
	int rc = record_time(t, &rec.ts_us);

	if (rc)
		return mb_fail(b->tag, rc, "reading the store's clock: %s", mb_strerror(rc));
	if ((rc = mbj_append(b->jn, end, type, rec.ts_us, payload->data, (uint32_t)payload->len,
	                     &new_end)))
		return bank_journal_fail(b, rc, "journal append");
	a->end = new_end;
	a->len = (uint32_t)payload->len;
	rec.seq = new_end.seq;
	rec.end = new_end;
	if ((rc = apply_journaled(b, t, &rec)))
		return rc;
	*end = new_end;
	return 0;
}

/* One attempt under the writer lock.  Once our record is in the journal
 * (a->end.seq set), a later attempt only rolls forward, which applies it. */
static int write_once(mb_bank *b, uint8_t type, const mb_buf *payload,
                      bank_precheck_fn precheck, void *ctx, appended *a)
{
	mbj_pos end;
	kv_txn *t;
	int rc = kv_begin(b->kv, true, &t);

	if (rc)
		return mb_fail(b, rc, "cannot begin a write: %s", mb_strerror(rc));
	if ((rc = bank_check(b)))  /* again under the writer lock */
		return kv_end(t, rc);
	if (!(rc = bank_jend_load(t, &end)) && !(rc = bank_roll_forward(b, t, &end)) &&
	    !a->end.seq && (!precheck || !(rc = precheck(t, ctx))))
		rc = append_and_apply(b, t, type, payload, &end, a);
	if (!rc)
		rc = bank_jend_store(t, &end);
	return kv_end(t, rc);
}

/* Our record reached the journal but the store could not take it (a full
 * disk at commit, an I/O error): unless another writer has applied it
 * since, it is turned into a record that applies as nothing, so a failed
 * call changes nothing.  1: it was applied after all (the call succeeds). */
static int withdraw(mb_bank *b, const appended *a)
{
	mbj_pos end;
	kv_txn *t;
	int rc = kv_begin(b->kv, true, &t);

	if (rc)
		return rc;
	if (!(rc = bank_jend_load(t, &end))) {
		if (end.seq >= a->end.seq)
			rc = 1;
		else if (end.seq + 1 != a->end.seq)
			rc = MB_ECORRUPT;
		else
			rc = bank_journal_code(mbj_retype(b->jn, &a->end, a->len, REC_CANCELLED));
	}
	kv_abort(t);
	return rc;
}

static int write_failed(mb_bank *b, int rc, const appended *a)
{
	char why[400];
	int wrc;

	if (!*mb_last_error(b))
		mb_fail(b, rc, "write: %s", mb_strerror(rc));
	if (!a->end.seq)
		return rc;
	snprintf(why, sizeof why, "%s", mb_last_error(b));
	if ((wrc = withdraw(b, a)) == 1)
		return 0;
	if (wrc)
		return mb_fail(b, rc, "%s; and its journal record could not be withdrawn (%s): "
		               "it may still take effect", why, mb_strerror(wrc));
	return mb_fail(b, rc, "%s", why);
}

int bank_write(mb_bank *b, uint8_t type, const mb_buf *payload,
               bank_precheck_fn precheck, void *ctx)
{
	appended a = { { 0, 0, 0 }, 0 };
	int rc, jrc, tries = 0;

	if ((rc = bank_check(b)) || (rc = bank_boot_record(b)))
		return rc;
	mb_clear_error(b);
	if (payload->failed)
		return mb_fail(b, MB_ENOMEM, "out of memory");
	if (payload->len > MBJ_MAX_PAYLOAD)  /* numbers pack larger than their text */
		return mb_fail(b, MB_EINVAL, "the change packs to %zu bytes, above the journal's "
		               "record limit of %u bytes", payload->len, MBJ_MAX_PAYLOAD);
	while ((rc = write_once(b, type, payload, precheck, ctx, &a)) == KV_EMAPFULL)
		if (++tries > 40 || kv_grow(b->kv)) {
			rc = mb_fail(b, MB_ENOSPC, "the store's map cannot grow further");
			break;
		}
	if (rc == MB_ENOTFOUND && !a.end.seq)
		return rc;  /* a precheck's answer */
	if (rc && (rc = write_failed(b, rc, &a)))
		return rc;
	if (b->opts.durability == MB_DURABILITY_FULL && (jrc = mbj_sync(b->jn, a.end.seq)))
		return bank_journal_fail(b, jrc, "journal sync");
	if (!b->opts.defer_auto_checkpoint)
		bank_auto_checkpoint(b, &a.end);  /* acknowledged: its outcome is not ours */
	mb_clear_error(b);
	return 0;
}

static int check_text(mb_bank *b, const char *what, const char *s, size_t min, size_t max)
{
	size_t len, bad;

	if (!s)
		return mb_fail(b, MB_EINVAL, "%s: missing", what);
	len = strnlen(s, max + 1);
	if (len < min)
		return mb_fail(b, MB_EINVAL, "%s: empty", what);
	if (len > max)
		return mb_fail(b, MB_EINVAL, "%s: longer than %zu bytes", what, max);
	if ((bad = mb_utf8_bad_at(s, len)) != (size_t)-1)
		return mb_fail(b, MB_EINVAL, "%s: invalid UTF-8 at byte %zu", what, bad);
	return 0;
}

int bank_check_id(mb_bank *b, const char *id)
{
	return check_text(b, "page id", id, 1, MB_MAX_ID_BYTES);
}

static size_t max_json(const mb_bank *b)
{
	return b->opts.max_json_bytes ? b->opts.max_json_bytes : MB_DEFAULT_JSON_BYTES;
}

_Static_assert(MB_MAX_PAGE_PACKED == MBJ_MAX_PAYLOAD, "a put's properties fit one record");


/* A merge must not make a page larger than a put could (MB_MAX_PAGE_PACKED):
 * the snapshot, and the loader that reads it back, are bounded by it.  The
 * merged map is at most the old one plus the patch (and a wider header), so
 * the merge is computed only near the bound.  An expired page is counted as
 * it is stored (the merge would start from nothing): refusing is the safe
 * side. */
int bank_merge_fits(kv_txn *t, void *ctx)
{
	const merge_ck *m = ctx;
	const uint8_t *old;
	int64_t updated;
	size_t olen, len;
	kv_val v;
	int rc = kv_get(t, KV_PAGES, (kv_val){ m->id, strlen(m->id) }, &v);

	if (rc == MB_ENOTFOUND)
		return 0;
	if (rc || (rc = st_page_split(v, &updated, &old, &olen)))
		return mb_fail(m->b, rc, "page \"%.64s\": %s", m->id, mb_strerror(rc));
	if (olen + m->patch_len + 8 <= MB_MAX_PAGE_PACKED)
		return 0;
	if ((rc = apply_merged_len(old, olen, m->patch, m->patch_len, &len)))
		return mb_fail(m->b, rc, "page \"%.64s\": %s", m->id, mb_strerror(rc));
	if (len > MB_MAX_PAGE_PACKED)
		return mb_fail(m->b, MB_EINVAL, "page \"%.64s\": the merged properties would pack to "
		               "%zu bytes, above the limit of %zu", m->id, len, MB_MAX_PAGE_PACKED);
	return 0;
}

/* ------------------------------------------------------ the mutations
 *
 * Each mutation is prepared (checked and encoded into its record's payload,
 * outside any lock) by a bank_prep_* function, then written.  A batch
 * prepares the same way and writes many as one record (batch.c). */

int bank_prep_page(mb_bank *b, const char *id, const char *json, size_t len, mb_buf *rec)
{
	mb_buf props = { 0 };
	int rc;

	if (!(rc = bank_check_id(b, id)) &&
	    !(rc = json_object_to_mp(json, len, max_json(b), "properties", b, &props)) &&
	    (rc = rec_encode_page(rec, id, strlen(id), &props)))
		rc = mb_fail(b, rc, "out of memory");
	buf_free(&props);
	return rc;
}

int bank_prep_delete(mb_bank *b, const char *id, mb_buf *rec)
{
	int rc;

	if (!(rc = bank_check_id(b, id)) && (rc = rec_encode_id(rec, id, strlen(id))))
		rc = mb_fail(b, rc, "out of memory");
	return rc;
}

static int prep_strs(mb_bank *b, const char *x, const char *y, mb_buf *rec)
{
	int rc = rec_encode_strs(rec, x, y);

	return rc ? mb_fail(b, rc, "out of memory") : 0;
}

/* Whether @status is "failed", "failure" or "error" in any ASCII case (not
 * strcasecmp: it follows the locale, and the program's locale must not
 * change what a record means). */
static bool failure_status(const char *status)
{
	static const char *const words[] = { "failed", "failure", "error" };

	for (size_t w = 0; w < sizeof words / sizeof *words; w++) {
		size_t i = 0;

		while (words[w][i] && (status[i] | 0x20) == words[w][i])
			i++;
		if (!words[w][i] && !status[i])
			return true;
	}
	return false;
}

/* A failure status without an error is recorded with error "": the record
 * then counts as the failure it names, and apply.c (and the replay of older
 * records) keeps its one rule, "an error counts a failure". */
int bank_prep_sync(mb_bank *b, const char *status, const char *error, mb_buf *rec)
{
	int rc;

	if ((rc = check_text(b, "status", status, 1, MB_MAX_STATUS_BYTES)) ||
	    (error && (rc = check_text(b, "error", error, 0, MB_MAX_TEXT_BYTES))))
		return rc;
	if (!error && failure_status(status))
		error = "";
	return prep_strs(b, status, error, rec);
}

int bank_prep_error_log(mb_bank *b, const char *type, const char *message, mb_buf *rec)
{
	int rc;

	if ((rc = check_text(b, "error type", type, 1, MB_MAX_TYPE_BYTES)) ||
	    (rc = check_text(b, "message", message, 0, MB_MAX_TEXT_BYTES)))
		return rc;
	return prep_strs(b, type, message, rec);
}

int bank_prep_error_resolve(mb_bank *b, const char *type, const char *steps, mb_buf *rec)
{
	int rc;

	if ((rc = check_text(b, "error type", type, 1, MB_MAX_TYPE_BYTES)) ||
	    (rc = check_text(b, "steps", steps, 0, MB_MAX_TEXT_BYTES)))
		return rc;
	return prep_strs(b, type, steps, rec);
}

int bank_prep_config(mb_bank *b, const char *json, size_t len, mb_buf *rec)
{
	mb_buf patch = { 0 };
	int rc = config_patch_from_json(json, len, max_json(b), b, &patch);

	if (!rc && (rc = rec_encode_map(rec, &patch)))
		rc = mb_fail(b, rc, "out of memory");
	buf_free(&patch);
	return rc;
}

/* Check the handle, prepare the payload (@prep's verdict), write it. */
static int write_prepared(mb_bank *b, uint8_t type, int prep, mb_buf *rec,
                          bank_precheck_fn precheck, void *ctx)
{
	int rc = prep ? prep : bank_write(b, type, rec, precheck, ctx);

	buf_free(rec);
	return rc;
}

int mb_page_put(mb_bank *b, const char *id, const char *json, size_t len)
{
	mb_buf rec = { 0 };
	int rc = bank_check(b);

	return rc ? rc : write_prepared(b, REC_PAGE_PUT,
	                                bank_prep_page(b, id, json, len, &rec),
	                                &rec, NULL, NULL);
}

int mb_page_merge(mb_bank *b, const char *id, const char *json, size_t len)
{
	mb_buf rec = { 0 };
	merge_ck ck = { b, id, NULL, 0 };
	mb_rec r = { 0 };
	int rc = bank_check(b);

	if (rc)
		return rc;
	rc = bank_prep_page(b, id, json, len, &rec);
	if (!rc && rec_decode(REC_PAGE_MERGE, 0, rec.data, rec.len, &r))
		rc = mb_fail(b, MB_EINTERNAL, "page merge: cannot read back its own record");
	ck.patch = r.map;
	ck.patch_len = r.maplen;
	return write_prepared(b, REC_PAGE_MERGE, rc, &rec, bank_merge_fits, &ck);
}

/* A delete of a page that has expired fails as a delete of a missing page
 * would: every operation sees the same set of pages. */
static int page_exists(kv_txn *t, void *ctx)
{
	const char *id = ctx;
	kv_val v;

	return apply_live_page(t, id, strlen(id), mb_now_us(), &v);
}

int mb_page_delete(mb_bank *b, const char *id)
{
	mb_buf rec = { 0 };
	int rc = bank_check(b);

	if (rc)
		return rc;
	rc = write_prepared(b, REC_PAGE_DELETE, bank_prep_delete(b, id, &rec), &rec,
	                    page_exists, (void *)id);
	if (rc == MB_ENOTFOUND)
		rc = mb_fail(b, rc, "page \"%.64s\": not found", id);
	return rc;
}

int mb_sync_record(mb_bank *b, const char *status, const char *error)
{
	mb_buf rec = { 0 };
	int rc = bank_check(b);

	return rc ? rc : write_prepared(b, REC_SYNC, bank_prep_sync(b, status, error, &rec),
	                                &rec, NULL, NULL);
}

int mb_error_log(mb_bank *b, const char *type, const char *message)
{
	mb_buf rec = { 0 };
	int rc = bank_check(b);

	return rc ? rc : write_prepared(b, REC_ERROR_LOG,
	                                bank_prep_error_log(b, type, message, &rec),
	                                &rec, NULL, NULL);
}

int mb_error_resolve(mb_bank *b, const char *type, const char *steps)
{
	mb_buf rec = { 0 };
	int rc = bank_check(b);

	return rc ? rc : write_prepared(b, REC_ERROR_RESOLVE,
	                                bank_prep_error_resolve(b, type, steps, &rec),
	                                &rec, NULL, NULL);
}

int mb_config_update(mb_bank *b, const char *json, size_t len)
{
	mb_buf rec = { 0 };
	int rc = bank_check(b);

	return rc ? rc : write_prepared(b, REC_CONFIG, bank_prep_config(b, json, len, &rec),
	                                &rec, NULL, NULL);
}
