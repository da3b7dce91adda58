/*
 * gsync.c - group commit: one fdatasync serves every writer behind it.
 *
 * STATE.  "sync.shm" in the journal directory, mmap'ed MAP_SHARED by every
 * process of the journal (struct mbj_shm below, host byte order: it never
 * leaves the machine).  Fields are read and written under its robust,
 * process-shared mutex, except `wake` (a futex word) and the atomic reads
 * of `failed` and `durable_seq`.
 *
 *   written_seq/segment/offset  newest record appended (mbj_append,
 *                        mbj_next_at), the segment holding it and its end.
 *                        Segments before it were fdatasync'ed when the
 *                        journal rolled past them.
 *   durable_seq          every record <= it is on stable storage;
 *   durable_segment/offset  where that record ends (the writer copies them
 *                        into durable.mark, see writer.c, DURABLE MARK).
 *   leader_active/pid    someone is in fdatasync for the others.  While
 *                        leading, the leader also holds an OFD write lock on
 *                        byte 0 of sync.shm: the kernel drops it when the
 *                        leader dies (even as a zombie, unlike kill(pid,0)),
 *                        which is how waiters tell a dead leader.
 *   failed               an fdatasync failed (see FAILURE).
 *   clean_segment        the segment whose tail was scanned this boot
 *                        (writer.c, TAIL HYGIENE).
 *   appending            an append (or a retype) may be under way or may
 *                        have died half done: set before the journal's tail
 *                        is touched, cleared once written_* is its end again
 *                        (writer.c, THE TAIL CHECK).  Written by writers
 *                        only, under the caller's writer lock.
 *   boot_id              the boot the state belongs to.
 *   last_covered, last_sync_us  the records the last fdatasync made durable,
 *                        and how long it took (GATHERING).  Both sit in
 *                        what was padding (zero in a state the release
 *                        before made, whose handles never set them).
 *
 * PROTOCOL of mbj_sync(seq): lock; done if durable_seq >= seq; if a leader
 * is active, sleep on the futex for at most 2 ms and look again (taking
 * over if the leader's lock is gone, or syncing by itself if the leader
 * has led for more than PATIENCE_NS, see STOPPED LEADER); else lead: take
 * target = written_seq
 * and its segment, unlock, fdatasync that segment, lock, durable_seq =
 * max(durable_seq, target), clear the leader, bump `wake`, unlock, wake
 * every sleeper.  Waiters sleep in the kernel: on 2 cores a spinning waiter
 * steals the leader's CPU.
 *
 * GATHERING.  A sync covers the records appended before it starts.  When
 * writers take turns (the last sync covered k > 1 records), those it woke
 * are still preparing their next record when the first of them comes back
 * to sync: syncing at once would cover one or two, and the others would
 * wait a whole fdatasync more.  So a leader whose sync would cover fewer
 * than k records first lets the others append (yielding the CPU, the mutex
 * let go, its leadership kept so that they wait for it) until k are
 * pending, or half the last fdatasync's time has passed, at most
 * GATHER_MAX_NS.  A lone writer (k = 1) never waits; any other waits at
 * most that bound, once, when the others stop.  W1 full in the bench, 2
 * cores: 8 processes 3.9 -> about 7 records per fdatasync.
 *
 * STOPPED LEADER.  A leader that is alive but does not progress (SIGSTOP,
 * a debugger, descheduled for seconds inside its fdatasync) keeps its OFD
 * lock, so it does not look dead.  fdatasync can be issued by anyone: a
 * waiter that finds the same leader active for more than PATIENCE_NS (1 s,
 * from leader_since_ns, a CLOCK_MONOTONIC time, which is machine-wide)
 * takes target = written_seq, fdatasyncs that segment itself through its
 * own descriptor (without the leadership, which the stopped leader still
 * holds and will clear when it continues), publishes durable_seq =
 * max(durable_seq, target) and wakes everyone.  Each waiter does so while
 * the leader stays stopped: group commit degrades to one fdatasync per
 * writer, nothing waits on the stopped process.  So mbj_sync waits on
 * another process for at most PATIENCE_NS plus its own fdatasync.
 *
 * OTHER WAITS.  The robust mutex is held for a few stores and loads, never
 * across a system call: a process stopped inside that window blocks the
 * others until it continues or dies (then EOWNERDEAD recovers it).  The
 * flock taken by mbj_open on sync.shm (held while the state is checked
 * and, on the first open of a boot, while the newest segment is settled)
 * is polled every 2 ms: an open gives up with MBJ_EIO and a message that
 * says so after 30 s (the holder reads at most the newest segment).
 *
 * WHY A FUTEX AND NOT A CONDVAR.  glibc 2.36's process-shared condvar keeps
 * per-group waiter references; a waiter SIGKILLed while blocked leaves one
 * behind and a later pthread_cond_broadcast can block forever waiting for
 * it.  A futex word holds no per-waiter state, so a dead waiter costs
 * nothing.
 *
 * REBOOT.  durable_seq must never claim more than is durable.  (Without a
 * readable boot id the state is never reset: a reboot must then delete
 * sync.shm, which is what mbj_repair does too.)  After a
 * reboot the file's content is stale (and its mutex may look owned by a
 * thread id that is reused), so the header keeps the boot id
 * (/proc/sys/kernel/random/boot_id) and the state is reinitialised, under an
 * flock on the file, when it differs, when the file is new or short, or
 * when it was never finished (`ready` is set last).  Before that, still
 * under the flock, mbj_boot_settle() (writer.c) cuts a hole a power loss
 * left in the newest segment past its durable mark (segment.c).
 *
 * FAILURE.  A failed fdatasync sets `failed`: that caller and every waiter
 * get MBJ_EFATAL, and so does every later mbj_sync and mbj_append on any log
 * of the journal, because Linux may drop the dirty pages and report the
 * error once.  mbj_open() clears it only after rewriting and fdatasyncing
 * every segment from the one holding durable_seq + 1 to the newest (the
 * rewrite re-dirties whatever the page cache still holds, so it is written
 * again), then the directory.  Handles that saw the failure stay failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stddef.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "journal_int.h"

#define SHM_MAGIC "MBJSYNC"
#define SHM_VERSION 3u   /* 3: appending */
#define WAIT_NS (2 * 1000 * 1000)
/* How long a waiter trusts an active leader before it syncs by itself. */
#define PATIENCE_NS (1000ull * 1000 * 1000)
/* How long mbj_open waits for the flock on sync.shm. */
#define STATE_LOCK_NS (30ull * 1000 * 1000 * 1000)

