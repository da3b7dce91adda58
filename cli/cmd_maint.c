/*
 * cmd_maint.c - membank init, stats, snapshot, restore, compactor and journal.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"

int cmd_init(cli *c, int argc, char **argv)
{
	mb_bank *b = NULL;
	int ex;

	c->usage = "membank init\n\nCreate the bank if missing and print its path.\n";
	if (cli_positional(c, argc, argv, 0, 0, &ex))
		return ex;
	c->opts.create = true;
	if ((ex = cli_open(c, &b)))
		return ex;
	puts(mb_path(b));
	mb_close(b);
	return EX_OK;
}

int cmd_stats(cli *c, int argc, char **argv)
{
	mb_bank *b = NULL;
	char *json = NULL;
	int ex, rc;

	c->usage = "membank stats\n\n"
	           "Print the bank's counters and sizes as JSON: pages, events, file sizes,\n"
	           "map use, readers and their lag, journal segments.\n";
	if (cli_positional(c, argc, argv, 0, 0, &ex))
		return ex;
	if ((ex = cli_open_existing(c, &b)))
		return ex;
	if ((rc = mb_stats(b, &json)))
		ex = cli_fail(c, b, rc, "cannot read the statistics");
	else
		ex = cli_print_json(c, json);
	mb_free(json);
	mb_close(b);
	return ex;
}

/* --------------------------------------------------- snapshot and restore */

#if CLI_HAVE_SNAPSHOT
/* What a snapshot did, as JSON (cJSON escapes the directory name). */
static int print_info(cli *c, const char *dir, const mb_snapshot_info *in)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	int ex = EX_BANK;

	if (o && cJSON_AddStringToObject(o, "dir", dir) &&
	    cJSON_AddNumberToObject(o, "seq", (double)in->seq) &&
	    cJSON_AddNumberToObject(o, "pages", (double)in->pages) &&
	    cJSON_AddNumberToObject(o, "bytes", (double)in->bytes) &&
	    cJSON_AddNumberToObject(o, "purged", (double)in->purged) &&
	    cJSON_AddNumberToObject(o, "segments_removed", (double)in->segments_removed) &&
	    cJSON_AddNumberToObject(o, "seconds", in->seconds) &&
	    (text = cJSON_PrintUnformatted(o)))
		ex = cli_print_json(c, text);
	else
		cli_msg(c, "out of memory");
	cJSON_free(text);
	cJSON_Delete(o);
	return ex;
}
#endif

int cmd_snapshot(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = NULL;
	int ch, ex = 0;

	c->usage = "membank snapshot [--out DIR]\n\n"
	           "Write notion_pages.json, sync_status.json, error_log.json and\n"
	           "config_cache.json, each replaced atomically, from one instant of the bank.\n"
	           "Without --out they go to the bank directory and are its checkpoint.\n"
	           "Prints {\"dir\":...,\"seq\":N,\"pages\":N,\"bytes\":N,...}.\n\n"
	           "  -o, --out DIR   write the files into DIR instead\n";
	while ((ch = cli_getopt(c, argc, argv, "o:", lo, &ex)) > 0)
		if (ch == 'o')
			out = optarg;
	if (ch < 0)
		return ex;
	if (optind != argc)
		return cli_usage_error(c, "too many arguments");
#if CLI_HAVE_SNAPSHOT
	mb_snapshot_info info;
	mb_bank *b = NULL;
	int rc;

	if ((ex = cli_open_existing(c, &b)))
		return ex;
	if ((rc = mb_snapshot(b, out, &info))) {
		ex = cli_fail(c, b, rc, "snapshot failed");
	} else {
		ex = print_info(c, out ? out : mb_path(b), &info);
	}
	mb_close(b);
	return ex;
#else
	cli_msg(c, "not available in this build");
	return EX_BANK;
#endif
}

int cmd_restore(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned flags = 0;
	int ch, ex = 0;

	c->usage = "membank restore <DIR> [--force]\n\n"
	           "Build this bank from the four JSON files in DIR.  The bank is built aside\n"
	           "and moved into place when complete.  A non-empty bank is replaced only\n"
	           "with --force, and only while no other process has it open.\n"
	           "Prints the bank's path.\n\n"
	           "  -f, --force   replace a non-empty bank\n";
	while ((ch = cli_getopt(c, argc, argv, "f", lo, &ex)) > 0)
		if (ch == 'f')
			flags |= MB_RESTORE_FORCE;
	if (ch < 0)
		return ex;
	if (argc - optind != 1)
		return cli_usage_error(c, argc - optind < 1 ? "missing DIR" : "too many arguments");
#if CLI_HAVE_SNAPSHOT
	int rc = mb_restore(argv[optind], c->bank_dir, &c->opts, flags);
	if (rc)
		return cli_fail(c, NULL, rc, "cannot restore from %s", argv[optind]);
	mb_bank *b = NULL;
	if ((ex = cli_open_existing(c, &b)))
		return ex;
	puts(mb_path(b));
	mb_close(b);
	return EX_OK;
#else
	cli_msg(c, "not available in this build");
	return EX_BANK;
#endif
}

