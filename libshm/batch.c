/*
 * batch.c - many mutations as one record: all applied, or none.
 *
 * A batch collects prepared operations (bank_prep_*: checked and encoded
 * outside any lock, exactly as the single calls do) as msgpack elements
 * [type, payload] in one buffer.  The commit prefixes the array header and
 * writes the whole as one REC_BATCH record through the ordinary write path:
 * one journal append, one transaction, one fdatasync in full durability.
 *
 * The operations whose success depends on the state are a delete (of a page
 * that must be live; inside a batch "live" means: as the operations before
 * it leave the page) and a merge (that must not make a page larger than a
 * put could).  The precheck answers both under the writer lock, from an
 * index of the batch's page operations sorted by (id, position), built from
 * the record alone (the leader of a write group may be another process).
 */
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "bank.h"

struct mb_batch {
	mb_bank *bank;
	mb_buf ops;    /* n elements [type, payload], without the array header */
	uint32_t n;
};

/* One page operation of the batch, for the delete precheck. */
typedef struct page_op {
	const char *id;
	uint32_t len, pos;
	uint8_t type;
	size_t maplen;     /* put and merge: the properties' packed size */
} page_op;

typedef struct commit_ctx {
	page_op *ops;
	uint32_t n;
	uint32_t failed;   /* position of the operation refused */
	bool too_big;      /* it was a merge that could pass MB_MAX_PAGE_PACKED */
} commit_ctx;

int mb_batch_begin(mb_bank *b, mb_batch **out)
{
	int rc;

	if (!out)
		return mb_fail(b, MB_EINVAL, "batch: output pointer is NULL");
	*out = NULL;
	if ((rc = bank_check(b)))
		return rc;
	if (!(*out = calloc(1, sizeof **out)))
		return mb_fail(b, MB_ENOMEM, "batch: out of memory");
	(*out)->bank = b;
	return 0;
}

size_t mb_batch_count(const mb_batch *bt)
{
	return bt ? bt->n : 0;
}

void mb_batch_abort(mb_batch *bt)
{
	if (!bt)
		return;
	buf_free(&bt->ops);
	free(bt);
}

/* Append a prepared operation, unless the batch would pass its bounds. */
static int add(mb_batch *bt, uint8_t type, int prep, mb_buf *rec)
{
	mb_bank *b = bt->bank;
	size_t before = bt->ops.len;
	uint8_t head[2] = { 0x92, type };  /* fixarray(2), positive fixint */
	int rc = prep;

	if (!rc && bt->n >= MB_MAX_BATCH_OPS)
		rc = mb_fail(b, MB_EINVAL, "batch: already %u operations, the most one batch "
		             "holds; commit it and begin another", MB_MAX_BATCH_OPS);
	else if (!rc && bt->ops.len + rec->len + 2 + 5 > MBJ_MAX_PAYLOAD)
		rc = mb_fail(b, MB_EINVAL, "batch: this operation would take the batch past the "
		             "journal's record limit of %u bytes; commit it and begin another",
		             MBJ_MAX_PAYLOAD);
	if (!rc) {
		buf_add(&bt->ops, head, 2);
		buf_add(&bt->ops, rec->data, rec->len);
		if (bt->ops.failed) {
			bt->ops.failed = false;
			bt->ops.len = before;
			rc = mb_fail(b, MB_ENOMEM, "batch: out of memory");
		} else {
			bt->n++;
		}
	}
	buf_free(rec);
	return rc;
}

static int usable(mb_batch *bt)
{
	if (!bt)
		return mb_fail(NULL, MB_EINVAL, "batch: the batch is NULL");
	mb_clear_error(bt->bank);
	return bank_check(bt->bank);
}

int mb_batch_page_put(mb_batch *bt, const char *id, const char *json, size_t len)
{
	mb_buf rec = { 0 };
	int rc = usable(bt);

	return rc ? rc : add(bt, REC_PAGE_PUT, bank_prep_page(bt->bank, id, json, len, &rec), &rec);
}

