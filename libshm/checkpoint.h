/*
 * checkpoint.h - the snapshot as the point recovery starts from.
 *
 * checkpoint.json in the bank directory names the journal seq that the four
 * JSON files beside it cover: {"format":1,"seq":N}.  It is written after
 * them, atomically, so it never names files that are not all there.
 */
#ifndef MEMBANK_CHECKPOINT_H
#define MEMBANK_CHECKPOINT_H

#include "bank.h"

/* Load the bank directory's checkpoint into the (empty) store: *seq is the
 * seq it covers and *end its journal position (0 and {0} without one). */
int checkpoint_load(mb_bank *b, kv_txn *t, uint64_t *seq, mbj_pos *end);

/* The first checkpoint of a bank just restored from the four files in @dir:
 * a copy of them, covering no journal record. */
int checkpoint_from_files(mb_bank *b, const char *dir);

/* The newest checkpoint's directory (into @dir) and journal position;
 * *found false when there is none. */
int checkpoint_newest(const char *bank_path, char *dir, size_t cap, mbj_pos *end, bool *found);

/* Make the next open rebuild the store (after a journal repair). */
void checkpoint_mark_stale(const char *bank_path);

#endif /* MEMBANK_CHECKPOINT_H */
