/*
 * stream.h - the journal on a NATS JetStream stream (internal).
 *
 * A bank bound to a stream ("nats://...", recorded in membank.json) keeps
 * its truth in the stream: a record is acknowledged once the stream has
 * acknowledged it.  Each machine keeps its own local journal (journal.h) as
 * a MIRROR of the stream: local seq == stream seq, no gaps, so that
 * everything built on the local journal (roll forward after a crash,
 * checkpoints covering seq N, replay) works unchanged.  This file only talks
 * to NATS: it knows nothing of LMDB or of what a payload means.
 *
 * URL.  nats://[user:pass@|token@]host:port[,host:port...]/STREAM, or
 * tls://... (TLS required: a plain connection is refused).  STREAM is
 * [A-Za-z0-9_-]{1,64}; records go to subject "membank.STREAM".  The
 * credentials of a URL never appear in a message, a report or a file:
 * mbs_url_redacted() is the only form shown.
 *
 * MESSAGE FORMAT (the body of every stream message, little-endian):
 *   magic "MBS1" (4) | type u8 | ts_us i64 | payload (rest of the body)
 * type/ts_us/payload are exactly a local journal record's.  A message whose
 * body is not of this shape, or whose payload is over MBJ_MAX_PAYLOAD, is
 * not membank's: mbs_fetch() hands it on with type 0 (the caller applies it
 * as nothing, the same on every machine, and counts it), so that a hostile
 * publisher cannot stop every machine nor make them diverge.
 *
 * ERRORS are negative MBJ_E* codes (journal.h) or the MBS_E* below;
 * mbs_errmsg() says what failed (server, stream, NATS status text).
 *
 * THREADS.  One mbs_conn may be used by one thread at a time.
 */
#ifndef MEMBANK_STREAM_H
#define MEMBANK_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "journal.h"

#define MBS_ECONFLICT  -20  /* wrong last sequence: someone appended first */
#define MBS_ETIMEOUT   -21  /* no answer within the deadline (outcome unknown) */
#define MBS_EPURGED    -22  /* the records asked for were purged */
#define MBS_EBEHIND    -23  /* the stream ends before what this machine applied */
#define MBS_EAUTH      -24  /* refused: authorization / TLS */
#define MBS_ENOSTREAM  -25  /* no such stream */
#define MBS_EURL       -26  /* malformed URL (message names the part) */
#define MBS_EFOREIGN   -27  /* the stream exists but is not a membank stream */

typedef struct mbs_options {
	const char *url;
	const char *creds_file;   /* NKey/JWT credentials file, or NULL */
	const char *tls_ca;       /* CA file for tls:// (NULL: system CAs) */
	const char *tls_cert;     /* client certificate + key, or NULL */
	const char *tls_key;
	uint32_t timeout_ms;      /* one request; 0: 2000 */
	uint32_t deadline_ms;     /* a publish or catch-up retries until this; 0: 15000 */
	/* The stream's Description when mbs_stream_ensure() creates it (the
	 * bank's properties, as JSON: libshm/cluster.c), or NULL; at most
	 * MBS_DESC_MAX bytes. */
	const char *description;
} mbs_options;

#define MBS_DESC_MAX 255

typedef struct mbs_conn mbs_conn;

/* What the stream is, as the server reports it. */
typedef struct mbs_info {
	uint64_t first_seq, last_seq, msgs;
	uint32_t replicas;
	int32_t max_msg_size;
	char leader[64];          /* server name of the stream's leader */
	char created[40];         /* RFC 3339, changes when the stream is recreated */
	char description[MBS_DESC_MAX + 1]; /* as its creator set it ("": none) */
} mbs_info;

/* Connect (bounded by deadline_ms: "no server" is retried until then,
 * then MBS_ETIMEOUT).  MBS_EAUTH: refused (credentials, TLS asked but not
 * offered, certificate not trusted); MBS_EURL; MBJ_EINVAL: an unreadable
 * CA, certificate, key or credentials file.  On failure *out is NULL and
 * mbs_connect_errmsg() (this thread's) says why, redacted. */
int mbs_connect(const mbs_options *o, mbs_conn **out);
const char *mbs_connect_errmsg(void);
void mbs_close(mbs_conn *c);
const char *mbs_errmsg(const mbs_conn *c);
/* The URL with user, password and token removed. */
const char *mbs_url_redacted(const mbs_conn *c);
/* Check a URL's syntax without connecting: 0 or MBS_EURL, @why filled. */
int mbs_url_check(const char *url, char *why, size_t n);

/* The largest payload of a record in the stream.  nats-server's file store
 * refuses to read back a stored record over 32 MiB (filestore.go
 * rlBadThresh, not a setting: such a message is acknowledged, then no
 * consumer gets past it), so a record, its subject and headers must stay
 * under 32 MiB: 1 KiB less than MBJ_MAX_PAYLOAD.  mbs_publish() refuses a
 * larger payload with MBJ_EINVAL; the stream's max_msg_size enforces it on
 * every publisher. */
#define MBS_MAX_PAYLOAD (MBJ_MAX_PAYLOAD - 1024u)

