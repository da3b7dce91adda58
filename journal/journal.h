/*
 * journal.h - the append-only journal of membank (internal).
 *
 * The journal is the durable truth of a bank: every mutation is a record
 * appended here before it is acknowledged.  This part knows nothing of LMDB
 * or of what a payload means: it frames, stores, checks and reads records.
 *
 * A journal is a directory of segment files named by the sequence number of
 * their first record ("%020llu.jnl"); the byte format is documented at the
 * top of segment.c.  Sequence numbers start at 1 and have no gaps.
 *
 * POSITIONS.  An mbj_pos names the end of a record: the segment it lies in
 * (the segment's first seq), the offset just past it, and its seq.  The zero
 * position {0,0,0} is the end of an empty journal; {0,0,N} (no segment
 * yet) is the end of a journal whose records up to N live elsewhere (a
 * restored snapshot): the next append creates segment N+1.  The store keeps
 * the end of the last record it applied (its "committed end") and hands it
 * back to mbj_next_at() and mbj_append().
 *
 * LOCKING.  mbj_next_at(), mbj_cut_at() and mbj_append() must be called with
 * the caller's writer lock held (the store uses LMDB's writer lock), so that
 * one process appends at a time and journal order is seq order.  mbj_sync()
 * is called without it: that is what makes group commit possible.  Readers
 * (mbj_iter_*, mbj_verify) need no lock; they stop at the first record that
 * is not whole.
 *
 * THREADS.  One mbj_log may be used by several threads at once: mbj_sync()
 * and mbj_durable_seq() from any number of threads, while other threads
 * call mbj_next_at() and mbj_append() under the writer lock.  The handle's
 * cached fds are guarded by two mutexes of its own (the writer's, and the
 * group-commit leader's, kept apart so an append never waits for this
 * process's fdatasync).  mbj_errmsg() is best effort when threads fail at
 * the same time.  An mbj_iter belongs to one thread.  After
 * fork() the child opens its own mbj_log.
 *
 * ERRORS are negative MBJ_E* codes; mbj_errmsg() gives the message of the
 * last failure on a log (which file, which offset, which syscall).
 *
 * MBJ_EFATAL.  A failed fdatasync (in mbj_sync, or in mbj_append when it
 * rolls or zero-fills) is fatal for the whole journal, in every process:
 * that handle and every other handle get MBJ_EFATAL from mbj_append,
 * mbj_next_at and mbj_sync from then on, because Linux may have dropped the
 * dirty pages and reports the error only once.  Close the handle.  The next
 * mbj_open() rewrites and fdatasyncs every segment from the one holding
 * mbj_durable_seq() + 1 onward, then clears the state (it returns
 * MBJ_EFATAL if that fails again); records after the durable point are
 * whatever the disk holds afterwards, so the store should re-read the tail
 * (mbj_next_at from its committed end) as after a crash.
 */
#ifndef MEMBANK_JOURNAL_H
#define MEMBANK_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MBJ_OK        0
#define MBJ_EIO      -1   /* read/write/open failed (errno in the message) */
#define MBJ_ECORRUPT -2   /* a bad record followed by valid ones, bad header */
#define MBJ_EVERSION -3   /* a segment of a newer format version */
#define MBJ_ENOMEM   -4
#define MBJ_EINVAL   -5   /* bad argument: payload too large, bad position */
#define MBJ_ENOSPC   -6   /* write or allocation hit a full disk */
#define MBJ_EFATAL   -7   /* an fdatasync failed: nothing after it is durable */

#define MBJ_MAX_PAYLOAD (32u << 20)              /* bytes of one payload */
#define MBJ_DEFAULT_SEGMENT_BYTES (64ull << 20)
#define MBJ_MIN_SEGMENT_BYTES (64ull << 10)

/* The system calls the journal writes through: tests replace them to inject
 * ENOSPC, EIO and short writes at each call site.  NULL members mean the
 * real call.  */
