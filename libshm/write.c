/*
 * write.c - the write path, and every mutation of the API.
 *
 * One write, under LMDB's writer lock (shared by every process):
 *   1. load the committed journal end from the store;
 *   2. roll forward whole records past it (a writer died between its append
 *      and its commit) and cut a torn tail: nobody has to remember a
 *      recovery step, the next writer does it;
 *   3. append the record (seq = end + 1, time taken now, under the lock);
 *   4. apply it and store the new end in the same transaction; commit
 *      without a sync (LMDB is a cache).
 * Then, outside the lock, in full durability: wait until the journal is
 * durable up to the record (group commit: one fdatasync serves everyone
 * whose record it covers).
 *
 * A full map aborts the transaction; after growing it the write runs again.
 * If the record was already appended, step 2 applies it, so it is applied
 * exactly once and never appended twice.
 *
 * A bank on a stream (cluster.c): step 3 publishes the pass's record to the
 * stream, expecting it to end at the store's end, before the local append
 * (see publish_stream()); the stream's acknowledgement is the durability.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "bank.h"
#include "cluster.h"
#include "config.h"
#include "group.h"
#include "stream.h"

int bank_check(mb_bank *b)
{
	if (!b)
		return mb_fail(NULL, MB_EINVAL, "the bank handle is NULL");
	if (b->fork_gen != mb_fork_generation())
		return mb_fail(b, MB_EFORKED, "this handle was opened by process %ld and is used "
		               "in process %ld after fork(); open the bank again in the child",
		               (long)b->pid, (long)getpid());
	if (b->replaced && __atomic_load_n(b->replaced, __ATOMIC_ACQUIRE) == MB_OPEN_LOCK_REPLACED)
		return mb_fail(b, MB_ERESTORED, "%s: the bank was restored (replaced by another) "
		               "since this handle opened it; close it and open the bank again",
		               b->path);
	if (atomic_load(&b->fatal))
		return mb_fail(b, MB_EFATAL, "a journal sync failed earlier on this handle: "
		               "nothing after it is known to be durable; close and reopen the bank");
	return 0;
}

int bank_journal_code(int jrc)
{
	static const int codes[] = { 0, MB_EIO, MB_ECORRUPT, MB_EVERSION, MB_ENOMEM,
	                             MB_EINVAL, MB_ENOSPC, MB_EFATAL };

	if (jrc >= 0)
		return 0;
	return -jrc < (int)(sizeof codes / sizeof codes[0]) ? codes[-jrc] : MB_EIO;
}

int bank_journal_fail(mb_bank *b, int jrc, const char *what)
{
	int code = bank_journal_code(jrc);
	const char *msg = b->jn ? mbj_errmsg(b->jn) : mbj_open_errmsg();

	if (code == MB_EFATAL)
		atomic_store(&b->fatal, true);
	/* an I/O error's message is the system's cause ("open ...: Too many
	 * open files"): "input/output error" before it would mislead */
	if (code == MB_EIO && *msg)
		return mb_fail(b->tag, code, "%s: %s", what, msg);
	return mb_fail(b->tag, code, "%s: %s%s%s", what, mb_strerror(code), *msg ? ": " : "", msg);
}

static int apply_journaled(mb_bank *b, kv_txn *t, const mbj_record *rec)
{
	mb_rec r;
	int rc = rec_decode(rec->type, rec->ts_us, rec->payload, rec->len, &r);

	if (rc)
		return mb_fail(b->tag, MB_ECORRUPT, "journal record %llu (type %u) has a payload "
		               "that is not of its type's shape", (unsigned long long)rec->seq, rec->type);
	rc = apply_record(t, b->history_limit, &r);
	if (rc && rc != KV_EMAPFULL)
		mb_fail(b->tag, rc, "applying journal record %llu: %s",
		        (unsigned long long)rec->seq, mb_strerror(rc));
	return rc;
}

int bank_roll_forward(mb_bank *b, kv_txn *t, mbj_pos *end)
{
	mbj_record rec;
	int rc;

	while ((rc = mbj_next_at(b->jn, end, &rec)) == 1) {
		if ((rc = apply_journaled(b, t, &rec)))
			return rc;
		*end = rec.end;
	}
	return rc ? bank_journal_fail(b, rc, "journal") : 0;
}

/* The record's time: now, but always after the newest record applied, so
 * that record times strictly increase along the journal whatever the wall
 * clock does (a clock stepped back must not make a new page the "oldest"
 * that eviction drops first, nor expire it at once). */
static int record_time(kv_txn *t, int64_t *ts)
{
	int64_t last;
	int rc = st_clock_load(t, &last);

	*ts = mb_now_us();
	if (!rc && last != MB_NEVER && *ts <= last)
		*ts = last + 1;
	return rc;
}

/* A delete of a page that has expired fails as a delete of a missing page
 * would: every operation sees the same set of pages. */
