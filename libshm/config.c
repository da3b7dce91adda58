/*
 * config.c - the configuration: its fields, their checks, deep merge.
 *
 * The fields are those of the spec's config_cache.json and nothing else.  A
 * JSON update is read by jsonmp.c (numbers exact), checked whole against
 * this table and turned into a normalised msgpack patch ({section: {key:
 * value}} with only known keys, each of its kind), which is what the
 * journal records and apply merges: applying a patch can no longer fail, so
 * a replay always succeeds.  timeout_seconds keeps whether it was written
 * as an integer (30) or a float (30.0).
 */
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

static bool valid_level(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
		if (strlen(levels[i]) == n && !memcmp(s, levels[i], n))
			return true;
	return false;
}

static int must(const struct field *f, const void *tag)
{
	switch (f->kind) {
	case K_STR:
		return mb_fail(tag, MB_EINVAL, "config: %s.%s must be a string of %g to %g bytes",
		               f->section, f->key, f->lo, f->hi);
	case K_LEVEL:
		return mb_fail(tag, MB_EINVAL, "config: %s.%s must be one of DEBUG, INFO, "
		               "WARNING, ERROR, CRITICAL", f->section, f->key);
	case K_BOOL:
		return mb_fail(tag, MB_EINVAL, "config: %s.%s must be true or false",
		               f->section, f->key);
	case K_INT:
		return mb_fail(tag, MB_EINVAL, "config: %s.%s must be an integer from %.0f to %.0f",
		               f->section, f->key, f->lo, f->hi);
	case K_NUM:
		return mb_fail(tag, MB_EINVAL, "config: %s.%s must be a number above %g, at most %g",
		               f->section, f->key, f->lo, f->hi);
	}
	return MB_EINVAL;
}

/* Check the value at @r against @f and pack it.  An integer field takes an
 * integer only (5.0 is a float: storing it as 5 would change its type); a
 * number field keeps whether it was an integer or a float. */
static int pack_value(msgpack_packer *pk, const struct field *f, mp_reader *r, const void *tag)
{
	const char *s;
	uint32_t n;
	int64_t i;
	double d;
	bool v;
	mp_kind k;

	if (mp_peek(r, &k))
		return must(f, tag);
	switch (f->kind) {
	case K_STR: case K_LEVEL:
		if (k != MP_STR || mp_read_str(r, &s, &n) ||
		    (f->kind == K_STR ? n < f->lo || n > f->hi : !valid_level(s, n)))
			return must(f, tag);
		msgpack_pack_str_with_body(pk, s, n);
		return 0;
	case K_BOOL:
		if (mp_read_bool(r, &v))
			return must(f, tag);
		(v ? msgpack_pack_true : msgpack_pack_false)(pk);
		return 0;
	case K_INT:
		if (k != MP_INT || mp_read_int(r, &i) || i < f->lo || i > f->hi)
			return must(f, tag);
		msgpack_pack_int64(pk, i);
		return 0;
	case K_NUM:
		if (k == MP_INT && !mp_read_int(r, &i) && i > f->lo && i <= f->hi)
			msgpack_pack_int64(pk, i);
		else if (k == MP_FLOAT && !mp_read_double(r, &d) && d > f->lo && d <= f->hi)
			msgpack_pack_double(pk, d);
		else
			return must(f, tag);
		return 0;
	}
	return MB_EINVAL;
}

static bool key_is(const char *s, uint32_t n, const char *key)
{
	return strlen(key) == n && !memcmp(s, key, n);
}

/* Check one section object at @r, named @name, and pack it. */
static int pack_section(msgpack_packer *pk, const char *name, mp_reader *r, const void *tag)
{
	const struct field *f;
	const char *k;
	uint32_t n, klen;
	mp_kind kind;
	int rc;

	if (mp_peek(r, &kind) || kind != MP_MAP || mp_read_map(r, &n))
		return mb_fail(tag, MB_EINVAL, "config: %s must be an object", name);
	msgpack_pack_str_with_body(pk, name, strlen(name));
	msgpack_pack_map(pk, n);
	for (uint32_t i = 0; i < n; i++) {
		if (mp_read_str(r, &k, &klen))
			return MB_ECORRUPT;
		f = NULL;
		for (size_t j = 0; j < NFIELDS && !f; j++)
			if (!strcmp(fields[j].section, name) && key_is(k, klen, fields[j].key))
				f = &fields[j];
		if (!f)
			return mb_fail(tag, MB_EINVAL, "config: unknown key %s.%.*s", name,
			               (int)(klen < 64 ? klen : 64), k);
		msgpack_pack_str_with_body(pk, k, klen);
		if ((rc = pack_value(pk, f, r, tag)))
			return rc;
	}
	return 0;
}

