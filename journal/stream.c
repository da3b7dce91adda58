/*
 * stream.c - the journal on a NATS JetStream stream (see stream.h).
 *
 * The only file that includes <nats/nats.h>.  libnats 3.4.1 against
 * nats-server 2.9.  Known traps of these versions, and what is done here:
 * - ExpectLastSeq = 0 is not sent by libnats: the header
 *   "Nats-Expected-Last-Sequence" is set here, always, and jsPubOptions'
 *   expectations are left empty.
 * - Direct get answered "Not Found" for acknowledged seqs (any replica
 *   answers it): records are read through the leader-only MSG.GET (a few,
 *   or while a replica is behind; GET_WINDOW requests in flight) or an
 *   ephemeral pull consumer (memory, R1; many), never direct get.
 * - Every consumer made or dropped is a proposal of the cluster's metadata
 *   group; a node resumed after a stop replays them all before it answers
 *   for a consumer placed on it, and clients that time out and ask again
 *   add to that backlog (seen: writes stalled for minutes after SIGCONT).
 *   So a short catch-up never makes a consumer (MSG.GET), and a consumer
 *   that stalls gives way to MSG.GET, which only the stream leader serves.
 * - A stream leader resumed after SIGSTOP kept a record the quorum never
 *   stored, at a seq where the others hold another one (no ack was given
 *   for it); a consumer placed on that replica read it, and its machine
 *   diverged.  Consumers read only while every replica is current
 *   (replicas_current); otherwise MSG.GET reads, from the leader.
 * - "No responders" during a leader election comes back as 10076
 *   ("JetStream not enabled"): retryable, like timeouts, until deadline_ms.
 * - The server acks once a quorum holds a record in memory (no fsync).
 *
 * Errors: every message is made here from the NATS status text and the
 * JetStream error code; the URL in a message is always the redacted one
 * (credentials are handed to libnats through natsOptions, never in a URL).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>

#include "stream.h"
#include "stream_int.h"
#include "stream_nats.h"

#define MBS_HDR 13                       /* "MBS1" | type u8 | ts_us i64 */
/* max_msg_size of the stream (headers + body, as the server counts it):
 * the largest body plus 512 bytes of headers (msg id <= 128, expected seq),
 * and the file store's record (34 bytes, subject <= 80, headers, body, hash)
 * stays under its 32 MiB read limit (stream.h, MBS_MAX_PAYLOAD). */
#define MBS_MAX_MSG ((int32_t)(MBS_MAX_PAYLOAD + MBS_HDR + 512))
#define MBS_STORE_LIMIT ((int32_t)(32 << 20) - 256)
#define PULL_IDLE_MS 60000ll            /* a fetch consumer's inactivity threshold */
#define FETCH_BATCH 256                  /* messages per pull request */
#define FETCH_MAX_BYTES (64ll << 20)     /* bytes per pull request (> one body) */
#define AUTH_TRIES 3                     /* logins asked before a refusal stands */
#define AUTH_PAUSE_MS 100
#define GET_MAX 64                       /* records read by MSG.GET before a consumer pays */
#define GET_WINDOW 64                    /* MSG.GET requests in flight (get_many) */
#define CREATE_WAIT_MS 5000              /* one stream create request (mbs_add_stream) */


static __thread char connect_err[768];

__attribute__((format(printf, 1, 2)))
static void cfail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(connect_err, sizeof connect_err, fmt, ap);
	va_end(ap);
}

const char *mbs_connect_errmsg(void)
{
	return connect_err;
}

const char *mbs_errmsg(const mbs_conn *c)
{
	return c ? c->err : "no connection";
}

const char *mbs_url_redacted(const mbs_conn *c)
{
	return c ? c->redacted : "";
}

int mbs_fail(mbs_conn *c, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
	return rc;
}

/* "status text (JetStream error N)" of a failed call, for a message.
 * libnats' own last-error text is not used: it may name the servers. */
const char *mbs_why(natsStatus s, jsErrCode e, char *buf, size_t n)
{
	if (e)
		snprintf(buf, n, "%s (JetStream error %d)", natsStatus_GetText(s), (int)e);
	else
		snprintf(buf, n, "%s", natsStatus_GetText(s));
	return buf;
}

int64_t mbs_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int64_t ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* A failure that a leader election, a reconnect or a busy server explains:
 * try again (the same request) until the deadline. */
bool mbs_retryable(natsStatus s, jsErrCode e)
{
	switch (e) {
	case JSNotEnabledErr:            /* "no responders" during an election */
	case JSClusterNotAvailErr:
	case JSClusterNotLeaderErr:
	case JSStreamOfflineErr:
	case JSConsumerOfflineErr:
		return true;
	default:
		break;
	}
	if (e)
		return false;
	switch (s) {
	case NATS_TIMEOUT:
	case NATS_NO_RESPONDERS:
	case NATS_CONNECTION_DISCONNECTED:
	case NATS_STALE_CONNECTION:
	case NATS_NOT_YET_CONNECTED:
	case NATS_IO_ERROR:
	case NATS_SLOW_CONSUMER:
	case NATS_MISSED_HEARTBEAT:
	case NATS_INSUFFICIENT_BUFFER:   /* a large publish while reconnecting */
		return true;
	default:
		return false;
	}
}

/* Backoff between retries: 20 ms doubling to 500 ms, never past @deadline.
 * Returns false when the deadline has passed. */
bool mbs_backoff(int64_t deadline, int64_t *step)
{
	int64_t left = deadline - mbs_now_ms();
	if (left <= 0)
		return false;
	pause_ms(*step < left ? *step : left);
	*step = *step * 2 > 500 ? 500 : *step * 2;
	return true;
}

/* --- connecting ------------------------------------------------------- */

static void quiet_errors(natsConnection *nc, natsSubscription *sub, natsStatus err,
                         void *closure)
{
	/* Asynchronous errors (a slow consumer) are seen by the calls that
	 * wait for messages; a library prints nothing. */
	(void)nc; (void)sub; (void)err; (void)closure;
}

