/*
 * record.c - encoding and checking of mutation records (see record.h).
 */
#include <msgpack.h>
#include <string.h>

#include "journal.h"
#include "record.h"

static int packed(mb_buf *out)
{
	return out->failed ? MB_ENOMEM : 0;
}

int rec_encode_page_head(mb_buf *out, const char *id, size_t idlen)
{
	msgpack_packer pk;

	mp_packer_init(&pk, out);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_str_with_body(&pk, id, idlen);
	return packed(out);
}

int rec_encode_id(mb_buf *out, const char *id, size_t idlen)
{
	msgpack_packer pk;

	mp_packer_init(&pk, out);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_str_with_body(&pk, id, idlen);
	return packed(out);
}

int rec_encode_strs(mb_buf *out, const char *a, const char *b)
{
	msgpack_packer pk;

	mp_packer_init(&pk, out);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_str_with_body(&pk, a, strlen(a));
	if (b)
		msgpack_pack_str_with_body(&pk, b, strlen(b));
	else
		msgpack_pack_nil(&pk);
	return packed(out);
}

int rec_encode_map(mb_buf *out, const mb_buf *map)
{
	msgpack_packer pk;

	mp_packer_init(&pk, out);
	msgpack_pack_array(&pk, 1);
	buf_add(out, map->data, map->len);
	return packed(out);
}

int rec_encode_int(mb_buf *out, int64_t v)
{
	msgpack_packer pk;

	mp_packer_init(&pk, out);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_int64(&pk, v);
	return packed(out);
}

/* A string field: valid UTF-8 and within its bound. */
static int read_text(mp_reader *r, const char **s, uint32_t *len, uint32_t min, uint32_t max)
{
	if (mp_read_str(r, s, len) || *len < min || *len > max ||
	    (!r->checked && !mb_utf8_valid(*s, *len)))
		return MB_ECORRUPT;
	return 0;
}

static int read_map(mp_reader *r, mb_rec *o)
{
	mp_kind k;

	o->map = r->p;
	if (mp_peek(r, &k) || k != MP_MAP || mp_skip(r, 0))
		return MB_ECORRUPT;
	o->maplen = (size_t)(r->p - o->map);
	return 0;
}

static const struct {
	uint32_t n, amin, amax, bmax;  /* array length, bounds of a and b */
	bool b_nil_ok, has_map;
} shapes[REC_MAX + 1] = {
	[REC_PAGE_PUT] = { 2, 1, MB_MAX_ID_BYTES, 0, false, true },
	[REC_PAGE_MERGE] = { 2, 1, MB_MAX_ID_BYTES, 0, false, true },
	[REC_PAGE_DELETE] = { 1, 1, MB_MAX_ID_BYTES, 0, false, false },
	[REC_SYNC] = { 2, 1, MB_MAX_STATUS_BYTES, MB_MAX_TEXT_BYTES, true, false },
	[REC_ERROR_LOG] = { 2, 1, MB_MAX_TYPE_BYTES, MB_MAX_TEXT_BYTES, false, false },
	[REC_ERROR_RESOLVE] = { 2, 1, MB_MAX_TYPE_BYTES, MB_MAX_TEXT_BYTES, false, false },
	[REC_CONFIG] = { 1, 0, 0, 0, false, true },
	[REC_PURGE] = { 1, 0, 0, 0, false, false },
};

/* Decode one payload array of @type from @r, leaving @r after it. */
static int decode_body(mp_reader *r, uint8_t type, mb_rec *o)
{
	uint32_t n;

	if (type < 1 || type > REC_CONFIG || mp_read_array(r, &n) || n != shapes[type].n)
		return MB_ECORRUPT;
	if (type == REC_CONFIG)
		return read_map(r, o);
	if (read_text(r, &o->a, &o->alen, shapes[type].amin, shapes[type].amax))
		return MB_ECORRUPT;
	if (shapes[type].has_map)
		return read_map(r, o);
	if (n == 2 && !(shapes[type].b_nil_ok && mp_read_nil(r)) &&
	    read_text(r, &o->b, &o->blen, 0, shapes[type].bmax))
		return MB_ECORRUPT;
	return 0;
}

int rec_batch_next(mp_reader *r, int64_t ts, mb_rec *op)
{
	uint32_t n;
	int64_t type;

	memset(op, 0, sizeof *op);
	op->ts = ts;
	if (mp_read_array(r, &n) || n != 2 || mp_read_int(r, &type) || type < REC_PAGE_PUT ||
	    type > REC_CONFIG)
		return MB_ECORRUPT;
	op->type = (uint8_t)type;
	return decode_body(r, op->type, op);
}