/* Create the stream (file storage, @replicas, max message size that fits
 * MBS_MAX_PAYLOAD + 13 and no more than the file store reads back, deletes
 * denied, subject membank.STREAM) or, when it exists, check that it is a
 * membank stream (MBS_EFOREIGN: not); *info filled.  @create false:
 * MBS_ENOSTREAM when missing. */
int mbs_stream_ensure(mbs_conn *c, uint32_t replicas, bool create, mbs_info *info);
int mbs_stream_info(mbs_conn *c, mbs_info *info);

/* LATE LANDING.  After MBS_ETIMEOUT a record may still land later: a
 * server that was stopped (SIGSTOP, a long pause) reads the request from
 * its socket when it resumes, and a new stream leader may commit an entry
 * the old one had replicated.  (libnats' own reconnect buffer, which would
 * send a timed-out publish on reconnect, is turned off.)  The expected
 * last seq still holds: a late record lands only where the stream was
 * when it was sent, so it is the next record for every machine alike, and
 * a retry with the same msg id within 2 minutes gets its seq back. */

/* @expect of mbs_publish(): no expectation (the record lands wherever the
 * stream ends; membank's turn records only, see cluster.c TURNS). */
#define MBS_EXPECT_NONE UINT64_MAX

/* Publish one record (len <= MBS_MAX_PAYLOAD) expecting the stream's last seq to be @expect (0 is
 * sent too: an empty stream; MBS_EXPECT_NONE: none), with Nats-Msg-Id @msg_id (stable across the
 * retries of one attempt; the server then answers a publish that had landed
 * with its original seq).  0 and *seq on success; MBS_ECONFLICT (nothing
 * appended); MBS_ETIMEOUT after retrying until the deadline (the record may
 * have landed: catch up and look). */
int mbs_publish(mbs_conn *c, uint64_t expect, const char *msg_id, uint8_t type,
                int64_t ts_us, const void *payload, uint32_t len, uint64_t *seq);

/* Read the records with seq @from .. @to (0: the stream's last at the call)
 * in order, calling @fn for each (rec->end.seq == rec->seq; the payload is
 * valid during the call; type 0 for a message that is not membank's).  @fn
 * returning non-zero stops with that value.  MBS_EPURGED when @from is
 * below the stream's first seq (also when purged during the read);
 * MBS_EBEHIND when @to is past the stream's last seq.  Memory: at most one
 * pull batch (256 messages, 64 MiB) at a time.  A reader that goes on
 * from where its last read ended reuses its consumer (no round trip). */
int mbs_fetch(mbs_conn *c, uint64_t from, uint64_t to,
              int (*fn)(void *ctx, const mbj_record *rec), void *ctx);

/* Block until a record past @seq may be in the stream (a message on the
 * stream's subject was seen, or the stream's last seq is past @seq), or
 * @timeout_ms passed: 1, 0 on timeout.  How a machine follows the others'
 * writes without polling the server (a core subscription on the subject,
 * made at the first call). */
int mbs_wait_beyond(mbs_conn *c, uint64_t seq, uint32_t timeout_ms);
/* Messages whose Nats-Msg-Id starts with @prefix (at most 39 bytes; ""
 * for none) do not count as a wake-up of mbs_wait_beyond(): a machine
 * gives its own prefix, since its writers apply their own records, and
 * its follower then wakes for the other machines' records alone. */
void mbs_wait_skip(mbs_conn *c, const char *prefix);

/* Remove the records before @seq (keeps @seq and later); nothing when
 * @seq is at or below the first seq (no request is sent then: nats-server
 * 2.9.10 purged everything when asked to purge before seq 1). */
int mbs_purge_before(mbs_conn *c, uint64_t seq);

/* The seq of the first record the stream stored at or after @since_ns
 * (UTC nanoseconds, compared with the servers' clocks) in *@seq; 0 when
 * every record is older. */
int mbs_seq_since(mbs_conn *c, int64_t since_ns, uint64_t *seq);

/* The checkpoint kept in the cluster: the four JSON files of a checkpoint
 * directory (and its checkpoint.json when there is one: get writes it back
 * as it was put, its segment and offset the putting machine's) and the seq
 * they cover, in a companion stream "MBCKPT-STREAM"
 * (subjects membank-ckpt.STREAM.c and .m: 1 MiB chunks, each crc32c'd,
 * then a manifest; format in stream_ckpt.c), with the main stream's
 * replicas.  put stores a new one and purges older ones once it is whole;
 * get writes the newest WHOLE one into @dir (created 0700 if missing;
 * files 0600 through temporaries, fsynced and renamed; a symlink in @dir
 * is replaced, never followed; @dir itself a symlink: refused) and gives
 * its seq.  MBS_ENOSTREAM when there is none, MBJ_ECORRUPT when none is
 * whole.  The four renames are not one atomic step: give get a fresh
 * directory and rename that. */
int mbs_checkpoint_put(mbs_conn *c, const char *dir, uint64_t seq);
int mbs_checkpoint_get(mbs_conn *c, const char *dir, uint64_t *seq);
/* The seq that the newest checkpoint kept in the cluster covers, cheaply:
 * the last manifest (one request, the last message on its subject; an
 * older one when that is not a manifest), whole or not.  0 and *seq 0 when
 * the cluster keeps none. */
int mbs_checkpoint_newest(mbs_conn *c, uint64_t *seq);

#endif /* MEMBANK_STREAM_H */
