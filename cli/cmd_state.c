/*
 * cmd_state.c - membank sync, error and config: the bank's state documents.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef int (*doc_fn)(mb_bank *, char **);

/* Open, fetch one document, print it. */
static int print_doc(cli *c, int argc, char **argv, doc_fn fn, const char *what)
{
	mb_bank *b = NULL;
	char *json = NULL;
	int ex, rc;

	if (cli_positional(c, argc, argv, 0, 0, &ex))
		return ex;
	if ((ex = cli_open_existing(c, &b)))
		return ex;
	if ((rc = fn(b, &json)))
		ex = cli_fail(c, b, rc, "cannot read %s", what);
	else
		ex = cli_print_json(c, json);
	mb_free(json);
	mb_close(b);
	return ex;
}

/* ------------------------------------------------------------------ sync */

static int sync_record(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "error", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	const char *error = NULL;
	mb_bank *b = NULL;
	int ch, ex = 0, rc;

	while ((ch = cli_getopt(c, argc, argv, "e:", lo, &ex)) > 0)
		if (ch == 'e')
			error = optarg;
	if (ch < 0)
		return ex;
	if (argc - optind != 1)
		return cli_usage_error(c, argc - optind < 1 ? "missing status" : "too many arguments");
	if ((ex = cli_open(c, &b)))
		return ex;
	if ((rc = mb_sync_record(b, argv[optind], error)))
		ex = cli_fail(c, b, rc, "cannot record the sync");
	cli_close_written(b, ex);
	return ex;
}

static int sync_status(cli *c, int argc, char **argv)
{
	return print_doc(c, argc, argv, mb_sync_status, "the sync status");
}

static const cli_sub sync_subs[] = {
	{ "record", "membank sync record <status> [--error MSG]\n\n"
	            "Record a sync.  <status> becomes current_status.  --error (even empty),\n"
	            "or a status of failed, failure or error in any case, counts a failure\n"
	            "(error_count; such a status without --error is recorded with error \"\");\n"
	            "status \"success\" (lower case) without --error counts a success; any\n"
	            "other status counts neither.\n\n"
	            "  -e, --error MSG   the error message of a failed sync\n", sync_record },
	{ "status", "membank sync status\n\nPrint the sync_status.json document.\n", sync_status },
	{ NULL, NULL, NULL },
};

int cmd_sync(cli *c, int argc, char **argv)
{
	return cli_dispatch(c, "sync", sync_subs, argc, argv);
}

/* ----------------------------------------------------------------- error */

typedef int (*pair_fn)(mb_bank *, const char *, const char *);

static int error_pair(cli *c, int argc, char **argv, pair_fn fn, const char *what)
{
	mb_bank *b = NULL;
	int ex, rc;

	if (cli_positional(c, argc, argv, 2, 2, &ex))
		return ex;
	if ((ex = cli_open(c, &b)))
		return ex;
	if ((rc = fn(b, argv[optind], argv[optind + 1])))
		ex = cli_fail(c, b, rc, "cannot %s", what);
	cli_close_written(b, ex);
	return ex;
}

static int error_log(cli *c, int argc, char **argv)
{
	return error_pair(c, argc, argv, mb_error_log, "log the error");
}

static int error_resolve(cli *c, int argc, char **argv)
{
	return error_pair(c, argc, argv, mb_error_resolve, "resolve the errors");
}

static int error_stats(cli *c, int argc, char **argv)
{
	return print_doc(c, argc, argv, mb_error_stats, "the error statistics");
}

static const cli_sub error_subs[] = {
	{ "log", "membank error log <type> <message>\n\n"
	         "Log an error of <type>: counted in patterns[type] and total_errors,\n"
	         "and unresolved until 'membank error resolve <type>'.\n", error_log },
	{ "resolve", "membank error resolve <type> <steps>\n\n"
	             "Record the resolution <steps> of <type> and mark its errors resolved.\n",
	  error_resolve },
	{ "stats", "membank error stats\n\n"
	           "Print {\"total_errors\":N,\"resolved_errors\":N,\"patterns\":{...},"
	           "\"last_error\":{...}}.\n", error_stats },
	{ NULL, NULL, NULL },
};

int cmd_error(cli *c, int argc, char **argv)
{
	return cli_dispatch(c, "error", error_subs, argc, argv);
}

/* ---------------------------------------------------------------- config */

/* The end of the JSON value at @p, in text as the library gives it (valid,
 * no white space outside strings). */
