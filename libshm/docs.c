/*
 * docs.c - the spec's JSON documents (see docs.h).
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "docs.h"

void doc_time(mb_buf *b, int64_t t)
{
	char ts[MB_TIME_LEN];

	if (t == MB_NEVER) {
		buf_adds(b, "null");
		return;
	}
	mb_format_time(t, ts);
	buf_addc(b, '"');
	buf_adds(b, ts);
	buf_addc(b, '"');
}

static int done(mb_buf *b, int rc)
{
	return rc ? rc : (b->failed ? MB_ENOMEM : 0);
}

int doc_page(kv_val v, mb_buf *b)
{
	const uint8_t *props;
	int64_t updated;
	size_t len;
	mp_reader r;
	int rc;

	if ((rc = st_page_split(v, &updated, &props, &len)))
		return rc;
	r = (mp_reader){ props, props + len, false };
	buf_adds(b, "{\"properties\":");
	if ((rc = mp_to_json(&r, b, 0)) || r.p != r.end)
		return rc ? rc : MB_ECORRUPT;
	buf_adds(b, ",\"last_updated\":");
	doc_time(b, updated);
	return done(b, buf_addc(b, '}'));
}

/* One history entry [ts, a, c|nil] as {"timestamp":..,<ka>:..,<kc>:..}. */
static int doc_hist_entry(kv_val v, const char *ka, const char *kc, mb_buf *b)
{
	const char *a, *c;
	uint32_t alen, clen;
	int64_t ts;
	int rc;

	if ((rc = st_hist_decode(v, &ts, &a, &alen, &c, &clen)))
		return rc;
	buf_adds(b, "{\"timestamp\":");
	doc_time(b, ts);
	buf_adds(b, ",\"");
	buf_adds(b, ka);
	buf_adds(b, "\":");
	/* MB_ECORRUPT for invalid UTF-8, MB_ENOMEM when the buffer cannot grow */
	if ((rc = json_add_str(b, a, alen)))
		return rc;
	buf_adds(b, ",\"");
	buf_adds(b, kc);
	buf_adds(b, "\":");
	if (!c)
		buf_adds(b, "null");
	else if ((rc = json_add_str(b, c, clen)))
		return rc;
	return done(b, buf_addc(b, '}'));
}

static int doc_history(kv_txn *t, int db, const char *ka, const char *kc, mb_buf *b)
{
	kv_cursor *c;
	kv_val k, v;
	bool first = true;
	int rc;

	if ((rc = kv_cursor_open(t, db, &c)))
		return rc;
	buf_addc(b, '[');
	for (rc = kv_cursor_seek(c, NULL, &k, &v); !rc; rc = kv_cursor_next(c, &k, &v)) {
		if (!first)
			buf_addc(b, ',');
		first = false;
		if ((rc = doc_hist_entry(v, ka, kc, b)))
			break;
	}
	kv_cursor_close(c);
	if (rc && rc != MB_ENOTFOUND)
		return rc;
	return done(b, buf_addc(b, ']'));
}

int doc_sync_status(kv_txn *t, mb_buf *b)
{
	st_sync s;
	int rc;

	if ((rc = st_sync_load(t, &s)))
		return rc;
	buf_adds(b, "{\"last_successful_sync\":");
	doc_time(b, s.last_success);
	buf_adds(b, ",\"sync_history\":");
	if ((rc = doc_history(t, KV_SYNCHIST, "status", "error", b)))
		return rc;
	buf_adds(b, ",\"current_status\":");
	if (s.has_status)
		json_add_str(b, s.status, strlen(s.status));
	else
		buf_adds(b, "null");
	buf_adds(b, ",\"error_count\":");
	json_add_int(b, (int64_t)s.errors);
	buf_adds(b, ",\"success_count\":");
	json_add_int(b, (int64_t)s.successes);
	return done(b, buf_addc(b, '}'));
}

int doc_last_error(const st_errors *s, mb_buf *b)
{
	if (s->last_ts == MB_NEVER)
		return done(b, buf_adds(b, "{}"));
	buf_adds(b, "{\"timestamp\":");
	doc_time(b, s->last_ts);
	buf_adds(b, ",\"error_type\":");
	json_add_str(b, s->last_type, strlen(s->last_type));
	buf_adds(b, ",\"message\":");
	json_add_str(b, s->last_msg, strlen(s->last_msg));
	return done(b, buf_addc(b, '}'));
}

enum { ET_COUNTS, ET_RESOLUTIONS, ET_SEEN };

/* {"type":count,...}; ET_RESOLUTIONS: {"type":{"steps":..,"timestamp":..,
 * "resolved":N},...} for the types that have steps; ET_SEEN:
 * {"type":last_seen,...}. */
