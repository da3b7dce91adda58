/*
 * fuzz_record.c - libFuzzer target: hostile bytes as a journal record payload.
 *
 * Input: byte 0 is the record type (taken modulo 16, so that types outside
 * 1..REC_MAX are tried too), bytes 1.. the msgpack payload, exactly as
 * mbj_iter_next() would hand them to rec_decode().  Then, and these must
 * hold (abort otherwise):
 *  - mp_check() on the payload, and mp_to_json() of it, never read past it;
 *    they agree (but for invalid UTF-8, which only mp_to_json refuses),
 *    and text mp_to_json() gives is JSON cJSON parses;
 *  - a payload rec_decode() accepts gives an event (rec_event_json, what
 *    `membank journal tail` prints) that cJSON parses, or MB_ECORRUPT for
 *    invalid UTF-8 inside its properties;
 *  - a walk of it as checked bytes (mp_reader.checked) ends where mp_skip's
 *    full check ends, when that accepts it, and never past it;
 *  - apply_record() of it to a scratch store (a write transaction that is
 *    aborted) returns 0 or an MB_E* code, never crashes.
 * The scratch LMDB environment lives in a tmpfs directory when there is
 * one, opened once per process.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "record.h"

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

	snprintf(dir, sizeof dir, "%s/fuzz-record-XXXXXX",
	         access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(dir) || kv_open(dir, 0600, (size_t)64 << 20, &env, err, sizeof err)) {
		fprintf(stderr, "fuzz_record: scratch store: %s\n", err);
		abort();
	}
	atexit(cleanup);
}

/* Text produced for JSON output must be JSON. */
static void must_parse(const mb_buf *b)
{
	cJSON *j = cJSON_ParseWithLength(b->data, b->len);

	if (!j) {
		fprintf(stderr, "not JSON: %.*s\n", (int)b->len, b->data);
		abort();
	}
	cJSON_Delete(j);
}

static void check_payload(const uint8_t *p, size_t n)
{
	mp_reader r = { p, p + n, false };
	mb_buf out = { 0 };
	bool valid = mp_check(p, n) == 0;
	int rc = mp_to_json(&r, &out, 0);

	if (r.p > p + n)
		abort();
	/* mp_check does not look inside strings; mp_to_json also refuses
	 * invalid UTF-8 (MB_ECORRUPT), and otherwise they must agree */
	if (valid && rc && rc != MB_ECORRUPT)
		abort();
	if (!rc && !valid && r.p == p + n)
		abort();
	if (!rc)
		must_parse(&out);
	buf_free(&out);
	/* a walk over checked bytes (mp_reader.checked) ends where the full
	 * check ends, and never past the bytes whatever they are */
	mp_reader full = { p, p + n, false }, fast = { p, p + n, true };
	int frc = mp_skip(&full, 0), crc = mp_skip(&fast, 0);
	if (fast.p > p + n || (!frc && (crc || fast.p != full.p)))
		abort();
}

static void apply_scratch(const mb_rec *rec)
{
	kv_txn *t;
	int rc;

	if (kv_begin(env, true, &t))
		abort();
	rc = apply_record(t, 5, rec);
	if (rc > 0 || (rc < MB_EINTERNAL && rc != KV_EMAPFULL))
		abort();
	kv_abort(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mb_rec rec;
	mb_buf ev = { 0 };
	uint8_t *copy;

	if (size < 1)
		return 0;
	if (!env)
		open_scratch();
	/* an exact-size heap copy, so that ASan sees any read past the end */
	copy = malloc(size - 1 ? size - 1 : 1);
	memcpy(copy, data + 1, size - 1);
	check_payload(copy, size - 1);
	if (rec_decode(data[0] & 15, 1700000000000000, copy, size - 1, &rec) == 0) {
		/* MB_ECORRUPT: invalid UTF-8 inside the properties, which
		 * rec_decode() does not look at */
		int rc = rec_event_json(7, &rec, &ev);
		if (rc && rc != MB_ECORRUPT)
			abort();
		if (!rc)
			must_parse(&ev);
		buf_free(&ev);
		apply_scratch(&rec);
	}
	free(copy);
	return 0;
}