static const char *section_named(const char *s, uint32_t n)
{
	static const char *const sections[] = { "notion_settings", "logging_settings",
	                                        "cache_settings" };

	for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
		if (key_is(s, n, sections[i]))
			return sections[i];
	return NULL;
}

/* last_config_update of a whole document: null or a timestamp. */
static int read_stamp(mp_reader *r, int64_t *stamp, const void *tag)
{
	const char *s;
	uint32_t n;

	if (mp_read_nil(r)) {
		*stamp = MB_NEVER;
		return 0;
	}
	if (mp_read_str(r, &s, &n) || mb_parse_time(s, n, stamp))
		return mb_fail(tag, MB_EINVAL, "config: last_config_update must be a timestamp like "
		               "2026-01-31T12:00:00.000000Z or null");
	return 0;
}

int config_patch_from_mp(const void *data, size_t len, int64_t *stamp, const void *tag,
                         mb_buf *out)
{
	mp_reader r = { data, (const uint8_t *)data + len, false }, again;
	msgpack_packer pk;
	const char *k;
	uint32_t n, klen, sections = 0;
	mp_kind kind;
	int rc;

	if (stamp)
		*stamp = MB_NEVER;
	if (mp_peek(&r, &kind) || kind != MP_MAP || mp_read_map(&r, &n))
		return mb_fail(tag, MB_EINVAL, "config: not a JSON object");
	again = r;
	for (uint32_t i = 0; i < n; i++) {
		if (mp_read_str(&r, &k, &klen))
			return mb_fail(tag, MB_ECORRUPT, "config: damaged");
		if (stamp && key_is(k, klen, "last_config_update")) {
			if ((rc = read_stamp(&r, stamp, tag)))
				return rc;
			continue;
		}
		if (!section_named(k, klen))
			return mb_fail(tag, MB_EINVAL, "config: unknown key %.*s%s",
			               (int)(klen < 64 ? klen : 64), k,
			               key_is(k, klen, "last_config_update") ? " (it is set by the bank)" : "");
		sections++;
		if (mp_skip(&r, 1))
			return mb_fail(tag, MB_ECORRUPT, "config: damaged");
	}
	mp_packer_init(&pk, out);
	msgpack_pack_map(&pk, sections);
	r = again;
	for (uint32_t i = 0; i < n; i++) {
		const char *name;
		mp_read_str(&r, &k, &klen);
		if (!(name = section_named(k, klen)))
			mp_skip(&r, 1);
		else if ((rc = pack_section(&pk, name, &r, tag)))
			return rc;
	}
	return out->failed ? mb_fail(tag, MB_ENOMEM, "config: out of memory") : 0;
}