static int decode_batch(mp_reader *r, int64_t ts, mb_rec *o)
{
	uint32_t n;
	mb_rec op;

	o->map = r->p;
	if (mp_read_array(r, &n) || n < 1 || n > MB_MAX_BATCH_OPS)
		return MB_ECORRUPT;
	o->num = n;
	for (uint32_t i = 0; i < n; i++)
		if (rec_batch_next(r, ts, &op))
			return MB_ECORRUPT;
	o->maplen = (size_t)(r->p - o->map);
	return 0;
}

/* One payload of @type (not CANCELLED nor GROUP) from @r, leaving @r
 * after it. */
static int decode_payload(mp_reader *r, uint8_t type, int64_t ts, mb_rec *o)
{
	uint32_t n;

	memset(o, 0, sizeof *o);
	o->type = type;
	o->ts = ts;
	if (type == REC_BATCH)
		return decode_batch(r, ts, o);
	if (type == REC_PURGE)
		return mp_read_array(r, &n) || n != 1 || mp_read_int(r, &o->num) ? MB_ECORRUPT : 0;
	return decode_body(r, type, o);
}

int rec_group_next(mp_reader *r, mb_rec *op, const uint8_t **raw, size_t *rawlen,
                   int64_t *nonce, int64_t *ticket)
{
	int64_t type, ts;
	uint32_t n;

	if (mp_read_array(r, &n) || n != 5 || mp_read_int(r, &type) || type < REC_PAGE_PUT ||
	    type > REC_BATCH || type == REC_CANCELLED || mp_read_int(r, &ts))
		return MB_ECORRUPT;
	*raw = r->p;
	if (decode_payload(r, (uint8_t)type, ts, op))
		return MB_ECORRUPT;
	*rawlen = (size_t)(r->p - *raw);
	return mp_read_int(r, nonce) || mp_read_int(r, ticket) ? MB_ECORRUPT : 0;
}

static int decode_group(mp_reader *r, mb_rec *o)
{
	const uint8_t *raw;
	int64_t nonce, ticket;
	size_t rawlen;
	uint32_t n;
	mb_rec op;

	o->map = r->p;
	if (mp_read_array(r, &n) || n < 1 || n > MBJ_MAX_GROUP)
		return MB_ECORRUPT;
	o->num = n;
	for (uint32_t i = 0; i < n; i++)
		if (rec_group_next(r, &op, &raw, &rawlen, &nonce, &ticket))
			return MB_ECORRUPT;
	o->maplen = (size_t)(r->p - o->map);
	return 0;
}

int rec_group_header(mb_buf *out, uint32_t n)
{
	msgpack_packer pk;

	mp_packer_init(&pk, out);
	msgpack_pack_array(&pk, n);
	return packed(out);
}

int rec_group_member(mb_buf *out, uint8_t type, int64_t ts, const void *payload, size_t len,
                     int64_t nonce, int64_t ticket)
{
	msgpack_packer pk;

	mp_packer_init(&pk, out);
	msgpack_pack_array(&pk, 5);
	msgpack_pack_uint8(&pk, type);
	msgpack_pack_int64(&pk, ts);
	buf_add(out, payload, len);
	msgpack_pack_int64(&pk, nonce);
	msgpack_pack_int64(&pk, ticket);
	return packed(out);
}

static int decode(uint8_t type, int64_t ts, const void *payload, size_t len, bool checked,
                  mb_rec *o)
{
	mp_reader r = { payload, (const uint8_t *)payload + len, checked };
	int rc;

	memset(o, 0, sizeof *o);
	o->type = type;
	o->ts = ts;
	if (type == REC_CANCELLED)  /* whatever it was, properties may nest fully */
		return mp_check_wrapped(payload, len, REC_WRAPPERS);
	if (type == REC_GROUP) {
		rc = decode_group(&r, o);
		o->type = type;
		o->ts = ts;
	} else {
		rc = decode_payload(&r, type, ts, o);
	}
	return rc ? MB_ECORRUPT : r.p == r.end ? 0 : MB_ECORRUPT;
}

int rec_decode(uint8_t type, int64_t ts, const void *payload, size_t len, mb_rec *o)
{
	return decode(type, ts, payload, len, false, o);
}

int rec_decode_own(uint8_t type, int64_t ts, const void *payload, size_t len, mb_rec *o)
{
	return decode(type, ts, payload, len, true, o);
}

