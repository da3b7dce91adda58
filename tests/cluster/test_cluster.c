/*
 * test_cluster.c - many machines, one bank: the journal on a JetStream
 * stream (libshm/cluster.c), under tests/nats/cluster.py (its nats-server
 * processes, MEMBANK_TEST_NATS_URL).  A "machine" is a bank directory of
 * its own; every test uses a stream of its own.
 *
 * Nothing waits on time for an outcome: a machine that must see another's
 * writes calls mb_catch_up(); waits are bounded loops for broken runs,
 * scaled by MEMBANK_TEST_SLOW.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <time.h>

#include <nats/nats.h>

#include "bank.h"
#include "group.h"
#include "kv.h"
#include "record.h"
#include "../store/helpers.h"

#define WAIT_S 180   /* a bound for a broken run, never an expectation */

typedef struct fx {
	char *dir;
	char stream[64];
	char url[4096];
} fx;

static int slow(void)
{
	const char *s = getenv("MEMBANK_TEST_SLOW");
	int n = s ? atoi(s) : 1;

	return n > 0 ? n : 1;
}

static int counter;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	const char *u = getenv("MEMBANK_TEST_NATS_URL");

	if (!u)
		fail_msg("MEMBANK_TEST_NATS_URL is not set: run under tests/nats/cluster.py");
	f->dir = tmp_dir();
	snprintf(f->stream, sizeof f->stream, "t%ld_%d", (long)getpid(), ++counter);
	snprintf(f->url, sizeof f->url, "%s/%s", u, f->stream);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	return fx_teardown(state);
}

static int nodes(void)
{
	const char *n = getenv("MEMBANK_TEST_NATS_NODES");

	return n ? atoi(n) : 1;
}

static void mpath(const fx *f, int m, char *out, size_t cap)
{
	snprintf(out, cap, "%s/m%d", f->dir, m);
}

static int open_m(const fx *f, int m, const char *url, mb_bank **out)
{
	char path[4200];
	mb_options o;

	mb_options_init(&o);
	o.journal_url = url;
	o.durability = MB_DURABILITY_FAST;
	o.journal_timeout_ms = 20000u * (unsigned)slow();
	o.journal_replicas = (uint32_t)nodes();
	mpath(f, m, path, sizeof path);
	return mb_open(path, &o, out);
}

static mb_bank *machine(const fx *f, int m)
{
	mb_bank *b = NULL;
	int rc = open_m(f, m, f->url, &b);

	if (rc)
		fail_msg("open m%d: %s", m, mb_last_error(NULL));
	return b;
}

static void put(mb_bank *b, const char *id, const char *json)
{
	int rc = mb_page_put(b, id, json, (size_t)-1);

	if (rc)
		fail_msg("put %s: %s", id, mb_last_error(b));
}

static int64_t page_int(mb_bank *b, const char *id, const char *key)
{
	cJSON *p = get_page(b, id);
	int64_t v;

	if (!p)
		return -1;
	v = (int64_t)num_at(p, "properties", key);
	cJSON_Delete(p);
	return v;
}

static void assert_same_state(mb_bank *a, mb_bank *b)
{
	char *sa, *sb;

	/* Both to the stream's end, until they agree on it: a replica that
	 * lags (a node just resumed) may answer the stream's info with an
	 * older end, and a state compared at two seqs proves nothing.  The
	 * writes have stopped, so the end stands still; bounded. */
	for (int i = 0; i < 100; i++) {
		assert_int_equal(mb_catch_up(a), 0);
		assert_int_equal(mb_catch_up(b), 0);
		if (stat_of(a, "journal", "last_seq") == stat_of(b, "journal", "last_seq"))
			break;
		usleep(100000);
	}
	sa = state_of(a);
	sb = state_of(b);
	if (strcmp(sa, sb)) {
		/* the first line that differs, and the seqs: the whole states
		 * are too long for cmocka's message */
		size_t i = 0, l;
		while (sa[i] && sa[i] == sb[i])
			i++;
		while (i && sa[i - 1] != '\n')
			i--;
		l = strcspn(sa + i, "\n");
		fail_msg("states differ at seq %llu / %llu, first at: %.*s | %.*s",
		         (unsigned long long)stat_of(a, "journal", "last_seq"),
		         (unsigned long long)stat_of(b, "journal", "last_seq"),
		         (int)(l < 300 ? l : 300), sa + i, (int)strcspn(sb + i, "\n") % 300, sb + i);
	}
	free(sa);
	free(sb);
	assert_int_equal(stat_of(a, "journal", "last_seq"), stat_of(b, "journal", "last_seq"));
}

/* checkpoint.json's state beyond the four files (error_types, and
 * pages_removed), printed; its position and write time differ by machine. */
static char *ckpt_state(const char *dir)
{
	char path[4400], *text, *out;
	size_t len;
	cJSON *j, *k = cJSON_CreateObject();

	snprintf(path, sizeof path, "%s/checkpoint.json", dir);
	text = slurp(path, &len);
	assert_non_null(text);
	j = cJSON_Parse(text);
	assert_non_null(j);
	free(text);
	cJSON_AddItemToObject(k, "e", cJSON_DetachItemFromObject(j, "error_types"));
	cJSON_AddItemToObject(k, "r", cJSON_DetachItemFromObject(j, "pages_removed"));
	out = cJSON_PrintUnformatted(k);
	cJSON_Delete(j);
	cJSON_Delete(k);
	return out;
}

/* Every machine's snapshot of the same seq: the four files byte for byte,
 * and checkpoint.json's error-type state and page counters. */
static void assert_same_snapshots(const fx *f, mb_bank **m, int n)
{
	static const char *const files[] = { "notion_pages.json", "sync_status.json",
	                                     "error_log.json", "config_cache.json" };
	char dir[4][4200], path[4400];
	mb_snapshot_info info[4];

	for (int i = 0; i < n; i++) {
		assert_int_equal(mb_catch_up(m[i]), 0);
		snprintf(dir[i], sizeof dir[i], "%s/snap%d", f->dir, i);
		mkdir(dir[i], 0700);
		assert_int_equal(mb_snapshot(m[i], dir[i], &info[i]), 0);
		assert_int_equal(info[i].seq, info[0].seq);
	}
	for (int k = 0; k < 4; k++) {
		size_t l0, li;
		char *c0, *ci;
		snprintf(path, sizeof path, "%s/%s", dir[0], files[k]);
		c0 = slurp(path, &l0);
		assert_non_null(c0);
		for (int i = 1; i < n; i++) {
			snprintf(path, sizeof path, "%s/%s", dir[i], files[k]);
			ci = slurp(path, &li);
			assert_non_null(ci);
			assert_int_equal(li, l0);
			assert_memory_equal(ci, c0, l0);
			free(ci);
		}
		free(c0);
	}
	for (int i = 1; i < n; i++) {
		char *k0 = ckpt_state(dir[0]), *ki = ckpt_state(dir[i]);
		assert_string_equal(ki, k0);
		free(k0);
		free(ki);
	}
}

/* A child process started afresh (exec of this program with --role):
 * libnats cannot be used across fork(), and the test process uses it. */
static pid_t spawn(const char *const *args)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		const char *argv[16] = { "cluster-tests", "--role" };
		int n = 2;
		while (*args && n < 15)
			argv[n++] = *args++;
		argv[n] = NULL;
		execv("/proc/self/exe", (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* ------------------------------------------------------------ basics */

/* Two machines: each sees the other's writes (at open, or by catching up). */
static void test_two_machines(void **state)
{
	fx *f = *state;
	mb_bank *a = machine(f, 0), *b;

	put(a, "p1", "{\"v\":1}");
	b = machine(f, 1);   /* a new machine: catches up at open */
	assert_int_equal(page_int(b, "p1", "v"), 1);
	assert_int_equal(mb_page_merge(b, "p1", "{\"w\":2}", (size_t)-1), 0);
	assert_int_equal(mb_sync_record(b, "success", NULL), 0);
	assert_int_equal(mb_catch_up(a), 0);
	assert_int_equal(page_int(a, "p1", "w"), 2);
	assert_int_equal(mb_page_delete(a, "p1"), 0);
	assert_int_equal(mb_catch_up(b), 0);
	assert_null(get_page(b, "p1"));
	assert_same_state(a, b);
	mb_close(a);
	mb_close(b);
}

/* membank.json records the journal without credentials; another journal,
 * a local bank with one, or a bank on a stream opened as local: refused,
 * naming both. */
static void test_binding(void **state)
{
	fx *f = *state;
	char other[4200], path[4300], *text;
	size_t len;
	mb_bank *a = machine(f, 0), *x = NULL;
	mb_options o;

	mb_close(a);
	mpath(f, 0, path, sizeof path);
	strcat(path, "/membank.json");
	text = slurp(path, &len);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"journal\":\""));
	assert_non_null(strstr(text, f->stream));
	assert_null(strchr(text, '@'));
	free(text);

	snprintf(other, sizeof other, "%s/%s_other", getenv("MEMBANK_TEST_NATS_URL"), f->stream);
	assert_int_equal(open_m(f, 0, other, &x), MB_EINVAL);
	assert_null(x);
	assert_non_null(strstr(mb_last_error(NULL), "bound to journal"));
	assert_non_null(strstr(mb_last_error(NULL), "_other"));
	assert_int_equal(open_m(f, 0, "", &x), MB_EINVAL);
	assert_non_null(strstr(mb_last_error(NULL), "local journal"));
	/* NULL: the journal membank.json records */
	assert_int_equal(open_m(f, 0, NULL, &x), 0);
	mb_close(x);

	/* a local bank */
	mb_options_init(&o);
	mpath(f, 1, path, sizeof path);
	assert_int_equal(mb_open(path, &o, &x), 0);
	assert_int_equal(mb_page_put(x, "l", "{}", 2), 0);
	mb_cluster_info ci;
	assert_int_equal(mb_cluster_status(x, &ci), MB_EINVAL);
	assert_non_null(strstr(mb_last_error(x), "not bound to a cluster"));
	assert_int_equal(mb_catch_up(x), 0);
	{
		char *st = NULL;
		assert_int_equal(mb_stats(x, &st), 0);
		assert_non_null(strstr(st, "\"cluster\":null}"));
		mb_free(st);
	}
	mb_close(x);
	x = NULL;
	assert_int_equal(open_m(f, 1, f->url, &x), MB_EINVAL);
	assert_non_null(strstr(mb_last_error(NULL), "local journal"));
	assert_null(x);
}

