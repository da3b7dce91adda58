/*
 * writer.c - opening a journal, settling its tail, appending.
 *
 * Everything here but mbj_open/mbj_close runs under the caller's writer
 * lock: one appender at a time across every process, so the writer fields
 * of mbj_log need no lock of their own.  Other processes append too, so
 * positions always come from the caller (its committed end), never from a
 * cached file size.
 *
 * PREALLOCATION.  A segment's file is zero-filled ahead of the write
 * position in steps of MBJ_PREALLOC_CHUNK (1 MiB; the whole segment at once
 * when segment_bytes is smaller) and fdatasync'ed after each fill.  A
 * record then overwrites zeros inside the file's size, so its own fdatasync
 * changes no size and writes no metadata (measured here: 0.07 ms instead of
 * 0.12 ms), and "a zero header is the end" always holds.  The fill costs one
 * fdatasync per MiB of journal: about one per 4000 records of 250 bytes.
 *
 * TAIL HYGIENE.  Within one boot, a torn append always leaves a non-zero
 * header at the committed end (pwrite copies from the start; a failed
 * append is zeroed back), so mbj_next_at sees it and cuts it.  After a
 * machine crash, pages may reach the disk in any order, so the first writer
 * of a boot in a segment (sync.shm records who scanned which segment, and
 * is reset on reboot) zeroes every non-zero byte after the end, up to a
 * record's maximum size: a later shorter record can never be followed by
 * stale bytes that parse.
 *
 * DURABLE MARK (format: segment.c).  "durable.mark" is rewritten (one
 * 32-byte pwrite) and fdatasync'ed by make_room just before it zero-fills,
 * with the durable end sync.shm knows for the segment (published only
 * after a completed fdatasync: the group-commit leader's, or a previous
 * fill's or roll's).  So the mark never claims what no completed fdatasync
 * covered, costs a write and an fdatasync per MiB of journal (one per
 * ~4000 records of 250 bytes; never on a put's path otherwise), and lags
 * the durable end by at most a MiB (a segment, when segments are smaller).
 * A failure to write it is ignored: an
 * older mark is safe.  mbj_boot_settle() uses it on the first open of a
 * boot.
 *
 * THE TAIL CHECK.  Before each append the caller asks mbj_next_at whether
 * a record lies past its committed end (a writer died between its append
 * and its commit, or its commit failed).  Read from the files, that costs
 * a pread of the header at the end and an openat of the next segment (a
 * crashed roll), which fails on almost every write.  sync.shm knows
 * better: `appending` is set before any append or retype touches the
 * tail and cleared only after written_* names its new end (or after a
 * full check found the end), so when it is clear, written_* equals the
 * committed end and that segment's tail was scanned this boot, nothing
 * lies past the end and no file is read.  A writer that died half way
 * leaves `appending` set: the next one reads the files, as before.  A new
 * boot (or a lost sync.shm) starts with written_* zero; a handle reads the
 * files once before trusting sync.shm (tail_checked), so damage made
 * between opens is still found by the next open.  A sync.shm of version 2
 * (a process of the previous version made it this boot) has no
 * `appending`: every check reads the files there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal_int.h"

static const uint8_t zeros[64 << 10];

static ssize_t real_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite(fd, buf, n, off);
}

static int real_fdatasync(int fd)
{
	return fdatasync(fd);
}

static int real_ftruncate(int fd, off_t len)
{
	return ftruncate(fd, len);
}

void mbj_set_err(mbj_log *log, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(log->err, sizeof(log->err), fmt, ap);
	va_end(ap);
}

int mbj_errno_code(int e)
{
	if (e == ENOSPC || e == EDQUOT)
		return MBJ_ENOSPC;
	if (e == ENOMEM)
		return MBJ_ENOMEM;
	return MBJ_EIO;
}

const char *mbj_errmsg(const mbj_log *log)
{
	return log ? log->err : "no log";
}

/* Any failed fdatasync is fatal: Linux may have dropped the dirty pages and
 * reports the error once.  The shared flag makes every process see it. */
int mbj_sync_file(mbj_log *log, int fd, const char *what)
{
	if (log->io.fdatasync(fd) == 0)
		return 0;
	mbj_set_err(log, "fdatasync of %s: %s", what, strerror(errno));
	__atomic_store_n(&log->fatal, 1, __ATOMIC_SEQ_CST);
	mbj_shm_set_failed(log);
	return MBJ_EFATAL;
}

