/*
 * membank.h - a memory bank that many processes on one machine share.
 *
 * membank keeps the state of the "Memory Bank" of the original Push Notion
 * integration (pages, sync status, errors, configuration) for any number of
 * concurrent processes.  Every change is appended to a journal (the durable
 * truth) and applied to an LMDB environment of msgpack records that every
 * process maps (the shared-memory cache).  A snapshot writes the original
 * design's four JSON files atomically; it is also the checkpoint recovery
 * starts from.
 *
 * CONVENTIONS
 *
 *  - Every function that can fail returns an int: 0 on success or a negative
 *    MB_E* code.  mb_strerror() names a code; mb_last_error() gives the
 *    message of the calling thread's last failure on a handle, which names the
 *    field, key or byte that was wrong.
 *  - Strings passed in are UTF-8.  JSON passed in is object text of at most
 *    the bank's max_json_bytes (see mb_options), nested at most MB_MAX_DEPTH
 *    deep.
 *  - NUMBERS are kept exactly and read back as they were written, as Python's
 *    json module reads and writes them.  An integer (no '.', 'e' or 'E') is
 *    kept as a 64-bit integer, from -9223372036854775808 to
 *    18446744073709551615; a larger one is refused (MB_EINVAL, "integer out
 *    of range (beyond 64 bits) at byte N": store it as a string).  "-0" is
 *    the integer 0.  Any other number is a double and stays one, with its
 *    sign: 1.0 reads back as 1.0, -0.0 as -0.0, 0.1 as 0.1 (the shortest
 *    text that gives the same double); one beyond a double (1e400) is
 *    refused.  NaN and Infinity are not JSON.
 *  - Memory returned through a char ** belongs to the caller, who frees it
 *    with mb_free().  mb_free(NULL) and mb_close(NULL) are no-ops.
 *  - Bad input never changes the bank: a call that fails has written nothing.
 *  - Threads: a handle may be used by several threads at once.  Writes of
 *    every process are applied in write groups: queued writes are applied
 *    together by one of their writers, in one journal append and one
 *    transaction, each call getting its own result; reads run in parallel
 *    with each other and with writes.
 *  - Restore: a handle whose bank was replaced by mb_restore() (which
 *    refuses while it can see the bank open) fails every call with
 *    MB_ERESTORED and touches nothing; close it and open the bank again.
 *  - fork(): a handle belongs to the process that opened it.  Used in a
 *    child it fails with MB_EFORKED and touches nothing; the child opens the
 *    bank afresh.  Only mb_close() is allowed on such a handle (it releases
 *    the child's memory without touching the parent's files).
 *
 * TIMESTAMPS are RFC 3339 in UTC with microseconds
 * ("2026-11-26T00:29:55.123456Z"); a time never set reads as JSON null.
 *
 * This header includes nothing but <stddef.h>, <stdint.h> and <stdbool.h>.
 */
#ifndef MEMBANK_H
#define MEMBANK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MB_BUILDING_LIBRARY)
#define MB_API __attribute__((visibility("default")))
#else
#define MB_API
#endif

/** @defgroup version Version
 * The header's version; mb_version() gives the library's, which a program
 * (or a binding) compares with the header it was built against: the same
 * MB_VERSION_MAJOR is the same ABI (0.x: the same minor too).
 * @{ */
#define MB_VERSION_MAJOR 0
#define MB_VERSION_MINOR 2
#define MB_VERSION_PATCH 0
#define MB_VERSION "0.2.0"
/** MAJOR * 10000 + MINOR * 100 + PATCH, for #if comparisons. */
#define MB_VERSION_NUMBER (MB_VERSION_MAJOR * 10000 + MB_VERSION_MINOR * 100 + MB_VERSION_PATCH)
/** @} */

/** @defgroup errors Error codes
 * One table, in libshm/errors.c, names and describes them.
 * @{ */
#define MB_OK          0   /**< success */
#define MB_EINVAL     -1   /**< invalid input: the message names the field */
#define MB_ENOTFOUND  -2   /**< no such page (or it has expired) */
#define MB_ENOMEM     -3   /**< out of memory */
#define MB_EIO        -4   /**< an I/O error from the operating system */
#define MB_ECORRUPT   -5   /**< damaged journal, store or snapshot file */
#define MB_EVERSION   -6   /**< written by a newer format version */
#define MB_ENOTBANK   -7   /**< the directory is not a membank bank */
#define MB_EFORKED    -8   /**< handle used in a child after fork() */
#define MB_EPERM      -9   /**< permission denied, or a read-only bank */
#define MB_ENOSPC     -10  /**< no space left on the device */
#define MB_EFATAL     -11  /**< the handle failed durably (fsync); reopen */
#define MB_EEXIST     -12  /**< restore target is a non-empty bank */
#define MB_EUNSAFE    -13  /**< refused: symlink, or a network filesystem */
#define MB_EINTERNAL  -14  /**< an unexpected error from the storage engine */
#define MB_ERESTORED  -15  /**< the bank was restored since this handle
                                opened it; close it and open the bank again */
#define MB_ECANCELED  -16  /**< the progress callback asked to stop: the work
                                was undone, nothing changed */
#define MB_EUNAVAIL   -17  /**< the journal's cluster did not answer within
                                journal_timeout_ms, or its stream was last
                                seen to end before what this machine
                                applied: the write was not acknowledged
                                (reads keep serving the local cache) */