/* A cluster with a password (cluster.py --auth user): the URL's
 * credentials work, and appear nowhere: not in membank.json, cluster.json,
 * stats, status or messages; without them the open is refused (MB_EPERM). */
static void test_credentials(void **state)
{
	fx *f = *state;
	const char *pass = getenv("MEMBANK_TEST_NATS_PASS");
	char path[4300], *text, *st = NULL;
	size_t len;
	mb_cluster_info ci;
	mb_bank *a, *x = NULL;

	if (!pass)
		skip();
	a = machine(f, 0);
	put(a, "p", "{}");
	assert_int_equal(mb_stats(a, &st), 0);
	assert_null(strstr(st, pass));
	mb_free(st);
	assert_int_equal(mb_cluster_status(a, &ci), 0);
	assert_true(ci.reachable);
	assert_null(strstr(ci.url, pass));
	mb_close(a);
	for (int i = 0; i < 2; i++) {
		mpath(f, 0, path, sizeof path);
		strcat(path, i ? "/cluster.json" : "/membank.json");
		text = slurp(path, &len);
		assert_non_null(text);
		assert_null(strstr(text, pass));
		assert_null(strchr(text, '@'));
		free(text);
	}
	/* membank.json's URL has no credentials: refused, and said so */
	assert_int_equal(open_m(f, 0, NULL, &x), MB_EPERM);
	assert_null(strstr(mb_last_error(NULL), pass));
	assert_null(x);
}

/* A machine behind the stream: its write meets "wrong last sequence",
 * catches up and runs again, checking every member against the new state
 * (a merge lands on the other machine's page; a delete of a page the other
 * machine deleted is refused). */
static void test_conflict(void **state)
{
	fx *f = *state;
	mb_bank *a, *b;
	cJSON *p;

	setenv("MEMBANK_TEST_NO_FOLLOW", "1", 1);
	a = machine(f, 0);
	b = machine(f, 1);
	put(a, "y", "{\"a\":1}");
	assert_int_equal(mb_catch_up(b), 0);
	put(a, "x", "{\"a\":1}");             /* b does not know x yet */
	assert_int_equal(mb_page_merge(b, "x", "{\"b\":2}", (size_t)-1), 0);
	assert_true(stat_of(b, "cluster", "conflicts") >= 1);
	p = get_page(b, "x");
	assert_non_null(p);
	assert_int_equal((int)num_at(p, "properties", "a"), 1);
	assert_int_equal((int)num_at(p, "properties", "b"), 2);
	cJSON_Delete(p);
	assert_int_equal(mb_page_delete(a, "y"), 0); /* b still has y */
	assert_int_equal(mb_page_delete(b, "y"), MB_ENOTFOUND);
	/* b, behind, does not know page z: its refusal is checked against the
	 * stream first */
	put(a, "z", "{}");
	assert_int_equal(mb_page_delete(b, "z"), 0);
	assert_same_state(a, b);
	mb_close(a);
	mb_close(b);
	unsetenv("MEMBANK_TEST_NO_FOLLOW");
}

/* ------------------------------------------------------ a leader killed */

static int role_put(const fx *f, int m, const char *id)
{
	mb_bank *b = NULL;
	int rc;

	if (open_m(f, m, f->url, &b))
		return 10;
	rc = mb_page_put(b, id, "{\"once\":1}", (size_t)-1);
	mb_close(b);
	return rc ? 11 : 0;
}

static pid_t writer(const fx *f, int m, const char *id)
{
	char ms[8];

	snprintf(ms, sizeof ms, "%d", m);
	return spawn((const char *[]){ "put", f->dir, f->url, ms, id, NULL });
}

/* The leader of machine @m: takes the leader lock, says so on @ready, waits
 * for @go, then leads a pass that the hook kills at @where (or stops at it,
 * saying so on @paused, when @paused >= 0). */
static int role_leader(const fx *f, int m, const char *where, int ready, int go, int paused)
{
	mb_bank *lb = NULL;
	bool recover;
	char c;

	if (open_m(f, m, f->url, &lb))
		return 1;
	gq_lock(lb->gq, &recover);
	if (write(ready, "r", 1) != 1 || read(go, &c, 1) != 1)
		return 1;
	setenv("MEMBANK_TEST_GROUP_DIE", where, 1);
	if (paused >= 0) {
		char fd[16];
		snprintf(fd, sizeof fd, "%d", paused);
		setenv("MEMBANK_TEST_GROUP_PAUSE_FD", fd, 1);
	}
	bank_lead_pass(lb);
	return 3;   /* not reached: the hook kills it */
}

/* The members of the REC_GROUP records of @m's journal that put page @id. */
static int puts_in_journal(const fx *f, int m, const char *id)
{
	char jdir[4300];
	mbj_iter *it;
	mbj_record rec;
	int n = 0;
	uint64_t last = 0;

	mpath(f, m, jdir, sizeof jdir);
	strcat(jdir, "/journal");
	assert_int_equal(mbj_iter_open(jdir, 0, &it), 0);
	while (mbj_iter_next(it, &rec) == 1) {
		mb_rec r, op;
		if (last)
			assert_int_equal(rec.seq, last + 1);
		last = rec.seq;
		assert_int_equal(rec_decode(rec.type, rec.ts_us, rec.payload, rec.len, &r), 0);
		if (rec.type == REC_GROUP) {
			mp_reader rd = { r.map, r.map + r.maplen, false };
			const uint8_t *raw;
			size_t rawlen;
			int64_t nonce, ticket;
			uint32_t cnt;
			assert_int_equal(mp_read_array(&rd, &cnt), 0);
			for (uint32_t i = 0; i < cnt; i++) {
				assert_int_equal(rec_group_next(&rd, &op, &raw, &rawlen, &nonce, &ticket), 0);
				n += op.type == REC_PAGE_PUT && op.alen == strlen(id) &&
				     !memcmp(op.a, id, op.alen);
			}
		} else if (rec.type == REC_PAGE_PUT) {
			n += r.alen == strlen(id) && !memcmp(r.a, id, r.alen);
		}
	}
	mbj_iter_close(it);
	return n;
}

/* A leader of machine 0 killed at @where with three writers' records in
 * its group: every writer succeeds, each record is in the stream exactly
 * once, and machine 1 converges.  With @other_first, machine 1 writes
 * between the death and the next pass: the record at the seq the dead
 * leader marked is then not its group's (decided by the members' tags, not
 * by "marked seq <= end"). */
static void leader_killed(fx *f, const char *where, bool other_first)
{
	mb_bank *a, *b;
	int go[2], ready[2], paused[2];
	pid_t leader, w[3];
	char c = 0, id[16];

	setenv("MEMBANK_TEST_NO_FOLLOW", "1", 1);
	a = machine(f, 0);
	b = machine(f, 1);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(paused), 0);
	{
		char r[16], g[16], pz[16];
		snprintf(r, sizeof r, "%d", ready[1]);
		snprintf(g, sizeof g, "%d", go[0]);
		snprintf(pz, sizeof pz, "%d", other_first ? paused[1] : -1);
		leader = spawn((const char *[]){ "leader", f->dir, f->url, "0", where, r, g, pz,
		                                 NULL });
	}
	assert_int_equal(read(ready[0], &c, 1), 1);
	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof id, "w%d", i);
		w[i] = writer(f, 0, id);
	}
	for (int i = 0; i < WAIT_S * 1000 && gq_queued(a->gq) < 3; i++)
		usleep(1000);
	assert_int_equal(gq_queued(a->gq), 3);
	if (other_first) {
		/* the leader stops at the hook: machine 1 writes, then the leader
		 * dies (its writers wait on its lock until then) */
		assert_int_equal(write(go[1], "g", 1), 1);
		assert_int_equal(read(paused[0], &c, 1), 1);
		put(b, "other", "{}");
		kill(leader, SIGKILL);
		assert_int_equal(wait_child(leader, WAIT_S), 128 + SIGKILL);
	} else {
		assert_int_equal(write(go[1], "g", 1), 1);
		assert_int_equal(wait_child(leader, WAIT_S), 128 + SIGKILL);
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(wait_child(w[i], WAIT_S), 0);
	assert_int_equal(mb_catch_up(a), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof id, "w%d", i);
		assert_int_equal(page_int(a, id, "once"), 1);
		assert_int_equal(puts_in_journal(f, 0, id), 1);
	}
	assert_same_state(a, b);
	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof id, "w%d", i);
		assert_int_equal(puts_in_journal(f, 1, id), 1);
	}
	assert_rebuild_same(a);
	close(go[0]), close(go[1]), close(ready[0]), close(ready[1]);
	close(paused[0]), close(paused[1]);
	mb_close(a);
	mb_close(b);
	unsetenv("MEMBANK_TEST_NO_FOLLOW");
}

static void test_leader_killed_after_publish(void **state)
{
	leader_killed(*state, "publish", false);
}

static void test_leader_killed_after_append(void **state)
{
	leader_killed(*state, "append", false);
}

static void test_leader_killed_before_publish_other_wrote(void **state)
{
	leader_killed(*state, "mark", true);
}

static void test_leader_killed_after_publish_other_wrote(void **state)
{
	leader_killed(*state, "publish", true);
}

/* ------------------------------------------------------ the cluster */

/* One command to tests/nats/cluster.py ("kill 1", "restart 1", "wait",
 * "leader STREAM"); its answer ("ok", "ok N", "error ..."). */
static void control(const char *cmd, char *ans, size_t cap)
{
	static FILE *cfp;
	const char *ctl = getenv("MEMBANK_TEST_NATS_CONTROL");
	const char *rep = getenv("MEMBANK_TEST_NATS_CONTROL_REPLY");
	FILE *fp;

	assert_non_null(ctl);
	assert_non_null(rep);
	/* kept open: cluster.py reads commands until the writer closes, and a
	 * command written as it reaches that end and closes would be lost */
	if (!cfp)
		cfp = fopen(ctl, "w");
	assert_non_null(cfp);
	fprintf(cfp, "%s\n", cmd);
	fflush(cfp);
	/* an open that meets the previous answer's writer still closing reads
	 * nothing: open again, the answer comes with the next writer */
	ans[0] = '\0';
	for (int tries = 0; !ans[0] && tries < 100; tries++) {
		fp = fopen(rep, "r");
		assert_non_null(fp);
		if (!fgets(ans, (int)cap, fp))
			ans[0] = '\0';
		fclose(fp);
	}
	if (strncmp(ans, "ok", 2))
		fail_msg("cluster.py %s: %s", cmd, ans);
}


