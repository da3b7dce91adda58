/*
 * group.c - write groups: the writes of many processes in one transaction.
 *
 * A write is prepared (checked and encoded) outside any lock.  Its writer
 * then puts the record in a slot of a queue every process of the bank maps,
 * and waits.  Whoever takes the leader lock leads a pass (write.c): under
 * LMDB's writer lock it takes every queued record, checks each against the
 * state, appends those that pass to the journal with one write, applies them
 * in one transaction, commits once and publishes each writer's result.  The
 * writers then wait for durability themselves (journal/gsync.c: one
 * fdatasync serves the whole group).  Processes add throughput instead of
 * queueing on the writer lock one transaction each.
 *
 * STATE.  store/group.shm, mapped MAP_SHARED (host byte order: it never
 * leaves the machine): a header, then GQ_SLOTS slots of SLOT_BYTES.
 *   leader   a robust, process-shared mutex: held by the leader for its
 *            whole pass (LMDB's writer lock is taken inside it, never the
 *            other way round).  Every journal append of the bank is made by
 *            a leader, which is what makes a dead leader's work decidable.
 *   ticket   the queue order of slots.
 *   boot_id, ready: as sync.shm (gsync.c, REBOOT): a state from another
 *            boot, or never finished, is initialised again under an flock.
 *            So is a state of this boot of another version (a release
 *            before or after this one) when no other process has the
 *            bank's store open (open_parts in bank.c): every process that
 *            maps this file has.  While one has, the open is refused.
 *   claimed  every slot ever owned this boot is below it: scans stop there
 *            instead of touching all GQ_SLOTS (a page each) twice a write.
 *            It sits in what was padding after `ready` (zero), so handles
 *            of the release before, which never raise it, share the
 *            queue: their records are not seen by a scan above `claimed`,
 *            and they lead them themselves after WAIT_NS at most.
 *
 * SLOTS.  A handle owns at most one slot, by an OFD write lock on the
 * slot's first byte (the kernel drops it when the process dies, even
 * killed), and lends it to one of its threads at a time.  A slot's state:
 *   FREE    its owner may fill it;
 *   QUEUED  the record (type, len, payload) is ready and the owner waits;
 *   TAKEN   a leader has it in its group; seq is the record's seq once the
 *           leader decided to append it (0 before, and when it is refused);
 *   DONE    rc, end and msg hold the result; the owner sets FREE again.
 * A waiting owner sleeps on its slot's `wake` futex word.  A leader wakes
 * the owners of the slots it finished, and, when it lets go of the lock,
 * the owner of the oldest queued slot, who leads next: no herd.
 * FREE -> QUEUED and DONE -> FREE are the owner's, QUEUED -> TAKEN -> DONE
 * a leader's, all under the leader lock except the owner's.
 *
 * DEATHS.
 *  - An owner killed while its slot is QUEUED: the next leader applies the
 *    record (it was whole before QUEUED was stored) or it is still queued
 *    when a new owner claims the slot; the claimer then leads a pass first,
 *    so the record is applied or not, never half, and the slot is clean.
 *  - A leader killed: the next holder of the lock gets EOWNERDEAD.  Whatever
 *    the dead leader appended is in the journal and rolled forward by the
 *    next pass (write.c), which then finds the slots it left TAKEN: a slot
 *    whose seq is at or below the journal's end was appended and is done;
 *    any other goes back to the queue and is decided again.  Nobody else
 *    appended in between, because only a leader appends.
 *    A bank on a stream (cluster.c): another machine may own the seq a
 *    dead leader marked, so "seq <= end" proves nothing.  Its slots are
 *    taken again with that seq as `pending` (gq_collect_pending), and the
 *    pass decides each by its tag (this machine's nonce, its ticket) in
 *    the record at that seq once the journal reaches it (write.c).
 *  - A leader stopped (SIGSTOP): like a process stopped while holding
 *    LMDB's writer lock, it stops every writer until it continues or dies;
 *    sleepers wake every WAIT_NS to look.  Readers are not affected.
 *
 * ORDER.  A thread waits for its write's result before its next write, so
 * one process's writes keep their program order; a group is journaled in
 * queue order; the journal stays the one total order that replays to the
 * same store.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bank.h"
#include "group.h"

#define GQ_MAGIC "MBGROUP"
#define GQ_VERSION 2u
#define HEAD_BYTES 4096u
#define SLOT_BYTES 16384u
#define MAP_BYTES ((size_t)HEAD_BYTES + (size_t)GQ_SLOTS * SLOT_BYTES)
#define WAIT_NS (10 * 1000 * 1000)
#define SPIN_NS (50 * 1000)   /* see gq_wait */
/* how long an open waits for the flock on group.shm */
#define STATE_LOCK_NS (30ull * 1000 * 1000 * 1000)

