/*
 * kv.h - the store's view of its key-value engine.
 *
 * Only kv_lmdb.c includes <lmdb.h>; every MDB_* code is translated there, in
 * one function.  Values handed out point into the map and stay valid until
 * the transaction ends.
 */
#ifndef MEMBANK_KV_H
#define MEMBANK_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The named databases of a bank (see the layout in apply.c). */
enum kv_db {
	KV_PAGES,     /* id -> be64 updated_us, msgpack properties */
	KV_PTIME,     /* be64 updated_us, id -> "" : the time index */
	KV_META,      /* short name -> msgpack state record */
	KV_ERRTYPES,  /* error type -> msgpack [count, resolved, steps, ts] */
	KV_SYNCHIST,  /* be64 n -> msgpack [ts, status, error] */
	KV_ERRHIST,   /* be64 n -> msgpack [ts, type, message] */
	KV_NDB
};

/* Returned by kv_put() and kv_commit() when the map is full: the caller
 * aborts, calls kv_grow() and runs the transaction again. */
#define KV_EMAPFULL (-1000)

/* Returned by kv_open() when the store's files are not a usable LMDB
 * environment (meta pages that are not LMDB's, data.mdb cut short).  The
 * store is a cache: the caller moves it aside with kv_set_aside() and
 * builds a new one from the checkpoint and the journal.  (A store of a
 * newer LMDB format is MB_EVERSION: not damage, never moved.) */
#define KV_EINVALID (-1001)

typedef struct kv_env kv_env;
typedef struct kv_txn kv_txn;
typedef struct kv_cursor kv_cursor;

typedef struct kv_val {
	const void *data;
	size_t len;
} kv_val;

typedef struct kv_info {
	uint64_t map_size, map_used, last_txn;
	uint64_t oldest_reader;  /* txn id the oldest live reader sees; 0: none */
	unsigned readers, max_readers;
	unsigned stale_readers;  /* slots of processes that are gone */
	bool writemap;           /* this process writes the map in place (kv_lmdb.c) */
	uint64_t entries[KV_NDB];
} kv_info;

/* Open the environment in directory @dir, or share the one this process has
 * open there already (LMDB forbids two in one process).  @err receives a
 * message on failure. */
int kv_open(const char *dir, unsigned mode, size_t map_size, kv_env **out,
            char *err, size_t errlen);
void kv_close(kv_env *e);
/* Rename the store directory @dir to "<dir>.invalid-<RFC 3339 time>" (never
 * deleted: it may be evidence).  MB_ECORRUPT when another process has it
 * open (it would go on using the renamed one).  The caller holds the
 * bank's open lock, so no thread of this process opens it meanwhile. */
int kv_set_aside(const char *dir, char *err, size_t errlen);
/* Has this process the environment in @dir open? */
bool kv_open_here(const char *dir);
/* Has any process the environment in @dir open (this one included)?  Run it
 * only when this process has none open there, or it answers true without
 * looking (a probe would drop this process's record locks on lock.mdb).
 * When in doubt (a lock file that cannot be opened) it answers true. */
bool kv_in_use(const char *dir);
/* Clear reader slots of dead processes; *cleared may be NULL. */
int kv_reader_check(kv_env *e, int *cleared);
int kv_grow(kv_env *e);
int kv_info_get(kv_env *e, kv_info *info);

int kv_begin(kv_env *e, bool write, kv_txn **out);
/* KV_TXN_SCRATCH bytes (8-aligned) that live as long as the transaction,
 * zeroed whenever a database is dropped in it: the layer above caches there
 * what it read and keeps it equal to what it writes (state.c: the store's
 * head).  CARRY: a write transaction begins with the scratch of this
 * process's last write transaction, as it committed, when no commit of any
 * process came between (LMDB numbers write transactions: its id is that
 * one's + 1); else, and for reads, zeroed.  So a value cached there is read
 * once per writer, not once per transaction, while the writer keeps the
 * store to itself. */
#define KV_TXN_SCRATCH 64
void *kv_txn_scratch(kv_txn *t);
int kv_commit(kv_txn *t);
void kv_abort(kv_txn *t);
/* End a write: commit when @rc is 0, else abort and return @rc. */
int kv_end(kv_txn *t, int rc);

int kv_get(kv_txn *t, int db, kv_val key, kv_val *val); /* MB_ENOTFOUND */
int kv_put(kv_txn *t, int db, kv_val key, kv_val val);
/* Put a key that is not in @db yet: MB_EEXIST when it is (nothing
 * changed).  With @append the caller expects @key to sort after every key
 * in @db (a file written in key order): it then goes to the last leaf
 * without a search, and the leaves it fills are full rather than split in
 * half.  A key that does not sort last is put the ordinary way.
 * *@appended (may be NULL) tells which way it went. */
int kv_put_new(kv_txn *t, int db, kv_val key, kv_val val, bool append, bool *appended);
int kv_del(kv_txn *t, int db, kv_val key);               /* MB_ENOTFOUND */
int kv_count(kv_txn *t, int db, uint64_t *n);
int kv_drop(kv_txn *t, int db);                          /* empty it */

int kv_cursor_open(kv_txn *t, int db, kv_cursor **out);
/* Position at the first key >= @key (NULL: the first key).  MB_ENOTFOUND
 * past the end. */
int kv_cursor_seek(kv_cursor *c, const kv_val *key, kv_val *k, kv_val *v);
int kv_cursor_next(kv_cursor *c, kv_val *k, kv_val *v);
int kv_cursor_last(kv_cursor *c, kv_val *k, kv_val *v);
int kv_cursor_prev(kv_cursor *c, kv_val *k, kv_val *v);
int kv_cursor_del(kv_cursor *c);
void kv_cursor_close(kv_cursor *c);

/* Tests only: make the next @n commits fail with MB_ENOSPC. */
void kv_test_fail_commits(int n);

#endif /* MEMBANK_KV_H */