int mbj_dir_sync(mbj_log *log)
{
	return mbj_sync_file(log, log->dirfd, "the journal directory");
}

static int open_dir(const char *dir, int mode, int *out)
{
	if (mkdir(dir, (mode_t)mode) < 0 && errno != EEXIST)
		return -1;
	*out = mbj_fd_above_stdio(open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	                                    O_CLOEXEC));
	return *out < 0 ? -1 : 0;
}

/* The message of this thread's last failed mbj_open(): the log that held
 * it is gone by the time the caller asks. */
static __thread char open_err[256];

const char *mbj_open_errmsg(void)
{
	return open_err;
}

int mbj_open(const char *dir, const mbj_options *opts, mbj_log **out)
{
	mbj_options o = opts ? *opts : (mbj_options){ 0 };
	mbj_log *log = calloc(1, sizeof(*log));
	int r;

	*out = NULL;
	open_err[0] = '\0';
	if (!log) {
		snprintf(open_err, sizeof open_err, "out of memory");
		return MBJ_ENOMEM;
	}
	log->dirfd = log->wfd = log->sfd = log->shmfd = -1;
	mbj_seg_init(&log->rseg);
	pthread_mutex_init(&log->mu, NULL);
	pthread_mutex_init(&log->wmu, NULL);
	log->seg_bytes = o.segment_bytes ? o.segment_bytes
	                                 : MBJ_DEFAULT_SEGMENT_BYTES;
	log->file_mode = o.file_mode ? o.file_mode : 0600;
	log->io.pwrite = o.io && o.io->pwrite ? o.io->pwrite : real_pwrite;
	log->io.fdatasync = o.io && o.io->fdatasync ? o.io->fdatasync
	                                            : real_fdatasync;
	log->io.ftruncate = o.io && o.io->ftruncate ? o.io->ftruncate
	                                            : real_ftruncate;
	if (log->seg_bytes < MBJ_MIN_SEGMENT_BYTES) {
		mbj_set_err(log, "segment_bytes below %llu",
		            (unsigned long long)MBJ_MIN_SEGMENT_BYTES);
		r = MBJ_EINVAL;
		goto fail;
	}
	if (open_dir(dir, o.dir_mode ? o.dir_mode : 0700, &log->dirfd) < 0) {
		mbj_set_err(log, "open %s: %s", dir, strerror(errno));
		r = MBJ_EIO;
		goto fail;
	}
	r = mbj_shm_open(log, log->file_mode, o.state_alone != 0);
	if (r == 0)
		r = mbj_shm_recover(log);
	if (r < 0)
		goto fail;
	*out = log;
	return 0;
fail:
	snprintf(open_err, sizeof open_err, "%s", log->err);
	mbj_close(log);
	return r;
}

void mbj_close(mbj_log *log)
{
	if (!log)
		return;
	mbj_shm_close(log);
	if (log->wfd >= 0)
		close(log->wfd);
	if (log->sfd >= 0)
		close(log->sfd);
	if (log->dirfd >= 0)
		close(log->dirfd);
	mbj_seg_close(&log->rseg);
	pthread_mutex_destroy(&log->mu);
	pthread_mutex_destroy(&log->wmu);
	free(log->wbuf);
	free(log);
}

static int check_pos(mbj_log *log, const mbj_pos *end)
{
	if (__atomic_load_n(&log->fatal, __ATOMIC_SEQ_CST) || mbj_shm_failed(log)) {
		mbj_set_err(log, "an fdatasync failed earlier: reopen the journal");
		return MBJ_EFATAL;
	}
	if (end->seq == UINT64_MAX ||
	    (end->segment && (end->segment > end->seq + 1 ||
	                      end->offset < MBJ_SEG_HDR))) {
		mbj_set_err(log, "bad position {%llu, %llu, %llu}",
		            (unsigned long long)end->segment,
		            (unsigned long long)end->offset,
		            (unsigned long long)end->seq);
		return MBJ_EINVAL;
	}
	return 0;
}