#define MB_EDIVERGED  -18  /**< the journal's stream was recreated, or
                                holds another record where this machine
                                has one: writes are refused (reads still
                                served) until the machine's bank is rebuilt
                                from the stream */
/** @} */

/** @defgroup limits Bounds on everything that comes from outside
 * @{ */
#define MB_MAX_ID_BYTES       255u       /**< page id, bytes */
#define MB_MAX_DEPTH          64u        /**< JSON nesting (objects and arrays) */
#define MB_DEFAULT_JSON_BYTES (1u << 20) /**< default max_json_bytes */
#define MB_MIN_JSON_BYTES     64u        /**< floor of max_json_bytes */
#define MB_MAX_JSON_BYTES     (16u << 20)/**< ceiling of max_json_bytes */
#define MB_MAX_STATUS_BYTES   64u        /**< sync status */
#define MB_MAX_TYPE_BYTES     128u       /**< error type */
#define MB_MAX_TEXT_BYTES     4096u      /**< error message, resolution steps */
#define MB_DEFAULT_HISTORY    100u       /**< sync_history and errors kept */
#define MB_MAX_HISTORY        100000u    /**< ceiling of history_limit */
#define MB_MAX_BATCH_OPS      100000u    /**< operations in one batch */
#define MB_MAX_ERROR_TYPES    1000u      /**< distinct error types kept (patterns,
                                              resolutions): the least recently seen
                                              is dropped and counted */
/** @} */

/** Durability of an acknowledged write. */
typedef enum mb_durability {
	/** Survives power loss: the journal is fdatasync'ed up to the record
	 * before the call returns.  Another process may observe the write a
	 * fraction of a millisecond before it is durable. */
	MB_DURABILITY_FULL = 0,
	/** Survives the death of any process (kill -9), not of the machine:
	 * no sync on the write path. */
	MB_DURABILITY_FAST = 1
} mb_durability;

/** PROGRESS of long work: mb_restore() (phase "restore", unit "pages"),
 * mb_snapshot() and the automatic checkpoint ("snapshot", "pages"), and a
 * rebuild of the cache, by mb_rebuild() or by an open that must rebuild
 * ("rebuild", "pages" loaded from the checkpoint, then "rebuild journal",
 * "records" replayed), call mb_options.progress when it is set:
 *
 *  - once at the start (done 0), then every MB_PROGRESS_EVERY items (no
 *    clock is read per item: the caller rates and throttles what it shows),
 *    and once at the end with finished true and done == total, when the
 *    work succeeded (a failed one ends without that call);
 *  - total is 0 while it is not known: a restore learns the page count only
 *    at the end of notion_pages.json, so it gives bytes_done of bytes_total
 *    (the file's size) for a rate and an ETA meanwhile;
 *  - done never decreases, except back to 0 when the work starts over (a
 *    restore or rebuild whose map had to grow);
 *  - a non-zero return from a call that is not the last cancels the work:
 *    the call fails with MB_ECANCELED ("<phase>: cancelled by the progress
 *    callback") and has changed nothing: a cancelled restore leaves the old
 *    bank (or no bank) at the path and removes what it built aside; a
 *    cancelled snapshot leaves the files and checkpoint before it (expired
 *    pages it purged first stay purged: they were already absent); a
 *    cancelled rebuild leaves the store as it was (an open that had to
 *    rebuild fails).  The last call's return is ignored.
 *
 * The callback runs in the calling thread, inside the library (a
 * transaction may be open): it must not call membank. */
typedef struct mb_progress {
	const char *phase;    /**< "restore", "snapshot", "rebuild", ... */
	const char *unit;     /**< what done and total count: "pages", "records" */
	uint64_t done;        /**< items done so far */
	uint64_t total;       /**< items in all; 0: not known (yet) */
	uint64_t bytes_done;  /**< input read, when the work reads one file */
	uint64_t bytes_total; /**< its size (0: no such figure) */
	bool finished;        /**< the last call: done == total */
} mb_progress;

/** See mb_progress.  Return 0 to go on, anything else to cancel. */
typedef int (*mb_progress_fn)(void *ctx, const mb_progress *p);

#define MB_PROGRESS_EVERY 4096u  /**< items between two calls */

