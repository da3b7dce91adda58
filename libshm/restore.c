/*
 * restore.c - a bank built from the four JSON files.
 *
 * The new bank is built beside the target (<path>.restore-<pid>), loaded in
 * batches, given its first checkpoint (a snapshot of itself, which is
 * byte-identical to the files read), closed, and then swapped with the
 * target in one step (renameat2 RENAME_EXCHANGE): at every instant the path
 * holds the old bank or the new one, whole.  The old one, now at the aside
 * name, is then removed.
 *
 * EXCLUSION.  The restore holds the target's open lock from its first check
 * to the end (a missing target is created empty to hold it), so no process
 * opens the bank meanwhile: openers wait, and once the directory is swapped
 * they find their lock file replaced and lock the new bank's (lockfile.c).
 * Replacing a bank needs MB_RESTORE_FORCE and that no process has it open:
 * LMDB holds a shared fcntl lock on store/lock.mdb in every process that
 * has the environment open, so a write lock on it that succeeds proves
 * nobody does.  This process's own handles cannot be seen that way (record
 * locks never conflict within a process, and closing the probe would drop
 * LMDB's lock), so they are found in the environment registry and refused.
 * As a last line, the old bank's open.lock is marked replaced
 * (MB_OPEN_LOCK_REPLACED) once it is swapped out: every handle maps that
 * word and fails with MB_ERESTORED before it reads or writes again.
 *
 * CRASHES.  Before anything is built, <path>/restore.pending names the
 * aside directory; the new bank gets the same file before the swap.
 * Whichever bank a crash leaves at the path, the next open or restore (under
 * the open lock) finds the file, removes the aside directory (a partial
 * build, or the old bank) and then the file.
 *
 * MEMBANK_TEST_RESTORE_STOP=N stops the process (SIGSTOP) at step N, so
 * that tests can kill it there or let it go on (see crash_point()).
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
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
#include "lockfile.h"

/* The steps of a restore a test may stop it at. */
enum {
	STEP_LOCKED = 1,     /* target locked and marked, nothing built */
	STEP_BUILT,          /* the new bank built aside */
	STEP_READY,          /* the new bank marked and locked: about to swap */
	STEP_SWAPPED,        /* the new bank at the path, the old one aside */
	STEP_REMOVED,        /* the old bank removed, the mark not yet */
};

static void crash_point(int step)
{
	const char *at = getenv("MEMBANK_TEST_RESTORE_STOP");

	if (at && atoi(at) == step)
		raise(SIGSTOP);
}

/* Is anything but creation entries (bank_creation_entry) in @path?
 * Missing counts as empty. */
static bool has_content(const char *path)
{
	struct dirent *e;
	bool any = false;
	DIR *d = mb_opendir(path);

	if (!d)
		return false;
	while ((e = readdir(d)) && !any)
		any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		      !bank_creation_entry(e->d_name);
	closedir(d);
	return any;
}

/* Content without membank.json is not a bank: never replaced, even with
 * force (a typo in the target must not delete a directory). */
static int check_is_bank(const char *path)
{
	char id[4096];
	struct stat st;

	if (!mb_pathf(id, sizeof id, "%s/%s", path, MB_IDENTITY_FILE) && !lstat(id, &st))
		return 0;
	return mb_fail(NULL, MB_ENOTBANK, "restore: %s: not empty and has no %s: not a membank "
	               "bank; refusing to replace it", path, MB_IDENTITY_FILE);
}

int bank_check_unused(const char *path, const char *what)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	char lock[4096], store[4096];
	int fd, rc = 0;

	if (mb_pathf(lock, sizeof lock, "%s/store/lock.mdb", path) ||
	    mb_pathf(store, sizeof store, "%s/store", path))
		return mb_fail(NULL, MB_EINVAL, "%s: %s: path too long", what, path);
	if (kv_open_here(store))
		return mb_fail(NULL, MB_EPERM, "%s: %s: this process has the bank open; close its "
		               "handles first", what, path);
	if ((fd = mb_open_fd(lock, O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0)) < 0)
		return 0;
	if (fcntl(fd, F_SETLK, &fl))
		rc = mb_fail(NULL, MB_EPERM, "%s: %s: the bank is open in another process; close "
		             "it first", what, path);
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
			rc = load_all(&t, b->kv, from, d, b->history_limit, NULL);
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