static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A connection of the test's own (libnats directly). */
static natsConnection *raw_connect(void)
{
	natsConnection *nc = NULL;
	natsOptions *no = NULL;
	char hosts[4096], srv[8][300];
	const char *list[8];
	int n = 0;

	/* "nats://h1:p1,h2:p2" (no credentials in this suite's cluster) */
	snprintf(hosts, sizeof hosts, "%s", strstr(getenv("MEMBANK_TEST_NATS_URL"), "://") + 3);
	for (char *h = strtok(hosts, ","); h && n < 8; h = strtok(NULL, ",")) {
		snprintf(srv[n], sizeof srv[n], "nats://%s", h);
		list[n] = srv[n];
		n++;
	}
	assert_int_equal(natsOptions_Create(&no), NATS_OK);
	assert_int_equal(natsOptions_SetServers(no, list, n), NATS_OK);
	assert_int_equal(natsConnection_Connect(&nc, no), NATS_OK);
	natsOptions_Destroy(no);
	return nc;
}

/* Delete stream @name (the library never deletes one). */
static void delete_stream(const char *name)
{
	natsConnection *nc = raw_connect();
	jsCtx *js = NULL;
	jsErrCode e = 0;

	assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
	assert_int_equal(js_DeleteStream(js, name, NULL, &e), NATS_OK);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
}

/* A message on the stream's subject that is not membank's: applied as
 * nothing on every machine, counted, and the machines go on. */
static void test_foreign_message(void **state)
{
	fx *f = *state;
	natsConnection *nc = raw_connect();
	jsCtx *js = NULL;
	jsPubAck *ack = NULL;
	jsErrCode e = 0;
	mb_bank *a, *b;
	char subject[128];

	setenv("MEMBANK_TEST_NO_FOLLOW", "1", 1);
	a = machine(f, 0);
	put(a, "p", "{\"v\":1}");
	snprintf(subject, sizeof subject, "membank.%s", f->stream);
	assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
	assert_int_equal(js_Publish(&ack, js, subject, "hello", 5, NULL, &e), NATS_OK);
	jsPubAck_Destroy(ack);
	assert_int_equal(js_Publish(&ack, js, subject, "MBS1\x01garbage-not-a-record", 26, NULL,
	                            &e), NATS_OK);
	jsPubAck_Destroy(ack);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	assert_int_equal(mb_catch_up(a), 0);
	assert_int_equal(stat_of(a, "cluster", "foreign_skipped"), 2);
	assert_int_equal(stat_of(a, "journal", "last_seq"), 3);
	put(a, "q", "{}");
	b = machine(f, 1);
	assert_int_equal(stat_of(b, "cluster", "foreign_skipped"), 2);
	assert_int_equal(page_int(b, "p", "v"), 1);
	put(b, "r", "{}");
	assert_same_state(a, b);
	assert_int_equal(stat_of(b, "journal", "last_seq"), 5);
	assert_int_equal(stat_of(b, "cluster", "lag_records"), 0);
	assert_rebuild_same(b);
	mb_close(a);
	mb_close(b);
	unsetenv("MEMBANK_TEST_NO_FOLLOW");
}

/* A stream deleted and created again under a machine: the machine refuses
 * writes (MB_EDIVERGED, naming why) and still serves reads. */
static void test_recreated_stream_refused(void **state)
{
	fx *f = *state;
	mb_bank *a = machine(f, 0), *c;
	mb_cluster_info ci;

	setenv("MEMBANK_TEST_NO_FOLLOW", "1", 1);
	put(a, "p1", "{\"v\":1}");
	put(a, "p2", "{\"v\":2}");
	mb_close(a);
	delete_stream(f->stream);
	c = machine(f, 1);                 /* creates the stream anew */
	for (int i = 0; i < 3; i++)
		put(c, "q", "{}");             /* past where machine 0 was */
	mb_close(c);
	a = machine(f, 0);
	assert_int_equal(page_int(a, "p1", "v"), 1);   /* reads served */
	assert_int_equal(mb_page_put(a, "p3", "{}", 2), MB_EDIVERGED);
	assert_non_null(strstr(mb_last_error(a), "created again"));
	assert_null(get_page(a, "q"));
	assert_int_equal(mb_cluster_status(a, &ci), 0);
	assert_true(ci.diverged);
	assert_true(ci.reachable);
	assert_int_equal(ci.applied_seq, 2);
	assert_int_equal(ci.last_seq, 3);
	assert_int_equal(stat_of(a, "cluster", "applied_seq"), 2);
	mb_close(a);
	unsetenv("MEMBANK_TEST_NO_FOLLOW");
}

static int open_props(const fx *f, int m, uint32_t hl, size_t mj, mb_bank **out)
{
	char path[4200];
	mb_options o;

	mb_options_init(&o);
	o.journal_url = f->url;
	o.durability = MB_DURABILITY_FAST;
	o.journal_timeout_ms = 20000u * (unsigned)slow();
	o.journal_replicas = (uint32_t)nodes();
	o.history_limit = hl;
	o.max_json_bytes = mj;
	mpath(f, m, path, sizeof path);
	return mb_open(path, &o, out);
}

/* history_limit and max_json_bytes are one per stream: the machine that
 * creates it records them; a machine joining takes them (0 options),
 * refuses different explicit ones (naming both), may lower max_json_bytes
 * for its handle; the sync history trims the same everywhere. */
static void test_props_one_per_stream(void **state)
{
	fx *f = *state;
	mb_bank *a = NULL, *b = NULL, *x = NULL;
	char path[4300], *text;
	size_t len;

	if (open_props(f, 0, 3, 100000, &a))
		fail_msg("%s", mb_last_error(NULL));
	assert_int_equal(open_props(f, 1, 0, 0, &b), 0);
	assert_int_equal(stat_of(b, "history_limit", NULL), 3);
	assert_int_equal(stat_of(b, "max_json_bytes", NULL), 100000);
	mpath(f, 1, path, sizeof path);
	strcat(path, "/membank.json");
	text = slurp(path, &len);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"history_limit\":3,"));
	assert_non_null(strstr(text, "\"max_json_bytes\":100000,"));
	free(text);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(mb_sync_record(i % 2 ? a : b, "success", NULL), 0);
		assert_int_equal(mb_error_log(i % 2 ? b : a, "E", "m"), 0);
	}
	assert_same_state(a, b);
	assert_int_equal(stat_of(b, "sync_history", NULL), 3);
	assert_int_equal(stat_of(a, "sync_history", NULL), 3);

	assert_int_equal(open_props(f, 2, 5, 0, &x), MB_EINVAL);
	assert_non_null(strstr(mb_last_error(NULL), "history_limit 5"));
	assert_non_null(strstr(mb_last_error(NULL), "keeps 3"));
	assert_null(x);
	assert_int_equal(open_props(f, 3, 0, 200000, &x), MB_EINVAL);
	assert_non_null(strstr(mb_last_error(NULL), "at most 100000"));
	assert_null(x);
	/* a handle may lower it; the bank's stays the stream's */
	assert_int_equal(open_props(f, 4, 3, 50000, &x), 0);
	assert_int_equal(stat_of(x, "max_json_bytes", NULL), 100000);
	assert_int_equal(stat_of(x, "sync_history", NULL), 3);
	mb_close(x);
	x = NULL;
	/* machine 2 again, now with the stream's: it joins */
	assert_int_equal(open_props(f, 2, 0, 0, &x), 0);
	assert_int_equal(stat_of(x, "history_limit", NULL), 3);
	assert_same_state(a, x);
	mb_close(x);
	mb_close(a);
	mb_close(b);
}

/* A bank on a stream: a restore onto it (forced or not) and a journal
 * repair would make it a local bank or rewrite its journal's identity:
 * both refused, naming why and what to do, changing nothing; a restore
 * asked to build a bank on a stream is refused too (it builds local ones). */
static void test_restore_repair_refused(void **state)
{
	fx *f = *state;
	mb_bank *a = machine(f, 0), *x = NULL;
	char path[4200], snap[4200], other[4200], *before, *after, *rep = NULL;
	size_t l0, l1;
	mb_options o;

	put(a, "p", "{\"v\":1}");
	snprintf(snap, sizeof snap, "%s/snap", f->dir);
	mkdir(snap, 0700);
	assert_int_equal(mb_snapshot(a, snap, NULL), 0);
	mb_close(a);
	mpath(f, 0, path, sizeof path);
	strcat(path, "/membank.json");
	before = slurp(path, &l0);
	assert_non_null(before);
	mpath(f, 0, path, sizeof path);
	for (unsigned flags = 0; flags <= MB_RESTORE_FORCE; flags += MB_RESTORE_FORCE) {
		assert_int_equal(mb_restore(snap, path, NULL, flags), MB_EINVAL);
		assert_non_null(strstr(mb_last_error(NULL), "bound to journal"));
		assert_non_null(strstr(mb_last_error(NULL), f->stream));
		assert_non_null(strstr(mb_last_error(NULL), "local bank"));
	}
	assert_int_equal(mb_journal_repair(path, &rep), MB_EINVAL);
	assert_null(rep);
	assert_non_null(strstr(mb_last_error(NULL), "bound to journal"));
	assert_non_null(strstr(mb_last_error(NULL), "open it with the journal again"));
	assert_int_equal(mb_journal_verify(path, &rep), 0);   /* reading is fine */
	mb_free(rep);
	strcat(path, "/membank.json");
	after = slurp(path, &l1);
	assert_non_null(after);
	assert_string_equal(after, before);
	free(before);
	free(after);
	a = machine(f, 0);                      /* still on the stream */
	put(a, "q", "{}");
	assert_int_equal(page_int(a, "p", "v"), 1);
	mb_close(a);

	/* a new bank asked on a stream: refused, nothing created */
	mb_options_init(&o);
	o.journal_url = f->url;
	snprintf(other, sizeof other, "%s/restored", f->dir);
	assert_int_equal(mb_restore(snap, other, &o, 0), MB_EINVAL);
	assert_non_null(strstr(mb_last_error(NULL), "local journal"));
	assert_int_equal(access(other, F_OK), -1);
	setenv("MEMBANK_JOURNAL", f->url, 1);
	assert_int_equal(mb_restore(snap, other, NULL, 0), MB_EINVAL);
	unsetenv("MEMBANK_JOURNAL");
	/* without one: a local bank, as asked */
	assert_int_equal(mb_restore(snap, other, NULL, 0), 0);
	mb_options_init(&o);
	assert_int_equal(mb_open(other, &o, &x), 0);
	assert_int_equal(page_int(x, "p", "v"), 1);
	mb_close(x);
}