enum { S_FREE = 0, S_QUEUED = 1, S_TAKEN = 2, S_DONE = 3 };

struct gq_head {
	char magic[8];
	uint32_t version, size, slots, slot_bytes;
	char boot_id[48];
	pthread_mutex_t leader;
	uint64_t ticket;
	uint32_t ready;
	uint32_t claimed;           /* see STATE; in former padding */
	uint64_t passes, records;   /* this boot: leader passes, records appended */
	uint64_t by_type[GQ_TYPES]; /* records appended, by record type */
	uint32_t order;             /* see gq_wait */
	uint64_t nonce;             /* see gq_nonce */
};

struct gq_slot {
	uint32_t state;
	uint32_t wake;           /* futex word: bumped to wake the owner */
	uint32_t sleeping;       /* the owner sleeps on wake */
	int32_t rc;
	uint64_t ticket;
	uint64_t seq;
	uint64_t end_segment, end_offset, end_seq;
	uint32_t len;
	uint8_t type;
	char msg[GQ_MSG_BYTES];
	uint8_t payload[];
};

_Static_assert(sizeof(struct gq_head) <= HEAD_BYTES, "the header fits its page");
_Static_assert(offsetof(struct gq_head, claimed) + sizeof(uint32_t) ==
               offsetof(struct gq_head, passes), "claimed is the padding it took");
_Static_assert(offsetof(struct gq_head, claimed) == GQ_CLAIMED_OFFSET, "group.h says so");
_Static_assert(sizeof(struct gq_slot) + GQ_PAYLOAD_BYTES <= SLOT_BYTES, "a slot fits");

struct gq {
	int fd;
	struct gq_head *head;
	uint8_t *map;
	int slot;                /* owned (OFD lock held), or -1 */
	unsigned claim_misses;   /* writes since a claim found every slot owned */
	pthread_mutex_t lend;    /* the owned slot is lent to one thread */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct gq_slot *slot_at(const gq *q, unsigned i)
{
	return (struct gq_slot *)(q->map + HEAD_BYTES + (size_t)i * SLOT_BYTES);
}

/* The slots a scan looks at: those below `claimed` (STATE), and this
 * handle's own in any case. */
static unsigned scan_end(const gq *q)
{
	uint32_t n = __atomic_load_n(&q->head->claimed, __ATOMIC_ACQUIRE);

	if (q->slot >= 0 && n <= (uint32_t)q->slot)
		n = (uint32_t)q->slot + 1;
	return n < GQ_SLOTS ? n : GQ_SLOTS;
}

/* Slot @i is owned: `claimed` rises above it before anything is queued
 * there, so a scan that can see the record sees the slot. */
static void raise_claimed(gq *q, unsigned i)
{
	uint32_t cur = __atomic_load_n(&q->head->claimed, __ATOMIC_ACQUIRE);

	while (cur <= i && !__atomic_compare_exchange_n(&q->head->claimed, &cur, i + 1, false,
	                                                __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE))
		;
}

static void read_boot_id(char out[48])
{
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, out, 47);

	memset(out + (n > 0 ? n : 0), 0, 48 - (size_t)(n > 0 ? n : 0));
	if (n > 0 && out[n - 1] == '\n')
		out[n - 1] = 0;
	if (fd >= 0)
		close(fd);
}