/* ------------------------------------------------------------- compactor */

#if CLI_HAVE_SNAPSHOT
static void log_run(const cli *c, const mb_snapshot_info *in)
{
	char when[32];
	time_t now = time(NULL);
	struct tm tm;

	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	cli_msg(c, "%s snapshot in %.3f s: %" PRIu64 " pages, %" PRIu64 " bytes, seq %" PRIu64
	        ", %" PRIu64 " purged, %" PRIu64 " segments removed",
	        when, in->seconds, in->pages, in->bytes, in->seq, in->purged,
	        in->segments_removed);
}

/* The bank directory's checkpoint already covers every record: 1, and
 * *seq is that record; 0 otherwise (or when the stats cannot tell). */
static int unchanged(mb_bank *b, uint64_t *seq)
{
	char *text = NULL;
	cJSON *j = mb_stats(b, &text) ? NULL : cJSON_Parse(text);
	const cJSON *ck = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "checkpoint"), "seq");
	const cJSON *last = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "journal"), "last_seq");
	int same = cJSON_IsNumber(ck) && cJSON_IsNumber(last) && ck->valuedouble > 0 &&
	           ck->valuedouble == last->valuedouble;

	*seq = same ? (uint64_t)ck->valuedouble : 0;
	cJSON_Delete(j);
	mb_free(text);
	return same;
}

static int compact_loop(cli *c, const char *out, uint64_t every)
{
	uint64_t seq;
	mb_snapshot_info info;
	mb_bank *b = NULL;
	sigset_t set;
	int ex, rc;

	/* Blocked before the bank opens: a SIGTERM that arrives at any moment
	 * stays pending until the next wait, so a snapshot always completes. */
	cli_block_signals(&set);
	if ((ex = cli_open_existing(c, &b)))
		return ex;
	for (;;) {
		if (!out && unchanged(b, &seq))
			cli_msg(c, "unchanged since the checkpoint at seq %" PRIu64 ": no snapshot", seq);
		else if ((rc = mb_snapshot(b, out, &info))) {
			ex = cli_fail(c, b, rc, "snapshot failed");
			break;
		} else
			log_run(c, &info);
		if (cli_wait_signal(&set, (long)(every * 1000))) {
			cli_msg(c, "stopping on signal");
			break;
		}
	}
	mb_close(b);
	return ex;
}
#endif

int cmd_compactor(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "every", required_argument, NULL, 'e' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = NULL;
	uint64_t every = 60;
	int ch, ex = 0;

	c->usage = "membank compactor [--every S] [--out DIR]\n\n"
	           "Snapshot the bank every S seconds (default 60) until SIGTERM or SIGINT,\n"
	           "then exit 0.  One line per run on stderr: duration, pages, bytes, seq, or\n"
	           "\"unchanged\" when the checkpoint already covers every write (nothing written).\n"
	           "Writers also checkpoint by themselves (README \"Automatic checkpoints\");\n"
	           "the compactor takes that work off their path.\n\n"
	           "  -e, --every S   seconds between snapshots (1..86400)\n"
	           "  -o, --out DIR   write the files into DIR instead of the bank directory\n";
	while ((ch = cli_getopt(c, argc, argv, "e:o:", lo, &ex)) > 0) {
		if (ch == 'o')
			out = optarg;
		else if (ch == 'e' && (cli_parse_u64(optarg, 86400, &every) || !every))
			return cli_usage_error(c, "--every needs 1..86400 seconds, not '%s'", optarg);
	}
	if (ch < 0)
		return ex;
	if (optind != argc)
		return cli_usage_error(c, "too many arguments");
#if CLI_HAVE_SNAPSHOT
	return compact_loop(c, out, every);
#else
	(void)out;
	cli_msg(c, "not available in this build");
	return EX_BANK;
#endif
}

/* --------------------------------------------------------------- journal */

static int print_event(void *ctx, uint64_t seq, const char *event_json)
{
	uint64_t *next = ctx;

	puts(event_json);
	*next = seq + 1;
	return 0;
}

static int stop_at_first(void *ctx, uint64_t seq, const char *event_json)
{
	(void)ctx, (void)seq, (void)event_json;
	return 2;
}

