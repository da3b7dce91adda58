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
/* The config_cache.json document, with the extra keys of @extra (msgpack,
 * @elen bytes, see below; NULL: none) in their places. */
int config_to_json(const mb_config *c, const void *extra, size_t elen, mb_buf *b);

/* CONFIG EXTRAS.  Keys of a config_cache.json file beyond the fields above
 * (a file the original class or a person wrote) are kept, not refused: a
 * file is split into its fields and its extras, a msgpack map of the same
 * shape ({key: value} for a top-level key, {section: {key: value}} for keys
 * inside a known section), stored as the meta record CONFIG_EXTRA_KEY, and
 * config_to_json() writes them back where they were: after their section's
 * fields, and the top-level ones before last_config_update.  Updates
 * (mb_config_update) still refuse unknown keys: extras come from files
 * only.  At most CONFIG_EXTRA_MAX bytes packed: printed they take at most 6
 * times that, so the file written stays within what the loader reads. */
#define CONFIG_EXTRA_KEY "config.extra"
#define CONFIG_EXTRA_MAX ((size_t)8 << 10)

/* A whole config_cache.json document (msgpack) over the defaults into @c
 * (last_update its stamp); its extras into @extra (left empty when none).
 * The defaults are a new bank's: cache_settings both 0. */
int config_from_file(const void *data, size_t len, const void *tag, mb_config *c,
                     mb_buf *extra);
/* The stored extras (*@v empty when none); 0 or an MB_E* code. */
int config_extra_get(kv_txn *t, const void **v, size_t *len);

#endif /* MEMBANK_CONFIG_H */