struct mbj_shm {
	char magic[8];
	uint32_t version;
	uint32_t size;
	char boot_id[48];
	pthread_mutex_t mu;
	uint32_t wake;
	uint32_t leader_active;
	int32_t leader_pid;
	uint32_t last_covered;      /* GATHERING; in former padding */
	uint64_t leader_since_ns;   /* CLOCK_MONOTONIC when it began to lead */
	uint32_t failed;
	uint32_t last_sync_us;      /* GATHERING; in former padding */
	uint64_t written_seq;
	uint64_t written_segment;
	uint64_t written_offset;
	uint64_t durable_seq;
	uint64_t durable_segment;   /* where durable_seq's record ends */
	uint64_t durable_offset;
	uint64_t clean_segment;
	uint64_t syncs;
	uint32_t ready;
	uint32_t appending;
};

_Static_assert(offsetof(struct mbj_shm, last_covered) + 4 ==
               offsetof(struct mbj_shm, leader_since_ns), "last_covered took padding");
_Static_assert(offsetof(struct mbj_shm, last_sync_us) + 4 ==
               offsetof(struct mbj_shm, written_seq), "last_sync_us took padding");

#define GATHER_MAX_NS (200 * 1000)   /* see GATHERING */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void read_boot_id(char out[48])
{
	memset(out, 0, 48);
	int fd = mbj_fd_above_stdio(open("/proc/sys/kernel/random/boot_id",
	                                 O_RDONLY | O_CLOEXEC));
	if (fd < 0)
		return;
	ssize_t n = read(fd, out, 47);
	close(fd);
	if (n > 0 && out[n - 1] == '\n')
		out[n - 1] = 0;
}

