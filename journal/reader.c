/*
 * reader.c - iterating, verifying, repairing and trimming a journal.
 *
 * Readers take no lock: they read what is whole and stop at the first
 * record that is not.  A writer may append or roll meanwhile; the rules of
 * segment.c (re-read after seeing a valid frame beyond) and the re-listing
 * of the directory at the end keep that from looking like damage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal_int.h"

struct mbj_iter {
	int dirfd;
	uint64_t *segs;
	size_t count;
	size_t i;             /* index of seg in segs */
	mbj_seg seg;          /* fd -1: not open */
	uint64_t off;
	uint64_t expect;      /* seq of the next record */
	uint64_t from;
	bool torn;            /* ended on a torn tail */
	uint64_t records;
	int status;           /* sticky error */
	uint64_t bad_off;     /* where damage was found */
	char reason[128];
	char err[256];
};

static int iter_fail(mbj_iter *it, int r, uint64_t off, const char *why)
{
	char name[MBJ_SEG_NAME_LEN + 1];

	mbj_seg_name(name, it->segs[it->i]);
	it->status = r;
	it->bad_off = off;
	snprintf(it->reason, sizeof(it->reason), "%s", why);
	snprintf(it->err, sizeof(it->err), "%s at offset %llu, seq %llu: %s", name, (unsigned long long)off,
	         (unsigned long long)it->expect, why);
	return r;
}

static int open_dirfd(const char *dir)
{
	return mbj_fd_above_stdio(open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	                                    O_CLOEXEC));
}

/* Re-list the directory: a writer may have rolled since. */
static int relist(mbj_iter *it)
{
	uint64_t *segs;
	size_t count;
	int r = mbj_list_segments(it->dirfd, &segs, &count);

	if (r < 0)
		return r;
	uint64_t cur = it->segs[it->i];
	free(it->segs);
	it->segs = segs;
	it->count = count;
	for (it->i = 0; it->i < count && segs[it->i] != cur; it->i++)
		;
	if (it->i == count)
		return MBJ_EIO;  /* our segment was removed under us */
	return 0;
}

/* Open segment it->i, expected to start with it->expect. 1 opened, 0 the
 * newest segment is a crashed roll (end of data), <0 error. */
static int open_current(mbj_iter *it)
{
	char why[128];
	uint64_t first = it->segs[it->i];

	if (first != it->expect)
		return iter_fail(it, MBJ_ECORRUPT, 0, "seq gap between segments");
	int r = mbj_seg_open(it->dirfd, first, &it->seg, why, sizeof(why));
	if (r == MBJ_SEG_EMPTY && it->i + 1 == it->count) {
		it->torn = true;
		it->bad_off = 0;
		return 0;
	}
	if (r == MBJ_SEG_EMPTY)
		return iter_fail(it, MBJ_ECORRUPT, 0, "empty header before later segments");
	if (r < 0)
		return iter_fail(it, r, 0, why);
	it->off = MBJ_SEG_HDR;
	return 1;
}

/* Start at the segment holding @from (0: the oldest).  MBJ_EINVAL when
 * the oldest kept starts after it. */
static int start_at(mbj_iter *it, uint64_t from)
{
	if (it->count && from && it->segs[0] > from)
		return MBJ_EINVAL;
	it->from = from;
	for (it->i = 0; it->i + 1 < it->count && it->segs[it->i + 1] <= from;
	     it->i++)
		;
	it->expect = it->count ? it->segs[it->i] : 0;
	return 0;
}

/* Why this thread's last mbj_iter_open() failed: the iterator that would
 * hold the message is gone. */
static __thread char iter_open_err[256];

const char *mbj_iter_open_errmsg(void)
{
	return iter_open_err;
}

int mbj_iter_open(const char *dir, uint64_t from_seq, mbj_iter **out)
{
	mbj_iter *it = calloc(1, sizeof(*it));
	int r = MBJ_ENOMEM;

	*out = NULL;
	snprintf(iter_open_err, sizeof iter_open_err, "out of memory");
	if (!it)
		return r;
	mbj_seg_init(&it->seg);
	it->dirfd = open_dirfd(dir);
	r = it->dirfd < 0 ? MBJ_EIO
	                  : mbj_list_segments(it->dirfd, &it->segs, &it->count);
	if (r == 0)
		r = start_at(it, from_seq);
	if (r < 0)
		goto fail;
	iter_open_err[0] = '\0';
	*out = it;
	return 0;
fail:
	if (r == MBJ_EIO)
		snprintf(iter_open_err, sizeof iter_open_err, "%s: %s", dir, strerror(errno));
	else if (r != MBJ_ENOMEM)
		iter_open_err[0] = '\0';
	mbj_iter_close(it);
	return r;
}