static int delete_finds_page(mb_bank *b, kv_txn *t, const mb_rec *r)
{
	kv_val v;
	int rc = apply_live_page(t, r->a, r->alen, mb_now_us(), &v);

	if (rc == MB_ENOTFOUND)
		return mb_fail(b->tag, rc, "page \"%.*s\": not found",
		               (int)(r->alen > 64 ? 64 : r->alen), r->a);
	return rc ? mb_fail(b->tag, rc, "page lookup: %s", mb_strerror(rc)) : 0;
}

/* Under the writer lock, before a record is applied: whether the state lets
 * it do what its call means (a delete finds its page live; a merge keeps the
 * page within MB_MAX_PAGE_PACKED; a batch, each of its operations at its
 * point).  The answer comes from the record alone, so that a leader can
 * decide the records of other processes.  MB_ENOTFOUND or MB_EINVAL refuse
 * the record alone; another code fails the whole pass. */
static int precheck(mb_bank *b, kv_txn *t, const gq_member *m, const mb_rec *r)
{
	merge_ck ck = { b, r->a, r->alen, r->map, r->maplen };

	if (m->type == REC_PAGE_DELETE)
		return delete_finds_page(b, t, r);
	if (m->type == REC_BATCH)
		return bank_batch_precheck(b, t, m->payload, m->len);
	if (m->type == REC_PAGE_MERGE)
		return bank_merge_fits(t, &ck);
	return 0;
}

/* ------------------------------------------------------ a leader's pass
 *
 * Under the leader lock (group.c): take the queued records, and @own (the
 * leader's record that skipped the queue, may be NULL); under LMDB's writer
 * lock roll the journal forward, check and apply each in queue order, append
 * those that pass with one write, commit once.  Applying before appending
 * means a record the store cannot take is never journaled; a full map
 * aborts the transaction, the map grows and the pass runs again (once the
 * records are appended, the roll forward applies them: exactly once).  A
 * commit that fails after the append withdraws the records (retype to
 * REC_CANCELLED, see withdraw) unless another writer applied them since. */

/* Tests: MEMBANK_TEST_GROUP_DIE=mark|publish|append kills the leader there
 * (after it marked its members' seqs; in a bank on a stream, after the
 * stream acknowledged the pass's record and before the local append; after
 * it appended them), to prove that the next leader finishes the group
 * (group.c, DEATHS).  @at: the variable, read once per pass (lead): a
 * getenv() scans the whole environment, twice a write. */
static void test_die(const char *at, const char *where)
{
	const char *fd;

	if (!at || strcmp(at, where))
		return;
	fd = getenv("MEMBANK_TEST_GROUP_PAUSE_FD");
	/* MEMBANK_TEST_GROUP_PAUSE_FD=N: say so on descriptor N and wait for
	 * the test's SIGKILL instead (it acts in between) */
	if (fd && write(atoi(fd), "p", 1) == 1)
		for (;;)
			pause();
	raise(SIGKILL);
}

/* Tests: MEMBANK_TEST_SLOW_PUBLISH_MS=N waits N ms before each publish to
 * a stream, as a machine slow to write does (cluster.c, TURNS).  @ms: the
 * variable, read once per pass (lead), like test_die's. */
static void test_slow_publish(const char *ms)
{
	if (ms)
		usleep((useconds_t)atoi(ms) * 1000);
}

/* A pass that waits for another machine's turn looks again this often. */
#define TURN_PAUSE_US 2000

/* What differs between a pass on the local journal and one on a stream
 * (cluster.c; the local journal its copy): local_ops or stream_ops, chosen
 * once (lead).  take: the queued records as members (see collect);
 * publish: journal the @k > 0 records applied (p->e), their ends in
 * p->ends; seqs: the seqs a member's record takes (0: one for the pass). */
typedef struct pass_ops {
	size_t (*take)(mb_bank *b, gq_member *m, const gq_member *own, const mbj_pos *end);
	int (*publish)(mb_bank *b, struct pass *p, const mbj_pos *end, size_t k);
	size_t seqs;
} pass_ops;

typedef struct pass {
	const pass_ops *ops;
	gq_member m[GQ_MAX_MEMBERS];
	size_t n;
	mbj_entry e[GQ_MAX_MEMBERS];
	mbj_pos ends[GQ_MAX_MEMBERS];
	uint32_t who[GQ_MAX_MEMBERS];   /* e[j] is the record of m[who[j]] */
	size_t k;                        /* records appended (0: none yet) */
	const gq_member *mine;           /* the record the leading thread put in
	                                    this handle's slot, or NULL (lead) */
	bool collected;
	const char *die_at;              /* MEMBANK_TEST_GROUP_DIE (test_die) */
	const char *slow_ms;             /* MEMBANK_TEST_SLOW_PUBLISH_MS */
	/* a bank on a stream (cluster.c) */
	mb_buf grp;                      /* the REC_GROUP being published */
	bool catch_up;                   /* catch up before the next run */
	bool published;                  /* the stream holds the pass's record */
	bool timed_out;                  /* a publish's outcome is not known */
	bool fresh;                      /* the state is the journal's latest */
	int64_t pub_ts;                  /* the time of the record published */
	uint64_t deadline;               /* CLOCK_MONOTONIC ms: no publish after */
	unsigned lost;                   /* races lost in a row (TURN_AFTER) ... */
	uint64_t lost_since;             /* ... since then (TURN_AFTER_MS) */
	uint64_t wait_until;             /* not 0: waiting for another's turn until */
	int rc;                          /* the pass's outcome, and why */
	char why[GQ_MSG_BYTES];
} pass;

