/*
 * stream_ckpt.c - the checkpoint kept in the cluster (stream.h,
 * mbs_checkpoint_put / mbs_checkpoint_get).
 *
 * A companion stream "MBCKPT-STREAM" (file storage, the main stream's
 * replicas, deletes denied) on the subjects "membank-ckpt.STREAM.c" (chunks)
 * and "membank-ckpt.STREAM.m" (manifests).  One put = the chunks of the
 * files in order, then one manifest; then everything before its first chunk
 * is purged.  The files: the four JSON files, then checkpoint.json when
 * the directory has one (its error-type state and page counters, which the
 * four files do not hold: a machine started from a checkpoint without them
 * would drop other error types than the rest).  Bodies, little-endian:
 *
 *   chunk:    "MBC1" | put u64 | file u8 (0..4) | index u32 | crc32c u32
 *             | data (1..CK_CHUNK bytes)                      (21 + data)
 *   manifest: "MBM1" | put u64 | seq u64 | first u64 | 4 x (size u64,
 *             crc32c u32) | crc32c u32 of all the bytes before it  (80)
 *         or  "MBM2" | the same with 5 x (size, crc): checkpoint.json too (92)
 *
 * put is a random id; first is the stream seq of the put's first chunk
 * (its manifest's own seq when every file is empty).  get takes the newest
 * manifest whose chunks are all there (chunks of other puts in between are
 * skipped: two machines may put at once; a put that lost its chunks to the
 * other's purge is skipped for the older whole one), checks every chunk's
 * and every file's crc and size, writes the four files into @dir through
 * temporary files (0600, O_EXCL|O_NOFOLLOW), fsyncs them, renames them
 * over the names and fsyncs @dir.  Each file is replaced atomically; the
 * four together are not: the caller gets into a fresh directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "stream_nats.h"

#define CK_FILES 5                     /* at most; the fifth is optional */
#define CK_CHUNK (1u << 20)            /* data bytes of one chunk */
#define CK_CHUNK_HDR 21
#define CK_MANIFEST_SIZE(files) (28 + 12 * (files) + 4)
#define CK_MANIFEST CK_MANIFEST_SIZE(CK_FILES)
#define CK_FILE_MAX (4ull << 30)       /* bytes of one checkpoint file */
#define CK_MAX_MSG ((int32_t)(CK_CHUNK + CK_CHUNK_HDR + 512))
#define CK_KEEP 16                     /* newest manifests looked at */

static const char *const ck_name[CK_FILES] = {
	"notion_pages.json", "sync_status.json", "error_log.json", "config_cache.json",
	"checkpoint.json"
};

typedef struct manifest {
	int files;                         /* 4 (MBM1) or 5 (MBM2) */
	uint64_t msg_seq;                  /* the manifest's own stream seq */
	uint64_t put, seq, first;
	uint64_t size[CK_FILES];
	uint32_t crc[CK_FILES];
} manifest;

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static void subj(const mbs_conn *c, char *out, size_t n, char kind)
{
	snprintf(out, n, "%s.%c", c->ck_subject, kind);
}

/* Publish one message of the companion stream, retried with the same id. */
static int ck_publish(mbs_conn *c, const char *subject, const void *data, size_t len,
                      const char *msg_id, uint64_t *seq)
{
	char w[160];
	natsMsg *m = NULL;
	natsStatus s = natsMsg_Create(&m, subject, NULL, data, (int)len);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id);
	if (s != NATS_OK) {
		natsMsg_Destroy(m);
		return mbs_fail(c, MBJ_ENOMEM, "checkpoint: %s", natsStatus_GetText(s));
	}
	jsErrCode e;
	int rc = mbs_publish_msg(c, m, c->ck_stream, false, seq, &s, &e);
	natsMsg_Destroy(m);
	if (rc != 1)
		return rc;
	return mbs_fail(c, mbs_retryable(s, e) ? MBS_ETIMEOUT : MBJ_EIO,
	                "%s: checkpoint: publish to %s: %s", c->redacted, c->ck_stream,
	                mbs_why(s, e, w, sizeof w));
}

static uint64_t new_put_id(void)
{
	uint64_t id = 0;
	if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id || id == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		id = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
		     ((uint64_t)getpid() << 16) ^ (uint64_t)(uintptr_t)&ts;
	}
	return id ? id : 1;
}

