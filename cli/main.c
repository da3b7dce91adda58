/*
 * main.c - the membank command: global options, then git-style commands.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#ifndef MEMBANK_VERSION
#define MEMBANK_VERSION "unknown"
#endif

static const char main_usage[] =
	"membank [-b DIR] [--durability full|fast] [--format FORMAT] [--quiet] <command> ...\n"
	"\n"
	"A memory bank that many processes share, on one machine or, with its journal\n"
	"on a NATS JetStream cluster (--journal), on many.\n"
	"DIR defaults to $MEMBANK_DIR, else ./memory-bank.  Commands that write create\n"
	"the bank when it is missing; commands that only read exit 4 instead.\n"
	"\n"
	"commands:\n"
	"  init [--max-json-bytes N] [--replicas N]\n"
	"                                     create the bank if missing; print its path\n"
	"  page put <id> <json|->             replace a page's properties ('-' reads stdin)\n"
	"  page merge <id> <json|->           merge top-level properties\n"
	"  page get <id>                      print {\"properties\":{...},\"last_updated\":\"...\"}\n"
	"  page rm <id>                       delete a page\n"
	"  page list [--limit N]              one id a line\n"
	"  page count                         the number of pages\n"
	"  sync record <status> [--error MSG]\n"
	"                                     record a sync\n"
	"  sync status                        print the sync_status.json document\n"
	"  error log <type> <message>         log an error\n"
	"  error resolve <type> <steps>       resolve the errors of a type\n"
	"  error stats                        print the error statistics\n"
	"  config get [dotted.key]            the config_cache.json document, or one value\n"
	"  config set <json|->                deep-merge into the config\n"
	"  snapshot [--out DIR]               write the four JSON files\n"
	"  restore <DIR> [--force] [--keep-expired|--expire]\n"
	"                                     build this bank from the four files in DIR\n"
	"  compactor [--every S] [--out DIR]  snapshot every S seconds until SIGTERM/SIGINT\n"
	"  journal tail [-n N] [--follow]     newest events, one JSON object a line\n"
	"  journal verify                     exit 0 when clean, else report the damage\n"
	"  journal repair                     cut a torn tail, move damage aside\n"
	"  stats [--format prometheus]        pages, events, sizes, map use, readers, segments\n"
	"  doctor                             check the bank without changing it\n"
	"  batch [FILE|-]                     apply JSON-line operations as one write\n"
	"  cluster status                     the stream, its replicas and leader, this\n"
	"                                     machine's applied seq and lag\n"
	"  demo [--workers N] [--seconds S] [--machines M]\n"
	"                                     many processes sharing one bank\n"
	"\n"
	"options:\n"
	"  -b, --bank DIR          the bank directory\n"
	"      --durability MODE   full (default: survives power loss) or fast\n"
	"                          (survives any process crash, not the machine's)\n"
	"      --format FORMAT     how documents print: json (one line; the default when\n"
	"                          stdout is not a terminal), pretty (indented; the\n"
	"                          default on a terminal) or text (aligned tables for\n"
	"                          people); stats also takes prometheus (OpenMetrics\n"
	"                          text).  Numbers print exactly as stored in each.\n"
	"                          'page list' prints ids a line unless asked.\n"
	"      --quiet             no progress line: restore, snapshot, compactor, doctor\n"
	"                          and a rebuild of the cache draw one on stderr when it\n"
	"                          is a terminal (pages done, of how many, rate, ETA)\n"
	"      --journal URL       the journal on a NATS JetStream cluster, which every\n"
	"                          machine's bank bound to it shares:\n"
	"                          nats://[USER:PASS@|TOKEN@]HOST:PORT[,HOST:PORT...]/STREAM,\n"
	"                          or tls://... (TLS required).  Default $MEMBANK_JOURNAL,\n"
	"                          else the URL the bank recorded at creation (never\n"
	"                          its credentials), else the local journal.  A bank is\n"
	"                          bound to one journal for life.  See docs/cluster.md\n"
	"      --journal-creds FILE\n"
	"                          NATS .creds file (user JWT + NKey seed); default\n"
	"                          $MEMBANK_JOURNAL_CREDS.  Credentials are never printed\n"
	"      --journal-ca FILE   CA certificates for tls:// (default: the system's)\n"
	"      --journal-cert FILE\n"
	"                          client certificate for tls://\n"
	"      --journal-key FILE  its private key\n"
	"      --journal-timeout MS\n"
	"                          how long an open or a write waits for a cluster that\n"
	"                          does not answer before it fails (100..3600000;\n"
	"                          default 15000)\n"
	"      --fresh             after the open, catch up with the stream's newest\n"
	"                          record (other machines' writes), or fail: never read\n"
	"                          this machine's cache alone\n"
	"  -h, --help              this help; 'membank <command> --help' for each command\n"
	"      --version           print the version\n"
	"\n"
	"Options may follow the command's words; '--' ends them, for an argument that\n"
	"starts with '-' (a lone '-' is stdin).\n"
	"\n"
	"environment: MEMBANK_DIR, MEMBANK_JOURNAL, MEMBANK_JOURNAL_CREDS (see above)\n"
	"\n"
	"exit codes: 0 success, 1 not found, 2 usage error, 3 invalid input, 4 bank error,\n"
	"5 output error (stdout could not be written: a full disk, a closed pipe)\n";

typedef struct top_cmd {
	const char *name;
	cli_fn fn;
} top_cmd;

static const top_cmd top_cmds[] = {
	{ "init", cmd_init },         { "page", cmd_page },
	{ "sync", cmd_sync },         { "error", cmd_error },
	{ "config", cmd_config },     { "snapshot", cmd_snapshot },
	{ "restore", cmd_restore },   { "compactor", cmd_compactor },
	{ "journal", cmd_journal },   { "stats", cmd_stats },
	{ "demo", cmd_demo },         { "doctor", cmd_doctor },
	{ "batch", cmd_batch },       { "cluster", cmd_cluster },
	{ NULL, NULL },
};

/* Parse the global options; returns -1 to go on, else an exit code. */
static int global_options(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "bank", required_argument, NULL, 'b' },
		{ "durability", required_argument, NULL, 'd' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, ex = 0;

	/* '+': stop at the command, whose options are its own. */
	while ((ch = cli_getopt(c, argc, argv, "+b:", lo, &ex)) > 0) {
		if (ch == 'b') {
			if (!*optarg)
				return cli_usage_error(c, "--bank needs a directory");
			c->bank_dir = optarg;
			c->bank_given = true;
		} else if (ch == 'd') {
			if (!strcmp(optarg, "full"))
				c->opts.durability = MB_DURABILITY_FULL;
			else if (!strcmp(optarg, "fast"))
				c->opts.durability = MB_DURABILITY_FAST;
			else
				return cli_usage_error(c, "--durability is full or fast, not '%s'", optarg);
		} else if (ch == 'q') {
			c->quiet = true;
		} else if (ch == 'V') {
			printf("membank %s\n", MEMBANK_VERSION);
			return EX_OK;
		}
	}
	return ch < 0 ? ex : -1;
}

