/*
 * cluster.c - a bank whose journal is a NATS JetStream stream (cluster.h).
 *
 * BINDING.  membank.json "journal" records the stream's URL without
 * credentials ("nats://h1:4222,h2:4222/STREAM") when the bank is created;
 * the bank is bound to it for life.  An open with another journal (another
 * stream name, or no host in common), or a local bank opened with a URL,
 * or a bank on a stream opened with "" (the local journal), is refused
 * naming both.  cluster.json in the bank directory records the stream's
 * creation time as the server gave it when this machine first joined:
 * a stream deleted and created again under the same name has another, and
 * this machine then refuses writes (MB_EDIVERGED) instead of diverging.
 *
 * CATCH-UP.  The records of the stream past the store's committed end are
 * appended to the local journal as they are (a message that is not
 * membank's, or whose payload is not of its type's shape, as a
 * REC_CANCELLED with an empty payload: nothing, the same on every machine,
 * counted) and applied, in the caller's write transaction.
 *
 * FOLLOWING.  While a handle is open, one process per bank directory (the
 * holder of store/follow.lock) runs a thread that waits for new messages
 * on the stream's subject (mbs_wait_beyond) and catches up at once, with a
 * connection of its own; it starts FOLLOW_START_MS after the open (a
 * short-lived command never pays for it).  A message this machine's own
 * writers published (its Nats-Msg-Id starts with this machine's nonce) does
 * not wake it at all: its writer applies it (mbs_wait_skip).  Every
 * FOLLOW_CHECK_MS it also looks at the stream itself (recreated, or behind
 * this machine, or holding a record of this machine's whose writer died
 * before applying it).
 *
 * TURNS.  Appends are optimistic (each publish expects the stream's end as
 * this machine knows it), so a machine that must read before it can write
 * again (a slow one, or one far from the stream's leader) can lose every
 * race to a busy one that has nothing to read: seen, a machine whose writes
 * all failed for minutes while the other wrote on.  So a pass that lost
 * TURN_AFTER races in a row, over TURN_AFTER_MS, asks for the turn: it
 * publishes a turn record, REC_CANCELLED with the payload ["turn", nonce]
 * (15 bytes: fixarray 2, fixstr 4, uint64; the nonce of this machine's write
 * queue), expecting nothing, so it lands at once.  Every machine applies it
 * as nothing, like any REC_CANCELLED, and notes it in the store (meta
 * "turn": [seq, nonce]).  A pass of another machine whose store ends at that
 * record waits (CLUSTER_YIELD: a pause, a catch-up, again) until a record
 * follows it, at most TURN_HOLD_MS per pass; the machine that asked catches
 * up to its turn record and publishes expecting it, with nobody else trying.
 * Advice only: a machine of an older version applies it as nothing and does
 * not wait; a turn asked for by a machine that then wrote nothing costs the
 * others TURN_HOLD_MS once.
 *
 * CHECKPOINTS.  A checkpoint into the bank directory is put into the
 * cluster (mbs_checkpoint_put) and the stream purged before its seq less
 * CKPT_MARGIN records, keeping every record of the last CKPT_KEEP_S
 * seconds, so that machines a little behind need no bootstrap.
 * A machine created while the stream's first record is past 1, or whose
 * end is before it (purged while it was away, or while it fell behind with
 * the bank open: a catch-up of the open, a write, a fresh read or the
 * follower finds its next record purged, CLUSTER_REBOOT), starts from the
 * cluster's checkpoint (reboot(), bootstrap()).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "checkpoint.h"
#include "cluster.h"
#include "file.h"
#include "group.h"
#include "load.h"
#include "lockfile.h"
#include "stream.h"

#define CLUSTER_FILE "cluster.json"
#define CKPT_MARGIN 1000u  /* records kept before a checkpoint's seq ... */
#define CKPT_KEEP_S 120    /* ... and every record of the last 2 minutes */
#define DEFAULT_TIMEOUT_MS 15000u
#define FOLLOW_START_MS 1000u
#define FOLLOW_WAIT_MS 100u
#define FOLLOW_CHECK_MS 2000u
#define FOLLOW_RETRY_MS 1000u

struct cluster {
	char *url;                 /* as asked, credentials included: memory only */
	char *creds, *ca, *cert, *key;
	char redacted[512];
	char stream[72];
	uint32_t timeout_ms, replicas;
	pthread_mutex_t mu;        /* conn: the handle's connection */
	mbs_conn *conn;
	char created[40];          /* the stream's creation, as cluster.json says */
	char props[MBS_DESC_MAX + 1]; /* the bank's properties, for a stream it creates */
	_Atomic uint64_t stream_last, foreign, ckpt_seq, ckpt_failures, conflicts;
	_Atomic uint64_t turns_asked, turns_waited;  /* TURNS */
	_Atomic int64_t contact_us;
	atomic_bool diverged;
	char why[400];             /* written once, before diverged is set */
	/* not 0: the stream was seen to end at behind_last, before seq
	 * behind_at that this machine applied; writes wait (cluster_writable) */
	_Atomic uint64_t behind_at, behind_last;
	pthread_mutex_t why_mu;
	/* the follower */
	pthread_t thr;
	bool thr_started, stop;
	pthread_mutex_t fmu;
	pthread_cond_t fcv;
};

static int64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void contact(struct cluster *c, uint64_t last)
{
	uint64_t was = atomic_load(&c->stream_last);

	atomic_store(&c->contact_us, wall_us());
	while (last > was && !atomic_compare_exchange_weak(&c->stream_last, &was, last))
		;
}

/* ------------------------------------------------------------- the URL */

/* @url without credentials: the user, password or token before an '@' of
 * each comma-separated server is dropped. */
static void redact(const char *url, char *out, size_t cap)
{
	const char *p = strstr(url, "://"), *slash;
	size_t n = 0;

	if (!p) {
		snprintf(out, cap, "(not a URL)");
		return;
	}
	p += 3;
	n = (size_t)snprintf(out, cap, "%.*s", (int)(p - url), url);
	slash = strchr(p, '/');
	if (!slash)
		slash = p + strlen(p);
	while (p < slash && n < cap) {
		const char *comma = memchr(p, ',', (size_t)(slash - p)), *at;
		const char *stop = comma ? comma : slash;

		at = memchr(p, '@', (size_t)(stop - p));
		if (at)
			p = at + 1;
		n += (size_t)snprintf(out + n, cap - n, "%.*s%s", (int)(stop - p), p, comma ? "," : "");
		p = comma ? comma + 1 : stop;
	}
	if (n < cap)
		snprintf(out + n, cap - n, "%s", slash);
}

static const char *stream_of(const char *redacted)
{
	const char *s = strrchr(redacted, '/');

	return s ? s + 1 : "";
}

/* The server list of @url ("h1:p1,h2:p2" between the scheme and the
 * "/STREAM"): its start, and its end in *@end. */
static const char *hosts_of(const char *url, const char **end)
{
	const char *p = strstr(url, "://");

	p = p ? p + 3 : url;
	*end = strchr(p, '/');
	if (!*end)
		*end = p + strlen(p);
	return p;
}

/* @host (@len bytes) one of @list's servers? */
static bool host_in(const char *host, size_t len, const char *list)
{
	const char *slash, *p = hosts_of(list, &slash);

	while (p < slash) {
		const char *comma = memchr(p, ',', (size_t)(slash - p));
		const char *stop = comma ? comma : slash;

		if ((size_t)(stop - p) == len && !memcmp(p, host, len))
			return true;
		p = comma ? comma + 1 : stop;
	}
	return false;
}