/* Print from @p *next to @p last.  When the oldest records asked for are no
 * longer kept (a snapshot removed their segment), start at the oldest kept,
 * found by bisection over what mb_journal_read() accepts. */
static int print_from(mb_bank *b, uint64_t *next, uint64_t last)
{
	uint64_t lo = *next, hi = last;
	int rc = mb_journal_read(b, *next, print_event, next);

	if (rc != MB_ENOTFOUND)
		return rc;
	/* Invariant: lo is not kept, hi is (last always is, it was committed). */
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		rc = mb_journal_read(b, mid, stop_at_first, NULL);
		if (rc == MB_ENOTFOUND)
			lo = mid;
		else if (rc == 2)
			hi = mid;
		else
			return rc;
	}
	*next = hi;
	return mb_journal_read(b, hi, print_event, next);
}

static int tail_follow(cli *c, mb_bank *b, uint64_t next)
{
	uint64_t last;
	sigset_t set;
	int rc;

	cli_block_signals(&set);
	while (!cli_wait_signal(&set, 100)) {
		if ((rc = mb_journal_last_seq(b, &last)))
			return cli_fail(c, b, rc, "cannot read the journal");
		if (last < next)
			continue;
		if ((rc = print_from(b, &next, last)))
			return cli_fail(c, b, rc, "cannot read the journal");
		if (fflush(stdout) == EOF)
			return EX_OK;   /* the reader went away */
	}
	return EX_OK;
}

static int journal_tail(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "lines", required_argument, NULL, 'n' },
		{ "follow", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t n = 10, last, next;
	bool follow = false;
	mb_bank *b = NULL;
	int ch, ex = 0, rc;

	while ((ch = cli_getopt(c, argc, argv, "n:f", lo, &ex)) > 0) {
		if (ch == 'f')
			follow = true;
		else if (ch == 'n' && cli_parse_u64(optarg, UINT64_MAX / 2, &n))
			return cli_usage_error(c, "-n needs a number, not '%s'", optarg);
	}
	if (ch < 0)
		return ex;
	if (optind != argc)
		return cli_usage_error(c, "too many arguments");
	if ((ex = cli_open_existing(c, &b)))
		return ex;
	if ((rc = mb_journal_last_seq(b, &last))) {
		ex = cli_fail(c, b, rc, "cannot read the journal");
		goto cleanup;
	}
	next = last >= n ? last - n + 1 : 1;
	if (n && last && (rc = print_from(b, &next, last)))
		ex = cli_fail(c, b, rc, "cannot read the journal");
	else if (follow && fflush(stdout) != EOF)
		ex = tail_follow(c, b, last + 1);
cleanup:
	mb_close(b);
	return ex;
}

typedef int (*check_fn)(const char *, char **);

static int journal_check(cli *c, int argc, char **argv, check_fn fn, const char *what)
{
	char *report = NULL;
	int ex, rc;

	if (cli_positional(c, argc, argv, 0, 0, &ex))
		return ex;
	rc = fn(c->bank_dir, &report);
	if (report && (!rc || rc == MB_ECORRUPT))
		cli_print_json(c, report);
	if (rc)
		cli_fail(c, NULL, rc, "%s", rc == MB_ECORRUPT ? what : "cannot check the journal");
	mb_free(report);
	/* A damaged journal is a bank error, whatever the code's class. */
	return rc ? EX_BANK : EX_OK;
}

static int journal_verify(cli *c, int argc, char **argv)
{
	return journal_check(c, argc, argv, mb_journal_verify, "the journal is damaged");
}

static int journal_repair(cli *c, int argc, char **argv)
{
	return journal_check(c, argc, argv, mb_journal_repair, "repair failed");
}

static const cli_sub journal_subs[] = {
	{ "tail", "membank journal tail [-n N] [--follow]\n\n"
	          "Print the newest N events (default 10), one JSON object a line.\n\n"
	          "  -n, --lines N   how many events\n"
	          "  -f, --follow    then print new events as they come, until SIGINT/SIGTERM\n",
	  journal_tail },
	{ "verify", "membank journal verify\n\n"
	            "Check every journal record without opening the bank and print the report\n"
	            "JSON; exit 0 when clean, 4 when damaged (the report names the first damage).\n",
	  journal_verify },
	{ "repair", "membank journal repair\n\n"
	            "Cut a torn tail and move a segment damaged in the middle aside (*.damaged),\n"
	            "keeping every record before the damage.  Prints the report JSON.\n",
	  journal_repair },
	{ NULL, NULL, NULL },
};

int cmd_journal(cli *c, int argc, char **argv)
{
	return cli_dispatch(c, "journal", journal_subs, argc, argv);
}
