/*
 * sys_nats.c - the raw limit of a journal on a JetStream stream (issue 16):
 * chained synchronous publishes of the bytes membank would publish, through
 * libnats directly (not journal/stream.c).
 *
 * The stream is the URL in MEMBANK_BENCH_NATS_URL ("nats://host:port,...",
 * no stream part; bench/run starts a 3-node cluster with
 * tests/nats/cluster.py), stream "BENCH" on subject "membank.BENCH",
 * file storage, MEMBANK_BENCH_NATS_REPLICAS replicas (default 3), recreated
 * empty before the first cell.  An upsert (W1) is one message: the stream
 * body of membank's record ("MBS1" | type | ts_us, then the msgpack
 * [id, properties] of sys_fsync.c) with the header
 * Nats-Expected-Last-Sequence = the last seq this worker knows: the chained
 * publish membank's write path makes.  On "wrong last sequence" (another
 * worker published first) the worker asks the stream's last seq and
 * publishes again: one operation is one acknowledged message.  No msg id
 * (de-duplication is membank's own cost).  The server acks once a quorum
 * holds the message; durability "full" and "fast" are the same here.
 *
 * libnats starts threads: the parent of the driver never touches it (the
 * stream is made in a child), so the workers it forks start clean.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nats/nats.h>

#include "bench.h"

#define STREAM "BENCH"
#define SUBJECT "membank.BENCH"

typedef struct nb {
	natsConnection *nc;
	jsCtx *js;
	uint64_t last;
} nb;

static int nb_connect(nb *b)
{
	const char *url = getenv("MEMBANK_BENCH_NATS_URL");
	if (!url) {
		fprintf(stderr, "nats: MEMBANK_BENCH_NATS_URL is not set\n");
		return -1;
	}
	/* "nats://h1:p1,h2:p2": libnats wants a scheme on each server */
	char buf[2048], srv[16][160];
	const char *list[16];
	int n = 0;
	snprintf(buf, sizeof buf, "%s", strncmp(url, "nats://", 7) ? url : url + 7);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < 16;
	     t = strtok_r(NULL, ",", &save)) {
		snprintf(srv[n], sizeof srv[n], "nats://%.150s", t);
		list[n] = srv[n];
		n++;
	}
	natsOptions *o = NULL;
	natsStatus s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetServers(o, list, n);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, 10000);
	if (s == NATS_OK)
		s = natsConnection_Connect(&b->nc, o);
	natsOptions_Destroy(o);
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 10000;
	if (s == NATS_OK)
		s = natsConnection_JetStream(&b->js, b->nc, &jo);
	if (s != NATS_OK) {
		fprintf(stderr, "nats: connect: %s\n", natsStatus_GetText(s));
		return -1;
	}
	return 0;
}

static void nb_disconnect(nb *b)
{
	jsCtx_Destroy(b->js);
	natsConnection_Destroy(b->nc);
}

static int make_stream(void)
{
	nb b = { 0 };
	if (nb_connect(&b))
		return 1;
	const char *subjects[1] = { SUBJECT };
	const char *r = getenv("MEMBANK_BENCH_NATS_REPLICAS");
	jsStreamConfig cf;
	jsStreamConfig_Init(&cf);
	cf.Name = STREAM;
	cf.Subjects = subjects;
	cf.SubjectsLen = 1;
	cf.Storage = js_FileStorage;
	cf.Replicas = r ? atoi(r) : 3;
	cf.MaxMsgSize = (32 << 20) - 1024;
	jsErrCode e = 0;
	js_DeleteStream(b.js, STREAM, NULL, &e);
	jsStreamInfo *si = NULL;
	natsStatus s = js_AddStream(&si, b.js, &cf, NULL, &e);
	jsStreamInfo_Destroy(si);
	if (s != NATS_OK)
		fprintf(stderr, "nats: create stream: %s (%d)\n", natsStatus_GetText(s), (int)e);
	nb_disconnect(&b);
	return s == NATS_OK ? 0 : 1;
}

static int nb_prefill(const bench_cfg *cfg)
{
	(void)cfg;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0)
		_exit(make_stream());
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -1;
	return 0;
}

static int learn_last(nb *b)
{
	jsStreamInfo *si = NULL;
	jsErrCode e = 0;
	natsStatus s = js_GetStreamInfo(&si, b->js, STREAM, NULL, &e);
	if (s != NATS_OK) {
		fprintf(stderr, "nats: stream info: %s (%d)\n", natsStatus_GetText(s), (int)e);
		return -1;
	}
	b->last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	return 0;
}

static int nb_open(const bench_cfg *cfg, void **h)
{
	(void)cfg;
	nb *b = calloc(1, sizeof *b);
	if (!b || nb_connect(b) || learn_last(b)) {
		free(b);
		return -1;
	}
	*h = b;
	return 0;
}

/* The stream body of an upsert record into @p; returns its length. */
static size_t body(uint8_t *p, size_t cap, uint32_t key, uint64_t n)
{
	const bench_value *v = bench_value_get(n);
	char id[BENCH_KEY_MAX];
	size_t il = bench_key(id, key), len = 13;
	int64_t ts = bench_now_us();
	if (len + 2 + il + v->mp_len > cap)
		return 0;
	memcpy(p, "MBS1", 4);
	p[4] = 1;
	memcpy(p + 5, &ts, 8);               /* little-endian host (journal/) */
	p[len++] = 0x92;
	p[len++] = (uint8_t)(0xa0 | il);
	memcpy(p + len, id, il);
	len += il;
	memcpy(p + len, v->mp, v->mp_len);
	return len + v->mp_len;
}

static int nb_op(void *h, const bench_cfg *cfg, bench_op op, uint32_t key, uint64_t n)
{
	nb *b = h;
	uint8_t buf[1024];
	char num[24];
	(void)cfg;
	size_t len = body(buf, sizeof buf, key, n);
	if (op != OP_UPSERT || len == 0)
		return -1;
	for (int tries = 0; tries < 1000; tries++) {
		natsMsg *m = NULL;
		jsPubAck *ack = NULL;
		jsErrCode e = 0;
		snprintf(num, sizeof num, "%" PRIu64, b->last);
		natsStatus s = natsMsg_Create(&m, SUBJECT, NULL, (const char *)buf, (int)len);
		if (s == NATS_OK)
			s = natsMsgHeader_Set(m, "Nats-Expected-Last-Sequence", num);
		if (s == NATS_OK)
			s = js_PublishMsg(&ack, b->js, m, NULL, &e);
		natsMsg_Destroy(m);
		if (s == NATS_OK) {
			b->last = ack->Sequence;
			jsPubAck_Destroy(ack);
			return 0;
		}
		if (e != JSStreamWrongLastSequenceErr) {
			fprintf(stderr, "nats: publish: %s (%d)\n", natsStatus_GetText(s), (int)e);
			return -1;
		}
		if (learn_last(b))
			return -1;
	}
	fprintf(stderr, "nats: publish: 1000 conflicts in a row\n");
	return -1;
}

static void nb_close(void *h)
{
	nb *b = h;
	nb_disconnect(b);
	free(b);
}

const bench_sys bench_system = {
	.name = "nats",
	.prefill = nb_prefill,
	.open = nb_open,
	.op = nb_op,
	.close = nb_close,
};