static int init_state(struct mbj_shm *sh, const char boot[48])
{
	pthread_mutexattr_t a;
	int r;

	memset(sh, 0, sizeof(*sh));
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	r = pthread_mutex_init(&sh->mu, &a);
	pthread_mutexattr_destroy(&a);
	if (r)
		return MBJ_EIO;
	memcpy(sh->magic, SHM_MAGIC, 8);
	sh->version = SHM_VERSION;
	sh->size = sizeof(*sh);
	memcpy(sh->boot_id, boot, 48);
	__atomic_store_n(&sh->ready, 1, __ATOMIC_RELEASE);
	return 0;
}

/* Called under the flock: map, and (re)initialise when stale.  A state
 * initialised here is a new boot (or a journal whose state was lost): the
 * newest segment may hold a hole left by a power loss, settled before any
 * other process of the journal can use it (they wait on the flock).
 * A state of this boot of another version is refused, unless @alone (no
 * other process has the journal open, see mbj_options): then it is
 * initialised again, and marked failed, because whether an fdatasync of
 * that release failed cannot be read from it, so that mbj_open writes
 * every segment again before any sync is trusted (FAILURE). */
static int map_state(mbj_log *log, int fd, bool alone)
{
	struct stat st;
	char boot[48];

	if (fstat(fd, &st) < 0) {
		mbj_set_err(log, "fstat sync.shm: %s", strerror(errno));
		return MBJ_EIO;
	}
	bool fresh = (size_t)st.st_size < sizeof(struct mbj_shm);
	/* blocks, not a hole: the state is written through the map, where a
	 * full disk would be SIGBUS instead of an error */
	int e = fresh ? posix_fallocate(fd, 0, sizeof(struct mbj_shm)) : 0;
	if (e == EOPNOTSUPP || e == EINVAL)
		e = ftruncate(fd, sizeof(struct mbj_shm)) < 0 ? errno : 0;
	if (e) {
		mbj_set_err(log, "allocating sync.shm: %s", strerror(e));
		return mbj_errno_code(e);
	}
	void *p = mmap(NULL, sizeof(struct mbj_shm), PROT_READ | PROT_WRITE,
	               MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		mbj_set_err(log, "mmap sync.shm: %s", strerror(errno));
		return mbj_errno_code(errno);
	}
	struct mbj_shm *sh = p;
	bool other = false;
	log->shm = sh;
	read_boot_id(boot);
	if (!fresh && sh->ready && !memcmp(sh->boot_id, boot, 48)) {
		/* Version 2 is this layout without `appending` (the padding
		 * after `ready`, always zero there): its writers never set it,
		 * so a handle on it never trusts it (THE TAIL CHECK) and the
		 * two versions share the journal safely until the next boot. */
		if (!memcmp(sh->magic, SHM_MAGIC, 8) && sh->size == sizeof(*sh) &&
		    (sh->version == SHM_VERSION || sh->version == 2)) {
			log->shm_v2 = sh->version == 2;
			return 0;
		}
		if (!alone) {
			mbj_set_err(log, "sync.shm: a state of another version (%u) is in "
			            "use this boot: close the processes of the other release",
			            sh->version);
			return MBJ_EVERSION;
		}
		other = true;
	}
	int r = mbj_boot_settle(log);
	if (r == 0 && (r = init_state(sh, boot)) == 0 && other)
		__atomic_store_n(&sh->failed, 1, __ATOMIC_SEQ_CST);
	return r;
}

/* The flock on sync.shm, polled so that an open never waits without bound
 * on a process that holds it and does not progress (see OTHER WAITS). */