typedef struct mbj_io {
	ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
	int (*fdatasync)(int fd);
	int (*ftruncate)(int fd, off_t len);
} mbj_io;

typedef struct mbj_options {
	uint64_t segment_bytes;  /* roll size, 0: MBJ_DEFAULT_SEGMENT_BYTES */
	int file_mode;           /* 0: 0600 */
	int dir_mode;            /* 0: 0700 */
	const mbj_io *io;        /* NULL: the real calls */
	/* Nonzero: the caller vouches that no other process has this journal
	 * open.  Then a state (sync.shm) left this boot by a release of
	 * another version is initialised again, as after a reboot, instead of
	 * refused with MBJ_EVERSION; and, since whether that release's last
	 * fdatasync failed cannot be read from it, every segment is written
	 * again and fdatasync'ed first (see gsync.c, FAILURE). */
	int state_alone;
} mbj_options;

typedef struct mbj_pos {
	uint64_t segment;  /* first seq of the segment (its name); 0: none yet */
	uint64_t offset;   /* byte offset just past the record */
	uint64_t seq;      /* seq of the record; 0: empty journal */
} mbj_pos;

/* One record as read.  payload points into memory owned by the log or the
 * iterator, valid until its next call. */
typedef struct mbj_record {
	uint64_t seq;
	uint8_t type;        /* 1..255; 0 is never a record (end of data) */
	int64_t ts_us;       /* microseconds since the epoch, from the writer */
	const uint8_t *payload;
	uint32_t len;
	mbj_pos end;         /* the position just past this record */
} mbj_record;

typedef struct mbj_log mbj_log;

/* Open the journal in @dir, creating the directory (dir_mode, no symlink
 * followed) when missing.  Also opens or creates the group-commit state
 * file "sync.shm" in @dir (MBJ_EVERSION if another layout of it is in use
 * this boot).  Cheap: reads no segment, unless clearing MBJ_EFATAL, or
 * unless it is the first open of a boot (or sync.shm is new): then it
 * settles the newest segment after a power loss (segment.c, THE DURABLE
 * MARK), reading it from the durable mark.  Waits at most 30 s for
 * another opener (MBJ_EIO then).  */
int mbj_open(const char *dir, const mbj_options *opts, mbj_log **out);
/* Why this thread's last mbj_open() failed ("" after a success). */
const char *mbj_open_errmsg(void);
void mbj_close(mbj_log *log);
const char *mbj_errmsg(const mbj_log *log);

/* --- writer side: the caller holds its writer lock --- */

/* Look past the committed end @end.  Returns 1 when a whole, valid record
 * with seq end->seq + 1 starts there (in the same segment, or at the start of
 * the segment named end->seq + 1): *rec is filled and the caller applies it,
 * then calls again with rec->end (a writer died between append and commit).
 * Returns 0 when nothing follows @end.  Bytes that are not a whole record
 * (a torn append) are cut first, so that 0 always means: @end is the end.
 * Returns MBJ_ECORRUPT when valid records follow damage: that is never cut.
 * A segment named end->seq + 1 that holds no whole record (a roll that
 * crashed) is deleted.  The common case costs one pread and one openat;
 * the first call of a boot in a segment also scans (and zeroes) the bytes
 * after @end, up to MBJ_MAX_PAYLOAD + 25 or the end of the file.  *rec is
 * valid until the next call on @log. */
int mbj_next_at(mbj_log *log, const mbj_pos *end, mbj_record *rec);

/* Append a record with seq end->seq + 1 at @end, rolling to a new segment
 * (named by that seq) when it does not fit; the segment rolled from is
 * fdatasync'ed first.  On success *new_end is the record's end.  On failure
 * nothing was appended that mbj_next_at() would accept, and the handle is
 * still usable unless MBJ_EFATAL.  Call mbj_next_at() first, in the same
 * hold of the writer lock: append does not look at what lies at @end (it
 * refuses with MBJ_EINVAL only when the segment it would create exists).
 * MBJ_EINVAL: type 0, len > MBJ_MAX_PAYLOAD, bad position; MBJ_ENOSPC
 * (also for a short write), MBJ_EIO, MBJ_EFATAL. */
