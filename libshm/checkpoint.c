/*
 * checkpoint.c - reading the checkpoint back (see checkpoint.h, and the
 * layout in snapshot.c).
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int checkpoint_older(const char *root, const char *below, char name[32])
{
	struct dirent *e;
	DIR *d = mb_opendir(root);

	name[0] = '\0';
	if (!d)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && strlen(e->d_name) == 20 && strcmp(e->d_name, name) > 0 &&
		    (!*below || strcmp(e->d_name, below) < 0))
			snprintf(name, 32, "%s", e->d_name);
	closedir(d);
	return 0;
}

/* The position checkpoint.json names; its other keys are checked with the
 * files (load_docs_read()).  A newer format is MB_EVERSION, not damage. */
int checkpoint_position(mb_bank *b, const char *dir, mbj_pos *end)
{
	char path[4096];
	const cJSON *f[4];
	static const char *const keys[4] = { "format", "seq", "segment", "offset" };
	struct stat st;
	cJSON *j = NULL;
	uint64_t v[4];
	int rc = 0;

	/* a checkpoint is a directory of its own: a symlink in its place would
	 * load another bank's files, a file or FIFO there (ENOTDIR) is no
	 * checkpoint; both are damage, passed over and set aside by recovery */
	if (lstat(dir, &st))
		return mb_fail(b->tag, errno == ENOENT ? MB_ECORRUPT : mb_errno_code(errno), "%s: %s",
		               dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return mb_fail(b->tag, MB_ECORRUPT, "%s: not a directory (a symlink, file or FIFO in "
		               "its place)", dir);
	mb_pathf(path, sizeof path, "%s/%s", dir, MB_CHECKPOINT_FILE);
	/* what the file says wrong (or its absence) is damage; a system error
	 * (out of descriptors, an I/O error) keeps its code: it is not passed
	 * over as damage */
	if ((rc = load_parse_file(dir, MB_CHECKPOINT_FILE, MB_MAX_CHECKPOINT_FILE, b->tag, &j)))
		return mb_fail(b->tag, rc == MB_EINVAL || rc == MB_ENOTFOUND ? MB_ECORRUPT : rc,
		               "%s", mb_last_error(b->tag));
	/* each a whole number a double holds exactly: a position read as a
	 * neighbour would replay from the wrong record */
	for (int i = 0; i < 4; i++) {
		f[i] = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
		if (!rc && !json_whole(f[i], MB_JSON_WHOLE_MAX, &v[i]))
			rc = mb_fail(b->tag, MB_ECORRUPT, "%s: missing or bad \"%s\" (a whole number "
			             "from 0 to 9007199254740991)", path, keys[i]);
	}
	if ((!rc || cJSON_IsNumber(f[0])) && f[0]->valuedouble != MB_CHECKPOINT_FORMAT)
		rc = mb_fail(b->tag, MB_EVERSION, "%s: format %g", path, f[0]->valuedouble);
	if (!rc) {
		end->seq = v[1];
		end->segment = v[2];
		end->offset = v[3];
	}
	cJSON_Delete(j);
	return rc;
}

int checkpoint_load(mb_bank *b, kv_txn *t, char name[32], uint64_t *seq, mbj_pos *end,
                    struct progress *pr)
{
	char root[4096], dir[4096], below[32];
	load_docs docs;
	int rc;

	*seq = 0;
	memset(end, 0, sizeof *end);
	snprintf(below, sizeof below, "%s", name);
	mb_pathf(root, sizeof root, "%s/checkpoint", b->path);
	if (checkpoint_older(root, below, name))
		return mb_fail(b->tag, mb_errno_code(errno), "%s: %s", root, strerror(errno));
	if (!*name)
		return *below ? MB_ENOTFOUND : 0;
	mb_pathf(dir, sizeof dir, "%s/%s", root, name);
	if ((rc = checkpoint_position(b, dir, end)))
		return rc;
	/* what the files say is wrong (MB_EINVAL) is damage; a system error
	 * keeps its code */
	if ((rc = load_docs_read(dir, b->tag, &docs)))
		return mb_fail(b->tag, rc == MB_EINVAL ? MB_ECORRUPT : rc, "checkpoint %s: %s", dir,
		               mb_last_error(b->tag));
	docs.progress = pr;
	rc = load_all(&t, NULL, dir, &docs, b->history_limit, b->tag);
	load_docs_free(&docs);
	if (rc == MB_EINVAL || rc == MB_ECORRUPT)
		rc = mb_fail(b->tag, MB_ECORRUPT, "checkpoint %s: %s", dir, mb_last_error(b->tag));
	*seq = end->seq;
	return rc;
}

void checkpoint_set_aside(const char *bank_path, const char *name)
{
	char from[4096], to[4096];

	mb_pathf(from, sizeof from, "%s/checkpoint/%s", bank_path, name);
	mb_pathf(to, sizeof to, "%s/checkpoint/%s.damaged", bank_path, name);
	rename(from, to);
}

int checkpoint_newest(const char *bank_path, char *dir, size_t cap, mbj_pos *end, bool *found)
{
	char root[4096], name[32];
	mb_bank quiet;
	int rc;

	*found = false;
	memset(&quiet, 0, sizeof quiet);   /* messages go to NULL's slot */
	mb_pathf(root, sizeof root, "%s/checkpoint", bank_path);
	if (checkpoint_older(root, "", name))
		return mb_errno_code(errno);
	if (!*name)
		return 0;
	mb_pathf(dir, cap, "%s/%s", root, name);
	rc = checkpoint_position(&quiet, dir, end);
	*found = rc == 0;
	return rc;
}