/* The same journal: the same stream, on a cluster with a server in common
 * (a URL may list the servers in another order, or more of them). */
static bool same_journal(const char *a, const char *b)
{
	const char *slash, *p = hosts_of(a, &slash);

	if (strcmp(stream_of(a), stream_of(b)))
		return false;
	while (p < slash) {
		const char *comma = memchr(p, ',', (size_t)(slash - p));
		const char *stop = comma ? comma : slash;

		if (host_in(p, (size_t)(stop - p), b))
			return true;
		p = comma ? comma + 1 : stop;
	}
	return false;
}

static char *dup_opt(const char *opt, const char *env, bool *fail)
{
	const char *v = opt ? opt : getenv(env);
	char *d;

	if (!v || !*v)
		return NULL;
	if (!(d = strdup(v)))
		*fail = true;
	return d;
}

int cluster_bind(mb_bank *b, const char *recorded, bool creating)
{
	const char *asked = b->opts.journal_url ? b->opts.journal_url : getenv("MEMBANK_JOURNAL");
	char why[256], red[512], rec_red[512];
	const char *url;
	struct cluster *c;
	bool fail = false;

	if (recorded && !*recorded)
		recorded = NULL;
	if (creating) {
		url = asked && *asked ? asked : NULL;
	} else if (!recorded) {
		if (asked && *asked) {
			redact(asked, red, sizeof red);
			return mb_fail(NULL, MB_EINVAL, "%s: the bank keeps a local journal (it was "
			               "created without one): it cannot be opened with journal %s",
			               b->path, red);
		}
		url = NULL;
	} else if (!asked) {
		url = recorded;
	} else if (!*asked) {
		return mb_fail(NULL, MB_EINVAL, "%s: the bank is bound to journal %s for life: it "
		               "cannot be opened with the local journal", b->path, recorded);
	} else {
		redact(asked, red, sizeof red);
		redact(recorded, rec_red, sizeof rec_red);
		if (!same_journal(red, rec_red))
			return mb_fail(NULL, MB_EINVAL, "%s: the bank is bound to journal %s for life: "
			               "it cannot be opened with journal %s", b->path, rec_red, red);
		url = asked;
	}
	if (!url)
		return 0;
	if (mbs_url_check(url, why, sizeof why)) {
		redact(url, red, sizeof red);
		return mb_fail(NULL, MB_EINVAL, "journal URL %s: %s", red, why);
	}
	if (!(c = calloc(1, sizeof *c)))
		return mb_fail(NULL, MB_ENOMEM, "out of memory");
	b->cl = c;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->why_mu, NULL);
	pthread_mutex_init(&c->fmu, NULL);
	pthread_cond_init(&c->fcv, NULL);
	c->url = strdup(url);
	c->creds = dup_opt(b->opts.journal_creds, "MEMBANK_JOURNAL_CREDS", &fail);
	c->ca = dup_opt(b->opts.journal_tls_ca, "", &fail);
	c->cert = dup_opt(b->opts.journal_tls_cert, "", &fail);
	c->key = dup_opt(b->opts.journal_tls_key, "", &fail);
	if (!c->url || fail)
		return mb_fail(NULL, MB_ENOMEM, "out of memory");
	redact(url, c->redacted, sizeof c->redacted);
	snprintf(c->stream, sizeof c->stream, "%s", stream_of(c->redacted));
	c->timeout_ms = b->opts.journal_timeout_ms ? b->opts.journal_timeout_ms : DEFAULT_TIMEOUT_MS;
	c->replicas = b->opts.journal_replicas ? b->opts.journal_replicas : 1;
	return 0;
}

const char *cluster_recorded_url(const mb_bank *b)
{
	return b->cl ? b->cl->redacted : NULL;
}

uint32_t cluster_timeout_ms(const mb_bank *b)
{
	return b->cl ? b->cl->timeout_ms : 0;
}

/* ------------------------------------------------------- connections */

/* A request waits at most half the write's bound, and a publish retries
 * for that half: the other half is for the catch-up that decides a
 * publish that timed out. */
static void conn_options(const struct cluster *c, mbs_options *o)
{
	memset(o, 0, sizeof *o);
	o->url = c->url;
	o->creds_file = c->creds;
	o->tls_ca = c->ca;
	o->tls_cert = c->cert;
	o->tls_key = c->key;
	o->description = c->props[0] ? c->props : NULL;
	o->deadline_ms = c->timeout_ms / 2 ? c->timeout_ms / 2 : 1;
	o->timeout_ms = o->deadline_ms < 2000 ? o->deadline_ms : 2000;
}

/* An mbs_* code as an MB_E* code, with the message. */
static int stream_fail(mb_bank *b, const void *tag, int src, const char *what, const char *msg)
{
	struct cluster *c = b->cl;
	int code;

	switch (src) {
	case MBS_EAUTH: code = MB_EPERM; break;
	case MBS_EURL: case MBS_EFOREIGN: code = MB_EINVAL; break;
	case MBS_EBEHIND: case MBS_ENOSTREAM: case MBS_EPURGED: code = MB_EDIVERGED; break;
	case MBS_ETIMEOUT: case MBS_ECONFLICT: code = MB_EUNAVAIL; break;
	default: code = src <= MBJ_EIO && src >= MBJ_EFATAL ? bank_journal_code(src) : MB_EUNAVAIL;
	}
	if (code == MB_EIO)  /* the connection's failures: the cluster's */
		code = MB_EUNAVAIL;
	return mb_fail(tag, code, "%s (journal %s): %s%s", what, c->redacted,
	               msg && *msg ? msg : mb_strerror(code),
	               src == MBS_ETIMEOUT ? "; reads still serve this machine's copy" : "");
}

/* libnats keeps process-wide state (its threads, the generator of inbox
 * names) that a child of fork() inherits without the threads, and with the
 * parent's generator: its requests would get the answers meant for another
 * process (a publish acknowledged with another record's seq).  So a process
 * forked after this library used NATS may not use it: it must exec afresh.
 * The fork generation of the first use; UINT_MAX: none yet. */
static unsigned nats_generation = UINT_MAX;
static pthread_mutex_t nats_gen_mu = PTHREAD_MUTEX_INITIALIZER;

static bool nats_usable(void)
{
	unsigned gen = mb_fork_generation();
	bool ok;

	pthread_mutex_lock(&nats_gen_mu);
	if (nats_generation == UINT_MAX)
		nats_generation = gen;
	ok = nats_generation == gen;
	pthread_mutex_unlock(&nats_gen_mu);
	return ok;
}

/* @deadline_ms: 0 for the handle's (half the write bound). */
static int connect_within(mb_bank *b, const void *tag, mbs_conn **out, uint32_t deadline_ms)
{
	mbs_options o;
	int rc;

	*out = NULL;
	if (!nats_usable())
		return mb_fail(tag, MB_EPERM, "journal %s: this process was forked from one that "
		               "had used NATS (libnats cannot be used across fork()): open banks on a "
		               "stream in a process started afresh (exec)", b->cl->redacted);
	conn_options(b->cl, &o);
	if (deadline_ms && deadline_ms < o.deadline_ms)
		o.deadline_ms = o.timeout_ms = deadline_ms;
	if ((rc = mbs_connect(&o, out)))
		return stream_fail(b, tag, rc, "cannot connect", mbs_connect_errmsg());
	atomic_store(&b->cl->contact_us, wall_us());
	return 0;
}

