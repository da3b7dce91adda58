/*
 * cmd_cluster.c - membank cluster status: the bank's stream as the cluster
 * reports it, and this machine's place in it (mb_cluster_status()).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"

/* A number as its exact decimal text (cJSON keeps doubles only). */
static bool add_u64(cJSON *o, const char *key, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof num, "%" PRIu64, v);
	return cJSON_AddRawToObject(o, key, num) != NULL;
}

/* The document: every field of mb_cluster_info, under its own name.  The
 * URL is the library's, without credentials; it passes the command's
 * redaction too, as every message does. */
static char *status_json(const mb_cluster_info *in)
{
	cJSON *o = cJSON_CreateObject();
	char url[sizeof in->url], *text = NULL;
	bool ok;

	cli_redact(in->url, url, sizeof url);
	ok = o && cJSON_AddStringToObject(o, "url", url) &&
	     cJSON_AddStringToObject(o, "stream", in->stream) &&
	     cJSON_AddBoolToObject(o, "reachable", in->reachable) &&
	     (in->reachable ? cJSON_AddNullToObject(o, "error") != NULL
	                    : cJSON_AddStringToObject(o, "error", in->error) != NULL) &&
	     add_u64(o, "replicas", in->replicas) &&
	     (*in->leader ? cJSON_AddStringToObject(o, "leader", in->leader) != NULL
	                  : cJSON_AddNullToObject(o, "leader") != NULL) &&
	     add_u64(o, "first_seq", in->first_seq) && add_u64(o, "last_seq", in->last_seq) &&
	     add_u64(o, "applied_seq", in->applied_seq) &&
	     add_u64(o, "lag_records", in->lag_records) &&
	     (in->since_contact_ms < 0 ? cJSON_AddNullToObject(o, "since_contact_ms") != NULL
	                               : add_u64(o, "since_contact_ms",
	                                         (uint64_t)in->since_contact_ms)) &&
	     /* null: the cluster keeps no checkpoint (or did not answer) */
	     (in->checkpoint_seq ? add_u64(o, "checkpoint_seq", in->checkpoint_seq)
	                         : cJSON_AddNullToObject(o, "checkpoint_seq") != NULL) &&
	     add_u64(o, "foreign_skipped", in->foreign_skipped) &&
	     cJSON_AddBoolToObject(o, "diverged", in->diverged);
	if (ok)
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

static int cluster_status(cli *c, int argc, char **argv)
{
	mb_cluster_info info;
	mb_bank *b = NULL;
	char *text = NULL;
	int ex, rc;

	if (cli_positional(c, argc, argv, 0, 0, &ex))
		return ex;
	if ((ex = cli_open_existing(c, &b)))
		return ex;
	if ((rc = mb_cluster_status(b, &info))) {
		/* MB_EINVAL: a local journal; the library's message says so */
		ex = cli_fail(c, b, rc, "%s", rc == MB_EINVAL ? "" : "cannot read the status");
		goto cleanup;
	}
	if (!(text = status_json(&info))) {
		cli_msg(c, "out of memory");
		ex = EX_BANK;
		goto cleanup;
	}
	ex = cli_print_json(c, text);
	/* The document is printed either way (the local figures are worth
	 * seeing); the exit code tells a script whether all is well. */
	if (!info.reachable) {
		cli_msg(c, "the cluster did not answer: %s", info.error);
		ex = ex ? ex : EX_BANK;
	} else if (info.diverged) {
		cli_msg(c, "the stream ends before what this machine applied (deleted or "
		        "recreated): writes are refused until this machine's bank is rebuilt "
		        "from the stream");
		ex = ex ? ex : EX_BANK;
	}
cleanup:
	cJSON_free(text);
	mb_close(b);
	return ex;
}

static const cli_sub cluster_subs[] = {
	{ "status", "membank cluster status\n\n"
	            "The bank's stream as the cluster reports it, and this machine's place in\n"
	            "it, as JSON: url (never with credentials), stream, reachable, error,\n"
	            "replicas, leader, first_seq and last_seq (the stream's oldest and newest\n"
	            "records), applied_seq (the newest this machine applied), lag_records,\n"
	            "since_contact_ms (since this process last heard from the cluster; null:\n"
	            "never), checkpoint_seq (what the newest checkpoint kept in the cluster\n"
	            "covers, whichever machine put it; null: none), foreign_skipped (messages that were not membank's, applied as\n"
	            "nothing), diverged (writes refused: the stream ends before this machine).\n"
	            "Exit 0 when the cluster answered and writes are possible; 4 when it did\n"
	            "not answer or the machine diverged (the document is printed all the\n"
	            "same, with the last figures seen); 3 for a bank whose journal is local.\n",
	  cluster_status },
	{ NULL, NULL, NULL },
};

int cmd_cluster(cli *c, int argc, char **argv)
{
	return cli_dispatch(c, "cluster", cluster_subs, argc, argv);
}