static natsStatus set_options(natsOptions *no, const mbs_options *o, const mbs_url *u)
{
	const char *servers[MBS_HOSTS_MAX];
	natsStatus s = NATS_OK;
	for (int i = 0; i < u->nhosts; i++)
		servers[i] = u->server[i];
	s = natsOptions_SetServers(no, servers, u->nhosts);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(no, o->timeout_ms ? o->timeout_ms : 2000);
	if (s == NATS_OK)
		s = natsOptions_SetNoRandomize(no, false);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(no, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(no, 100);
	/* Nothing is buffered while reconnecting (1 byte: every write then
	 * fails at once, and is retried by the caller's loop).  libnats would
	 * otherwise keep a publish that timed out and send it on reconnect,
	 * long after mbs_publish() reported MBS_ETIMEOUT. */
	if (s == NATS_OK)
		s = natsOptions_SetReconnectBufSize(no, 1);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(no, quiet_errors, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(no, 2000);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(no, 3);
	if (s == NATS_OK && u->user[0])
		s = natsOptions_SetUserInfo(no, u->user, u->pass);
	if (s == NATS_OK && u->token[0])
		s = natsOptions_SetToken(no, u->token);
	if (s == NATS_OK && u->tls)
		s = natsOptions_SetSecure(no, true);
	if (s == NATS_OK && u->tls && o->tls_ca)
		s = natsOptions_LoadCATrustedCertificates(no, o->tls_ca);
	if (s == NATS_OK && u->tls && o->tls_cert)
		s = natsOptions_LoadCertificatesChain(no, o->tls_cert,
		                                      o->tls_key ? o->tls_key : o->tls_cert);
	/* checked by mbs_connect() first (mbs_creds_check) */
	if (s == NATS_OK && o->creds_file)
		s = natsOptions_SetUserCredentialsFromFiles(no, o->creds_file, NULL);
	return s;
}

bool mbs_auth_failure(natsStatus s)
{
	return s == NATS_CONNECTION_AUTH_FAILED || s == NATS_NOT_PERMITTED ||
	       s == NATS_SECURE_CONNECTION_WANTED || s == NATS_SECURE_CONNECTION_REQUIRED ||
	       s == NATS_SSL_ERROR;
}

int mbs_connect(const mbs_options *o, mbs_conn **out)
{
	char w[160];
	*out = NULL;
	connect_err[0] = 0;
	if (!o || !o->url) {
		cfail("journal URL: none given");
		return MBS_EURL;
	}
	mbs_url *u = calloc(1, sizeof *u);
	mbs_conn *c = calloc(1, sizeof *c);
	if (!u || !c) {
		free(u);
		free(c);
		cfail("out of memory");
		return MBJ_ENOMEM;
	}
	int rc = mbs_url_parse(o->url, u, connect_err, sizeof connect_err);
	if (rc) {
		free(u);
		free(c);
		return rc;
	}
	c->timeout_ms = o->timeout_ms ? o->timeout_ms : 2000;
	c->deadline_ms = o->deadline_ms ? o->deadline_ms : 15000;
	snprintf(c->stream, sizeof c->stream, "%s", u->stream);
	snprintf(c->subject, sizeof c->subject, "membank.%s", u->stream);
	snprintf(c->ck_stream, sizeof c->ck_stream, "MBCKPT-%s", u->stream);
	snprintf(c->ck_subject, sizeof c->ck_subject, "membank-ckpt.%s", u->stream);
	snprintf(c->redacted, sizeof c->redacted, "%s", u->redacted);
	snprintf(c->description, sizeof c->description, "%s", o->description ? o->description : "");

	/* libnats reads the credentials file at each connect and would report
	 * a bad one as "Error" or as a refusal: say what is wrong now. */
	char why[256];
	if (o->creds_file && mbs_creds_check(o->creds_file, why, sizeof why)) {
		cfail("%s: the credentials file %s: %s", c->redacted, o->creds_file, why);
		memset(u, 0, sizeof *u);
		free(u);
		free(c);
		return MBJ_EINVAL;
	}
	natsOptions *no = NULL;
	natsStatus s = natsOptions_Create(&no);
	if (s == NATS_OK)
		s = set_options(no, o, u);
	bool tls = u->tls;
	memset(u, 0, sizeof *u);      /* the credentials live on only in libnats */
	free(u);
	if (s != NATS_OK) {
		natsOptions_Destroy(no);
		cfail("%s: connection options: %s%s",
		         c->redacted, natsStatus_GetText(s),
		         tls ? " (check the CA, certificate and key files)" : "");
		free(c);
		return s == NATS_NO_MEMORY ? MBJ_ENOMEM : MBJ_EINVAL;
	}
	int64_t deadline = mbs_now_ms() + c->deadline_ms, step = 20;
	/* No server answering (yet): retried until the deadline.  Refused:
	 * asked AUTH_TRIES times in all, AUTH_PAUSE_MS apart (nats-server
	 * 2.9.10 refused a .creds login that it took before and after, in the
	 * same test, about once in a few hundred logins; the cause is not
	 * known).  Anything else (a bad credentials file) fails at once. */
	for (int refused = 0;;) {
		s = natsConnection_Connect(&c->nc, no);
		if (s == NATS_CONNECTION_AUTH_FAILED && ++refused < AUTH_TRIES &&
		    mbs_now_ms() + AUTH_PAUSE_MS < deadline) {
			pause_ms(AUTH_PAUSE_MS);
			continue;
		}
		if (s == NATS_OK || !(s == NATS_NO_SERVER || mbs_retryable(s, 0)) ||
		    !mbs_backoff(deadline, &step))
			break;
	}
	natsOptions_Destroy(no);
	if (s != NATS_OK) {
		/* Over TLS, a server that refuses the client's certificate (or
		 * its absence) closes after the handshake: libnats sees a
		 * protocol error. */
		bool tls_refused = tls && s == NATS_PROTOCOL_ERROR;
		rc = mbs_auth_failure(s) || tls_refused ? MBS_EAUTH :
		     s == NATS_NO_SERVER || mbs_retryable(s, 0) ? MBS_ETIMEOUT : MBJ_EIO;
		cfail("%s: cannot connect: %s%s%s%s%s",
		         c->redacted, mbs_why(s, 0, w, sizeof w),
		         rc == MBS_EAUTH && o->creds_file ? " (with the credentials file " : "",
		         rc == MBS_EAUTH && o->creds_file ? o->creds_file : "",
		         rc == MBS_EAUTH && o->creds_file ? ")" : "",
		         s == NATS_SECURE_CONNECTION_WANTED ?
		         " (tls:// was asked, the server offers no TLS)" :
		         s == NATS_SSL_ERROR ? " (TLS handshake or certificate check failed)" :
		         tls_refused ? " (TLS: the server refused this client; does it require "
		         "a client certificate?)" : "");
		free(c);
		return rc;
	}
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = c->timeout_ms;
	s = natsConnection_JetStream(&c->js, c->nc, &jo);
	if (s != NATS_OK) {
		cfail("%s: JetStream context: %s",
		         c->redacted, natsStatus_GetText(s));
		natsConnection_Destroy(c->nc);
		free(c);
		return MBJ_ENOMEM;
	}
	*out = c;
	return 0;
}

static void drop_pull(mbs_conn *c)
{
	if (c->pull) {
		/* An ephemeral consumer goes when its interest goes. */
		natsSubscription_Unsubscribe(c->pull);
		natsSubscription_Destroy(c->pull);
		c->pull = NULL;
	}
	c->pull_next = 0;
}

void mbs_close(mbs_conn *c)
{
	if (!c)
		return;
	drop_pull(c);
	if (c->got) {
		natsSubscription_Unsubscribe(c->got);
		natsSubscription_Destroy(c->got);
	}
	free(c->got_inbox);
	if (c->watch) {
		natsSubscription_Unsubscribe(c->watch);
		natsSubscription_Destroy(c->watch);
	}
	jsCtx_Destroy(c->js);
	natsConnection_Close(c->nc);
	natsConnection_Destroy(c->nc);
	free(c);
}

/* --- the stream ------------------------------------------------------- */

static void fill_info(const jsStreamInfo *si, mbs_info *info)
{
	if (!info)
		return;
	memset(info, 0, sizeof *info);
	info->first_seq = si->State.FirstSeq;
	info->last_seq = si->State.LastSeq;
	info->msgs = si->State.Msgs;
	if (si->Config) {
		info->replicas = (uint32_t)si->Config->Replicas;
		info->max_msg_size = si->Config->MaxMsgSize;
		if (si->Config->Description)
			snprintf(info->description, sizeof info->description, "%s",
			         si->Config->Description);
	}
	if (si->Cluster && si->Cluster->Leader)
		snprintf(info->leader, sizeof info->leader, "%s", si->Cluster->Leader);
	time_t t = (time_t)(si->Created / 1000000000);
	struct tm tm;
	if (gmtime_r(&t, &tm)) {
		char base[24];
		strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(info->created, sizeof info->created, "%s.%09lldZ", base,
		         (long long)(si->Created % 1000000000));
	}
}

/* Stream info of @name with retries; *si NULL and MBS_ENOSTREAM when it
 * does not exist. */
/* Tests play a replica that lags, on the bank's stream:
 * MEMBANK_TEST_STREAM_INFO_LAG=N answers N records short of the end,
 * MEMBANK_TEST_STREAM_INFO_FIRST=N with first seq N (a purge it has not
 * applied yet). */
static void stale_for_tests(mbs_conn *c, const char *name, jsStreamInfo *si)
{
	const char *lag = getenv("MEMBANK_TEST_STREAM_INFO_LAG");
	const char *first = getenv("MEMBANK_TEST_STREAM_INFO_FIRST");
	if (strcmp(name, c->stream) != 0)
		return;
	if (lag && *lag) {
		uint64_t n = strtoull(lag, NULL, 10);
		si->State.LastSeq = si->State.LastSeq > n ? si->State.LastSeq - n : 0;
	}
	if (first && *first)
		si->State.FirstSeq = strtoull(first, NULL, 10);
}

int mbs_get_info(mbs_conn *c, const char *name, jsStreamInfo **si)
{
	char w[160];
	jsErrCode e = 0;
	natsStatus s;
	int64_t deadline = mbs_now_ms() + c->deadline_ms, step = 20;
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = c->timeout_ms;
	*si = NULL;
	for (;;) {
		e = 0;
		s = js_GetStreamInfo(si, c->js, name, &jo, &e);
		if (s == NATS_OK) {
			stale_for_tests(c, name, *si);
			return 0;
		}
		if (s == NATS_NOT_FOUND || e == JSStreamNotFoundErr)
			return mbs_fail(c, MBS_ENOSTREAM, "%s: no stream %s", c->redacted, name);
		if (!mbs_retryable(s, e) || !mbs_backoff(deadline, &step))
			break;
	}
	return mbs_fail(c, mbs_retryable(s, e) ? MBS_ETIMEOUT : MBJ_EIO,
	            "%s: stream %s: info: %s", c->redacted, name, mbs_why(s, e, w, sizeof w));
}

int mbs_stream_info(mbs_conn *c, mbs_info *info)
{
	jsStreamInfo *si;
	int rc = mbs_get_info(c, c->stream, &si);
	if (rc)
		return rc;
	fill_info(si, info);
	jsStreamInfo_Destroy(si);
	return 0;
}

/* Is the stream's configuration one membank made (or one it can trust)?
 * Records must never vanish by a limit, nor be deleted one by one. */
static int check_config(mbs_conn *c, const jsStreamConfig *cf, const char *subject)
{
	const char *what = NULL;
	if (!cf)
		what = "no configuration";
	else if (cf->SubjectsLen != 1 || !cf->Subjects || !cf->Subjects[0] ||
	         strcmp(cf->Subjects[0], subject) != 0)
		what = "its subjects are not exactly the membank subject";
	else if (cf->Retention != js_LimitsPolicy)
		what = "its retention is not 'limits'";
	else if (cf->MaxMsgs > 0 || cf->MaxBytes > 0 || cf->MaxAge > 0 ||
	         cf->MaxMsgsPerSubject > 0)
		what = "it has a limit that would drop records";
	else if (cf->MaxMsgSize > 0 && cf->MaxMsgSize < MBS_MAX_MSG)
		what = "its max message size is below the largest record";
	else if (cf->MaxMsgSize <= 0 || cf->MaxMsgSize > MBS_STORE_LIMIT)
		what = "its max message size lets in a message the file store "
		       "cannot read back (over 32 MiB)";
	else if (cf->Mirror || cf->SourcesLen > 0)
		what = "it is a mirror or has sources";
	if (what)
		return mbs_fail(c, MBS_EFOREIGN, "%s: stream %s is not a membank stream: %s",
		            c->redacted, cf && cf->Name ? cf->Name : "?", what);
	return 0;
}

int mbs_add_stream(mbs_conn *c, const char *name, const char *subject, const char *description,
                   uint32_t replicas, int32_t max_msg, jsStreamInfo **si)
{
	char w[160];
	const char *subjects[1] = { subject };
	jsStreamConfig cf;
	jsStreamConfig_Init(&cf);
	cf.Name = name;
	cf.Description = description && *description ? description : NULL;
	cf.Subjects = subjects;
	cf.SubjectsLen = 1;
	cf.Storage = js_FileStorage;
	cf.Retention = js_LimitsPolicy;
	cf.Replicas = replicas ? replicas : 1;
	cf.MaxMsgSize = max_msg;
	cf.DenyDelete = true;             /* no gaps: only purges from the start */
	cf.Duplicates = 120ll * 1000000000; /* msg-id window, ns: covers every retry */
	jsOptions jo;
	jsOptions_Init(&jo);
	/* A create is answered once the stream's group has its leader: seconds
	 * on a busy cluster, so one request may wait CREATE_WAIT_MS, but never
	 * past the deadline.  An answer lost (the metadata leader changed under
	 * the request) is asked for again: a create that landed is answered by
	 * the stream, or by JSStreamNameExistErr, handled below. */
	int64_t wait = c->timeout_ms > CREATE_WAIT_MS ? c->timeout_ms : CREATE_WAIT_MS;
	int64_t deadline = mbs_now_ms() + c->deadline_ms, step = 20, left;
	natsStatus s;
	jsErrCode e;
	for (;;) {
		e = 0;
		left = deadline - mbs_now_ms();
		jo.Wait = left < wait ? (left > 100 ? left : 100) : wait;
		s = js_AddStream(si, c->js, &cf, &jo, &e);
		if (s == NATS_OK)
			return 0;
		if (e == JSStreamNameExistErr)
			return mbs_get_info(c, name, si);  /* another machine made it first */
		if (!mbs_retryable(s, e) || !mbs_backoff(deadline, &step))
			break;
	}
	return mbs_fail(c, mbs_retryable(s, e) ? MBS_ETIMEOUT : MBJ_EIO,
	            "%s: cannot create stream %s (replicas %u): %s", c->redacted, name,
	            replicas, mbs_why(s, e, w, sizeof w));
}

int mbs_stream_ensure(mbs_conn *c, uint32_t replicas, bool create, mbs_info *info)
{
	/* The server's max_payload (default 1 MB) caps every message below
	 * the stream's own limit: a large record would be refused only when
	 * it comes.  Said here, with the setting that fixes it. */
	int64_t maxp = natsConnection_GetMaxPayload(c->nc);
	if (maxp > 0 && maxp < MBS_MAX_MSG)
		return mbs_fail(c, MBJ_EINVAL, "%s: the server's max_payload is %" PRId64
		                " bytes, below the largest record (%d bytes with its "
		                "headers): set 'max_payload: 64MB' in nats-server's "
		                "configuration", c->redacted, maxp, (int)MBS_MAX_MSG);
	jsStreamInfo *si = NULL;
	int rc = mbs_get_info(c, c->stream, &si);
	if (rc == MBS_ENOSTREAM && create)
		rc = mbs_add_stream(c, c->stream, c->subject, c->description, replicas,
		                    MBS_MAX_MSG, &si);
	if (rc)
		return rc;
	rc = check_config(c, si->Config, c->subject);
	if (!rc)
		fill_info(si, info);
	jsStreamInfo_Destroy(si);
	return rc;
}

/* --- publishing ------------------------------------------------------- */

void mbs_encode_header(uint8_t *h, uint8_t type, int64_t ts_us)
{
	uint64_t t = (uint64_t)ts_us;
	memcpy(h, "MBS1", 4);
	h[4] = type;
	for (int i = 0; i < 8; i++)
		h[5 + i] = (uint8_t)(t >> (8 * i));
}

int mbs_decode(const void *body, size_t n, mbj_record *rec)
{
	const uint8_t *b = body;
	memset(rec, 0, sizeof *rec);
	if (n < MBS_HDR || memcmp(b, "MBS1", 4) != 0 || b[4] == 0 ||
	    n - MBS_HDR > MBJ_MAX_PAYLOAD)
		return 0;                 /* not membank's: type 0, no payload */
	uint64_t t = 0;
	for (int i = 0; i < 8; i++)
		t |= (uint64_t)b[5 + i] << (8 * i);
	rec->type = b[4];
	rec->ts_us = (int64_t)t;
	rec->payload = b + MBS_HDR;
	rec->len = (uint32_t)(n - MBS_HDR);
	return 1;
}

static natsStatus build_msg(mbs_conn *c, natsMsg **m, uint64_t expect, const char *msg_id,
                            uint8_t type, int64_t ts_us, const void *payload, uint32_t len)
{
	char num[24];
	uint8_t *body = malloc((size_t)len + MBS_HDR);
	if (!body)
		return NATS_NO_MEMORY;
	mbs_encode_header(body, type, ts_us);
	if (len)
		memcpy(body + MBS_HDR, payload, len);
	natsStatus s = natsMsg_Create(m, c->subject, NULL, (const char *)body,
	                              (int)(len + MBS_HDR));
	free(body);                   /* natsMsg_Create copies the data */
	snprintf(num, sizeof num, "%" PRIu64, expect);
	if (s == NATS_OK && expect != MBS_EXPECT_NONE)
		s = natsMsgHeader_Set(*m, "Nats-Expected-Last-Sequence", num);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(*m, "Nats-Msg-Id", msg_id);
	return s;
}

static bool msg_id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++)
		if (id[i] <= ' ' || id[i] > '~')
			return false;
	return true;
}