/* Under the flock, with no process of this boot using the state. */
static int init_state(struct gq_head *h, const char boot[48])
{
	pthread_mutexattr_t a;
	int r;

	memset(h, 0, MAP_BYTES);
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	r = pthread_mutex_init(&h->leader, &a);
	pthread_mutexattr_destroy(&a);
	if (r)
		return MB_EIO;
	memcpy(h->magic, GQ_MAGIC, 8);
	h->version = GQ_VERSION;
	h->size = sizeof *h;
	h->slots = GQ_SLOTS;
	h->slot_bytes = SLOT_BYTES;
	memcpy(h->boot_id, boot, 48);
	if (getrandom(&h->nonce, sizeof h->nonce, 0) != (ssize_t)sizeof h->nonce)
		h->nonce = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32);
	h->nonce &= INT64_MAX;
	__atomic_store_n(&h->ready, 1, __ATOMIC_RELEASE);
	return 0;
}

static int lock_file(int fd)
{
	uint64_t start = now_ns();

	while (flock(fd, LOCK_EX | LOCK_NB)) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return mb_errno_code(errno);
		if (now_ns() - start > STATE_LOCK_NS)
			return MB_EIO;
		nanosleep(&(struct timespec){ 0, 2 * 1000 * 1000 }, NULL);
	}
	return 0;
}

/* Under the flock: map, and initialise a new or stale state; one of
 * another version only when @alone (STATE). */
static int map_state(gq *q, const char *path, bool alone)
{
	struct stat st;
	char boot[48];
	void *p;
	int e;

	if (fstat(q->fd, &st))
		return mb_fail(NULL, mb_errno_code(errno), "%s: %s", path, strerror(errno));
	/* blocks, not a hole: the state is written through the map, where a
	 * full disk would be SIGBUS instead of an error */
	e = (size_t)st.st_size < MAP_BYTES ? posix_fallocate(q->fd, 0, MAP_BYTES) : 0;
	if (e == EOPNOTSUPP || e == EINVAL)
		e = ftruncate(q->fd, MAP_BYTES) ? errno : 0;
	if (e)
		return mb_fail(NULL, mb_errno_code(e), "%s: cannot allocate it: %s", path,
		               strerror(e));
	p = mmap(NULL, MAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, q->fd, 0);
	if (p == MAP_FAILED)
		return mb_fail(NULL, mb_errno_code(errno), "%s: mmap: %s", path, strerror(errno));
	q->map = p;
	q->head = p;
	read_boot_id(boot);
	if (q->head->ready && !memcmp(q->head->boot_id, boot, 48)) {
		if (!memcmp(q->head->magic, GQ_MAGIC, 8) && q->head->version == GQ_VERSION &&
		    q->head->size == sizeof *q->head && q->head->slots == GQ_SLOTS &&
		    q->head->slot_bytes == SLOT_BYTES)
			return 0;
		if (!alone)
			return mb_fail(NULL, MB_EVERSION, "%s: a write queue of another version "
			               "(%u) is in use this boot: close the processes of the other "
			               "membank release", path, q->head->version);
	}
	if (init_state(q->head, boot))
		return mb_fail(NULL, MB_EIO, "%s: cannot initialise its lock", path);
	return 0;
}

int gq_open(mb_bank *b, bool alone, gq **out)
{
	char path[4096];
	gq *q;
	int rc;

	*out = NULL;
	if (mb_pathf(path, sizeof path, "%s/group.shm", b->store_dir))
		return mb_fail(b->tag, MB_EINVAL, "%s: path too long", b->store_dir);
	if (!(q = calloc(1, sizeof *q)))
		return mb_fail(b->tag, MB_ENOMEM, "out of memory");
	q->slot = -1;
	pthread_mutex_init(&q->lend, NULL);
	if ((q->fd = mb_open_fd(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	                        b->file_mode)) < 0) {
		rc = mb_fail(b->tag, mb_errno_code(errno), "%s: %s", path, strerror(errno));
		gq_close(q);
		return rc;
	}
	fchmod(q->fd, (mode_t)b->file_mode);  /* fails harmlessly on another user's file */
	if ((rc = lock_file(q->fd))) {
		gq_close(q);
		return mb_fail(b->tag, rc, "%s: another process has held its lock for 30 s",
		               path);
	}
	rc = map_state(q, path, alone);
	flock(q->fd, LOCK_UN);
	if (rc) {
		char why[400];
		snprintf(why, sizeof why, "%s", mb_last_error(NULL));
		gq_close(q);
		return mb_fail(b->tag, rc, "%s", why);
	}
	*out = q;
	return 0;
}