static const char *value_end(const char *p)
{
	int depth = 0;
	bool str = false;

	for (; *p; p++) {
		if (str) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '"') {
				str = false;
				if (!depth)
					return p + 1;
			}
		} else if (*p == '"')
			str = true;
		else if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']') {
			if (!depth)
				return p;
			if (!--depth)
				return p + 1;
		} else if (*p == ',' && !depth)
			return p;
	}
	return p;
}

/* The value of member @key in the object at @obj, or NULL.  Keys are
 * compared as written (the config's keys need no escapes). */
static const char *member_of(const char *obj, const char *key)
{
	size_t klen = strlen(key);

	if (*obj != '{')
		return NULL;
	for (const char *p = obj + 1; *p == '"';) {
		const char *k = p + 1, *v = value_end(p) + 1;  /* past the ':' */
		if ((size_t)(v - 2 - k) == klen && !memcmp(k, key, klen))
			return v;
		p = value_end(v);
		if (*p == ',')
			p++;
	}
	return NULL;
}

/* Print the value at @p key ("a.b.c") of the document @p json, as its text
 * (a number prints as stored; parsing it to print it would not). */
static int print_key(cli *c, const char *json, const char *key)
{
	char *path = strdup(key), *save = NULL;
	const char *v = json;
	int ex;

	if (!path)
		return cli_fail(c, NULL, MB_ENOMEM, "config");
	for (char *k = strtok_r(path, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
		v = member_of(v, k);
	if (!v || v == json || !*key || key[strlen(key) - 1] == '.') {
		cli_msg(c, "key \"%s\": not found", key);
		ex = EX_NOTFOUND;
	} else
		ex = cli_print_json_n(c, v, (size_t)(value_end(v) - v));
	free(path);
	return ex;
}

static int config_get(cli *c, int argc, char **argv)
{
	mb_bank *b = NULL;
	char *json = NULL;
	int ex, rc;

	if (cli_positional(c, argc, argv, 0, 1, &ex))
		return ex;
	if ((ex = cli_open_existing(c, &b)))
		return ex;
	if ((rc = mb_config_get(b, &json)))
		ex = cli_fail(c, b, rc, "cannot read the config");
	else if (optind < argc)
		ex = print_key(c, json, argv[optind]);
	else
		ex = cli_print_json(c, json);
	mb_free(json);
	mb_close(b);
	return ex;
}

static int config_set(cli *c, int argc, char **argv)
{
	const char *text;
	char *buf = NULL;
	mb_bank *b = NULL;
	size_t len;
	int ex, rc;

	if (cli_positional(c, argc, argv, 1, 1, &ex))
		return ex;
	if ((ex = cli_input(c, argv[optind], &buf, &text, &len)))
		return ex;
	if ((ex = cli_open(c, &b)))
		goto cleanup;
	if ((rc = mb_config_update(b, text, len)))
		ex = cli_fail(c, b, rc, "config not changed");
cleanup:
	cli_close_written(b, ex);
	free(buf);
	return ex;
}

/* What cache_settings do to pages, and their defaults. */
#define CONFIG_CACHE_HELP \
	"cache_settings (both off in a new bank; a bank created before this\n" \
	"version keeps 1000 and 3600 unless its config says otherwise):\n" \
	"  max_entries N   at most N pages: a new page beyond drops the least\n" \
	"                  recently updated one (counted: membank stats\n" \
	"                  pages_evicted).  0 (default) = no bound.\n" \
	"  ttl_seconds S   a page not updated for S seconds reads as absent\n" \
	"                  (pages_expired) and the next snapshot removes it\n" \
	"                  (pages_purged).  0 (default) = never.\n" \
	"A sync integration that treats an absent page as new should keep both 0.\n"

static const cli_sub config_subs[] = {
	{ "get", "membank config get [dotted.key]\n\n"
	         "Print the config_cache.json document, or the one value at dotted.key\n"
	         "(e.g. cache_settings.max_entries); exit 1 when the key is unknown.\n",
	  config_get },
	{ "set", "membank config set <json|->\n\n"
	         "Deep-merge the JSON object into the config ('-' reads stdin).  Only the\n"
	         "spec's keys with their types are accepted; anything else changes nothing\n"
	         "and exits 3 naming the key.\n", config_set },
	{ NULL, CONFIG_CACHE_HELP, NULL },
};

int cmd_config(cli *c, int argc, char **argv)
{
	return cli_dispatch(c, "config", config_subs, argc, argv);
}
