/*
 * read.c - every read of the API: one LMDB read transaction, no journal.
 */
#include <string.h>

#include "apply.h"
#include "bank.h"
#include "docs.h"

int bank_read_begin(mb_bank *b, kv_txn **t)
{
	int rc = bank_check(b);

	if (rc)
		return rc;
	if ((rc = kv_begin(b->kv, false, t)))
		return mb_fail(b, rc, "cannot begin a read: %s", mb_strerror(rc));
	return 0;
}

/* Hand a document out, or say why it could not be built. */
static int hand_out(mb_bank *b, int rc, mb_buf *doc, char **out, size_t *len, const char *what)
{
	if (!rc && !(*out = buf_take(doc, len)))
		rc = MB_ENOMEM;
	buf_free(doc);
	if (rc == MB_ENOTFOUND)
		return rc;
	if (rc)
		return mb_fail(b, rc, "%s: %s%s", what, mb_strerror(rc),
		               rc == MB_ECORRUPT ? " (the store is damaged: run mb_rebuild)" : "");
	return 0;
}

static int get_doc(mb_bank *b, int (*build)(kv_txn *, mb_buf *), char **out, const char *what)
{
	mb_buf doc = { 0 };
	kv_txn *t;
	int rc;

	if (!out)
		return mb_fail(b, MB_EINVAL, "%s: output pointer is NULL", what);
	*out = NULL;
	if ((rc = bank_read_begin(b, &t)))
		return rc;
	rc = build(t, &doc);
	kv_abort(t);
	return hand_out(b, rc, &doc, out, NULL, what);
}

int mb_sync_status(mb_bank *b, char **out)
{
	return get_doc(b, doc_sync_status, out, "sync status");
}

int mb_error_stats(mb_bank *b, char **out)
{
	return get_doc(b, doc_error_stats, out, "error stats");
}

int mb_config_get(mb_bank *b, char **out)
{
	return get_doc(b, doc_config, out, "config");
}

int mb_page_get(mb_bank *b, const char *id, char **out, size_t *len)
{
	mb_buf doc = { 0 };
	kv_txn *t;
	kv_val v;
	int rc;

	if (!out)
		return mb_fail(b, MB_EINVAL, "page get: output pointer is NULL");
	*out = NULL;
	if ((rc = bank_check_id(b, id)) || (rc = bank_read_begin(b, &t)))
		return rc;
	if (!(rc = apply_live_page(t, id, strlen(id), mb_now_us(), &v)))
		rc = doc_page(v, &doc);
	kv_abort(t);
	if (rc == MB_ENOTFOUND)
		mb_fail(b, rc, "page \"%.64s\": not found", id);
	return hand_out(b, rc, &doc, out, len, "page get");
}

int mb_page_count(mb_bank *b, uint64_t *count)
{
	kv_txn *t;
	int rc;

	if (!count)
		return mb_fail(b, MB_EINVAL, "page count: output pointer is NULL");
	if ((rc = bank_read_begin(b, &t)))
		return rc;
	rc = apply_count_live(t, mb_now_us(), count);
	kv_abort(t);
	return rc ? mb_fail(b, rc, "page count: %s", mb_strerror(rc)) : 0;
}

/* Copy a key into a NUL-terminated id; ids never hold NUL (C strings). */
static int key_to_id(kv_val k, char *id)
{
	if (!k.len || k.len > MB_MAX_ID_BYTES || memchr(k.data, 0, k.len))
		return MB_ECORRUPT;
	memcpy(id, k.data, k.len);
	id[k.len] = '\0';
	return 0;
}

static int walk(kv_txn *t, const char *after, unsigned flags, mb_page_fn fn, void *ctx,
                int64_t now)
{
	char id[MB_MAX_ID_BYTES + 1];
	const uint8_t *props;
	mb_buf doc = { 0 };
	int64_t updated;
	size_t plen;
	mb_config cfg;
	kv_cursor *c;
	kv_val k, v, from = { after, after ? strlen(after) : 0 };
	int rc;

	if ((rc = st_config_load(t, &cfg)) || (rc = kv_cursor_open(t, KV_PAGES, &c)))
		return rc;
	rc = kv_cursor_seek(c, after ? &from : NULL, &k, &v);
	if (!rc && after && k.len == from.len && !memcmp(k.data, after, k.len))
		rc = kv_cursor_next(c, &k, &v);
	for (; !rc; rc = kv_cursor_next(c, &k, &v)) {
		if ((rc = key_to_id(k, id)) || (rc = st_page_split(v, &updated, &props, &plen)))
			break;
		if (apply_expired(updated, now, &cfg))
			continue;
		doc.len = 0;
		if (!(flags & MB_ITER_IDS) && (rc = doc_page(v, &doc)))
			break;
		if ((rc = fn(ctx, id, (flags & MB_ITER_IDS) ? NULL : doc.data)))
			break;
	}
	kv_cursor_close(c);
	buf_free(&doc);
	return rc == MB_ENOTFOUND ? 0 : rc;
}

int mb_page_iterate(mb_bank *b, const char *after, unsigned flags, mb_page_fn fn, void *ctx)
{
	kv_txn *t;
	int rc;

	if (!fn)
		return mb_fail(b, MB_EINVAL, "page iterate: callback is NULL");
	if ((after && (rc = bank_check_id(b, after))) || (rc = bank_read_begin(b, &t)))
		return rc;
	mb_clear_error(b);  /* else a failed walk would keep an earlier call's message */
	rc = walk(t, after, flags, fn, ctx, mb_now_us());
	kv_abort(t);
	if (rc < 0 && rc >= MB_EINTERNAL && !*mb_last_error(b))
		mb_fail(b, rc, "page iterate: %s", mb_strerror(rc));
	return rc;
}
