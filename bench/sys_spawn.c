/*
 * sys_spawn.c - W5: one short-lived process per operation.
 *
 * The command after "--" is spawned once per operation with {key} and
 * {json} replaced (anywhere inside an argument) by the page id and the
 * properties JSON; its output goes to /dev/null.  The operation is the whole
 * life of the process: posix_spawn to waitpid.  A non-zero exit is an error.
 * The system's name is the basename of the command, so the harness can run
 * `membank`, `sqlite3` and `redis-cli` through the same binary.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define MAX_ARGS 64

extern char **environ;

static int sp_prefill(const bench_cfg *cfg)
{
	if (!cfg->spawn_argv || !cfg->spawn_argv[0]) {
		fprintf(stderr, "spawn: no command after --\n");
		return -1;
	}
	return 0;
}

static int sp_open(const bench_cfg *cfg, void **h)
{
	(void)cfg;
	*h = NULL;
	return 0;
}

/* @tmpl with {key} and {json} replaced, into a new string. */
static char *expand(const char *tmpl, const char *key, const char *json)
{
	bench_buf b = {0};

	if (bench_buf_put(&b, "", 0) != 0)
		return NULL;
	while (*tmpl) {
		int rc;

		if (strncmp(tmpl, "{key}", 5) == 0) {
			rc = bench_buf_put(&b, key, strlen(key));
			tmpl += 5;
		} else if (strncmp(tmpl, "{json}", 6) == 0) {
			rc = bench_buf_put(&b, json, strlen(json));
			tmpl += 6;
		} else {
			rc = bench_buf_put(&b, tmpl++, 1);
		}
		if (rc != 0) {
			free(b.p);
			return NULL;
		}
	}
	return b.p;
}

static int run(char **argv)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int rc, st;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		fprintf(stderr, "spawn: %s: %s\n", argv[0], strerror(rc));
		return -1;
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "spawn: %s exited with status %d\n", argv[0],
		        WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		return -1;
	}
	return 0;
}

static int sp_op(void *h, const bench_cfg *cfg, bench_op op, uint32_t key, uint64_t n)
{
	char *argv[MAX_ARGS + 1] = {NULL};
	char id[BENCH_KEY_MAX];
	int argc = 0, rc = -1;

	(void)h;
	if (op != OP_SPAWN)
		return -1;
	bench_key(id, key);
	for (; cfg->spawn_argv[argc] && argc < MAX_ARGS; argc++) {
		argv[argc] = expand(cfg->spawn_argv[argc], id, bench_value_get(n)->json);
		if (!argv[argc])
			goto out;
	}
	rc = run(argv);
out:
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	return rc;
}

static void sp_close(void *h)
{
	(void)h;
}

const bench_sys bench_system = {
	.name = "spawn",
	.prefill = sp_prefill,
	.open = sp_open,
	.op = sp_op,
	.close = sp_close,
};
