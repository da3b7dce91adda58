/*
 * helpers.h - what the C tests of the bank share (store, hardening,
 * cluster): a fresh bank in a temp directory, documents and stats read back
 * as cJSON, whole-file reads, and forking with a timeout.
 */
#ifndef MEMBANK_TEST_HELPERS_H
#define MEMBANK_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "membank.h"

/* A fresh directory under $TMPDIR (or /tmp) for one test. */
static inline char *tmp_dir(void)
{
	const char *base = getenv("TMPDIR");
	char *p;

	if (asprintf(&p, "%s/membank-test-XXXXXX", base && *base ? base : "/tmp") < 0)
		return NULL;
	return mkdtemp(p);
}

static inline void rm_rf(const char *path)
{
	char *cmd;

	if (asprintf(&cmd, "rm -rf '%s'", path) >= 0) {
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", path);
		free(cmd);
	}
}

/* The usual fixture: a fresh directory, and <dir>/bank for the bank. */
typedef struct bank_fx {
	char *dir;
	char path[4096];   /* <dir>/bank */
} bank_fx;

static inline int fx_setup(void **state)
{
	bank_fx *f = calloc(1, sizeof *f);

	f->dir = tmp_dir();
	snprintf(f->path, sizeof f->path, "%s/bank", f->dir);
	*state = f;
	return f->dir ? 0 : -1;
}

/* Ends a bank_fx, or a suite's own fixture whose first member is its
 * directory (char *dir, from tmp_dir()): the directory and all it holds
 * go, then the fixture. */
static inline int fx_teardown(void **state)
{
	char **dir = *state;

	/* MEMBANK_TEST_KEEP=1: the directory stays, for a failure to be read */
	if (getenv("MEMBANK_TEST_KEEP"))
		fprintf(stderr, "kept %s\n", *dir);
	else
		rm_rf(*dir);
	free(*dir);
	free(*state);
	return 0;
}

/* @path's whole content (NUL-terminated, *len its size), or NULL. */
static inline char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *p = NULL;
	long n;

	if (!fp)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0 &&
	    (p = malloc((size_t)n + 1)) && fread(p, 1, (size_t)n, fp) == (size_t)n) {
		p[n] = '\0';
		if (len)
			*len = (size_t)n;
	} else {
		free(p);
		p = NULL;
	}
	fclose(fp);
	return p;
}

/* A new bank at <dir>/bank with the given durability: no page is evicted
 * or expired (cache_settings are off in a new bank). */
static inline mb_bank *open_bank(const char *dir, mb_durability d)
{
	char path[4096];
	mb_options o;
	mb_bank *b = NULL;

	mb_options_init(&o);
	o.durability = d;
	snprintf(path, sizeof path, "%s/bank", dir);
	if (mb_open(path, &o, &b)) {
		fprintf(stderr, "open %s: %s\n", path, mb_last_error(NULL));
		return NULL;
	}
	return b;
}

static inline cJSON *doc_of(int rc, char *text)
{
	cJSON *j;

	if (rc)
		return NULL;
	j = cJSON_Parse(text);
	mb_free(text);
	return j;
}

static inline cJSON *get_page(mb_bank *b, const char *id)
{
	char *s = NULL;
	int rc = mb_page_get(b, id, &s, NULL);
	return doc_of(rc, s);
}

static inline cJSON *sync_doc(mb_bank *b)
{
	char *s = NULL;
	int rc = mb_sync_status(b, &s);
	return doc_of(rc, s);
}

static inline cJSON *error_doc(mb_bank *b)
{
	char *s = NULL;
	int rc = mb_error_stats(b, &s);
	return doc_of(rc, s);
}

static inline cJSON *config_doc(mb_bank *b)
{
	char *s = NULL;
	int rc = mb_config_get(b, &s);
	return doc_of(rc, s);
}

static inline double num_at(const cJSON *j, const char *a, const char *b)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, a);

	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static inline const char *str_at(const cJSON *j, const char *a, const char *b)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, a);

	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* mb_stats' number at @a, or at @a.@b (@b not NULL); the test fails when
 * there is none. */
static inline uint64_t stat_of(mb_bank *bank, const char *a, const char *b)
{
	char *s = NULL;
	cJSON *j;
	double v;

	assert_int_equal(mb_stats(bank, &s), 0);
	assert_non_null(j = cJSON_Parse(s));
	mb_free(s);
	v = num_at(j, a, b);
	cJSON_Delete(j);
	assert_true(v >= 0);
	return (uint64_t)v;
}

/* mb_stats' counts of pages removed. */
static inline void assert_removed(mb_bank *b, uint64_t evicted, uint64_t expired, uint64_t purged)
{
	assert_int_equal(stat_of(b, "pages_evicted", NULL), evicted);
	assert_int_equal(stat_of(b, "pages_expired", NULL), expired);
	assert_int_equal(stat_of(b, "pages_purged", NULL), purged);
}

typedef struct strbuf {
	char *p;
	size_t len, cap;
} strbuf;

static inline void sb_add(strbuf *s, const char *a)
{
	size_t n = strlen(a);

	if (s->len + n + 1 > s->cap) {
		s->cap = (s->len + n + 1) * 2;
		s->p = realloc(s->p, s->cap);
	}
	memcpy(s->p + s->len, a, n + 1);
	s->len += n;
}

static inline int sb_add_page(void *ctx, const char *id, const char *page)
{
	sb_add(ctx, id);
	sb_add(ctx, "=");
	sb_add(ctx, page ? page : "");
	sb_add(ctx, "\n");
	return 0;
}

/* Every document of the bank as one string, to compare whole states:
 * sync status, error stats, config and every page. */
static inline char *state_of(mb_bank *b)
{
	char *part = NULL;
	strbuf s = { NULL, 0, 0 };
	int (*const get[3])(mb_bank *, char **) = { mb_sync_status, mb_error_stats, mb_config_get };

	for (int i = 0; i < 3; i++) {
		sb_add(&s, get[i](b, &part) ? "?" : part);
		sb_add(&s, "\n");
		mb_free(part);
		part = NULL;
	}
	mb_page_iterate(b, NULL, 0, sb_add_page, &s);
	return s.p;
}

/* The store equals a replay of the journal (and the checkpoint): the whole
 * state is the same before and after mb_rebuild(). */
static inline void assert_rebuild_same(mb_bank *b)
{
	char *before = state_of(b), *after;

	assert_int_equal(mb_rebuild(b), 0);
	after = state_of(b);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

/* Wait for @pid at most @seconds; kill it and fail the test past that. */
static inline int wait_child(pid_t pid, int seconds)
{
	int status;

	for (int i = 0; i < seconds * 100; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

#endif
