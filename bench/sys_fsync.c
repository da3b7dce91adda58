/*
 * sys_fsync.c - the physical limit of a durable write: write() of the bytes
 * of one journal record (a 25-byte header, then the msgpack payload membank
 * journals: [id, properties] for a page, [a, b] for an event), then, in full
 * durability, fdatasync().  Fast durability is the write() alone.
 *
 * Default: one file DIR/fsync.log opened O_APPEND by every worker (the
 * journal is one shared file too); --own-files gives each worker
 * DIR/fsync.<i>.  Files grow by appending, as a plain log does.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define REC_HDR 25u

typedef struct fs {
	int fd;
	bool full;
} fs;

static void path_of(const bench_cfg *cfg, char *buf, size_t cap, int worker)
{
	if (cfg->shared_file)
		snprintf(buf, cap, "%s/fsync.log", cfg->dir);
	else
		snprintf(buf, cap, "%s/fsync.%d", cfg->dir, worker);
}

/* Every cell starts from empty files: a log grown by a fast cell would make
 * the next cell's fdatasync pay for its writeback. */
static void fs_reset(const bench_cfg *cfg)
{
	char path[4096];

	for (int i = 0; i < 64; i++) {
		path_of(cfg, path, sizeof path, i);
		unlink(path);
	}
}

static int fs_prefill(const bench_cfg *cfg)
{
	fs_reset(cfg);
	return 0;
}

static int fs_open(const bench_cfg *cfg, void **h)
{
	char path[4096];
	fs *f = calloc(1, sizeof *f);

	if (!f)
		return -1;
	path_of(cfg, path, sizeof path, cfg->worker);
	f->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (f->fd < 0) {
		fprintf(stderr, "fsync: open %s: %s\n", path, strerror(errno));
		free(f);
		return -1;
	}
	f->full = cfg->full;
	*h = f;
	return 0;
}

/* The journal record of the operation into @p; returns its length. */
static size_t record(uint8_t *p, size_t cap, bench_op op, uint32_t key, uint64_t n)
{
	const char *a = n % 2 ? bench_error_type() : "success";
	const char *b = n % 2 ? bench_error_message() : NULL;
	size_t len = REC_HDR;
	char id[BENCH_KEY_MAX];

	memset(p, 0xa5, REC_HDR);
	p[len++] = 0x92;
	if (op == OP_UPSERT) {
		const bench_value *v = bench_value_get(n);
		size_t il = bench_key(id, key);

		if (len + 2 + il + v->mp_len > cap)
			return 0;
		p[len++] = (uint8_t)(0xa0 | il);
		memcpy(p + len, id, il);
		len += il;
		memcpy(p + len, v->mp, v->mp_len);
		return len + v->mp_len;
	}
	p[len++] = (uint8_t)(0xa0 | strlen(a));
	memcpy(p + len, a, strlen(a));
	len += strlen(a);
	if (!b) {
		p[len++] = 0xc0;
		return len;
	}
	p[len++] = 0xd9;
	p[len++] = (uint8_t)strlen(b);
	memcpy(p + len, b, strlen(b));
	return len + strlen(b);
}

static int fs_op(void *h, const bench_cfg *cfg, bench_op op, uint32_t key, uint64_t n)
{
	fs *f = h;
	uint8_t buf[1024];
	size_t len = record(buf, sizeof buf, op, key, n);

	(void)cfg;
	if (len == 0 || (op != OP_UPSERT && op != OP_EVENT))
		return -1;
	if (write(f->fd, buf, len) != (ssize_t)len) {
		fprintf(stderr, "fsync: write: %s\n", strerror(errno));
		return -1;
	}
	if (f->full && fdatasync(f->fd) != 0) {
		fprintf(stderr, "fsync: fdatasync: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static void fs_close(void *h)
{
	fs *f = h;

	close(f->fd);
	free(f);
}

const bench_sys bench_system = {
	.name = "fsync",
	.prefill = fs_prefill,
	.open = fs_open,
	.op = fs_op,
	.close = fs_close,
	.reset = fs_reset,
};
