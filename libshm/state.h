/*
 * state.h - the bank's state records and how they are kept in the store.
 *
 * The store's layout (named databases of kv.h):
 *   pages     id -> be64 last_updated_us ++ msgpack map of properties
 *   ptime     be64 last_updated_us ++ id -> ""   (oldest first: eviction, ttl)
 *   meta      "sync"   -> [status|nil, last_success|nil, last_sync|nil,
 *                          error_count, success_count, history_next]
 *             "errors" -> [total, resolved, history_next,
 *                          last_ts|nil, last_type|nil, last_message|nil,
 *                          types_dropped]   (6 fields before types were bounded)
 *             "pages"  -> [last_updated|nil]
 *             "clock"  -> [ts]: the clock of stores written before it
 *                          joined "jend" (read, then deleted by the next
 *                          st_head_store)
 *             "config" -> see config.c; absent: st_config_defaults()
 *             "removed" -> [evicted, purged]: pages removed by max_entries
 *                          and by purge records, counted by apply (so a
 *                          replay counts them again); a checkpoint keeps
 *                          them (checkpoint.json "pages_removed")
 *             "jend"   -> 32 bytes, the store's head: the committed journal
 *                          end (le64 segment, le64 offset, le64 seq) and
 *                          the clock (le64 two's complement: the newest
 *                          record time applied, INT64_MIN none); a writer
 *                          stamps its record after the clock (record times
 *                          strictly increase along the journal).  24 bytes
 *                          (no clock: see "clock") in older stores.
 *   errtypes  type -> [count, resolved, steps|nil, resolved_at|nil, last_seen|nil]
 *             (at most MB_MAX_ERROR_TYPES; last_seen, the time of the type's
 *             last log or resolve, picks the one dropped: absent in records
 *             written before the bound, read as nil, the oldest)
 *   synchist  be64 n -> [ts, status, error|nil]   (newest history_limit)
 *   errhist   be64 n -> [ts, type, message]       (newest history_limit)
 * Times are int64 microseconds since the epoch; nil is "never".
 * total_pages is not stored: it is the entry count of `pages`.
 */
#ifndef MEMBANK_STATE_H
#define MEMBANK_STATE_H

#include "internal.h"
#include "kv.h"

#define MB_NEVER INT64_MIN

/* A page's properties pack to at most this (the journal's payload limit,
 * MBJ_MAX_PAYLOAD: a put cannot be larger, and a merge that would make the
 * page larger is refused), so its JSON in a snapshot is bounded too. */
#define MB_MAX_PAGE_PACKED ((size_t)32 << 20)

typedef struct st_sync {
	bool has_status;
	char status[MB_MAX_STATUS_BYTES + 1];
	int64_t last_success, last_sync;
	uint64_t errors, successes, hist_next;
} st_sync;

typedef struct st_errors {
	uint64_t total, resolved, hist_next;
	uint64_t types_dropped;  /* error types dropped at MB_MAX_ERROR_TYPES */
	int64_t last_ts;   /* MB_NEVER: no last error */
	char last_type[MB_MAX_TYPE_BYTES + 1];
	char last_msg[MB_MAX_TEXT_BYTES + 1];
} st_errors;

typedef struct st_errtype {
	uint64_t count, resolved;
	int64_t resolved_at;  /* MB_NEVER: no steps recorded */
	int64_t last_seen;    /* last log or resolve; MB_NEVER: unknown */
	char steps[MB_MAX_TEXT_BYTES + 1];
} st_errtype;

typedef struct mb_config {
	char api_version[65];
	int64_t retry_attempts;
	double timeout_seconds;
	bool timeout_is_float;  /* written as 30.0, not 30: prints so */
	char log_level[16];
	bool structured_logging;
	int64_t ttl_seconds;
	int64_t max_entries;
	int64_t last_update;
} mb_config;

/* Pages removed behind the user's back.  Expired pages not yet purged
 * are not stored here: they are the stored pages minus the live ones. */
typedef struct st_removed {
	uint64_t evicted, purged;
} st_removed;

/* The cache settings of a store with no config record: the values every
 * bank had before banks recorded their own at creation (membank.json
 * "cache_settings").  A bank created before relies on them when its journal
 * replays, so they never change. */
#define MB_LEGACY_TTL_SECONDS 3600
#define MB_LEGACY_MAX_ENTRIES 1000

/* Each load gives the initial state when the record is absent, and
 * MB_ECORRUPT when it is damaged. */
int st_sync_load(kv_txn *t, st_sync *s);
int st_sync_store(kv_txn *t, const st_sync *s);
int st_errors_load(kv_txn *t, st_errors *s);
int st_errors_store(kv_txn *t, const st_errors *s);
int st_pages_load(kv_txn *t, int64_t *last_updated);
int st_pages_store(kv_txn *t, int64_t last_updated);
/* The store's head: the committed journal end and the clock, one record
 * written once per write transaction.  Loaded once per transaction (then
 * cached: kv_txn_scratch).  st_clock_advance() changes the cached clock
 * only: it is stored with the end by st_head_store(), which every
 * transaction that applies records calls (bank_jend_store) before it
 * commits. */
#define ST_HEAD_BYTES 32
#define ST_HEAD_BYTES_OLD 24   /* before the clock joined it */
typedef struct st_head {
	uint64_t segment, offset, seq;
	int64_t clock;   /* MB_NEVER: none recorded */
} st_head;
int st_head_load(kv_txn *t, st_head *h);
int st_head_store(kv_txn *t, uint64_t segment, uint64_t offset, uint64_t seq);
/* The store's clock: the newest record time applied (MB_NEVER: none yet).
 * A bank restored from files has no clock yet: the pages' last_updated
 * stands in for it. */
int st_clock_load(kv_txn *t, int64_t *ts);
int st_clock_advance(kv_txn *t, int64_t ts);
int st_errtype_decode(kv_val v, st_errtype *s);
int st_errtype_load(kv_txn *t, const char *type, size_t len, st_errtype *s);
int st_errtype_store(kv_txn *t, const char *type, size_t len, const st_errtype *s);
/* Drop the least recently seen error types (ties: the smallest type) until
 * fewer than @keep remain; each one dropped counts in *dropped. */
int st_errtypes_trim(kv_txn *t, uint64_t keep, uint64_t *dropped);
int st_removed_load(kv_txn *t, st_removed *s);
int st_removed_store(kv_txn *t, const st_removed *s);
int st_removed_add(kv_txn *t, uint64_t evicted, uint64_t purged);
int st_config_load(kv_txn *t, mb_config *c);
int st_config_store(kv_txn *t, const mb_config *c);
void st_config_defaults(mb_config *c);

/* Append to a bounded history (synchist or errhist) at *next, dropping the
 * oldest entries beyond @limit. */
int st_hist_add(kv_txn *t, int db, uint64_t *next, const mb_buf *entry, uint32_t limit);

/* Page values: be64 time ++ msgpack map. */
int st_page_split(kv_val v, int64_t *updated, const uint8_t **props, size_t *len);
void st_be64(uint8_t out[8], uint64_t v);
uint64_t st_get_be64(const uint8_t *p);

/* Timestamps in msgpack: int, or nil for MB_NEVER. */
struct msgpack_packer;
void st_pack_time(struct msgpack_packer *pk, int64_t t);
int st_read_time(mp_reader *r, int64_t *t);

#endif /* MEMBANK_STATE_H */
