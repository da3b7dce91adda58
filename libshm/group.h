/*
 * group.h - write groups: the queue through which the writes of every
 * process of a bank reach one leader (group.c has the protocol).
 */
#ifndef MEMBANK_GROUP_H
#define MEMBANK_GROUP_H

#include <stdbool.h>
#include <stdint.h>

#include "journal.h"

typedef struct mb_bank mb_bank;
typedef struct gq gq;

/* A record larger than this skips the queue: its writer leads a group
 * that holds it (the queue's slots are fixed-size). */
#define GQ_PAYLOAD_BYTES (16384u - 640u)
#define GQ_MSG_BYTES 512u
#define GQ_SLOTS 64u
/* a pass's members: every slot, and the leader's own record */
#define GQ_MAX_MEMBERS (GQ_SLOTS + 1u)

/* One member of a group: a queued slot's record, or the leader's own
 * record that skipped the queue.  A leader fills in the result. */
typedef struct gq_member {
	int slot;              /* -1: the leader's own record */
	uint64_t ticket;       /* queue order */
	uint8_t type;
	const uint8_t *payload;
	uint32_t len;
	/* A bank on a stream (cluster.c): the seq at which this write may
	 * already be, from a publish whose outcome is unknown (its leader died,
	 * or it timed out), decided by the tag in the record there (0: none) */
	uint64_t pending;
	bool landed;           /* decided: the stream holds it (rc 0, end.seq) */
	/* @payload is this process's own memory, where the write encoded it
	 * (from checked text, json.c; fuzz-json asserts the result passes the
	 * full check): read for its shape only, without checking every value
	 * again (rec_decode_own).  Bytes from a slot, which other processes
	 * can write, are checked whole. */
	bool own;
	/* the result */
	int rc;
	mbj_pos end;           /* the record's end (rc 0) */
	char msg[GQ_MSG_BYTES];
} gq_member;

/* Map the bank's queue (store/group.shm), creating or reinitialising it on
 * a new boot.  MB_E* with the message on failure. */
int gq_open(mb_bank *b, bool alone, gq **out);
void gq_close(gq *q);

/* The slot this handle's thread may use: true with it held (the caller
 * copies its record in with gq_submit), false when there is none to use now
 * (another thread of the handle has it, or every slot is owned: the caller
 * leads with its record instead).  A slot a dead owner left unfinished is
 * settled first through @settle (a leader's pass). */
bool gq_slot_acquire(gq *q, void (*settle)(mb_bank *b), mb_bank *b);
void gq_slot_release(gq *q);
/* The index of the slot this handle owns, or -1. */
int gq_slot_index(const gq *q);

/* Whether the held slot's result is there. */
bool gq_done(const gq *q);
/* Give up the held slot without its result (its outcome undecided): the
 * next owner to claim it settles it first. */
void gq_abandon(gq *q);

/* Queue the held slot's record; then wait with gq_wait. */
void gq_submit(gq *q, uint8_t type, const void *payload, uint32_t len);

/* Until the held slot's result is there: 1 with *out filled (rc, end,
 * msg), or 0 when the caller is now the leader (it holds the leader lock:
 * it leads a pass, calls gq_unlock, and waits again). */
int gq_wait(gq *q, gq_member *out);

/* The leader lock, taken without waiting by gq_wait, or with waiting by a
 * writer without a slot.  *recover: its last holder died holding it. */
void gq_lock(gq *q, bool *recover);
void gq_unlock(gq *q);

/* Under the leader lock, after rolling the journal forward to @end_seq:
 * finish what a dead leader left (a slot it took is done when its record
 * is in the journal, seq <= @end_seq, else queued again), then take every
 * queued slot (at most @max) into @m in queue order.  Returns the count.
 * @queued_only: the journal's end is not known; a dead leader's slots are
 * left as they are (only a pass that knows the end may decide them). */
size_t gq_collect(gq *q, uint64_t end_seq, bool queued_only, gq_member *m, size_t max);
/* The same for a bank on a stream, where a seq at or below the end is not
 * proof: a dead leader's slot is taken again with its marked seq as the
 * member's `pending`, for the pass to decide by its tag (write.c). */
size_t gq_collect_pending(gq *q, gq_member *m, size_t max);

/* This machine's tag of its writes for this boot (group.shm): random,
 * 0..2^63-1; with a ticket it names one write among every machine's. */
uint64_t gq_nonce(const gq *q);
/* A ticket no write of this boot has had. */
uint64_t gq_new_ticket(gq *q);

/* Before the append: member @m's record will be @seq (group.c, DEATHS). */
void gq_mark(gq *q, const gq_member *m, uint64_t seq);

/* Publish a member's result to its slot's owner. */
void gq_finish(gq *q, const gq_member *m);

/* Where group.shm keeps `claimed` (group.c, STATE): tests play a handle of
 * the release before, which never raises it. */
#define GQ_CLAIMED_OFFSET 124u

/* Slots queued now (tests). */
size_t gq_queued(const gq *q);

/* Under the leader lock: a pass appended @n records.  gq_stats: what the
 * leaders of this machine appended since its boot, for mb_metrics. */
#define GQ_TYPES 16u
typedef struct gq_figures {
	uint64_t passes, records;
	uint64_t by_type[GQ_TYPES];   /* index: record type (record.h) */
} gq_figures;
void gq_count(gq *q, const mbj_entry *e, size_t n);
void gq_stats(const gq *q, gq_figures *f);

#endif /* MEMBANK_GROUP_H */