static int lock_state_file(mbj_log *log, int fd)
{
	uint64_t start = now_ns();

	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			mbj_set_err(log, "flock sync.shm: %s", strerror(errno));
			return MBJ_EIO;
		}
		if (now_ns() - start > STATE_LOCK_NS) {
			mbj_set_err(log, "sync.shm: another process has held its lock for "
			            "%llu s (stopped, or stuck opening the journal)",
			            STATE_LOCK_NS / 1000000000ull);
			return MBJ_EIO;
		}
		nanosleep(&(struct timespec){ 0, WAIT_NS }, NULL);
	}
}

int mbj_shm_open(mbj_log *log, int file_mode, bool alone)
{
	int fd = mbj_fd_above_stdio(openat(log->dirfd, "sync.shm",
	                                   O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	                                   (mode_t)file_mode));
	int r;

	if (fd < 0) {
		mbj_set_err(log, "open sync.shm: %s", strerror(errno));
		return mbj_errno_code(errno);
	}
	log->shmfd = fd;
	fchmod(fd, (mode_t)file_mode);  /* fails harmlessly on another user's file */
	r = lock_state_file(log, fd);
	if (r < 0)
		return r;
	r = map_state(log, fd, alone);
	flock(fd, LOCK_UN);
	if (r < 0 && !log->err[0])
		mbj_set_err(log, "sync.shm: cannot map or initialise it");
	return r;
}

void mbj_shm_close(mbj_log *log)
{
	if (log->shm)
		munmap(log->shm, sizeof(struct mbj_shm));
	log->shm = NULL;
	if (log->shmfd >= 0)
		close(log->shmfd);
	log->shmfd = -1;
}

static void futex_wake_all(uint32_t *word);

/* A holder that died with the mutex leaves the state as it was between
 * two plain stores; every field stays meaningful, so mark it consistent. */
static void shm_lock(struct mbj_shm *sh)
{
	if (pthread_mutex_lock(&sh->mu) == EOWNERDEAD)
		pthread_mutex_consistent(&sh->mu);
}

static void shm_unlock(struct mbj_shm *sh)
{
	pthread_mutex_unlock(&sh->mu);
}

void mbj_shm_lock(mbj_log *log)
{
	shm_lock(log->shm);
}

void mbj_shm_publish(mbj_log *log, const mbj_pos *end)
{
	struct mbj_shm *sh = log->shm;

	shm_lock(sh);
	if (end->seq > sh->written_seq) {
		sh->written_seq = end->seq;
		sh->written_segment = end->segment;
		sh->written_offset = end->offset;
	}
	shm_unlock(sh);
}

/* Under the mutex. */
static void set_durable(struct mbj_shm *sh, const mbj_pos *end)
{
	if (end->seq > sh->durable_seq) {
		sh->durable_segment = end->segment;
		sh->durable_offset = end->offset;
		__atomic_store_n(&sh->durable_seq, end->seq, __ATOMIC_RELEASE);
	}
}

/* A writer fdatasync'ed its segment (zero-fill, roll) with every record up
 * to @end written: waiters up to it may go. */
void mbj_shm_set_durable(mbj_log *log, const mbj_pos *end)
{
	shm_lock(log->shm);
	set_durable(log->shm, end);
	shm_unlock(log->shm);
	__atomic_add_fetch(&log->shm->wake, 1, __ATOMIC_RELEASE);
	futex_wake_all(&log->shm->wake);
}

mbj_pos mbj_shm_durable(mbj_log *log)
{
	struct mbj_shm *sh = log->shm;

	shm_lock(sh);
	mbj_pos p = { sh->durable_segment, sh->durable_offset, sh->durable_seq };
	shm_unlock(sh);
	return p;
}

bool mbj_shm_failed(mbj_log *log)
{
	return __atomic_load_n(&log->shm->failed, __ATOMIC_ACQUIRE) != 0;
}

void mbj_shm_set_failed(mbj_log *log)
{
	if (log->shm)
		__atomic_store_n(&log->shm->failed, 1, __ATOMIC_RELEASE);
}

