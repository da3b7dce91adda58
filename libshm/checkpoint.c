/*
 * checkpoint.c - reading the checkpoint back (see checkpoint.h).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "file.h"

void checkpoint_mark_stale(const char *bank_path)
{
	char dir[4096];

	snprintf(dir, sizeof dir, "%s/store", bank_path);
	mb_write_file_atomic(dir, "boot_id", "repaired", 8, 0600, NULL);
}

int checkpoint_load(mb_bank *b, kv_txn *t, uint64_t *seq, mbj_pos *end)
{
	(void)b;
	(void)t;
	*seq = 0;
	memset(end, 0, sizeof *end);
	return 0;
}
