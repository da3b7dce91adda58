/*
 * sys_redis.c - Redis 7 over a unix socket, through hiredis.
 *
 * The harness starts redis-server (appendonly yes, --port 0) and passes the
 * socket.  A page is SET/GET of the JSON text under its id; an event is
 * LPUSH of its JSON plus LTRIM to the newest 100, pipelined.  Durability is
 * the server's appendfsync: everysec for fast, always for full (each worker
 * sets it on connect; all set the same value).
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static int reply_ok(redisContext *c, redisReply *r, const char *what)
{
	int ok = r && r->type != REDIS_REPLY_ERROR;

	if (!ok)
		fprintf(stderr, "redis: %s: %s\n", what,
		        r ? r->str : (c->errstr[0] ? c->errstr : "no reply"));
	if (r)
		freeReplyObject(r);
	return ok ? 0 : -1;
}

static int rd_connect(const bench_cfg *cfg, redisContext **out)
{
	redisContext *c;

	if (!cfg->sock) {
		fprintf(stderr, "redis: --sock is required\n");
		return -1;
	}
	c = redisConnectUnix(cfg->sock);
	if (!c || c->err) {
		fprintf(stderr, "redis: connect %s: %s\n", cfg->sock, c ? c->errstr : "oom");
		if (c)
			redisFree(c);
		return -1;
	}
	*out = c;
	return 0;
}

static int rd_prefill(const bench_cfg *cfg)
{
	char id[BENCH_KEY_MAX];
	redisContext *c;
	int rc;

	if (rd_connect(cfg, &c) != 0)
		return -1;
	rc = reply_ok(c, redisCommand(c, "FLUSHALL"), "FLUSHALL");
	for (uint32_t k = 0; rc == 0 && k < cfg->keys; k += 1000) {
		uint32_t end = k + 1000 < cfg->keys ? k + 1000 : cfg->keys;

		for (uint32_t j = k; j < end; j++) {
			const bench_value *v = bench_value_get(j);
			size_t n = bench_key(id, j);

			redisAppendCommand(c, "SET %b %b", id, n, v->json, v->json_len);
		}
		for (uint32_t j = k; rc == 0 && j < end; j++) {
			void *r = NULL;

			if (redisGetReply(c, &r) != REDIS_OK)
				rc = -1;
			else
				rc = reply_ok(c, r, "SET");
		}
	}
	redisFree(c);
	return rc;
}

static int rd_open(const bench_cfg *cfg, void **h)
{
	redisContext *c;

	if (rd_connect(cfg, &c) != 0)
		return -1;
	if (reply_ok(c, redisCommand(c, "CONFIG SET appendfsync %s",
	                             cfg->full ? "always" : "everysec"), "CONFIG SET") != 0) {
		redisFree(c);
		return -1;
	}
	*h = c;
	return 0;
}

static int rd_event(redisContext *c, uint64_t n)
{
	const char *list = n % 2 ? "errors" : "sync_history";
	char ts[32], json[512];
	int len, rc = 0;

	bench_timestamp(ts, bench_now_us());
	if (n % 2)
		len = snprintf(json, sizeof json,
			"{\"timestamp\":\"%s\",\"error_type\":\"%s\",\"message\":\"%s\"}",
			ts, bench_error_type(), bench_error_message());
	else
		len = snprintf(json, sizeof json,
			"{\"timestamp\":\"%s\",\"status\":\"success\",\"error\":null}", ts);
	if (len < 0 || (size_t)len >= sizeof json)
		return -1;
	redisAppendCommand(c, "LPUSH %s %b", list, json, (size_t)len);
	redisAppendCommand(c, "LTRIM %s 0 99", list);
	for (int i = 0; i < 2; i++) {
		void *r = NULL;

		if (redisGetReply(c, &r) != REDIS_OK)
			return reply_ok(c, NULL, "event");
		rc = rc ? rc : reply_ok(c, r, "event");
	}
	return rc;
}

static int rd_op(void *h, const bench_cfg *cfg, bench_op op, uint32_t key, uint64_t n)
{
	redisContext *c = h;
	char id[BENCH_KEY_MAX];
	size_t len = bench_key(id, key);
	const bench_value *v;
	redisReply *r;

	(void)cfg;
	switch (op) {
	case OP_UPSERT:
		v = bench_value_get(n);
		return reply_ok(c, redisCommand(c, "SET %b %b", id, len, v->json, v->json_len), "SET");
	case OP_GET:
		r = redisCommand(c, "GET %b", id, len);
		if (r && r->type != REDIS_REPLY_STRING) {
			fprintf(stderr, "redis: GET %s: not a string\n", id);
			freeReplyObject(r);
			return -1;
		}
		return reply_ok(c, r, "GET");
	case OP_EVENT:
		return rd_event(c, n);
	default:
		return -1;
	}
}

static void rd_close(void *h)
{
	redisFree(h);
}

const bench_sys bench_system = {
	.name = "redis",
	.prefill = rd_prefill,
	.open = rd_open,
	.op = rd_op,
	.close = rd_close,
};