int mbs_publish(mbs_conn *c, uint64_t expect, const char *msg_id, uint8_t type,
                int64_t ts_us, const void *payload, uint32_t len, uint64_t *seq)
{
	char w[160];
	if (type == 0 || (len && !payload))
		return mbs_fail(c, MBJ_EINVAL, "publish: type %u: not a record", type);
	if (len > MBS_MAX_PAYLOAD)
		return mbs_fail(c, MBJ_EINVAL, "publish: a record of %u bytes is over the "
		            "%u bytes a stream message holds", len, MBS_MAX_PAYLOAD);
	if (!msg_id_ok(msg_id))
		return mbs_fail(c, MBJ_EINVAL, "publish: the message id must be 1..128 "
		            "printable characters without spaces");
	natsMsg *m = NULL;
	natsStatus s = build_msg(c, &m, expect, msg_id, type, ts_us, payload, len);
	if (s != NATS_OK) {
		natsMsg_Destroy(m);
		return mbs_fail(c, s == NATS_NO_MEMORY ? MBJ_ENOMEM : MBJ_EINVAL,
		            "publish: %s", natsStatus_GetText(s));
	}
	jsErrCode e;
	int rc = mbs_publish_msg(c, m, NULL, true, seq, &s, &e);
	natsMsg_Destroy(m);
	if (rc != 1)
		return rc;
	if (e == JSStreamWrongLastSequenceErr)
		return mbs_fail(c, MBS_ECONFLICT, "%s: publish expecting last seq %" PRIu64
		                ": the stream moved on (%s)", c->redacted, expect,
		                mbs_why(s, e, w, sizeof w));
	return mbs_fail(c, mbs_retryable(s, e) ? MBS_ETIMEOUT :
	                mbs_auth_failure(s) ? MBS_EAUTH : MBJ_EIO,
	                "%s: publish to stream %s: %s%s", c->redacted, c->stream,
	                mbs_why(s, e, w, sizeof w), mbs_retryable(s, e) ?
	                " (retried until the deadline; the record may have landed)" : "");
}