/* @path's parent directory and last name, trailing slashes ignored. */
static int split_path(const char *path, char *parent, size_t pcap, char *base, size_t bcap)
{
	char p[4096];
	char *slash;
	size_t n;

	if (mb_pathf(p, sizeof p, "%s", path))
		return -1;
	while ((n = strlen(p)) > 1 && p[n - 1] == '/')
		p[n - 1] = '\0';
	slash = strrchr(p, '/');
	if (!slash)
		return mb_pathf(parent, pcap, ".") || mb_pathf(base, bcap, "%s", p);
	*slash = '\0';
	return mb_pathf(parent, pcap, "%s", slash == p ? "/" : p) ||
	       mb_pathf(base, bcap, "%s", slash + 1);
}

/* The aside name a restore mark may name: "<base>.restore-<digits>". */
static bool aside_name_ok(const char *name, const char *base)
{
	size_t n = strlen(base);
	const char *d = name + n + sizeof ".restore-" - 1;

	if (strncmp(name, base, n) || strncmp(name + n, ".restore-", sizeof ".restore-" - 1) || !*d)
		return false;
	for (; *d; d++)
		if (*d < '0' || *d > '9')
			return false;
	return true;
}

int restore_recover(const char *path)
{
	char mark[4096], parent[4096], base[1024], name[1100], aside[4096];
	int fd;
	ssize_t n;

	if (mb_pathf(mark, sizeof mark, "%s/%s", path, MB_RESTORE_MARK))
		return 0;
	if ((fd = mb_open_fd(mark, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0)) < 0)
		return errno == ENOENT ? 0 : mb_fail(NULL, mb_errno_code(errno), "%s: %s", mark,
		                                     strerror(errno));
	n = read(fd, name, sizeof name - 1);
	close(fd);
	name[n > 0 ? n : 0] = '\0';
	/* a name we did not write is never removed; the mark goes anyway */
	if (!split_path(path, parent, sizeof parent, base, sizeof base) &&
	    aside_name_ok(name, base) && !mb_pathf(aside, sizeof aside, "%s/%s", parent, name))
		mb_rm_tree(aside);
	if (unlink(mark) && errno != ENOENT)
		return mb_fail(NULL, mb_errno_code(errno), "%s: %s", mark, strerror(errno));
	fsync_dir(parent);
	fsync_dir(path);
	return 0;
}

/* Lock the new bank's open lock before it appears at the path, so that
 * openers wait until the old one is gone and the mark removed.  No mutex:
 * no other thread knows this directory yet. */
