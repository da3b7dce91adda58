/*
 * docs.h - the JSON documents of the spec, built from one transaction.
 *
 * Each appends to @b the document with exactly the spec's keys in the
 * spec's order.  The same functions serve the API getters and the snapshot,
 * so what a worker reads and what the checkpoint holds cannot drift apart.
 */
#ifndef MEMBANK_DOCS_H
#define MEMBANK_DOCS_H

#include "bank.h"

void doc_time(mb_buf *b, int64_t t);   /* "..." or null */
/* {"properties":{...},"last_updated":"..."} of a page value */
int doc_page(kv_val v, mb_buf *b);
int doc_sync_status(kv_txn *t, mb_buf *b);
int doc_error_stats(kv_txn *t, mb_buf *b);
int doc_error_log(kv_txn *t, mb_buf *b);
int doc_config(kv_txn *t, mb_buf *b);
/* checkpoint.json (membank's own, beside the four files; see checkpoint.h):
 * the journal position @end they cover, and the error-type state the spec's
 * error_log.json has no key for. */
int doc_checkpoint(kv_txn *t, const mbj_pos *end, int64_t write_us, mb_buf *b);
/* {"timestamp":..,"error_type":..,"message":..} or {} */
int doc_last_error(const st_errors *s, mb_buf *b);

#endif /* MEMBANK_DOCS_H */