static int connect_to(mb_bank *b, const void *tag, mbs_conn **out)
{
	return connect_within(b, tag, out, 0);
}

/* Under c->mu: the handle's connection, made again when it is missing. */
static int conn_get(mb_bank *b, const void *tag)
{
	return b->cl->conn ? 0 : connect_to(b, tag, &b->cl->conn);
}

/* Writes are refused from now on, for the reason @fmt says (after "stream
 * NAME (URL) "). */
static void set_diverged(mb_bank *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_diverged(mb_bank *b, const char *fmt, ...)
{
	struct cluster *c = b->cl;
	va_list ap;
	int n;

	pthread_mutex_lock(&c->why_mu);
	if (!atomic_load(&c->diverged)) {
		n = snprintf(c->why, sizeof c->why, "stream %s (%s) ", c->stream, c->redacted);
		va_start(ap, fmt);
		if (n > 0 && (size_t)n < sizeof c->why)
			vsnprintf(c->why + n, sizeof c->why - (size_t)n, fmt, ap);
		va_end(ap);
		atomic_store(&c->diverged, true);
	}
	pthread_mutex_unlock(&c->why_mu);
}

static bool behind_cleared(mb_bank *b, mbs_conn *conn, uint64_t at);

/* MB_EDIVERGED under @tag, with the reason set_diverged() gave. */
static int diverged_fail(mb_bank *b, const void *tag)
{
	struct cluster *c = b->cl;
	char why[sizeof c->why];

	pthread_mutex_lock(&c->why_mu);
	memcpy(why, c->why, sizeof why);
	pthread_mutex_unlock(&c->why_mu);
	return mb_fail(tag, MB_EDIVERGED, "%s", why);
}

/* Not under c->mu (a stream behind is asked again on the handle's
 * connection). */
int cluster_writable(mb_bank *b)
{
	struct cluster *c = b->cl;
	uint64_t at;
	bool ok;

	if (!c)
		return 0;
	if (!atomic_load(&c->diverged) && (at = atomic_load(&c->behind_at))) {
		pthread_mutex_lock(&c->mu);
		ok = !conn_get(b, b->tag) && behind_cleared(b, c->conn, at);
		pthread_mutex_unlock(&c->mu);
		if (!ok && !atomic_load(&c->diverged))
			return mb_fail(b->tag, MB_EUNAVAIL, "stream %s (%s) ended at seq %llu when last "
			               "asked, before seq %llu that this machine applied (a server that "
			               "lags answered, or the stream was restored from an older copy): "
			               "writes wait until it holds seq %llu again", c->stream,
			               c->redacted, (unsigned long long)atomic_load(&c->behind_last),
			               (unsigned long long)at, (unsigned long long)at);
	}
	return atomic_load(&c->diverged) ? diverged_fail(b, b->tag) : 0;
}

/* ------------------------------------------------- cluster.json */

static void read_created(mb_bank *b, char out[40])
{
	char path[4096], text[512];
	const cJSON *v;
	cJSON *j;
	ssize_t n = -1;
	int fd;

	out[0] = '\0';
	if (mb_pathf(path, sizeof path, "%s/%s", b->path, CLUSTER_FILE) ||
	    (fd = mb_open_fd(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0)) < 0)
		return;
	n = read(fd, text, sizeof text - 1);
	close(fd);
	if (n <= 0)
		return;
	text[n] = '\0';
	if ((j = cJSON_Parse(text)) && cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(j, "created")))
		snprintf(out, 40, "%s", v->valuestring);
	cJSON_Delete(j);
}

static int write_created(mb_bank *b, const char *created)
{
	char text[256];

	snprintf(text, sizeof text, "{\"stream\":\"%s\",\"created\":\"%s\"}\n", b->cl->stream,
	         created);
	return mb_write_file_atomic(b->path, CLUSTER_FILE, text, strlen(text), b->file_mode, NULL);
}

/* The stream as it is against what this machine followed.  Recreated:
 * writes are refused for good.  Ending before what this machine applied:
 * writes wait (behind_at) until it holds that seq again, with this
 * machine's record there (behind_cleared).  nats-server 2.9 lets a replica
 * answer a stream info when the leader is slow or just changed, with its
 * own state, which may lag records the quorum acknowledged: a verdict
 * taken on one such answer must not be for good.  @conn: the connection
 * @info came from. */
static void check_stream(mb_bank *b, mbs_conn *conn, const mbs_info *info, uint64_t applied)
{
	struct cluster *c = b->cl;

	if (*c->created && strcmp(c->created, info->created)) {
		set_diverged(b, "was deleted and created again (at %s; this machine followed the "
		             "one created at %s): writes are refused; move this bank directory aside "
		             "and open it again to start from the new stream", info->created,
		             c->created);
	} else if (info->last_seq < applied) {
		atomic_store(&c->behind_last, info->last_seq);
		uint64_t was = 0;
		atomic_compare_exchange_strong(&c->behind_at, &was, applied);
	} else if (atomic_load(&c->behind_at)) {
		behind_cleared(b, conn, atomic_load(&c->behind_at));
	}
}

/* ------------------------------------------------------------ catch-up */

/* The store's committed end (0 when it cannot be read). */
static uint64_t applied_seq(mb_bank *b)
{
	mbj_pos end = { 0 };
	kv_txn *t;

	if (kv_begin(b->kv, false, &t))
		return 0;
	if (bank_jend_load(t, &end))
		end.seq = 0;
	kv_abort(t);
	return end.seq;
}


typedef struct cu_ctx {
	mb_bank *b;
	kv_txn *t;
	mbj_pos *end;
	int rc;
} cu_ctx;

static const uint8_t empty_array = 0x90;

/* A record as this machine applies it: not membank's (type 0), never
 * published by a membank (CANCELLED), or not of its type's shape, it is
 * applied (and journaled) as nothing, on every machine.  @r: decoded. */
static bool normalize(const mbj_record *rec, uint8_t *type, const void **payload,
                      uint32_t *len, mb_rec *r)
{
	*type = rec->type;
	*payload = rec->payload;
	*len = rec->len;
	if (*type == 0 || *type == REC_CANCELLED || *type > REC_MAX ||
	    rec_decode(*type, rec->ts_us, *payload, *len, r)) {
		*type = REC_CANCELLED;
		*payload = &empty_array;
		*len = 1;
		return false;
	}
	return true;
}

/* A turn record's payload (TURNS): this head, then the nonce, be64. */
static const uint8_t turn_head[7] = { 0x92, 0xa4, 't', 'u', 'r', 'n', 0xcf };
#define TURN_LEN (sizeof turn_head + 8)

/* A turn record (TURNS): its machine's nonce in *@nonce. */
static bool turn_of(const mbj_record *rec, uint64_t *nonce)
{
	if (rec->type != REC_CANCELLED || rec->len != TURN_LEN ||
	    memcmp(rec->payload, turn_head, sizeof turn_head))
		return false;
	*nonce = st_get_be64((const uint8_t *)rec->payload + sizeof turn_head);
	return true;
}

