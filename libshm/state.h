/*
 * state.h - the bank's state records and how they are kept in the store.
 *
 * Every value in the store is exactly one msgpack document, so that any
 * msgpack decoder reads it (README "The store's databases"; tests/python
 * test_store_format.py reads a live bank with python3-lmdb and msgpack).
 * Keys are bytes that sort as LMDB compares them.  The layout, store format
 * MB_STORE_FORMAT (named databases of kv.h):
 *   pages     id -> [last_updated_us, {properties}]
 *   ptime     be64 last_updated_us ++ id -> nil   (oldest first: eviction, ttl)
 *   meta      "format" -> MB_STORE_FORMAT: this layout (absent: format 1)
 *             "sync"   -> [status|nil, last_success|nil, last_sync|nil,
 *                          error_count, success_count, history_next]
 *             "errors" -> [total, resolved, history_next,
 *                          last_ts|nil, last_type|nil, last_message|nil,
 *                          types_dropped]   (6 fields before types were bounded)
 *             "pages"  -> [last_updated|nil]
 *             "config" -> see config.c; absent: st_config_defaults()
 *             "config.extra" -> {keys of config_cache.json beyond ours}
 *             "removed" -> [evicted, purged]: pages removed by max_entries
 *                          and by purge records, counted by apply (so a
 *                          replay counts them again); a checkpoint keeps
 *                          them (checkpoint.json "pages_removed")
 *             "jend"   -> [segment, offset, seq, clock|nil]: the store's head,
 *                          the committed journal end and the clock (the
 *                          newest record time applied; nil: none yet); a
 *                          writer stamps its record after the clock, so
 *                          record times strictly increase along the journal
 *   errtypes  type -> [count, resolved, steps|nil, resolved_at|nil, last_seen|nil]
 *             (at most MB_MAX_ERROR_TYPES; last_seen, the time of the type's
 *             last log or resolve, picks the one dropped: absent in records
 *             written before the bound, read as nil, the oldest)
 *   synchist  be64 n -> [ts, status, error|nil]   (newest history_limit)
 *   errhist   be64 n -> [ts, type, message]       (newest history_limit)
 * Format 1 (before 0.2.0's store format) differed in three values: a page
 * was be64 last_updated_us followed by the map, a ptime value was empty,
 * and jend 24 raw bytes (le64 segment, offset, seq).  An open rebuilds a
 * store of format 1 from the checkpoint and the journal (bank.c).
 * A value that is not its documented shape (another type, another array
 * length, bytes after the document) reads as MB_ECORRUPT.
 * Times are int64 microseconds since the epoch; nil is "never".
 * total_pages is not stored: it is the entry count of `pages`.
 */
#ifndef MEMBANK_STATE_H
#define MEMBANK_STATE_H

#include "internal.h"
#include "journal.h"
#include "kv.h"

#define MB_NEVER INT64_MIN

/* The store's layout version, kept in meta "format".  A store without one
 * is of format 1; a newer one is MB_EVERSION. */
#define MB_STORE_FORMAT 2
int st_format_load(kv_txn *t, int64_t *format);
int st_format_store(kv_txn *t);

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
/* A bank on a stream: the newest turn record applied (cluster.c, TURNS),
 * its seq and the nonce of the machine that asked for the turn; 0 and 0
 * when none. */
int st_turn_load(kv_txn *t, uint64_t *seq, uint64_t *nonce);
int st_turn_store(kv_txn *t, uint64_t seq, uint64_t nonce);
int st_config_load(kv_txn *t, mb_config *c);
int st_config_store(kv_txn *t, const mb_config *c);
void st_config_defaults(mb_config *c);

/* A history entry [ts, a, c|nil] (synchist: status, error; errhist: type,
 * message): appended to @b, and read back (*c NULL for nil; the strings
 * point into @v). */
int st_hist_entry(mb_buf *b, int64_t ts, const char *a, size_t alen, const char *c,
                  size_t clen);
int st_hist_decode(kv_val v, int64_t *ts, const char **a, uint32_t *alen, const char **c,
                   uint32_t *clen);
/* Append to a bounded history (synchist or errhist) at *next, dropping the
 * oldest entries beyond @limit. */
int st_hist_add(kv_txn *t, int db, uint64_t *next, const mb_buf *entry, uint32_t limit);

/* Page values [last_updated_us, {properties}].  st_page_split reads the
 * header only (cheap: every get pays it) and hands out the map's bytes, the
 * rest of the value: a reader that walks them (doc_page, a merge) checks
 * that they are exactly one map. */
int st_page_put(kv_txn *t, const char *id, size_t len, int64_t updated,
                const uint8_t *props, size_t plen);
int st_page_split(kv_val v, int64_t *updated, const uint8_t **props, size_t *len);
/* The time index: key be64 max(updated, 0) ++ id, value nil.  st_ptime_key
 * writes the key into @key (8 + MB_MAX_ID_BYTES bytes) and returns its length. */
size_t st_ptime_key(uint8_t *key, int64_t updated, const char *id, size_t len);
int st_ptime_put(kv_txn *t, int64_t updated, const char *id, size_t len);
int st_ptime_del(kv_txn *t, int64_t updated, const char *id, size_t len);  /* MB_ENOTFOUND */
/* A ptime key's time and id (pointing into @k); MB_ECORRUPT if malformed. */
int st_ptime_split(kv_val k, int64_t *updated, const char **id, size_t *len);

/* The committed journal end of a store of format 1 (24 raw bytes), for the
 * journal check that reads a store without opening the bank (maint.c).
 * bank_jend_load() and bank_jend_store() (bank.h) read and write the
 * current layout; both are in state.c. */
int st_jend_load_v1(kv_txn *t, mbj_pos *pos);

/* The value of a page updated at @updated with the msgpack map @props,
 * into @out (emptied first, its memory kept for the next page). */
int st_page_value(mb_buf *out, int64_t updated, const uint8_t *props, size_t len);
void st_be64(uint8_t out[8], uint64_t v);
uint64_t st_get_be64(const uint8_t *p);

/* Timestamps in msgpack: int, or nil for MB_NEVER. */
struct msgpack_packer;
void st_pack_time(struct msgpack_packer *pk, int64_t t);
int st_read_time(mp_reader *r, int64_t *t);

#endif /* MEMBANK_STATE_H */