int config_patch_from_json(const char *s, size_t len, size_t max, const void *tag, mb_buf *out)
{
	mb_buf mp = { 0 };
	int rc;

	if (!(rc = json_to_mp(s, len, max, MB_MAX_DEPTH, "config", tag, &mp)))
		rc = config_patch_from_mp(mp.data, mp.len, NULL, tag, out);
	buf_free(&mp);
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
		mp_kind k;
		if (mp_peek(r, &k) || mp_read_double(r, &d))
			return MB_ECORRUPT;
		c->timeout_seconds = d;
		c->timeout_is_float = k == MP_FLOAT;
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
	mp_reader r = { p, p + len, false };
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

/* Write the extras of @section (NULL: the top-level ones) as ,"key":value. */
static int extra_to_json(const void *extra, size_t elen, const char *section, mb_buf *b)
{
	mp_reader r = { extra, (const uint8_t *)extra + elen, false };
	const char *k;
	uint32_t n, kl, m;
	int rc = 0;

	if (!extra || !elen || mp_read_map(&r, &n))
		return 0;
	for (uint32_t i = 0; i < n && !rc; i++) {
		if (mp_read_str(&r, &k, &kl))
			return MB_ECORRUPT;
		if (!section && !section_named(k, kl)) {
			buf_addc(b, ',');
			json_add_str(b, k, kl);
			buf_addc(b, ':');
			rc = mp_to_json(&r, b, 1);
		} else if (section && key_is(k, kl, section) && !mp_read_map(&r, &m)) {
			for (uint32_t j = 0; j < m && !rc; j++) {
				if (mp_read_str(&r, &k, &kl))
					return MB_ECORRUPT;
				buf_addc(b, ',');
				json_add_str(b, k, kl);
				buf_addc(b, ':');
				rc = mp_to_json(&r, b, 2);
			}
		} else
			rc = mp_skip(&r, 1);
	}
	return rc;
}

int config_to_json(const mb_config *c, const void *extra, size_t elen, mb_buf *b)
{
	int rc;

	buf_adds(b, "{\"notion_settings\":{\"api_version\":");
	json_add_str(b, c->api_version, strlen(c->api_version));
	buf_adds(b, ",\"retry_attempts\":");
	json_add_int(b, c->retry_attempts);
	buf_adds(b, ",\"timeout_seconds\":");
	if (c->timeout_is_float)
		json_add_double(b, c->timeout_seconds);
	else
		json_add_int(b, (int64_t)c->timeout_seconds);
	if ((rc = extra_to_json(extra, elen, "notion_settings", b)))
		return rc;
	buf_adds(b, "},\"logging_settings\":{\"log_level\":");
	json_add_str(b, c->log_level, strlen(c->log_level));
	buf_adds(b, c->structured_logging ? ",\"structured_logging\":true"
	                                  : ",\"structured_logging\":false");
	if ((rc = extra_to_json(extra, elen, "logging_settings", b)))
		return rc;
	buf_adds(b, "},\"cache_settings\":{\"ttl_seconds\":");
	json_add_int(b, c->ttl_seconds);
	buf_adds(b, ",\"max_entries\":");
	json_add_int(b, c->max_entries);
	if ((rc = extra_to_json(extra, elen, "cache_settings", b)))
		return rc;
	buf_addc(b, '}');
	if ((rc = extra_to_json(extra, elen, NULL, b)))
		return rc;
	buf_adds(b, ",\"last_config_update\":");
	doc_time(b, c->last_update);
	return buf_addc(b, '}');
}

/* ---------------------------------------------------------------- extras */

/* Is @k (in @section) one of the fields? */
static bool is_field(const char *section, const char *k, uint32_t kl)
{
	for (size_t j = 0; j < NFIELDS; j++)
		if (!strcmp(fields[j].section, section) && key_is(k, kl, fields[j].key))
			return true;
	return false;
}

/* Pack the members of the map at @r that are (@want true) or are not
 * fields of @section, raw values copied; @n of them. */
static void pack_members(msgpack_packer *pk, mb_buf *out, mp_reader r, uint32_t n,
                         const char *section, bool want, uint32_t count)
{
	const char *k;
	uint32_t kl;

	msgpack_pack_map(pk, count);
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *v;
		mp_read_str(&r, &k, &kl);
		v = r.p;
		mp_skip(&r, 1);
		if (is_field(section, k, kl) == want) {
			msgpack_pack_str_with_body(pk, k, kl);
			buf_add(out, v, (size_t)(r.p - v));
		}
	}
}

/* The document split in two: its fields (and last_config_update, and
 * anything malformed, for config_patch_from_mp() to name) into @known, the
 * rest into @extra.  Two passes: counts, then the maps. */