void gq_close(gq *q)
{
	if (!q)
		return;
	if (q->map)
		munmap(q->map, MAP_BYTES);
	if (q->fd >= 0)
		close(q->fd);   /* drops the OFD lock of the owned slot */
	pthread_mutex_destroy(&q->lend);
	free(q);
}

static long futex(uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, word, op, val, ts, NULL, 0);
}

static bool ofd_lock(int fd, unsigned i)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
	                    .l_start = (off_t)HEAD_BYTES + (off_t)i * SLOT_BYTES, .l_len = 1 };

	return fcntl(fd, F_OFD_SETLK, &fl) == 0;
}

/* Own a slot: the first whose lock is free (false: every slot is owned).
 * A slot left QUEUED or TAKEN by a dead owner is settled by a leader's
 * pass first (DEATHS). */
static bool claim(gq *q, void (*settle)(mb_bank *b), mb_bank *b)
{
	for (unsigned i = 0; i < GQ_SLOTS; i++) {
		struct gq_slot *s;
		uint32_t st;

		if (!ofd_lock(q->fd, i))
			continue;
		raise_claimed(q, i);
		s = slot_at(q, i);
		st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		if (st == S_QUEUED || st == S_TAKEN)
			settle(b);
		__atomic_store_n(&s->state, S_FREE, __ATOMIC_RELEASE);
		q->slot = (int)i;
		return true;
	}
	return false;
}

bool gq_slot_acquire(gq *q, void (*settle)(mb_bank *b), mb_bank *b)
{
	if (pthread_mutex_trylock(&q->lend))
		return false;
	if (q->slot < 0) {
		/* every slot owned: try again only now and then (a claim is a
		 * system call per slot) */
		if ((q->claim_misses && ++q->claim_misses % 256) || !claim(q, settle, b)) {
			q->claim_misses += !q->claim_misses;
			pthread_mutex_unlock(&q->lend);
			return false;
		}
		q->claim_misses = 0;
	}
	return true;
}

bool gq_done(const gq *q)
{
	return __atomic_load_n(&slot_at(q, (unsigned)q->slot)->state, __ATOMIC_ACQUIRE) == S_DONE;
}

void gq_abandon(gq *q)
{
	struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET,
	                    .l_start = (off_t)HEAD_BYTES + (off_t)q->slot * SLOT_BYTES,
	                    .l_len = 1 };

	fcntl(q->fd, F_OFD_SETLK, &fl);
	q->slot = -1;
}

void gq_slot_release(gq *q)
{
	pthread_mutex_unlock(&q->lend);
}

int gq_slot_index(const gq *q)
{
	return q->slot;
}

void gq_submit(gq *q, uint8_t type, const void *payload, uint32_t len)
{
	struct gq_slot *s = slot_at(q, (unsigned)q->slot);

	s->type = type;
	s->len = len;
	s->seq = 0;
	memcpy(s->payload, payload, len);
	/* atomic: gq_unlock() reads it without the leader lock, and may read
	 * a slot that has been done and submitted again since its look */
	__atomic_store_n(&s->ticket, __atomic_add_fetch(&q->head->ticket, 1, __ATOMIC_RELAXED),
	                 __ATOMIC_RELAXED);
	__atomic_store_n(&s->state, S_QUEUED, __ATOMIC_RELEASE);
}

void gq_lock(gq *q, bool *recover)
{
	*recover = pthread_mutex_lock(&q->head->leader) == EOWNERDEAD;
	if (*recover)
		pthread_mutex_consistent(&q->head->leader);
}

/* Wake slot @i's owner if it sleeps.  The owner reads `wake` before it
 * looks at the state and the lock, so a bump between its look and its
 * sleep makes the sleep return at once: no wake-up is lost. */