/* The companion stream, created with the main stream's replicas. */
static int ck_stream(mbs_conn *c, bool create)
{
	char sub[MBS_STREAM_MAX + 32];
	jsStreamInfo *si = NULL;
	int rc = mbs_get_info(c, c->ck_stream, &si);
	if (rc == MBS_ENOSTREAM && create) {
		jsStreamInfo *main = NULL;
		if ((rc = mbs_get_info(c, c->stream, &main)))
			return rc;
		uint32_t replicas = main->Config ? (uint32_t)main->Config->Replicas : 1;
		jsStreamInfo_Destroy(main);
		snprintf(sub, sizeof sub, "%s.*", c->ck_subject);
		rc = mbs_add_stream(c, c->ck_stream, sub, NULL, replicas, CK_MAX_MSG, &si);
	}
	if (rc == MBS_ENOSTREAM)
		mbs_fail(c, rc, "%s: no checkpoint in the cluster (no stream %s)", c->redacted,
		         c->ck_stream);
	if (rc)
		return rc;
	snprintf(sub, sizeof sub, "%s.*", c->ck_subject);
	const jsStreamConfig *cf = si->Config;
	if (!cf || cf->SubjectsLen != 1 || !cf->Subjects || !cf->Subjects[0] ||
	    strcmp(cf->Subjects[0], sub) != 0 || cf->Retention != js_LimitsPolicy ||
	    cf->MaxMsgs > 0 || cf->MaxBytes > 0 || cf->MaxAge > 0) {
		jsStreamInfo_Destroy(si);
		return mbs_fail(c, MBS_EFOREIGN, "%s: stream %s is not a membank checkpoint "
		                "stream", c->redacted, c->ck_stream);
	}
	jsStreamInfo_Destroy(si);
	return 0;
}

/* --- put --------------------------------------------------------------- */

