/*
 * restore.c - a bank built from the four JSON files.
 *
 * The new bank is built beside the target (<path>.restore-<pid>), loaded in
 * one write transaction, given its first checkpoint (a snapshot of itself,
 * which is byte-identical to the files read), closed, and only then moved
 * into place.  A failure at any step removes the aside copy and leaves the
 * target as it was.
 *
 * Replacing a bank needs MB_RESTORE_FORCE and that no process has it open.
 * LMDB holds a shared fcntl lock on store/lock.mdb in every process that has
 * the environment open, so a write lock on it that succeeds proves nobody
 * does.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bank.h"
#include "kv.h"
#include "checkpoint.h"
#include "file.h"
#include "load.h"

/* Is anything but our lock file in @path?  Missing counts as empty. */
static bool has_content(const char *path)
{
	struct dirent *e;
	bool any = false;
	DIR *d = mb_opendir(path);

	if (!d)
		return false;
	while ((e = readdir(d)) && !any)
		any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		      strcmp(e->d_name, MB_LOCK_FILE);
	closedir(d);
	return any;
}

static int check_unused(const char *path)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	char lock[4096];
	int fd, rc = 0;

	mb_pathf(lock, sizeof lock, "%s/store/lock.mdb", path);
	if ((fd = mb_open_fd(lock, O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0)) < 0)
		return 0;
	if (fcntl(fd, F_SETLK, &fl))
		rc = mb_fail(NULL, MB_EPERM, "%s: the bank is open in another process; close it "
		             "before restoring over it", path);
	close(fd);
	return rc;
}

/* The aside bank, loaded in batches; after a full map it starts over,
 * emptied, with a larger map (the batches already committed are dropped). */
static int load_into(mb_bank *b, const char *from, const load_docs *d)
{
	kv_txn *t;
	int rc;

	for (int tries = 0; tries < 40; tries++) {
		if ((rc = kv_begin(b->kv, true, &t)))
			return mb_fail(NULL, rc, "restore: cannot begin a write: %s", mb_strerror(rc));
		for (int db = 0; tries && db < KV_NDB && !rc; db++)
			rc = kv_drop(t, db);
		if (!rc)
			rc = load_all(&t, b->kv, from, d, b->history_limit, MB_MAX_JSON_BYTES, NULL);
		rc = t ? kv_end(t, rc) : rc;  /* NULL after a failed batch commit */
		if (rc != KV_EMAPFULL)
			return rc && !*mb_last_error(NULL) ?
			       mb_fail(NULL, rc, "restore: %s", mb_strerror(rc)) : rc;
		if ((rc = kv_grow(b->kv)))
			return mb_fail(NULL, rc, "restore: the map cannot grow");
	}
	return mb_fail(NULL, MB_ENOSPC, "restore: the map cannot grow enough");
}

/* Build the bank at @aside from the files in @from. */
static int build_aside(const char *from, const char *aside, const mb_options *opts)
{
	mb_options o = *opts;
	char pages[4096];
	struct stat st;
	load_docs d;
	mb_bank *b;
	size_t most;
	int rc;

	if ((rc = load_docs_read(from, NULL, &d)))
		return rc;
	most = d.sync_history > d.error_history ? d.sync_history : d.error_history;
	if (!o.history_limit)
		o.history_limit = most > MB_DEFAULT_HISTORY ?
		        (most > MB_MAX_HISTORY ? MB_MAX_HISTORY : (uint32_t)most) : MB_DEFAULT_HISTORY;
	o.create = true;
	/* room for the pages up front: a full map makes the load start over */
	if (mb_pathf(pages, sizeof pages, "%s/notion_pages.json", from) == 0 && !stat(pages, &st) &&
	    (uint64_t)st.st_size * 3 > (o.map_size > (64u << 20) ? o.map_size : (64u << 20)) &&
	    (uint64_t)st.st_size < ((uint64_t)1 << 40) / 3)
		o.map_size = (size_t)st.st_size * 3;
	if (!(rc = mb_open(aside, &o, &b))) {
		b->tag = NULL;
		if (!(rc = load_into(b, from, &d))) {
			b->tag = b;
			if ((rc = checkpoint_from_files(b, from)))
				rc = mb_fail(NULL, rc, "restore: first checkpoint: %s", mb_last_error(b));
		}
		mb_close(b);
	}
	load_docs_free(&d);
	return rc;
}

static char *parent_of(const char *path)
{
	char *p = strdup(path), *slash;

	if (!p)
		return NULL;
	slash = strrchr(p, '/');
	if (!slash)
		strcpy(p, ".");
	else if (slash == p)
		p[1] = '\0';
	else
		*slash = '\0';
	return p;
}

static int move_into_place(const char *aside, const char *path)
{
	char old[4096];
	char *parent;
	int rc = 0;

	mb_pathf(old, sizeof old, "%s.old-%ld", path, (long)getpid());
	if (rename(path, old) && errno != ENOENT)
		return mb_fail(NULL, mb_errno_code(errno), "restore: %s: %s", path, strerror(errno));
	if (rename(aside, path)) {
		rc = mb_fail(NULL, mb_errno_code(errno), "restore: %s: %s", path, strerror(errno));
		rename(old, path);
		return rc;
	}
	mb_rm_tree(old);
	if ((parent = parent_of(path))) {
		fsync_dir(parent);
		free(parent);
	}
	return 0;
}

int mb_restore(const char *from, const char *bank_path, const mb_options *opts, unsigned flags)
{
	char aside[4096];
	mb_options defaults;
	struct stat st;
	int rc;

	mb_options_init(&defaults);
	if (!opts)
		opts = &defaults;
	if (!bank_path || !*bank_path)
		bank_path = getenv("MEMBANK_DIR");
	if (!bank_path || !*bank_path)
		bank_path = "./memory-bank";
	if (!from || stat(from, &st) || !S_ISDIR(st.st_mode))
		return mb_fail(NULL, MB_EINVAL, "restore: %s: not a directory", from ? from : "(null)");
	if (!lstat(bank_path, &st) && S_ISLNK(st.st_mode))
		return mb_fail(NULL, MB_EUNSAFE, "restore: %s: is a symlink", bank_path);
	if (has_content(bank_path)) {
		if (!(flags & MB_RESTORE_FORCE))
			return mb_fail(NULL, MB_EEXIST, "restore: %s: a bank is there already; "
			               "force to replace it", bank_path);
		if ((rc = check_unused(bank_path)))
			return rc;
	}
	mb_pathf(aside, sizeof aside, "%s.restore-%ld", bank_path, (long)getpid());
	mb_rm_tree(aside);
	if (!(rc = build_aside(from, aside, opts)))
		rc = move_into_place(aside, bank_path);
	mb_rm_tree(aside);
	if (!rc)
		mb_clear_error(NULL);
	return rc;
}