int mbs_publish_msg(mbs_conn *c, natsMsg *m, const char *expect_stream, bool check_stream,
                    uint64_t *seq, natsStatus *s, jsErrCode *e)
{
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = c->timeout_ms;
	po.ExpectStream = expect_stream;
	int64_t deadline = mbs_now_ms() + c->deadline_ms, step = 20;
	for (;;) {
		jsPubAck *ack = NULL;
		*e = 0;
		*s = js_PublishMsg(&ack, c->js, m, &po, e);
		if (*s == NATS_OK) {
			*seq = ack->Sequence;
			jsPubAck_Destroy(ack);
			return 0;
		}
		if (check_stream && (*e == JSStreamNotFoundErr || *s == NATS_NO_RESPONDERS)) {
			/* No stream takes the subject: say so if that is why. */
			jsStreamInfo *si = NULL;
			int r = mbs_get_info(c, c->stream, &si);
			jsStreamInfo_Destroy(si);
			if (r == MBS_ENOSTREAM)
				return r;
		}
		if (!mbs_retryable(*s, *e) || !mbs_backoff(deadline, &step))
			return 1;
	}
}

/* --- fetching --------------------------------------------------------- */

/* An ephemeral pull consumer (memory, one replica, no acks) starting at
 * seq @from, or when @since_ns is not 0 at the first record stored at or
 * after that time (UTC ns): how records are read (never direct get, see
 * the top). */