/* A refusal of one record: it alone fails, with its message. */
static bool refusal(int rc)
{
	return rc == MB_ENOTFOUND || rc == MB_EINVAL;
}

static void member_failed(mb_bank *b, gq_member *m, int rc)
{
	m->rc = rc;
	snprintf(m->msg, sizeof m->msg, "%s", mb_last_error(b) ? mb_last_error(b) : "");
	if (!m->msg[0])
		snprintf(m->msg, sizeof m->msg, "write: %s", mb_strerror(rc));
	mb_clear_error(b->tag);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Whether the record at seq @m->pending holds member @m: a group with its
 * tag (this machine's nonce, its ticket), or, for the leader's own record
 * published as itself, the same record (type, time and payload). */
static int holds_member(mb_bank *b, const pass *p, const gq_member *m, bool *found)
{
	uint8_t type = 0, *payload;
	int64_t ts = 0;
	uint32_t len = 0;
	int rc = cluster_local_record(b, m->pending, &type, &ts, &payload, &len);

	*found = false;
	if (rc < 0)
		return rc;
	if (!rc)
		return mb_fail(b->tag, MB_ECORRUPT, "journal: seq %llu is missing",
		               (unsigned long long)m->pending);
	if (type == REC_GROUP) {
		mp_reader r = { payload, payload + len, false };
		const uint8_t *raw;
		int64_t nonce, ticket;
		size_t rawlen;
		uint32_t n = 0;
		mb_rec op;

		if (!mp_read_array(&r, &n))
			for (uint32_t i = 0; i < n && !*found; i++)
				if (!rec_group_next(&r, &op, &raw, &rawlen, &nonce, &ticket))
					*found = (uint64_t)nonce == gq_nonce(b->gq) &&
					         (uint64_t)ticket == m->ticket;
	} else if (m->slot < 0) {
		*found = type == m->type && ts == p->pub_ts && len == m->len &&
		         !memcmp(payload, m->payload, len);
	}
	free(payload);
	return 0;
}

/* A member whose publish's outcome was unknown, once the journal reaches
 * its seq: decided for good (the stream holds one record at that seq). */
static int decide_pending(mb_bank *b, pass *p, gq_member *m, const mbj_pos *end)
{
	bool found;
	int rc;

	if (!m->pending || m->pending > end->seq)
		return 0;
	if ((rc = holds_member(b, p, m, &found)))
		return rc;
	if (found) {
		m->landed = true;
		m->end = (mbj_pos){ 0, 0, m->pending };
	}
	m->pending = 0;
	return 0;
}

/* The local journal: the pass's records with one write, a seq each. */
static int publish_local(mb_bank *b, pass *p, const mbj_pos *end, size_t k)
{
	int rc;

	test_die(p->die_at, "mark");
	rc = mbj_append_many(b->jn, end, p->e, k, p->ends);
	return rc ? bank_journal_fail(b, rc, "journal append") : 0;
}

/* A bank on a stream: publish the pass's @k records as one message (one
 * record as itself when it is the leader's own: no slot to recover), then
 * append the same record to the local journal.  CLUSTER_RETRY when the
 * stream moved on or the outcome is unknown (timeout): the pass runs again
 * after a catch-up, deciding each member again. */
static int publish_stream(mb_bank *b, pass *p, const mbj_pos *end, size_t k)
{
	mbj_entry g = p->e[0];
	bool timed_out;
	uint64_t seq;
	int rc, jrc;

	if (k > 1 || p->m[p->who[0]].slot >= 0) {
		p->grp.len = 0;
		p->grp.failed = false;
		rec_group_header(&p->grp, (uint32_t)k);
		for (size_t j = 0; j < k; j++)
			rec_group_member(&p->grp, p->e[j].type, p->e[j].ts_us, p->e[j].payload,
			                 p->e[j].len, (int64_t)gq_nonce(b->gq),
			                 (int64_t)p->m[p->who[j]].ticket);
		if (p->grp.failed)
			return mb_fail(b->tag, MB_ENOMEM, "out of memory");
		if (p->grp.len > MBS_MAX_PAYLOAD)
			return mb_fail(b->tag, MB_EINVAL, "write group: %zu bytes, above the record "
			               "limit", p->grp.len);
		g = (mbj_entry){ REC_GROUP, p->e[k - 1].ts_us, p->grp.data, (uint32_t)p->grp.len };
	}
	p->timed_out = false;
	for (size_t j = 0; j < k; j++)
		p->timed_out |= p->m[p->who[j]].pending != 0;
	if (mono_ms() > p->deadline)
		return mb_fail(b->tag, MB_EUNAVAIL, "write: the journal's cluster did not take it "
		               "within %u ms", cluster_timeout_ms(b));
	test_die(p->die_at, "mark");
	test_slow_publish(p->slow_ms);
	p->pub_ts = g.ts_us;
	rc = cluster_publish(b, end, g.type, g.ts_us, g.payload, g.len, &seq, &timed_out);
	if (rc == CLUSTER_RETRY && !timed_out && !p->lost++)
		p->lost_since = mono_ms();
	if (rc == CLUSTER_RETRY && !timed_out && p->lost >= TURN_AFTER &&
	    mono_ms() - p->lost_since >= TURN_AFTER_MS) {
		cluster_ask_turn(b);
		p->lost = 0;
	}
	if (rc == CLUSTER_RETRY || (rc && timed_out)) {
		if (timed_out) {
			p->timed_out = true;
			for (size_t j = 0; j < k; j++)
				p->m[p->who[j]].pending = end->seq + 1;
			/* decided by the catch-up of the next run, if the cluster
			 * answers again in time */
			p->deadline = mono_ms() + cluster_timeout_ms(b) / 2;
		}
		p->catch_up = true;
		return CLUSTER_RETRY;
	}
	if (rc)
		return rc;
	p->published = true;
	p->timed_out = false;
	test_die(p->die_at, "publish");
	for (size_t j = 0; j < k; j++)
		p->m[p->who[j]].end = (mbj_pos){ 0, 0, seq };
	if ((jrc = mbj_append(b->jn, end, g.type, g.ts_us, g.payload, g.len, &p->ends[0])))
		return bank_journal_fail(b, jrc, "journal append");
	for (size_t j = 1; j < k; j++)
		p->ends[j] = p->ends[0];
	return 0;
}

/* The store could not take a write: a full map is grown and the pass run
 * again (lead), anything else fails the pass. */
static int apply_failed(mb_bank *b, int rc)
{
	if (rc != KV_EMAPFULL)
		mb_fail(b->tag, rc, "applying a write: %s", mb_strerror(rc));
	return rc;
}

/* Check and apply the members in order; the ones that pass become the
 * records to append. */
static int apply_members(mb_bank *b, kv_txn *t, pass *p, const mbj_pos *end)
{
	apply_ctx ax;
	size_t k = 0;
	int rc;

	apply_begin(&ax);
	for (size_t i = 0; i < p->n; i++) {
		gq_member *m = &p->m[i];
		int64_t ts;
		mb_rec r;

		m->rc = 0;
		m->msg[0] = '\0';
		if (!m->landed && (rc = decide_pending(b, p, m, end)))
			return rc;
		if (m->landed)
			continue;
		/* a record that is not of its type's shape (its writer's memory
		 * or the queue damaged) is refused alone: it must not stop the
		 * group, nor ever reach the journal.  Checked once, here; the
		 * leader's own record only for its shape (gq_member.own). */
		if ((m->own ? rec_decode_own : rec_decode)(m->type, 0, m->payload, m->len, &r) ||
		    m->type == REC_CANCELLED) {
			rc = mb_fail(b->tag, MB_EINVAL, "write: a record of type %u is not of its type's "
			             "shape", m->type);
			member_failed(b, m, rc);
			continue;
		}
		if ((rc = precheck(b, t, m, &r))) {
			if (!refusal(rc))
				return rc;
			member_failed(b, m, rc);
			continue;
		}
		if ((rc = record_time(t, &ts)))
			return mb_fail(b->tag, rc, "reading the store's clock: %s", mb_strerror(rc));
		r.ts = ts;   /* the time a decode stores, and a batch's operations take */
		if ((rc = apply_one(t, b->history_limit, &r, &ax)))
			return apply_failed(b, rc);
		p->e[k] = (mbj_entry){ m->type, ts, m->payload, m->len };
		p->who[k] = (uint32_t)i;
		/* before the append (group.c, DEATHS) */
		gq_mark(b->gq, m, end->seq + 1 + k * p->ops->seqs);
		k++;
	}
	/* A refusal from a state behind the journal's (on a stream: another
	 * machine may have made the delete's page, or taken the room of the
	 * merge) is checked again after a catch-up. */
	for (size_t i = 0; i < p->n && !p->fresh; i++)
		if (!p->m[i].landed && refusal(p->m[i].rc)) {
			p->catch_up = true;
			return CLUSTER_RETRY;
		}
	if (!k)
		return 0;
	if ((rc = apply_end(t, &ax)))
		return apply_failed(b, rc);
	if ((rc = p->ops->publish(b, p, end, k)))  /* the pass's one journal step */
		return rc;
	test_die(p->die_at, "append");
	p->k = k;
	gq_count(b->gq, p->e, k);
	for (size_t j = 0; j < k; j++)
		p->m[p->who[j]].end = p->ends[j];
	return 0;
}

static size_t take_local(mb_bank *b, gq_member *m, const gq_member *own, const mbj_pos *end)
{
	(void)own;
	return gq_collect(b->gq, end ? end->seq : 0, !end, m, GQ_MAX_MEMBERS - 1);
}

/* The group is one record: a large record of the leader's own goes alone,
 * so that the group fits the record limit.  A dead leader's slots are
 * decided by their tag (group.c, DEATHS). */
static size_t take_stream(mb_bank *b, gq_member *m, const gq_member *own, const mbj_pos *end)
{
	size_t max = own && own->len > MBS_MAX_PAYLOAD - (4u << 20) ? 0 : GQ_MAX_MEMBERS - 1;

	return end ? gq_collect_pending(b->gq, m, max) : gq_collect(b->gq, 0, true, m, max);
}

static const pass_ops local_ops = { take_local, publish_local, 1 };
static const pass_ops stream_ops = { take_stream, publish_stream, 0 };

/* Take the queued records, and @own, as the pass's members.  @end NULL: the
 * journal's end is not known (the pass failed before it could roll
 * forward), so a dead leader's slots are left for a later pass. */
static void collect(mb_bank *b, pass *p, const gq_member *own, const mbj_pos *end)
{
	p->n = p->ops->take(b, p->m, own, end);
	/* The leading thread's own record is read from where it was encoded
	 * (see gq_member.own), not from its copy in the shared slot. */
	for (size_t i = 0; p->mine && i < p->n; i++)
		if (p->m[i].slot == gq_slot_index(b->gq) && p->m[i].type == p->mine->type &&
		    p->m[i].len == p->mine->len) {
			p->m[i].payload = p->mine->payload;
			p->m[i].own = true;
		}
	if (own) {
		p->m[p->n] = *own;
		p->m[p->n++].ticket = gq_new_ticket(b->gq);  /* its tag in a group */
	}
	p->collected = true;
}

static int pass_once(mb_bank *b, pass *p, const gq_member *own)
{
	bool yield = false;
	mbj_pos end;
	kv_txn *t;
	int rc = kv_begin(b->kv, true, &t);

	if (rc)
		return mb_fail(b->tag, rc, "cannot begin a write: %s", mb_strerror(rc));
	if ((rc = bank_check(b)))  /* again under the writer lock */
		return kv_end(t, rc);
	if (!(rc = bank_jend_load(t, &end)) && !(rc = bank_roll_forward(b, t, &end)) &&
	    !p->k && p->catch_up && !(rc = cluster_catch_up(b, t, &end))) {
		p->catch_up = false;
		p->fresh = true;
	}
	if (!rc && !p->k)
		rc = cluster_writable(b);
	/* another machine's turn: what was caught up is committed, then the
	 * pass runs again (lead) */
	if (!rc && !p->k && b->cl && cluster_turn_taken(b, t, end.seq, !p->wait_until)) {
		if (!p->wait_until)
			p->wait_until = mono_ms() + TURN_HOLD_MS;
		yield = mono_ms() < p->wait_until && mono_ms() < p->deadline;
	}
	if (!rc && !yield && !p->collected)
		collect(b, p, own, &end);
	if (!rc && !yield && !p->k)
		rc = apply_members(b, t, p, &end);
	if (!rc && p->k)
		end = p->ends[p->k - 1].seq > end.seq ? p->ends[p->k - 1] : end;
	if (!rc)
		rc = bank_jend_store(t, &end);
	rc = kv_end(t, rc);
	return !rc && yield ? CLUSTER_YIELD : rc;
}

/* The records reached the journal but the store could not take them (a
 * full disk at commit, an I/O error): unless another writer has applied
 * them since, they are turned into records that apply as nothing, so the
 * failed calls change nothing.  1: they were applied after all. */
static int withdraw(mb_bank *b, const pass *p)
{
	mbj_pos end;
	kv_txn *t;
	int rc = kv_begin(b->kv, true, &t);

	if (rc)
		return rc;
	if (!(rc = bank_jend_load(t, &end))) {
		/* records between the store's end and ours are earlier failed
		 * writes, withdrawn already (a failed commit left the end before
		 * them): ours go the same way */
		if (end.seq >= p->ends[p->k - 1].seq)
			rc = 1;
		else if (end.seq >= p->ends[0].seq)
			rc = MB_ECORRUPT;  /* part of one transaction applied: cannot be */
		else
			for (size_t j = p->k; j-- > 0 && !rc;)
				rc = bank_journal_code(mbj_retype(b->jn, &p->ends[j], p->e[j].len,
				                                  REC_CANCELLED));
	}
	kv_abort(t);
	return rc;
}

static int pass_failed(mb_bank *b, pass *p, int rc)
{
	char why[400];
	int wrc;

	if (!*mb_last_error(b))
		mb_fail(b->tag, rc, "write: %s", mb_strerror(rc));
	/* on a stream, acknowledged is done: this machine's copy catches up */
	if (p->published)
		return 0;
	if (p->timed_out)
		return mb_fail(b->tag, rc, "%s; this write's outcome is unknown: it may still "
		               "take effect", mb_last_error(b));
	if (!p->k)
		return rc;
	snprintf(why, sizeof why, "%s", mb_last_error(b));
	if ((wrc = withdraw(b, p)) == 1)
		return 0;
	if (wrc)
		return mb_fail(b->tag, rc, "%s; and its journal records could not be withdrawn "
		               "(%s): they may still take effect", why, mb_strerror(wrc));
	return mb_fail(b->tag, rc, "%s", why);
}

/* Lead one pass with the leader lock held; @own (may be NULL) gets its
 * result.  @mine (may be NULL): the record this thread queued in the
 * handle's slot, in its own memory.  Every member's result is published
 * before it returns.  The pass's outcome: 0, or its error, with the message
 * in @why (may be NULL; read here, under the lock: another thread of the
 * handle may lead next). */
static int lead(mb_bank *b, gq_member *own, const gq_member *mine, char why[GQ_MSG_BYTES])
{
	pass *p = b->pass;
	unsigned boots = 0;
	int rc, tries = 0;

	p->mine = mine;
	p->ops = b->cl ? &stream_ops : &local_ops;
	p->fresh = !b->cl;  /* a local journal's state is always its latest */
	p->n = p->k = 0;
	p->collected = p->published = p->timed_out = false;
	p->deadline = mono_ms() + cluster_timeout_ms(b);
	p->lost = 0;
	p->wait_until = 0;
	p->die_at = getenv("MEMBANK_TEST_GROUP_DIE");
	p->slow_ms = b->cl ? getenv("MEMBANK_TEST_SLOW_PUBLISH_MS") : NULL;
	while ((rc = pass_once(b, p, own)) == KV_EMAPFULL || rc == CLUSTER_RETRY ||
	       rc == CLUSTER_REBOOT || rc == CLUSTER_YIELD)
		if (rc == CLUSTER_YIELD) {   /* another machine's turn (cluster.c) */
			p->catch_up = true;
			usleep(TURN_PAUSE_US);
		} else if (rc == CLUSTER_REBOOT) {  /* behind the stream's purge point */
			if ((rc = cluster_reboot(b, ++boots, p->timed_out)))
				break;
		} else if (rc == KV_EMAPFULL && (++tries > 40 || kv_grow(b->kv))) {
			rc = mb_fail(b->tag, MB_ENOSPC, "the store's map cannot grow further");
			break;
		}
	if (rc && !p->collected)
		collect(b, p, own, NULL);  /* they all get the failure */
	p->rc = rc;
	if (rc && (p->rc = rc = pass_failed(b, p, rc))) {
		/* the group failed: every member but those refused on their own */
		snprintf(p->why, sizeof p->why, "%s", mb_last_error(b));
		for (size_t i = 0; i < p->n; i++)
			if (!p->m[i].landed && (p->k || !refusal(p->m[i].rc))) {
				p->m[i].rc = rc;
				memcpy(p->m[i].msg, p->why, sizeof p->why);
			}
	}
	mb_clear_error(b->tag);
	for (size_t i = 0; i < p->n; i++)
		if (p->m[i].slot >= 0)
			gq_finish(b->gq, &p->m[i]);
		else if (own)
			*own = p->m[i];
	if (why)
		memcpy(why, p->why, GQ_MSG_BYTES);
	return p->rc;
}

int bank_lead_pass(mb_bank *b)
{
	return lead(b, NULL, NULL, NULL);
}

/* A slot a dead owner left is settled by a pass before it is reused. */
static void settle_queue(mb_bank *b)
{
	bool recover;

	gq_lock(b->gq, &recover);
	lead(b, NULL, NULL, NULL);
	gq_unlock(b->gq);
}

int bank_queue_open(mb_bank *b, bool alone)
{
	if (!(b->pass = calloc(1, sizeof *b->pass)))
		return mb_fail(NULL, MB_ENOMEM, "out of memory");
	return gq_open(b, alone, &b->gq);
}

void bank_queue_close(mb_bank *b)
{
	gq_close(b->gq);
	if (b->pass)
		buf_free(&b->pass->grp);
	free(b->pass);
	b->gq = NULL;
	b->pass = NULL;
}

/* Queue the record and wait for its result, leading when the lock is free;
 * a record too large for a slot (or with no slot to use) is led at once. */
static int write_grouped(mb_bank *b, gq_member *me)
{
	bool recover;

	if (me->len <= GQ_PAYLOAD_BYTES && gq_slot_acquire(b->gq, settle_queue, b)) {
		char why[GQ_MSG_BYTES];
		int unknown = 0, prc;

		gq_submit(b->gq, me->type, me->payload, me->len);
		while (!gq_wait(b->gq, me)) {
			prc = lead(b, NULL, me, why);
			gq_unlock(b->gq);
			/* A pass we led takes our slot, unless a dead leader took it
			 * and the pass failed before it could read the journal's end
			 * to decide it (group.c, DEATHS): after a few such passes the
			 * write's outcome stays unknown; the slot is given up, to be
			 * decided by whoever claims it next. */
			if (prc && ++unknown >= 3 && !gq_done(b->gq)) {
				gq_abandon(b->gq);
				gq_slot_release(b->gq);
				return mb_fail(b, prc, "%s; this write's outcome is unknown: it may still "
				               "take effect", why);
			}
		}
		gq_slot_release(b->gq);
	} else {
		gq_lock(b->gq, &recover);
		lead(b, me, NULL, NULL);
		gq_unlock(b->gq);
	}
	return 0;
}

int bank_write(mb_bank *b, uint8_t type, const mb_buf *payload)
{
	gq_member me = { .slot = -1, .type = type, .payload = (const uint8_t *)payload->data,
	                 .len = (uint32_t)payload->len, .own = true };
	int rc, jrc;

	if ((rc = bank_check(b)) || (rc = bank_boot_record(b)))
		return rc;
	mb_clear_error(b);
	if ((rc = cluster_writable(b)))
		return rc;
	if (payload->failed)
		return mb_fail(b, MB_ENOMEM, "out of memory");
	if (payload->len > (b->cl ? MBS_MAX_PAYLOAD : MBJ_MAX_PAYLOAD))  /* numbers pack larger than their text */
		return mb_fail(b, MB_EINVAL, "the change packs to %zu bytes, above the journal's "
		               "record limit of %u bytes", payload->len,
		               b->cl ? MBS_MAX_PAYLOAD : MBJ_MAX_PAYLOAD);
	if ((rc = write_grouped(b, &me)))
		return rc;
	if (me.rc)
		return mb_fail(b, me.rc, "%s", me.msg);
	/* on a stream the stream's acknowledgement is the durability; the
	 * local journal is a copy that catches up */
	if (!b->cl && b->opts.durability == MB_DURABILITY_FULL && (jrc = mbj_sync(b->jn, me.end.seq)))
		return bank_journal_fail(b, jrc, "journal sync");
	if (!b->opts.defer_auto_checkpoint && me.end.segment)
		bank_auto_checkpoint(b, &me.end);  /* acknowledged: its outcome is not ours */
	mb_clear_error(b);
	return 0;
}

static int check_text(mb_bank *b, const char *what, const char *s, size_t min, size_t max)
{
	size_t len, bad;

	if (!s)
		return mb_fail(b, MB_EINVAL, "%s: missing", what);
	len = strnlen(s, max + 1);
	if (len < min)
		return mb_fail(b, MB_EINVAL, "%s: empty", what);
	if (len > max)
		return mb_fail(b, MB_EINVAL, "%s: longer than %zu bytes", what, max);
	if ((bad = mb_utf8_bad_at(s, len)) != (size_t)-1)
		return mb_fail(b, MB_EINVAL, "%s: invalid UTF-8 at byte %zu", what, bad);
	return 0;
}

int bank_check_id(mb_bank *b, const char *id)
{
	return check_text(b, "page id", id, 1, MB_MAX_ID_BYTES);
}

static size_t max_json(const mb_bank *b)
{
	return b->opts.max_json_bytes ? b->opts.max_json_bytes : b->max_json_bytes;
}

_Static_assert(MB_MAX_PAGE_PACKED == MBJ_MAX_PAYLOAD, "a put's properties fit one record");


/* A merge must not make a page larger than a put could (MB_MAX_PAGE_PACKED):
 * the snapshot, and the loader that reads it back, are bounded by it.  The
 * merged map is at most the old one plus the patch (and a wider header), so
 * the merge is computed only near the bound.  An expired page is counted as
 * it is stored (the merge would start from nothing): refusing is the safe
 * side. */
int bank_merge_fits(kv_txn *t, const merge_ck *m)
{
	const uint8_t *old;
	int64_t updated;
	size_t olen, len;
	kv_val v;
	int rc = kv_get(t, KV_PAGES, (kv_val){ m->id, m->idlen }, &v);
	int n = (int)(m->idlen > 64 ? 64 : m->idlen);

	if (rc == MB_ENOTFOUND)
		return 0;
	if (rc || (rc = st_page_split(v, &updated, &old, &olen)))
		return mb_fail(m->b->tag, rc, "page \"%.*s\": %s", n, m->id, mb_strerror(rc));
	if (olen + m->patch_len + 8 <= MB_MAX_PAGE_PACKED)
		return 0;
	if ((rc = apply_merged_len(old, olen, m->patch, m->patch_len, &len)))
		return mb_fail(m->b->tag, rc, "page \"%.*s\": %s", n, m->id, mb_strerror(rc));
	if (len > MB_MAX_PAGE_PACKED)
		return mb_fail(m->b->tag, MB_EINVAL, "page \"%.*s\": the merged properties would "
		               "pack to %zu bytes, above the limit of %zu", n, m->id, len,
		               MB_MAX_PAGE_PACKED);
	return 0;
}

/* ------------------------------------------------------ the mutations
 *
 * Each mutation is prepared (checked and encoded into its record's payload,
 * outside any lock) by a bank_prep_* function, then written.  A batch
 * prepares the same way and writes many as one record (batch.c). */

int bank_prep_page(mb_bank *b, const char *id, const char *json, size_t len, mb_buf *rec)
{
	int rc;

	if (!(rc = bank_check_id(b, id)) && (rc = rec_encode_page_head(rec, id, strlen(id))))
		rc = mb_fail(b, rc, "out of memory");
	return rc ? rc : json_object_to_mp(json, len, max_json(b), "properties", b, rec);
}

int bank_prep_delete(mb_bank *b, const char *id, mb_buf *rec)
{
	int rc;

	if (!(rc = bank_check_id(b, id)) && (rc = rec_encode_id(rec, id, strlen(id))))
		rc = mb_fail(b, rc, "out of memory");
	return rc;
}

static int prep_strs(mb_bank *b, const char *x, const char *y, mb_buf *rec)
{
	int rc = rec_encode_strs(rec, x, y);

	return rc ? mb_fail(b, rc, "out of memory") : 0;
}

/* Whether @status is "failed", "failure" or "error" in any ASCII case (not
 * strcasecmp: it follows the locale, and the program's locale must not
 * change what a record means). */
static bool failure_status(const char *status)
{
	static const char *const words[] = { "failed", "failure", "error" };

	for (size_t w = 0; w < sizeof words / sizeof *words; w++) {
		size_t i = 0;

		while (words[w][i] && (status[i] | 0x20) == words[w][i])
			i++;
		if (!words[w][i] && !status[i])
			return true;
	}
	return false;
}

/* A failure status without an error is recorded with error "": the record
 * then counts as the failure it names, and apply.c (and the replay of older
 * records) keeps its one rule, "an error counts a failure". */
int bank_prep_sync(mb_bank *b, const char *status, const char *error, mb_buf *rec)
{
	int rc;

	if ((rc = check_text(b, "status", status, 1, MB_MAX_STATUS_BYTES)) ||
	    (error && (rc = check_text(b, "error", error, 0, MB_MAX_TEXT_BYTES))))
		return rc;
	if (!error && failure_status(status))
		error = "";
	return prep_strs(b, status, error, rec);
}

int bank_prep_error_log(mb_bank *b, const char *type, const char *message, mb_buf *rec)
{
	int rc;

	if ((rc = check_text(b, "error type", type, 1, MB_MAX_TYPE_BYTES)) ||
	    (rc = check_text(b, "message", message, 0, MB_MAX_TEXT_BYTES)))
		return rc;
	return prep_strs(b, type, message, rec);
}

int bank_prep_error_resolve(mb_bank *b, const char *type, const char *steps, mb_buf *rec)
{
	int rc;

	if ((rc = check_text(b, "error type", type, 1, MB_MAX_TYPE_BYTES)) ||
	    (rc = check_text(b, "steps", steps, 0, MB_MAX_TEXT_BYTES)))
		return rc;
	return prep_strs(b, type, steps, rec);
}

int bank_prep_config(mb_bank *b, const char *json, size_t len, mb_buf *rec)
{
	mb_buf patch = { 0 };
	int rc = config_patch_from_json(json, len, max_json(b), b, &patch);

	if (!rc && (rc = rec_encode_map(rec, &patch)))
		rc = mb_fail(b, rc, "out of memory");
	buf_free(&patch);
	return rc;
}

/* Check the handle, prepare the payload (@prep's verdict), write it. */
static int write_prepared(mb_bank *b, uint8_t type, int prep, mb_buf *rec)
{
	int rc = prep ? prep : bank_write(b, type, rec);

	buf_free(rec);
	return rc;
}

int mb_page_put(mb_bank *b, const char *id, const char *json, size_t len)
{
	mb_buf rec = { 0 };
	int rc = bank_check(b);

	return rc ? rc : write_prepared(b, REC_PAGE_PUT, bank_prep_page(b, id, json, len, &rec),
	                                &rec);
}

int mb_page_merge(mb_bank *b, const char *id, const char *json, size_t len)
{
	mb_buf rec = { 0 };
	int rc = bank_check(b);

	return rc ? rc : write_prepared(b, REC_PAGE_MERGE, bank_prep_page(b, id, json, len, &rec),
	                                &rec);
}

int mb_page_delete(mb_bank *b, const char *id)
{
	mb_buf rec = { 0 };
	int rc = bank_check(b);

	return rc ? rc : write_prepared(b, REC_PAGE_DELETE, bank_prep_delete(b, id, &rec), &rec);
}

int mb_sync_record(mb_bank *b, const char *status, const char *error)
{
	mb_buf rec = { 0 };
	int rc = bank_check(b);

	return rc ? rc : write_prepared(b, REC_SYNC, bank_prep_sync(b, status, error, &rec), &rec);
}

int mb_error_log(mb_bank *b, const char *type, const char *message)
{
	mb_buf rec = { 0 };
	int rc = bank_check(b);

	return rc ? rc : write_prepared(b, REC_ERROR_LOG,
	                                bank_prep_error_log(b, type, message, &rec), &rec);
}

int mb_error_resolve(mb_bank *b, const char *type, const char *steps)
{
	mb_buf rec = { 0 };
	int rc = bank_check(b);

	return rc ? rc : write_prepared(b, REC_ERROR_RESOLVE,
	                                bank_prep_error_resolve(b, type, steps, &rec), &rec);
}

int mb_config_update(mb_bank *b, const char *json, size_t len)
{
	mb_buf rec = { 0 };
	int rc = bank_check(b);

	return rc ? rc : write_prepared(b, REC_CONFIG, bank_prep_config(b, json, len, &rec), &rec);
}