/* Make log->rseg read segment @first. */
static int reader_on(mbj_log *log, uint64_t first)
{
	char why[128];

	if (log->rseg.fd >= 0 && log->rseg.first == first) {
		mbj_seg_forget(&log->rseg);
		return 0;
	}
	mbj_seg_close(&log->rseg);
	int r = mbj_seg_open(log->dirfd, first, &log->rseg, why, sizeof(why));
	log->rseg.ahead = 4096;   /* one header and a small record */
	if (r == MBJ_SEG_EMPTY) {
		mbj_seg_close(&log->rseg);
		mbj_set_err(log, "segment %llu has no header",
		            (unsigned long long)first);
		return MBJ_ECORRUPT;
	}
	if (r < 0)
		mbj_set_err(log, "segment %llu: %s", (unsigned long long)first, why);
	return r;
}

static int write_fd_on(mbj_log *log, uint64_t first)
{
	char name[MBJ_SEG_NAME_LEN + 1];

	if (log->wfd >= 0 && log->wseg == first)
		return 0;
	if (log->wfd >= 0)
		close(log->wfd);
	log->wfd = -1;
	mbj_seg_name(name, first);
	int fd = mbj_fd_above_stdio(openat(log->dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW));
	if (fd < 0) {
		mbj_set_err(log, "open %s: %s", name, strerror(errno));
		return errno == ENOENT ? MBJ_EINVAL : MBJ_EIO;
	}
	log->wfd = fd;
	log->wseg = first;
	log->wsize = 0;
	return 0;
}

/* Zero the non-zero bytes in [from, to) of the current write segment. */
static int zero_range(mbj_log *log, uint64_t from, uint64_t to)
{
	uint8_t *buf = malloc(sizeof(zeros));   /* not on a thread's stack */
	int r = buf ? 0 : MBJ_ENOMEM;

	while (r == 0 && from < to) {
		size_t n = to - from > sizeof(zeros) ? sizeof(zeros)
		                                     : (size_t)(to - from);
		ssize_t got = mbj_pread_full(log->wfd, buf, n, from);
		if (got <= 0) {
			if (got < 0)
				mbj_set_err(log, "read at %llu: %s",
				            (unsigned long long)from, strerror(errno));
			r = got < 0 ? MBJ_EIO : 0;
			break;
		}
		if (memcmp(buf, zeros, (size_t)got) &&
		    log->io.pwrite(log->wfd, zeros, (size_t)got, (off_t)from) != got) {
			mbj_set_err(log, "zeroing at %llu: %s",
			            (unsigned long long)from, strerror(errno));
			r = mbj_errno_code(errno);
		}
		from += (uint64_t)got;
	}
	free(buf);
	return r;
}

/* Cut what lies after the end @end in its segment (see TAIL HYGIENE). */
static int cut_after(mbj_log *log, const mbj_pos *end)
{
	int r = write_fd_on(log, end->segment);
	if (r < 0)
		return r;
	uint64_t to = end->offset + MBJ_REC_HDR + (uint64_t)MBJ_MAX_PAYLOAD;
	r = zero_range(log, end->offset, to);
	if (r == 0)
		mbj_shm_set_clean_segment(log, end->segment);
	return r;
}

/* Delete segment @n, a roll that crashed before any whole record reached
 * it, unless segments after it exist (then it is damage, not a roll). */
static int drop_segment(mbj_log *log, uint64_t n)
{
	char name[MBJ_SEG_NAME_LEN + 1];
	uint64_t *segs;
	size_t count;
	int r = mbj_list_segments(log->dirfd, &segs, &count);

	if (r < 0) {
		mbj_set_err(log, "listing the journal directory: %s", strerror(errno));
		return r;
	}
	bool later = count && segs[count - 1] > n;
	free(segs);
	mbj_seg_name(name, n);
	if (later) {
		mbj_set_err(log, "%s holds no record but later segments exist",
		            name);
		return MBJ_ECORRUPT;
	}
	if (unlinkat(log->dirfd, name, 0) < 0) {
		mbj_set_err(log, "unlink %s: %s", name, strerror(errno));
		return MBJ_EIO;
	}
	if (log->wfd >= 0 && log->wseg == n) {
		close(log->wfd);
		log->wfd = -1;
	}
	return mbj_dir_sync(log);
}

/* Is there a record @n at the start of the segment named @n?  The reader
 * moves to that segment only when there is. */
