/*
 * test_gsync.c - group commit across processes and threads; a leader
 * killed in the middle of its fdatasync strands nobody.
 *
 * An flock on "<base>/writer.lock" stands in for the store's writer lock,
 * and a MAP_SHARED anonymous page holds the committed end (the store keeps
 * it in LMDB).
 */
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "jtest.h"

struct shared {
	mbj_pos end;
	uint64_t syncs[8];
	int leader_in_sync;
};

/* Per process (each child has its own copy after fork). */
static uint64_t my_syncs;
static volatile struct shared *kill_flag;

static int counting_fdatasync(int fd)
{
	my_syncs++;
	return fdatasync(fd);
}

static int armed;   /* set by the leader child just before mbj_sync */

static int dying_fdatasync(int fd)
{
	if (!armed)
		return fdatasync(fd);
	kill_flag->leader_in_sync = 1;
	usleep(300 * 1000);
	raise(SIGKILL);
	return 0;
}

/* The leader stops itself inside its fdatasync (SIGSTOP: alive, holding
 * its leader lock, not progressing) until the test sends SIGCONT. */
static int stopping_fdatasync(int fd)
{
	if (!armed)
		return fdatasync(fd);
	kill_flag->leader_in_sync = 1;
	raise(SIGSTOP);
	return fdatasync(fd);
}

static const mbj_io stopping_io = { NULL, stopping_fdatasync, NULL };
static const mbj_io counting_io = { NULL, counting_fdatasync, NULL };
static const mbj_io dying_io = { NULL, dying_fdatasync, NULL };

static struct shared *shared_page(void)
{
	void *p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE,
	               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	memset(p, 0, sizeof(struct shared));
	return p;
}

/* Under the stand-in writer lock: settle, append, commit the end. */
static uint64_t locked_append(mbj_log *log, int lockfd, struct shared *sh)
{
	uint8_t buf[250];
	mbj_record rec;
	mbj_pos end;

	if (flock(lockfd, LOCK_EX) < 0)
		_exit(10);
	end = sh->end;
	if (mbj_next_at(log, &end, &rec) != 0)
		_exit(11);
	memset(buf, (int)(end.seq & 0xff), sizeof(buf));
	if (mbj_append(log, &end, 1, 0, buf, sizeof(buf), &end) != 0)
		_exit(12);
	sh->end = end;
	flock(lockfd, LOCK_UN);
	return end.seq;
}

static void writer_child(const char *base, const char *jdir,
                         struct shared *sh, int idx, int count,
                         const mbj_io *io)
{
	char lockpath[128];
	mbj_options o = { .segment_bytes = 256 << 10, .io = io };
	mbj_log *log;

	snprintf(lockpath, sizeof(lockpath), "%s/writer.lock", base);
	int lockfd = open(lockpath, O_RDWR | O_CREAT, 0600);
	if (lockfd < 0 || mbj_open(jdir, &o, &log) != 0)
		_exit(2);
	for (int i = 0; i < count; i++) {
		uint64_t seq = locked_append(log, lockfd, sh);
		if (mbj_sync(log, seq) != 0)
			_exit(3);
		if (mbj_durable_seq(log) < seq)
			_exit(4);
	}
	sh->syncs[idx] = my_syncs;
	mbj_close(log);
	_exit(0);
}

static void leader_child(const char *base, const char *jdir,
                         struct shared *sh, const mbj_io *io)
{
	char lockpath[128];
	mbj_options o = { .io = io };
	mbj_log *log;

	snprintf(lockpath, sizeof(lockpath), "%s/writer.lock", base);
	int lockfd = open(lockpath, O_RDWR | O_CREAT, 0600);
	if (lockfd < 0 || mbj_open(jdir, &o, &log) != 0)
		_exit(2);
	uint64_t seq = locked_append(log, lockfd, sh);
	armed = 1;
	int r = mbj_sync(log, seq);
	_exit(io == &dying_io ? 5 : r == 0 && mbj_durable_seq(log) >= seq ? 0 : 6);
}