static natsStatus pull_sub(mbs_conn *c, const char *stream, const char *filter, uint64_t from,
                           int64_t since_ns, natsSubscription **out, jsErrCode *e)
{
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = c->timeout_ms;
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = stream;
	if (since_ns) {
		so.Config.DeliverPolicy = js_DeliverByStartTime;
		so.Config.OptStartTime = since_ns;
	} else {
		so.Config.DeliverPolicy = js_DeliverByStartSequence;
		so.Config.OptStartSeq = from;
	}
	so.Config.AckPolicy = js_AckNone;
	so.Config.MemoryStorage = true;
	so.Config.Replicas = 1;
	so.Config.InactiveThreshold = PULL_IDLE_MS * 1000000;  /* ns: a dead reader's goes */
	*out = NULL;
	natsStatus s = js_PullSubscribe(out, c->js, filter, NULL, &jo, &so, e);
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(*out, 2 * FETCH_BATCH,
		                                      (int)(2 * FETCH_MAX_BYTES));
	if (s != NATS_OK && *out) {
		natsSubscription_Destroy(*out);
		*out = NULL;
	}
	return s;
}

natsStatus mbs_pull_sub(mbs_conn *c, const char *stream, const char *filter,
                        uint64_t from, natsSubscription **out, jsErrCode *e)
{
	return pull_sub(c, stream, filter, from, 0, out, e);
}

static natsStatus open_pull(mbs_conn *c, uint64_t from, jsErrCode *e)
{
	drop_pull(c);
	natsStatus s = mbs_pull_sub(c, c->stream, c->subject, from, &c->pull, e);
	if (s == NATS_OK) {
		c->pull_next = from;
		c->pull_used_ms = mbs_now_ms();
	}
	return s;
}

static int stream_gap(mbs_conn *c, uint64_t from, uint64_t upto);

/* Hand record @seq (body @b, @n bytes) to @fn. */
static int deliver(uint64_t seq, const void *b, size_t n,
                   int (*fn)(void *, const mbj_record *), void *ctx)
{
	mbj_record rec;
	mbs_decode(b, n, &rec);
	rec.seq = seq;
	rec.end.seq = seq;
	return fn(ctx, &rec);
}

/* Standard base64, as the server's JSON gives a message's bytes: the
 * length decoded into @out (room for @len / 4 * 3), or -1. */
static int b64_val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

static long b64_decode(const char *in, size_t len, uint8_t *out)
{
	size_t o = 0;

	if (len % 4)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			unsigned char ch = (unsigned char)in[i + k];
			if (ch == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
			} else if (pad || (v[k] = b64_val(ch)) < 0) {
				return -1;
			}
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
		             (uint32_t)v[3];
		out[o++] = (uint8_t)(w >> 16);
		if (pad < 2)
			out[o++] = (uint8_t)(w >> 8);
		if (pad < 1)
			out[o++] = (uint8_t)w;
	}
	return (long)o;
}

int mbs_get_answer(const char *json, size_t len, uint64_t seq, uint8_t **body, size_t *n,
                   int *err_code)
{
	const cJSON *msg, *v, *data;
	cJSON *j;
	long got = 0;

	*body = NULL;
	*n = 0;
	*err_code = 0;
	if (!len || !(j = cJSON_ParseWithLength(json, len)))
		return -1;
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "error"))) {
		v = cJSON_GetObjectItemCaseSensitive(v, "err_code");
		if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= 100000)
			*err_code = (int)v->valuedouble;
		cJSON_Delete(j);
		return 1;
	}
	msg = cJSON_GetObjectItemCaseSensitive(j, "message");
	v = cJSON_GetObjectItemCaseSensitive(msg, "seq");
	data = cJSON_GetObjectItemCaseSensitive(msg, "data");
	size_t blen = cJSON_IsString(data) ? strlen(data->valuestring) : 0;
	if (!cJSON_IsNumber(v) || v->valuedouble != (double)seq || (data && !cJSON_IsString(data)) ||
	    blen / 4 * 3 > (size_t)MBS_MAX_MSG || !(*body = malloc(blen / 4 * 3 + 1)) ||
	    (blen && (got = b64_decode(data->valuestring, blen, *body)) < 0)) {
		free(*body);
		*body = NULL;
		cJSON_Delete(j);
		return -1;
	}
	*n = (size_t)got;
	cJSON_Delete(j);
	return 0;
}

/* One answer @m to MSG.GET of seq @seq: as mbs_get_answer(), with *@s,
 * *@e set for an error (no responders, or the JetStream error). */
static int got_answer(natsMsg *m, uint64_t seq, uint8_t **body, size_t *n, natsStatus *s,
                      jsErrCode *e)
{
	int code, rc;

	*body = NULL;
	if (natsMsg_IsNoResponders(m)) {
		*s = NATS_NO_RESPONDERS;
		return 1;
	}
	/* an empty answer is not one: mbs_get_answer() says so (-1) */
	rc = mbs_get_answer(natsMsg_GetData(m), (size_t)(natsMsg_GetDataLength(m) > 0 ?
	                    natsMsg_GetDataLength(m) : 0), seq, body, n, &code);
	if (rc == 1) {
		*s = NATS_ERR;
		*e = (jsErrCode)code;
	}
	return rc;
}