static int lock_new(const char *aside)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	char p[4096];
	int fd;

	if (mb_pathf(p, sizeof p, "%s/%s", aside, MB_LOCK_FILE) ||
	    (fd = mb_open_fd(p, O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0)) < 0)
		return -1;
	if (fcntl(fd, F_SETLK, &fl)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Swap the aside bank with the target; the old one is then removed and
 * its open lock marked, for handles that still map it. */
static int swap_in(const char *aside, const char *path, const char *parent, int old_lock)
{
	static const uint32_t replaced = MB_OPEN_LOCK_REPLACED;

	if (renameat2(AT_FDCWD, aside, AT_FDCWD, path, RENAME_EXCHANGE))
		return mb_fail(NULL, mb_errno_code(errno), "restore: swapping %s into %s: %s%s",
		               aside, path, strerror(errno), errno == EINVAL ?
		               " (the filesystem cannot exchange directories atomically)" : "");
	fsync_dir(parent);
	/* best effort from here: the new bank is in place, the restore done */
	if (pwrite(old_lock, &replaced, sizeof replaced, 0) != (ssize_t)sizeof replaced) {
		/* no handle can map it: the check above found none */
	}
	crash_point(STEP_SWAPPED);
	mb_rm_tree(aside);
	crash_point(STEP_REMOVED);
	return 0;
}

/* Under the target's open lock: check, build aside, swap. */
static int restore_locked(const char *from, const char *path, const mb_options *opts,
                          unsigned flags, int old_lock)
{
	char aside[4096], parent[4096], base[1024], mark[1100];
	int rc, new_lock = -1;

	if (split_path(path, parent, sizeof parent, base, sizeof base) ||
	    mb_pathf(aside, sizeof aside, "%s/%s.restore-%ld", parent, base, (long)getpid()))
		return mb_fail(NULL, MB_EINVAL, "restore: %s: path too long", path);
	if ((rc = restore_recover(path)))
		return rc;
	if (has_content(path)) {
		if ((rc = check_is_bank(path)))
			return rc;
		if (!(flags & MB_RESTORE_FORCE))
			return mb_fail(NULL, MB_EEXIST, "restore: %s: a bank is there already; "
			               "force to replace it", path);
		if ((rc = bank_check_unused(path, "restore")))
			return rc;
	}
	mb_rm_tree(aside);
	snprintf(mark, sizeof mark, "%s.restore-%ld", base, (long)getpid());
	if ((rc = mb_write_file_atomic(path, MB_RESTORE_MARK, mark, strlen(mark),
	                               opts->group_shared ? 0660 : 0600, NULL)))
		return rc;
	crash_point(STEP_LOCKED);
	if (!(rc = build_aside(from, aside, opts))) {
		crash_point(STEP_BUILT);
		rc = mb_write_file_atomic(aside, MB_RESTORE_MARK, mark, strlen(mark),
		                          opts->group_shared ? 0660 : 0600, NULL);
	}
	if (!rc && (new_lock = lock_new(aside)) < 0)
		rc = mb_fail(NULL, mb_errno_code(errno), "restore: %s/%s: %s", aside, MB_LOCK_FILE,
		             strerror(errno));
	if (!rc) {
		crash_point(STEP_READY);
		rc = swap_in(aside, path, parent, old_lock);
	}
	/* done or failed: the aside directory (old bank or partial build)
	 * goes, then the mark that names it */
	mb_rm_tree(aside);
	if (rc && *mb_last_error(NULL)) {
		char why[512];
		snprintf(why, sizeof why, "%s", mb_last_error(NULL));
		restore_recover(path);
		mb_fail(NULL, rc, "%s", why);
	} else {
		restore_recover(path);
	}
	if (new_lock >= 0)
		close(new_lock);
	return rc;
}

/* A target that does not exist is created empty, to hold its open lock;
 * *created says so, for removing it again when the restore fails. */
static int target_dir(const char *path, const mb_options *opts, bool *created)
{
	struct stat st;

	*created = false;
	if (!lstat(path, &st)) {
		if (S_ISLNK(st.st_mode))
			return mb_fail(NULL, MB_EUNSAFE, "restore: %s: is a symlink", path);
		if (!S_ISDIR(st.st_mode))
			return mb_fail(NULL, MB_ENOTBANK, "restore: %s: not a directory", path);
		return 0;
	}
	if (errno != ENOENT || mkdir(path, opts->group_shared ? 0770 : 0700))
		return mb_fail(NULL, mb_errno_code(errno), "restore: %s: %s", path, strerror(errno));
	*created = true;
	return 0;
}

int mb_restore(const char *from, const char *bank_path, const mb_options *opts, unsigned flags)
{
	lockfile lock = { -1, LOCK_OPEN };
	mb_options defaults;
	struct stat st;
	bool created;
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
	if ((rc = target_dir(bank_path, opts, &created)) ||
	    (has_content(bank_path) && (rc = check_is_bank(bank_path))))
		return rc;  /* (before the lock file is created in it) */
	if (!(rc = lockfile_acquire(&lock, LOCK_OPEN, bank_path, MB_LOCK_FILE,
	                            opts->group_shared ? 0660 : 0600, NULL))) {
		rc = restore_locked(from, bank_path, opts, flags, lock.fd);
		if (rc && created)
			mb_rm_tree(bank_path);  /* the empty directory made for the lock */
		lockfile_release(&lock);
	} else if (created) {
		mb_rm_tree(bank_path);
	}
	if (!rc)
		mb_clear_error(NULL);
	return rc;
}
