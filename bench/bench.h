/*
 * bench.h - the bench driver and the systems it drives.
 *
 * One driver (driver.c) runs cells: a workload at a durability level with P
 * worker processes started together.  A system (membank, raw LMDB, SQLite,
 * Redis, the write+fdatasync limit, a spawned command) is a table of
 * functions; each bench-<system> executable is the driver plus one system.
 *
 * Every system writes and reads the same bytes: the value variants built by
 * payload.c (about 200 bytes of JSON properties, and the same properties as
 * a msgpack map for the peers that store msgpack).
 */
#ifndef MEMBANK_BENCH_H
#define MEMBANK_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_VARIANTS 64u        /* distinct property values, chosen round-robin */
#define BENCH_KEY_MAX 32u

typedef enum bench_op {
	OP_UPSERT = 1,   /* W1: replace a page's properties */
	OP_GET = 2,      /* W2: a page's properties as JSON text */
	OP_EVENT = 3,    /* W3: a sync record (even n) or an error log (odd n) */
	OP_SPAWN = 4,    /* W5: one short-lived process doing one put */
	OP_BATCH = 5,    /* W7: BENCH_BATCH upserts as one batch (membank only) */
} bench_op;

#define BENCH_BATCH 100u  /* pages of one W7 operation; ops/s counts pages */

typedef struct bench_cfg {
	const char *dir;        /* this system's data directory (exists) */
	const char *sock;       /* redis unix socket, or NULL */
	uint32_t keys;          /* pages prefilled: keys 0 .. keys-1 */
	bool full;              /* durability: full (power loss) vs fast */
	bool shared_file;       /* fsync limit: one O_APPEND file for all workers */
	char **spawn_argv;      /* W5 template: {key} and {json} are replaced */
	int worker;             /* index of this worker, 0 .. P-1 */
	long max_entries;       /* membank cache_settings.max_entries (0: no bound) */
} bench_cfg;

typedef struct bench_sys {
	const char *name;
	/* Parent, once, before any cell: create and fill keys pages.  Must
	 * leave nothing open that a forked child could misuse. */
	int (*prefill)(const bench_cfg *cfg);
	/* Worker, after fork, before the barrier. */
	int (*open)(const bench_cfg *cfg, void **h);
	/* One operation: @key is a page index, @n this worker's op counter. */
	int (*op)(void *h, const bench_cfg *cfg, bench_op op, uint32_t key, uint64_t n);
	void (*close)(void *h);
	/* Parent, after each cell (may be NULL): drop what the cell left that
	 * would distort the next one (e.g. a log grown by a fast cell). */
	void (*reset)(const bench_cfg *cfg);
	/* Parent, before and after a durable cell (may be NULL): records
	 * written and fdatasyncs made so far, for records per fdatasync. */
	int (*sync_counts)(const bench_cfg *cfg, uint64_t *records, uint64_t *syncs);
} bench_sys;

/* Defined by each system file; the executable links exactly one. */
extern const bench_sys bench_system;

/* payload.c: the shared value bytes. */
typedef struct bench_value {
	const char *json;          /* NUL-terminated properties object */
	size_t json_len;
	const uint8_t *mp;         /* the same properties, msgpack map */
	size_t mp_len;
} bench_value;

int bench_values_init(void);
const bench_value *bench_value_get(uint64_t n);
/* "page-0000123" into @buf (BENCH_KEY_MAX); returns the length. */
size_t bench_key(char *buf, uint32_t key);
/* The error-log message of event @n, and its type. */
const char *bench_error_message(void);
const char *bench_error_type(void);
/* Now as RFC 3339 with microseconds into @buf (>= 32 bytes). */
size_t bench_timestamp(char *buf, int64_t us);
int64_t bench_now_us(void);

/* A growable byte buffer for JSON output. */
typedef struct bench_buf {
	char *p;
	size_t len, cap;
} bench_buf;

int bench_buf_put(bench_buf *b, const void *s, size_t n);
/* Append msgpack @mp (a value written by us: checked only for bounds) as
 * JSON text.  Returns 0, or -1 when the bytes are not well formed. */
int bench_mp_to_json(bench_buf *b, const uint8_t *mp, size_t len);

#endif /* MEMBANK_BENCH_H */