static int cu_one(void *ctx, const mbj_record *rec)
{
	cu_ctx *x = ctx;
	mb_bank *b = x->b;
	const void *payload;
	uint32_t len;
	uint8_t type;
	mbj_pos ne;
	mb_rec r;
	int jrc;

	if (rec->seq != x->end->seq + 1) {
		x->rc = mb_fail(b->tag, MB_ECORRUPT, "catch-up: the stream gave seq %llu after %llu",
		                (unsigned long long)rec->seq, (unsigned long long)x->end->seq);
		return 1;
	}
	if (!normalize(rec, &type, &payload, &len, &r) && rec->type != REC_CANCELLED)
		atomic_fetch_add(&b->cl->foreign, 1);
	if ((jrc = mbj_append(b->jn, x->end, type, rec->ts_us, payload, len, &ne))) {
		x->rc = bank_journal_fail(b, jrc, "catch-up: journal append");
		return 1;
	}
	*x->end = ne;
	uint64_t nonce;
	if (turn_of(rec, &nonce) && (x->rc = st_turn_store(x->t, rec->seq, nonce))) {
		mb_fail(b->tag, x->rc, "catch-up: noting the turn record %llu: %s",
		        (unsigned long long)rec->seq, mb_strerror(x->rc));
		return 1;
	}
	if (type != REC_CANCELLED && (x->rc = apply_record(x->t, b->history_limit, &r))) {
		if (x->rc != KV_EMAPFULL)
			mb_fail(b->tag, x->rc, "catch-up: applying record %llu: %s",
			        (unsigned long long)rec->seq, mb_strerror(x->rc));
		return 1;
	}
	return 0;
}

static int catch_up_with(mb_bank *b, mbs_conn *conn, kv_txn *t, mbj_pos *end)
{
	cu_ctx x = { b, t, end, 0 };
	uint64_t until = mono_ms() + b->cl->timeout_ms / 2;
	int rc;

	/* a request that timed out (a busy or electing cluster) is asked
	 * again, within half the bound (the records applied so far stay) */
	while ((rc = mbs_fetch(conn, end->seq + 1, 0, cu_one, &x)) == MBS_ETIMEOUT &&
	       mono_ms() < until)
		;

	if (rc == 1 && x.rc)
		return x.rc;
	/* the caller ends its transaction and starts again from the
	 * cluster's checkpoint (reboot()) */
	if (rc == MBS_EPURGED)
		return CLUSTER_REBOOT;
	if (rc)
		return stream_fail(b, b->tag, rc, "catch-up", mbs_errmsg(conn));
	contact(b->cl, end->seq);
	return 0;
}

