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

#define MB_FORMAT_VERSION 1
#define MB_IDENTITY_FILE "membank.json"
#define MB_LOCK_FILE "open.lock"
#define MB_CHECKPOINT_FILE "checkpoint.json"

struct mb_bank {
	char *path, *store_dir, *journal_dir;
	mb_options opts;
	uint32_t history_limit;   /* fixed when the bank was created */
	unsigned file_mode, dir_mode;
	kv_env *kv;
	mbj_log *jn;
	pid_t pid;                /* the opener */
	unsigned fork_gen;        /* mb_fork_generation() at open: a child differs */
	atomic_bool fatal;        /* a sync failed: refuse everything */
	const void *tag;          /* where messages go: NULL until opened */
	struct autockpt *auto_ck; /* the automatic checkpoint's state (autockpt.c) */
};

/* MB_EFORKED or MB_EFATAL (with the message) when @b may not be used. */
int bank_check(mb_bank *b);

/* Journal, apply and commit one record; in full durability, wait until it
 * is durable.  @precheck (may be NULL) runs under the writer lock before
 * anything is written and may refuse with an MB_E* code. */
typedef int (*bank_precheck_fn)(kv_txn *t, void *ctx);
int bank_write(mb_bank *b, uint8_t type, const mb_buf *payload,
               bank_precheck_fn precheck, void *ctx);

/* A page id: 1..MB_MAX_ID_BYTES bytes of UTF-8, or MB_EINVAL. */
int bank_check_id(mb_bank *b, const char *id);

/* Begin a read transaction, or fail with a message. */
int bank_read_begin(mb_bank *b, kv_txn **t);

/* The committed journal end kept in the store. */
int bank_jend_load(kv_txn *t, mbj_pos *pos);
int bank_jend_store(kv_txn *t, const mbj_pos *pos);

/* Apply the whole records the journal holds past *end (a writer died
 * between its append and its commit) and cut a torn tail; *end advances. */
int bank_roll_forward(mb_bank *b, kv_txn *t, mbj_pos *end);

/* Build the whole store anew from the checkpoint and the journal, inside
 * one write transaction. */
int bank_rebuild_store(mb_bank *b);

/* The MB_E* code of an MBJ_E* code. */
int bank_journal_code(int jrc);

/* An MB_E* code for a journal code, with the journal's message. */
int bank_journal_fail(mb_bank *b, int jrc, const char *what);

/* The automatic checkpoint (autockpt.c): called after a write that ended at
 * @end was acknowledged; checkpoints when due, never fails the write. */
int bank_auto_init(mb_bank *b);
void bank_auto_free(mb_bank *b);
void bank_auto_checkpoint(mb_bank *b, const mbj_pos *end);
/* {"runs":N,"failures":N,"last_error":".."|null} for mb_stats */
void bank_auto_stats(mb_bank *b, mb_buf *doc);
/* snapshot.c: a checkpoint, the caller holding the compactor lock */
int checkpoint_locked(mb_bank *b, mb_snapshot_info *info);

/* Files: create/replace @name in directory @dir atomically (temp file with
 * O_EXCL|O_NOFOLLOW, write, fsync, rename, fsync the directory). */
int mb_write_file_atomic(const char *dir, const char *name, const void *data,
                         size_t len, unsigned mode, const void *tag);

#endif /* MEMBANK_BANK_H */