/* The subscription that takes MSG.GET answers, made once per connection. */
static natsStatus got_sub(mbs_conn *c)
{
	natsInbox *inbox = NULL;
	char subj[160];
	natsStatus s;

	if (c->got)
		return NATS_OK;
	if ((s = natsInbox_Create(&inbox)) != NATS_OK)
		return s;
	c->got_inbox = strdup((const char *)inbox);
	natsInbox_Destroy(inbox);
	if (!c->got_inbox)
		return NATS_NO_MEMORY;
	snprintf(subj, sizeof subj, "%s.>", c->got_inbox);
	s = natsConnection_SubscribeSync(&c->got, c->nc, subj);
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(c->got, 4 * GET_WINDOW, (int)(2 * FETCH_MAX_BYTES));
	if (s != NATS_OK) {
		natsSubscription_Destroy(c->got);
		c->got = NULL;
		free(c->got_inbox);
		c->got_inbox = NULL;
	}
	return s;
}

/* Records @from..@from+@n-1 (@n <= GET_WINDOW) read with MSG.GET, which
 * only the stream's leader answers (its committed state: never a lagging
 * or forked replica's) and which needs no consumer: all @n asked at once,
 * so that the lot costs one round trip, each answer to its own reply
 * subject (<inbox>.<round>.<seq>; a late answer of an earlier round is
 * dropped).  The records that came, from @from on without a hole, go to
 * @fn in order: *@got of them (*@cb_rc: what @fn returned when not 0; it
 * then stops).  Fewer than @n: *@s, *@e say why (retry when retryable),
 * *@missing when the leader has no record at from + *@got though the
 * stream is not purged past it (asked again).  Returns 0, MBS_EPURGED,
 * an error of the stream info that checked, or MBJ_EIO. */
static int get_many(mbs_conn *c, uint64_t from, uint32_t n,
                    int (*fn)(void *, const mbj_record *), void *ctx, uint32_t *got,
                    int *cb_rc, natsStatus *s, jsErrCode *e, bool *missing)
{
	natsMsg *ans[GET_WINDOW] = { 0 };
	char subj[MBS_STREAM_MAX + 40], reply[200], req[48];
	uint32_t sent = 0, have = 0;
	int rc = 0;

	*got = 0;
	*cb_rc = 0;
	*e = 0;
	if ((*s = got_sub(c)) != NATS_OK)
		return 0;
	c->got_round++;
	snprintf(subj, sizeof subj, "$JS.API.STREAM.MSG.GET.%s", c->stream);
	for (; sent < n; sent++) {
		snprintf(reply, sizeof reply, "%s.%" PRIu64 ".%" PRIu64, c->got_inbox, c->got_round,
		         from + sent);
		snprintf(req, sizeof req, "{\"seq\":%" PRIu64 "}", from + sent);
		if ((*s = natsConnection_PublishRequestString(c->nc, subj, reply, req)) != NATS_OK)
			break;
	}
	int64_t until = mbs_now_ms() + c->timeout_ms;
	size_t pre = strlen(c->got_inbox);
	while (have < sent) {
		int64_t left = until - mbs_now_ms();
		natsMsg *m = NULL;
		uint64_t round, seq;
		char tail;
		if (left <= 0) {
			*s = NATS_TIMEOUT;
			break;
		}
		natsStatus st = natsSubscription_NextMsg(&m, c->got, left);
		if (st != NATS_OK) {
			*s = st;
			break;
		}
		const char *rs = natsMsg_GetSubject(m);
		if (strlen(rs) > pre && rs[pre] == '.' &&
		    sscanf(rs + pre + 1, "%" SCNu64 ".%" SCNu64 "%c", &round, &seq, &tail) == 2 &&
		    round == c->got_round && seq >= from && seq < from + sent && !ans[seq - from]) {
			ans[seq - from] = m;
			have++;
		} else {
			natsMsg_Destroy(m);
		}
	}
	for (uint32_t i = 0; i < sent && ans[i] && !rc && !*cb_rc; i++) {
		natsStatus as = NATS_OK;
		jsErrCode ae = 0;
		uint8_t *body;
		size_t len;
		int r = got_answer(ans[i], from + i, &body, &len, &as, &ae);
		if (r < 0) {
			rc = mbs_fail(c, MBJ_EIO, "%s: stream %s: asked for seq %" PRIu64 ", answered "
			              "something else", c->redacted, c->stream, from + i);
		} else if (r == 1) {
			*s = as;
			*e = ae;
			if (ae == JSNoMessageFoundErr) {
				/* Purged, or not applied yet by a leader just
				 * elected (the stream said it holds it): ask again. */
				if (!(rc = stream_gap(c, from + i, from + i + 1))) {
					*missing = true;
					*s = NATS_TIMEOUT;
					*e = 0;
				}
			}
			break;
		} else {
			*cb_rc = deliver(from + i, body, len, fn, ctx);
			free(body);
			(*got)++;
		}
	}
	for (uint32_t i = 0; i < sent; i++)
		natsMsg_Destroy(ans[i]);
	if (*got == n) {
		*s = NATS_OK;
		*e = 0;
	} else if (*s == NATS_OK && !rc && !*cb_rc) {
		*s = NATS_TIMEOUT;   /* answers lost (a reconnect): ask again */
	}
	return rc;
}

/* Whether every replica of the stream is current, as @si says: only then
 * may a consumer (placed on any replica) read.  nats-server 2.9.10 was seen
 * to keep, on a stream leader resumed after SIGSTOP, a record the others
 * never stored, at a seq where they hold another: a consumer placed there
 * read that record, and its machine diverged from the rest.  Such a replica
 * is not current (it cannot catch up past its own record). */
static bool replicas_current(const jsStreamInfo *si)
{
	if (!si->Cluster)
		return true;
	for (int i = 0; i < si->Cluster->ReplicasLen; i++) {
		const jsPeerInfo *p = si->Cluster->Replicas[i];
		if (!p || !p->Current || p->Offline)
			return false;
	}
	return true;
}

#define FETCH_CONFIRM_MS 3000