int cluster_catch_up(mb_bank *b, kv_txn *t, mbj_pos *end)
{
	struct cluster *c = b->cl;
	int rc;

	pthread_mutex_lock(&c->mu);
	if (!(rc = conn_get(b, b->tag)))
		rc = catch_up_with(b, c->conn, t, end);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

static int reboot(mb_bank *b, mbs_conn *conn, const void *tag);

/* A catch-up that found its records purged this many times in one call,
 * each time after starting again from the cluster's checkpoint, gives up
 * (the stream purged past the newest checkpoint again meanwhile, or a
 * stream whose answers disagree): MB_EUNAVAIL, try again. */
#define REBOOT_TRIES 3u

static int purged_again(mb_bank *b, const void *tag)
{
	return mb_fail(tag, MB_EUNAVAIL, "catch-up: stream %s (%s) was purged past this "
	               "machine's end again after it started from the cluster's checkpoint %u "
	               "times: try again", b->cl->stream, b->cl->redacted, REBOOT_TRIES);
}

/* One transaction: roll forward, catch up, commit (the map grown as
 * needed); the records after this machine's end purged: the cluster's
 * checkpoint first (reboot()), outside the transaction.  @conn NULL: the
 * handle's. */
static int catch_up_txn(mb_bank *b, mbs_conn *conn, const void *tag)
{
	unsigned boots = 0;
	mbj_pos end, was;
	kv_txn *t;
	int rc;

	for (int tries = 0; tries < 40; tries++) {
		if ((rc = kv_begin(b->kv, true, &t)))
			return mb_fail(tag, rc, "catch-up: cannot begin a write: %s", mb_strerror(rc));
		if (!(rc = bank_jend_load(t, &end))) {
			was = end;
			if (!(rc = bank_roll_forward(b, t, &end)))
				rc = conn ? catch_up_with(b, conn, t, &end) : cluster_catch_up(b, t, &end);
		}
		if (!rc && !memcmp(&was, &end, sizeof end)) {
			kv_abort(t);
			return 0;
		}
		if (!rc)
			rc = bank_jend_store(t, &end);
		if ((rc = kv_end(t, rc)) == CLUSTER_REBOOT) {
			if (++boots > REBOOT_TRIES)
				return purged_again(b, tag);
			if ((rc = reboot(b, conn, tag)))
				return rc;
			continue;
		}
		if (rc != KV_EMAPFULL)
			return rc;
		if ((rc = kv_grow(b->kv)))
			return mb_fail(tag, rc, "catch-up: the map cannot grow");
	}
	return mb_fail(tag, MB_ENOSPC, "catch-up: the map cannot grow enough");
}

typedef struct same_ctx {
	const uint8_t *payload;
	uint32_t len;
	uint8_t type;
	int64_t ts;
	bool same;
} same_ctx;

static int same_one(void *ctx, const mbj_record *rec)
{
	same_ctx *x = ctx;
	const void *payload;
	uint32_t len;
	uint8_t type;
	mb_rec r;

	normalize(rec, &type, &payload, &len, &r);
	x->same = type == x->type && rec->ts_us == x->ts && len == x->len &&
	          !memcmp(payload, x->payload, len);
	return 0;
}

/* Under c->mu (@conn the handle's) or on the follower's connection: does
 * the stream hold seq @at again, and is it the record this machine
 * applied there?  Yes: writes go on (behind_at cleared).  Another record:
 * the stream was restored from an older copy and written since; writes are
 * refused for good.  Not yet, or not known: false. */
static bool behind_cleared(mb_bank *b, mbs_conn *conn, uint64_t at)
{
	struct cluster *c = b->cl;
	same_ctx x = { 0 };
	uint8_t *mine = NULL;
	mbs_info info;
	int rc;

	if (mbs_stream_info(conn, &info))
		return false;
	contact(c, info.last_seq);
	if (info.last_seq < at) {
		atomic_store(&c->behind_last, info.last_seq);
		return false;
	}
	/* this machine's record at @at: none when it started from a checkpoint
	 * at @at (its journal begins after it), and none in the stream when
	 * purged since; then the end alone is asked (the creation time was) */
	rc = cluster_local_record(b, at, &x.type, &x.ts, &mine, &x.len);
	if (rc < 0) {
		mb_clear_error(NULL);
		return false;
	}
	x.same = true;
	if (rc == 1) {
		x.payload = mine;
		rc = mbs_fetch(conn, at, at, same_one, &x);
		if (rc == MBS_EPURGED)
			x.same = true, rc = 0;
	}
	free(mine);
	if (rc)
		return false;
	if (!x.same) {
		set_diverged(b, "holds at seq %llu a record other than the one this machine "
		             "applied there (restored from an older copy, then written?): writes "
		             "are refused", (unsigned long long)at);
		return false;
	}
	atomic_compare_exchange_strong(&c->behind_at, &at, 0);
	return true;
}

/* ------------------------------------------------------------ publish */

int cluster_publish(mb_bank *b, const mbj_pos *end, uint8_t type, int64_t ts,
                    const void *payload, uint32_t len, uint64_t *seq, bool *timed_out)
{
	struct cluster *c = b->cl;
	char id[64];
	int rc;

	*timed_out = false;
	/* a new id per attempt (the same for the retries inside it): the
	 * server then answers a retry of a publish that landed with its seq */
	snprintf(id, sizeof id, "%016llx-%llu", (unsigned long long)gq_nonce(b->gq),
	         (unsigned long long)gq_new_ticket(b->gq));
	pthread_mutex_lock(&c->mu);
	if (!(rc = conn_get(b, b->tag)) &&
	    (rc = mbs_publish(c->conn, end->seq, id, type, ts, payload, len, seq))) {
		if (rc == MBS_ECONFLICT) {
			atomic_fetch_add(&c->conflicts, 1);
			rc = CLUSTER_RETRY;
		}
		else {
			*timed_out = rc == MBS_ETIMEOUT;
			rc = stream_fail(b, b->tag, rc, "publish", mbs_errmsg(c->conn));
		}
	}
	pthread_mutex_unlock(&c->mu);
	if (!rc && *seq != end->seq + 1) {
		set_diverged(b, "stored a record at seq %llu where seq %llu was expected (message "
		             "id %s): writes are refused", (unsigned long long)*seq,
		             (unsigned long long)end->seq + 1, id);
		return diverged_fail(b, b->tag);
	}
	if (!rc)
		contact(c, *seq);
	return rc;
}

void cluster_ask_turn(mb_bank *b)
{
	struct cluster *c = b->cl;
	uint8_t turn[TURN_LEN];
	uint64_t seq;
	char id[64];

	memcpy(turn, turn_head, sizeof turn_head);
	st_be64(turn + sizeof turn_head, gq_nonce(b->gq));
	/* this machine's nonce first, like its writes' ids (FOLLOWING) */
	snprintf(id, sizeof id, "%016llx-%llu", (unsigned long long)gq_nonce(b->gq),
	         (unsigned long long)gq_new_ticket(b->gq));
	pthread_mutex_lock(&c->mu);
	if (!conn_get(b, b->tag) &&
	    !mbs_publish(c->conn, MBS_EXPECT_NONE, id, REC_CANCELLED, wall_us(), turn,
	                 TURN_LEN, &seq)) {
		atomic_fetch_add(&c->turns_asked, 1);
		contact(c, seq);
	}
	pthread_mutex_unlock(&c->mu);
	mb_clear_error(b->tag);
}

bool cluster_turn_taken(mb_bank *b, kv_txn *t, uint64_t end_seq, bool first)
{
	uint64_t seq, nonce;

	if (st_turn_load(t, &seq, &nonce) || seq != end_seq || !seq ||
	    nonce == gq_nonce(b->gq))
		return false;
	if (first)
		atomic_fetch_add(&b->cl->turns_waited, 1);
	return true;
}

int cluster_local_record(mb_bank *b, uint64_t seq, uint8_t *type, int64_t *ts,
                         uint8_t **payload, uint32_t *len)
{
	mbj_record rec;
	mbj_iter *it;
	int rc = mbj_iter_open(b->journal_dir, seq, &it);

	*payload = NULL;
	if (rc)
		return mb_fail(b->tag, rc == MBJ_EINVAL ? MB_ECORRUPT : bank_journal_code(rc),
		               "journal: cannot read seq %llu", (unsigned long long)seq);
	while ((rc = mbj_iter_next(it, &rec)) == 1 && rec.seq < seq)
		;
	if (rc == 1 && rec.seq == seq) {
		if (!(*payload = malloc(rec.len ? rec.len : 1)))
			rc = mb_fail(b->tag, MB_ENOMEM, "out of memory");
		else {
			memcpy(*payload, rec.payload, rec.len);
			*type = rec.type;
			*ts = rec.ts_us;
			*len = rec.len;
		}
	} else if (rc >= 0) {
		rc = 0;
	} else {
		rc = mb_fail(b->tag, bank_journal_code(rc), "journal: %s", mbj_iter_errmsg(it));
	}
	mbj_iter_close(it);
	return rc;
}

/* ------------------------------------------------------------ bootstrap */

/* The cluster keeps a checkpoint's four files, its checkpoint.json (the
 * error-type state and page counters: without them this machine would drop
 * other error types than the others) and its seq.  That checkpoint.json
 * names the putting machine's segment and offset: here it names none (the
 * journal here goes on from seq + 1).  A checkpoint put without one (by an
 * older membank) gets one with the position only, and loads as the four
 * files alone do (checkpoint.h). */
static int local_position(mb_bank *b, const char *dir, uint64_t seq)
{
	char text[128], path[4200];
	struct stat st;
	cJSON *j = NULL;
	char *out;
	uint64_t was = 0;
	int rc;

	mb_pathf(path, sizeof path, "%s/%s", dir, MB_CHECKPOINT_FILE);
	if (lstat(path, &st) && errno == ENOENT) {
		snprintf(text, sizeof text, "{\"format\":%d,\"seq\":%llu,\"segment\":0,"
		         "\"offset\":0}\n", MB_CHECKPOINT_FORMAT, (unsigned long long)seq);
		return mb_write_file_atomic(dir, MB_CHECKPOINT_FILE, text, strlen(text),
		                            b->file_mode, NULL);
	}
	if ((rc = load_parse_file(dir, MB_CHECKPOINT_FILE, MB_MAX_CHECKPOINT_FILE, NULL, &j)))
		return rc;
	if (!cJSON_IsObject(j) || !json_whole(cJSON_GetObjectItemCaseSensitive(j, "seq"),
	                                      (double)(1ull << 53), &was) || was != seq) {
		cJSON_Delete(j);
		return mb_fail(NULL, MB_ECORRUPT, "bootstrap: the cluster's checkpoint covers seq "
		               "%llu but its %s says %llu", (unsigned long long)seq,
		               MB_CHECKPOINT_FILE, (unsigned long long)was);
	}
	cJSON_DeleteItemFromObjectCaseSensitive(j, "segment");
	cJSON_DeleteItemFromObjectCaseSensitive(j, "offset");
	if (!cJSON_AddNumberToObject(j, "segment", 0) || !cJSON_AddNumberToObject(j, "offset", 0) ||
	    !(out = cJSON_PrintUnformatted(j))) {
		cJSON_Delete(j);
		return mb_fail(NULL, MB_ENOMEM, "bootstrap: out of memory");
	}
	cJSON_Delete(j);
	rc = mb_write_file_atomic(dir, MB_CHECKPOINT_FILE, out, strlen(out), b->file_mode, NULL);
	cJSON_free(out);
	return rc;
}

/* tests: MEMBANK_TEST_BOOT_DIE=fetched|installed|rebuilt kills this
 * process at that point of a bootstrap (tests/cluster, crashes) */
static void boot_die(const char *where)
{
	const char *at = getenv("MEMBANK_TEST_BOOT_DIE");

	if (at && !strcmp(at, where))
		raise(SIGKILL);
}

/* The local journal that a bootstrap at @seq replaced: its segments hold
 * records the checkpoint covers, and a gap before the segment the journal
 * goes on in would break a read of it (journal verify).  Only once the
 * rebuilt store is committed: until then its end lies in them.  A store
 * that ends at {0, 0, s} (a bootstrap, before any record after it) goes on
 * in a new segment s + 1: every segment up to s goes, the newest too; a
 * journal that held records past @seq keeps the segment they are in.
 * @seq 0 (at open: a crash between the commit and this): the first case
 * alone.  Best effort: what stays costs disk until a snapshot prunes it. */
static void drop_covered(mb_bank *b, uint64_t seq)
{
	mbj_pos end;
	kv_txn *t;
	int rc;

	if (kv_begin(b->kv, false, &t))
		return;
	rc = bank_jend_load(t, &end);
	kv_abort(t);
	if (rc)
		return;
	if (!end.segment && end.seq)
		mbj_remove_through(b->journal_dir, end.seq, NULL);
	else if (seq)
		mbj_remove_before(b->journal_dir, seq + 1, NULL);
}

/* BOOTSTRAP: a new machine (nothing in its journal), or one whose end is
 * before the stream's first record (purged while it was away, or while it
 * fell behind with the bank open).  The cluster's newest checkpoint
 * becomes this machine's own, checkpoint/<seq> (fetched into
 * checkpoint/.boot-tmp: not a ".tmp-" name, which a snapshot's prune
 * removes without this lock), and the store is rebuilt from it in one
 * transaction (bank_rebuild_store: readers see the old state or the new
 * one); the local journal goes on at seq + 1, in a segment of its own, and
 * the segments before it go.  A crash at any point leaves a bank that
 * opens and catches up: before the rename, a temporary directory the next
 * bootstrap removes; after it, a checkpoint the next one keeps (the same
 * seq is the same content; none of this machine's own can be at a seq
 * past its end); after the commit, a bootstrapped store (drop_covered()
 * at open). */
static int bootstrap(mb_bank *b, mbs_conn *conn, const mbs_info *info, const void *tag)
{
	char root[4096], tmp[4096], final[4096];
	uint64_t seq = 0;
	int rc;

	mb_pathf(root, sizeof root, "%s/checkpoint", b->path);
	mb_pathf(tmp, sizeof tmp, "%s/.boot-tmp", root);
	if ((mkdir(root, b->dir_mode) && errno != EEXIST) || (mb_rm_tree(tmp), 0) ||
	    mkdir(tmp, b->dir_mode))
		return mb_fail(tag, mb_errno_code(errno), "bootstrap: %s: %s", tmp, strerror(errno));
	rc = mbs_checkpoint_get(conn, tmp, &seq);
	if (rc == MBS_ENOSTREAM)
		rc = mb_fail(tag, MB_EDIVERGED, "bootstrap: stream %s (%s) starts at seq %llu (the "
		             "records before were purged) and the cluster keeps no checkpoint",
		             b->cl->stream, b->cl->redacted, (unsigned long long)info->first_seq);
	else if (rc)
		rc = stream_fail(b, tag, rc, "bootstrap: the cluster's checkpoint", mbs_errmsg(conn));
	else if (seq + 1 < info->first_seq)
		rc = mb_fail(tag, MB_EDIVERGED, "bootstrap: the cluster's checkpoint covers seq %llu "
		             "but stream %s starts at seq %llu", (unsigned long long)seq,
		             b->cl->stream, (unsigned long long)info->first_seq);
	else if (!(rc = local_position(b, tmp, seq))) {
		boot_die("fetched");
		mb_pathf(final, sizeof final, "%s/%020llu", root, (unsigned long long)seq);
		if (access(final, F_OK) && (rename(tmp, final) || fsync_dir(root)))
			rc = mb_fail(tag, mb_errno_code(errno), "bootstrap: %s: %s", final,
			             strerror(errno));
		boot_die("installed");
		if (!rc && !(rc = bank_rebuild_store(b))) {
			boot_die("rebuilt");
			drop_covered(b, seq);
		}
	}
	mb_rm_tree(tmp);
	if (!rc)
		atomic_store(&b->cl->ckpt_seq, seq);
	return rc;
}

/* Start this machine again from the cluster's checkpoint if its end is
 * still before the stream's first record, under the boot lock (one at a
 * time on this machine, any process, any thread; another may have done it
 * meanwhile: then nothing), never inside a transaction: the rebuild is
 * one of its own, under LMDB's writer lock.  A stream created again since
 * this machine joined it refuses writes instead (check_stream).  @conn
 * NULL: a connection of its own (the handle's is taken under its mutex,
 * which comes after LMDB's writer lock). */
static int reboot(mb_bank *b, mbs_conn *conn, const void *tag)
{
	struct cluster *c = b->cl;
	mbs_conn *own = NULL;
	lockfile lock;
	mbs_info info;
	uint64_t applied;
	int rc = lockfile_acquire(&lock, LOCK_BOOT, b->store_dir, "boot.lock", b->file_mode, tag);

	if (rc)
		return rc;
	if (!conn && !(rc = connect_to(b, tag, &own)))
		conn = own;
	applied = applied_seq(b);   /* before the stream's end: see follow() */
	if (!rc && (rc = mbs_stream_info(conn, &info)))
		rc = stream_fail(b, tag, rc, "bootstrap: the stream", mbs_errmsg(conn));
	if (!rc) {
		contact(c, info.last_seq);
		check_stream(b, conn, &info, applied);
		if (!(rc = atomic_load(&c->diverged) ? diverged_fail(b, tag) : 0) && info.first_seq > applied + 1)
			rc = bootstrap(b, conn, &info, tag);
	}
	if (own)
		mbs_close(own);
	lockfile_release(&lock);
	return rc;
}

int cluster_reboot(mb_bank *b, unsigned attempt, bool unknown)
{
	int rc;

	if (attempt > REBOOT_TRIES)
		return purged_again(b, b->tag);
	if ((rc = reboot(b, NULL, b->tag)) || !unknown)
		return rc;
	return mb_fail(b->tag, MB_EUNAVAIL, "stream %s (%s) was purged past this machine's end "
	               "while a write's outcome was unknown: this machine started again from "
	               "the cluster's checkpoint", b->cl->stream, b->cl->redacted);
}

/* ------------------------------------------------------------ follower */

static bool follow_nap(struct cluster *c, uint32_t ms)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->fmu);
	while (!c->stop && pthread_cond_timedwait(&c->fcv, &c->fmu, &ts) != ETIMEDOUT)
		;
	stop = c->stop;
	pthread_mutex_unlock(&c->fmu);
	return stop;
}

