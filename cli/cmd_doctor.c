/*
 * cmd_doctor.c - membank doctor: check a bank and change nothing in it.
 *
 * Each check is one entry of the report {"bank","healthy","checks":[...]};
 * a check that fails makes the bank unhealthy (exit 4), a warning does not.
 * Opening the bank finishes what a crashed writer left (rolls a whole
 * record forward, cuts a torn tail), exactly as any process opening it
 * would: that is recovery, not a change of the bank's data.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"

typedef struct report {
	cJSON *checks;
	bool healthy;
} report;

enum level { PASS, WARN, FAIL };

static void add(report *r, const char *name, enum level lv, const char *detail)
{
	static const char *const words[] = { "ok", "warning", "failed" };
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "check", name);
	cJSON_AddStringToObject(o, "result", words[lv]);
	cJSON_AddStringToObject(o, "detail", detail);
	cJSON_AddItemToArray(r->checks, o);
	if (lv == FAIL)
		r->healthy = false;
}

static void check_journal(report *r, const char *path)
{
	char *json = NULL;
	int rc = mb_journal_verify(path, &json);

	if (rc == 0)
		add(r, "journal", PASS, json ? json : "clean");
	else
		add(r, "journal", FAIL, *mb_last_error(NULL) ? mb_last_error(NULL) : mb_strerror(rc));
	mb_free(json);
}

typedef struct walk {
	uint64_t pages;
} walk;

static int count_page(void *ctx, const char *id, const char *page)
{
	(void)id;
	(void)page;
	((walk *)ctx)->pages++;
	return 0;
}

/* Every record of the store decoded: pages, sync, errors, config. */
static void check_store(report *r, mb_bank *b)
{
	char *doc = NULL, detail[256];
	walk w = { 0 };
	uint64_t count = 0;
	int rc;

	if ((rc = mb_page_iterate(b, NULL, 0, count_page, &w)) ||
	    (rc = mb_page_count(b, &count)) || (rc = mb_sync_status(b, &doc))) {
		add(r, "store", FAIL, mb_last_error(b));
		return;
	}
	mb_free(doc);
	if ((rc = mb_error_stats(b, &doc)) || (mb_free(doc), rc = mb_config_get(b, &doc))) {
		add(r, "store", FAIL, mb_last_error(b));
		return;
	}
	mb_free(doc);
	snprintf(detail, sizeof detail, "%llu pages decoded (%llu stored, the rest expired); "
	         "sync, errors and config decoded", (unsigned long long)w.pages,
	         (unsigned long long)count);
	add(r, "store", w.pages <= count ? PASS : FAIL, detail);
}

static void check_readers(report *r, mb_bank *b)
{
	char *json = NULL, detail[160];
	cJSON *j, *store;
	double lag;

	if (mb_stats(b, &json) || !(j = cJSON_Parse(json))) {
		add(r, "readers", FAIL, mb_last_error(b));
		mb_free(json);
		return;
	}
	store = cJSON_GetObjectItemCaseSensitive(j, "store");
	lag = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(store, "reader_lag_txns"));
	snprintf(detail, sizeof detail, "stale slots cleared; the oldest live reader is %.0f "
	         "transactions behind", lag);
	add(r, "readers", lag > 10000 ? WARN : PASS, detail);
	cJSON_Delete(j);
	mb_free(json);
}

/* Modes: nothing for others, and for the group only if every file is. */
static void check_modes(report *r, const char *dir, int depth, int *bad, int *group, uid_t owner)
{
	char sub[4096];
	struct dirent *e;
	struct stat st;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
		if (lstat(sub, &st))
			continue;
		if ((st.st_mode & 07) || S_ISLNK(st.st_mode) || st.st_uid != owner) {
			if (!*bad)
				add(r, "permissions", FAIL, sub);
			++*bad;
		}
		if (st.st_mode & 070)
			++*group;
		if (S_ISDIR(st.st_mode) && depth < 3)
			check_modes(r, sub, depth + 1, bad, group, owner);
	}
	closedir(d);
}

static void check_permissions(report *r, const char *path)
{
	struct stat st;
	int bad = 0, group = 0;
	char detail[160];

	if (lstat(path, &st))
		return;
	check_modes(r, path, 0, &bad, &group, st.st_uid);
	if (bad)
		return;
	snprintf(detail, sizeof detail, "no file open to others or owned by another user; "
	         "%d group-accessible (group-shared banks only)", group);
	add(r, "permissions", (st.st_mode & 07) ? FAIL : PASS, detail);
}

static void check_checkpoint(report *r, const char *path, mb_bank *b)
{
	static const char *const files[] = { "notion_pages.json", "sync_status.json",
	                                     "error_log.json", "config_cache.json" };
	/* checkpoint.json holds error_types.last_seen too: up to ~1,000 types */
	enum { CKPT_MAX = 4 << 20 };
	char p[4096], detail[256], *text;
	uint64_t last = 0;
	double seq;
	size_t n;
	cJSON *j;
	FILE *f;

	snprintf(p, sizeof p, "%s/checkpoint.json", path);
	if (!(f = fopen(p, "r"))) {
		add(r, "checkpoint", PASS, "no snapshot yet: recovery replays the whole journal");
		return;
	}
	n = (text = malloc(CKPT_MAX)) ? fread(text, 1, CKPT_MAX - 1, f) : 0;
	fclose(f);
	j = text ? cJSON_ParseWithLength(text, n) : NULL;
	free(text);
	seq = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "seq"));
	cJSON_Delete(j);
	mb_journal_last_seq(b, &last);
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof p, "%s/%s", path, files[i]);
		if (access(p, R_OK)) {
			add(r, "checkpoint", FAIL, p);
			return;
		}
	}
	snprintf(detail, sizeof detail, "the snapshot covers journal seq %.0f of %llu", seq,
	         (unsigned long long)last);
	add(r, "checkpoint", seq == seq && seq <= (double)last ? PASS : FAIL, detail);
}

int cmd_doctor(cli *c, int argc, char **argv)
{
	report r = { NULL, true };
	mb_bank *b = NULL;
	cJSON *out;
	char *text;
	int ex, rc;

	c->usage = "membank doctor\n\n"
	           "Check the bank without changing it: format version, journal, every store\n"
	           "record, readers, permissions and the checkpoint.  Prints a JSON report;\n"
	           "exit 0 when healthy, 4 when a check failed.\n";
	if (cli_positional(c, argc, argv, 0, 0, &ex))
		return ex;
	r.checks = cJSON_CreateArray();
	c->opts.create = false;
	if ((rc = mb_open(c->bank_dir, &c->opts, &b)))
		add(&r, "open", FAIL, mb_last_error(NULL));
	else
		add(&r, "open", PASS, "identity and format version read; no crashed writer's work left");
	{
		const char *path = b ? mb_path(b) : (c->bank_dir ? c->bank_dir : getenv("MEMBANK_DIR"));
		if (!path || !*path)
			path = "./memory-bank";
		check_journal(&r, path);
		check_permissions(&r, path);
		if (b) {
			check_store(&r, b);
			check_readers(&r, b);
			check_checkpoint(&r, path, b);
		}
		out = cJSON_CreateObject();
		cJSON_AddStringToObject(out, "bank", path);
	}
	cJSON_AddBoolToObject(out, "healthy", r.healthy);
	cJSON_AddItemToObject(out, "checks", r.checks);
	text = cJSON_PrintUnformatted(out);
	ex = text ? cli_print_json(c, text) : EX_BANK;
	free(text);
	cJSON_Delete(out);
	mb_close(b);
	return ex == EX_OK && !r.healthy ? EX_BANK : ex;
}