/* Run from cron, a daemon or with `<&- >&- 2>&-`, a standard descriptor may
 * be closed; the first file opened would take its number and our output
 * would go into it.  /dev/null takes each closed one first (the library
 * guards its own files too, see journal/fd.c). */
static void open_closed_stdio(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		int nul = open("/dev/null", fd ? O_WRONLY : O_RDONLY);
		if (nul >= 0 && nul != fd) {
			dup2(nul, fd);
			close(nul);
		}
	}
}

static int run(cli *c, int argc, char **argv)
{
	int ex;

	if ((ex = global_options(c, argc, argv)) >= 0)
		return ex;
	cli_progress_setup(c);
	if (optind >= argc)
		return cli_usage_error(c, "missing command");
	for (const top_cmd *t = top_cmds; t->name; t++) {
		if (strcmp(argv[optind], t->name) != 0)
			continue;
		c->cmd = t->name;
		c->formats = FMT_DOCUMENT;  /* a command that prints more adds it */
		argv += optind;
		argc -= optind;
		optind = 0;
		return t->fn(c, argc, argv);
	}
	return cli_usage_error(c, "unknown command '%s'", argv[optind]);
}

int main(int argc, char **argv)
{
	cli c = { 0 };

	open_closed_stdio();
	mb_options_init(&c.opts);
	/* max_json_bytes stays 0: the bank's own bound (membank.json), which
	 * every client applies; the command reads up to CLI_MAX_INPUT, the
	 * library's ceiling, and the library refuses beyond the bank's. */
	c.tty = isatty(STDOUT_FILENO);
	c.usage = main_usage;
	c.formats = FMT_DOCUMENT | 1u << FMT_PROMETHEUS;  /* checked by the command */
	int ex = cli_close_stdout(&c, run(&c, argc, argv));

	free(c.journal_url);
	return ex;
}