static void wake_owner(gq *q, unsigned i)
{
	struct gq_slot *s = slot_at(q, i);

	__atomic_add_fetch(&s->wake, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&s->sleeping, __ATOMIC_SEQ_CST))
		futex(&s->wake, FUTEX_WAKE, 1, NULL);
}

/* Let go of the leader lock and wake the writer of the oldest queued record
 * (it leads next): only the writers that have something to do wake up. */
void gq_unlock(gq *q)
{
	uint64_t oldest = UINT64_MAX;
	unsigned next = GQ_SLOTS, end;

	pthread_mutex_unlock(&q->head->leader);
	__atomic_fetch_add(&q->head->order, 1, __ATOMIC_SEQ_CST);  /* see gq_wait */
	end = scan_end(q);
	for (unsigned i = 0; i < end; i++) {
		struct gq_slot *s = slot_at(q, i);
		uint64_t ticket;

		/* outside the lock the slot may be taken, done and submitted
		 * again meanwhile: a stale ticket only wakes another writer,
		 * which looks again */
		if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == S_QUEUED &&
		    (ticket = __atomic_load_n(&s->ticket, __ATOMIC_RELAXED)) < oldest) {
			oldest = ticket;
			next = i;
		}
	}
	if (next < GQ_SLOTS)
		wake_owner(q, next);
}

static void read_result(struct gq_slot *s, gq_member *out)
{
	out->rc = s->rc;
	out->end = (mbj_pos){ s->end_segment, s->end_offset, s->end_seq };
	memcpy(out->msg, s->msg, sizeof out->msg);
	out->msg[sizeof out->msg - 1] = '\0';
	__atomic_store_n(&s->state, S_FREE, __ATOMIC_RELEASE);
}

int gq_wait(gq *q, gq_member *out)
{
	struct gq_head *h = q->head;
	struct gq_slot *s = slot_at(q, (unsigned)q->slot);
	struct timespec ts = { 0, WAIT_NS };

	uint64_t spin_until = 0;

	for (;;) {
		uint32_t w = __atomic_load_n(&s->wake, __ATOMIC_SEQ_CST);
		int r;

		if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == S_DONE) {
			read_result(s, out);
			return 1;
		}
		/* our QUEUED before the look at the lock: glibc's trylock of a
		 * held mutex is a plain load, and without this a leader letting
		 * go could miss our queued slot while we miss its unlock (the
		 * store-buffer race), and we would sleep out the timeout.  Two
		 * read-modify-writes of one word order the two sides (a fence
		 * would too, but ThreadSanitizer does not take fences). */
		__atomic_fetch_add(&h->order, 1, __ATOMIC_SEQ_CST);
		r = pthread_mutex_trylock(&h->leader);
		if (r == EOWNERDEAD)
			pthread_mutex_consistent(&h->leader);
		if (r == 0 || r == EOWNERDEAD)
			return 0;
		/* A pass takes tens of microseconds: yield for about one before
		 * sleeping.  A sleep costs the leader a wake-up call and us a
		 * wake-up's latency, more than a short pass itself; yielding
		 * (not spinning) leaves the CPU to the leader when cores are
		 * short. */
		if (!spin_until)
			spin_until = now_ns() + SPIN_NS;
		if (now_ns() < spin_until) {
			sched_yield();
			continue;
		}
		__atomic_store_n(&s->sleeping, 1, __ATOMIC_SEQ_CST);
		/* the timeout is for a leader that died (a robust mutex wakes
		 * nobody): then the lock is free and the next look takes it */
		futex(&s->wake, FUTEX_WAIT, w, &ts);
		__atomic_store_n(&s->sleeping, 0, __ATOMIC_SEQ_CST);
	}
}

