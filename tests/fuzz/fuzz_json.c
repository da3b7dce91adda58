/*
 * fuzz_json.c - libFuzzer target: hostile JSON text as page properties and
 * as a configuration update (the two JSON inputs of the API).
 *
 * The whole input is given to both, as mb_page_put() and mb_config_update()
 * would (an exact-size heap copy, not NUL-terminated).  These must hold
 * (abort otherwise):
 *  - properties: json_object_to_mp() returns 0 or MB_EINVAL; on 0 the
 *    msgpack passes mp_check(), mp_to_json() turns it into text cJSON
 *    parses, and that text packs again to the very same msgpack bytes
 *    (what a page reads back as is what it was stored as: the same
 *    numbers, integers still integers and floats still floats);
 *  - config: config_patch_from_json() returns 0 or MB_EINVAL; on 0 the
 *    patch merges into the defaults (config_apply_patch() never fails on a
 *    checked patch) and the resulting config_cache.json document parses,
 *    is accepted back as a whole document (what restore does) and gives
 *    the very same document again (numbers keep value and type).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_JSON ((size_t)1 << 20)

static void properties(const char *text, size_t len)
{
	mb_buf mp = { 0 }, js = { 0 }, again = { 0 };
	mp_reader r;
	cJSON *j;
	int rc = json_object_to_mp(text, len, MAX_JSON, "properties", NULL, &mp);

	if (rc && rc != MB_EINVAL)
		abort();
	if (rc)
		goto done;
	r = (mp_reader){ (const uint8_t *)mp.data, (const uint8_t *)mp.data + mp.len, false };
	if (mp_check(mp.data, mp.len) || mp_to_json(&r, &js, 0) || r.p != r.end)
		abort();
	if (!(j = cJSON_ParseWithLength(js.data, js.len)))
		abort();
	cJSON_Delete(j);
	if (json_object_to_mp(js.data, js.len, MAX_JSON * 2, "again", NULL, &again) ||
	    again.len != mp.len || memcmp(again.data, mp.data, mp.len)) {
		fprintf(stderr, "round trip differs: %.*s\n", (int)js.len, js.data);
		abort();
	}
done:
	buf_free(&mp);
	buf_free(&js);
	buf_free(&again);
}

static void config(const char *text, size_t len)
{
	mb_buf patch = { 0 }, doc = { 0 }, mp = { 0 }, back = { 0 }, doc2 = { 0 };
	mb_config c, c2;
	int64_t stamp;
	cJSON *j;
	int rc = config_patch_from_json(text, len, MAX_JSON, NULL, &patch);

	if (rc && rc != MB_EINVAL)
		abort();
	if (rc)
		goto done;
	st_config_defaults(&c);
	if (config_apply_patch(&c, (const uint8_t *)patch.data, patch.len))
		abort();
	c.last_update = 1700000000123456;
	if (config_to_json(&c, NULL, 0, &doc) || !(j = cJSON_ParseWithLength(doc.data, doc.len)))
		abort();
	cJSON_Delete(j);
	/* what restore does with the document: the same config, the same text */
	if (json_to_mp(doc.data, doc.len, MAX_JSON, MB_MAX_DEPTH, "doc", NULL, &mp) ||
	    config_patch_from_mp(mp.data, mp.len, &stamp, NULL, &back)) {
		fprintf(stderr, "config document refused: %s\n%.*s\n", mb_last_error(NULL),
		        (int)doc.len, doc.data);
		abort();
	}
	st_config_defaults(&c2);
	if (config_apply_patch(&c2, (const uint8_t *)back.data, back.len))
		abort();
	c2.last_update = stamp;
	if (config_to_json(&c2, NULL, 0, &doc2) || doc2.len != doc.len || memcmp(doc.data, doc2.data, doc.len)) {
		fprintf(stderr, "config document changed: %.*s\n", (int)doc.len, doc.data);
		abort();
	}
done:
	buf_free(&patch);
	buf_free(&doc);
	buf_free(&mp);
	buf_free(&back);
	buf_free(&doc2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1);

	memcpy(copy, data, size);
	properties(copy, size);
	config(copy, size);
	free(copy);
	return 0;
}
