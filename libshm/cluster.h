/*
 * cluster.h - a bank whose journal is a NATS JetStream stream (cluster.c).
 *
 * The stream is the truth; each machine's local journal is a mirror of it
 * (local seq == stream seq, no gaps), so that roll forward, checkpoints,
 * replay and verify keep working on the local journal unchanged.  Only
 * cluster.c calls mbs_* (journal/stream.h); write.c calls it to publish a
 * pass and to catch up.
 *
 * LOCKS, in this order: the write queue's leader lock (group.c), LMDB's
 * writer lock (a write transaction), the handle's connection mutex.
 */
#ifndef MEMBANK_CLUSTER_H
#define MEMBANK_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "bank.h"

/* Internal result of a pass that must run again after a catch-up: the
 * stream moved on (wrong last sequence) or a publish's outcome is unknown
 * (a timeout).  Never returned to a caller. */
#define CLUSTER_RETRY (-2000)
/* Internal result of a catch-up that found the records after this
 * machine's end purged from the stream: the transaction is ended, then
 * cluster_reboot() starts this machine again from the cluster's checkpoint.
 * Never returned to a caller. */
#define CLUSTER_REBOOT (-2001)

/* Internal result of a pass that waits for another machine's turn
 * (cluster.c, TURNS): it runs again after a short pause and a catch-up.
 * Never returned to a caller. */
#define CLUSTER_YIELD (-2002)

/* membank.json's "journal" of a bank being opened (@recorded: NULL for a
 * local journal) against the one asked (opts.journal_url, else
 * $MEMBANK_JOURNAL): sets b->cl for a bank on a stream, or leaves it NULL.
 * @creating: the bank is being created (the URL asked is recorded).
 * MB_EINVAL naming both (redacted) when they differ. */
int cluster_bind(mb_bank *b, const char *recorded, bool creating);

/* The URL to record in membank.json of a bank being created (redacted);
 * NULL for a local journal. */
const char *cluster_recorded_url(const mb_bank *b);

/* After the local parts are open, under the open lock: connect, create or
 * check the stream, bootstrap a new machine, catch up.  An unreachable
 * cluster fails a creation (MB_EUNAVAIL); an existing bank opens on its
 * local cache (writes retry the connection).  A machine that never joined
 * the stream (no cluster.json) creates it (opts.journal_replicas) or
 * checks it. */
int cluster_open(mb_bank *b);
void cluster_close(mb_bank *b);
/* In a child after fork(): free the memory only. */
void cluster_forget(mb_bank *b);

/* Under LMDB's writer lock (@t): append and apply every record of the
 * stream past *end; *end advances.  MB_EUNAVAIL, MB_EDIVERGED, ...;
 * CLUSTER_REBOOT: the record after *end was purged (end @t, then
 * cluster_reboot()). */
int cluster_catch_up(mb_bank *b, kv_txn *t, mbj_pos *end);

/* After CLUSTER_REBOOT, outside any transaction (under the leader lock on
 * the write path): this machine starts again from the newest checkpoint
 * kept in the cluster, the store replaced in one transaction (readers see
 * the old state or the new one) and the local journal going on at its seq
 * + 1; then the caller runs its pass again.  @attempt: the reboots of this
 * call so far, this one included (a stream purged past the checkpoint again
 * meanwhile is given up after a few, MB_EUNAVAIL).  @unknown: a member of
 * the pass has an unknown outcome whose seq may be gone: after the reboot
 * the pass fails (MB_EUNAVAIL) instead of running again.  0, MB_EUNAVAIL,
 * MB_EDIVERGED (recreated; or no checkpoint that reaches the stream's
 * first record), MB_ENOSPC, ... */
int cluster_reboot(mb_bank *b, unsigned attempt, bool unknown);

/* Under the leader lock and LMDB's writer lock: publish one record
 * expecting the stream to end at @end->seq.  0 and *seq; CLUSTER_RETRY on
 * a conflict; MB_EUNAVAIL (*timed_out: the record may have landed) ... */
int cluster_publish(mb_bank *b, const mbj_pos *end, uint8_t type, int64_t ts,
                    const void *payload, uint32_t len, uint64_t *seq, bool *timed_out);

/* TURNS (cluster.c).  After TURN_AFTER conflicts in a row, over at least
 * TURN_AFTER_MS (races lost now and then are no starvation, and a turn
 * costs the others a wait), a pass asks for the turn: a turn record
 * published without an expected seq.  Never fails the write (a turn that
 * could not be asked for is asked again later). */
#define TURN_AFTER 3u
#define TURN_AFTER_MS 100u
void cluster_ask_turn(mb_bank *b);
/* Within the pass's transaction @t, at the store's end @end_seq: true when
 * the newest record there is another machine's turn record (this machine
 * waits for that machine's write, at most TURN_HOLD_MS per pass; @first:
 * the pass's first wait, counted). */
#define TURN_HOLD_MS 1000u
bool cluster_turn_taken(mb_bank *b, kv_txn *t, uint64_t end_seq, bool first);

/* 0 when this machine may write: MB_EDIVERGED with the message when its
 * writes are refused for good (the stream recreated, or holding another
 * record where this machine has one), MB_EUNAVAIL while the stream was
 * last seen to end before what this machine applied (asked again here). */
int cluster_writable(mb_bank *b);

/* The record the local journal holds at @seq (a copy in @out, free()d by
 * the caller): 1 found, 0 not there, < 0 an MB_E* code. */
int cluster_local_record(mb_bank *b, uint64_t seq, uint8_t *type, int64_t *ts,
                         uint8_t **payload, uint32_t *len);

/* After a checkpoint into the bank directory (checkpoint/<seq> in @dir):
 * keep it in the cluster and purge the stream before it, less a margin.
 * Never fails the checkpoint (counted, and its message kept). */
void cluster_checkpoint_done(mb_bank *b, const char *dir, uint64_t seq);

/* "cluster":{...} or null, for mb_stats (@applied: the store's end). */
void cluster_stats(mb_bank *b, uint64_t applied, mb_buf *doc);

/* Milliseconds before a pass gives up retrying. */
uint32_t cluster_timeout_ms(const mb_bank *b);

#endif /* MEMBANK_CLUSTER_H */