static int read_full(int fd, uint8_t *buf, size_t n, size_t *got)
{
	*got = 0;
	while (*got < n) {
		ssize_t k = read(fd, buf + *got, n - *got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		if (k == 0)
			break;
		*got += (size_t)k;
	}
	return 0;
}

/* Publish the chunks of file @f (open @fd, @size bytes). */
static int put_file(mbs_conn *c, int f, int fd, uint64_t size, uint64_t put, uint8_t *buf,
                    uint64_t *first, uint32_t *crc)
{
	char sub[MBS_STREAM_MAX + 32], id[64];
	subj(c, sub, sizeof sub, 'c');
	uint64_t done = 0;
	*crc = 0;
	for (uint32_t index = 0; done < size; index++) {
		size_t want = size - done < CK_CHUNK ? (size_t)(size - done) : CK_CHUNK, got;
		if (read_full(fd, buf + CK_CHUNK_HDR, want, &got) || got != want)
			return mbs_fail(c, MBJ_EIO, "checkpoint: %s: %s", ck_name[f],
			                got != want ? "it shrank while read" : strerror(errno));
		uint32_t cc = mbj_crc32c(0, buf + CK_CHUNK_HDR, want);
		*crc = mbj_crc32c(*crc, buf + CK_CHUNK_HDR, want);
		memcpy(buf, "MBC1", 4);
		put64(buf + 4, put);
		buf[12] = (uint8_t)f;
		put32(buf + 13, index);
		put32(buf + 17, cc);
		snprintf(id, sizeof id, "ckc-%016" PRIx64 "-%d-%u", put, f, index);
		uint64_t seq;
		int rc = ck_publish(c, sub, buf, CK_CHUNK_HDR + want, id, &seq);
		if (rc)
			return rc;
		if (!*first)
			*first = seq;
		done += want;
	}
	return 0;
}

int mbs_checkpoint_put(mbs_conn *c, const char *dir, uint64_t seq)
{
	int fds[CK_FILES] = { -1, -1, -1, -1, -1 };
	uint8_t man[CK_MANIFEST];
	uint8_t *buf = NULL;
	uint64_t size[CK_FILES], first = 0;
	uint32_t crc[CK_FILES];
	int rc = 0, files = CK_FILES;
	int dfd = mbj_fd_above_stdio(open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	                                        O_CLOEXEC));
	if (dfd < 0)
		return mbs_fail(c, MBJ_EIO, "checkpoint: open %s: %s", dir, strerror(errno));
	for (int f = 0; f < files && !rc; f++) {
		struct stat st;
		fds[f] = mbj_fd_above_stdio(openat(dfd, ck_name[f], O_RDONLY | O_NOFOLLOW |
		                                                     O_CLOEXEC));
		if (fds[f] < 0 && f == CK_FILES - 1 && errno == ENOENT)
			files = CK_FILES - 1;      /* no checkpoint.json: the four */
		else if (fds[f] < 0 || fstat(fds[f], &st) != 0)
			rc = mbs_fail(c, MBJ_EIO, "checkpoint: %s/%s: %s", dir, ck_name[f],
			              strerror(errno));
		else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > CK_FILE_MAX)
			rc = mbs_fail(c, MBJ_EINVAL, "checkpoint: %s/%s: not a regular file "
			              "of at most 4 GiB", dir, ck_name[f]);
		else
			size[f] = (uint64_t)st.st_size;
	}
	if (!rc && !(buf = malloc(CK_CHUNK + CK_CHUNK_HDR)))
		rc = mbs_fail(c, MBJ_ENOMEM, "checkpoint: out of memory");
	if (!rc)
		rc = ck_stream(c, true);
	uint64_t put = new_put_id();
	for (int f = 0; f < files && !rc; f++)
		rc = put_file(c, f, fds[f], size[f], put, buf, &first, &crc[f]);
	if (!rc) {
		char sub[MBS_STREAM_MAX + 32], id[64];
		size_t mlen = CK_MANIFEST_SIZE(files);
		memcpy(man, files == CK_FILES ? "MBM2" : "MBM1", 4);
		put64(man + 4, put);
		put64(man + 12, seq);
		put64(man + 20, first);
		for (int f = 0; f < files; f++) {
			put64(man + 28 + 12 * f, size[f]);
			put32(man + 36 + 12 * f, crc[f]);
		}
		put32(man + mlen - 4, mbj_crc32c(0, man, mlen - 4));
		subj(c, sub, sizeof sub, 'm');
		snprintf(id, sizeof id, "ckm-%016" PRIx64, put);
		uint64_t mseq;
		rc = ck_publish(c, sub, man, mlen, id, &mseq);
		if (!rc) {
			/* Whole: the older ones go (this put's chunks start at
			 * first).  Best effort: a failure leaves older ones, which
			 * get skips. */
			mbs_purge_stream(c, c->ck_stream, first ? first : mseq);
		}
	}
	free(buf);
	for (int f = 0; f < CK_FILES; f++)
		if (fds[f] >= 0)
			close(fds[f]);
	close(dfd);
	return rc;
}

/* --- get --------------------------------------------------------------- */

static bool decode_manifest(const uint8_t *b, size_t n, manifest *m)
{
	if (n == CK_MANIFEST_SIZE(CK_FILES - 1) && !memcmp(b, "MBM1", 4))
		m->files = CK_FILES - 1;
	else if (n == CK_MANIFEST_SIZE(CK_FILES) && !memcmp(b, "MBM2", 4))
		m->files = CK_FILES;
	else
		return false;
	if (get32(b + n - 4) != mbj_crc32c(0, b, n - 4))
		return false;
	m->put = get64(b + 4);
	m->seq = get64(b + 12);
	m->first = get64(b + 20);
	for (int f = 0; f < m->files; f++) {
		m->size[f] = get64(b + 28 + 12 * f);
		m->crc[f] = get32(b + 36 + 12 * f);
		if (m->size[f] > CK_FILE_MAX)
			return false;
	}
	return true;
}

/* Read the messages of the companion stream on @filter from @from on,
 * until one at or past @upto (0: none) or the end; @on for each.  The end
 * is the consumer's pending count at 0 (at its creation, then as each
 * message says): no guessing from timeouts. */