void mbj_shm_gathering(mbj_log *log, uint32_t *covered, uint32_t *sync_us)
{
	shm_lock(log->shm);
	*covered = log->shm->last_covered;
	*sync_us = log->shm->last_sync_us;
	shm_unlock(log->shm);
}

uint64_t mbj_shm_clean_segment(mbj_log *log)
{
	return __atomic_load_n(&log->shm->clean_segment, __ATOMIC_ACQUIRE);
}

void mbj_shm_set_clean_segment(mbj_log *log, uint64_t segment)
{
	__atomic_store_n(&log->shm->clean_segment, segment, __ATOMIC_RELEASE);
}

void mbj_shm_set_appending(mbj_log *log, bool on)
{
	__atomic_store_n(&log->shm->appending, on ? 1u : 0u, __ATOMIC_SEQ_CST);
}

/* Whether the journal ends at @end as far as the writers know: nothing is
 * being appended, the newest record written or found ends there, and that
 * segment's tail was scanned this boot.  written_* and `appending` change
 * only under the caller's writer lock, which is held: plain loads, no
 * mutex. */
bool mbj_shm_tail_at(mbj_log *log, const mbj_pos *end)
{
	struct mbj_shm *sh = log->shm;

	return !__atomic_load_n(&sh->appending, __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&sh->written_seq, __ATOMIC_ACQUIRE) == end->seq &&
	       __atomic_load_n(&sh->written_segment, __ATOMIC_ACQUIRE) == end->segment &&
	       __atomic_load_n(&sh->written_offset, __ATOMIC_ACQUIRE) == end->offset &&
	       __atomic_load_n(&sh->clean_segment, __ATOMIC_ACQUIRE) == end->segment;
}

/* A check of the files found nothing past @end: publish it and clear
 * `appending`, writing nothing when both say so already (an open that only
 * reads must not touch the state: its mtime would change). */
void mbj_shm_tail_found(mbj_log *log, const mbj_pos *end)
{
	struct mbj_shm *sh = log->shm;

	if (__atomic_load_n(&sh->written_seq, __ATOMIC_ACQUIRE) < end->seq)
		mbj_shm_publish(log, end);
	if (__atomic_load_n(&sh->appending, __ATOMIC_ACQUIRE))
		mbj_shm_set_appending(log, false);
}

uint64_t mbj_durable_seq(mbj_log *log)
{
	return __atomic_load_n(&log->shm->durable_seq, __ATOMIC_ACQUIRE);
}

uint64_t mbj_sync_count(mbj_log *log)
{
	return __atomic_load_n(&log->shm->syncs, __ATOMIC_RELAXED);
}

static void futex_wait(uint32_t *word, uint32_t seen)
{
	struct timespec ts = { 0, WAIT_NS };
	syscall(SYS_futex, word, FUTEX_WAIT, seen, &ts, NULL, 0);
}

static void futex_wake_all(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* OFD lock on byte 0 of sync.shm: held exactly while leading. */
static int leader_lock(mbj_log *log, short type, int cmd)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
	                    .l_start = 0, .l_len = 1 };
	if (fcntl(log->shmfd, cmd, &fl) < 0)
		return -1;
	return fl.l_type;
}

/* Under the mutex: is the active leader gone? */
static bool leader_dead(mbj_log *log)
{
	struct mbj_shm *sh = log->shm;

	if (sh->leader_pid == getpid())
		return false;
	return leader_lock(log, F_WRLCK, F_OFD_GETLK) == F_UNLCK;
}

/* fdatasync segment @seg through a cached fd (only the leader is here). */
static int sync_segment(mbj_log *log, uint64_t seg)
{
	char name[MBJ_SEG_NAME_LEN + 1];
	int r;

	mbj_seg_name(name, seg);
	pthread_mutex_lock(&log->mu);
	if (log->sfd < 0 || log->sseg != seg) {
		if (log->sfd >= 0)
			close(log->sfd);
		log->sfd = mbj_fd_above_stdio(openat(log->dirfd, name,
		                                     O_RDWR | O_CLOEXEC | O_NOFOLLOW));
		log->sseg = seg;
	}
	if (log->sfd < 0) {
		mbj_set_err(log, "open %s for fdatasync: %s", name, strerror(errno));
		r = MBJ_EIO;
	} else {
		r = mbj_sync_file(log, log->sfd, name);
	}
	pthread_mutex_unlock(&log->mu);
	return r;
}

