/*
 * config.c - the configuration: its fields, their checks, deep merge.
 *
 * The fields are those of the spec's config_cache.json and nothing else.  A
 * JSON update is checked whole against this table and turned into a
 * normalised msgpack patch ({section: {key: value}} with only known keys,
 * each of its kind), which is what the journal records and apply merges:
 * applying a patch can no longer fail, so a replay always succeeds.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <msgpack.h>
#include <string.h>

#include "config.h"
#include "docs.h"

enum kind { K_STR, K_INT, K_NUM, K_BOOL, K_LEVEL };

static const struct field {
	const char *section, *key;
	enum kind kind;
	double lo, hi;
} fields[] = {
	{ "notion_settings", "api_version", K_STR, 1, 64 },
	{ "notion_settings", "retry_attempts", K_INT, 0, 100 },
	{ "notion_settings", "timeout_seconds", K_NUM, 0, 3600 },
	{ "logging_settings", "log_level", K_LEVEL, 0, 0 },
	{ "logging_settings", "structured_logging", K_BOOL, 0, 0 },
	{ "cache_settings", "ttl_seconds", K_INT, 0, 1e12 },
	{ "cache_settings", "max_entries", K_INT, 0, 1e12 },
};
#define NFIELDS (sizeof fields / sizeof fields[0])

static const char *const levels[] = { "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL" };

static const struct field *find(const char *section, const char *key)
{
	for (size_t i = 0; i < NFIELDS; i++)
		if (!strcmp(fields[i].section, section) && !strcmp(fields[i].key, key))
			return &fields[i];
	return NULL;
}

static bool is_section(const char *s)
{
	return !strcmp(s, "notion_settings") || !strcmp(s, "logging_settings") ||
	       !strcmp(s, "cache_settings");
}

static bool valid_level(const char *s)
{
	for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
		if (!strcmp(s, levels[i]))
			return true;
	return false;
}

static int check_value(const struct field *f, const cJSON *v, const void *tag)
{
	double d = v->valuedouble;
	size_t n;

	switch (f->kind) {
	case K_STR:
		n = cJSON_IsString(v) ? strlen(v->valuestring) : 0;
		if (!cJSON_IsString(v) || n < f->lo || n > f->hi)
			return mb_fail(tag, MB_EINVAL, "config: %s.%s must be a string of %g to %g bytes",
			               f->section, f->key, f->lo, f->hi);
		return 0;
	case K_LEVEL:
		if (!cJSON_IsString(v) || !valid_level(v->valuestring))
			return mb_fail(tag, MB_EINVAL, "config: %s.%s must be one of DEBUG, INFO, "
			               "WARNING, ERROR, CRITICAL", f->section, f->key);
		return 0;
	case K_BOOL:
		if (!cJSON_IsBool(v))
			return mb_fail(tag, MB_EINVAL, "config: %s.%s must be true or false",
			               f->section, f->key);
		return 0;
	case K_INT:
		if (!cJSON_IsNumber(v) || d != floor(d) || d < f->lo || d > f->hi)
			return mb_fail(tag, MB_EINVAL, "config: %s.%s must be an integer from %.0f to %.0f",
			               f->section, f->key, f->lo, f->hi);
		return 0;
	case K_NUM:
		if (!cJSON_IsNumber(v) || !(d > f->lo) || d > f->hi)
			return mb_fail(tag, MB_EINVAL, "config: %s.%s must be a number above %g, at most %g",
			               f->section, f->key, f->lo, f->hi);
		return 0;
	}
	return MB_EINVAL;
}

static void pack_value(msgpack_packer *pk, const struct field *f, const cJSON *v)
{
	switch (f->kind) {
	case K_STR: case K_LEVEL:
		msgpack_pack_str_with_body(pk, v->valuestring, strlen(v->valuestring));
		break;
	case K_BOOL:
		if (cJSON_IsTrue(v))
			msgpack_pack_true(pk);
		else
			msgpack_pack_false(pk);
		break;
	case K_INT: msgpack_pack_int64(pk, (int64_t)v->valuedouble); break;
	case K_NUM: msgpack_pack_double(pk, v->valuedouble); break;
	}
}

static int count_children(const cJSON *j)
{
	int n = 0;

	for (const cJSON *c = j->child; c; c = c->next)
		n++;
	return n;
}

/* Check one section object and pack it. */
static int pack_section(msgpack_packer *pk, const cJSON *sec, const void *tag)
{
	const struct field *f;
	const cJSON *c;
	int rc;

	if (!cJSON_IsObject(sec))
		return mb_fail(tag, MB_EINVAL, "config: %s must be an object", sec->string);
	msgpack_pack_str_with_body(pk, sec->string, strlen(sec->string));
	msgpack_pack_map(pk, (size_t)count_children(sec));
	for (c = sec->child; c; c = c->next) {
		if (!(f = find(sec->string, c->string)))
			return mb_fail(tag, MB_EINVAL, "config: unknown key %s.%.64s",
			               sec->string, c->string);
		if ((rc = check_value(f, c, tag)))
			return rc;
		msgpack_pack_str_with_body(pk, c->string, strlen(c->string));
		pack_value(pk, f, c);
	}
	return 0;
}