static int ck_read(mbs_conn *c, const char *filter, uint64_t from, uint64_t upto,
                   int (*on)(void *ctx, uint64_t seq, const uint8_t *b, size_t n),
                   void *ctx)
{
	char w[160];
	natsSubscription *sub = NULL;
	jsErrCode e = 0;
	natsStatus s;
	int64_t deadline = mbs_now_ms() + c->deadline_ms, step = 20;
	int rc = 0;
	uint64_t next = from, pending = 0;
	bool done = false;
	while (!done && !rc) {
		if (!sub) {
			e = 0;
			s = mbs_pull_sub(c, c->ck_stream, filter, next, &sub, &e);
			if (s != NATS_OK) {
				if (mbs_retryable(s, e) && mbs_backoff(deadline, &step))
					continue;
				return mbs_fail(c, MBJ_EIO, "%s: checkpoint: read %s: %s",
				                c->redacted, c->ck_stream, mbs_why(s, e, w, sizeof w));
			}
			jsConsumerInfo *ci = NULL;
			e = 0;
			s = natsSubscription_GetConsumerInfo(&ci, sub, NULL, &e);
			if (s != NATS_OK) {
				natsSubscription_Unsubscribe(sub);
				natsSubscription_Destroy(sub);
				sub = NULL;
				if (mbs_retryable(s, e) && mbs_backoff(deadline, &step))
					continue;
				return mbs_fail(c, MBJ_EIO, "%s: checkpoint: read %s: %s",
				                c->redacted, c->ck_stream, mbs_why(s, e, w, sizeof w));
			}
			pending = ci->NumPending;
			jsConsumerInfo_Destroy(ci);
		}
		if (pending == 0)
			break;
		/* Never more than what is there: a pull request for more
		 * would wait out its expiry. */
		jsFetchRequest fr;
		jsFetchRequest_Init(&fr);
		fr.Batch = pending < 64 ? (int)pending : 64;
		fr.MaxBytes = 64ll << 20;
		fr.Expires = (int64_t)c->timeout_ms * 1000000;
		if (c->timeout_ms >= 1000)
			fr.Heartbeat = 250ll * 1000000;   /* a lost consumer shows fast */
		natsMsgList list = { NULL, 0 };
		s = natsSubscription_FetchRequest(&list, sub, &fr);
		if (s != NATS_OK && list.Count == 0) {
			natsSubscription_Unsubscribe(sub);
			natsSubscription_Destroy(sub);
			sub = NULL;
			if (mbs_retryable(s, 0) && mbs_backoff(deadline, &step))
				continue;
			return mbs_fail(c, mbs_retryable(s, 0) ? MBS_ETIMEOUT : MBJ_EIO,
			                "%s: checkpoint: read %s: %s", c->redacted, c->ck_stream,
			                mbs_why(s, 0, w, sizeof w));
		}
		for (int i = 0; i < list.Count && !done && !rc; i++) {
			jsMsgMetaData *md = NULL;
			if (natsMsg_GetMetaData(&md, list.Msgs[i]) != NATS_OK)
				continue;
			uint64_t q = md->Sequence.Stream;
			pending = md->NumPending;
			jsMsgMetaData_Destroy(md);
			if (q < next)
				continue;
			if (upto && q >= upto) {
				done = true;
				break;
			}
			rc = on(ctx, q, (const uint8_t *)natsMsg_GetData(list.Msgs[i]),
			        (size_t)natsMsg_GetDataLength(list.Msgs[i]));
			next = q + 1;
			if (pending == 0)
				done = true;
		}
		natsMsgList_Destroy(&list);
	}
	if (sub) {
		natsSubscription_Unsubscribe(sub);
		natsSubscription_Destroy(sub);
	}
	return rc;
}

typedef struct mlist {
	manifest m[CK_KEEP];
	int n;
} mlist;

static int on_manifest(void *ctx, uint64_t seq, const uint8_t *b, size_t n)
{
	mlist *l = ctx;
	manifest m;
	if (!decode_manifest(b, n, &m))
		return 0;                    /* not one: skipped */
	m.msg_seq = seq;
	if (l->n == CK_KEEP) {
		memmove(l->m, l->m + 1, sizeof l->m[0] * (CK_KEEP - 1));
		l->n--;
	}
	l->m[l->n++] = m;
	return 0;
}

/* Writing one manifest's files into temporaries. */
typedef struct restore {
	mbs_conn *c;
	const manifest *m;
	int dfd;
	int fd[CK_FILES];
	char tmp[CK_FILES][64];
	int f;                           /* the file the next chunk belongs to */
	uint32_t index;
	uint64_t off;
	uint32_t crc;
	bool broken;
} restore;