/* Every node down: a write fails with MB_EUNAVAIL within the bound, reads
 * serve the local copy, stats say how stale; the nodes back, writes go on. */
static void test_unreachable_cluster(void **state)
{
	fx *f = *state;
	mb_bank *a = NULL;
	char path[4200], ans[128], cmd[32];
	mb_options o;
	int64_t t0, took;
	uint32_t bound = 4000u * (unsigned)slow();
	cJSON *p;

	mb_options_init(&o);
	o.journal_url = f->url;
	o.durability = MB_DURABILITY_FAST;
	o.journal_timeout_ms = bound;
	mpath(f, 0, path, sizeof path);
	assert_int_equal(mb_open(path, &o, &a), 0);
	put(a, "p", "{\"v\":1}");
	/* stopped (SIGSTOP), not killed: a node restarted alone waits for a
	 * quorum that is not there */
	for (int i = 0; i < nodes(); i++) {
		snprintf(cmd, sizeof cmd, "stop %d", i);
		control(cmd, ans, sizeof ans);
	}
	t0 = mono_ms();
	assert_int_equal(mb_page_put(a, "p", "{\"v\":2}", (size_t)-1), MB_EUNAVAIL);
	took = mono_ms() - t0;
	assert_true(took <= (int64_t)bound * 2 + 2000);
	assert_non_null(strstr(mb_last_error(a), f->stream));
	p = get_page(a, "p");                 /* reads: this machine's copy */
	assert_non_null(p);
	assert_int_equal((int)num_at(p, "properties", "v"), 1);
	cJSON_Delete(p);
	assert_true(stat_of(a, "cluster", "since_contact_ms") >= (uint64_t)bound / 4);
	assert_int_equal(mb_catch_up(a), MB_EUNAVAIL);
	for (int i = 0; i < nodes(); i++) {
		snprintf(cmd, sizeof cmd, "cont %d", i);
		control(cmd, ans, sizeof ans);
	}
	control("wait", ans, sizeof ans);
	mb_close(a);
	a = machine(f, 0);                    /* the longer bound again */
	put(a, "p", "{\"v\":3}");
	assert_int_equal(page_int(a, "p", "v"), 3);
	mb_close(a);
}

/* ------------------------------------------------------------ bootstrap */

/* A checkpoint into the bank goes to the cluster and purges the stream
 * before it (less the margin); a new machine then starts from it and the
 * tail, and ends in the same state. */
static void test_bootstrap_after_purge(void **state)
{
	fx *f = *state;
	mb_bank *a, *b;
	mb_cluster_info ci;
	char id[32];

	setenv("MEMBANK_TEST_CKPT_MARGIN", "5", 1);
	setenv("MEMBANK_TEST_CKPT_KEEP_S", "0", 1);
	a = machine(f, 0);
	for (int i = 0; i < 40; i++) {
		snprintf(id, sizeof id, "p%d", i);
		put(a, id, "{\"v\":1}");
	}
	assert_int_equal(mb_error_log(a, "e", "m"), 0);
	assert_int_equal(mb_snapshot(a, NULL, NULL), 0);
	assert_int_equal(stat_of(a, "cluster", "checkpoint_failures"), 0);
	assert_true(stat_of(a, "cluster", "checkpoint_seq") >= 41);
	for (int i = 40; i < 50; i++) {
		snprintf(id, sizeof id, "p%d", i);
		put(a, id, "{\"v\":2}");
	}
	assert_int_equal(mb_cluster_status(a, &ci), 0);
	assert_true(ci.first_seq > 1);              /* purged */
	b = machine(f, 1);                          /* from the checkpoint, then the tail */
	assert_int_equal(page_int(b, "p3", "v"), 1);
	assert_int_equal(page_int(b, "p45", "v"), 2);
	assert_same_state(a, b);
	put(b, "fromb", "{}");
	assert_same_state(a, b);
	mb_close(b);
	/* machine 1 away while the stream is purged past its end: at its next
	 * open it starts again from the cluster's checkpoint */
	for (int i = 50; i < 70; i++) {
		snprintf(id, sizeof id, "p%d", i);
		put(a, id, "{\"v\":3}");
	}
	assert_int_equal(mb_snapshot(a, NULL, NULL), 0);
	put(a, "after", "{}");
	assert_int_equal(mb_cluster_status(a, &ci), 0);
	assert_true(ci.first_seq > 53);
	b = machine(f, 1);
	assert_int_equal(page_int(b, "p65", "v"), 3);
	assert_same_state(a, b);
	put(b, "fromb2", "{}");
	assert_same_state(a, b);
	assert_rebuild_same(b);
	{
		char *r = NULL;
		char path[4200];
		mpath(f, 1, path, sizeof path);
		mb_close(b);
		if (mb_journal_verify(path, &r)) fail_msg("verify: %s", r);
		mb_free(r);
	}
	mb_close(a);
	unsetenv("MEMBANK_TEST_CKPT_MARGIN");
	unsetenv("MEMBANK_TEST_CKPT_KEEP_S");
}

/* A stream info that ends before this machine's end (a replica that lags
 * answered: MEMBANK_TEST_STREAM_INFO_LAG plays one) makes writes wait with
 * MB_EUNAVAIL, naming both seqs, not refused for good: once the stream
 * holds this machine's end again, with this machine's record there, the
 * next write goes on.  (A stream recreated is refused for good:
 * test_recreated_stream_refused.) */
static void test_stream_behind_waits(void **state)
{
	fx *f = *state;
	mb_bank *a = machine(f, 0);
	mb_cluster_info ci;

	setenv("MEMBANK_TEST_NO_FOLLOW", "1", 1);
	put(a, "p1", "{\"v\":1}");
	put(a, "p2", "{\"v\":2}");
	put(a, "p3", "{\"v\":3}");
	setenv("MEMBANK_TEST_STREAM_INFO_LAG", "2", 1);
	assert_int_equal(mb_cluster_status(a, &ci), 0);
	assert_false(ci.diverged);
	assert_int_equal(ci.applied_seq, 3);
	assert_int_equal(mb_page_put(a, "p4", "{}", 2), MB_EUNAVAIL);
	assert_non_null(strstr(mb_last_error(a), "ended at seq 1 when last asked, before seq 3"));
	assert_null(get_page(a, "p4"));
	assert_int_equal(page_int(a, "p3", "v"), 3);     /* reads served */
	unsetenv("MEMBANK_TEST_STREAM_INFO_LAG");
	put(a, "p4", "{\"v\":4}");
	assert_int_equal(mb_cluster_status(a, &ci), 0);
	assert_false(ci.diverged);
	assert_int_equal(ci.applied_seq, 4);
	assert_int_equal(ci.last_seq, 4);
	mb_close(a);
	unsetenv("MEMBANK_TEST_NO_FOLLOW");
}

/* Copy machine @from's cluster.json (the stream's creation time it
 * followed) over machine @to's. */
static void copy_cluster_json(const fx *f, int from, int to)
{
	char p[4200], q[4200], text[512];
	ssize_t n;
	int fd;

	mpath(f, from, p, sizeof p);
	mpath(f, to, q, sizeof q);
	strncat(p, "/cluster.json", sizeof p - strlen(p) - 1);
	strncat(q, "/cluster.json", sizeof q - strlen(q) - 1);
	assert_true((fd = open(p, O_RDONLY)) >= 0);
	assert_true((n = read(fd, text, sizeof text)) > 0);
	close(fd);
	assert_true((fd = open(q, O_WRONLY | O_TRUNC)) >= 0);
	assert_int_equal(write(fd, text, (size_t)n), n);
	close(fd);
}

/* A stream with this machine's creation time that ends before this
 * machine's end, then holds that seq again but with ANOTHER record there
 * (restored from an older copy, then written by another machine): the
 * byte compare of behind_cleared() finds it, and writes are refused for
 * good (MB_EDIVERGED, naming the seq) rather than resumed on a history
 * that is not this machine's.  Built directly: the stream is deleted,
 * machine 1 creates it again and writes 2 records, and machine 0's
 * cluster.json gets the new stream's creation time (what a restore keeps,
 * so the creation check passes as it would).  Machine 0 (3 records) then
 * waits (MB_EUNAVAIL); machine 1 writes seq 3, its own record. */
static void test_stream_behind_other_record(void **state)
{
	fx *f = *state;
	mb_bank *a = machine(f, 0), *c;
	mb_cluster_info ci;

	setenv("MEMBANK_TEST_NO_FOLLOW", "1", 1);
	put(a, "p1", "{\"v\":1}");
	put(a, "p2", "{\"v\":2}");
	put(a, "p3", "{\"v\":3}");
	mb_close(a);
	delete_stream(f->stream);
	c = machine(f, 1);                 /* creates the stream anew */
	put(c, "q", "{}");
	put(c, "q", "{}");
	mb_close(c);
	copy_cluster_json(f, 1, 0);
	a = machine(f, 0);
	assert_int_equal(mb_page_put(a, "p4", "{}", 2), MB_EUNAVAIL);
	assert_non_null(strstr(mb_last_error(a), "ended at seq 2 when last asked, before seq 3"));
	c = machine(f, 1);
	put(c, "q", "{}");                 /* seq 3: machine 1's record */
	mb_close(c);
	assert_int_equal(mb_page_put(a, "p4", "{}", 2), MB_EDIVERGED);
	if (!strstr(mb_last_error(a), "holds at seq 3 a record other than the one this "
	                              "machine applied"))
		fail_msg("refused, but not for the record at seq 3: %s", mb_last_error(a));
	assert_int_equal(mb_page_put(a, "p4", "{}", 2), MB_EDIVERGED);   /* for good */
	assert_non_null(strstr(mb_last_error(a), "at seq 3 a record other"));
	assert_null(get_page(a, "p4"));
	assert_null(get_page(a, "q"));
	assert_int_equal(page_int(a, "p3", "v"), 3);     /* reads served */
	assert_int_equal(mb_cluster_status(a, &ci), 0);
	assert_true(ci.diverged);
	assert_int_equal(ci.applied_seq, 3);
	mb_close(a);
	unsetenv("MEMBANK_TEST_NO_FOLLOW");
}

