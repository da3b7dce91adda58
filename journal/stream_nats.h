/*
 * stream_nats.h - the connection and the helpers that stream.c and
 * stream_ckpt.c share.  Included only by journal/stream*.c: the only files
 * that see libnats.
 */
#ifndef MEMBANK_STREAM_NATS_H
#define MEMBANK_STREAM_NATS_H

#include <stdbool.h>
#include <stdint.h>

#include <nats/nats.h>

#include "stream_int.h"

struct mbs_conn {
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *watch;   /* core subscription of mbs_wait_beyond */
	char watch_skip[40];       /* Nats-Msg-Id prefix it does not count */
	natsSubscription *pull;    /* fetch consumer, positioned at pull_next */
	uint64_t pull_next;
	int64_t pull_used_ms;      /* mbs_now_ms() of its last request */
	natsSubscription *got;     /* the answers to MSG.GET (get_many) ... */
	char *got_inbox;           /* ... on <got_inbox>.<round>.<seq> */
	uint64_t got_round;
	uint32_t timeout_ms, deadline_ms;
	char stream[MBS_STREAM_MAX + 1];
	char subject[MBS_STREAM_MAX + 16];     /* membank.STREAM */
	char ck_stream[MBS_STREAM_MAX + 16];   /* MBCKPT-STREAM */
	char ck_subject[MBS_STREAM_MAX + 24];  /* membank-ckpt.STREAM */
	char redacted[MBS_URL_MAX + 1];
	char description[MBS_DESC_MAX + 1];    /* of a stream it creates */
	char err[768];
};

/* c->err = the message; returns @rc. */
__attribute__((format(printf, 3, 4)))
int mbs_fail(mbs_conn *c, int rc, const char *fmt, ...);
/* "status text (JetStream error N)" into @buf. */
const char *mbs_why(natsStatus s, jsErrCode e, char *buf, size_t n);
int64_t mbs_now_ms(void);
/* A leader election, reconnect or busy server explains it: try again. */
bool mbs_retryable(natsStatus s, jsErrCode e);
bool mbs_auth_failure(natsStatus s);
/* Pause before a retry; false when @deadline (mbs_now_ms) has passed. */
bool mbs_backoff(int64_t deadline, int64_t *step);
/* Stream info with retries; MBS_ENOSTREAM when missing. */
int mbs_get_info(mbs_conn *c, const char *name, jsStreamInfo **si);
/* Create a stream (file storage, deletes denied) on one subject, with
 * @description (NULL: none); when it exists already, its info. */
int mbs_add_stream(mbs_conn *c, const char *name, const char *subject, const char *description,
                   uint32_t replicas, int32_t max_msg, jsStreamInfo **si);
/* An ephemeral pull consumer of @stream (memory, R1, no acks) on @filter
 * from seq @from. */
natsStatus mbs_pull_sub(mbs_conn *c, const char *stream, const char *filter,
                        uint64_t from, natsSubscription **out, jsErrCode *e);

/* Publish @m (the caller keeps and destroys it), retrying a failure that
 * mbs_retryable() explains with the same message, so the same Nats-Msg-Id
 * (the server drops a duplicate), until deadline_ms.  @expect_stream: the
 * stream that must take it (NULL: any).  @check_stream: when no stream
 * answers, ask whether c->stream exists.  Returns 0 and *seq when
 * acknowledged; MBS_ENOSTREAM (c->err said) when @check_stream found none;
 * 1 otherwise, with the last failure in *s and *e for the caller to word. */
int mbs_publish_msg(mbs_conn *c, natsMsg *m, const char *expect_stream, bool check_stream,
                    uint64_t *seq, natsStatus *s, jsErrCode *e);

/* Remove the messages of @stream before @seq (none when @seq <= first). */
int mbs_purge_stream(mbs_conn *c, const char *stream, uint64_t seq);

#endif /* MEMBANK_STREAM_NATS_H */
