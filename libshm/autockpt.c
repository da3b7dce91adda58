/*
 * autockpt.c - the automatic checkpoint: the four files stay current, and
 * the journal bounded, without a compactor (README "Automatic checkpoints").
 *
 * WHEN.  After a write is acknowledged (durable, in `full`), its writer
 * checks whether a checkpoint is due:
 *   - the bank has none yet (its four files appear at the first write), or
 *   - the journal since the newest checkpoint has grown past
 *     max(checkpoint_min_bytes, checkpoint_pct % of the checkpoint's four
 *     files): with a proportional threshold R the cost of checkpoints per
 *     journal byte is constant (a snapshot's cost per byte / R), or
 *   - changes are pending and checkpoint_interval_s has passed since it.
 * The journal bytes since the checkpoint come from what the write already
 * has, its end position, against the checkpoint's position cached per
 * handle: no system call on most writes.  The cache is refreshed (a stat of
 * checkpoint.json, and when it changed a read of it and a stat of the four
 * files) at most once a second, and under the lock when a checkpoint looks
 * due.  After a failed checkpoint the handle waits AUTO_RETRY_S seconds.
 * Across segments the bytes are estimated (records since the checkpoint x
 * the current segment's mean record size).
 *
 * WHO.  The writer that finds it due, after its write returned from the
 * writer lock and its sync: the write's result does not depend on it.  It
 * tries the compactor lock without waiting; when another process (or
 * thread) holds it, that one is checkpointing and this writer goes on, and
 * its handle does not look again for AUTO_BUSY_MS.
 * Holding it, it looks again (another process may have just finished one).
 * One thread per handle checks at a time (a trylock on the handle's mutex:
 * the others go on).  A failed checkpoint is counted and its message kept
 * for mb_stats; the write still succeeds.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bank.h"
#include "checkpoint.h"
#include "lockfile.h"

#define AUTO_MIN_BYTES ((uint64_t)4 << 20)
#define AUTO_PCT 100
#define AUTO_INTERVAL_S 300
#define AUTO_RETRY_S 10      /* after a failed checkpoint */
#define AUTO_BUSY_MS 100     /* after finding the compactor lock held */

static const char *const doc_files[4] = {
	"notion_pages.json", "sync_status.json", "error_log.json", "config_cache.json"
};

typedef struct autockpt {
	pthread_mutex_t mu;
	int64_t next_look;   /* CLOCK_MONOTONIC_COARSE ms of the next stat */
	int64_t hold_until;  /* no attempt before (same clock): after a failure,
	                      * or while another holds the compactor lock */
	bool known;          /* the fields below describe checkpoint.json */
	ino_t ino;           /* of checkpoint.json: a new checkpoint links a new file */
	dev_t dev;
	int64_t written;     /* its mtime, wall-clock seconds */
	mbj_pos pos;         /* the position it covers ({0}: none) */
	uint64_t bytes;      /* the four files' size */
	uint64_t runs, failures, busy;  /* busy: due, left to another holder */
	char last_error[256];
} autockpt;

int bank_auto_init(mb_bank *b)
{
	if (!(b->auto_ck = calloc(1, sizeof *b->auto_ck)))
		return mb_fail(NULL, MB_ENOMEM, "out of memory");
	pthread_mutex_init(&b->auto_ck->mu, NULL);
	return 0;
}

void bank_auto_free(mb_bank *b)
{
	if (!b->auto_ck)
		return;
	/* a child after fork() may hold a copy locked by a thread it lacks */
	if (b->fork_gen == mb_fork_generation())
		pthread_mutex_destroy(&b->auto_ck->mu);
	free(b->auto_ck);
	b->auto_ck = NULL;
}

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);  /* the coarse clocks are read in the vDSO */
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Re-read what the newest checkpoint is.  Its absence is a bank without
 * one (pos {0}, due at once). */
static void refresh(mb_bank *b, autockpt *a)
{
	char path[4096];
	struct stat st;

	a->next_look = clock_ms(CLOCK_MONOTONIC_COARSE) + 1000;
	mb_pathf(path, sizeof path, "%s/%s", b->path, MB_CHECKPOINT_FILE);
	if (stat(path, &st)) {
		memset(&a->pos, 0, sizeof a->pos);
		a->known = false;
		return;
	}
	if (a->known && st.st_ino == a->ino && st.st_dev == a->dev)
		return;
	a->ino = st.st_ino;
	a->dev = st.st_dev;
	a->written = (int64_t)st.st_mtime;
	a->known = !checkpoint_position(b, b->path, &a->pos);
	a->bytes = 0;
	for (int i = 0; i < 4; i++)
		if (!mb_pathf(path, sizeof path, "%s/%s", b->path, doc_files[i]) && !stat(path, &st))
			a->bytes += (uint64_t)st.st_size;
	mb_clear_error(b);
}