int mb_batch_page_merge(mb_batch *bt, const char *id, const char *json, size_t len)
{
	mb_buf rec = { 0 };
	int rc = usable(bt);

	return rc ? rc : add(bt, REC_PAGE_MERGE, bank_prep_page(bt->bank, id, json, len, &rec),
	                     &rec);
}

int mb_batch_page_delete(mb_batch *bt, const char *id)
{
	mb_buf rec = { 0 };
	int rc = usable(bt);

	return rc ? rc : add(bt, REC_PAGE_DELETE, bank_prep_delete(bt->bank, id, &rec), &rec);
}

int mb_batch_sync_record(mb_batch *bt, const char *status, const char *error)
{
	mb_buf rec = { 0 };
	int rc = usable(bt);

	return rc ? rc : add(bt, REC_SYNC, bank_prep_sync(bt->bank, status, error, &rec), &rec);
}

int mb_batch_error_log(mb_batch *bt, const char *type, const char *message)
{
	mb_buf rec = { 0 };
	int rc = usable(bt);

	return rc ? rc : add(bt, REC_ERROR_LOG, bank_prep_error_log(bt->bank, type, message, &rec),
	                     &rec);
}

int mb_batch_error_resolve(mb_batch *bt, const char *type, const char *steps)
{
	mb_buf rec = { 0 };
	int rc = usable(bt);

	return rc ? rc : add(bt, REC_ERROR_RESOLVE,
	                     bank_prep_error_resolve(bt->bank, type, steps, &rec), &rec);
}

int mb_batch_config_update(mb_batch *bt, const char *json, size_t len)
{
	mb_buf rec = { 0 };
	int rc = usable(bt);

	return rc ? rc : add(bt, REC_CONFIG, bank_prep_config(bt->bank, json, len, &rec), &rec);
}

static int cmp_page_op(const void *x, const void *y)
{
	const page_op *a = x, *b = y;
	int c = memcmp(a->id, b->id, a->len < b->len ? a->len : b->len);

	if (c || a->len != b->len)
		return c ? c : (a->len > b->len) - (a->len < b->len);
	return (a->pos > b->pos) - (a->pos < b->pos);
}

/* The page operations of @payload (a whole batch payload), sorted by id and
 * then position: the operation before a delete on the same page is the
 * entry before it. */
static int index_pages(const uint8_t *payload, size_t len, commit_ctx *cx)
{
	mp_reader r = { payload, payload + len, true };  /* checked by rec_decode */
	uint32_t n;
	mb_rec op;

	if (mp_read_array(&r, &n) || !n || n > MB_MAX_BATCH_OPS)
		return MB_EINVAL;
	if (!(cx->ops = calloc(n, sizeof *cx->ops)))
		return MB_ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		if (rec_batch_next(&r, 0, &op))
			return MB_EINVAL;  /* checked by rec_decode: cannot happen */
		if (op.type == REC_PAGE_PUT || op.type == REC_PAGE_MERGE ||
		    op.type == REC_PAGE_DELETE)
			cx->ops[cx->n++] = (page_op){ op.a, op.alen, i, op.type, op.maplen };
	}
	qsort(cx->ops, cx->n, sizeof *cx->ops, cmp_page_op);
	return 0;
}

static bool same_page(const page_op *a, const page_op *b)
{
	return a->len == b->len && !memcmp(a->id, b->id, a->len);
}

/* Merges may not make a page larger than a put could store: the page's
 * stored properties plus every put and merge of it in the batch bound what
 * the merges can make, so only a batch near the bound is refused (whole,
 * as a single merge there would be). */
static int merges_fit(kv_txn *t, commit_ctx *cx, uint32_t first, uint32_t end)
{
	const uint8_t *props;
	size_t total = 0, plen = 0;
	int64_t updated;
	uint32_t merge = UINT32_MAX;
	kv_val v;
	int rc;

	for (uint32_t i = first; i < end; i++) {
		total += cx->ops[i].maplen + 8;
		if (cx->ops[i].type == REC_PAGE_MERGE && merge == UINT32_MAX)
			merge = i;
	}
	if (merge == UINT32_MAX)
		return 0;
	rc = kv_get(t, KV_PAGES, (kv_val){ cx->ops[first].id, cx->ops[first].len }, &v);
	if (!rc && !(rc = st_page_split(v, &updated, &props, &plen)))
		total += plen;
	if (rc && rc != MB_ENOTFOUND)
		return rc;
	if (total <= MB_MAX_PAGE_PACKED)
		return 0;
	cx->failed = cx->ops[merge].pos;
	cx->too_big = true;
	return MB_EINVAL;
}