static int next_segment(mbj_log *log, uint64_t n, mbj_record *rec)
{
	char name[MBJ_SEG_NAME_LEN + 1], why[128];
	const char *w = "";
	mbj_seg s;

	mbj_seg_name(name, n);
	int fd = mbj_fd_above_stdio(openat(log->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0) {
		mbj_set_err(log, "open %s: %s", name, strerror(errno));
		return MBJ_EIO;
	}
	int r = mbj_seg_open_fd(fd, n, &s, why, sizeof(why));
	if (r == MBJ_SEG_EMPTY)
		mbj_seg_close(&s);
	if (r == MBJ_SEG_EMPTY)
		return drop_segment(log, n);
	if (r < 0) {
		mbj_set_err(log, "%s: %s", name, why);
		return r;
	}
	r = mbj_seg_next(&s, MBJ_SEG_HDR, n, true, rec, &w);
	if (r == MBJ_AT_REC) {
		mbj_seg_close(&log->rseg);
		log->rseg = s;   /* rec->payload points into it */
		mbj_shm_publish(log, &rec->end);
		return 1;
	}
	mbj_seg_close(&s);
	if (r == MBJ_AT_END || r == MBJ_AT_BAD)
		return drop_segment(log, n);
	mbj_set_err(log, "%s at offset %u, seq %llu: %s", name, MBJ_SEG_HDR,
	            (unsigned long long)n, w);
	return r;
}

static int later_segments(mbj_log *log, uint64_t after)
{
	uint64_t *segs;
	size_t count;
	int r = mbj_list_segments(log->dirfd, &segs, &count);

	if (r < 0)
		return r;
	r = count && segs[count - 1] > after;
	free(segs);
	return r;
}

/* The bytes at @end are not a record (r: MBJ_AT_BAD or MBJ_AT_END).
 * Classify them fully and cut what is torn.  1 when a record turned out
 * to be there after all (a writer finished it), 0 cut, <0 error. */
static int settle_tail(mbj_log *log, const mbj_pos *end, mbj_record *rec)
{
	char name[MBJ_SEG_NAME_LEN + 1];
	const char *why = "";
	int r = mbj_seg_next(&log->rseg, end->offset, end->seq + 1, true, rec,
	                     &why);

	if (r == MBJ_AT_REC)
		return 1;
	if (r == MBJ_AT_BAD) {
		int later = later_segments(log, end->segment);
		if (later < 0)
			return later;
		if (later) {
			r = MBJ_ECORRUPT;
			why = "bad record followed by a later segment";
		}
	}
	if (r < 0) {
		mbj_seg_name(name, end->segment);
		mbj_set_err(log, "%s at offset %llu, seq %llu: %s", name,
		            (unsigned long long)end->offset,
		            (unsigned long long)end->seq + 1, why);
		return r;
	}
	return cut_after(log, end);
}

/* The files say that nothing lies past @end (see THE TAIL CHECK). */
static int tail_found(mbj_log *log, const mbj_pos *end)
{
	mbj_shm_tail_found(log, end);
	log->tail_checked = true;
	return 0;
}

static int next_at_files(mbj_log *log, const mbj_pos *end, mbj_record *rec)
{
	const char *why = "";
	int r;

	if (!end->segment)
		return next_segment(log, end->seq + 1, rec);
	r = reader_on(log, end->segment);
	if (r < 0)
		return r;
	/* A zero header in a segment already scanned this boot is the end. */
	r = mbj_seg_read(&log->rseg, end->offset, end->seq + 1, rec, &why);
	if (r == MBJ_AT_END && end->offset > log->rseg.size) {
		mbj_set_err(log, "the committed end %llu lies past the end of "
		            "segment %llu (%llu bytes)",
		            (unsigned long long)end->offset,
		            (unsigned long long)end->segment,
		            (unsigned long long)log->rseg.size);
		return MBJ_ECORRUPT;
	}
	if (r == MBJ_AT_BAD ||
	    (r == MBJ_AT_END && mbj_shm_clean_segment(log) != end->segment))
		r = settle_tail(log, end, rec);
	if (r == MBJ_AT_REC) {
		mbj_shm_publish(log, &rec->end);
		return 1;
	}
	if (r < 0) {
		if (!log->err[0])
			mbj_set_err(log, "reading at the end: error %d", r);
		return r;
	}
	return next_segment(log, end->seq + 1, rec);
}

static int next_at_locked(mbj_log *log, const mbj_pos *end, mbj_record *rec)
{
	int r = check_pos(log, end);

	if (r < 0)
		return r;
	if (end->segment && log->tail_checked && !log->shm_v2 && mbj_shm_tail_at(log, end))
		return 0;
	r = next_at_files(log, end, rec);
	return r == 0 && end->segment ? tail_found(log, end) : r;
}

static int put_zeros(mbj_log *log, uint64_t from, uint64_t to)
{
	while (from < to) {
		size_t n = to - from > sizeof(zeros) ? sizeof(zeros)
		                                     : (size_t)(to - from);
		ssize_t w = log->io.pwrite(log->wfd, zeros, n, (off_t)from);
		if (w < 0 && errno == EINTR)
			continue;
		if (w != (ssize_t)n) {
			int e = w < 0 ? errno : ENOSPC;
			mbj_set_err(log, "zero-fill at %llu: %s",
			            (unsigned long long)from, strerror(e));
			return mbj_errno_code(e);
		}
		from += n;
	}
	return 0;
}

/* Record that [32, @end->offset) of segment @end->segment is durable (see
 * DURABLE MARK), best effort.  Marks that do not fit 32 bits are not
 * recorded (segments are 64 MiB by default). */
static void write_mark(mbj_log *log, const mbj_pos *end)
{
	uint8_t m[MBJ_MARK_BYTES];

	if (!end->segment || end->offset > UINT32_MAX || end->offset <= MBJ_SEG_HDR ||
	    end->seq + 1 - end->segment > UINT32_MAX)
		return;
	int fd = mbj_fd_above_stdio(openat(log->dirfd, MBJ_MARK_NAME,
	                                   O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	                                   (mode_t)log->file_mode));
	if (fd < 0)
		return;
	fchmod(fd, (mode_t)log->file_mode);
	mbj_mark_encode(m, end);
	if (pwrite(fd, m, sizeof(m), 0) == (ssize_t)sizeof(m))
		fdatasync(fd);
	close(fd);
}

/* Make the current write segment at least @need bytes long, zero-filled
 * and synced (see PREALLOCATION).  @end (NULL for a new segment) is the
 * committed end in it: the fill's fdatasync makes it durable. */
static int make_room(mbj_log *log, uint64_t need, const mbj_pos *end)
{
	struct stat st;

	if (need <= log->wsize)
		return 0;
	if (fstat(log->wfd, &st) < 0) {
		mbj_set_err(log, "fstat: %s", strerror(errno));
		return MBJ_EIO;
	}
	log->wsize = (uint64_t)st.st_size;
	if (need <= log->wsize)
		return 0;
	uint64_t chunk = log->seg_bytes < MBJ_PREALLOC_CHUNK ? log->seg_bytes
	                                                     : MBJ_PREALLOC_CHUNK;
	uint64_t target = (need + chunk - 1) / chunk * chunk;
	if (target > log->seg_bytes)
		target = need > log->seg_bytes ? need : log->seg_bytes;
	if (end) {
		mbj_pos mark = mbj_shm_durable(log);
		if (mark.segment == log->wseg)
			write_mark(log, &mark);
	}
	int r = put_zeros(log, log->wsize, target);
	if (r == 0)
		r = mbj_sync_file(log, log->wfd, "a segment after zero-fill");
	if (r == 0)
		log->wsize = target;
	if (r == 0 && end && end->seq)
		mbj_shm_set_durable(log, end);
	return r;
}

static int create_segment(mbj_log *log, uint64_t first, uint64_t need)
{
	char name[MBJ_SEG_NAME_LEN + 1];
	uint8_t hdr[MBJ_SEG_HDR];

	mbj_seg_name(name, first);
	int fd = mbj_fd_above_stdio(openat(log->dirfd, name,
	                                   O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	                                   (mode_t)log->file_mode));
	if (fd < 0) {
		mbj_set_err(log, "create %s: %s%s", name, strerror(errno),
		            errno == EEXIST ? " (call mbj_next_at first)" : "");
		return errno == EEXIST ? MBJ_EINVAL : mbj_errno_code(errno);
	}
	fchmod(fd, (mode_t)log->file_mode);  /* a group-shared mode, whatever the umask */
	if (log->wfd >= 0)
		close(log->wfd);
	log->wfd = fd;
	log->wseg = first;
	log->wsize = 0;
	mbj_seg_header(hdr, first);
	ssize_t w = log->io.pwrite(fd, hdr, sizeof(hdr), 0);
	int r = 0;
	if (w != (ssize_t)sizeof(hdr)) {
		int e = w < 0 ? errno : ENOSPC;
		mbj_set_err(log, "header of %s: %s", name, strerror(e));
		r = mbj_errno_code(e);
	}
	if (r == 0)
		r = make_room(log, need, NULL);
	if (r == 0)
		r = mbj_dir_sync(log);
	if (r == 0)   /* zero-filled by us: no stale bytes to scan for */
		mbj_shm_set_clean_segment(log, first);
	if (r < 0 && r != MBJ_EFATAL) {
		/* Nothing of ours is in it: leave no torn roll behind. */
		unlinkat(log->dirfd, name, 0);
		close(log->wfd);
		log->wfd = -1;
	}
	return r;
}

/* Start segment @first after making the one rolled from durable. */
static int roll(mbj_log *log, const mbj_pos *end, uint64_t first, size_t n)
{
	if (end->segment) {
		int r = write_fd_on(log, end->segment);
		if (r == 0)
			r = mbj_sync_file(log, log->wfd, "the segment rolled from");
		if (r < 0)
			return r;
		mbj_shm_set_durable(log, end);
	}
	return create_segment(log, first, MBJ_SEG_HDR + (uint64_t)n);
}

/* One pwrite of the whole frame.  A short or failed write is zeroed back
 * (or cut with ftruncate if even that fails), so that no partial record is
 * left that could be taken for data. */
static int write_frame(mbj_log *log, uint64_t off, size_t n)
{
	ssize_t w;

	do
		w = log->io.pwrite(log->wfd, log->wbuf, n, (off_t)off);
	while (w < 0 && errno == EINTR);
	if (w == (ssize_t)n)
		return 0;
	int e = w < 0 ? errno : ENOSPC;
	char name[MBJ_SEG_NAME_LEN + 1];
	mbj_seg_name(name, log->wseg);
	if (w > 0 && put_zeros(log, off, off + (uint64_t)w) < 0 &&
	    log->io.ftruncate(log->wfd, (off_t)off) == 0)
		log->wsize = off;
	mbj_set_err(log, "append of %zu bytes at %s:%llu: %s%s", n, name,
	            (unsigned long long)off, strerror(e),
	            w > 0 ? " (short write)" : "");
	return mbj_errno_code(e);
}

/* Records seq end->seq + 1 .. + n, framed back to back and written with one
 * pwrite: a group of writers costs one system call (and one fdatasync in
 * full durability), and a failed write leaves none of them (write_frame). */
static int append_locked(mbj_log *log, const mbj_pos *end, const mbj_entry *e, size_t n,
                         mbj_pos *ends)
{
	int r = check_pos(log, end);
	size_t total = 0;

	if (r < 0)
		return r;
	if (!n || n > MBJ_MAX_GROUP) {
		mbj_set_err(log, "bad group: %zu records", n);
		return MBJ_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (e[i].len > MBJ_MAX_PAYLOAD || e[i].type == 0 || (e[i].len && !e[i].payload)) {
			mbj_set_err(log, "bad record: type %u, %u bytes", e[i].type, e[i].len);
			return MBJ_EINVAL;
		}
		total += MBJ_REC_HDR + (size_t)e[i].len;
	}
	if (total > MBJ_MAX_GROUP_BYTES) {
		mbj_set_err(log, "bad group: %zu bytes", total);
		return MBJ_EINVAL;
	}
	uint64_t seq = end->seq + 1, seg = end->segment, off = end->offset;
	mbj_shm_set_appending(log, true);   /* cleared below, or by a full check */
	if (!seg || (off + total > log->seg_bytes && off > MBJ_SEG_HDR)) {
		r = roll(log, end, seq, total);
		seg = seq;
		off = MBJ_SEG_HDR;
	} else {
		r = write_fd_on(log, seg);
	}
	if (r == 0)
		r = make_room(log, off + total, seg == end->segment ? end : NULL);
	if (r < 0)
		return r;
	if (total > log->wcap) {
		uint8_t *nb = realloc(log->wbuf, total);
		if (!nb)
			return MBJ_ENOMEM;
		log->wbuf = nb;
		log->wcap = total;
	}
	for (size_t i = 0, at = 0; i < n; i++)
		at += mbj_frame(log->wbuf + at, seq + i, e[i].type, e[i].ts_us, e[i].payload,
		                e[i].len);
	r = write_frame(log, off, total);
	if (r < 0)
		return r;
	/* only now: @ends may be @end (mbj_append's callers pass one for both) */
	for (size_t i = 0; i < n; i++) {
		off += MBJ_REC_HDR + (uint64_t)e[i].len;
		ends[i] = (mbj_pos){ seg, off, seq + i };
	}
	mbj_shm_publish(log, &ends[n - 1]);
	mbj_shm_set_appending(log, false);
	log->tail_checked = true;
	return 0;
}

int mbj_next_at(mbj_log *log, const mbj_pos *end, mbj_record *rec)
{
	pthread_mutex_lock(&log->wmu);
	int r = next_at_locked(log, end, rec);
	pthread_mutex_unlock(&log->wmu);
	return r;
}

int mbj_append(mbj_log *log, const mbj_pos *end, uint8_t type, int64_t ts_us,
               const void *payload, uint32_t len, mbj_pos *new_end)
{
	mbj_entry e = { type, ts_us, payload, len };

	return mbj_append_many(log, end, &e, 1, new_end);
}

int mbj_append_many(mbj_log *log, const mbj_pos *end, const mbj_entry *e, size_t n,
                    mbj_pos *ends)
{
	pthread_mutex_lock(&log->wmu);
	int r = append_locked(log, end, e, n, ends);
	pthread_mutex_unlock(&log->wmu);
	return r;
}

/* Rewrite the type of the record that ends at @rec_end (a whole record of
 * @len payload bytes, the newest one) and make the change durable.  The
 * store uses it to turn a record whose commit failed into one that applies
 * as nothing: the seq stays (no gap, and group commit's durable_seq keeps
 * meaning what it says), only what it does changes.  A crash mid-rewrite
 * leaves a header that fails its CRC: a torn tail, cut, which is the same. */
static int retype_locked(mbj_log *log, const mbj_pos *rec_end, uint32_t len, uint8_t type)
{
	uint8_t *rec = NULL;
	size_t n = MBJ_REC_HDR + (size_t)len;
	uint64_t start;
	int r;

	if (type == 0 || len > MBJ_MAX_PAYLOAD || rec_end->offset < MBJ_SEG_HDR + n) {
		mbj_set_err(log, "retype: bad record position");
		return MBJ_EINVAL;
	}
	start = rec_end->offset - n;
	mbj_shm_set_appending(log, true);   /* a torn header: the next writer reads it */
	if ((r = write_fd_on(log, rec_end->segment)) < 0)
		return r;
	if (!(rec = malloc(n)))
		return MBJ_ENOMEM;
	if (mbj_pread_full(log->wfd, rec, n, start) != (ssize_t)n) {
		mbj_set_err(log, "retype: read at %llu failed", (unsigned long long)start);
		r = MBJ_EIO;
	} else {
		uint64_t seq = 0;
		int64_t ts = 0;
		memcpy(&seq, rec + 8, 8);   /* little-endian host: see meson.build */
		memcpy(&ts, rec + 17, 8);
		if (seq != rec_end->seq) {
			mbj_set_err(log, "retype: seq %llu found, %llu expected",
			            (unsigned long long)seq, (unsigned long long)rec_end->seq);
			r = MBJ_EINVAL;
		} else {
			mbj_frame(rec, seq, type, ts, rec + MBJ_REC_HDR, len);
			if (log->io.pwrite(log->wfd, rec, MBJ_REC_HDR, (off_t)start) != MBJ_REC_HDR) {
				mbj_set_err(log, "retype: write at %llu: %s",
				            (unsigned long long)start, strerror(errno));
				r = mbj_errno_code(errno);
			} else
				r = mbj_sync_file(log, log->wfd, "a retyped record");
		}
	}
	free(rec);
	return r;
}

int mbj_retype(mbj_log *log, const mbj_pos *rec_end, uint32_t len, uint8_t type)
{
	pthread_mutex_lock(&log->wmu);
	int r = retype_locked(log, rec_end, len, type);
	pthread_mutex_unlock(&log->wmu);
	return r;
}

/* Keep bytes [@from, @from + @n) of segment @name in "<name>.torn-at-<from>"
 * (".N" added when taken), synced: a cut never destroys evidence. */
static int keep_torn(mbj_log *log, const char *name, uint64_t from,
                     const uint8_t *p, size_t n)
{
	char to[96];
	int fd = -1;

	for (int i = 0; fd < 0 && i < 100; i++) {
		if (i)
			snprintf(to, sizeof(to), "%s.torn-at-%llu.%d", name,
			         (unsigned long long)from, i);
		else
			snprintf(to, sizeof(to), "%s.torn-at-%llu", name,
			         (unsigned long long)from);
		fd = openat(log->dirfd, to, O_WRONLY | O_CREAT | O_EXCL |
		            O_NOFOLLOW | O_CLOEXEC, (mode_t)log->file_mode);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		mbj_set_err(log, "keeping the torn bytes of %s: %s", name, strerror(errno));
		return mbj_errno_code(errno);
	}
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(fd, p + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	int r = done == n ? mbj_sync_file(log, fd, to) : mbj_errno_code(errno);
	if (done != n)
		mbj_set_err(log, "write %s: %s", to, strerror(errno));
	close(fd);
	return r ? r : mbj_dir_sync(log);
}

/* Cut segment @first at @from: keep the bytes aside, zero them, sync. */
static int cut_hole(mbj_log *log, mbj_seg *s, uint64_t from)
{
	char name[MBJ_SEG_NAME_LEN + 1];
	uint64_t size = s->size;
	size_t n = (size_t)(size - from);
	uint8_t *buf = malloc(n ? n : 1);
	int r;

	mbj_seg_name(name, s->first);
	if (!buf)
		return MBJ_ENOMEM;
	if (mbj_pread_full(s->fd, buf, n, from) != (ssize_t)n) {
		mbj_set_err(log, "read of %s at %llu failed", name, (unsigned long long)from);
		free(buf);
		return MBJ_EIO;
	}
	while (n && !buf[n - 1])
		n--;
	r = keep_torn(log, name, from, buf, n);
	free(buf);
	if (r == 0)
		r = write_fd_on(log, s->first);
	if (r == 0)
		r = zero_range(log, from, size);
	if (r == 0)
		r = mbj_sync_file(log, log->wfd, name);
	return r;
}

/* The first open of a boot (or of a journal whose sync.shm was lost): a
 * power loss may have left, in the newest segment, records that are not
 * whole followed by whole ones (several writers append at increasing
 * offsets, and the disk keeps any subset of what no fdatasync covered).
 * Everything from the first bad record at or after the durable mark is
 * cut (see segment.c, THE DURABLE MARK): none of it was acknowledged.
 * Damage before the mark is left for the readers to report.  Only the
 * newest segment: the others were fdatasync'ed whole when the journal
 * rolled past them.  Costs a read of the newest segment from its mark. */
int mbj_boot_settle(mbj_log *log)
{
	uint64_t *segs, at;
	size_t count;
	char why[128];
	const char *w = "";
	mbj_record rec;
	mbj_seg s;
	int r = mbj_list_segments(log->dirfd, &segs, &count);

	if (r < 0) {
		mbj_set_err(log, "listing the journal directory: %s",
		            r == MBJ_ENOMEM ? "out of memory" : strerror(errno));
		return r;
	}
	uint64_t first = count ? segs[count - 1] : 0;
	free(segs);
	if (!first)
		return 0;
	r = mbj_seg_open(log->dirfd, first, &s, why, sizeof(why));
	if (r == MBJ_SEG_EMPTY)
		mbj_seg_close(&s);
	if (r == MBJ_SEG_EMPTY || r == MBJ_ECORRUPT || r == MBJ_EVERSION || r == MBJ_EINVAL)
		return 0;   /* a crashed roll, or damage the readers report */
	if (r < 0) {
		mbj_set_err(log, "segment %llu: %s", (unsigned long long)first, why);
		return r;
	}
	uint64_t off = MBJ_SEG_HDR, expect = first;
	uint8_t m[MBJ_MARK_BYTES];
	mbj_pos mark;
	int mfd = openat(log->dirfd, MBJ_MARK_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (mfd >= 0 && mbj_pread_full(mfd, m, sizeof(m), 0) == (ssize_t)sizeof(m) &&
	    mbj_mark_decode(m, &mark) && mark.segment == first) {
		off = mark.offset;
		expect = mark.seq + 1;
	}
	if (mfd >= 0)
		close(mfd);
	while (off <= s.size &&
	       (r = mbj_seg_read(&s, off, expect, &rec, &w)) == MBJ_AT_REC) {
		off = rec.end.offset;
		expect++;
	}
	if (off <= s.size && r >= 0) {
		mbj_seg_forget(&s);
		r = mbj_seg_valid_after(&s, off, expect, &at);
		if (r == 1)
			r = cut_hole(log, &s, off);
	}
	mbj_seg_close(&s);
	return r < 0 ? r : 0;
}
