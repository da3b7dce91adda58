/*
 * payload.c - the value bytes every system writes, and msgpack -> JSON.
 *
 * The variants are built once per process, before the workers fork, so every
 * worker of every system sees the same bytes.  Each is a JSON object of about
 * 200 bytes shaped like a Notion page's properties, and the same object as a
 * msgpack map (packed here with msgpack-c from the parsed JSON).
 */
#include <cjson/cJSON.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

/* Built once before fork and read-only afterwards. */
static bench_value values[BENCH_VARIANTS];

static void pack_json(msgpack_packer *pk, const cJSON *j)
{
	if (cJSON_IsObject(j) || cJSON_IsArray(j)) {
		int n = cJSON_GetArraySize(j);

		if (cJSON_IsObject(j))
			msgpack_pack_map(pk, (size_t)n);
		else
			msgpack_pack_array(pk, (size_t)n);
		for (const cJSON *c = j->child; c; c = c->next) {
			if (cJSON_IsObject(j))
				msgpack_pack_str_with_body(pk, c->string, strlen(c->string));
			pack_json(pk, c);
		}
	} else if (cJSON_IsString(j)) {
		msgpack_pack_str_with_body(pk, j->valuestring, strlen(j->valuestring));
	} else if (cJSON_IsBool(j)) {
		if (cJSON_IsTrue(j))
			msgpack_pack_true(pk);
		else
			msgpack_pack_false(pk);
	} else if (cJSON_IsNumber(j)) {
		if (j->valuedouble == (double)(int64_t)j->valuedouble)
			msgpack_pack_int64(pk, (int64_t)j->valuedouble);
		else
			msgpack_pack_double(pk, j->valuedouble);
	} else {
		msgpack_pack_nil(pk);
	}
}

static int build_value(unsigned i, bench_value *v)
{
	static const char *const status[] = {"Not started", "In progress", "Blocked", "Done"};
	char json[512];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	cJSON *parsed;
	int n;

	n = snprintf(json, sizeof json,
		"{\"title\":\"Quarterly planning notes %02u\",\"status\":\"%s\","
		"\"priority\":%u,\"tags\":[\"sync\",\"notion\",\"bench\"],"
		"\"owner\":\"worker-%02u\",\"url\":\"https://www.notion.so/acme/"
		"page-%010u\",\"estimate\":%u.5,\"done\":%s}",
		i, status[i % 4], i % 5, i % 17, i * 7919u, i % 8,
		i % 4 == 3 ? "true" : "false");
	if (n < 0 || (size_t)n >= sizeof json)
		return -1;
	parsed = cJSON_Parse(json);
	if (!parsed)
		return -1;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pack_json(&pk, parsed);
	cJSON_Delete(parsed);
	v->json = strdup(json);
	v->json_len = (size_t)n;
	v->mp = (const uint8_t *)sb.data;   /* owned for the life of the process */
	v->mp_len = sb.size;
	return v->json ? 0 : -1;
}

int bench_values_init(void)
{
	for (unsigned i = 0; i < BENCH_VARIANTS; i++)
		if (build_value(i, &values[i]) != 0)
			return -1;
	return 0;
}

const bench_value *bench_value_get(uint64_t n)
{
	return &values[n % BENCH_VARIANTS];
}

size_t bench_key(char *buf, uint32_t key)
{
	int n = snprintf(buf, BENCH_KEY_MAX, "page-%07u", key);

	return n < 0 ? 0 : (size_t)n;
}

const char *bench_error_type(void)
{
	return "api_error";
}

const char *bench_error_message(void)
{
	return "Notion API returned 502 Bad Gateway while updating a page (attempt 1 of 3)";
}

int64_t bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

size_t bench_timestamp(char *buf, int64_t us)
{
	time_t s = (time_t)(us / 1000000);
	struct tm tm;
	int n;

	gmtime_r(&s, &tm);
	n = snprintf(buf, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		tm.tm_min, tm.tm_sec, (int)(us % 1000000));
	return n < 0 ? 0 : (size_t)n;
}

int bench_buf_put(bench_buf *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}