int config_patch_from_cjson(const cJSON *j, bool allow_stamp, const void *tag, mb_buf *out)
{
	msgpack_packer pk;
	const cJSON *c;
	int n = 0, rc;

	if (!cJSON_IsObject(j))
		return mb_fail(tag, MB_EINVAL, "config: not a JSON object");
	for (c = j->child; c; c = c->next) {
		if (allow_stamp && !strcmp(c->string, "last_config_update"))
			continue;
		if (!is_section(c->string))
			return mb_fail(tag, MB_EINVAL, "config: unknown key %.64s%s", c->string,
			               !strcmp(c->string, "last_config_update") ?
			               " (it is set by the bank)" : "");
		n++;
	}
	mp_packer_init(&pk, out);
	msgpack_pack_map(&pk, (size_t)n);
	for (c = j->child; c; c = c->next)
		if (is_section(c->string) && (rc = pack_section(&pk, c, tag)))
			return rc;
	return out->failed ? mb_fail(tag, MB_ENOMEM, "config: out of memory") : 0;
}

int config_patch_from_json(const char *s, size_t len, size_t max, const void *tag, mb_buf *out)
{
	cJSON *j;
	int rc;

	if ((rc = json_parse(s, len, max, "config", tag, &j)))
		return rc;
	rc = config_patch_from_cjson(j, false, tag, out);
	cJSON_Delete(j);
	return rc;
}

static int apply_field(mb_config *c, const struct field *f, mp_reader *r)
{
	const char *s;
	uint32_t n;
	double d;
	int64_t i;

	if (!strcmp(f->key, "api_version") || !strcmp(f->key, "log_level")) {
		char *dst = f->kind == K_STR ? c->api_version : c->log_level;
		size_t cap = f->kind == K_STR ? sizeof c->api_version : sizeof c->log_level;
		if (mp_read_str(r, &s, &n) || n >= cap)
			return MB_ECORRUPT;
		memcpy(dst, s, n);
		dst[n] = '\0';
		return 0;
	}
	if (f->kind == K_BOOL)
		return mp_read_bool(r, &c->structured_logging);
	if (f->kind == K_NUM) {
		if (mp_read_double(r, &d))
			return MB_ECORRUPT;
		c->timeout_seconds = d;
		return 0;
	}
	if (mp_read_int(r, &i) || i < 0)
		return MB_ECORRUPT;
	if (!strcmp(f->key, "retry_attempts"))
		c->retry_attempts = i;
	else if (!strcmp(f->key, "ttl_seconds"))
		c->ttl_seconds = i;
	else
		c->max_entries = i;
	return 0;
}

int config_apply_patch(mb_config *c, const uint8_t *p, size_t len)
{
	mp_reader r = { p, p + len };
	char section[32], key[32];
	const struct field *f;
	uint32_t ns, nk, l;
	const char *s;

	if (mp_read_map(&r, &ns))
		return MB_ECORRUPT;
	for (uint32_t i = 0; i < ns; i++) {
		if (mp_read_str(&r, &s, &l) || l >= sizeof section || mp_read_map(&r, &nk))
			return MB_ECORRUPT;
		memcpy(section, s, l);
		section[l] = '\0';
		for (uint32_t k = 0; k < nk; k++) {
			if (mp_read_str(&r, &s, &l) || l >= sizeof key)
				return MB_ECORRUPT;
			memcpy(key, s, l);
			key[l] = '\0';
			if (!(f = find(section, key)) || apply_field(c, f, &r))
				return MB_ECORRUPT;
		}
	}
	return r.p == r.end ? 0 : MB_ECORRUPT;
}

int config_to_json(const mb_config *c, mb_buf *b)
{
	buf_adds(b, "{\"notion_settings\":{\"api_version\":");
	json_add_str(b, c->api_version, strlen(c->api_version));
	buf_adds(b, ",\"retry_attempts\":");
	json_add_int(b, c->retry_attempts);
	buf_adds(b, ",\"timeout_seconds\":");
	if (c->timeout_seconds == floor(c->timeout_seconds))
		json_add_int(b, (int64_t)c->timeout_seconds);
	else
		json_add_double(b, c->timeout_seconds);
	buf_adds(b, "},\"logging_settings\":{\"log_level\":");
	json_add_str(b, c->log_level, strlen(c->log_level));
	buf_adds(b, c->structured_logging ? ",\"structured_logging\":true}"
	                                  : ",\"structured_logging\":false}");
	buf_adds(b, ",\"cache_settings\":{\"ttl_seconds\":");
	json_add_int(b, c->ttl_seconds);
	buf_adds(b, ",\"max_entries\":");
	json_add_int(b, c->max_entries);
	buf_adds(b, "},\"last_config_update\":");
	doc_time(b, c->last_update);
	return buf_addc(b, '}');
}