/* Records missing in a read (purged under a machine that lags) are never
 * applied as nothing, even when the stream info says they were not purged
 * (a replica that has not applied the purge yet answered it:
 * MEMBANK_TEST_STREAM_INFO_FIRST plays it).  The catch-up reads again
 * until its bound and fails (MB_EUNAVAIL) with nothing applied; a true
 * answer then starts the machine over from the cluster's checkpoint.  (It
 * used to fill the missing seqs with no-op records: that machine then
 * lacked pages every other machine had.) */
static void test_gap_not_filled(void **state)
{
	fx *f = *state;
	mb_bank *a, *b = NULL;
	mb_options o;
	char id[32], path[4200];
	int rc;

	setenv("MEMBANK_TEST_NO_FOLLOW", "1", 1);
	setenv("MEMBANK_TEST_CKPT_MARGIN", "5", 1);
	setenv("MEMBANK_TEST_CKPT_KEEP_S", "0", 1);
	a = machine(f, 0);
	put(a, "first", "{}");
	mb_options_init(&o);
	o.journal_url = f->url;
	o.journal_timeout_ms = 2000u * (unsigned)slow();
	mpath(f, 1, path, sizeof path);
	assert_int_equal(mb_open(path, &o, &b), 0);
	assert_int_equal(stat_of(b, "journal", "last_seq"), 1);
	for (int i = 0; i < 30; i++) {
		snprintf(id, sizeof id, "p%d", i);
		put(a, id, "{\"v\":1}");
	}
	assert_int_equal(mb_snapshot(a, NULL, NULL), 0);    /* purged before seq 26 */
	assert_int_equal(stat_of(a, "cluster", "checkpoint_failures"), 0);
	setenv("MEMBANK_TEST_STREAM_INFO_FIRST", "1", 1);
	rc = mb_catch_up(b);
	unsetenv("MEMBANK_TEST_STREAM_INFO_FIRST");
	assert_int_equal(rc, MB_EUNAVAIL);
	assert_non_null(strstr(mb_last_error(b), "skipped by every read"));
	assert_int_equal(stat_of(b, "journal", "last_seq"), 1);   /* nothing applied */
	assert_null(get_page(b, "p0"));
	mb_close(b);
	b = machine(f, 1);                  /* from the cluster's checkpoint */
	assert_int_equal(page_int(b, "p0", "v"), 1);
	assert_same_state(a, b);
	mb_close(b);
	mb_close(a);
	unsetenv("MEMBANK_TEST_NO_FOLLOW");
	unsetenv("MEMBANK_TEST_CKPT_MARGIN");
	unsetenv("MEMBANK_TEST_CKPT_KEEP_S");
}

/* The purge after a checkpoint keeps every record stored in the last
 * CKPT_KEEP_S seconds (10 here), whatever the margin: a machine cut off
 * for a while finds what it missed.  The records before the pause are
 * older than that and go; the 20 after it (written and checkpointed well
 * within 10 s) stay, though the margin alone would purge 15 of them. */
static void test_purge_keeps_recent(void **state)
{
	fx *f = *state;
	mb_bank *a;
	mb_cluster_info ci;
	char id[32];
	uint64_t old_last;
	struct timespec t0, t;

	setenv("MEMBANK_TEST_CKPT_MARGIN", "5", 1);
	setenv("MEMBANK_TEST_CKPT_KEEP_S", "10", 1);
	a = machine(f, 0);
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof id, "old%d", i);
		put(a, id, "{\"v\":1}");
	}
	assert_int_equal(mb_cluster_status(a, &ci), 0);
	old_last = ci.last_seq;
	/* the clock passes 11 s (a wait for the clock, not a synchronisation) */
	clock_gettime(CLOCK_REALTIME, &t0);
	do {
		usleep(100000);
		clock_gettime(CLOCK_REALTIME, &t);
	} while (t.tv_sec < t0.tv_sec + 12);
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof id, "new%d", i);
		put(a, id, "{\"v\":2}");
	}
	assert_int_equal(mb_snapshot(a, NULL, NULL), 0);
	assert_int_equal(stat_of(a, "cluster", "checkpoint_failures"), 0);
	assert_int_equal(mb_cluster_status(a, &ci), 0);
	assert_int_equal(ci.first_seq, old_last + 1);
	assert_int_equal(ci.last_seq, old_last + 20);
	mb_close(a);
	unsetenv("MEMBANK_TEST_CKPT_MARGIN");
	unsetenv("MEMBANK_TEST_CKPT_KEEP_S");
}

/* The cluster's checkpoint carries checkpoint.json: a machine started from
 * it knows the error types' last-seen times (the drop order at
 * MB_MAX_ERROR_TYPES) and the page counters, so the next type dropped is
 * the same everywhere and the snapshots stay byte-identical. */
static void test_bootstrap_keeps_error_state(void **state)
{
	fx *f = *state;
	mb_bank *a, *m[2];
	mb_batch *bt = NULL;
	char id[32];

	setenv("MEMBANK_TEST_CKPT_MARGIN", "5", 1);
	setenv("MEMBANK_TEST_CKPT_KEEP_S", "0", 1);
	a = machine(f, 0);
	for (int i = 0; i < 12; i++) {
		snprintf(id, sizeof id, "p%d", i);
		put(a, id, "{}");
	}
	assert_int_equal(mb_batch_begin(a, &bt), 0);
	for (unsigned i = 0; i < MB_MAX_ERROR_TYPES; i++) {
		snprintf(id, sizeof id, "t%04u", i);
		assert_int_equal(mb_batch_error_log(bt, id, "m"), 0);
	}
	assert_int_equal(mb_batch_commit(bt), 0);
	assert_int_equal(mb_error_log(a, "t0000", "again"), 0);   /* the newest seen */
	assert_int_equal(mb_snapshot(a, NULL, NULL), 0);
	assert_int_equal(stat_of(a, "cluster", "checkpoint_failures"), 0);
	for (int i = 0; i < 3; i++)
		put(a, "after", "{}");
	m[0] = a;
	m[1] = machine(f, 1);                       /* from the checkpoint */
	assert_int_equal(stat_of(m[1], "cluster", "checkpoint_seq"),
	                 stat_of(a, "cluster", "checkpoint_seq"));
	assert_int_equal(mb_error_log(m[1], "znew", "m"), 0);     /* drops one type */
	assert_int_equal(mb_error_log(a, "znew2", "m"), 0);       /* and another */
	assert_int_equal(stat_of(a, "error_types_dropped", NULL), 2);
	assert_same_state(m[0], m[1]);
	assert_same_snapshots(f, m, 2);
	mb_close(m[1]);
	mb_close(a);
	unsetenv("MEMBANK_TEST_CKPT_MARGIN");
	unsetenv("MEMBANK_TEST_CKPT_KEEP_S");
}

/* ------------------------------------------ behind the purge point, open */

/* @n writes of machine @b, one record each, of several kinds (pages
 * "<tag>N" {"v":N}, sync records, errors of type <tag>, merges into page
 * "shared"): what it adds to the totals goes to @t. */
typedef struct totals {
	uint64_t pages, successes, errors;
} totals;

static void fill(mb_bank *b, const char *tag, int n, totals *t)
{
	char id[32], json[64];
	int rc;

	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof id, "%s%d", tag, i);
		switch (i % 25) {
		case 7:
			rc = mb_sync_record(b, "success", NULL);
			t->successes++;
			break;
		case 13:
			rc = mb_error_log(b, tag, "boom");
			t->errors++;
			break;
		case 19:
			snprintf(json, sizeof json, "{\"%s\":%d}", tag, i);
			rc = mb_page_merge(b, "shared", json, (size_t)-1);
			break;
		default:
			snprintf(json, sizeof json, "{\"v\":%d}", i);
			rc = mb_page_put(b, id, json, (size_t)-1);
			t->pages++;
		}
		if (rc)
			fail_msg("%s: %s", id, mb_last_error(b));
	}
}

static void assert_totals(mb_bank *b, const totals *t)
{
	uint64_t pages;
	cJSON *j;

	assert_int_equal(mb_page_count(b, &pages), 0);
	assert_int_equal(pages, t->pages);
	j = sync_doc(b);
	assert_int_equal((uint64_t)num_at(j, "success_count", NULL), t->successes);
	cJSON_Delete(j);
	j = error_doc(b);
	assert_int_equal((uint64_t)num_at(j, "total_errors", NULL), t->errors);
	cJSON_Delete(j);
}

/* A process of machine @m that has the bank open while the test makes the
 * machine fall behind the stream's purge point (MEMBANK_TEST_NO_FOLLOW, from
 * the test): opens it, says so on @ready, waits for @go, then writes the
 * whole state it reads (no catch-up: this machine's store as it is) to
 * DIR/hold.state. */
static int role_hold(const fx *f, int m, int ready, int go)
{
	char path[4300], c, *st;
	mb_bank *b = NULL;
	FILE *out;

	if (open_m(f, m, f->url, &b))
		return 10;
	if (write(ready, "r", 1) != 1 || read(go, &c, 1) != 1)
		return 11;
	snprintf(path, sizeof path, "%s/hold.state", f->dir);
	st = state_of(b);
	if (!st || !(out = fopen(path, "w")) || fputs(st, out) < 0 || fclose(out))
		return 12;
	free(st);
	mb_close(b);
	return 0;
}