static int doc_errtypes(kv_txn *t, int what, mb_buf *b)
{
	kv_cursor *c;
	kv_val k, v;
	st_errtype et;
	bool first = true;
	int rc;

	if ((rc = kv_cursor_open(t, KV_ERRTYPES, &c)))
		return rc;
	buf_addc(b, '{');
	for (rc = kv_cursor_seek(c, NULL, &k, &v); !rc; rc = kv_cursor_next(c, &k, &v)) {
		if ((rc = st_errtype_decode(v, &et)))
			break;
		if (what == ET_RESOLUTIONS && et.resolved_at == MB_NEVER)
			continue;
		if (!first)
			buf_addc(b, ',');
		first = false;
		if ((rc = json_add_str(b, k.data, k.len)))
			break;
		buf_addc(b, ':');
		if (what != ET_RESOLUTIONS) {
			if (what == ET_SEEN)
				doc_time(b, et.last_seen);
			else
				json_add_int(b, (int64_t)et.count);
			continue;
		}
		buf_adds(b, "{\"steps\":");
		json_add_str(b, et.steps, strlen(et.steps));
		buf_adds(b, ",\"timestamp\":");
		doc_time(b, et.resolved_at);
		buf_adds(b, ",\"resolved\":");
		json_add_int(b, (int64_t)et.resolved);
		buf_addc(b, '}');
	}
	kv_cursor_close(c);
	if (rc && rc != MB_ENOTFOUND)
		return rc;
	return done(b, buf_addc(b, '}'));
}

int doc_error_stats(kv_txn *t, mb_buf *b)
{
	st_errors s;
	int rc;

	if ((rc = st_errors_load(t, &s)))
		return rc;
	buf_adds(b, "{\"total_errors\":");
	json_add_int(b, (int64_t)s.total);
	buf_adds(b, ",\"resolved_errors\":");
	json_add_int(b, (int64_t)s.resolved);
	buf_adds(b, ",\"patterns\":");
	if ((rc = doc_errtypes(t, ET_COUNTS, b)))
		return rc;
	buf_adds(b, ",\"last_error\":");
	if ((rc = doc_last_error(&s, b)))
		return rc;
	return done(b, buf_addc(b, '}'));
}

int doc_error_log(kv_txn *t, mb_buf *b)
{
	st_errors s;
	int rc;

	if ((rc = st_errors_load(t, &s)))
		return rc;
	buf_adds(b, "{\"errors\":");
	if ((rc = doc_history(t, KV_ERRHIST, "error_type", "message", b)))
		return rc;
	buf_adds(b, ",\"patterns\":");
	if ((rc = doc_errtypes(t, ET_COUNTS, b)))
		return rc;
	buf_adds(b, ",\"resolutions\":");
	if ((rc = doc_errtypes(t, ET_RESOLUTIONS, b)))
		return rc;
	buf_adds(b, ",\"last_error\":");
	if ((rc = doc_last_error(&s, b)))
		return rc;
	buf_adds(b, ",\"error_stats\":{\"total_errors\":");
	json_add_int(b, (int64_t)s.total);
	buf_adds(b, ",\"resolved_errors\":");
	json_add_int(b, (int64_t)s.resolved);
	return done(b, buf_adds(b, "}}"));
}

int doc_checkpoint_state(kv_txn *t, mb_buf *b)
{
	st_errors s;
	st_removed rm;
	int rc;

	if ((rc = st_errors_load(t, &s)) || (rc = st_removed_load(t, &rm)))
		return rc;
	buf_adds(b, ",\"pages_removed\":{\"evicted\":");
	json_add_int(b, (int64_t)rm.evicted);
	buf_adds(b, ",\"purged\":");
	json_add_int(b, (int64_t)rm.purged);
	buf_adds(b, "},\"error_types\":{\"dropped\":");
	json_add_int(b, (int64_t)s.types_dropped);
	buf_adds(b, ",\"last_seen\":");
	if ((rc = doc_errtypes(t, ET_SEEN, b)))
		return rc;
	return done(b, buf_adds(b, "}}\n"));
}

int doc_checkpoint(const mbj_pos *end, int64_t write_us, const mb_buf *state, mb_buf *b)
{
	char head[128];

	snprintf(head, sizeof head, "{\"format\":%d,\"seq\":%llu,\"segment\":%llu,\"offset\":%llu,"
	         "\"write_us\":%lld", MB_CHECKPOINT_FORMAT, (unsigned long long)end->seq,
	         (unsigned long long)end->segment, (unsigned long long)end->offset,
	         (long long)(write_us > 0 ? write_us : 0));
	buf_adds(b, head);
	return done(b, buf_add(b, state->data, state->len));
}

int doc_config(kv_txn *t, mb_buf *b)
{
	mb_config c;
	int rc;

	const void *extra;
	size_t elen;

	if ((rc = st_config_load(t, &c)) || (rc = config_extra_get(t, &extra, &elen)))
		return rc;
	return done(b, config_to_json(&c, extra, elen, b));
}
