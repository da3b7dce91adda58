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
 * the journal position @end they cover, and the store's state the spec's
 * files have no key for (page counters, error types' last sightings), which
 * doc_checkpoint_state() reads from @t as the text that ends the document:
 * the snapshot reads it in its short transaction and writes the file later. */
int doc_checkpoint_state(kv_txn *t, mb_buf *b);
int doc_checkpoint(const mbj_pos *end, int64_t write_us, const mb_buf *state, mb_buf *b);
/* {"timestamp":..,"error_type":..,"message":..} or {} */
int doc_last_error(const st_errors *s, mb_buf *b);

#endif /* MEMBANK_DOCS_H */
