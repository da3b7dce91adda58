/*
 * stream_int.h - what stream.c and stream_url.c share, and the tests see.
 */
#ifndef MEMBANK_STREAM_INT_H
#define MEMBANK_STREAM_INT_H

#include <stddef.h>
#include <stdint.h>

#include "stream.h"

#define MBS_URL_MAX 4096      /* bytes of a whole URL */
#define MBS_HOSTS_MAX 16      /* servers in one URL */
#define MBS_HOST_MAX 253      /* bytes of one host name (DNS limit) */
#define MBS_CRED_MAX 256      /* bytes of a user, password or token, decoded */
#define MBS_STREAM_MAX 64     /* bytes of a stream name */

/* A URL taken apart.  server[i] is "nats://host:port" or "tls://host:port"
 * with no credentials: what libnats is given.  redacted is the URL without
 * credentials: the only form ever shown. */
typedef struct mbs_url {
	bool tls;
	int nhosts;
	char user[MBS_CRED_MAX + 1];
	char pass[MBS_CRED_MAX + 1];
	char token[MBS_CRED_MAX + 1];
	char server[MBS_HOSTS_MAX][MBS_HOST_MAX + 16];
	char stream[MBS_STREAM_MAX + 1];
	char redacted[MBS_URL_MAX + 1];
} mbs_url;

/* 0, or MBS_EURL with @why naming the bad part (never a credential). */
int mbs_url_parse(const char *url, mbs_url *u, char *why, size_t n);

/* 0 when @path looks like a NATS .creds file (a user JWT and NKey seed),
 * else -1 with @why saying what is wrong (never quoting the file) -
 * stream_creds.c. */
int mbs_creds_check(const char *path, char *why, size_t n);

/* An answer of the stream's leader to MSG.GET of seq @seq, the server's
 * JSON of @len bytes: {"message":{"seq":N,"data":"<base64>",...}} or
 * {"error":{"err_code":N,...}}.  0: the message's bytes in *@body
 * (malloc()ed; no more than the largest stream message; no "data": none); 1: an error
 * (*@err_code its JetStream code, 0 when it has none); -1: not an answer
 * to that request (bad JSON, another seq, bad base64, too large).  Bytes
 * from the wire: every length is bounded by @len. */
int mbs_get_answer(const char *json, size_t len, uint64_t seq, uint8_t **body, size_t *n,
                   int *err_code);

/* The body of a stream message (stream.h, MESSAGE FORMAT). */
void mbs_encode_header(uint8_t *h, uint8_t type, int64_t ts_us);
/* 1 and *rec filled (seq left 0) when @body is membank's; 0 and type 0
 * otherwise. */
int mbs_decode(const void *body, size_t n, mbj_record *rec);

#endif /* MEMBANK_STREAM_INT_H */
