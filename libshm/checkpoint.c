/*
 * checkpoint.c - reading the checkpoint back (see checkpoint.h, and the
 * layout in snapshot.c).
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "file.h"
#include "load.h"

void checkpoint_mark_stale(const char *bank_path)
{
	char dir[4096];

	mb_pathf(dir, sizeof dir, "%s/store", bank_path);
	mb_write_file_atomic(dir, "boot_id", "repaired", 8, 0600, NULL);
}

/* The newest complete checkpoint directory's name ("" when none). */
static void newest(const char *root, char name[32])
{
	struct dirent *e;
	DIR *d = mb_opendir(root);

	name[0] = '\0';
	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && strlen(e->d_name) == 20 && strcmp(e->d_name, name) > 0)
			snprintf(name, 32, "%s", e->d_name);
	closedir(d);
}

static int read_position(mb_bank *b, const char *dir, mbj_pos *end)
{
	char path[4096], text[256];
	const cJSON *f[4];
	static const char *const keys[4] = { "format", "seq", "segment", "offset" };
	cJSON *j = NULL;
	ssize_t n = -1;
	int fd, rc = 0;

	mb_pathf(path, sizeof path, "%s/%s", dir, MB_CHECKPOINT_FILE);
	if ((fd = mb_open_fd(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0)) >= 0) {
		n = read(fd, text, sizeof text - 1);
		close(fd);
	}
	if (n > 0)
		j = cJSON_ParseWithLength(text, (size_t)n);
	for (int i = 0; i < 4; i++) {
		f[i] = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
		if (!cJSON_IsNumber(f[i]) || f[i]->valuedouble < 0)
			rc = mb_fail(b->tag, MB_ECORRUPT, "%s: missing or bad \"%s\"", path, keys[i]);
	}
	if (!rc && f[0]->valuedouble != MB_FORMAT_VERSION)
		rc = mb_fail(b->tag, MB_EVERSION, "%s: format %g", path, f[0]->valuedouble);
	if (!rc) {
		end->seq = (uint64_t)f[1]->valuedouble;
		end->segment = (uint64_t)f[2]->valuedouble;
		end->offset = (uint64_t)f[3]->valuedouble;
	}
	cJSON_Delete(j);
	return rc;
}

int checkpoint_load(mb_bank *b, kv_txn *t, uint64_t *seq, mbj_pos *end)
{
	char root[4096], dir[4096], name[32];
	load_docs docs;
	int rc;

	*seq = 0;
	memset(end, 0, sizeof *end);
	mb_pathf(root, sizeof root, "%s/checkpoint", b->path);
	newest(root, name);
	if (!*name)
		return 0;
	mb_pathf(dir, sizeof dir, "%s/%s", root, name);
	if ((rc = read_position(b, dir, end)))
		return rc;
	if ((rc = load_docs_read(dir, b->tag, &docs)))
		return rc;
	rc = load_all(&t, NULL, dir, &docs, b->history_limit, MB_MAX_JSON_BYTES, b->tag);
	load_docs_free(&docs);
	if (rc && rc != KV_EMAPFULL)
		rc = mb_fail(b->tag, MB_ECORRUPT, "checkpoint %s: %s", dir, mb_last_error(b->tag));
	*seq = end->seq;
	return rc;
}
