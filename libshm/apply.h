/*
 * apply.h - apply(): the seam of the whole design (see apply.c).
 */
#ifndef MEMBANK_APPLY_H
#define MEMBANK_APPLY_H

#include "record.h"
#include "state.h"

/* Apply one checked record inside write transaction @t. */
int apply_record(kv_txn *t, uint32_t history_limit, const mb_rec *r);

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
