/*
 * bank.h - the handle, and the steps every operation shares.
 */
#ifndef MEMBANK_BANK_H
#define MEMBANK_BANK_H

#include <stdatomic.h>
#include <sys/types.h>

#include "journal.h"
#include "record.h"
#include "state.h"

/* membank.json "format": 2 since the store holds only msgpack values
 * (MB_STORE_FORMAT 2).  A bank of format 1 is opened and upgraded (its store
 * rebuilt, then membank.json rewritten); a library of format 1 refuses a
 * bank of format 2 (MB_EVERSION) instead of misreading its store. */
#define MB_FORMAT_VERSION 2
/* checkpoint.json "format": the four files and checkpoint.json. */
#define MB_CHECKPOINT_FORMAT 1
#define MB_IDENTITY_FILE "membank.json"
#define MB_LOCK_FILE "open.lock"
#define MB_CHECKPOINT_FILE "checkpoint.json"
#define MB_RESTORE_MARK "restore.pending"
/* open.lock holds one 32-bit word (host order) at offset 0: 0 while the
 * bank is at its path, this once a restore swapped it out.  Every handle
 * maps it; see bank_check(). */
#define MB_OPEN_LOCK_REPLACED 1u

struct mb_bank {
	char *path, *store_dir, *journal_dir;
	mb_options opts;
	uint32_t history_limit;   /* fixed when the bank was created */
	size_t max_json_bytes;    /* the bank's bound on JSON input (membank.json);
	                             opts.max_json_bytes, when set, is at most it */
	/* cache_settings of a store built without a checkpoint: membank.json
	 * "cache_settings" (0, 0 since banks record it), else the legacy
	 * MB_LEGACY_MAX_ENTRIES, MB_LEGACY_TTL_SECONDS */
	int64_t init_max_entries, init_ttl_seconds;
	unsigned file_mode, dir_mode;
	kv_env *kv;
	mbj_log *jn;
	pid_t pid;                /* the opener */
	unsigned fork_gen;        /* mb_fork_generation() at open: a child differs */
	atomic_bool fatal;        /* a sync failed: refuse everything */
	const uint32_t *replaced; /* open.lock's word, mapped (NULL: none) */
	char boot[40];            /* this boot's id */
	atomic_bool boot_pending; /* store/boot_id not yet written (full disk) */
	bool created_here;        /* this open wrote membank.json: a failed open
	                             removes what it made (uncreate) */
	const void *tag;          /* where messages go: NULL until opened */
	struct autockpt *auto_ck; /* the automatic checkpoint's state (autockpt.c) */
	/* write groups (group.c, write.c) */
	struct gq *gq;
	struct pass *pass;        /* the leader's scratch, used under its lock */
	struct cluster *cl;       /* the journal's stream (cluster.c); NULL: local */
};

/* MB_EFORKED, MB_EFATAL or MB_ERESTORED (with the message) when @b may not
 * be used.  No system call: reads call it on every operation. */
int bank_check(mb_bank *b);

/* Record this boot's id before the first write when the open could not
 * (a full disk); MB_ENOSPC or MB_EIO with the message when it still
 * cannot. */
int bank_boot_record(mb_bank *b);

/* Journal, apply and commit one record (through a write group, group.c);
 * in full durability, wait until it is durable.  A delete, a merge and a
 * batch are first checked against the state under the writer lock and may
 * be refused (MB_ENOTFOUND, MB_EINVAL) with nothing written. */
int bank_write(mb_bank *b, uint8_t type, const mb_buf *payload);

/* The handle's write queue (group.c) and its leader's scratch (write.c):
 * opened by mb_open, closed by mb_close. */
int bank_queue_open(mb_bank *b, bool alone);
void bank_queue_close(mb_bank *b);
/* Holding the leader lock (gq_lock): one pass over the queued writes. */
int bank_lead_pass(mb_bank *b);

/* A batch's check under the writer lock (batch.c): every delete finds its
 * page live at its point of the batch, and no page can grow past the
 * bound.  MB_ENOTFOUND or MB_EINVAL with the message naming the operation.
 * @payload was checked by rec_decode(). */
int bank_batch_precheck(mb_bank *b, kv_txn *t, const uint8_t *payload, size_t len);

/* A page id: 1..MB_MAX_ID_BYTES bytes of UTF-8, or MB_EINVAL. */
int bank_check_id(mb_bank *b, const char *id);

/* Prepare a mutation: check its input (MB_EINVAL with the message naming
 * what was wrong) and append its record's payload to @rec (record.h).
 * Nothing is locked or written. */
int bank_prep_page(mb_bank *b, const char *id, const char *json, size_t len, mb_buf *rec);
int bank_prep_delete(mb_bank *b, const char *id, mb_buf *rec);
int bank_prep_sync(mb_bank *b, const char *status, const char *error, mb_buf *rec);
int bank_prep_error_log(mb_bank *b, const char *type, const char *message, mb_buf *rec);
int bank_prep_error_resolve(mb_bank *b, const char *type, const char *steps, mb_buf *rec);
int bank_prep_config(mb_bank *b, const char *json, size_t len, mb_buf *rec);

/* The precheck of a merge: refuses (MB_EINVAL, with the message) a merge
 * that would make the page pack larger than MB_MAX_PAGE_PACKED. */
