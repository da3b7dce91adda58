/*
 * record.h - mutation records: the one shape every change takes.
 *
 * A mutation is turned into a record before anything is written: a type, a
 * timestamp (given when it is journaled, under the writer lock) and a
 * msgpack payload.  The journal stores it; apply() applies it to the store.
 * Replaying the same records in the same order gives the same store, so a
 * record carries everything apply() needs (its time included).
 *
 * Payloads (msgpack arrays):
 *   REC_PAGE_PUT      [id: str, properties: map]
 *   REC_PAGE_MERGE    [id: str, properties: map]  (nil value: remove key)
 *   REC_PAGE_DELETE   [id: str]
 *   REC_SYNC          [status: str, error: str | nil]
 *   REC_ERROR_LOG     [type: str, message: str]
 *   REC_ERROR_RESOLVE [type: str, steps: str]
 *   REC_CONFIG        [patch: map]   (already validated, see config.c)
 *   REC_PURGE         [cutoff_us: int]  (drop pages updated before it)
 *   REC_CANCELLED     the payload of the record it was (any array): its
 *                     commit failed, the call reported the failure, and
 *                     it applies as nothing (see write.c); on a stream,
 *                     also a turn record ["turn", nonce: uint64], which
 *                     applies as nothing too (see cluster.c, TURNS)
 *   REC_BATCH         [[type: uint, payload], ...]: 1..MB_MAX_BATCH_OPS
 *                     operations of the types above (PAGE_PUT to CONFIG),
 *                     applied in order in one transaction, all or none
 *                     (see batch.c)
 *   REC_GROUP         [[type: uint, ts_us: int, payload, nonce: int,
 *                     ticket: int], ...]: 1..MBJ_MAX_GROUP records of the
 *                     types PAGE_PUT to PURGE and BATCH, each with its own
 *                     time and its payload inline (one msgpack value, as
 *                     its own record's), applied in order as if each were
 *                     a record of its own.  A write group of a bank whose
 *                     journal is a stream is published as one such message
 *                     (cluster.c); nonce (0..2^63-1, per machine and boot:
 *                     group.c) and ticket (the write's queue ticket) tag
 *                     each member, so that a machine can tell which of its
 *                     writes a record holds after a leader died or a
 *                     publish timed out.
 *
 * Properties and config maps nest at most MB_MAX_DEPTH deep themselves; the
 * containers around them (payload array, batch element, batch array) do not
 * count against that bound, so BATCH_WRAPPERS extra levels are allowed in
 * a whole payload.
 */
#ifndef MEMBANK_RECORD_H
#define MEMBANK_RECORD_H

#include "internal.h"

enum rec_type {
	REC_PAGE_PUT = 1,
	REC_PAGE_MERGE = 2,
	REC_PAGE_DELETE = 3,
	REC_SYNC = 4,
	REC_ERROR_LOG = 5,
	REC_ERROR_RESOLVE = 6,
	REC_CONFIG = 7,
	REC_PURGE = 8,
	REC_CANCELLED = 9,  /* a record whose commit failed: applies as nothing */
	REC_BATCH = 10,
	REC_GROUP = 11,
	REC_MAX = 11
};

#define REC_WRAPPERS 3  /* batch array, element, payload array */

typedef struct mb_rec {
	uint8_t type;
	int64_t ts;
	const char *a;        /* id, status or error type */
	uint32_t alen;
	const char *b;        /* error, message or steps; NULL when nil */
	uint32_t blen;
	const uint8_t *map;   /* properties or config patch */
	size_t maplen;
	int64_t num;          /* purge cutoff; batch: operation count */
} mb_rec;

/* Encoders append the payload to @out.  A page's payload is [id, properties]:
 * rec_encode_page_head() writes all but the properties map, which the caller
 * appends (transcoded straight into @out: no copy). */
int rec_encode_page_head(mb_buf *out, const char *id, size_t idlen);
int rec_encode_id(mb_buf *out, const char *id, size_t idlen);
int rec_encode_strs(mb_buf *out, const char *a, const char *b /* NULL: nil */);
int rec_encode_map(mb_buf *out, const mb_buf *map);
int rec_encode_int(mb_buf *out, int64_t v);

/* Check and split a payload read back (never trusted: it may come from a
 * damaged or hostile file).  MB_ECORRUPT when it is not of its type's shape. */
int rec_decode(uint8_t type, int64_t ts, const void *payload, size_t len, mb_rec *out);
/* rec_decode() of a payload this process encoded itself (gq_member.own):
 * its shape and bounds are read, its values not checked again (a walk of
 * checked bytes, mp_reader.checked). */
int rec_decode_own(uint8_t type, int64_t ts, const void *payload, size_t len, mb_rec *out);

/* The next operation of a batch, from a reader placed after the batch's
 * array header (rec_decode of a REC_BATCH checked them all). */
int rec_batch_next(mp_reader *r, int64_t ts, mb_rec *op);

/* The next member of a group (rec_decode of a REC_GROUP checked them all),
 * from a reader placed after the group's array header: *op decoded, *raw
 * and *rawlen its payload, *nonce and *ticket its tag. */
int rec_group_next(mp_reader *r, mb_rec *op, const uint8_t **raw, size_t *rawlen,
                   int64_t *nonce, int64_t *ticket);

/* Append a member to a REC_GROUP payload being built (the array header is
 * the caller's: rec_group_header). */
int rec_group_header(mb_buf *out, uint32_t n);
int rec_group_member(mb_buf *out, uint8_t type, int64_t ts, const void *payload, size_t len,
                     int64_t nonce, int64_t ticket);

/* One journal event as a JSON object, for `membank journal tail`. */
int rec_event_json(uint64_t seq, const mb_rec *r, mb_buf *out);

#endif /* MEMBANK_RECORD_H */