void mbj_iter_close(mbj_iter *it)
{
	if (!it)
		return;
	mbj_seg_close(&it->seg);
	if (it->dirfd >= 0)
		close(it->dirfd);
	free(it->segs);
	free(it);
}

const char *mbj_iter_errmsg(const mbj_iter *it)
{
	return it ? it->err : "no iterator";
}

/* At the end of segment it->i: move to the next one, if any. 1 moved,
 * 0 end of data, <0 error. */
static int advance(mbj_iter *it)
{
	if (it->i + 1 >= it->count)
		return 0;
	mbj_seg_close(&it->seg);
	it->i++;
	return open_current(it);
}

/* One step: 1 record, 0 end, 2 moved on, <0 error. */
static int step(mbj_iter *it, mbj_record *rec)
{
	const char *why = "";
	bool last = it->i + 1 >= it->count;
	int r;

	if (it->seg.fd < 0) {
		r = open_current(it);
		if (r <= 0)
			return r;
	}
	r = mbj_seg_next(&it->seg, it->off, it->expect, last, rec, &why);
	/* At the end of what was the newest segment: if a writer rolled since,
	 * it completed this segment first, so look again before moving on. */
	if ((r == MBJ_AT_BAD || r == MBJ_AT_END) && last && relist(it) == 0 &&
	    it->i + 1 < it->count) {
		mbj_seg_forget(&it->seg);
		r = mbj_seg_next(&it->seg, it->off, it->expect, false, rec, &why);
	}
	if (r == MBJ_AT_REC) {
		it->off = rec->end.offset;
		it->expect++;
		return 1;
	}
	if (r == MBJ_AT_END) {
		r = advance(it);
		return r == 1 ? 2 : r;
	}
	if (r == MBJ_AT_BAD) {
		it->torn = true;
		it->bad_off = it->off;
		return 0;
	}
	return iter_fail(it, r, it->off, why);
}

int mbj_iter_next(mbj_iter *it, mbj_record *rec)
{
	int r;

	if (it->status)
		return it->status;
	if (!it->count) {   /* empty so far: has the first segment appeared? */
		free(it->segs);
		it->segs = NULL;
		r = mbj_list_segments(it->dirfd, &it->segs, &it->count);
		if (r == 0 && it->count)
			r = start_at(it, it->from);
		if (r < 0 || !it->count) {
			it->count = 0;
			return r;
		}
	}
	it->torn = false;
	do {
		r = step(it, rec);
	} while (r == 2 || (r == 1 && rec->seq < it->from));
	if (r == 1)
		it->records++;
	return r;
}

static void report_damage(mbj_report *rep, const mbj_iter *it)
{
	mbj_seg_name(rep->damage_segment, it->segs[it->i]);
	rep->damage_offset = it->bad_off;
	rep->damage_seq = it->expect;
	snprintf(rep->reason, sizeof(rep->reason), "%s", it->reason);
}

int mbj_verify(const char *dir, mbj_report *rep)
{
	mbj_iter *it;
	mbj_record rec;
	int r;

	memset(rep, 0, sizeof(*rep));
	r = mbj_iter_open(dir, 0, &it);
	if (r < 0) {
		snprintf(rep->reason, sizeof(rep->reason), "cannot open %s", dir);
		return r;
	}
	while ((r = mbj_iter_next(it, &rec)) == 1) {
		if (!rep->first_seq)
			rep->first_seq = rec.seq;
		rep->last_seq = rec.seq;
		rep->records++;
	}
	rep->segments = it->count ? it->i + 1 : 0;
	if (r == 0 && it->torn) {
		rep->torn_tail = true;
		mbj_seg_name(rep->damage_segment, it->segs[it->i]);
		rep->damage_offset = it->bad_off;
		rep->damage_seq = it->expect;
		snprintf(rep->reason, sizeof(rep->reason), "torn tail");
	} else if (r < 0) {
		rep->damaged = r == MBJ_ECORRUPT;
		report_damage(rep, it);
	}
	mbj_iter_close(it);
	return r;
}