int mbs_fetch(mbs_conn *c, uint64_t from, uint64_t to,
              int (*fn)(void *ctx, const mbj_record *rec), void *ctx)
{
	char w[160];
	if (from == 0)
		from = 1;
	/* nats-server 2.9 lets a replica answer a stream info when the
	 * leader is slow, with its own state: a range it says is purged or
	 * past the end is asked again (FETCH_CONFIRM_MS) before it is
	 * believed; one answer that holds it clears it. */
	uint64_t first = 0, last = 0;
	int64_t confirm = mbs_now_ms() + FETCH_CONFIRM_MS;
	bool current = false;
	int rc;
	for (;;) {
		jsStreamInfo *si = NULL;
		rc = mbs_get_info(c, c->stream, &si);
		if (rc)
			return rc;
		first = si->State.FirstSeq;
		last = si->State.LastSeq;
		current = replicas_current(si);
		jsStreamInfo_Destroy(si);
		bool odd = (to && to > last) || (from < first && last > 0 && from <= (to ? to : last));
		if (!odd || mbs_now_ms() >= confirm)
			break;
		usleep(100000);
	}
	if (to == 0)
		to = last;
	if (to > last)
		return mbs_fail(c, MBS_EBEHIND, "%s: stream %s ends at %" PRIu64 ", before %" PRIu64,
		            c->redacted, c->stream, last, to);
	if (from > to)
		return 0;
	if (from < first && last > 0)
		return mbs_fail(c, MBS_EPURGED, "%s: stream %s: records %" PRIu64 "..%" PRIu64
		            " were purged (the stream starts at %" PRIu64 ")", c->redacted,
		            c->stream, from, first - 1, first);
	uint64_t next = from;
	int64_t deadline = mbs_now_ms() + c->deadline_ms, step = 20;
	natsStatus s = NATS_OK;
	jsErrCode e = 0;
	bool gap = false;
	uint64_t get_upto = 0;      /* read by MSG.GET up to here (a consumer stalled) */
	bool missing = false;       /* MSG.GET found no record @next (not purged) */
	while (next <= to) {
		/* A consumer idle for half its inactivity threshold may be gone
		 * any moment: a new one costs less than a missed read. */
		if (c->pull && (!current || mbs_now_ms() - c->pull_used_ms > PULL_IDLE_MS / 2))
			drop_pull(c);
		if ((!c->pull || c->pull_next != next) &&
		    (!current || to - next < GET_MAX || next <= get_upto)) {
			uint64_t left = to - next + 1;
			uint32_t got;
			int cb_rc;
			rc = get_many(c, next, left < GET_WINDOW ? (uint32_t)left : GET_WINDOW, fn,
			              ctx, &got, &cb_rc, &s, &e, &missing);
			next += got;
			if (rc || (rc = cb_rc))
				return rc;
			if (got) {
				missing = false;
				step = 20;
				continue;
			}
			if (mbs_retryable(s, e) && mbs_backoff(deadline, &step))
				continue;
			break;
		}
		if (!c->pull || c->pull_next != next) {
			e = 0;
			s = open_pull(c, next, &e);
			if (s != NATS_OK) {
				/* No consumer now (the metadata group busy or
				 * leaderless): the stream's leader still serves. */
				get_upto = next + GET_MAX - 1;
				if (mbs_retryable(s, e) && mbs_backoff(deadline, &step))
					continue;
				break;
			}
		}
		uint64_t want = to - next + 1;
		jsFetchRequest fr;
		jsFetchRequest_Init(&fr);
		fr.Batch = want < FETCH_BATCH ? (int)want : FETCH_BATCH;
		fr.MaxBytes = FETCH_MAX_BYTES;
		fr.Expires = (int64_t)c->timeout_ms * 1000000;
		/* Idle heartbeats: a consumer that is gone (its server died, it
		 * expired) shows in 2 missed beats, not in a whole timeout. */
		if (c->timeout_ms >= 1000)
			fr.Heartbeat = 250ll * 1000000;
		natsMsgList list = { NULL, 0 };
		s = natsSubscription_FetchRequest(&list, c->pull, &fr);
		c->pull_used_ms = mbs_now_ms();
		if (s != NATS_OK && list.Count == 0) {
			/* The consumer may be gone with its server, or be on a
			 * replica that lags the stream: the leader serves the
			 * next records, then a new consumer is tried. */
			drop_pull(c);
			get_upto = next + GET_MAX - 1;
			if (mbs_retryable(s, 0) && mbs_backoff(deadline, &step))
				continue;
			break;
		}
		step = 20;
		for (int i = 0; i < list.Count && !rc; i++) {
			jsMsgMetaData *md = NULL;
			if (natsMsg_GetMetaData(&md, list.Msgs[i]) != NATS_OK) {
				continue;      /* not a stream message (a status) */
			}
			uint64_t sseq = md->Sequence.Stream;
			jsMsgMetaData_Destroy(md);
			if (sseq < next || sseq > to)
				continue;
			if (sseq > next) {
				/* A gap: purged under us (MBS_EPURGED), or a
				 * consumer that skipped records it did not have
				 * yet (seen while a stalled stream leader came
				 * back).  The stream denies deletes, so a gap is
				 * never filled with nothing: that would make this
				 * machine differ from the others.  Read again from
				 * @next with a new consumer, until the deadline. */
				if ((rc = stream_gap(c, next, sseq)))
					break;
				gap = true;
				get_upto = next + GET_MAX - 1;
				break;
			}
			rc = deliver(sseq, natsMsg_GetData(list.Msgs[i]),
			             (size_t)natsMsg_GetDataLength(list.Msgs[i]), fn, ctx);
			next = sseq + 1;
			c->pull_next = next;
		}
		if ((rc || gap) && next <= to)
			drop_pull(c);   /* stopped inside a batch: the consumer is ahead */
		natsMsgList_Destroy(&list);
		if (rc)
			return rc;
		if (gap) {
			gap = false;
			if (!mbs_backoff(deadline, &step))
				return mbs_fail(c, MBS_ETIMEOUT, "%s: stream %s: records from seq %"
				            PRIu64 " were skipped by every read until the deadline",
				            c->redacted, c->stream, next);
		}
	}
	if (next > to)
		return 0;
	if (missing)
		return mbs_fail(c, MBS_ETIMEOUT, "%s: stream %s: records from seq %" PRIu64
		                " were skipped by every read until the deadline", c->redacted,
		                c->stream, next);
	return mbs_fail(c, mbs_retryable(s, e) ? MBS_ETIMEOUT : mbs_auth_failure(s) ? MBS_EAUTH : MBJ_EIO,
	            "%s: stream %s: reading from seq %" PRIu64 ": %s", c->redacted,
	            c->stream, next, mbs_why(s, e, w, sizeof w));
}

/* Records @from..@upto-1 are missing between two delivered ones: 0 when the
 * stream still holds them (read again), MBS_EPURGED when purged under us. */
static int stream_gap(mbs_conn *c, uint64_t from, uint64_t upto)
{
	jsStreamInfo *si = NULL;
	int rc = mbs_get_info(c, c->stream, &si);
	if (rc)
		return rc;
	uint64_t first = si->State.FirstSeq;
	jsStreamInfo_Destroy(si);
	if (first > from)
		return mbs_fail(c, MBS_EPURGED, "%s: stream %s: records %" PRIu64 "..%" PRIu64
		            " were purged while reading", c->redacted, c->stream, from, upto - 1);
	return 0;
}

/* --- following -------------------------------------------------------- */

