/*
 * apply.h - apply(): the seam of the whole design (see apply.c).
 */
#ifndef MEMBANK_APPLY_H
#define MEMBANK_APPLY_H

#include "record.h"
#include "state.h"

/* What the records applied in one transaction share (apply.c, ONE PASS). */
typedef struct apply_ctx {
	mb_config cfg;          /* the store's config, once have_cfg */
	bool have_cfg;
	bool pages_changed;     /* meta "pages" is due, with pages_ts */
	int64_t pages_ts;
} apply_ctx;

/* Apply one checked record inside write transaction @t. */
int apply_record(kv_txn *t, uint32_t history_limit, const mb_rec *r);

/* The same for many records in one transaction: apply_begin(), then
 * apply_one() for each in order, then apply_end() before the commit.  After
 * an error the transaction must be aborted. */
void apply_begin(apply_ctx *ax);
int apply_one(kv_txn *t, uint32_t history_limit, const mb_rec *r, apply_ctx *ax);
int apply_end(kv_txn *t, apply_ctx *ax);

/* The length of the properties that merging @patch into @old gives. */
int apply_merged_len(const uint8_t *old, size_t olen, const uint8_t *patch, size_t plen,
                     size_t *len);

/* Is the time index kept (eviction or expiry on)? */
bool apply_index_on(const mb_config *cfg);

/* A page last updated at @updated reads as absent at @now. */
bool apply_expired(int64_t updated, int64_t now, const mb_config *cfg);

/* Page @id's value if it is live (present and not expired) at @now;
 * MB_ENOTFOUND otherwise.  Every operation sees pages through this rule. */
int apply_live_page(kv_txn *t, const char *id, size_t len, int64_t now, kv_val *v);

/* The number of live pages at @now. */
int apply_count_live(kv_txn *t, int64_t now, uint64_t *n);

#endif /* MEMBANK_APPLY_H */
