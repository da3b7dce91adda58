/*
 * checkpoint.h - the snapshot as the point recovery starts from.
 *
 * checkpoint.json in the bank directory names the journal position that the
 * four JSON files beside it cover, and holds the state of the store that the
 * spec's files have no key for (so that they keep exactly the spec's keys):
 *   {"format":1,"seq":N,"segment":S,"offset":O,
 *    "error_types":{"dropped":N,"last_seen":{"type":time|null,...}}}
 * error_types: how many error types were dropped at MB_MAX_ERROR_TYPES, and
 * when each kept type was last logged or resolved (which goes next).  It is
 * optional when read: the four files alone (a restore from the spec's files)
 * load with 0 dropped and every last_seen unknown, older than any known.
 * It is written after them, atomically, so it never names files that are
 * not all there.
 */
#ifndef MEMBANK_CHECKPOINT_H
#define MEMBANK_CHECKPOINT_H

#include "bank.h"
#include "load.h"

/* checkpoint/<20-digit seq>/ directories: the newest, and the one before it
 * that a snapshot keeps (with the journal segments it needs) so recovery
 * can fall back on it if the newest cannot be loaded. */

/* The name of the newest checkpoint under @root older than @below ("":
 * no bound), or "" when there is none.  -1 (errno) when @root cannot be read. */
int checkpoint_older(const char *root, const char *below, char name[32]);

/* Load a checkpoint into the (empty) store: the newest when @name is "",
 * else the newest older than @name; @name receives the one loaded.  *seq is
 * the seq it covers and *end its journal position (0 and {0}, and @name "",
 * when the bank has none).  MB_ENOTFOUND: nothing older than @name;
 * MB_ECORRUPT (naming the file): it cannot be loaded. */
struct progress;
/* @pr: NULL, or stepped per page loaded */
int checkpoint_load(mb_bank *b, kv_txn *t, char name[32], uint64_t *seq, mbj_pos *end,
                    struct progress *pr);

/* Rename checkpoint/<name> to checkpoint/<name>.damaged (kept for
 * inspection until the snapshots after it prune it). */
void checkpoint_set_aside(const char *bank_path, const char *name);

/* The first checkpoint of a bank just restored from the four files in @dir:
 * a copy of them, covering no journal record.  @want: their digests as
 * loaded, in the order notion_pages.json, sync_status.json, error_log.json,
 * config_cache.json; a copy that differs fails (MB_EINVAL, the file changed
 * meanwhile), one that matches is not loaded again. */
int checkpoint_from_files(mb_bank *b, const char *dir, const load_digest want[4]);

/* The newest checkpoint's directory (into @dir) and journal position;
 * *found false when there is none. */
int checkpoint_newest(const char *bank_path, char *dir, size_t cap, mbj_pos *end, bool *found);

/* The journal position that @dir/checkpoint.json names (MB_ECORRUPT,
 * MB_EVERSION with the message when it cannot be read). */
int checkpoint_position(mb_bank *b, const char *dir, mbj_pos *end);

/* Make the next open rebuild the store (after a journal repair). */
void checkpoint_mark_stale(const char *bank_path);

#endif /* MEMBANK_CHECKPOINT_H */