size_t gq_collect(gq *q, uint64_t end_seq, bool queued_only, gq_member *m, size_t max)
{
	unsigned end = scan_end(q);
	size_t n = 0;

	for (unsigned i = 0; i < end; i++) {
		struct gq_slot *s = slot_at(q, i);
		uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);

		if (st == S_TAKEN && !queued_only) {   /* a dead leader's (DEATHS) */
			if (s->seq && s->seq <= end_seq) {
				s->rc = 0;
				s->msg[0] = '\0';
				s->end_segment = s->end_offset = 0;
				s->end_seq = s->seq;
				__atomic_store_n(&s->state, S_DONE, __ATOMIC_RELEASE);
				wake_owner(q, i);
				continue;
			}
			st = S_QUEUED;
		}
		if (st != S_QUEUED || n == max || s->len > GQ_PAYLOAD_BYTES)
			continue;
		s->seq = 0;
		__atomic_store_n(&s->state, S_TAKEN, __ATOMIC_RELEASE);
		m[n] = (gq_member){ .slot = (int)i, .ticket = s->ticket, .type = s->type,
		                    .payload = s->payload, .len = s->len };
		/* insertion into queue order */
		for (size_t j = n++; j && m[j - 1].ticket > m[j].ticket; j--) {
			gq_member t = m[j];
			m[j] = m[j - 1];
			m[j - 1] = t;
		}
	}
	return n;
}

size_t gq_collect_pending(gq *q, gq_member *m, size_t max)
{
	unsigned end = scan_end(q);
	size_t n = 0;

	for (unsigned i = 0; i < end; i++) {
		struct gq_slot *s = slot_at(q, i);
		uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		uint64_t pending = 0;

		if (st == S_TAKEN)       /* a dead leader's (DEATHS): seq kept */
			pending = s->seq;
		else if (st != S_QUEUED)
			continue;
		if (n == max || s->len > GQ_PAYLOAD_BYTES)
			continue;
		s->seq = pending;
		__atomic_store_n(&s->state, S_TAKEN, __ATOMIC_RELEASE);
		m[n] = (gq_member){ .slot = (int)i, .ticket = s->ticket, .type = s->type,
		                    .payload = s->payload, .len = s->len, .pending = pending };
		for (size_t j = n++; j && m[j - 1].ticket > m[j].ticket; j--) {
			gq_member t = m[j];
			m[j] = m[j - 1];
			m[j - 1] = t;
		}
	}
	return n;
}

uint64_t gq_nonce(const gq *q)
{
	return q->head->nonce;
}

uint64_t gq_new_ticket(gq *q)
{
	return __atomic_add_fetch(&q->head->ticket, 1, __ATOMIC_RELAXED);
}

void gq_mark(gq *q, const gq_member *m, uint64_t seq)
{
	if (m->slot >= 0)
		slot_at(q, (unsigned)m->slot)->seq = seq;
}

size_t gq_queued(const gq *q)
{
	unsigned end = scan_end(q);
	size_t n = 0;

	for (unsigned i = 0; i < end; i++)
		n += __atomic_load_n(&slot_at(q, i)->state, __ATOMIC_ACQUIRE) == S_QUEUED;
	return n;
}

void gq_count(gq *q, const mbj_entry *e, size_t n)
{
	struct gq_head *h = q->head;

	__atomic_add_fetch(&h->passes, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&h->records, n, __ATOMIC_RELAXED);
	for (size_t i = 0; i < n; i++)
		__atomic_add_fetch(&h->by_type[e[i].type < GQ_TYPES ? e[i].type : 0], 1,
		                   __ATOMIC_RELAXED);
}

void gq_stats(const gq *q, gq_figures *f)
{
	const struct gq_head *h = q->head;

	f->passes = __atomic_load_n(&h->passes, __ATOMIC_RELAXED);
	f->records = __atomic_load_n(&h->records, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < GQ_TYPES; i++)
		f->by_type[i] = __atomic_load_n(&h->by_type[i], __ATOMIC_RELAXED);
}

void gq_finish(gq *q, const gq_member *m)
{
	struct gq_slot *s;

	if (m->slot < 0)
		return;
	s = slot_at(q, (unsigned)m->slot);
	s->rc = m->rc;
	s->end_segment = m->end.segment;
	s->end_offset = m->end.offset;
	s->end_seq = m->end.seq;
	memcpy(s->msg, m->msg, sizeof s->msg);
	__atomic_store_n(&s->state, S_DONE, __ATOMIC_RELEASE);
	wake_owner(q, (unsigned)m->slot);
}