int mbj_append(mbj_log *log, const mbj_pos *end, uint8_t type, int64_t ts_us,
               const void *payload, uint32_t len, mbj_pos *new_end);

/* One record of a group append. */
typedef struct mbj_entry {
	uint8_t type;
	int64_t ts_us;
	const void *payload;
	uint32_t len;
} mbj_entry;

/* At most this many records, and bytes of framed records, in one group. */
#define MBJ_MAX_GROUP 4096u
#define MBJ_MAX_GROUP_BYTES ((size_t)MBJ_MAX_PAYLOAD + ((size_t)8 << 20))

/* mbj_append() of @n records at once: seqs end->seq + 1 .. end->seq + @n,
 * written with one pwrite into one segment (rolling first when they do not
 * all fit in the current one).  ends[i] is record i's end.  All or none:
 * on failure nothing was appended that mbj_next_at() would accept.
 * MBJ_EINVAL also for n == 0, n > MBJ_MAX_GROUP, or more than
 * MBJ_MAX_GROUP_BYTES framed. */
int mbj_append_many(mbj_log *log, const mbj_pos *end, const mbj_entry *e, size_t n,
                    mbj_pos *ends);

/* Rewrite the type of the newest record, which ends at @rec_end and holds
 * @len payload bytes, and fdatasync it (the payload stays; the store turns
 * a record whose commit failed into one that applies as nothing).  Under
 * the writer lock, before anything is appended after it. */
int mbj_retype(mbj_log *log, const mbj_pos *rec_end, uint32_t len, uint8_t type);

/* --- durability: called WITHOUT the writer lock --- */

/* Return once every record up to and including @seq is on stable storage.
 * Group commit: processes share a "durable up to" seq in sync.shm; one of
 * them (the leader) fdatasyncs the newest segment for everyone whose record
 * was appended by then, the others sleep (on a futex word in sync.shm, not
 * a condvar: see gsync.c).  A leader may first wait, at most half an
 * fdatasync and 200 us, for as many writers as the last sync covered to
 * append (gsync.c, GATHERING).  A dead leader does not strand them, nor does a
 * stopped one: a waiter that sees a leader lead for over a second
 * fdatasyncs the segment itself (gsync.c, STOPPED LEADER).  MBJ_EFATAL when an
 * fdatasync failed: the log refuses everything after that.  MBJ_EINVAL when
 * @seq was never appended (nor seen by mbj_next_at) this boot.  @seq 0
 * returns 0 at once. */
int mbj_sync(mbj_log *log, uint64_t seq);

/* Durable up to which seq, as far as this machine's boot knows. */
uint64_t mbj_durable_seq(mbj_log *log);
/* Group-commit fdatasyncs of the journal by every process of the bank
 * since this boot's sync.shm was made (the records they covered over this
 * count is the group commit's batching). */
uint64_t mbj_sync_count(mbj_log *log);

/* --- readers: no lock needed --- */

typedef struct mbj_iter mbj_iter;

/* Iterate records with seq >= @from_seq in order; @from_seq 0: from the
 * oldest record kept.  MBJ_EINVAL when the oldest segment kept starts after
 * @from_seq (those records were removed).  A missing directory: MBJ_EIO;
 * an empty one iterates nothing. */
int mbj_iter_open(const char *dir, uint64_t from_seq, mbj_iter **out);
/* Why this thread's last mbj_iter_open() failed ("" when it did not, or
 * for MBJ_EINVAL). */
const char *mbj_iter_open_errmsg(void);
/* 1: *rec filled; 0: end of data (a torn tail at the very end is end of
 * data); <0: MBJ_ECORRUPT (damage followed by valid records) or MBJ_EIO.
 * Records appended but not yet committed by the store (and not yet
 * durable) are returned too: a replay stops at the store's committed end.
 * After 0, a later call sees records appended since. */
