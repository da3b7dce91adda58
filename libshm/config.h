/*
 * config.h - checking and merging configuration (see config.c).
 */
#ifndef MEMBANK_CONFIG_H
#define MEMBANK_CONFIG_H

#include "state.h"

/* JSON text -> normalised msgpack patch; MB_EINVAL names the dotted key. */
int config_patch_from_json(const char *s, size_t len, size_t max, const void *tag, mb_buf *out);
/* The same from the msgpack of a JSON object (json_to_mp).  With @stamp, a
 * whole config_cache.json document (restore): last_config_update is taken
 * into *@stamp (MB_NEVER when null or absent) instead of refused. */
int config_patch_from_mp(const void *data, size_t len, int64_t *stamp, const void *tag,
                         mb_buf *out);
/* Merge a patch made by the above into @c (never fails on such a patch). */
int config_apply_patch(mb_config *c, const uint8_t *p, size_t len);
/* The config_cache.json document. */
int config_to_json(const mb_config *c, mb_buf *b);

#endif /* MEMBANK_CONFIG_H */