/** Options of mb_open().  Initialise with mb_options_init(). */
typedef struct mb_options {
	mb_durability durability;  /**< default MB_DURABILITY_FULL */
	bool group_shared;         /**< files 0660, dirs 0770 (default 0600/0700) */
	bool create;               /**< create the bank if missing (default true) */
	bool allow_network_fs;     /**< open on NFS/CIFS/FUSE anyway (default false) */
	size_t map_size;           /**< initial LMDB map, bytes (0: 64 MiB); grows */
	size_t max_json_bytes;     /**< largest JSON input, in bytes: a property
	                                of the bank, so that every client (C, the
	                                command, Python) accepts and refuses the
	                                same documents.  Used when the bank is
	                                created, then stored in membank.json
	                                (0: MB_DEFAULT_JSON_BYTES; else
	                                MB_MIN_JSON_BYTES..MB_MAX_JSON_BYTES, or
	                                MB_EINVAL).  Opening an existing bank, 0
	                                takes the stored value; a smaller value
	                                lowers it for this handle only (a client
	                                that wants a tighter bound on its own
	                                input); a larger one fails with MB_EINVAL
	                                naming both: a handle never writes what
	                                the bank's other clients would refuse.
	                                Banks created before it: 1 MiB.  mb_stats
	                                gives it as "max_json_bytes" */
	uint32_t history_limit;    /**< sync_history and errors kept; used when the
	                                bank is created, then stored (0: 100).
	                                Opening an existing bank, 0 takes the
	                                stored value and another non-zero value
	                                than it fails with MB_EINVAL.  On a
	                                stream, both are the stream's: the
	                                machine that creates it records them, a
	                                machine joining takes them (the same
	                                rules as opening an existing bank) */
	uint64_t segment_bytes;    /**< journal segment size (0: 64 MiB) */
	uint32_t journal_retention_s; /**< a snapshot into the bank directory
	                                removes the journal segments that the
	                                checkpoint before it covers once they
	                                are this old (0: at once) */
	bool keep_reader_slots;    /**< leave the reader slots of dead processes
	                                as found (mb_stats counts them as
	                                stale_readers; membank doctor reports
	                                them); default false: cleared at open */
	/* The automatic checkpoint (README "Automatic checkpoints"): after an
	 * acknowledged write, the writer checkpoints when the journal since
	 * the newest checkpoint has grown past max(checkpoint_min_bytes,
	 * checkpoint_pct % of the checkpoint's four files), or changes are
	 * pending checkpoint_interval_s after it, unless another process is
	 * checkpointing.  A bank without a checkpoint gets one at its first
	 * write.  Its failure never fails the write (counted in mb_stats). */
	uint64_t checkpoint_min_bytes; /**< 0: 4 MiB */
	uint32_t checkpoint_pct;       /**< 0: 100 */
	uint32_t checkpoint_interval_s;/**< 0: 300 */
	bool no_auto_checkpoint;       /**< leave checkpoints to the compactor
	                                    and mb_snapshot() (default false) */
	bool defer_auto_checkpoint;    /**< a write leaves its automatic
	                                    checkpoint to mb_checkpoint_if_due(),
	                                    which the caller runs when it suits
	                                    (the command: after the write, with
	                                    SIGINT and SIGTERM held) */
	mb_progress_fn progress;       /**< NULL (default), or called by long
	                                    work (see mb_progress) */
	void *progress_ctx;            /**< progress's first argument */
	/* THE JOURNAL ON A CLUSTER (README "Many machines"): a bank whose
	 * journal is a NATS JetStream stream, shared by every machine that
	 * opens a bank bound to it.  Each machine keeps its own bank directory
	 * (its LMDB cache and a local copy of the stream); a write returns once
	 * the stream acknowledged it.  A bank is bound to one journal for life:
	 * membank.json records it (hosts and stream, never credentials) at
	 * creation, and opening the bank with another URL, or a local bank
	 * with a URL, fails with MB_EINVAL naming both (redacted). */
	const char *journal_url;       /**< "nats://[user:pass@|token@]HOST:PORT
	                                    [,HOST:PORT...]/STREAM" or tls://...;
	                                    NULL: $MEMBANK_JOURNAL, else the URL
	                                    membank.json records (its credentials
	                                    from journal_creds), else the local
	                                    journal.  "" means the local journal */
	const char *journal_creds;     /**< NATS .creds file (a user JWT and its
	                                    NKey seed, as nsc writes it); NULL:
	                                    $MEMBANK_JOURNAL_CREDS, else none.
	                                    Not readable or not a .creds file:
	                                    MB_EINVAL naming it; refused by the
	                                    server: MB_EPERM */
	const char *journal_tls_ca;    /**< CA file for tls:// (NULL: the system's) */
	const char *journal_tls_cert;  /**< client certificate for tls://, or NULL */
	const char *journal_tls_key;   /**< its key, or NULL */
	uint32_t journal_replicas;     /**< replicas of the stream when the bank
	                                    creates it (0: 1); an existing stream
	                                    keeps its own */
	uint32_t journal_timeout_ms;   /**< how long a write waits for an
	                                    unreachable or electing cluster before
	                                    it fails with MB_EUNAVAIL (0: 15000;
	                                    up to twice that when a publish timed
	                                    out and its outcome is looked up).  An
	                                    existing bank whose cluster does not
	                                    answer opens on its local copy after
	                                    it (a new one fails) */
} mb_options;

/** Opaque handle of an open bank. */
typedef struct mb_bank mb_bank;

/** Fill @p opts with the defaults. */
MB_API void mb_options_init(mb_options *opts);