/* Wait for @pid at most @ms milliseconds; kill it past that. */
static int wait_bounded(pid_t pid, int ms)
{
	int status;

	for (int t = 0; t < ms; t++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
		usleep(1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

static void test_group_commit_four_processes(void **state)
{
	(void)state;
	char base[64], jdir[80];
	struct shared *sh = shared_page();
	enum { P = 4, EACH = 1500 };
	pid_t pids[P];
	mbj_log *log;

	jt_mkdir_on("/tmp", base, jdir);
	/* the children race to create the directory and sync.shm */
	for (int i = 0; i < P; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0)
			writer_child(base, jdir, sh, i, EACH, &counting_io);
	}
	for (int i = 0; i < P; i++)
		assert_int_equal(wait_bounded(pids[i], 60000), 0);
	uint64_t syncs = 0;
	for (int i = 0; i < P; i++)
		syncs += sh->syncs[i];
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	mbj_report rep;
	assert_int_equal(mbj_verify(jdir, &rep), 0);
	assert_int_equal(rep.records, P * EACH);
	assert_false(rep.torn_tail);
	assert_true(mbj_durable_seq(log) >= P * EACH);
	print_message("group commit: %d records, %llu fdatasyncs, %.2f records "
	              "per sync\n", P * EACH, (unsigned long long)syncs,
	              (double)(P * EACH) / (double)syncs);
	assert_true(syncs < P * EACH);
	mbj_close(log);
	munmap(sh, sizeof(*sh));
	jt_rm_rf(base);
}

static void test_killed_leader_strands_nobody(void **state)
{
	(void)state;
	char base[64], jdir[80];
	struct shared *sh = shared_page();
	mbj_log *log;

	kill_flag = sh;
	jt_mkdir_on("/tmp", base, jdir);
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	pid_t leader = fork();
	assert_true(leader >= 0);
	if (leader == 0)
		leader_child(base, jdir, sh, &dying_io);
	for (int t = 0; t < 5000 && !sh->leader_in_sync; t++)
		usleep(1000);
	assert_int_equal(sh->leader_in_sync, 1);
	pid_t others[3];
	for (int i = 0; i < 3; i++) {
		others[i] = fork();
		assert_true(others[i] >= 0);
		if (others[i] == 0)
			writer_child(base, jdir, sh, i + 1, 20, NULL);
	}
	/* The leader is not reaped before the others finish: a zombie must
	 * not look alive to them. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(wait_bounded(others[i], 10000), 0);
	assert_int_equal(wait_bounded(leader, 1000), 100);
	assert_true(mbj_durable_seq(log) >= 61);
	mbj_report rep;
	assert_int_equal(mbj_verify(jdir, &rep), 0);
	assert_int_equal(rep.records, 61);
	mbj_close(log);
	munmap(sh, sizeof(*sh));
	jt_rm_rf(base);
}

/* A leader stopped inside its fdatasync (not dead: it keeps its lock)
 * makes the other full writers wait at most about a second each, not
 * forever: they sync by themselves.  When it continues it completes. */
static void test_stopped_leader_strands_nobody(void **state)
{
	(void)state;
	char base[64], jdir[80];
	struct shared *sh = shared_page();
	struct timespec t0, t1;
	mbj_log *log;
	int status;

	kill_flag = sh;
	jt_mkdir_on("/tmp", base, jdir);
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	pid_t leader = fork();
	assert_true(leader >= 0);
	if (leader == 0)
		leader_child(base, jdir, sh, &stopping_io);
	assert_int_equal(waitpid(leader, &status, WUNTRACED), leader);
	assert_true(WIFSTOPPED(status));
	assert_int_equal(sh->leader_in_sync, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t others[3];
	for (int i = 0; i < 3; i++) {
		others[i] = fork();
		assert_true(others[i] >= 0);
		if (others[i] == 0)
			writer_child(base, jdir, sh, i + 1, 20, NULL);
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(wait_bounded(others[i], 30000), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	print_message("a stopped leader: 60 full writes by 3 processes took %.2f s\n", s);
	assert_true(s < 20.0);
	assert_true(mbj_durable_seq(log) >= 61);
	/* the leader continues, finishes its sync and steps down */
	assert_int_equal(kill(leader, SIGCONT), 0);
	assert_int_equal(wait_bounded(leader, 10000), 0);
	mbj_pos end = sh->end;
	assert_int_equal(jt_append(log, &end), 0);
	assert_int_equal(mbj_sync(log, end.seq), 0);
	assert_int_equal(mbj_durable_seq(log), 62);
	mbj_close(log);
	munmap(sh, sizeof(*sh));
	jt_rm_rf(base);
}

struct thread_arg {
	mbj_log *log;
	pthread_mutex_t *writer;
	mbj_pos *end;
	int count;
	int rc;
};

static void *thread_writer(void *p)
{
	struct thread_arg *a = p;
	uint8_t buf[100] = { 1 };

	for (int i = 0; i < a->count && a->rc == 0; i++) {
		mbj_record rec;
		pthread_mutex_lock(a->writer);
		mbj_pos end = *a->end;
		a->rc = mbj_next_at(a->log, &end, &rec);
		if (a->rc == 0)
			a->rc = mbj_append(a->log, &end, 1, 0, buf, sizeof(buf), &end);
		if (a->rc == 0)
			*a->end = end;
		pthread_mutex_unlock(a->writer);
		if (a->rc == 0)
			a->rc = mbj_sync(a->log, end.seq);
	}
	return NULL;
}

static void test_threads_share_one_log(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_options o = { .segment_bytes = JT_SMALL_SEG };
	mbj_log *log;
	pthread_mutex_t writer = PTHREAD_MUTEX_INITIALIZER;
	mbj_pos end = { 0, 0, 0 };
	struct thread_arg args[4];
	pthread_t th[4];

	jt_mkdir_on("/tmp", base, jdir);
	assert_int_equal(mbj_open(jdir, &o, &log), 0);
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){ log, &writer, &end, 500, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, thread_writer,
		                                &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].rc, 0);
	}
	assert_int_equal(end.seq, 2000);
	assert_true(mbj_durable_seq(log) >= 2000);
	mbj_report rep;
	assert_int_equal(mbj_verify(jdir, &rep), 0);
	assert_int_equal(rep.records, 2000);
	mbj_close(log);
	jt_rm_rf(base);
}

/* Readers take no lock: one that races a writer (appends and rolls) must
 * never see damage, only a shorter journal. */
static void test_reader_races_writer(void **state)
{
	(void)state;
	char base[64], jdir[80];
	struct shared *sh = shared_page();

	jt_mkdir(base, jdir);
	assert_int_equal(mkdir(jdir, 0700), 0);
	pid_t w = fork();
	assert_true(w >= 0);
	if (w == 0) {
		mbj_options o = { .segment_bytes = JT_SMALL_SEG };
		mbj_log *log;
		mbj_pos end = { 0, 0, 0 };
		if (mbj_open(jdir, &o, &log) != 0)
			_exit(2);
		for (int i = 0; i < 3000; i++)
			if (jt_append(log, &end) != 0)
				_exit(3);
		sh->leader_in_sync = 1;   /* done */
		mbj_close(log);
		_exit(0);
	}
	uint64_t prev = 0, rounds = 0, after = 0;
	while (after < 2) {
		after += sh->leader_in_sync;   /* one full round after the end */
		mbj_report rep;
		int r = mbj_verify(jdir, &rep);
		if (r != 0)
			print_message("verify: %d %s at %s:%llu\n", r, rep.reason,
			              rep.damage_segment,
			              (unsigned long long)rep.damage_offset);
		assert_int_equal(r, 0);
		assert_true(rep.records >= prev);
		prev = rep.records;
		rounds++;
	}
	assert_int_equal(wait_bounded(w, 30000), 0);
	assert_int_equal(prev, 3000);
	munmap(sh, sizeof(*sh));
	jt_rm_rf(base);
}

/* A process that dies holding the sync.shm mutex blocks nobody. */
static void test_owner_dead_mutex_recovered(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_log *log;
	mbj_pos end = { 0, 0, 0 };

	jt_mkdir(base, jdir);
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	pid_t c = fork();
	assert_true(c >= 0);
	if (c == 0) {
		mbj_log *mine;
		if (mbj_open(jdir, NULL, &mine) != 0)
			_exit(2);
		mbj_shm_lock(mine);
		raise(SIGKILL);
	}
	assert_int_equal(wait_bounded(c, 5000), 100);
	assert_int_equal(jt_append(log, &end), 0);
	assert_int_equal(mbj_sync(log, end.seq), 0);
	assert_int_equal(mbj_durable_seq(log), 1);
	mbj_close(log);
	jt_rm_rf(base);
}

/* After a reboot sync.shm is stale: it must not claim durability. */
static void test_other_boot_resets_sync_state(void **state)
{
	(void)state;
	char base[64], jdir[80], shm[128];
	mbj_log *log;
	mbj_pos end = { 0, 0, 0 };

	jt_mkdir(base, jdir);
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(jt_append(log, &end), 0);
	assert_int_equal(mbj_sync(log, 3), 0);
	assert_int_equal(mbj_durable_seq(log), 3);
	mbj_close(log);
	/* the boot id lives at bytes 16..63 of the header */
	snprintf(shm, sizeof(shm), "%s/sync.shm", jdir);
	int fd = open(shm, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "an-older-boot", 13, 16), 13);
	close(fd);
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	assert_int_equal(mbj_durable_seq(log), 0);
	mbj_record rec;
	assert_int_equal(mbj_next_at(log, &end, &rec), 0);
	assert_int_equal(jt_append(log, &end), 0);
	assert_int_equal(mbj_sync(log, 4), 0);
	assert_int_equal(mbj_durable_seq(log), 4);
	mbj_close(log);
	jt_rm_rf(base);
}

static void test_sync_of_unwritten_seq_is_refused(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_log *log;
	mbj_pos end = { 0, 0, 0 };

	jt_mkdir_on("/tmp", base, jdir);
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	assert_int_equal(mbj_sync(log, 0), 0);
	assert_int_equal(jt_append(log, &end), 0);
	assert_int_equal(mbj_sync(log, 1), 0);
	assert_int_equal(mbj_durable_seq(log), 1);
	assert_int_equal(mbj_sync(log, 2), MBJ_EINVAL);
	mbj_close(log);
	jt_rm_rf(base);
}

/* GATHERING: a sync notes what it covered.  A lone writer after a sync of
 * three records still syncs (waiting at most the bound, never for writers
 * that do not come) and notes one, so that the next lone sync does not
 * wait at all. */
static void test_gathering_notes_and_bounds(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_log *log;
	mbj_pos end = { 0, 0, 0 };
	uint32_t covered, us;
	uint64_t syncs;

	jt_mkdir_on("/tmp", base, jdir);
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(jt_append(log, &end), 0);
	syncs = mbj_sync_count(log);
	assert_int_equal(mbj_sync(log, 3), 0);
	mbj_shm_gathering(log, &covered, &us);
	assert_int_equal(covered, 3);
	assert_int_equal(mbj_sync_count(log), syncs + 1);
	for (int i = 4; i <= 6; i++) {   /* lone writes: each its own sync */
		assert_int_equal(jt_append(log, &end), 0);
		assert_int_equal(mbj_sync(log, (uint64_t)i), 0);
		assert_int_equal(mbj_durable_seq(log), (uint64_t)i);
		mbj_shm_gathering(log, &covered, &us);
		assert_int_equal(covered, 1);
	}
	assert_int_equal(mbj_sync_count(log), syncs + 4);
	mbj_close(log);
	jt_rm_rf(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_group_commit_four_processes),
		cmocka_unit_test(test_killed_leader_strands_nobody),
		cmocka_unit_test(test_threads_share_one_log),
		cmocka_unit_test(test_reader_races_writer),
		cmocka_unit_test(test_owner_dead_mutex_recovered),
		cmocka_unit_test(test_other_boot_resets_sync_state),
		cmocka_unit_test(test_sync_of_unwritten_seq_is_refused),
		cmocka_unit_test(test_gathering_notes_and_bounds),
		cmocka_unit_test(test_stopped_leader_strands_nobody),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
