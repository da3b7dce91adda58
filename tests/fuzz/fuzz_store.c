/*
 * fuzz_store.c - libFuzzer target: hostile bytes as a value in the store.
 *
 * The store is a cache other programs could write to (or a disk could
 * damage): every value read back must be its documented shape or
 * MB_ECORRUPT, never a crash or a read past it.  Input: byte 0 picks the
 * record (taken modulo the number of kinds), bytes 1.. are its value, put
 * into a scratch store (a write transaction that is aborted) where the
 * library reads it; the decoders that take a value are also given an
 * exact-size heap copy, so that ASan sees a read past its end (inside the
 * map, the bytes after a value are LMDB's):
 *   page      pages "p": st_page_split, doc_page (get, iterate, snapshot),
 *             apply_merged_len (merge)
 *   jend, sync, errors, pages, clock, removed, config, format: their loads
 *   errtype   errtypes "T": st_errtype_load, st_errtypes_trim
 *   hist      synchist 0: st_hist_decode
 * Each returns 0 or an MB_E* code (abort otherwise).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "bank.h"
#include "docs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static kv_env *env;
static char dir[96];

static void cleanup(void)
{
	char p[160];

	kv_close(env);
	snprintf(p, sizeof p, "%s/data.mdb", dir);
	unlink(p);
	snprintf(p, sizeof p, "%s/lock.mdb", dir);
	unlink(p);
	rmdir(dir);
}

static void open_scratch(void)
{
	char err[256];

	snprintf(dir, sizeof dir, "%s/fuzz-store-XXXXXX",
	         access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(dir) || kv_open(dir, 0600, (size_t)64 << 20, &env, err, sizeof err)) {
		fprintf(stderr, "fuzz_store: scratch store: %s\n", err);
		abort();
	}
	atexit(cleanup);
}

static void ok(int rc)
{
	if (rc > 0 || rc < MB_EINTERNAL)
		abort();
}

static void read_page(kv_val v)
{
	static const uint8_t patch[] = { 0x81, 0xa1, 'k', 0xc0 };  /* {"k": nil} */
	const uint8_t *props;
	mb_buf doc = { 0 };
	int64_t updated;
	size_t plen, len;

	if (!st_page_split(v, &updated, &props, &plen)) {
		/* the slice lies inside the value */
		if (props < (const uint8_t *)v.data ||
		    props + plen != (const uint8_t *)v.data + v.len)
			abort();
		ok(apply_merged_len(props, plen, patch, sizeof patch, &len));
		ok(doc_page(v, &doc));
		buf_free(&doc);
	}
}

enum { K_PAGE, K_JEND, K_SYNC, K_ERRORS, K_PAGES, K_CLOCK, K_REMOVED, K_CONFIG, K_FORMAT,
       K_TURN, K_ERRTYPE, K_HIST, K_N };
static const char *const meta_key[K_N] = {
	[K_JEND] = "jend", [K_SYNC] = "sync", [K_ERRORS] = "errors", [K_PAGES] = "pages",
	[K_CLOCK] = "clock", [K_REMOVED] = "removed", [K_CONFIG] = "config",
	[K_FORMAT] = "format", [K_TURN] = "turn",
};

static void read_back(kv_txn *t, int kind, kv_val heap)
{
	mbj_pos end;
	st_sync sync;
	st_errors errs;
	st_removed rm;
	st_errtype et;
	mb_config cfg;
	int64_t ts;
	uint64_t dropped = 0, tseq, tnonce;
	const char *a, *c;
	uint32_t alen, clen;
	kv_val v;

	switch (kind) {
	case K_PAGE:
		if (kv_get(t, KV_PAGES, (kv_val){ "p", 1 }, &v))
			abort();
		read_page(v);
		read_page(heap);
		break;
	case K_JEND: ok(bank_jend_load(t, &end)); ok(st_jend_load_v1(t, &end)); break;
	case K_SYNC: ok(st_sync_load(t, &sync)); break;
	case K_ERRORS: ok(st_errors_load(t, &errs)); break;
	case K_PAGES: ok(st_pages_load(t, &ts)); break;
	case K_CLOCK: ok(st_clock_load(t, &ts)); break;
	case K_REMOVED: ok(st_removed_load(t, &rm)); break;
	case K_CONFIG: ok(st_config_load(t, &cfg)); break;
	case K_FORMAT: ok(st_format_load(t, &ts)); break;
	case K_TURN: ok(st_turn_load(t, &tseq, &tnonce)); break;
	case K_ERRTYPE:
		ok(st_errtype_load(t, "T", 1, &et));
		ok(st_errtype_decode(heap, &et));
		ok(st_errtypes_trim(t, 1, &dropped));
		break;
	case K_HIST:
		if (!st_hist_decode(heap, &ts, &a, &alen, &c, &clen) &&
		    (a < (const char *)heap.data || a + alen > (const char *)heap.data + heap.len ||
		     (c && c + clen > (const char *)heap.data + heap.len)))
			abort();
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kv_txn *t;
	uint8_t *copy;
	int kind, db;
	const char *key;
	size_t klen;

	if (size < 1)
		return 0;
	if (!env)
		open_scratch();
	kind = data[0] % K_N;
	db = kind == K_PAGE ? KV_PAGES : kind == K_ERRTYPE ? KV_ERRTYPES :
	     kind == K_HIST ? KV_SYNCHIST : KV_META;
	key = kind == K_PAGE ? "p" : kind == K_ERRTYPE ? "T" : kind == K_HIST ?
	      "\0\0\0\0\0\0\0\0" : meta_key[kind];
	klen = kind == K_HIST ? 8 : strlen(key);
	/* an exact-size heap copy (LMDB copies the value into its own page) */
	copy = malloc(size - 1 ? size - 1 : 1);
	memcpy(copy, data + 1, size - 1);
	if (kv_begin(env, true, &t))
		abort();
	if (!kv_put(t, db, (kv_val){ key, klen }, (kv_val){ copy, size - 1 }))
		read_back(t, kind, (kv_val){ copy, size - 1 });
	kv_abort(t);
	free(copy);
	return 0;
}