void mbs_wait_skip(mbs_conn *c, const char *prefix)
{
	snprintf(c->watch_skip, sizeof c->watch_skip, "%s", prefix ? prefix : "");
}

/* Whether a message seen by the watch counts as a wake-up. */
static bool counts(const mbs_conn *c, natsMsg *m)
{
	const char *id = NULL;

	return !*c->watch_skip || natsMsgHeader_Get(m, "Nats-Msg-Id", &id) != NATS_OK || !id ||
	       strncmp(id, c->watch_skip, strlen(c->watch_skip)) != 0;
}

int mbs_wait_beyond(mbs_conn *c, uint64_t seq, uint32_t timeout_ms)
{
	natsMsg *m = NULL;
	natsStatus s;
	if (!c->watch) {
		s = natsConnection_SubscribeSync(&c->watch, c->nc, c->subject);
		if (s == NATS_OK)
			s = natsSubscription_SetPendingLimits(c->watch, 65536, 256 << 20);
		if (s == NATS_OK)
			s = natsConnection_FlushTimeout(c->nc, c->timeout_ms);
		if (s != NATS_OK) {
			if (c->watch)
				natsSubscription_Destroy(c->watch);
			c->watch = NULL;
			return mbs_fail(c, mbs_retryable(s, 0) ? MBS_ETIMEOUT : MBJ_EIO,
			            "%s: subscribe to %s: %s", c->redacted, c->subject,
			            natsStatus_GetText(s));
		}
		/* Subscribed: whatever lands from now on is seen.  What
		 * landed before is in the stream's last seq. */
		mbs_info info;
		int rc = mbs_stream_info(c, &info);
		if (rc) {
			/* Not known what landed before: subscribe again next time. */
			natsSubscription_Unsubscribe(c->watch);
			natsSubscription_Destroy(c->watch);
			c->watch = NULL;
			return rc;
		}
		if (info.last_seq > seq)
			return 1;
	}
	int got = 0;
	/* Drain what is pending (without waiting), so that one wake-up
	 * stands for every message seen since the last call. */
	while ((s = natsSubscription_NextMsg(&m, c->watch, 0)) == NATS_OK ||
	       s == NATS_SLOW_CONSUMER) {
		got |= s == NATS_SLOW_CONSUMER || counts(c, m);
		natsMsg_Destroy(m);
		m = NULL;
	}
	if (got)
		return 1;
	int64_t until = mbs_now_ms() + (timeout_ms ? timeout_ms : 1), left;
	while ((left = until - mbs_now_ms()) > 0) {
		s = natsSubscription_NextMsg(&m, c->watch, left);
		got = s == NATS_SLOW_CONSUMER || (s == NATS_OK && counts(c, m));
		natsMsg_Destroy(m);
		m = NULL;
		if (got)
			return 1;
		if (s != NATS_OK)
			break;
	}
	if (s == NATS_OK)
		return 0;     /* only skipped messages until the timeout */
	if (s == NATS_TIMEOUT)
		return 0;
	if (mbs_retryable(s, 0))
		return 0;      /* disconnected: the caller polls, libnats reconnects */
	return mbs_fail(c, MBJ_EIO, "%s: waiting on %s: %s", c->redacted, c->subject,
	            natsStatus_GetText(s));
}

/* --- purging ---------------------------------------------------------- */

int mbs_purge_stream(mbs_conn *c, const char *stream, uint64_t seq)
{
	char w[160];
	jsStreamInfo *si = NULL;
	int rc = mbs_get_info(c, stream, &si);
	if (rc)
		return rc;
	uint64_t first = si->State.FirstSeq;
	jsStreamInfo_Destroy(si);
	/* Nothing before the first seq: no request at all.  nats-server 2.9.10
	 * asked to purge before seq 1 purges EVERY message. */
	if (seq <= first || seq <= 1)
		return 0;
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = c->timeout_ms;
	jo.Stream.Purge.Sequence = seq;   /* removes < seq */
	int64_t deadline = mbs_now_ms() + c->deadline_ms, step = 20;
	natsStatus s;
	jsErrCode e;
	for (;;) {
		e = 0;
		s = js_PurgeStream(c->js, stream, &jo, &e);
		if (s == NATS_OK)
			return 0;
		if (e == JSStreamNotFoundErr)
			return mbs_fail(c, MBS_ENOSTREAM, "%s: no stream %s", c->redacted, stream);
		if (!mbs_retryable(s, e) || !mbs_backoff(deadline, &step))
			break;
	}
	return mbs_fail(c, mbs_retryable(s, e) ? MBS_ETIMEOUT : MBJ_EIO,
	                "%s: purge of stream %s before %" PRIu64 ": %s", c->redacted,
	                stream, seq, mbs_why(s, e, w, sizeof w));
}

int mbs_purge_before(mbs_conn *c, uint64_t seq)
{
	return mbs_purge_stream(c, c->stream, seq);
}

/* A consumer by start time says how many records it has pending; when
 * some, its first one is fetched for its seq (it is there: no wait). */
int mbs_seq_since(mbs_conn *c, int64_t since_ns, uint64_t *seq)
{
	char w[160];
	natsSubscription *sub = NULL;
	jsConsumerInfo *ci = NULL;
	natsMsgList list = { NULL, 0 };
	jsOptions jo;
	jsErrCode e = 0;
	natsStatus s;

	*seq = 0;
	jsOptions_Init(&jo);
	jo.Wait = c->timeout_ms;
	if ((s = pull_sub(c, c->stream, c->subject, 0, since_ns, &sub, &e)) == NATS_OK &&
	    (s = natsSubscription_GetConsumerInfo(&ci, sub, &jo, &e)) == NATS_OK &&
	    ci->NumPending > 0 &&
	    (s = natsSubscription_Fetch(&list, sub, 1, (int64_t)c->timeout_ms, &e)) == NATS_OK) {
		jsMsgMetaData *md = NULL;
		for (int i = 0; i < list.Count && !*seq; i++)
			if (natsMsg_GetMetaData(&md, list.Msgs[i]) == NATS_OK) {
				*seq = md->Sequence.Stream;
				jsMsgMetaData_Destroy(md);
			}
		if (!*seq)
			s = NATS_NOT_FOUND;
	}
	natsMsgList_Destroy(&list);
	jsConsumerInfo_Destroy(ci);
	if (sub) {
		natsSubscription_Unsubscribe(sub);
		natsSubscription_Destroy(sub);
	}
	if (s == NATS_OK)
		return 0;
	return mbs_fail(c, mbs_retryable(s, e) ? MBS_ETIMEOUT : MBJ_EIO,
	                "%s: stream %s: the first record since a time: %s", c->redacted,
	                c->stream, mbs_why(s, e, w, sizeof w));
}