/* Under the mutex, a waiter whose leader has led too long (STOPPED
 * LEADER): fdatasync the newest segment through a descriptor of our own,
 * then publish.  Returns under the mutex. */
static int sync_alone(mbj_log *log)
{
	struct mbj_shm *sh = log->shm;
	mbj_pos target = { sh->written_segment, sh->written_offset, sh->written_seq };
	char name[MBJ_SEG_NAME_LEN + 1];
	int r = 0;

	shm_unlock(sh);
	if (target.segment) {
		mbj_seg_name(name, target.segment);
		int fd = mbj_fd_above_stdio(openat(log->dirfd, name,
		                                   O_RDWR | O_CLOEXEC | O_NOFOLLOW));
		if (fd < 0) {
			mbj_set_err(log, "open %s for fdatasync: %s", name, strerror(errno));
			r = MBJ_EIO;
		} else {
			r = mbj_sync_file(log, fd, name);
			close(fd);
		}
	}
	shm_lock(sh);
	if (r == MBJ_EFATAL)
		sh->failed = 1;
	else if (r == 0)
		set_durable(sh, &target);
	sh->syncs++;
	__atomic_add_fetch(&sh->wake, 1, __ATOMIC_RELEASE);
	shm_unlock(sh);
	futex_wake_all(&sh->wake);
	shm_lock(sh);
	return r;
}

/* Under the mutex, leading: let the other writers append (GATHERING). */
static void gather(struct mbj_shm *sh)
{
	uint64_t want = sh->last_covered, bound = (uint64_t)sh->last_sync_us * 500, until;

	if (want < 2 || sh->written_seq - sh->durable_seq >= want)
		return;
	until = now_ns() + (bound < GATHER_MAX_NS ? bound : GATHER_MAX_NS);
	while (sh->written_seq - sh->durable_seq < want && now_ns() < until) {
		shm_unlock(sh);
		sched_yield();
		shm_lock(sh);
	}
}

/* Under the mutex, as the new leader: sync for everyone, then step down. */
static int lead(mbj_log *log)
{
	struct mbj_shm *sh = log->shm;
	uint64_t was = sh->durable_seq, took_us;

	sh->leader_active = 1;
	sh->leader_pid = getpid();
	sh->leader_since_ns = now_ns();
	leader_lock(log, F_WRLCK, F_OFD_SETLK);
	gather(sh);
	mbj_pos target = { sh->written_segment, sh->written_offset, sh->written_seq };
	shm_unlock(sh);
	took_us = now_ns();
	int r = target.segment ? sync_segment(log, target.segment) : 0;
	took_us = (now_ns() - took_us) / 1000;
	shm_lock(sh);
	if (r == MBJ_EFATAL)
		sh->failed = 1;
	else if (r == 0)
		set_durable(sh, &target);
	if (r == 0 && target.seq > was && target.segment) {
		sh->last_covered = (uint32_t)(target.seq - was < UINT32_MAX ? target.seq - was
		                                                             : UINT32_MAX);
		sh->last_sync_us = (uint32_t)(took_us < UINT32_MAX ? took_us : UINT32_MAX);
	}
	sh->syncs++;
	sh->leader_active = 0;
	leader_lock(log, F_UNLCK, F_OFD_SETLK);
	__atomic_add_fetch(&sh->wake, 1, __ATOMIC_RELEASE);
	return r;
}

