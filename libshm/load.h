/*
 * load.h - reading the four JSON files back into a store.
 *
 * Shared by mb_restore() (a bank built from files) and by recovery (the
 * checkpoint, then the journal tail).  Every file is checked whole against
 * the spec's shapes and the bank's bounds before anything is kept, and each
 * error names the file and the byte offset or the key that was wrong.
 */
#ifndef MEMBANK_LOAD_H
#define MEMBANK_LOAD_H

#include "state.h"

/* THE LOADER'S LIMITS ARE THE WRITER'S WORST CASES, so that whatever the
 * bank accepted loads back from its own snapshot (tests/store/
 * test_recovery.c checks each formula against a bank filled to the worst).
 * json_add_str() writes a byte as at most 6 (\u00XX), and mp_to_json() a
 * byte of msgpack as at most 6 ("false,"). */
#define MB_JSON_STR_MAX(n) (6 * (size_t)(n) + 2)
#define MB_JSON_TIME_MAX 32          /* "2026-01-31T12:00:00.000000Z" or null */
#define MB_JSON_NUM_MAX 24
/* {"timestamp":T,"status":S,"error":E} and {"timestamp":T,"error_type":S,"message":E}, "," */
#define MB_SYNC_ENTRY_MAX (48 + MB_JSON_TIME_MAX + MB_JSON_STR_MAX(MB_MAX_STATUS_BYTES) + \
                           MB_JSON_STR_MAX(MB_MAX_TEXT_BYTES))
#define MB_ERROR_ENTRY_MAX (48 + MB_JSON_TIME_MAX + MB_JSON_STR_MAX(MB_MAX_TYPE_BYTES) + \
                            MB_JSON_STR_MAX(MB_MAX_TEXT_BYTES))
/* one type in patterns and resolutions ({"steps":..,"timestamp":..,"resolved":N}) */
#define MB_ERRTYPE_MAX (2 * (MB_JSON_STR_MAX(MB_MAX_TYPE_BYTES) + 2) + MB_JSON_NUM_MAX + 48 + \
                        MB_JSON_STR_MAX(MB_MAX_TEXT_BYTES) + MB_JSON_TIME_MAX + MB_JSON_NUM_MAX)
#define MB_DOC_FIXED_MAX ((size_t)64 << 10)  /* everything else of a file */
#define MB_MAX_SYNC_FILE (MB_DOC_FIXED_MAX + (size_t)MB_MAX_HISTORY * MB_SYNC_ENTRY_MAX)
#define MB_MAX_ERROR_FILE (MB_DOC_FIXED_MAX + (size_t)(MB_MAX_HISTORY + 1) * MB_ERROR_ENTRY_MAX + \
                           (size_t)MB_MAX_ERROR_TYPES * MB_ERRTYPE_MAX)
#define MB_MAX_CONFIG_FILE MB_DOC_FIXED_MAX
/* checkpoint.json: the position, and error_types.last_seen ("type":time,) */
#define MB_MAX_CHECKPOINT_FILE (MB_DOC_FIXED_MAX + (size_t)MB_MAX_ERROR_TYPES * \
                                (MB_JSON_STR_MAX(MB_MAX_TYPE_BYTES) + 2 + MB_JSON_TIME_MAX))
/* one page's properties: msgpack of at most MB_MAX_PAGE_PACKED bytes */
#define MB_MAX_PAGE_JSON (6 * MB_MAX_PAGE_PACKED + 2)
#define MB_MAX_PAGES_FILE ((uint64_t)16 << 30) /* notion_pages.json */

struct cJSON;

/* A file as the loader read it: its length and CRC-32C (mbj_crc32c).  A
 * restore's first checkpoint is a copy of the files it loaded; a copy with
 * the same digests holds the bytes that loaded, so it needs no second
 * load to prove that it loads (snapshot.c). */
typedef struct load_digest {
	uint64_t bytes;
	uint32_t crc;
} load_digest;

/* Pages counted as they load: those updated at or before @cutoff would be
 * expired on arrival (ttl_seconds > 0; MB_NEVER: count none), and the
 * digest of notion_pages.json as it was walked (computed only with a
 * tally: restore's). */
typedef struct load_tally {
	int64_t cutoff;
	uint64_t pages, expired;
	load_digest file;
} load_tally;

/* The three small documents, parsed and checked for shape (the config is
 * msgpack, jsonmp.c, so its numbers keep their type: timeout_seconds), and
 * checkpoint.json when @dir has one (NULL when not: the spec's four files
 * alone load with no error type dropped so far and every type's last_seen
 * unknown, that is older than any known one). */
typedef struct load_docs {
	struct cJSON *sync, *errors, *ckpt;
	mb_buf config;
	size_t sync_history, error_history;  /* entries in each */
	load_digest small[3]; /* sync_status.json, error_log.json, config_cache.json as read */
	unsigned missing;     /* how many of the four files were absent */
	bool no_pages;        /* notion_pages.json absent: no pages */
	bool no_config;       /* config_cache.json absent: a new bank's config */
	load_tally *tally;    /* NULL, or filled by load_all() */
	struct progress *progress; /* NULL, or stepped per page (progress.h) */
} load_docs;

/* Files a restore reads from outside: an absent sync_status.json,
 * error_log.json, config_cache.json or notion_pages.json reads as an empty
 * one, as long as one of the four is there (MB_EINVAL otherwise).  A
 * checkpoint is read without it: a file missing there is damage. */
#define LOAD_MISSING_EMPTY 1u

int load_docs_read(const char *dir, const void *tag, load_docs *d);
/* @dir/@name, a JSON object of at most @max bytes, parsed whole. */
int load_parse_file(const char *dir, const char *name, size_t max, const void *tag,
                    struct cJSON **out);
int load_docs_read_from(const char *dir, unsigned flags, const void *tag, load_docs *d);
void load_docs_free(load_docs *d);

/* Load everything in @dir into the empty store of *@t.  Keeps the newest
 * @history_limit entries of each history.  With @batch (the environment of
 * a bank built aside) pages are committed in batches of LOAD_BATCH_BYTES
 * and *@t changes; it is NULL after a failed intermediate commit.  Pages
 * listed in key order (as every snapshot lists them) are appended to the
 * store (kv_put_new), filling its leaves; others are inserted. */
int load_all(kv_txn **t, kv_env *batch, const char *dir, const load_docs *d,
             uint32_t history_limit, const void *tag);

/* Run the loader over @dir without storing anything (*t NULL all along):
 * 0 when load_all() would load it.  A snapshot checks its checkpoint so
 * before anything relies on it.  @skip_pages: notion_pages.json is known to
 * load (the copy of a file just loaded, with its digest), so only the
 * other files are read. */
int load_check(const char *dir, uint32_t history_limit, bool skip_pages, const void *tag);

#endif /* MEMBANK_LOAD_H */