static const char *const op_names[REC_MAX + 1] = {
	[REC_PAGE_PUT] = "page.put", [REC_PAGE_MERGE] = "page.merge",
	[REC_PAGE_DELETE] = "page.delete", [REC_SYNC] = "sync.record",
	[REC_ERROR_LOG] = "error.log", [REC_ERROR_RESOLVE] = "error.resolve",
	[REC_CONFIG] = "config.update", [REC_PURGE] = "pages.purge",
	[REC_CANCELLED] = "cancelled", [REC_BATCH] = "batch", [REC_GROUP] = "group",
};

static const char *const field_a[REC_MAX + 1] = {
	[REC_PAGE_PUT] = "id", [REC_PAGE_MERGE] = "id", [REC_PAGE_DELETE] = "id",
	[REC_SYNC] = "status", [REC_ERROR_LOG] = "error_type",
	[REC_ERROR_RESOLVE] = "error_type",
};

static const char *const field_b[REC_MAX + 1] = {
	[REC_SYNC] = "error", [REC_ERROR_LOG] = "message", [REC_ERROR_RESOLVE] = "steps",
};

/* "op":"...", then the record's fields, into @out. */
static int event_fields(const mb_rec *r, mb_buf *out)
{
	char ts[MB_TIME_LEN];
	int rc = 0;

	buf_adds(out, "\"op\":\"");
	buf_adds(out, op_names[r->type]);
	buf_addc(out, '"');
	if (field_a[r->type]) {
		buf_adds(out, ",\"");
		buf_adds(out, field_a[r->type]);
		buf_adds(out, "\":");
		json_add_str(out, r->a, r->alen);
	}
	if (field_b[r->type]) {
		buf_adds(out, ",\"");
		buf_adds(out, field_b[r->type]);
		buf_adds(out, "\":");
		if (r->b)
			json_add_str(out, r->b, r->blen);
		else
			buf_adds(out, "null");
	}
	if (r->type == REC_BATCH) {
		mp_reader m = { r->map, r->map + r->maplen, false };
		uint32_t n = 0;
		mb_rec op;

		buf_adds(out, ",\"ops\":[");
		rc = mp_read_array(&m, &n);
		for (uint32_t i = 0; !rc && i < n; i++) {
			buf_adds(out, i ? ",{" : "{");
			if (!(rc = rec_batch_next(&m, r->ts, &op)))
				rc = event_fields(&op, out);
			buf_addc(out, '}');
		}
		buf_addc(out, ']');
	} else if (r->type == REC_GROUP) {
		mp_reader m = { r->map, r->map + r->maplen, false };
		const uint8_t *raw;
		int64_t nonce, ticket;
		size_t rawlen;
		uint32_t n = 0;
		mb_rec op;
		char mts[MB_TIME_LEN];

		buf_adds(out, ",\"members\":[");
		rc = mp_read_array(&m, &n);
		for (uint32_t i = 0; !rc && i < n; i++) {
			buf_adds(out, i ? ",{" : "{");
			if (!(rc = rec_group_next(&m, &op, &raw, &rawlen, &nonce, &ticket))) {
				mb_format_time(op.ts, mts);
				buf_adds(out, "\"timestamp\":\"");
				buf_adds(out, mts);
				buf_adds(out, "\",");
				rc = event_fields(&op, out);
			}
			buf_addc(out, '}');
		}
		buf_addc(out, ']');
	} else if (r->map) {
		mp_reader m = { r->map, r->map + r->maplen, false };
		buf_adds(out, r->type == REC_CONFIG ? ",\"config\":" : ",\"properties\":");
		rc = mp_to_json(&m, out, 0);
	}
	if (r->type == REC_PURGE) {
		mb_format_time(r->num, ts);
		buf_adds(out, ",\"before\":\"");
		buf_adds(out, ts);
		buf_addc(out, '"');
	}
	return rc;
}

int rec_event_json(uint64_t seq, const mb_rec *r, mb_buf *out)
{
	char ts[MB_TIME_LEN];
	int rc;

	mb_format_time(r->ts, ts);
	buf_adds(out, "{\"seq\":");
	json_add_int(out, (int64_t)seq);
	buf_adds(out, ",\"timestamp\":\"");
	buf_adds(out, ts);
	buf_adds(out, "\",");
	rc = event_fields(r, out);
	buf_addc(out, '}');
	return rc ? rc : (out->failed ? MB_ENOMEM : 0);
}