/* Under the writer lock: every delete finds its page live at its point of
 * the batch, and no page can grow past the bound. */
static int batch_precheck(kv_txn *t, commit_ctx *cx)
{
	int64_t now = mb_now_us();
	uint32_t group = 0;
	kv_val v;
	int rc;

	for (uint32_t i = 0; i < cx->n; i++) {
		const page_op *d = &cx->ops[i], *prev = i ? &cx->ops[i - 1] : NULL;
		bool live;

		if (!prev || !same_page(prev, d)) {
			if (prev && (rc = merges_fit(t, cx, group, i)))
				return rc;
			group = i;
		}
		if (d->type != REC_PAGE_DELETE)
			continue;
		if (prev && same_page(prev, d)) {
			live = prev->type != REC_PAGE_DELETE;
		} else {
			rc = apply_live_page(t, d->id, d->len, now, &v);
			if (rc && rc != MB_ENOTFOUND)
				return rc;
			live = rc == 0;
		}
		if (!live) {
			cx->failed = d->pos;
			return MB_ENOTFOUND;
		}
	}
	return cx->n ? merges_fit(t, cx, group, cx->n) : 0;
}

int bank_batch_precheck(mb_bank *b, kv_txn *t, const uint8_t *payload, size_t len)
{
	commit_ctx cx = { NULL, 0, 0, false };
	int rc = index_pages(payload, len, &cx);

	if (rc) {
		free(cx.ops);
		return mb_fail(b->tag, rc, "batch: %s", rc == MB_ENOMEM ? "out of memory" :
		               "the record is not a batch");
	}
	rc = batch_precheck(t, &cx);
	for (uint32_t i = 0; i < cx.n; i++) {
		int n = (int)(cx.ops[i].len > 64 ? 64 : cx.ops[i].len);
		if ((rc != MB_ENOTFOUND && !cx.too_big) || cx.ops[i].pos != cx.failed)
			continue;
		if (cx.too_big)
			mb_fail(b->tag, rc, "batch: operation %u (page merge): page \"%.*s\": its puts "
			        "and merges in this batch could make it pack larger than %zu bytes; "
			        "nothing was applied", cx.failed + 1, n, cx.ops[i].id,
			        (size_t)MB_MAX_PAGE_PACKED);
		else
			mb_fail(b->tag, rc, "batch: operation %u (page delete): page \"%.*s\": not "
			        "found; nothing was applied", cx.failed + 1, n, cx.ops[i].id);
		break;
	}
	if (rc && rc != MB_ENOTFOUND && !cx.too_big)
		rc = mb_fail(b->tag, rc, "batch: %s", mb_strerror(rc));
	free(cx.ops);
	return rc;
}

int mb_batch_commit(mb_batch *bt)
{
	mb_buf payload = { 0 };
	mb_bank *b;
	int rc = usable(bt);

	if (rc || !bt->n)
		goto out;
	b = bt->bank;
	if (bt->n < 16)
		buf_addc(&payload, (char)(0x90 | bt->n));
	else if (bt->n < 65536)
		buf_add(&payload, (uint8_t[]){ 0xdc, (uint8_t)(bt->n >> 8), (uint8_t)bt->n }, 3);
	else
		buf_add(&payload, (uint8_t[]){ 0xdd, (uint8_t)(bt->n >> 24), (uint8_t)(bt->n >> 16),
		                               (uint8_t)(bt->n >> 8), (uint8_t)bt->n }, 5);
	buf_add(&payload, bt->ops.data, bt->ops.len);
	rc = payload.failed ? mb_fail(b, MB_ENOMEM, "batch: out of memory")
	                    : bank_write(b, REC_BATCH, &payload);
out:
	buf_free(&payload);
	mb_batch_abort(bt);
	return rc;
}