/* Past the files that are done (whole, or empty). */
static void skip_done(restore *r)
{
	while (r->f < r->m->files && r->off == r->m->size[r->f]) {
		if (r->crc != r->m->crc[r->f]) {
			r->broken = true;
			return;
		}
		r->f++;
		r->index = 0;
		r->off = 0;
		r->crc = 0;
	}
}

static int on_chunk(void *ctx, uint64_t seq, const uint8_t *b, size_t n)
{
	restore *r = ctx;
	(void)seq;
	if (r->broken || n < CK_CHUNK_HDR || memcmp(b, "MBC1", 4) != 0 ||
	    get64(b + 4) != r->m->put)
		return 0;                    /* another put's, or not one */
	skip_done(r);
	size_t len = n - CK_CHUNK_HDR;
	const uint8_t *data = b + CK_CHUNK_HDR;
	if (r->broken || r->f >= r->m->files || b[12] != r->f || get32(b + 13) != r->index ||
	    len == 0 || len > CK_CHUNK || len > r->m->size[r->f] - r->off ||
	    get32(b + 17) != mbj_crc32c(0, data, len)) {
		r->broken = true;
		return 0;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t k = pwrite(r->fd[r->f], data + done, len - done,
		                   (off_t)(r->off + done));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return mbs_fail(r->c, errno == ENOSPC ? MBJ_ENOSPC : MBJ_EIO,
			                "checkpoint: write %s: %s", r->tmp[r->f],
			                k < 0 ? strerror(errno) : "short write");
		done += (size_t)k;
	}
	r->crc = mbj_crc32c(r->crc, data, len);
	r->off += len;
	r->index++;
	return 0;
}

static void drop_temps(restore *r)
{
	for (int f = 0; f < CK_FILES; f++)
		if (r->fd[f] >= 0) {
			close(r->fd[f]);
			unlinkat(r->dfd, r->tmp[f], 0);
			r->fd[f] = -1;
		}
}

/* 0 written, 1 broken (try an older one), or an error. */
static int restore_one(mbs_conn *c, int dfd, const manifest *m)
{
	char sub[MBS_STREAM_MAX + 32];
	restore r = { .c = c, .m = m, .dfd = dfd, .fd = { -1, -1, -1, -1, -1 } };
	int rc = 0;
	for (int f = 0; f < m->files && !rc; f++) {
		snprintf(r.tmp[f], sizeof r.tmp[f], ".%s.get-%d", ck_name[f], (int)getpid());
		unlinkat(dfd, r.tmp[f], 0);   /* a crashed get's */
		r.fd[f] = mbj_fd_above_stdio(openat(dfd, r.tmp[f], O_WRONLY | O_CREAT | O_EXCL |
		                                     O_NOFOLLOW | O_CLOEXEC, 0600));
		if (r.fd[f] < 0)
			rc = mbs_fail(c, MBJ_EIO, "checkpoint: create %s: %s", r.tmp[f],
			              strerror(errno));
	}
	subj(c, sub, sizeof sub, 'c');
	if (!rc && m->first && m->first < m->msg_seq)
		rc = ck_read(c, sub, m->first, m->msg_seq, on_chunk, &r);
	if (!rc) {
		skip_done(&r);
		if (r.f != m->files)
			r.broken = true;
	}
	if (rc || r.broken) {
		drop_temps(&r);
		return rc ? rc : 1;
	}
	for (int f = 0; f < m->files && !rc; f++)
		if (fsync(r.fd[f]) != 0)
			rc = mbs_fail(c, MBJ_EIO, "checkpoint: fsync %s: %s", r.tmp[f],
			              strerror(errno));
	for (int f = 0; f < m->files && !rc; f++)
		if (renameat(dfd, r.tmp[f], dfd, ck_name[f]) != 0)
			rc = mbs_fail(c, MBJ_EIO, "checkpoint: rename %s: %s", ck_name[f],
			              strerror(errno));
	if (!rc && fsync(dfd) != 0)
		rc = mbs_fail(c, MBJ_EIO, "checkpoint: fsync the directory: %s", strerror(errno));
	drop_temps(&r);                  /* closes; the renamed names are gone */
	return rc;
}