static pid_t start_hold(const fx *f, int m, const char *role, const char *arg, int ready[2],
                        int go[2])
{
	char ms[8], r[16], g[16];
	pid_t pid;
	char c;

	/* the child gets its two ends alone: when the test fails and exits,
	 * its read of @go ends */
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	fcntl(ready[1], F_SETFD, 0);
	fcntl(go[0], F_SETFD, 0);
	snprintf(ms, sizeof ms, "%d", m);
	snprintf(r, sizeof r, "%d", ready[1]);
	snprintf(g, sizeof g, "%d", go[0]);
	pid = spawn((const char *[]){ role, f->dir, f->url, ms, r, g, arg, NULL });
	close(ready[1]);
	close(go[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	return pid;
}

static void close_pipes(int ready[2], int go[2])
{
	close(ready[0]), close(go[1]);
}

static void assert_verifies(const fx *f, int m)
{
	char path[4200], *r = NULL;

	mpath(f, m, path, sizeof path);
	if (mb_journal_verify(path, &r))
		fail_msg("verify m%d: %s", m, r);
	mb_free(r);
}

/* A machine that falls behind the stream's purge point while processes
 * have the bank open (they do not follow: MEMBANK_TEST_NO_FOLLOW) starts
 * again from the cluster's checkpoint by itself: at its next write (machine
 * 1) or fresh read (machine 2).  The write succeeds; every machine holds
 * the same state and byte-identical snapshots, with exact totals; the other
 * process of machine 1, open all along, reads the new state; the journal
 * of machine 1 goes on after the checkpoint without a gap (verify). */
static void test_behind_purge_while_open(void **state)
{
	fx *f = *state;
	mb_bank *m[3];
	mb_cluster_info ci;
	totals t = { 2, 0, 0 };   /* "first" and "shared" */
	int ready[2], go[2];
	uint64_t ckpt;
	pid_t hold;
	char path[4300], *mine, *held;
	size_t len;

	setenv("MEMBANK_TEST_NO_FOLLOW", "1", 1);
	setenv("MEMBANK_TEST_CKPT_KEEP_S", "0", 1);  /* the purge by the margin alone */
	m[0] = machine(f, 0);
	put(m[0], "first", "{\"v\":0}");
	assert_int_equal(mb_page_merge(m[0], "shared", "{}", (size_t)-1), 0);
	m[1] = machine(f, 1);
	m[2] = machine(f, 2);
	assert_int_equal(stat_of(m[1], "journal", "last_seq"), 2);
	hold = start_hold(f, 1, "hold", NULL, ready, go);
	/* machine 0 writes past the margin (1000 records), checkpoints (into
	 * the cluster, purging the stream before it less the margin), and
	 * goes on */
	fill(m[0], "q", 1100, &t);
	assert_int_equal(mb_snapshot(m[0], NULL, NULL), 0);
	assert_int_equal(stat_of(m[0], "cluster", "checkpoint_failures"), 0);
	ckpt = stat_of(m[0], "cluster", "checkpoint_seq");
	assert_int_equal(ckpt, 1102);
	fill(m[0], "t", 30, &t);
	assert_int_equal(mb_cluster_status(m[0], &ci), 0);
	assert_true(ci.first_seq > 3);              /* past machines 1 and 2 */
	assert_int_equal(stat_of(m[1], "journal", "last_seq"), 2);
	/* a checkpoint of machine 1, behind, does not replace the cluster's
	 * newer one (no machine could start from it), which every machine's
	 * status names */
	assert_int_equal(mb_snapshot(m[1], NULL, NULL), 0);
	assert_int_equal(mb_cluster_status(m[1], &ci), 0);
	assert_int_equal(ci.checkpoint_seq, ckpt);
	assert_int_equal(ci.applied_seq, 2);
	/* machine 1 writes: from the checkpoint, the tail, then its write */
	put(m[1], "fromb", "{\"b\":1}");
	t.pages++;
	assert_int_equal(stat_of(m[1], "journal", "first_seq"), ckpt + 1);
	assert_int_equal(stat_of(m[1], "journal", "last_seq"), ckpt + 31);
	assert_int_equal(page_int(m[1], "q0", "v"), 0);
	assert_int_equal(page_int(m[1], "t29", "v"), 29);
	assert_int_equal(page_int(m[1], "shared", "q"), 1094);
	assert_int_equal(page_int(m[1], "shared", "t"), 19);
	assert_totals(m[1], &t);
	/* machine 2 reads fresh: the same */
	assert_int_equal(mb_catch_up(m[2]), 0);
	/* (from machine 1's automatic checkpoint, made at its first write) */
	assert_true(stat_of(m[2], "cluster", "checkpoint_seq") >= ckpt);
	assert_int_equal(stat_of(m[2], "journal", "last_seq"), ckpt + 31);
	assert_totals(m[2], &t);
	assert_int_equal(mb_catch_up(m[0]), 0);
	assert_totals(m[0], &t);
	fill(m[2], "z", 10, &t);                    /* and writes */
	assert_same_state(m[0], m[1]);
	assert_same_state(m[0], m[2]);
	assert_totals(m[1], &t);
	assert_same_snapshots(f, m, 3);
	/* the other process of machine 1 reads what machine 1 has now */
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(wait_child(hold, WAIT_S * slow()), 0);
	snprintf(path, sizeof path, "%s/hold.state", f->dir);
	held = slurp(path, &len);
	assert_non_null(held);
	mine = state_of(m[1]);
	assert_string_equal(held, mine);
	free(held);
	free(mine);
	close_pipes(ready, go);
	assert_rebuild_same(m[1]);
	for (int i = 0; i < 3; i++)
		mb_close(m[i]);
	assert_verifies(f, 1);
	assert_verifies(f, 2);
	unsetenv("MEMBANK_TEST_NO_FOLLOW");
	unsetenv("MEMBANK_TEST_CKPT_KEEP_S");
}

/* A process of machine @m, open before it falls behind the purge point,
 * killed (MEMBANK_TEST_BOOT_DIE=@where) while its write starts the machine
 * again from the cluster's checkpoint. */
static int role_boot_die(const fx *f, int m, int ready, int go, const char *where)
{
	mb_bank *b = NULL;
	char c;

	if (open_m(f, m, f->url, &b))
		return 10;
	if (write(ready, "r", 1) != 1 || read(go, &c, 1) != 1)
		return 11;
	setenv("MEMBANK_TEST_BOOT_DIE", where, 1);
	mb_page_put(b, "never", "{}", (size_t)-1);
	fprintf(stderr, "boot-die %s: not killed: %s\n", where, mb_last_error(b));
	return 3;
}

/* That start killed at each of its steps (the checkpoint fetched, then
 * installed as this machine's, then the store rebuilt from it): the bank
 * opens, converges with the other machine, writes, and its journal
 * verifies. */
static void test_behind_purge_crash(void **state)
{
	static const char *const at[] = { "fetched", "installed", "rebuilt" };
	fx *f = *state;
	mb_bank *m[2];
	totals t = { 2, 0, 0 };   /* "first" and "shared" */
	int ready[2], go[2];
	char tag[8];
	pid_t pid;

	setenv("MEMBANK_TEST_NO_FOLLOW", "1", 1);
	setenv("MEMBANK_TEST_CKPT_MARGIN", "5", 1);
	setenv("MEMBANK_TEST_CKPT_KEEP_S", "0", 1);
	m[0] = machine(f, 0);
	put(m[0], "first", "{}");
	for (int k = 0; k < 3; k++) {
		mb_cluster_info ci;
		uint64_t end = stat_of(m[0], "journal", "last_seq");   /* machine 1's */
		pid = start_hold(f, 1, "boot-die", at[k], ready, go);
		snprintf(tag, sizeof tag, "k%d_", k);
		fill(m[0], tag, 40, &t);
		assert_int_equal(mb_snapshot(m[0], NULL, NULL), 0);
		assert_int_equal(stat_of(m[0], "cluster", "checkpoint_failures"), 0);
		put(m[0], tag, "{}");
		t.pages++;
		assert_int_equal(mb_cluster_status(m[0], &ci), 0);
		assert_true(ci.first_seq > end + 1);
		assert_int_equal(write(go[1], "g", 1), 1);
		assert_int_equal(wait_child(pid, WAIT_S * slow()), 128 + SIGKILL);
		close_pipes(ready, go);
		m[1] = machine(f, 1);   /* opens: catches up from where it was */
		assert_int_equal(stat_of(m[1], "journal", "last_seq"), ci.last_seq);
		snprintf(tag, sizeof tag, "b%d", k);
		put(m[1], tag, "{}");
		t.pages++;
		assert_same_state(m[0], m[1]);
		assert_totals(m[1], &t);
		if (k < 2) {
			mb_close(m[1]);
			assert_verifies(f, 1);
		}
	}
	assert_same_snapshots(f, m, 2);
	assert_rebuild_same(m[1]);
	mb_close(m[1]);
	mb_close(m[0]);
	assert_verifies(f, 1);
	unsetenv("MEMBANK_TEST_CKPT_MARGIN");
	unsetenv("MEMBANK_TEST_CKPT_KEEP_S");
	unsetenv("MEMBANK_TEST_NO_FOLLOW");
}

/* ------------------------------------------------------------ workload */

/* One writer process of machine @m: @n rounds of every operation kind.
 * Exits 0 when every call succeeded. */
static int work(const fx *f, int m, int p, int n)
{
	mb_bank *b = NULL;
	char id[64], key[32], json[128];
	int rc = 0;

	if (open_m(f, m, f->url, &b))
		return 10;
	snprintf(key, sizeof key, "m%dp%d", m, p);
	for (int i = 0; i < n && !rc; i++) {
		mb_batch *bt = NULL;
		snprintf(id, sizeof id, "m%dp%di%d", m, p, i);
		snprintf(json, sizeof json, "{\"i\":%d}", i);
		if ((rc = mb_page_put(b, id, json, (size_t)-1)))
			break;
		snprintf(json, sizeof json, "{\"%s\":%d}", key, i);
		if ((rc = mb_page_merge(b, "shared", json, (size_t)-1)) ||
		    (rc = mb_sync_record(b, i % 5 ? "success" : "failed", NULL)) ||
		    (rc = mb_error_log(b, key, "boom")))
			break;
		if (i % 7 == 3 && (rc = mb_error_resolve(b, key, "fixed")))
			break;
		if (i % 9 == 4) {
			snprintf(json, sizeof json, "{\"notion_settings\":{\"retry_attempts\":%d}}", i % 10);
			if ((rc = mb_config_update(b, json, (size_t)-1)))
				break;
		}
		if (i % 2) {
			char bid[64];
			snprintf(bid, sizeof bid, "b%s", id);
			if ((rc = mb_batch_begin(b, &bt)) ||
			    (rc = mb_batch_page_put(bt, bid, "{\"b\":true}", (size_t)-1)) ||
			    (rc = mb_batch_page_delete(bt, id)) || (rc = mb_batch_commit(bt)))
				break;
		} else if ((rc = mb_page_put(b, id, "{\"even\":1}", (size_t)-1))) {
			break;
		}
	}
	if (rc)
		fprintf(stderr, "m%d p%d: %s\n", m, p, mb_last_error(b));
	mb_close(b);
	return rc ? 1 : 0;
}

static void workload(fx *f, int machines, int procs, int n)
{
	mb_bank *m[4];
	pid_t pid[16];
	cJSON *j;
	uint64_t pages;
	int k = 0, fails = n / 5 + (n % 5 != 0);

	for (int i = 0; i < machines; i++)
		m[i] = machine(f, i);
	for (int i = 0; i < machines; i++)
		for (int p = 0; p < procs; p++) {
			char ms[8], ps[8], ns[8];
			snprintf(ms, sizeof ms, "%d", i);
			snprintf(ps, sizeof ps, "%d", p);
			snprintf(ns, sizeof ns, "%d", n);
			pid[k++] = spawn((const char *[]){ "work", f->dir, f->url, ms, ps, ns, NULL });
		}
	for (int i = 0; i < k; i++)
		assert_int_equal(wait_child(pid[i], WAIT_S * slow()), 0);
	for (int i = 1; i < machines; i++)
		assert_same_state(m[0], m[i]);
	/* exact totals */
	assert_int_equal(mb_page_count(m[0], &pages), 0);
	/* even rounds keep page i, odd ones a batch page instead */
	assert_int_equal(pages, (uint64_t)(machines * procs * n + 1));
	j = sync_doc(m[machines - 1]);
	assert_int_equal((int)num_at(j, "success_count", NULL), machines * procs * (n - fails));
	assert_int_equal((int)num_at(j, "error_count", NULL), machines * procs * fails);
	cJSON_Delete(j);
	j = error_doc(m[0]);
	assert_int_equal((int)num_at(j, "total_errors", NULL), machines * procs * n);
	cJSON_Delete(j);
	for (int i = 0; i < machines; i++)
		for (int p = 0; p < procs; p++) {
			char key[32];
			snprintf(key, sizeof key, "m%dp%d", i, p);
			assert_int_equal(page_int(m[machines - 1], "shared", key), n - 1);
		}
	assert_same_snapshots(f, m, machines);
	for (int i = 0; i < machines; i++) {
		assert_rebuild_same(m[i]);
		mb_close(m[i]);
	}
}

static void test_two_machines_three_writers(void **state)
{
	workload(*state, 2, 3, 30);
}

static void test_three_machines_two_writers(void **state)
{
	workload(*state, 3, 2, 20);
}

/* ------------------------------------------------------ nodes killed */

/* A writer through node failures: up to @n puts of its own pages (the
 * tests stop it before: a writer that ran out would fail their waits for
 * progress); the id of each
 * acknowledged one goes to @acks.  A write that fails with MB_EUNAVAIL (an
 * election longer than the bound) is not acknowledged, and not retried. */
static int role_churn(const fx *f, int m, int p, int n, const char *acks)
{
	FILE *ack = fopen(acks, "w");
	mb_bank *b = NULL;
	char id[64];
	int rc = 0;

	if (!ack || open_m(f, m, f->url, &b))
		return 10;
	char stop[4300];

	snprintf(stop, sizeof stop, "%s/stop", f->dir);
	/* until told to stop, or until the test's directory is gone (a test
	 * that failed: its teardown removed it; a writer never outlives it) */
	time_t said = 0;

	for (int i = 0; i < n && access(stop, F_OK) && !access(f->dir, F_OK); i++) {
		snprintf(id, sizeof id, "m%dp%dk%d", m, p, i);
		rc = mb_page_put(b, id, "{\"k\":1}", (size_t)-1);
		if (rc == 0) {
			fprintf(ack, "%s\n", id);
			fflush(ack);
			said = 0;
		} else if (rc != MB_EUNAVAIL) {
			fprintf(stderr, "%s: %s\n", id, mb_last_error(b));
			break;
		} else if (time(NULL) - said >= 10) {
			/* a writer that waits says why, every 10 s: the log of a
			 * run whose writers did not go on */
			said = time(NULL);
			fprintf(stderr, "writer m%dp%d, %s: waits: %s\n", m, p, id, mb_last_error(b));
		}
		rc = 0;
	}
	mb_close(b);
	fclose(ack);
	return rc ? 1 : 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every page put in machine @m's journal (groups' members included) is
 * there once. */
static void assert_puts_once(const fx *f, int m)
{
	char jdir[4300], **ids = NULL;
	size_t n = 0, cap = 0;
	mbj_iter *it;
	mbj_record rec;

	mpath(f, m, jdir, sizeof jdir);
	strcat(jdir, "/journal");
	assert_int_equal(mbj_iter_open(jdir, 0, &it), 0);
	while (mbj_iter_next(it, &rec) == 1) {
		mb_rec r, op;
		mp_reader rd;
		uint32_t cnt = 1;
		assert_int_equal(rec_decode(rec.type, rec.ts_us, rec.payload, rec.len, &r), 0);
		if (rec.type == REC_GROUP) {
			rd = (mp_reader){ r.map, r.map + r.maplen, false };
			assert_int_equal(mp_read_array(&rd, &cnt), 0);
		}
		for (uint32_t i = 0; i < cnt; i++) {
			const uint8_t *raw;
			size_t rawlen;
			int64_t nonce, ticket;
			if (rec.type == REC_GROUP)
				assert_int_equal(rec_group_next(&rd, &op, &raw, &rawlen, &nonce, &ticket), 0);
			else
				op = r;
			if (op.type != REC_PAGE_PUT)
				continue;
			if (n == cap)
				ids = realloc(ids, sizeof *ids * (cap = cap ? cap * 2 : 1024));
			ids[n++] = strndup(op.a, op.alen);
		}
	}
	mbj_iter_close(it);
	qsort(ids, n, sizeof *ids, cmp_str);
	for (size_t i = 1; i < n; i++)
		if (!strcmp(ids[i - 1], ids[i]))
			fail_msg("page %s put twice", ids[i]);
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

/* Lines (acknowledged writes) in the writers' ack files. */
static uint64_t acked_total(char acks[][4300], int k)
{
	uint64_t n = 0;

	for (int i = 0; i < k; i++) {
		FILE *fp = fopen(acks[i], "r");
		int ch;
		if (!fp)
			continue;
		while ((ch = getc(fp)) != EOF)
			n += ch == '\n';
		fclose(fp);
	}
	return n;
}

/* Until the writers acknowledged @more writes past now.  Counted in their
 * ack files, not asked of the cluster (a handle's view of it may lag a
 * node's death); a writer that exited fails at once, naming it; the bound
 * is for a broken run only, scaled by MEMBANK_TEST_SLOW. */
static void progress(char acks[][4300], const pid_t *pid, int k, uint64_t more)
{
	uint64_t from = acked_total(acks, k);

	for (int i = 0; i < WAIT_S * 10 * slow(); i++) {
		if (acked_total(acks, k) >= from + more)
			return;
		for (int w = 0; w < k; w++) {
			siginfo_t si;
			memset(&si, 0, sizeof si);
			if (!waitid(P_PID, (id_t)pid[w], &si, WEXITED | WNOHANG | WNOWAIT) &&
			    si.si_pid == pid[w])
				fail_msg("writer %d exited (code %d) while %llu more acks were awaited",
				         w, si.si_status, (unsigned long long)more);
		}
		usleep(100000);
	}
	fail_msg("the writers did not acknowledge %llu more writes in %d s",
	         (unsigned long long)more, WAIT_S * slow());
}

/* The stream's leader node (cluster.py names its servers n1, n2, ...),
 * asked until a node answers as leader (bounded: an election may run). */
static int leader_of(mb_bank *b)
{
	mb_cluster_info ci;

	for (int i = 0; i < WAIT_S * 10 * slow(); i++) {
		if (!mb_cluster_status(b, &ci) && ci.reachable && ci.leader[0] == 'n') {
			int l = atoi(ci.leader + 1) - 1;
			assert_true(l >= 0 && l < nodes());
			assert_int_equal(ci.replicas, (uint32_t)nodes());
			return l;
		}
		usleep(100000);
	}
	fail_msg("no stream leader in %d s", WAIT_S * slow());
	return -1;
}

/* Two machines, two writer processes each (churn, until told to stop). */
static int start_writers(const fx *f, char acks[][4300], pid_t *pid)
{
	int k = 0;

	for (int i = 0; i < 2; i++)
		for (int p = 0; p < 2; p++) {
			char ms[8], ps[8];
			snprintf(ms, sizeof ms, "%d", i);
			snprintf(ps, sizeof ps, "%d", p);
			snprintf(acks[k], sizeof acks[k], "%s/acks%d", f->dir, k);
			pid[k] = spawn((const char *[]){ "churn", f->dir, f->url, ms, ps, "100000000",
			                                 acks[k], NULL });
			k++;
		}
	return k;
}

/* Stop the writers (each exits 0: none failed), then: every acknowledged
 * write on both machines, none put twice, the same state and snapshots. */
static void finish_writers(const fx *f, mb_bank **m, char acks[][4300], const pid_t *pid, int k)
{
	char cmd[4300];
	FILE *stop;

	snprintf(cmd, sizeof cmd, "%s/stop", f->dir);
	stop = fopen(cmd, "w");
	assert_non_null(stop);
	fclose(stop);
	for (int i = 0; i < k; i++)
		assert_int_equal(wait_child(pid[i], WAIT_S * 2 * slow()), 0);
	assert_same_state(m[0], m[1]);
	for (int i = 0; i < k; i++) {
		FILE *fp = fopen(acks[i], "r");
		char line[128];
		int acked = 0;
		assert_non_null(fp);
		while (fgets(line, sizeof line, fp)) {
			line[strcspn(line, "\n")] = '\0';
			for (int j = 0; j < 2; j++)
				assert_int_equal(page_int(m[j], line, "k"), 1);
			acked++;
		}
		fclose(fp);
		assert_true(acked > 0);
	}
	/* none twice: each page's put is in the stream at most once */
	assert_puts_once(f, 0);
	assert_puts_once(f, 1);
	assert_same_snapshots(f, m, 2);
}

/* kill -9 a follower node, then the leader node, during a workload of two
 * machines (two writers each), restarting each: no acknowledged write lost,
 * none twice, every machine the same. */
static void test_nodes_killed(void **state)
{
	fx *f = *state;
	mb_bank *m[2];
	pid_t pid[4];
	char ans[128], cmd[128], acks[4][4300];
	int k, leader, follower;

	if (nodes() < 3)
		skip();
	for (int i = 0; i < 2; i++)
		m[i] = machine(f, i);
	k = start_writers(f, acks, pid);
	progress(acks, pid, k, 40);
	leader = leader_of(m[0]);
	follower = (leader + 1) % nodes();
	snprintf(cmd, sizeof cmd, "kill %d", follower);
	control(cmd, ans, sizeof ans);
	progress(acks, pid, k, 40);
	snprintf(cmd, sizeof cmd, "restart %d", follower);
	control(cmd, ans, sizeof ans);
	snprintf(cmd, sizeof cmd, "kill %d", leader);
	control(cmd, ans, sizeof ans);
	progress(acks, pid, k, 40);
	snprintf(cmd, sizeof cmd, "restart %d", leader);
	control(cmd, ans, sizeof ans);
	control("wait", ans, sizeof ans);
	progress(acks, pid, k, 40);
	finish_writers(f, m, acks, pid, k);
	for (int i = 0; i < 2; i++)
		mb_close(m[i]);
}

/* The stream's leader node stopped (SIGSTOP) during a workload of two
 * machines: 40 writes acknowledged after the stop prove a new leader was
 * elected (a stopped leader acknowledges nothing), so the stop outlasted
 * the election timeout, with no sleep; then SIGCONT (the old leader comes
 * back behind, as a follower): no acknowledged write lost, none twice,
 * the same state.  (How soon the resumed node is current again is the
 * server's business, not asked: on a busy machine it may take minutes.) */
static void test_leader_stopped(void **state)
{
	fx *f = *state;
	mb_bank *m[2];
	pid_t pid[4];
	char ans[128], cmd[128], acks[4][4300];
	int k, leader;

	if (nodes() < 3)
		skip();
	for (int i = 0; i < 2; i++)
		m[i] = machine(f, i);
	k = start_writers(f, acks, pid);
	progress(acks, pid, k, 40);
	leader = leader_of(m[0]);
	snprintf(cmd, sizeof cmd, "stop %d", leader);
	control(cmd, ans, sizeof ans);
	progress(acks, pid, k, 40);
	assert_int_not_equal(leader_of(m[1]), leader);
	snprintf(cmd, sizeof cmd, "cont %d", leader);
	control(cmd, ans, sizeof ans);
	progress(acks, pid, k, 40);
	/* every writer writes again, those connected to the stopped node too
	 * (they may have waited for it: a stopped server is seen dead only
	 * after libnats' pings, or their write's bound) */
	for (int w = 0; w < k; w++)
		progress(acks + w, pid + w, 1, 1);
	finish_writers(f, m, acks, pid, k);
	for (int i = 0; i < 2; i++)
		mb_close(m[i]);
}

/* Turns: machine 0's two writers write without a pause, each publish right
 * after the one before; machine 1 waits 30 ms before each of its publishes
 * (MEMBANK_TEST_SLOW_PUBLISH_MS), so it would lose every race (machine 0
 * publishes every few ms) and each of its writes would fail at its bound.
 * It asks for the turn after TURN_AFTER lost races, and machine 0 waits
 * for its write: each of its 8 writes succeeds; machine 0's go on; the
 * same state on both machines. */
static void test_turns(void **state)
{
	fx *f = *state;
	mb_bank *m[2];
	pid_t pid[2];
	char acks[2][4300];

	for (int i = 0; i < 2; i++)
		m[i] = machine(f, i);
	for (int p = 0; p < 2; p++) {
		char ps[8];
		snprintf(ps, sizeof ps, "%d", p);
		snprintf(acks[p], sizeof acks[p], "%s/acks%d", f->dir, p);
		pid[p] = spawn((const char *[]){ "churn", f->dir, f->url, "0", ps, "100000000",
		                                 acks[p], NULL });
	}
	progress(acks, pid, 2, 40);
	setenv("MEMBANK_TEST_SLOW_PUBLISH_MS", "30", 1);
	for (int i = 0; i < 8; i++) {
		char id[32];
		snprintf(id, sizeof id, "slow%d", i);
		put(m[1], id, "{\"k\":1}");
	}
	unsetenv("MEMBANK_TEST_SLOW_PUBLISH_MS");
	assert_true(stat_of(m[1], "cluster", "turns_asked") >= 1);
	progress(acks, pid, 2, 40);
	finish_writers(f, m, acks, pid, 2);
	for (int i = 0; i < 8; i++) {
		char id[32];
		snprintf(id, sizeof id, "slow%d", i);
		assert_int_equal(page_int(m[0], id, "k"), 1);
	}
	for (int i = 0; i < 2; i++)
		mb_close(m[i]);
}

/* Writer torture: on each of two machines a writer goes on while, round
 * after round, another writer process of one machine or the other is
 * killed (SIGKILL) at a random instant: after a random number of its
 * acknowledged writes (0: maybe during its open) and a random pause
 * (anywhere in a write: before its publish, holding the write queue's
 * lock, after the stream acknowledged, before its local commit).  Whatever
 * the instant: the other writers go on (none fails), every acknowledged
 * write is on both machines, no page is put twice in either journal, and
 * both machines end in the same state.  The seed is printed. */
static void test_writer_torture(void **state)
{
	enum { ROUNDS = 16, STEADY = 2 };
	fx *f = *state;
	mb_bank *m[2];
	pid_t pid[STEADY + ROUNDS];
	char acks[STEADY + ROUNDS][4300], cmd[4300];
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	FILE *stop;

	printf("writer torture: seed %u\n", seed);
	srand(seed);
	for (int i = 0; i < 2; i++)
		m[i] = machine(f, i);
	for (int k = 0; k < STEADY + ROUNDS; k++)
		snprintf(acks[k], sizeof acks[k], "%s/acks%d", f->dir, k);
	for (int i = 0; i < STEADY; i++) {
		char ms[8], ps[8];
		snprintf(ms, sizeof ms, "%d", i);
		snprintf(ps, sizeof ps, "%d", i);
		pid[i] = spawn((const char *[]){ "churn", f->dir, f->url, ms, ps, "100000000",
		                                 acks[i], NULL });
	}
	for (int r = 0; r < ROUNDS; r++) {
		int k = STEADY + r, status = 0;
		uint64_t want = (uint64_t)(rand() % 12);
		char ms[8], ps[8];
		snprintf(ms, sizeof ms, "%d", r % 2);
		snprintf(ps, sizeof ps, "%d", 10 + r);
		pid[k] = spawn((const char *[]){ "churn", f->dir, f->url, ms, ps, "100000000",
		                                 acks[k], NULL });
		if (want)
			progress(acks + k, pid + k, 1, want);
		usleep((useconds_t)(rand() % 20000));
		assert_int_equal(kill(pid[k], SIGKILL), 0);
		assert_int_equal(waitpid(pid[k], &status, 0), pid[k]);
		assert_true(WIFSIGNALED(status));   /* killed, never failed */
	}
	/* the writers that were not killed go on, on both machines */
	progress(acks, pid, STEADY, 20);
	snprintf(cmd, sizeof cmd, "%s/stop", f->dir);
	stop = fopen(cmd, "w");
	assert_non_null(stop);
	fclose(stop);
	for (int i = 0; i < STEADY; i++)
		assert_int_equal(wait_child(pid[i], WAIT_S * 2 * slow()), 0);
	assert_same_state(m[0], m[1]);
	for (int k = 0; k < STEADY + ROUNDS; k++) {
		FILE *fp = fopen(acks[k], "r");
		char line[128];
		if (!fp)
			continue;   /* killed before it opened its file */
		while (fgets(line, sizeof line, fp)) {
			if (!strchr(line, '\n'))
				break;  /* a line cut by the kill: not reported whole */
			line[strcspn(line, "\n")] = '\0';
			for (int j = 0; j < 2; j++)
				if (page_int(m[j], line, "k") != 1)
					fail_msg("acknowledged %s missing on machine %d", line, j);
		}
		fclose(fp);
	}
	assert_puts_once(f, 0);
	assert_puts_once(f, 1);
	assert_same_snapshots(f, m, 2);
	for (int i = 0; i < 2; i++)
		mb_close(m[i]);
}

/* A child started by spawn(): argv = prog --role ROLE DIR URL ARGS... */
static int role(int argc, char **argv)
{
	fx f = { 0 };

	if (argc < 5)
		return 2;
	f.dir = argv[3];
	snprintf(f.url, sizeof f.url, "%s", argv[4]);
	if (!strcmp(argv[2], "put") && argc == 7)
		return role_put(&f, atoi(argv[5]), argv[6]);
	if (!strcmp(argv[2], "work") && argc == 8)
		return work(&f, atoi(argv[5]), atoi(argv[6]), atoi(argv[7]));
	if (!strcmp(argv[2], "churn") && argc == 9)
		return role_churn(&f, atoi(argv[5]), atoi(argv[6]), atoi(argv[7]), argv[8]);
	if (!strcmp(argv[2], "hold") && argc == 8)
		return role_hold(&f, atoi(argv[5]), atoi(argv[6]), atoi(argv[7]));
	if (!strcmp(argv[2], "boot-die") && argc == 9)
		return role_boot_die(&f, atoi(argv[5]), atoi(argv[6]), atoi(argv[7]), argv[8]);
	if (!strcmp(argv[2], "leader") && argc == 10)
		return role_leader(&f, atoi(argv[5]), argv[6], atoi(argv[7]), atoi(argv[8]),
		                   atoi(argv[9]));
	return 2;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_two_machines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credentials, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conflict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leader_killed_after_publish, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leader_killed_after_append, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leader_killed_before_publish_other_wrote, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_leader_killed_after_publish_other_wrote, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_foreign_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recreated_stream_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_repair_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_props_one_per_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreachable_cluster, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bootstrap_after_purge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bootstrap_keeps_error_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_behind_purge_while_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_behind_purge_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_machines_three_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_three_machines_two_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nodes_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_torture, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leader_stopped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_turns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge_keeps_recent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_behind_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_behind_other_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gap_not_filled, setup, teardown),
	};

	if (argc > 2 && !strcmp(argv[1], "--role"))
		return role(argc, argv);
	if (!getenv("MEMBANK_TEST_NATS_URL")) {
		fprintf(stderr, "skipped: MEMBANK_TEST_NATS_URL is not set\n");
		return 77;
	}
	if (getenv("MEMBANK_TEST_FILTER"))   /* e.g. "test_nodes*" */
		cmocka_set_test_filter(getenv("MEMBANK_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
