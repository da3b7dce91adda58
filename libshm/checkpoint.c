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

/* checkpoint.json's "pages_removed" (absent in checkpoints written before
 * it: zero); false when malformed. */
static bool read_removed(const cJSON *j, st_removed *rm)
{
	const cJSON *g = cJSON_GetObjectItemCaseSensitive(j, "pages_removed");
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(g, "evicted");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(g, "purged");

	memset(rm, 0, sizeof *rm);
	if (!g)
		return true;
	if (!cJSON_IsNumber(e) || !cJSON_IsNumber(p) || e->valuedouble < 0 || p->valuedouble < 0)
		return false;
	rm->evicted = (uint64_t)e->valuedouble;
	rm->purged = (uint64_t)p->valuedouble;
	return true;
}

static int read_position(mb_bank *b, const char *dir, mbj_pos *end, st_removed *rm)
{
	char path[4096], text[512];
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
	/* a file that is there but cannot be read now (out of descriptors,
	 * an I/O error) is not damage: say why, and do not pass it over */
	if (n < 0 && errno != ENOENT && errno != ELOOP)
		return mb_fail(b->tag, mb_errno_code(errno), "%s: %s", path, strerror(errno));
	if (n > 0)
		j = cJSON_ParseWithLength(text, (size_t)n);
	for (int i = 0; i < 4; i++) {
		f[i] = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
		if (!cJSON_IsNumber(f[i]) || f[i]->valuedouble < 0)
			rc = mb_fail(b->tag, MB_ECORRUPT, "%s: missing or bad \"%s\"", path, keys[i]);
	}
	if (!rc && f[0]->valuedouble != MB_FORMAT_VERSION)
		rc = mb_fail(b->tag, MB_EVERSION, "%s: format %g", path, f[0]->valuedouble);
	if (!rc && !read_removed(j, rm))
		rc = mb_fail(b->tag, MB_ECORRUPT, "%s: bad \"pages_removed\"", path);
	if (!rc) {
		end->seq = (uint64_t)f[1]->valuedouble;
		end->segment = (uint64_t)f[2]->valuedouble;
		end->offset = (uint64_t)f[3]->valuedouble;
	}
	cJSON_Delete(j);
	return rc;
}

int checkpoint_load(mb_bank *b, kv_txn *t, char name[32], uint64_t *seq, mbj_pos *end)
{
	char root[4096], dir[4096], below[32];
	load_docs docs;
	st_removed rm;
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
	if ((rc = read_position(b, dir, end, &rm)))
		return rc;
	/* what the files say is wrong (MB_EINVAL) is damage; a system error
	 * keeps its code */
	if ((rc = load_docs_read(dir, b->tag, &docs)))
		return mb_fail(b->tag, rc == MB_EINVAL ? MB_ECORRUPT : rc, "checkpoint %s: %s", dir,
		               mb_last_error(b->tag));
	rc = load_all(&t, NULL, dir, &docs, b->history_limit, b->tag);
	load_docs_free(&docs);
	if (!rc)
		rc = st_removed_store(t, &rm);
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
	st_removed rm;
	int rc;

	*found = false;
	memset(&quiet, 0, sizeof quiet);   /* messages go to NULL's slot */
	mb_pathf(root, sizeof root, "%s/checkpoint", bank_path);
	if (checkpoint_older(root, "", name))
		return mb_errno_code(errno);
	if (!*name)
		return 0;
	mb_pathf(dir, cap, "%s/%s", root, name);
	rc = read_position(&quiet, dir, end, &rm);
	*found = rc == 0;
	return rc;
}