/** Open (and, unless opts->create is false, create) the bank at @p path.
 *
 * @param path  the bank directory; NULL means $MEMBANK_DIR, else
 *              "./memory-bank".
 * @param opts  NULL for the defaults.
 * @param out   receives the handle on success, NULL on failure.
 *
 * On open, stale reader slots of dead processes are cleared (unless
 * keep_reader_slots; LMDB itself resets the reader table when no process has
 * the bank open), and work a
 * crashed writer left (a journal record appended but not applied, a torn
 * journal tail) is finished.  After a machine crash the cache is rebuilt from
 * the checkpoint and the journal before anyone reads; so is a store LMDB
 * refuses as invalid (moved aside to store.invalid-<time>, never deleted),
 * unless another process has it open (MB_ECORRUPT).  An open with nothing
 * to finish writes nothing to the store.  The library never keeps one of
 * its files on descriptor 0, 1 or 2, and fills a closed one with /dev/null
 * before LMDB opens its files.
 * A newest checkpoint that cannot be loaded (damaged on disk) is passed
 * over for the one before it and the longer journal, which snapshots keep
 * for this.  A bank of format 1 (membank.json) is upgraded: its store is
 * rebuilt in the current layout (every value one msgpack document) and
 * membank.json says format 2; not while another process has its store open
 * (MB_EPERM: a process of an older version, to be stopped first).
 *
 * @return 0, or MB_EINVAL (bad option), MB_ENOTBANK (a non-empty directory
 * that is not a bank, or a missing bank with create false), MB_EVERSION (a
 * newer bank or store format),
 * MB_EUNSAFE (path is a symlink, or on a network filesystem), MB_EPERM,
 * MB_ECORRUPT (journal damage that needs mb_journal_repair(), an invalid
 * store another process has open, or no checkpoint that can be loaded: the
 * message names the file), MB_ENOSPC,
 * MB_EIO, MB_ENOMEM, MB_EINTERNAL.  mb_last_error(NULL) says why, with the
 * system's words for a system error (e.g. "Too many open files").  An open
 * writes nothing that needs a new block of disk unless a part is missing or
 * the cache must be rebuilt, so a bank on a full disk opens and reads.
 * An open that finds a restore in progress waits for it (see mb_restore()).
 * A bank bound to a stream (journal_url) catches up with the stream before
 * the open returns (a new or wiped machine first loads the newest
 * checkpoint kept in the cluster); creating one creates the stream (or
 * checks it).  Then MB_EUNAVAIL (a machine that never joined the stream
 * and whose cluster did not answer in journal_timeout_ms; an existing one
 * opens on its local copy), MB_EINVAL (another journal than the bank's, a
 * bad URL: the message names the part), MB_EPERM (credentials or TLS
 * refused; a process forked after it used NATS) are possible too; a bank
 * whose stream was recreated opens, and its writes fail with MB_EDIVERGED.
 */
MB_API int mb_open(const char *path, const mb_options *opts, mb_bank **out);

/** Close @p bank.  Other handles on the same path in this process stay
 * valid.  @return 0, or MB_EIO when a final sync failed. */
MB_API int mb_close(mb_bank *bank);

/** The bank's directory, as opened.  Valid until mb_close(). */
MB_API const char *mb_path(const mb_bank *bank);

/** A short English description of an MB_E* code (never NULL). */
MB_API const char *mb_strerror(int code);

/** The symbolic name of an MB_E* code, e.g. "MB_EINVAL" (never NULL). */
MB_API const char *mb_errname(int code);

/** The library's version, "MAJOR.MINOR.PATCH" (MB_VERSION of the header it
 * was built from; never NULL).  @p number, if not NULL, receives its
 * MB_VERSION_NUMBER. */
MB_API const char *mb_version(int *number);

/** The message of the calling thread's last failed call on @p bank, or on
 * no handle (mb_open, mb_restore, mb_journal_*) when @p bank is NULL; ""
 * when there is none.  Valid until the thread's next call into membank. */
MB_API const char *mb_last_error(const mb_bank *bank);

/** Free memory returned by membank. */
MB_API void mb_free(void *p);

/* ------------------------------------------------------------------ pages */

/** Replace the properties of page @p id with the JSON object @p json of
 * @p len bytes (len may be (size_t)-1 for a NUL-terminated string).  Sets the
 * page's last_updated and the bank's last_updated.  A new page may evict the
 * least recently updated one when cache_settings.max_entries is reached.
 * @return 0, MB_EINVAL (bad id or JSON: the message names the byte or key),
 * MB_EFORKED, MB_EFATAL, MB_ENOSPC, MB_EIO, MB_ENOMEM, MB_EPERM. */
MB_API int mb_page_put(mb_bank *bank, const char *id, const char *json, size_t len);

/** Shallow-merge the JSON object @p json into page @p id's properties:
 * each top-level key replaces the one stored; a key whose value is null is
 * removed.  Creates the page when absent.  One atomic read-modify-write, so
 * two processes merging different keys both win.  Errors as mb_page_put();
 * MB_EINVAL also when the merged properties would pack larger than a put
 * can store (32 MiB). */
MB_API int mb_page_merge(mb_bank *bank, const char *id, const char *json, size_t len);

/** Read page @p id as {"properties":{...},"last_updated":"..."}.
 * @param json_out receives NUL-terminated JSON text (free with mb_free()).
 * @param len_out  receives its length; may be NULL.
 * @return 0, MB_ENOTFOUND (absent or expired by ttl_seconds), MB_EINVAL,
 * MB_ECORRUPT, MB_EFORKED, MB_ENOMEM. */
MB_API int mb_page_get(mb_bank *bank, const char *id, char **json_out, size_t *len_out);

/** Delete page @p id.  @return 0, MB_ENOTFOUND, or as mb_page_put(). */
MB_API int mb_page_delete(mb_bank *bank, const char *id);

/** The number of pages stored (expired pages not yet purged included, as in
 * metadata.total_pages).  @return 0, MB_EFORKED, MB_EINTERNAL. */
MB_API int mb_page_count(mb_bank *bank, uint64_t *count);

/** Called by mb_page_iterate() for each page in id order.  @p page_json is
 * the page as mb_page_get() gives it, or NULL with MB_ITER_IDS.  Both are
 * valid only during the call.  Return 0 to go on; anything else stops the
 * walk and is returned by mb_page_iterate(). */