/* Rename @name to "<name>.damaged" (".damaged.N" if taken): never delete. */
static int move_aside(int dirfd, const char *name)
{
	char to[96];

	for (int n = 0; n < 1000; n++) {
		if (n)
			snprintf(to, sizeof(to), "%s.damaged.%d", name, n);
		else
			snprintf(to, sizeof(to), "%s.damaged", name);
		if (renameat2(dirfd, name, dirfd, to, RENAME_NOREPLACE) == 0)
			return 0;
		if (errno != EEXIST)
			return MBJ_EIO;
	}
	return MBJ_EIO;
}

/* Copy the first @keep bytes of the moved-aside file back under @name. */
static int keep_prefix(int dirfd, const char *name, uint64_t keep)
{
	char from[96];
	uint8_t *buf = malloc(MBJ_WINDOW);
	int in = -1, outfd = -1, r = MBJ_EIO;

	snprintf(from, sizeof(from), "%s.damaged", name);
	in = mbj_fd_above_stdio(openat(dirfd, from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
	outfd = mbj_fd_above_stdio(openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL |
	                                  O_NOFOLLOW | O_CLOEXEC, 0600));
	if (!buf || in < 0 || outfd < 0)
		goto cleanup;
	for (uint64_t off = 0; off < keep;) {
		size_t n = keep - off > MBJ_WINDOW ? MBJ_WINDOW : (size_t)(keep - off);
		ssize_t got = mbj_pread_full(in, buf, n, off);
		if (got != (ssize_t)n || pwrite(outfd, buf, n, (off_t)off) != got)
			goto cleanup;
		off += n;
	}
	r = fsync(outfd) == 0 ? 0 : MBJ_EIO;
cleanup:
	free(buf);
	if (in >= 0)
		close(in);
	if (outfd >= 0)
		close(outfd);
	return r;
}

static int cut_torn(int dirfd, mbj_report *rep)
{
	const char *name = rep->damage_segment;
	uint64_t off = rep->damage_offset;

	if (off == 0) {   /* a crashed roll: no record in it */
		snprintf(rep->action, sizeof(rep->action),
		         "moved %s (no whole record) aside", name);
		return move_aside(dirfd, name);
	}
	int fd = mbj_fd_above_stdio(openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
	struct stat st;
	int r = fd < 0 || fstat(fd, &st) < 0 || ftruncate(fd, (off_t)off) < 0 ||
	        fsync(fd) < 0 ? MBJ_EIO : 0;
	if (r == 0)
		snprintf(rep->action, sizeof(rep->action), "cut %llu bytes at %s:%llu",
		         (unsigned long long)((uint64_t)st.st_size - off), name,
		         (unsigned long long)off);
	if (fd >= 0)
		close(fd);
	return r;
}

/* Move the damaged segment and every later one aside, keeping the records
 * of the damaged one that precede the damage. */
static int move_damage(int dirfd, mbj_report *rep)
{
	uint64_t *segs, first;
	size_t count, moved = 0;
	int r = mbj_list_segments(dirfd, &segs, &count);

	if (r < 0)
		return r;
	mbj_seg_parse_name(rep->damage_segment, &first);
	for (size_t i = 0; r == 0 && i < count; i++) {
		char name[MBJ_SEG_NAME_LEN + 1];
		if (segs[i] < first)
			continue;
		mbj_seg_name(name, segs[i]);
		r = move_aside(dirfd, name);
		moved++;
	}
	free(segs);
	if (r == 0 && rep->damage_offset > MBJ_SEG_HDR)
		r = keep_prefix(dirfd, rep->damage_segment, rep->damage_offset);
	if (r == 0)
		snprintf(rep->action, sizeof(rep->action),
		         "moved %s and %zu later segment(s) aside as .damaged, "
		         "kept %llu bytes before the damage", rep->damage_segment,
		         moved - 1, (unsigned long long)(rep->damage_offset > MBJ_SEG_HDR
		                                         ? rep->damage_offset : 0));
	return r;
}

/* Durable state that names records or offsets of segments now gone. */
static int forget_state(int dirfd)
{
	if ((unlinkat(dirfd, "sync.shm", 0) && errno != ENOENT) ||
	    (unlinkat(dirfd, MBJ_MARK_NAME, 0) && errno != ENOENT))
		return MBJ_EIO;
	return fsync(dirfd) == 0 ? 0 : MBJ_EIO;
}

int mbj_repair(const char *dir, mbj_report *rep)
{
	int r = mbj_verify(dir, rep);

	if (r == 0 && !rep->torn_tail) {
		snprintf(rep->action, sizeof(rep->action), "nothing to repair");
		return 0;
	}
	if (r != 0 && r != MBJ_ECORRUPT)
		return r;
	int dirfd = open_dirfd(dir);
	if (dirfd < 0)
		return MBJ_EIO;
	r = r == 0 ? cut_torn(dirfd, rep) : move_damage(dirfd, rep);
	/* durable_seq and the mark may now name records that are gone */
	if (r == 0)
		r = forget_state(dirfd);
	close(dirfd);
	return r < 0 ? r : 0;
}

int mbj_set_aside(const char *dir, uint64_t *moved)
{
	uint64_t *segs;
	size_t count;
	int dirfd = open_dirfd(dir), r;

	*moved = 0;
	if (dirfd < 0)
		return MBJ_EIO;
	r = mbj_list_segments(dirfd, &segs, &count);
	if (r == 0) {
		for (size_t i = 0; r == 0 && i < count; i++) {
			char name[MBJ_SEG_NAME_LEN + 1];
			mbj_seg_name(name, segs[i]);
			if ((r = move_aside(dirfd, name)) == 0)
				(*moved)++;
		}
		free(segs);
	}
	if (r == 0)
		r = forget_state(dirfd);
	close(dirfd);
	return r;
}

int mbj_remove_before(const char *dir, uint64_t seq, uint64_t *removed)
{
	return mbj_remove_covered(dir, seq, 0, removed);
}

/* Oldest first, stopping at the first segment still too young: a segment
 * is written before the ones after it, so none of those is older.
 * @through: every segment that starts at or before @seq, the newest
 * included; otherwise those whose successor starts at or before @seq. */
static int remove_segments(const char *dir, uint64_t seq, uint32_t min_age_s, bool through,
                           uint64_t *removed)
{
	time_t cutoff = time(NULL) - (time_t)min_age_s;
	uint64_t *segs;
	size_t count, n = 0;
	int dirfd = open_dirfd(dir), r;

	if (removed)
		*removed = 0;
	if (dirfd < 0)
		return MBJ_EIO;
	r = mbj_list_segments(dirfd, &segs, &count);
	if (r < 0)
		goto cleanup;
	/* Segment i holds seqs < segs[i + 1]: all below @seq when that is. */
	for (; r == 0 && n < count &&
	       (through ? segs[n] <= seq : n + 1 < count && segs[n + 1] <= seq); n++) {
		char name[MBJ_SEG_NAME_LEN + 1];
		struct stat st;
		mbj_seg_name(name, segs[n]);
		if (min_age_s && !fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) &&
		    st.st_mtime > cutoff)
			break;
		if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
			r = MBJ_EIO;
	}
	free(segs);
	if (n && r == 0 && fsync(dirfd) < 0)
		r = MBJ_EIO;
	if (removed)
		*removed = n;
cleanup:
	close(dirfd);
	return r;
}

int mbj_remove_covered(const char *dir, uint64_t seq, uint32_t min_age_s, uint64_t *removed)
{
	return remove_segments(dir, seq, min_age_s, false, removed);
}

int mbj_remove_through(const char *dir, uint64_t seq, uint64_t *removed)
{
	return remove_segments(dir, seq, 0, true, removed);
}

int mbj_usage_of(const char *dir, mbj_usage *usage)
{
	uint64_t *segs;
	size_t count;
	int dirfd = open_dirfd(dir), r;

	memset(usage, 0, sizeof(*usage));
	if (dirfd < 0)
		return MBJ_EIO;
	r = mbj_list_segments(dirfd, &segs, &count);
	for (size_t i = 0; r == 0 && i < count; i++) {
		char name[MBJ_SEG_NAME_LEN + 1];
		struct stat st;
		mbj_seg_name(name, segs[i]);
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;   /* removed meanwhile */
		usage->segments++;
		usage->bytes += (uint64_t)st.st_size;
		if (!usage->first_seq)
			usage->first_seq = segs[i];
	}
	if (r == 0)
		free(segs);
	close(dirfd);
	return r;
}
