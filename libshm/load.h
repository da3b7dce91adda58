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

#define MB_MAX_DOC_FILE ((size_t)256 << 20)    /* the three small files */
#define MB_MAX_PAGES_FILE ((uint64_t)16 << 30) /* notion_pages.json */

struct cJSON;

/* The three small documents, parsed and checked for shape.  The config is
 * msgpack (jsonmp.c), so its numbers keep their type (timeout_seconds). */
typedef struct load_docs {
	struct cJSON *sync, *errors;
	mb_buf config;
	size_t sync_history, error_history;  /* entries in each */
} load_docs;

int load_docs_read(const char *dir, const void *tag, load_docs *d);
void load_docs_free(load_docs *d);

/* Load everything in @dir into the empty store of *@t.  Keeps the newest
 * @history_limit entries of each history.  With @batch (the environment of
 * a bank built aside) pages are committed in batches and *@t changes; it is
 * NULL after a failed intermediate commit. */
int load_all(kv_txn **t, kv_env *batch, const char *dir, const load_docs *d,
             uint32_t history_limit, size_t max_json, const void *tag);

#endif /* MEMBANK_LOAD_H */