typedef int (*mb_page_fn)(void *ctx, const char *id, const char *page_json);

#define MB_ITER_IDS 1u  /**< pass ids only (faster) */

/** Walk the live pages in id order, starting after @p after (NULL: from the
 * first), in one consistent read snapshot.  Keep the callback short: a long
 * walk pins old pages and makes the file grow.
 * @return 0, the callback's non-zero value, or an MB_E* code. */
MB_API int mb_page_iterate(mb_bank *bank, const char *after, unsigned flags,
                           mb_page_fn fn, void *ctx);

/* ------------------------------------------------------------ sync status */

/** Record a sync: @p status (1..MB_MAX_STATUS_BYTES bytes) becomes
 * current_status.  The one rule that counts it:
 *  - a failure (error_count): a non-NULL @p error (even ""), or a status of
 *    "failed", "failure" or "error" in any ASCII case ("Failed", "ERROR");
 *    such a status without an error is recorded with error "";
 *  - a success (success_count, last_successful_sync): status "success"
 *    exactly (lower case) without an error;
 *  - any other status ("running", "Success") counts neither.
 * Every call adds {timestamp, status, error} to sync_history, which keeps
 * the newest history_limit entries.  Errors as mb_page_put(). */
MB_API int mb_sync_record(mb_bank *bank, const char *status, const char *error);

/** The sync_status.json document (see the spec).  Free with mb_free(). */
MB_API int mb_sync_status(mb_bank *bank, char **json_out);

/* ----------------------------------------------------------------- errors */

/** Log an error of @p type (1..MB_MAX_TYPE_BYTES) with @p message
 * (0..MB_MAX_TEXT_BYTES): adds it to the history, counts it in
 * patterns[type] and total_errors, and makes it last_error.  It stays
 * unresolved until mb_error_resolve() of its type.  At most
 * MB_MAX_ERROR_TYPES types are kept: a new one (logged or resolved) drops the
 * type least recently logged or resolved, with its count and resolution
 * (total_errors and resolved_errors keep counting it); mb_stats() counts
 * them as error_types_dropped. */
MB_API int mb_error_log(mb_bank *bank, const char *type, const char *message);

/** Record resolution @p steps for error @p type and mark every unresolved
 * error of that type resolved (resolved_errors grows by their number).
 * Errors of the type logged later are unresolved again. */
MB_API int mb_error_resolve(mb_bank *bank, const char *type, const char *steps);

/** {"total_errors":N,"resolved_errors":N,"patterns":{...},"last_error":{...}} */
MB_API int mb_error_stats(mb_bank *bank, char **json_out);

/* ----------------------------------------------------------------- config */

/** Deep-merge the JSON object @p json into the configuration.  Only the
 * spec's keys are accepted, with their types and ranges:
 *   notion_settings.api_version      string, 1..64 bytes   ("2022-06-28")
 *   notion_settings.retry_attempts   integer 0..100        (3)
 *   notion_settings.timeout_seconds  number, > 0, <= 3600  (30; 30.0 stays 30.0)
 *   logging_settings.log_level       DEBUG|INFO|WARNING|ERROR|CRITICAL ("INFO")
 *   logging_settings.structured_logging  boolean           (true)
 *   cache_settings.ttl_seconds       integer >= 0, 0 = no expiry   (0)
 *   cache_settings.max_entries       integer >= 0, 0 = no bound    (0)
 * cache_settings drop pages: max_entries evicts the least recently updated
 * page beyond it, ttl_seconds makes older pages absent.  Both are off in a
 * new bank (membank.json records that at creation); a bank created by a
 * version before keeps 1000 and 3600 unless its config says otherwise.
 * An integer field takes an integer only (5.0 is a float).  Sets
 * last_config_update.  Any unknown key or wrong type fails the whole
 * update with MB_EINVAL naming the dotted key; nothing is changed. */
MB_API int mb_config_update(mb_bank *bank, const char *json, size_t len);

/** The config_cache.json document.  Free with mb_free(). */
MB_API int mb_config_get(mb_bank *bank, char **json_out);

/* ---------------------------------------------------------------- batches */

/** Opaque batch of mutations: see mb_batch_begin(). */
typedef struct mb_batch mb_batch;

/** Begin a batch of mutations on @p bank.  Each mb_batch_* call checks its
 * input at once, as the single call of the same name does (bad input fails
 * that call alone, with the message on the bank, and leaves the batch as it
 * was); mb_batch_commit() then applies them all, in order, as one journal
 * record and one transaction: all of them or none, seen by every process at
 * the same instant, for the cost of one write.  A batch holds no lock until
 * its commit and is used by one thread at a time.  At most MB_MAX_BATCH_OPS
 * operations, and together at most the journal's record limit (32 MiB of
 * packed payload: the add that would pass it fails with MB_EINVAL).
 * @return 0, MB_EINVAL (NULL arguments), MB_ENOMEM, MB_EFORKED, MB_EFATAL. */
MB_API int mb_batch_begin(mb_bank *bank, mb_batch **out);

/** mb_page_put(), mb_page_merge(), mb_page_delete(), mb_sync_record(),
 * mb_error_log(), mb_error_resolve() and mb_config_update() into @p batch.
 * @return 0, MB_EINVAL (bad input, a full batch), MB_ENOMEM. */