static int split(const void *data, size_t len, const void *tag, mb_buf *known, mb_buf *extra)
{
	mp_reader r = { data, (const uint8_t *)data + len, false }, top, sec;
	uint32_t n, kl, m, nk = 0, ne = 0, fk[3] = { 0 }, fe[3] = { 0 };
	msgpack_packer pk, pe;
	const char *k, *name;
	int si;

	if (mp_read_map(&r, &n))
		return mb_fail(tag, MB_EINVAL, "config: not a JSON object");
	top = r;
	for (uint32_t i = 0; i < n; i++) {
		if (mp_read_str(&r, &k, &kl))
			return mb_fail(tag, MB_ECORRUPT, "config: damaged");
		name = section_named(k, kl);
		sec = r;
		if (name && !mp_read_map(&sec, &m)) {
			si = name[0] == 'n' ? 0 : name[0] == 'l' ? 1 : 2;
			nk++;
			for (uint32_t j = 0; j < m; j++) {
				if (mp_read_str(&sec, &k, &kl) || mp_skip(&sec, 1))
					return mb_fail(tag, MB_ECORRUPT, "config: damaged");
				if (is_field(name, k, kl))
					fk[si]++;
				else
					fe[si]++;
			}
			ne += fe[si] > 0;
		} else if (name || key_is(k, kl, "last_config_update")) {
			nk++;
		} else {
			ne++;
		}
		if (mp_skip(&r, 1))
			return mb_fail(tag, MB_ECORRUPT, "config: damaged");
	}
	mp_packer_init(&pk, known);
	mp_packer_init(&pe, extra);
	msgpack_pack_map(&pk, nk);
	msgpack_pack_map(&pe, ne);
	r = top;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *v;
		mp_read_str(&r, &k, &kl);
		name = section_named(k, kl);
		v = r.p;
		sec = r;
		mp_skip(&r, 1);
		if (name && !mp_read_map(&sec, &m)) {
			si = name[0] == 'n' ? 0 : name[0] == 'l' ? 1 : 2;
			msgpack_pack_str_with_body(&pk, k, kl);
			pack_members(&pk, known, sec, m, name, true, fk[si]);
			if (fe[si]) {
				msgpack_pack_str_with_body(&pe, k, kl);
				pack_members(&pe, extra, sec, m, name, false, fe[si]);
			}
		} else {
			mb_buf *to = name || key_is(k, kl, "last_config_update") ? known : extra;
			msgpack_pack_str_with_body(to == known ? &pk : &pe, k, kl);
			buf_add(to, v, (size_t)(r.p - v));
		}
	}
	if (known->failed || extra->failed)
		return mb_fail(tag, MB_ENOMEM, "config: out of memory");
	if (ne && extra->len > CONFIG_EXTRA_MAX)
		return mb_fail(tag, MB_EINVAL, "config: keys beyond the documented ones take more "
		               "than %zu bytes", CONFIG_EXTRA_MAX);
	if (!ne)
		extra->len = 0;
	return 0;
}

int config_from_file(const void *data, size_t len, const void *tag, mb_config *c, mb_buf *extra)
{
	mb_buf known = { 0 }, patch = { 0 };
	int64_t stamp;
	int rc;

	st_config_defaults(c);
	/* a key the file lacks reads as a new bank's (docs/memory-bank.md):
	 * cache_settings off, so that a restore evicts or expires nothing by a
	 * bound nobody set (the snapshot writes every key, so a checkpoint
	 * never relies on this; st_config_defaults() is the legacy 1000 and
	 * 3600 of a store without a config record) */
	c->ttl_seconds = c->max_entries = 0;
	if (!(rc = split(data, len, tag, &known, extra)) &&
	    !(rc = config_patch_from_mp(known.data, known.len, &stamp, tag, &patch)) &&
	    !(rc = config_apply_patch(c, (const uint8_t *)patch.data, patch.len)))
		c->last_update = stamp;
	buf_free(&known);
	buf_free(&patch);
	return rc;
}

int config_extra_get(kv_txn *t, const void **v, size_t *len)
{
	kv_val val;
	int rc = kv_get(t, KV_META, (kv_val){ CONFIG_EXTRA_KEY, sizeof CONFIG_EXTRA_KEY - 1 }, &val);

	*v = NULL;
	*len = 0;
	if (rc == MB_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	if (mp_check(val.data, val.len))
		return MB_ECORRUPT;
	*v = val.data;
	*len = val.len;
	return 0;
}
