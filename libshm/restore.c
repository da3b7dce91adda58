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
#include "config.h"
#include "file.h"
#include "load.h"
#include "lockfile.h"
#include "progress.h"

/* The steps of a restore a test may stop it at. */
enum {
	STEP_LOCKED = 1,     /* target locked and marked, nothing built */
	STEP_BUILT,          /* the new bank built aside */
	STEP_READY,          /* the new bank marked and locked: about to swap */
	STEP_SWAPPED,        /* the new bank at the path, the old one aside */
	STEP_REMOVED,        /* the old bank removed, the mark not yet */
	STEP_LOADED,         /* (6, within STEP_BUILT's work) the files loaded
	                        aside, its first checkpoint not taken */
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
		if (!rc && tries)
			rc = st_format_store(t);
		if (d->tally)
			d->tally->pages = d->tally->expired = 0;
		if (d->progress)
			progress_rewind(d->progress);
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

/* The cache settings of the files' config (a new bank's, both 0, where it
 * says none or is absent).  A config that does not read is refused by the
 * load itself. */
static int64_t docs_cache(const load_docs *d, int64_t *max_entries)
{
	mb_buf extra = { 0 };
	mb_config c;

	if (config_from_file(d->config.data, d->config.len, NULL, &c, &extra))
		st_config_defaults(&c);
	buf_free(&extra);
	mb_clear_error(NULL);
	*max_entries = c.max_entries;
	return c.ttl_seconds;
}

/* A restore or migration never lets max_entries drop pages that are in the
 * files: the files' bound (the original class's example 1000, or a config
 * lowered after the pages were written) would evict at once (a config
 * update applies a lower bound) or at the next new page.  More pages to
 * keep than max_entries: the bound is turned off, and the report says so.
 * Called before anything else updates the config, for every update after
 * the load applies the bound. */
static int unbound(mb_bank *b, uint64_t pages, int64_t max, bool *done)
{
	static const char off[] = "{\"cache_settings\":{\"max_entries\":0}}";
	int rc;

	*done = false;
	if (max <= 0 || pages <= (uint64_t)max)
		return 0;
	if ((rc = mb_config_update(b, off, sizeof off - 1)))
		return mb_fail(NULL, rc, "restore: turning max_entries off: %s", mb_last_error(b));
	*done = true;
	return 0;
}

/* Pages that would be expired on arrival are never lost silently: the
 * restore fails unless the caller chose (restore_locked() says why). */
static int expiry_choice(mb_bank *b, const load_tally *tl, int64_t ttl, unsigned flags,
                         bool *keep)
{
	static const char off[] = "{\"cache_settings\":{\"ttl_seconds\":0}}";
	int rc;

	*keep = false;
	if (!tl->expired || (flags & MB_RESTORE_EXPIRE))
		return 0;
	if (!(flags & (MB_RESTORE_KEEP_EXPIRED | RESTORE_MIGRATE)))
		return mb_fail(NULL, MB_EINVAL, "restore: %llu of %llu pages are older than "
		               "ttl_seconds=%lld and would be expired on arrival; restore with "
		               "--keep-expired (MB_RESTORE_KEEP_EXPIRED: ttl_seconds set to 0) or "
		               "--expire (MB_RESTORE_EXPIRE: they are dropped)",
		               (unsigned long long)tl->expired, (unsigned long long)tl->pages,
		               (long long)ttl);
	*keep = true;
	if ((rc = mb_config_update(b, off, sizeof off - 1)))
		return mb_fail(NULL, rc, "restore: turning expiry off: %s", mb_last_error(b));
	return 0;
}

/* Build the bank at @aside from the files in @from.  The first checkpoint
 * is a copy of the files when they are the whole story (all four there,
 * nothing changed on the way: the restored bank snapshots to the same
 * bytes); else a snapshot of what was loaded. */
static int build_aside(const char *from, const char *aside, const mb_options *opts,
                       unsigned flags, restore_report *rep)
{
	load_tally tally = { MB_NEVER, 0, 0, { 0, 0 } };
	mb_options o = *opts;
	progress pr;
	char pages[4096];
	struct stat st;
	load_docs d;
	mb_bank *b;
	size_t most;
	int64_t ttl, max_entries;
	bool keep = false, unbounded = false;
	int rc;

	if ((rc = load_docs_read_from(from, LOAD_MISSING_EMPTY, NULL, &d)))
		return rc;
	if ((ttl = docs_cache(&d, &max_entries)) > 0)
		tally.cutoff = mb_now_us() - ttl * 1000000;
	d.tally = &tally;
	d.progress = &pr;
	o.progress = NULL;  /* the bank built aside reports nothing of its own */
	most = d.sync_history > d.error_history ? d.sync_history : d.error_history;
	if (!o.history_limit)
		o.history_limit = most > MB_DEFAULT_HISTORY ?
		        (most > MB_MAX_HISTORY ? MB_MAX_HISTORY : (uint32_t)most) : MB_DEFAULT_HISTORY;
	o.create = true;
	/* the restore takes the first checkpoint itself, once the config is
	 * settled: an automatic one after the first update (max_entries off)
	 * would purge the pages whose expiry is turned off next */
	o.no_auto_checkpoint = true;
	/* room for the pages up front: a full map makes the load start over */
	if (mb_pathf(pages, sizeof pages, "%s/notion_pages.json", from) == 0 && !stat(pages, &st) &&
	    (uint64_t)st.st_size * 3 > (o.map_size > (64u << 20) ? o.map_size : (64u << 20)) &&
	    (uint64_t)st.st_size < ((uint64_t)1 << 40) / 3)
		o.map_size = (size_t)st.st_size * 3;
	if (!(rc = progress_start(&pr, opts, NULL, "restore", "pages", 0)) &&
	    !(rc = mb_open(aside, &o, &b))) {
		b->tag = NULL;
		if (!(rc = load_into(b, from, &d))) {
			b->tag = b;
			crash_point(STEP_LOADED);
			/* the pages kept: those --expire drops do not count */
			uint64_t kept = tally.pages - (flags & MB_RESTORE_EXPIRE ? tally.expired : 0);
			if (!(rc = unbound(b, kept, max_entries, &unbounded)) &&
			    !(rc = expiry_choice(b, &tally, ttl, flags, &keep))) {
				if (d.missing || keep || unbounded || (flags & RESTORE_MIGRATE) ||
				    (tally.expired && (flags & MB_RESTORE_EXPIRE)))
					rc = mb_snapshot(b, NULL, NULL);
				else
					rc = checkpoint_from_files(b, from, (load_digest[4]){
						tally.file, d.small[0], d.small[1], d.small[2] });
				if (rc)
					rc = mb_fail(NULL, rc, "restore: first checkpoint: %s",
					             mb_last_error(b));
			}
		}
		mb_close(b);
	}
	if (!rc)
		progress_end(&pr);
	if (rep) {
		rep->pages = tally.pages;
		rep->expired = tally.expired;
		rep->ttl_was = ttl;
		rep->kept = keep;
		rep->max_was = max_entries;
		rep->unbounded = unbounded;
		rep->dropped = flags & MB_RESTORE_EXPIRE ? tally.expired : 0;
		rep->no_config = d.no_config;
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

static const char *const original_files[] = { "notion_pages.json", "sync_status.json",
                                               "error_log.json", "config_cache.json" };

/* After the swap: the kept originals private like every bank file (doctor
 * checks modes).  Best effort: the migration is done; a crash before this
 * leaves them with their old mode inside the bank's private directory. */
static void private_originals(const char *path, const mb_options *opts)
{
	char p[4096];

	for (int i = 0; i < 4; i++)
		if (!mb_pathf(p, sizeof p, "%s/%s/%s", path, MB_ORIGINALS_DIR, original_files[i]))
			chmod(p, opts->group_shared ? 0660 : 0600);
}

/* Swap the aside bank with the target; the old one is then removed and
 * its open lock marked, for handles that still map it. */
static int swap_in(const char *aside, const char *path, const char *parent, int old_lock,
                   const mb_options *migrated)
{
	static const uint32_t replaced = MB_OPEN_LOCK_REPLACED;

	if (renameat2(AT_FDCWD, aside, AT_FDCWD, path, RENAME_EXCHANGE))
		return mb_fail(NULL, mb_errno_code(errno), "restore: swapping %s into %s: %s%s",
		               aside, path, strerror(errno), errno == EINVAL ?
		               " (the filesystem cannot exchange directories atomically)" : "");
	fsync_dir(parent);
	/* best effort from here: the new bank is in place, the restore done */
	if (migrated)
		private_originals(path, migrated);
	if (pwrite(old_lock, &replaced, sizeof replaced, 0) != (ssize_t)sizeof replaced) {
		/* no handle can map it: the check above found none */
	}
	crash_point(STEP_SWAPPED);
	mb_rm_tree(aside);
	crash_point(STEP_REMOVED);
	return 0;
}

bool bank_is_original(const char *path, char *other, size_t cap)
{
	struct dirent *e;
	bool any = false;
	DIR *d = mb_opendir(path);

	if (other && cap)
		*other = '\0';
	if (!d)
		return false;
	while ((e = readdir(d))) {
		bool known = false;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    bank_creation_entry(e->d_name))
			continue;
		for (int i = 0; i < 4; i++)
			known |= !strcmp(e->d_name, original_files[i]);
		any |= known;
		if (!known && other && cap && !*other)
			snprintf(other, cap, "%s", e->d_name);
	}
	closedir(d);
	if (!any && other && cap)
		*other = '\0';  /* no original file: nothing to say */
	return any && (!other || !*other);
}

/* @from/@name into @to/@name: a hard link (same filesystem: the restore's
 * aside directory is the target's sibling), else a copy, synced. */
static int keep_file(const char *from, const char *to, const char *name, unsigned mode)
{
	char src[4096], dst[4096], chunk[64 * 1024];
	int in, out, rc = 0;
	ssize_t n;

	if (mb_pathf(src, sizeof src, "%s/%s", from, name) ||
	    mb_pathf(dst, sizeof dst, "%s/%s", to, name))
		return mb_fail(NULL, MB_EINVAL, "migrate: %s: path too long", from);
	/* the link shares the original's inode: it is made private
	 * (private_originals()) only after the swap, for until then the file
	 * is still the original class's, whose readers keep its mode */
	if (!link(src, dst) || errno == ENOENT)
		return 0;
	if ((in = mb_open_fd(src, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0)) < 0)
		return mb_fail(NULL, mb_errno_code(errno), "migrate: %s: %s", src, strerror(errno));
	if ((out = mb_open_fd(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	                      mode)) < 0) {
		close(in);
		return mb_fail(NULL, mb_errno_code(errno), "migrate: %s: %s", dst, strerror(errno));
	}
	while (!rc && (n = read(in, chunk, sizeof chunk)) != 0)
		if (n < 0 || write(out, chunk, (size_t)n) != n)
			rc = mb_fail(NULL, mb_errno_code(errno ? errno : EIO), "migrate: copying %s: %s",
			             src, strerror(errno ? errno : EIO));
	if (!rc && fsync(out))
		rc = mb_fail(NULL, mb_errno_code(errno), "migrate: %s: %s", dst, strerror(errno));
	close(in);
	close(out);
	return rc;
}

/* The original files, and what the migration did, in the new bank (still
 * aside) under MB_ORIGINALS_DIR/: nothing of the original is ever lost. */
static int keep_originals(const char *from, const char *aside, const mb_options *opts,
                          const restore_report *rep)
{
	unsigned fmode = opts->group_shared ? 0660 : 0600, dmode = opts->group_shared ? 0770 : 0700;
	char dir[4096], when[MB_TIME_LEN], note[512];
	int rc = 0;

	if (mb_pathf(dir, sizeof dir, "%s/%s", aside, MB_ORIGINALS_DIR))
		return mb_fail(NULL, MB_EINVAL, "migrate: %s: path too long", aside);
	if (mkdir(dir, dmode))
		return mb_fail(NULL, mb_errno_code(errno), "migrate: %s: %s", dir, strerror(errno));
	for (int i = 0; i < 4 && !rc; i++)
		rc = keep_file(from, dir, original_files[i], fmode);
	if (rc)
		return rc;
	mb_format_time(mb_now_us(), when);
	snprintf(note, sizeof note, "{\"migrated_at\":\"%s\",\"from\":\"the original Memory "
	         "Bank files beside this note\",\"pages\":%llu,\"expired_pages_kept\":%llu,"
	         "\"ttl_seconds_was\":%lld,\"ttl_seconds_now\":%lld,\"max_entries_was\":%lld,"
	         "\"max_entries_now\":%lld}\n", when,
	         (unsigned long long)rep->pages, (unsigned long long)(rep->kept ? rep->expired : 0),
	         (long long)rep->ttl_was, (long long)(rep->kept ? 0 : rep->ttl_was),
	         (long long)rep->max_was, (long long)(rep->unbounded ? 0 : rep->max_was));
	if ((rc = mb_write_file_atomic(dir, "migration.json", note, strlen(note), fmode, NULL)))
		return rc;
	fsync_dir(dir);
	fsync_dir(aside);
	return 0;
}

/* Under the target's open lock: check, build aside, swap. */
static int restore_locked(const char *from, const char *path, const mb_options *opts,
                          unsigned flags, int old_lock, restore_report *out)
{
	char aside[4096], parent[4096], base[1024], mark[1100];
	restore_report rep;
	mb_options ro = *opts;
	int rc, new_lock = -1;

	if (split_path(path, parent, sizeof parent, base, sizeof base) ||
	    mb_pathf(aside, sizeof aside, "%s/%s.restore-%ld", parent, base, (long)getpid()))
		return mb_fail(NULL, MB_EINVAL, "restore: %s: path too long", path);
	if ((rc = restore_recover(path)))
		return rc;
	if (!(flags & RESTORE_MIGRATE) && has_content(path)) {
		char url[1024];
		if ((rc = check_is_bank(path)))
			return rc;
		/* its journal is a copy of the stream's: the restored bank
		 * would be a local one, cut from the stream, and the other
		 * machines would not see the restore */
		if (bank_stored_journal(path, url, sizeof url))
			return mb_fail(NULL, MB_EINVAL, "restore: %s: the bank is bound to journal "
			               "%s: a restore would make it a local bank, cut from the "
			               "stream; restore into another directory (a local bank), or "
			               "write the snapshot's contents through the bank", path, url);
		if (!(flags & MB_RESTORE_FORCE))
			return mb_fail(NULL, MB_EEXIST, "restore: %s: a bank is there already; "
			               "force to replace it", path);
		if ((rc = bank_check_unused(path, "restore")))
			return rc;
		/* a property of the bank, not of its files: the new one keeps it */
		if (!ro.max_json_bytes)
			ro.max_json_bytes = bank_stored_max_json(path);
	}
	mb_rm_tree(aside);
	snprintf(mark, sizeof mark, "%s.restore-%ld", base, (long)getpid());
	if ((rc = mb_write_file_atomic(path, MB_RESTORE_MARK, mark, strlen(mark),
	                               opts->group_shared ? 0660 : 0600, NULL)))
		return rc;
	crash_point(STEP_LOCKED);
	memset(&rep, 0, sizeof rep);
	if (!(rc = build_aside(from, aside, &ro, flags, &rep)) && (flags & RESTORE_MIGRATE))
		rc = keep_originals(from, aside, opts, &rep);
	if (!rc) {
		crash_point(STEP_BUILT);
		rc = mb_write_file_atomic(aside, MB_RESTORE_MARK, mark, strlen(mark),
		                          opts->group_shared ? 0660 : 0600, NULL);
	}
	if (!rc && (new_lock = lock_new(aside)) < 0)
		rc = mb_fail(NULL, mb_errno_code(errno), "restore: %s/%s: %s", aside, MB_LOCK_FILE,
		             strerror(errno));
	if (!rc) {
		crash_point(STEP_READY);
		rc = swap_in(aside, path, parent, old_lock, flags & RESTORE_MIGRATE ? opts : NULL);
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
	if (out)
		*out = rep;
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

int restore_migrate(const char *path, const mb_options *opts, int old_lock)
{
	int rc = restore_locked(path, path, opts, RESTORE_MIGRATE, old_lock, NULL);

	return rc ? mb_fail(NULL, rc, "%s: migrating the original Memory Bank files: %s", path,
	                    mb_last_error(NULL)) : 0;
}

/* What the restore did, for the caller (mb_restore_report()); the keys of
 * migration.json and a few more. */
static char *report_json(const restore_report *r)
{
	mb_buf b = { 0 };

	buf_adds(&b, "{\"pages\":");
	json_add_int(&b, (int64_t)r->pages);
	buf_adds(&b, ",\"expired_pages\":");
	json_add_int(&b, (int64_t)r->expired);
	buf_adds(&b, ",\"expired_pages_kept\":");
	json_add_int(&b, (int64_t)(r->kept ? r->expired : 0));
	buf_adds(&b, ",\"expired_pages_dropped\":");
	json_add_int(&b, (int64_t)r->dropped);
	buf_adds(&b, ",\"config_cache_json\":");
	buf_adds(&b, r->no_config ? "false" : "true");
	buf_adds(&b, ",\"ttl_seconds_was\":");
	json_add_int(&b, r->ttl_was);
	buf_adds(&b, ",\"ttl_seconds_now\":");
	json_add_int(&b, r->kept ? 0 : r->ttl_was);
	buf_adds(&b, ",\"max_entries_was\":");
	json_add_int(&b, r->max_was);
	buf_adds(&b, ",\"max_entries_now\":");
	json_add_int(&b, r->unbounded ? 0 : r->max_was);
	buf_adds(&b, "}");
	return buf_take(&b, NULL);
}

int mb_restore(const char *from, const char *bank_path, const mb_options *opts, unsigned flags)
{
	return mb_restore_report(from, bank_path, opts, flags, NULL);
}

int mb_restore_report(const char *from, const char *bank_path, const mb_options *opts,
                      unsigned flags, char **report)
{
	restore_report rep;
	lockfile lock = { -1, LOCK_OPEN };
	mb_options defaults;
	struct stat st;
	bool created;
	int rc;

	if (report)
		*report = NULL;
	mb_options_init(&defaults);
	if (!opts)
		opts = &defaults;
	if (!bank_path || !*bank_path)
		bank_path = getenv("MEMBANK_DIR");
	if (!bank_path || !*bank_path)
		bank_path = "./memory-bank";
	if (flags & ~(MB_RESTORE_FORCE | MB_RESTORE_KEEP_EXPIRED | MB_RESTORE_EXPIRE) ||
	    (flags & MB_RESTORE_KEEP_EXPIRED && flags & MB_RESTORE_EXPIRE))
		return mb_fail(NULL, MB_EINVAL, "restore: flags: unknown, or both keep-expired and "
		               "expire");
	/* a restore builds a local bank: asked for one on a stream, it would
	 * silently be a local one */
	if ((opts->journal_url && *opts->journal_url) ||
	    (!opts->journal_url && getenv("MEMBANK_JOURNAL") && *getenv("MEMBANK_JOURNAL")))
		return mb_fail(NULL, MB_EINVAL, "restore: builds a bank with a local journal, not "
		               "one on a stream: restore without a journal URL (unset "
		               "MEMBANK_JOURNAL), or write the snapshot's contents through a bank "
		               "opened on the stream");
	if (!from || stat(from, &st) || !S_ISDIR(st.st_mode))
		return mb_fail(NULL, MB_EINVAL, "restore: %s: not a directory", from ? from : "(null)");
	if ((rc = target_dir(bank_path, opts, &created)) ||
	    (has_content(bank_path) && (rc = check_is_bank(bank_path))))
		return rc;  /* (before the lock file is created in it) */
	if (!(rc = lockfile_acquire(&lock, LOCK_OPEN, bank_path, MB_LOCK_FILE,
	                            opts->group_shared ? 0660 : 0600, NULL))) {
		rc = restore_locked(from, bank_path, opts, flags, lock.fd, &rep);
		if (rc && created)
			mb_rm_tree(bank_path);  /* the empty directory made for the lock */
		lockfile_release(&lock);
	} else if (created) {
		mb_rm_tree(bank_path);
	}
	if (!rc && report && !(*report = report_json(&rep)))
		rc = mb_fail(NULL, MB_ENOMEM, "restore: done, but out of memory for its report");
	if (!rc)
		mb_clear_error(NULL);
	return rc;
}