MB_API int mb_batch_page_put(mb_batch *batch, const char *id, const char *json, size_t len);
MB_API int mb_batch_page_merge(mb_batch *batch, const char *id, const char *json, size_t len);
MB_API int mb_batch_page_delete(mb_batch *batch, const char *id);
MB_API int mb_batch_sync_record(mb_batch *batch, const char *status, const char *error);
MB_API int mb_batch_error_log(mb_batch *batch, const char *type, const char *message);
MB_API int mb_batch_error_resolve(mb_batch *batch, const char *type, const char *steps);
MB_API int mb_batch_config_update(mb_batch *batch, const char *json, size_t len);

/** The number of operations in @p batch (0 for NULL). */
MB_API size_t mb_batch_count(const mb_batch *batch);

/** Apply the operations of @p batch, and free it whatever the result.  A
 * delete of a page that is absent at its point of the batch (after the
 * operations before it) fails the whole batch with MB_ENOTFOUND, the message
 * naming the operation; nothing is applied then.  An empty batch writes
 * nothing.  Durability as for one write of the handle's mode.
 * @return 0, MB_ENOTFOUND, or the errors of mb_page_put(). */
MB_API int mb_batch_commit(mb_batch *batch);

/** Free @p batch without applying it.  NULL is a no-op. */
MB_API void mb_batch_abort(mb_batch *batch);

/** The automatic checkpoint a write of @p bank would have taken, now, if it
 * is due (see mb_options): for a handle opened with defer_auto_checkpoint.
 * Its failure is counted in mb_stats, as a write's is, never returned.
 * @return 0, MB_EFORKED, MB_EFATAL, MB_ERESTORED, or a store error reading
 * the journal's end. */
MB_API int mb_checkpoint_if_due(mb_bank *bank);

/* -------------------------------------------------------------- maintenance */

/** Counters and sizes of the bank as a JSON object (pages, events, error
 * types kept and dropped, file sizes, map use, readers and their lag,
 * journal segments, "journal":{...,"fdatasyncs":N} (the journal's
 * fdatasyncs this boot by every process of the bank: last_seq over it is
 * how many records group commit covers with one), and
 * "checkpoint":{"seq":N (of the bank directory's
 * files; 0: none),"auto":{"enabled","runs","busy","failures","last_error"}}:
 * this handle's automatic checkpoints), and "cluster": null for a local
 * journal, else how stale this machine may be:
 * {"url":"nats://HOST:PORT/STREAM" (no credentials),"stream":"STREAM",
 * "applied_seq":N (journal.last_seq),"stream_last_seq":N (the stream's
 * last seq as last seen, no round trip),"lag_records":N,
 * "since_contact_ms":N|null (since this process last heard from the
 * cluster; null: never),"foreign_skipped":N,"conflicts":N (this process's
 * publishes that met another machine's record first),"turns_asked":N,
 * "turn_waits":N (this process's turn records, and its writes that waited
 * for another machine's turn: docs/cluster.md, Taking turns),
 * "checkpoint_seq":N,
 * "checkpoint_failures":N,"diverged":bool}.  */
MB_API int mb_stats(mb_bank *bank, char **json_out);

/** The bank's figures as OpenMetrics 1.0 text (which Prometheus scrapes):
 * "# HELP", "# TYPE" (and "# UNIT" for _bytes and _seconds) of each family,
 * then its samples, every one labelled bank="<path>" (backslash, quote and
 * newline escaped as \\ \" \n; a byte that is not UTF-8 as U+FFFD); a
 * counter's sample ends in _total; the text ends with "# EOF\n".  Families
 * (all prefixed membank_): pages; store_file_bytes, store_map_size_bytes,
 * store_map_used_bytes, store_last_txn, store_readers, store_max_readers,
 * store_stale_readers, store_reader_lag_transactions; journal_segments,
 * journal_bytes, journal_first_seq, journal_last_seq, journal_durable_seq;
 * checkpoint_seq, checkpoint_timestamp_seconds, checkpoint_age_seconds (no
 * sample without a checkpoint); sync_successes, sync_errors (counters),
 * sync_last_success_timestamp_seconds, sync_history_entries; errors,
 * errors_resolved (counters), error_types, errors_kept, history_limit;
 * errors_by_type (a counter, one sample per type="<type>").  Integers print
 * exactly; times as seconds with microseconds.  README.md has the table.
 * @p *text is NUL-terminated; free it with mb_free().
 * @return 0, MB_EINVAL (@p text NULL), MB_ENOMEM, or a read's code. */
MB_API int mb_metrics(mb_bank *bank, char **text);

/* ---------------------------------------------------------------- cluster */

/** The `fresh` read: apply every record the bank's stream holds up to its
 * last seq at the call (other machines' writes), so that the reads that
 * follow see them.  Without it a read sees what this machine has applied:
 * its own writes at once, other machines' within the follow delay (README
 * "Many machines").  A bank with a local journal: 0, nothing done.
 * @return 0, MB_EUNAVAIL (the cluster did not answer in journal_timeout_ms:
 * the local state is unchanged and still readable), MB_EDIVERGED, MB_EFORKED,
 * MB_EFATAL, MB_ERESTORED, MB_ENOSPC, MB_EIO, MB_ENOMEM. */
MB_API int mb_catch_up(mb_bank *bank);