int mbj_sync(mbj_log *log, uint64_t seq)
{
	struct mbj_shm *sh = log->shm;
	int r = 0;

	if (__atomic_load_n(&log->fatal, __ATOMIC_SEQ_CST))
		return MBJ_EFATAL;
	shm_lock(sh);
	for (;;) {
		if (sh->failed) {
			r = MBJ_EFATAL;
			break;
		}
		if (sh->durable_seq >= seq)
			break;
		if (seq > sh->written_seq) {
			mbj_set_err(log, "mbj_sync(%llu): no such record was "
			            "appended", (unsigned long long)seq);
			r = MBJ_EINVAL;
			break;
		}
		if (!sh->leader_active) {
			r = lead(log);
			shm_unlock(sh);
			futex_wake_all(&sh->wake);
			shm_lock(sh);
			if (r < 0)
				break;
			continue;
		}
		if (now_ns() - sh->leader_since_ns > PATIENCE_NS) {
			r = sync_alone(log);
			if (r < 0)
				break;
			continue;
		}
		uint32_t seen = __atomic_load_n(&sh->wake, __ATOMIC_ACQUIRE);
		shm_unlock(sh);
		futex_wait(&sh->wake, seen);
		shm_lock(sh);
		if (sh->leader_active &&
		    __atomic_load_n(&sh->wake, __ATOMIC_ACQUIRE) == seen &&
		    leader_dead(log))
			sh->leader_active = 0;
	}
	shm_unlock(sh);
	if (r == MBJ_EFATAL) {
		__atomic_store_n(&log->fatal, 1, __ATOMIC_SEQ_CST);
		if (!log->err[0] || !strstr(log->err, "fdatasync"))
			mbj_set_err(log, "an fdatasync of the journal failed");
	}
	return r;
}

/* Rewrite [0, size) of @fd onto itself, then fdatasync it. */
static int rewrite_file(mbj_log *log, int fd, const char *name)
{
	uint8_t *buf = malloc(MBJ_WINDOW);
	uint64_t off = 0;
	ssize_t got;
	int r = 0;

	if (!buf)
		return MBJ_ENOMEM;
	while (r == 0 && (got = mbj_pread_full(fd, buf, MBJ_WINDOW, off)) > 0) {
		if (log->io.pwrite(fd, buf, (size_t)got, (off_t)off) != got) {
			mbj_set_err(log, "rewrite of %s: %s", name, strerror(errno));
			r = MBJ_EIO;
		}
		off += (uint64_t)got;
	}
	free(buf);
	if (r == 0 && got < 0)
		r = MBJ_EIO;
	return r ? r : mbj_sync_file(log, fd, name);
}

static int resync_from(mbj_log *log, uint64_t durable)
{
	uint64_t *segs;
	size_t count, i;
	int r = mbj_list_segments(log->dirfd, &segs, &count);

	if (r < 0) {
		mbj_set_err(log, "listing the journal directory: %s",
		            r == MBJ_ENOMEM ? "out of memory" : strerror(errno));
		return r;
	}
	for (i = count; i > 1 && segs[i - 1] > durable + 1; i--)
		;
	for (i = i ? i - 1 : 0; r == 0 && i < count; i++) {
		char name[MBJ_SEG_NAME_LEN + 1];
		mbj_seg_name(name, segs[i]);
		int fd = mbj_fd_above_stdio(openat(log->dirfd, name,
		                                   O_RDWR | O_CLOEXEC | O_NOFOLLOW));
		if (fd < 0) {
			mbj_set_err(log, "open %s: %s", name, strerror(errno));
			r = MBJ_EIO;
			break;
		}
		r = rewrite_file(log, fd, name);
		close(fd);
	}
	free(segs);
	return r ? r : mbj_dir_sync(log);
}

/* mbj_open: clear a failure left by another handle (see FAILURE). */
int mbj_shm_recover(mbj_log *log)
{
	struct mbj_shm *sh = log->shm;

	if (!mbj_shm_failed(log))
		return 0;
	int r = resync_from(log, mbj_durable_seq(log));
	if (r < 0)
		return MBJ_EFATAL;
	shm_lock(sh);
	sh->failed = 0;
	set_durable(sh, &(mbj_pos){ sh->written_segment, sh->written_offset, sh->written_seq });
	shm_unlock(sh);
	return 0;
}