/* Exact within one segment; across segments, the records since the
 * checkpoint times the mean record size of the current segment (whose
 * name is its first seq), for segments' sizes are not at hand. */
static uint64_t journal_since(const autockpt *a, const mbj_pos *end)
{
	uint64_t in_seg;

	if (a->pos.segment && end->segment == a->pos.segment)
		return end->offset > a->pos.offset ? end->offset - a->pos.offset : 0;
	in_seg = end->seq >= end->segment && end->segment ? end->seq - end->segment + 1 : 1;
	return end->offset / in_seg * (end->seq - a->pos.seq);
}

static bool due(const mb_bank *b, const autockpt *a, const mbj_pos *end)
{
	uint64_t pct = b->opts.checkpoint_pct ? b->opts.checkpoint_pct : AUTO_PCT;
	uint64_t min = b->opts.checkpoint_min_bytes ? b->opts.checkpoint_min_bytes : AUTO_MIN_BYTES;
	uint64_t limit = a->bytes / 100 * pct > min ? a->bytes / 100 * pct : min;
	int64_t every = b->opts.checkpoint_interval_s ? b->opts.checkpoint_interval_s
	                                              : AUTO_INTERVAL_S;

	if (end->seq <= a->pos.seq)
		return false;
	if (!a->known)
		return true;
	return journal_since(a, end) >= limit ||
	       clock_ms(CLOCK_REALTIME_COARSE) / 1000 - a->written >= every;
}

/* Holding the compactor lock: checkpoint unless one was just made. */
static void run(mb_bank *b, autockpt *a, const mbj_pos *end)
{
	mb_snapshot_info info;
	lockfile lock;
	int rc;

	/* tests: a signal at the start of a checkpoint, deterministically */
	if (getenv("MEMBANK_TEST_CHECKPOINT_SIGNAL"))
		raise(SIGTERM);
	rc = lockfile_try(&lock, LOCK_COMPACTOR, b->path, "compactor.lock", b->file_mode, b);

	if (rc == 1) {
		/* another process or thread is checkpointing: without a pause,
		 * every write would try its lock (4 system calls) until the new
		 * checkpoint shows */
		a->busy++;
		a->hold_until = clock_ms(CLOCK_MONOTONIC_COARSE) + AUTO_BUSY_MS;
		return;
	}
	if (!rc) {
		a->known = false;  /* look again, now that nobody else can write one */
		refresh(b, a);
		if (due(b, a, end)) {
			a->runs++;
			rc = checkpoint_locked(b, &info);
		}
		lockfile_release(&lock);
	}
	if (rc) {
		a->hold_until = clock_ms(CLOCK_MONOTONIC_COARSE) + AUTO_RETRY_S * 1000;
		a->failures++;
		snprintf(a->last_error, sizeof a->last_error, "%s",
		         *mb_last_error(b) ? mb_last_error(b) : mb_strerror(rc));
	}
	a->known = false;
	refresh(b, a);
}

void bank_auto_checkpoint(mb_bank *b, const mbj_pos *end)
{
	autockpt *a = b->auto_ck;

	int64_t now;

	if (b->opts.no_auto_checkpoint || !a || pthread_mutex_trylock(&a->mu))
		return;
	now = clock_ms(CLOCK_MONOTONIC_COARSE);
	if (now >= a->next_look)
		refresh(b, a);
	/* a due look from a stale cache (another process checkpointed within
	 * the second) costs a lock attempt and a stat */
	if (now >= a->hold_until && due(b, a, end))
		run(b, a, end);
	pthread_mutex_unlock(&a->mu);
}

void bank_auto_stats(mb_bank *b, mb_buf *doc)
{
	autockpt *a = b->auto_ck;

	pthread_mutex_lock(&a->mu);
	buf_adds(doc, "{\"enabled\":");
	buf_adds(doc, b->opts.no_auto_checkpoint ? "false" : "true");
	buf_adds(doc, ",\"runs\":");
	json_add_int(doc, (int64_t)a->runs);
	buf_adds(doc, ",\"busy\":");
	json_add_int(doc, (int64_t)a->busy);
	buf_adds(doc, ",\"failures\":");
	json_add_int(doc, (int64_t)a->failures);
	buf_adds(doc, ",\"last_error\":");
	if (a->failures)
		json_add_str(doc, a->last_error, strlen(a->last_error));
	else
		buf_adds(doc, "null");
	buf_addc(doc, '}');
	pthread_mutex_unlock(&a->mu);
}

int mb_checkpoint_if_due(mb_bank *b)
{
	mbj_pos end;
	kv_txn *t;
	int rc;

	if ((rc = bank_check(b)) || (rc = bank_read_begin(b, &t)))
		return rc;
	rc = bank_jend_load(t, &end);
	kv_abort(t);
	if (rc)
		return mb_fail(b, rc, "checkpoint: cannot read the journal's end: %s", mb_strerror(rc));
	bank_auto_checkpoint(b, &end);
	return 0;
}