/** What mb_cluster_status() reports. */
typedef struct mb_cluster_info {
	char url[512];             /**< the journal's URL without credentials */
	char stream[72];           /**< the stream's name */
	bool reachable;            /**< the cluster answered this call; when
	                                false, error says why and the stream's
	                                figures are the last ones seen */
	char error[256];           /**< why not reachable ("" when it is) */
	uint32_t replicas;         /**< the stream's replicas */
	char leader[64];           /**< server name of the stream's leader */
	uint64_t first_seq;        /**< the stream's oldest record kept */
	uint64_t last_seq;         /**< the stream's newest record */
	uint64_t applied_seq;      /**< the newest record this machine applied */
	uint64_t lag_records;      /**< last_seq - applied_seq (0 when ahead) */
	int64_t since_contact_ms;  /**< milliseconds since this process last
	                                heard from the cluster (-1: never) */
	uint64_t checkpoint_seq;   /**< seq that the newest checkpoint kept in
	                                the cluster covers, whichever machine
	                                put it (its last manifest, read by
	                                this call); 0: the cluster keeps none,
	                                or, with reachable false, not known */
	uint64_t foreign_skipped;  /**< records of the stream that were not
	                                membank's, applied as nothing on every
	                                machine (counted by this machine) */
	bool diverged;             /**< writes are refused: MB_EDIVERGED */
} mb_cluster_info;

/** The bank's stream as the cluster reports it, and this machine's place in
 * it (membank cluster status): two requests (the stream's info, the last
 * manifest of its checkpoint stream).  An unreachable cluster is not a
 * failure: @p out says so (reachable false, error) with the local figures.
 * @return 0, MB_EINVAL (@p out NULL, or the bank's journal is local: "not
 * bound to a cluster"), MB_EFORKED, MB_ERESTORED, MB_ENOMEM. */
MB_API int mb_cluster_status(mb_bank *bank, mb_cluster_info *out);

/** Rebuild the whole cache from the checkpoint and the journal, under the
 * writer lock.  Readers see the old state until the rebuilt one commits. */
MB_API int mb_rebuild(mb_bank *bank);


/* ------------------------------------------------- snapshot and restore */

/** What mb_snapshot() did. */
typedef struct mb_snapshot_info {
	uint64_t seq;              /**< last journal seq the snapshot covers */
	uint64_t pages;            /**< pages written */
	uint64_t bytes;            /**< bytes of the four files */
	uint64_t purged;           /**< expired pages this snapshot purged */
	uint64_t segments_removed; /**< journal segments deleted */
	double seconds;            /**< wall time */
	/* The bank's totals at the snapshot (as mb_stats pages_*): */
	uint64_t pages_evicted;    /**< pages ever dropped by max_entries */
	uint64_t pages_purged;     /**< expired pages ever purged, this snapshot's included */
	uint64_t pages_expired;    /**< expired pages still stored (not in the files) */
} mb_snapshot_info;

/** Write notion_pages.json, sync_status.json, error_log.json and
 * config_cache.json into @p dir (NULL: the bank directory) from one read
 * snapshot of the bank, each replaced atomically (temp file, fsync, rename,
 * fsync of the directory), then the checkpoint record of the journal seq
 * they cover (checkpoint.json, which also holds the error-type state the
 * spec's files have no key for: the four files keep exactly the spec's
 * keys).  Temp files that snapshots killed mid-write left in @p dir are
 * removed (never a live writer's).  When @p dir is the bank directory the
 * snapshot is the checkpoint: expired pages are purged, the files are read
 * back by the loader and the journal is made durable up to the seq they
 * cover (in `fast` durability too) before the checkpoint is installed, the checkpoint
 * before it is kept, and the journal segments that one covers are removed.
 * @p info may be NULL.
 * @return 0, MB_EUNSAFE (a target is a symlink), MB_ECORRUPT (the checkpoint
 * would not load back: it is not kept), MB_EFATAL (the journal sync
 * failed), MB_ENOSPC, MB_EIO, MB_EPERM,
 * MB_EFORKED, MB_ENOMEM. */
MB_API int mb_snapshot(mb_bank *bank, const char *dir, mb_snapshot_info *info);

#define MB_RESTORE_FORCE 1u  /**< replace a non-empty bank */
/** Pages older than the files' ttl_seconds would be expired on arrival
 * (read as absent, purged by the next snapshot).  Without one of these two
 * flags such a restore fails with MB_EINVAL ("N of M pages are older than
 * ttl_seconds=T ...") and changes nothing. */
#define MB_RESTORE_KEEP_EXPIRED 2u  /**< keep them: when any page would
                                     * expire, the restored ttl_seconds is 0 */
#define MB_RESTORE_EXPIRE 4u        /**< accept it: they are dropped */