static bool follow_stopped(struct cluster *c)
{
	bool stop;

	pthread_mutex_lock(&c->fmu);
	stop = c->stop;
	pthread_mutex_unlock(&c->fmu);
	return stop;
}

static int follow_lock(mb_bank *b)
{
	char path[4096];
	int fd;

	if (mb_pathf(path, sizeof path, "%s/follow.lock", b->store_dir) ||
	    (fd = mb_open_fd(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, b->file_mode)) < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *follow(void *arg)
{
	static const int quiet;   /* the follower's messages go nowhere */
	mb_bank *b = arg;
	struct cluster *c = b->cl;
	mbs_conn *conn = NULL;
	uint64_t checked = 0;
	int fd = -1;

	if (follow_nap(c, FOLLOW_START_MS))
		return NULL;
	while (!follow_stopped(c)) {
		uint64_t applied;
		int r;

		/* a short connect: mb_close() waits for this thread */
		if ((fd < 0 && (fd = follow_lock(b)) < 0) ||
		    (!conn && connect_within(b, &quiet, &conn, FOLLOW_RETRY_MS))) {
			if (follow_nap(c, FOLLOW_RETRY_MS))
				break;
			continue;
		}
		/* this machine's own records are applied by their writers: the
		 * watch wakes for the other machines' alone */
		char own[24];
		snprintf(own, sizeof own, "%016llx-", (unsigned long long)gq_nonce(b->gq));
		mbs_wait_skip(conn, own);
		applied = applied_seq(b);
		r = mbs_wait_beyond(conn, applied, FOLLOW_WAIT_MS);
		if (r == 1) {
			mbs_info info;
			/* the stream's end first, without the writer lock */
			if (!atomic_load(&c->diverged) && !mbs_stream_info(conn, &info)) {
				contact(c, info.last_seq);
				if (info.last_seq > applied_seq(b) && catch_up_txn(b, conn, &quiet) &&
				    follow_nap(c, FOLLOW_WAIT_MS))
					break;
			}
		}
		if (r < 0 && follow_nap(c, FOLLOW_WAIT_MS))
			break;
		if (mono_ms() - checked >= FOLLOW_CHECK_MS) {
			mbs_info info;
			checked = mono_ms();
			/* what this machine applied BEFORE the stream's end is read:
			 * the other order would see writes made in between as ahead */
			applied = applied_seq(b);
			if (!mbs_stream_info(conn, &info)) {
				contact(c, info.last_seq);
				check_stream(b, conn, &info, applied);
				/* a record of this machine's that its writer did not
				 * apply (it died after the publish) */
				if (!atomic_load(&c->diverged) && info.last_seq > applied_seq(b))
					catch_up_txn(b, conn, &quiet);
			}
		}
	}
	if (conn)
		mbs_close(conn);
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* ------------------------------------------------------------ open */

/* BANK PROPERTIES, one per stream.  history_limit and max_json_bytes
 * decide how records apply (history trimming, what a precheck accepts):
 * machines with different ones would diverge on the same records.  The
 * machine that creates the stream records them as the stream's
 * Description, "membank history_limit=N max_json_bytes=N" (not JSON:
 * libnats 3.4 puts the description into its request unescaped, and a
 * quote makes the server refuse the creation, JetStream error 10025): it is
 * set in the same request that creates the stream (two machines creating
 * at once: the second gets the first's stream, and its properties), comes
 * with the stream info every open reads anyway, and is there before any
 * record or checkpoint (the cluster's checkpoint appears only later).  A
 * machine joining the stream adopts them (rewriting its new membank.json),
 * and refuses explicit options that differ, as opening an existing bank
 * does.  A stream without them (made by hand) leaves the machine's own. */
static int props_of(const struct cluster *c, const char *desc, uint64_t *hl, uint64_t *mj)
{
	unsigned long long h, m;
	int end = 0;

	if (strncmp(desc, "membank ", 8))
		return 1;
	if (sscanf(desc, "membank history_limit=%llu max_json_bytes=%llu%n", &h, &m, &end) != 2 ||
	    desc[end] || h < 1 || h > MB_MAX_HISTORY || m < MB_MIN_JSON_BYTES ||
	    m > MB_MAX_JSON_BYTES)
		return mb_fail(NULL, MB_ECORRUPT, "journal %s: the stream's description has bad "
		               "bank properties: %s", c->redacted, desc);
	*hl = h;
	*mj = m;
	return 0;
}

static int adopt_props(mb_bank *b, const mbs_info *info)
{
	struct cluster *c = b->cl;
	uint64_t hl = 0, mj = 0;
	int rc = props_of(c, info->description, &hl, &mj);

	if (rc)
		return rc < 0 ? rc : 0;
	if (b->opts.history_limit && b->opts.history_limit != hl)
		return mb_fail(NULL, MB_EINVAL, "options: history_limit %u, but the bank on journal "
		               "%s keeps %llu (set by the machine that created the stream; 0 "
		               "takes the stream's)", b->opts.history_limit, c->redacted,
		               (unsigned long long)hl);
	if (b->opts.max_json_bytes > mj)
		return mb_fail(NULL, MB_EINVAL, "options: max_json_bytes %zu, but the bank on "
		               "journal %s accepts at most %llu (set by the machine that created "
		               "the stream; a handle may only lower it; 0 takes the stream's)",
		               b->opts.max_json_bytes, c->redacted, (unsigned long long)mj);
	if (b->history_limit == hl && b->max_json_bytes == mj)
		return 0;
	b->history_limit = (uint32_t)hl;
	b->max_json_bytes = (size_t)mj;
	return bank_write_identity(b);
}

int cluster_open(mb_bank *b)
{
	struct cluster *c = b->cl;
	mbs_info info;
	uint64_t applied;
	bool created;
	int rc;

	if (!c)
		return 0;
	read_created(b, c->created);
	created = !*c->created;  /* this machine never joined the stream */
	if (created)
		snprintf(c->props, sizeof c->props, "membank history_limit=%u max_json_bytes=%zu",
		         b->history_limit, b->max_json_bytes);
	if ((rc = connect_to(b, NULL, &c->conn))) {
		/* an existing bank serves its cache; its writes try again */
		if (created || rc == MB_EPERM || rc == MB_EINVAL)
			return rc;
		mb_clear_error(NULL);
		goto follow;
	}
	applied = applied_seq(b);   /* before the stream's end: see follow() */
	if ((rc = mbs_stream_ensure(c->conn, c->replicas, created, &info))) {
		if (rc == MBS_ENOSTREAM && !created) {
			set_diverged(b, "does not exist (deleted?): writes are refused");
			goto follow;
		}
		return stream_fail(b, NULL, rc, "the journal's stream", mbs_errmsg(c->conn));
	}
	contact(c, info.last_seq);
	if (!*c->created) {
		/* the first open on this machine: it joins this stream, whose
		 * properties it takes (before anything applies) */
		if ((rc = adopt_props(b, &info)))
			return rc;
		snprintf(c->created, sizeof c->created, "%s", info.created);
		if ((rc = write_created(b, info.created)))
			return rc;
	}
	check_stream(b, c->conn, &info, applied);
	if (atomic_load(&c->diverged))
		goto follow;
	/* a new machine, or one behind the purge point: the cluster's
	 * checkpoint, then the tail; a bootstrap that crashed after its
	 * commit left the journal it replaced */
	drop_covered(b, 0);
	if (info.first_seq > applied + 1 && (rc = reboot(b, c->conn, NULL)))
		return rc;
	if ((rc = catch_up_txn(b, NULL, NULL))) {
		if (rc != MB_EUNAVAIL && rc != MB_EDIVERGED)
			return rc;
		mb_clear_error(NULL);
	}
follow:
	/* tests: MEMBANK_TEST_NO_FOLLOW=1 leaves this handle behind the
	 * stream until it writes or catches up (the conflict path) */
	if (!getenv("MEMBANK_TEST_NO_FOLLOW"))
		c->thr_started = !pthread_create(&c->thr, NULL, follow, b);
	return 0;
}

void cluster_close(mb_bank *b)
{
	struct cluster *c = b ? b->cl : NULL;

	if (!c)
		return;
	if (c->thr_started) {
		pthread_mutex_lock(&c->fmu);
		c->stop = true;
		pthread_cond_broadcast(&c->fcv);
		pthread_mutex_unlock(&c->fmu);
		pthread_join(c->thr, NULL);
	}
	if (c->conn)
		mbs_close(c->conn);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->why_mu);
	pthread_mutex_destroy(&c->fmu);
	pthread_cond_destroy(&c->fcv);
	free(c->url);
	free(c->creds);
	free(c->ca);
	free(c->cert);
	free(c->key);
	free(c);
	b->cl = NULL;
}

/* A child after fork(): the thread and the connection are the parent's. */
void cluster_forget(mb_bank *b)
{
	if (b->cl) {
		free(b->cl->url);
		free(b->cl->creds);
		free(b->cl->ca);
		free(b->cl->cert);
		free(b->cl->key);
		free(b->cl);
		b->cl = NULL;
	}
}

/* ------------------------------------------------------------ checkpoints */

/* Purge the stream before @seq, but never a record stored in the last
 * CKPT_KEEP_S seconds: a machine that lost its server for a while (a node
 * stopped until the election, a partition) finds the records it missed
 * still there, instead of starting over from the checkpoint. */
static int purge_kept(mbs_conn *conn, uint64_t seq)
{
	const char *k = getenv("MEMBANK_TEST_CKPT_KEEP_S");  /* tests */
	int64_t keep_s = k && *k ? strtoll(k, NULL, 10) : CKPT_KEEP_S;
	struct timespec now;
	uint64_t since = 0;
	int rc;

	clock_gettime(CLOCK_REALTIME, &now);
	if (keep_s > 0 &&
	    (rc = mbs_seq_since(conn, (now.tv_sec - keep_s) * 1000000000ll + now.tv_nsec, &since)))
		return rc;
	if (since && since < seq)
		seq = since;
	return mbs_purge_before(conn, seq);
}

void cluster_checkpoint_done(mb_bank *b, const char *dir, uint64_t seq)
{
	static const int quiet;
	struct cluster *c = b->cl;
	const char *m = getenv("MEMBANK_TEST_CKPT_MARGIN");  /* tests: a short one */
	uint64_t margin = m && *m ? strtoull(m, NULL, 10) : CKPT_MARGIN;
	uint64_t newest = 0;
	mbs_conn *conn;

	if (!c || !seq)
		return;
	/* a connection of its own: a large checkpoint must not hold up the
	 * writes of this handle */
	if (connect_to(b, &quiet, &conn)) {
		atomic_fetch_add(&c->ckpt_failures, 1);
		return;
	}
	/* one no newer than the cluster's (a machine behind, a snapshot that
	 * raced another machine's) is not put: it would become the newest
	 * one, older than the stream's first record, and a new machine could
	 * not start from it.  The purge is still done, before the cluster's
	 * (records older than the kept time may have come since). */
	if (mbs_checkpoint_newest(conn, &newest) || newest < seq) {
		if (mbs_checkpoint_put(conn, dir, seq))
			goto failed;
		newest = seq;
	}
	if (newest > margin && purge_kept(conn, newest - margin))
		goto failed;
	atomic_store(&c->ckpt_seq, newest);
	mbs_close(conn);
	return;
failed:
	atomic_fetch_add(&c->ckpt_failures, 1);
	mbs_close(conn);
}

/* ------------------------------------------------------------ reports */

static void add_u(mb_buf *doc, const char *key, uint64_t v)
{
	buf_adds(doc, ",\"");
	buf_adds(doc, key);
	buf_adds(doc, "\":");
	json_add_int(doc, (int64_t)v);
}

void cluster_stats(mb_bank *b, uint64_t applied, mb_buf *doc)
{
	struct cluster *c = b->cl;
	uint64_t last;
	int64_t seen;

	if (!c) {
		buf_adds(doc, "null");
		return;
	}
	last = atomic_load(&c->stream_last);
	seen = atomic_load(&c->contact_us);
	buf_adds(doc, "{\"url\":");
	json_add_str(doc, c->redacted, strlen(c->redacted));
	buf_adds(doc, ",\"stream\":");
	json_add_str(doc, c->stream, strlen(c->stream));
	add_u(doc, "applied_seq", applied);
	add_u(doc, "stream_last_seq", last);
	add_u(doc, "lag_records", last > applied ? last - applied : 0);
	buf_adds(doc, ",\"since_contact_ms\":");
	if (seen)
		json_add_int(doc, (wall_us() - seen) / 1000);
	else
		buf_adds(doc, "null");
	add_u(doc, "foreign_skipped", atomic_load(&c->foreign));
	add_u(doc, "conflicts", atomic_load(&c->conflicts));
	add_u(doc, "turns_asked", atomic_load(&c->turns_asked));
	add_u(doc, "turn_waits", atomic_load(&c->turns_waited));
	add_u(doc, "checkpoint_seq", atomic_load(&c->ckpt_seq));
	add_u(doc, "checkpoint_failures", atomic_load(&c->ckpt_failures));
	buf_adds(doc, ",\"diverged\":");
	buf_adds(doc, atomic_load(&c->diverged) ? "true}" : "false}");
}

/* ------------------------------------------------------------ the API */

int mb_catch_up(mb_bank *b)
{
	int rc;

	if (!b)
		return mb_fail(NULL, MB_EINVAL, "catch up: bank is NULL");
	if ((rc = bank_check(b)) || !b->cl)
		return rc;
	mb_clear_error(b);
	if ((rc = bank_boot_record(b)))
		return rc;
	rc = catch_up_txn(b, NULL, b);
	if (!rc)
		mb_clear_error(b);
	return rc;
}

int mb_cluster_status(mb_bank *b, mb_cluster_info *out)
{
	struct cluster *c;
	mbs_info info;
	uint64_t ckpt = 0;
	int rc;

	if (!b || !out)
		return mb_fail(b, MB_EINVAL, "cluster status: %s is NULL", b ? "output" : "bank");
	if ((rc = bank_check(b)))
		return rc;
	memset(out, 0, sizeof *out);
	if (!(c = b->cl))
		return mb_fail(b, MB_EINVAL, "cluster status: the bank at %s is not bound to a "
		               "cluster (its journal is local)", b->path);
	snprintf(out->url, sizeof out->url, "%s", c->redacted);
	snprintf(out->stream, sizeof out->stream, "%s", c->stream);
	out->applied_seq = applied_seq(b);
	pthread_mutex_lock(&c->mu);
	if (!(rc = conn_get(b, b)) && (rc = mbs_stream_info(c->conn, &info)))
		rc = stream_fail(b, b, rc, "stream info", mbs_errmsg(c->conn));
	/* the cluster's newest checkpoint, whichever machine or process put it */
	if (!rc && (rc = mbs_checkpoint_newest(c->conn, &ckpt)))
		rc = stream_fail(b, b, rc, "the cluster's checkpoint", mbs_errmsg(c->conn));
	pthread_mutex_unlock(&c->mu);
	if (rc) {
		out->reachable = false;
		snprintf(out->error, sizeof out->error, "%s", mb_last_error(b));
		out->last_seq = atomic_load(&c->stream_last);
	} else {
		out->reachable = true;
		contact(c, info.last_seq);
		pthread_mutex_lock(&c->mu);   /* check_stream may ask again */
		if (c->conn)
			check_stream(b, c->conn, &info, out->applied_seq);
		pthread_mutex_unlock(&c->mu);
		out->replicas = info.replicas;
		snprintf(out->leader, sizeof out->leader, "%s", info.leader);
		out->first_seq = info.first_seq;
		out->last_seq = info.last_seq;
		out->checkpoint_seq = ckpt;
	}
	out->lag_records = out->last_seq > out->applied_seq ? out->last_seq - out->applied_seq : 0;
	out->since_contact_ms = atomic_load(&c->contact_us) ?
	                        (wall_us() - atomic_load(&c->contact_us)) / 1000 : -1;
	out->foreign_skipped = atomic_load(&c->foreign);
	out->diverged = atomic_load(&c->diverged);
	mb_clear_error(b);
	return 0;
}