typedef struct merge_ck {
	mb_bank *b;
	const char *id;        /* not NUL-terminated */
	size_t idlen;
	const uint8_t *patch;  /* the merge's map, inside its record */
	size_t patch_len;
} merge_ck;
int bank_merge_fits(kv_txn *t, const merge_ck *m);

/* Begin a read transaction, or fail with a message. */
int bank_read_begin(mb_bank *b, kv_txn **t);

/* The committed journal end kept in the store: meta "jend" (state.c). */
int bank_jend_load(kv_txn *t, mbj_pos *pos);
int bank_jend_store(kv_txn *t, const mbj_pos *pos);

/* Apply the whole records the journal holds past *end (a writer died
 * between its append and its commit) and cut a torn tail; *end advances. */
int bank_roll_forward(mb_bank *b, kv_txn *t, mbj_pos *end);

/* Build the whole store anew from the checkpoint and the journal, inside
 * one write transaction. */
int bank_rebuild_store(mb_bank *b);

/* Was the store in @store_dir written by this boot (store/boot_id)?  Only
 * then is its committed end known to be true (it runs with MDB_NOSYNC). */
bool bank_store_this_boot(const char *store_dir);

/* The MB_E* code of an MBJ_E* code. */
int bank_journal_code(int jrc);

/* An MB_E* code for a journal code, with the journal's message. */
int bank_journal_fail(mb_bank *b, int jrc, const char *what);

/* Entries a bank directory holds before it has an identity, or while one
 * is being created or restored: the open lock, the restore mark, and the
 * temp files membank.json and the mark are written to before their rename
 * (their writer holds the open lock; found under it, they are a crashed
 * writer's and are removed). */
bool bank_creation_entry(const char *name);

/* MB_EPERM (the message starts with @what) when a process, this one
 * included, has the bank at @path open: LMDB holds a shared record lock on
 * store/lock.mdb in every process that has it open.  Call under the bank's
 * open lock, so that nobody opens it after the check. */
int bank_check_unused(const char *path, const char *what);

/* The max_json_bytes of the bank at @bank_path's membank.json; 0 when it
 * has none (or no readable identity).  A restore keeps it. */
size_t bank_stored_max_json(const char *bank_path);

/* Write membank.json of a bank being created (or joining its stream:
 * cluster.c, which adopts the stream's properties) from b->history_limit,
 * b->max_json_bytes and the journal URL; cache_settings 0. */
int bank_write_identity(mb_bank *b);

/* The journal URL (redacted) the bank at @bank_path's membank.json binds
 * it to, in @out: true for a bank on a stream, false for a local journal
 * (or no readable identity).  Restore and journal repair refuse such a
 * bank: they would rewrite the local journal's identity, which is a copy
 * of the stream's. */
bool bank_stored_journal(const char *bank_path, char *out, size_t cap);

/* Under the bank's open lock: finish what a restore killed midway left
 * (restore.pending names the aside directory, removed with the mark). */
int restore_recover(const char *path);

/* The automatic checkpoint (autockpt.c): called after a write that ended at
 * @end was acknowledged; checkpoints when due, never fails the write. */
int bank_auto_init(mb_bank *b);
void bank_auto_free(mb_bank *b);
void bank_auto_checkpoint(mb_bank *b, const mbj_pos *end);
/* {"runs":N,"failures":N,"last_error":".."|null} for mb_stats */
void bank_auto_stats(mb_bank *b, mb_buf *doc);
/* snapshot.c: a checkpoint, the caller holding the compactor lock */
int checkpoint_locked(mb_bank *b, mb_snapshot_info *info);

/* MIGRATION.  A directory of the original Python class: one or more of its
 * four files and nothing else but creation entries.  @other (may be NULL)
 * receives the first other entry of a directory that also holds original
 * files ("" otherwise), for a message that says what stops the migration. */
#define MB_ORIGINALS_DIR "original-memory-bank"
bool bank_is_original(const char *path, char *other, size_t cap);

/* What a restore or migration found (restore.c). */
typedef struct restore_report {
	uint64_t pages, expired;  /* pages loaded; of those, older than ttl */
	int64_t ttl_was;          /* the files' ttl_seconds */
	bool kept;                /* expired pages kept: ttl_seconds set to 0 */
	int64_t max_was;          /* the files' max_entries */
	bool unbounded;           /* more pages than max_entries: set to 0 */
	uint64_t dropped;         /* expired pages dropped (MB_RESTORE_EXPIRE) */
	bool no_config;           /* config_cache.json absent: a new bank's settings */
} restore_report;

/* Internal mb_restore() flag: the files are the target's own (migration). */
#define RESTORE_MIGRATE 0x100u

/* Under the open lock of @path (fd @old_lock), which bank_is_original():
 * build a bank from its files aside, keep them in it under
 * MB_ORIGINALS_DIR/ (hard links, made before the swap) and swap it in.
 * Expired pages are kept with ttl_seconds set to 0 (MB_ORIGINALS_DIR/
 * migration.json says so).  A crash at any point leaves the original
 * files as they were, and the next open migrates again. */
int restore_migrate(const char *path, const mb_options *opts, int old_lock);

/* Files: create/replace @name in directory @dir atomically (temp file with
 * O_EXCL|O_NOFOLLOW, write, fsync, rename, fsync the directory). */
int mb_write_file_atomic(const char *dir, const char *name, const void *data,
                         size_t len, unsigned mode, const void *tag);

#endif /* MEMBANK_BANK_H */