/** Build the bank at @p bank_path (NULL: the default) from the four JSON
 * files in @p from_dir.  The bank is built aside and swapped with the
 * target in one atomic step (renameat2 RENAME_EXCHANGE) only when complete:
 * a crash at any instant leaves the old bank or the new one, whole, at the
 * path, and the next open or restore removes what the restore left beside
 * it.  A non-empty bank is replaced only with MB_RESTORE_FORCE, and only
 * while no process (this one included) has it open.  The restore holds the
 * bank's open lock from start to end: mb_open() of the bank waits for it,
 * then opens the new bank.  Accepted beyond what a snapshot writes: times
 * with any UTC offset, any number of fraction digits (truncated to
 * microseconds) or none, and naive ISO 8601 (read as UTC); an absent
 * sync_status.json, error_log.json, config_cache.json or notion_pages.json
 * reads as an empty one, but at least one of the four must be there.
 * Keys of config_cache.json beyond the documented ones (at most 8 KiB of
 * them packed) are kept and written back in their places by every
 * snapshot; mb_config_update() still refuses unknown keys.
 * Pages that would be expired on arrival need MB_RESTORE_KEEP_EXPIRED or
 * MB_RESTORE_EXPIRE (above).  No page in the files is ever evicted: when
 * more are kept than the files' cache_settings.max_entries, the restored
 * max_entries is 0 (no bound), and mb_restore_report() says so.  An absent
 * config_cache.json reads as a new bank's (cache_settings both 0), not as
 * the legacy 1000 and 3600.
 * The files' checkpoint.json is read too, if there is one (without it no
 * error type counts as dropped and none as seen: the first dropped at
 * MB_MAX_ERROR_TYPES go in key order).
 * A restore builds a bank with a local journal: it refuses (MB_EINVAL,
 * changing nothing) a target bound to a stream (membank.json's "journal")
 * and a journal URL asked (opts->journal_url, else $MEMBANK_JOURNAL).
 * @return 0, MB_EEXIST, MB_EINVAL or MB_ECORRUPT (a bad file: the message
 * names the file and the byte offset or key; pages that would expire
 * without a choice; none of the four files; bad @p flags), MB_EPERM (a process has the
 * bank open), MB_ENOTBANK (the target is a non-empty directory that is not
 * a bank: never replaced, even with force), MB_EUNSAFE (the target is a
 * symlink), MB_EIO (also: the
 * filesystem cannot exchange directories), MB_ENOSPC, MB_ENOMEM.
 * mb_last_error(NULL) says why. */
MB_API int mb_restore(const char *from_dir, const char *bank_path,
                      const mb_options *opts, unsigned flags);

/** mb_restore(), and on success what it did, in *@p report_json (NULL
 * after a failure; free with mb_free()):
 * {"pages":N,"expired_pages":E,"expired_pages_kept":K,
 *  "expired_pages_dropped":D,"config_cache_json":true|false,
 *  "ttl_seconds_was":T,"ttl_seconds_now":T2,"max_entries_was":M,
 *  "max_entries_now":M2}: N pages loaded, E of them older than the files'
 * ttl_seconds T, kept (MB_RESTORE_KEEP_EXPIRED: T2 0) or dropped
 * (MB_RESTORE_EXPIRE); M2 is 0 where N - D exceeded the files' M. */
MB_API int mb_restore_report(const char *from_dir, const char *bank_path,
                             const mb_options *opts, unsigned flags, char **report_json);

/* ---------------------------------------------------------------- journal */

/** Called by mb_journal_read() with each record as one JSON object:
 * {"seq":N,"timestamp":"...","op":"page.put",...}.  Valid only during the
 * call.  Return 0 to go on; anything else stops the read and is returned. */
typedef int (*mb_event_fn)(void *ctx, uint64_t seq, const char *event_json);

/** Read the journal from sequence number @p from_seq (0: the oldest kept).
 * @return 0, the callback's value, MB_ENOTFOUND when records from @p from_seq
 * are no longer kept (a snapshot removed their segment), or an MB_E* code. */
MB_API int mb_journal_read(mb_bank *bank, uint64_t from_seq, mb_event_fn fn, void *ctx);

/** The sequence number of the newest committed record (0: none). */
MB_API int mb_journal_last_seq(mb_bank *bank, uint64_t *seq);

/** Check every journal record of the bank at @p bank_path without opening
 * it.  @p report_json (may be NULL) receives {"clean":bool,"segments":N,
 * "records":N,"last_seq":N,"torn_tail":bool,"damage":{"segment":"...",
 * "offset":N,"seq":N,"reason":"..."}|null}.
 * The journal is also compared with the store's committed end (when the
 * store was written this boot; after another boot the next open rebuilds
 * it): records the store holds that the journal lacks (a segment cut
 * short) are damage, reported with the seqs missing.
 * @return 0 when clean (a torn tail at the very end is clean: it is cut on
 * the next open), MB_ECORRUPT when damaged, MB_ENOTBANK when @p bank_path
 * has no journal directory (no bank there), or another MB_E* code. */
MB_API int mb_journal_verify(const char *bank_path, char **report_json);

/** Cut a torn tail and move a segment damaged in the middle aside (renamed
 * *.damaged, never deleted), keeping every record before the damage.
 * It never throws away what the store holds: when the store (of this boot)
 * holds records past what the journal keeps, it first writes a checkpoint
 * of the whole store (checkpoint/<seq>/, as a snapshot does), then moves
 * every segment aside; the journal goes on after that seq.  Takes the open
 * lock and runs only while no process (this one included) has the bank open
 * (MB_EPERM otherwise, and nothing is changed).  When the damage lies before the
 * newest checkpoint's seq, that checkpoint (which holds every record up to
 * it) is kept as the start instead, the same way.  @p report_json as
 * mb_journal_verify(), with "action" saying exactly what was done.
 * A bank bound to a stream is refused (MB_EINVAL): its local journal is a
 * copy of the stream's; move the directory aside and open it with the
 * journal again (it starts from the cluster's checkpoint). */
MB_API int mb_journal_repair(const char *bank_path, char **report_json);

#ifdef __cplusplus
}
#endif
#endif /* MEMBANK_H */