int mbj_iter_next(mbj_iter *it, mbj_record *rec);
const char *mbj_iter_errmsg(const mbj_iter *it);
void mbj_iter_close(mbj_iter *it);

/* What mbj_verify() found, or what mbj_repair() did. */
typedef struct mbj_report {
	uint64_t segments;      /* segment files read */
	uint64_t records;       /* whole, valid records */
	uint64_t first_seq;     /* oldest record kept (0: none) */
	uint64_t last_seq;      /* newest whole record (0: none) */
	bool torn_tail;         /* the newest segment ends in a torn record */
	bool damaged;           /* damage before valid records, or a bad header */
	char damage_segment[64];/* file name of the damaged segment */
	uint64_t damage_offset;
	uint64_t damage_seq;    /* seq expected at the damage */
	char reason[160];       /* "crc mismatch", "bad magic", "seq gap", ... */
	char action[160];       /* repair: "cut 37 bytes at ...", "moved ... aside" */
} mbj_report;

/* Check every record.  0 when clean (torn_tail may be set), MBJ_ECORRUPT
 * when damaged, MBJ_EVERSION for a newer segment, MBJ_EIO. */
int mbj_verify(const char *dir, mbj_report *report);

/* Cut a torn tail; move a damaged segment aside as "<name>.damaged" (never
 * deleted) together with the segments after it, so that the journal ends
 * with the last record before the damage (the damaged segment's records
 * before the damage are kept: copied back under its name).  0 on success.
 * Run it with no process attached: it also deletes "sync.shm", whose
 * durable_seq may name records that are gone. */
int mbj_repair(const char *dir, mbj_report *report);

/* Move every segment aside as "<name>.damaged" (never deleted) and forget
 * sync.shm and durable.mark: the journal is empty afterwards.  For a
 * repair that first wrote a checkpoint holding everything the journal did
 * (and more).  *moved: how many segments.  Run it with no process
 * attached. */
int mbj_set_aside(const char *dir, uint64_t *moved);

/* Delete segments all of whose records have seq < @seq, never the newest
 * segment.  *removed (may be NULL) receives their number. */
int mbj_remove_before(const char *dir, uint64_t seq, uint64_t *removed);
/* The same, keeping segments modified less than @min_age_s seconds ago
 * (retention), and every segment after the first one kept. */
int mbj_remove_covered(const char *dir, uint64_t seq, uint32_t min_age_s, uint64_t *removed);
/* Delete every segment that starts at or before @seq, the newest included:
 * for a journal that goes on in a new segment @seq + 1 after a checkpoint
 * covering @seq replaced it (a machine started again from its cluster's
 * checkpoint), so that no gap stays between them.  The caller knows that
 * none of them holds a record past @seq. */
int mbj_remove_through(const char *dir, uint64_t seq, uint64_t *removed);

/* Disk use of the journal: segment count, bytes, oldest and newest seq. */
typedef struct mbj_usage {
	uint64_t segments, bytes, first_seq;
} mbj_usage;
int mbj_usage_of(const char *dir, mbj_usage *usage);

/* Descriptors 0..2 are never the library's (fd.c says why).  Every open in
 * the library is wrapped: fd = mbj_fd_above_stdio(open(...)).  It returns
 * @fd when it is >= 3 or negative; else a copy >= 3 (FD_CLOEXEC), with
 * /dev/null left in the low slot, or -1 with errno. */
int mbj_fd_above_stdio(int fd);
/* Put /dev/null on each closed descriptor 0..2, before a library we call
 * opens files itself (LMDB).  Call it under a lock that serialises opens. */
void mbj_stdio_fill(void);

/* CRC-32C (Castagnoli) of @n bytes, continuing from @crc (start with 0). */
uint32_t mbj_crc32c(uint32_t crc, const void *buf, size_t n);

#endif /* MEMBANK_JOURNAL_H */
