/*
 * config.h - checking and merging configuration (see config.c).
 */
#ifndef MEMBANK_CONFIG_H
#define MEMBANK_CONFIG_H

#include "state.h"

struct cJSON;

/* JSON text -> normalised msgpack patch; MB_EINVAL names the dotted key. */
int config_patch_from_json(const char *s, size_t len, size_t max, const void *tag, mb_buf *out);
/* The same from a parsed object; @allow_stamp lets last_config_update pass
 * (a whole config_cache.json document, on restore). */
int config_patch_from_cjson(const struct cJSON *j, bool allow_stamp, const void *tag, mb_buf *out);
/* Merge a patch made by the above into @c (never fails on such a patch). */
int config_apply_patch(mb_config *c, const uint8_t *p, size_t len);
/* The config_cache.json document. */
int config_to_json(const mb_config *c, mb_buf *b);

#endif /* MEMBANK_CONFIG_H */