/* The newest CK_KEEP manifests of the companion stream into @l (none:
 * l->n 0). */
static int manifests(mbs_conn *c, mlist *l)
{
	char sub[MBS_STREAM_MAX + 32];
	int rc = ck_stream(c, false);
	if (rc)
		return rc;
	jsStreamInfo *si = NULL;
	if ((rc = mbs_get_info(c, c->ck_stream, &si)))
		return rc;
	uint64_t first = si->State.FirstSeq, msgs = si->State.Msgs;
	jsStreamInfo_Destroy(si);
	subj(c, sub, sizeof sub, 'm');
	return msgs ? ck_read(c, sub, first ? first : 1, 0, on_manifest, l) : 0;
}

int mbs_checkpoint_newest(mbs_conn *c, uint64_t *seq)
{
	char sub[MBS_STREAM_MAX + 32], w[160];
	int64_t deadline = mbs_now_ms() + c->deadline_ms, step = 20;
	natsMsg *msg = NULL;
	jsErrCode e;
	natsStatus s;
	jsOptions jo;
	manifest m;
	bool ok;

	*seq = 0;
	subj(c, sub, sizeof sub, 'm');
	jsOptions_Init(&jo);
	jo.Wait = c->timeout_ms;
	for (;;) {
		e = 0;
		s = js_GetLastMsg(&msg, c->js, c->ck_stream, sub, &jo, &e);
		if (s == NATS_OK)
			break;
		/* no companion stream, or no manifest on it: none */
		if (s == NATS_NOT_FOUND || e == JSStreamNotFoundErr || e == JSNoMessageFoundErr)
			return 0;
		if (!mbs_retryable(s, e) || !mbs_backoff(deadline, &step))
			return mbs_fail(c, mbs_retryable(s, e) ? MBS_ETIMEOUT : MBJ_EIO,
			                "%s: checkpoint: the newest manifest of %s: %s", c->redacted,
			                c->ck_stream, mbs_why(s, e, w, sizeof w));
	}
	ok = decode_manifest((const uint8_t *)natsMsg_GetData(msg),
	                     (size_t)natsMsg_GetDataLength(msg), &m);
	natsMsg_Destroy(msg);
	if (ok) {
		*seq = m.seq;
		return 0;
	}
	/* the last message is not a manifest (another publisher's): the
	 * newest one before it, as get finds it */
	mlist *l = calloc(1, sizeof *l);
	if (!l)
		return mbs_fail(c, MBJ_ENOMEM, "checkpoint: out of memory");
	int rc = manifests(c, l);
	if (rc == MBS_ENOSTREAM)
		rc = 0;
	if (!rc && l->n)
		*seq = l->m[l->n - 1].seq;
	free(l);
	return rc;
}

int mbs_checkpoint_get(mbs_conn *c, const char *dir, uint64_t *seq)
{
	mlist *l = calloc(1, sizeof *l);
	if (!l)
		return mbs_fail(c, MBJ_ENOMEM, "checkpoint: out of memory");
	int rc = manifests(c, l);
	if (!rc && l->n == 0)
		rc = mbs_fail(c, MBS_ENOSTREAM, "%s: no checkpoint in the cluster", c->redacted);
	int dfd = -1;
	if (!rc) {
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			rc = mbs_fail(c, MBJ_EIO, "checkpoint: mkdir %s: %s", dir, strerror(errno));
		else if ((dfd = mbj_fd_above_stdio(open(dir, O_RDONLY | O_DIRECTORY |
		                                             O_NOFOLLOW | O_CLOEXEC))) < 0)
			rc = mbs_fail(c, MBJ_EIO, "checkpoint: open %s: %s", dir, strerror(errno));
	}
	int broken = 0;
	for (int i = l->n - 1; i >= 0 && !rc; i--) {
		rc = restore_one(c, dfd, &l->m[i]);
		if (rc == 0) {
			*seq = l->m[i].seq;
			break;
		}
		if (rc == 1) {
			broken++;
			rc = i == 0 ? mbs_fail(c, MBJ_ECORRUPT, "%s: checkpoint: none of the %d "
			                       "in the cluster is whole", c->redacted, broken) : 0;
		}
	}
	if (dfd >= 0)
		close(dfd);
	free(l);
	return rc;
}
