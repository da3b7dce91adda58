/*
 * common.c - messages, exit codes, option parsing, input and output shared by
 * every membank command.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cli_exit_code(int mb_code)
{
	switch (mb_code) {
	case MB_OK:        return EX_OK;
	case MB_ENOTFOUND: return EX_NOTFOUND;
	case MB_EINVAL:    return EX_INVALID;
	default:           return EX_BANK;
	}
}

static void vmsg(const cli *c, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Every message passes here: a URL's user, password or token never reaches
 * stderr, whoever wrote the text (the library redacts its own; an argument
 * echoed back in a usage error may be a URL typed in the wrong place). */
static void vmsg(const cli *c, const char *fmt, va_list ap)
{
	char text[4096], clean[4096];

	cli_progress_break();
	fprintf(stderr, "membank: ");
	if (c && c->cmd)
		fprintf(stderr, "%s: ", c->cmd);
	if (vsnprintf(text, sizeof text, fmt, ap) >= (int)sizeof text) {
		/* cut short: a URL at the end may have lost the '@' that ends
		 * its credentials, so it goes */
		char *url = NULL;
		for (char *p = text; (p = strstr(p, "://")); p += 3)
			url = p;
		if (url && !strpbrk(url, " \t\n'\""))
			snprintf(url, sizeof text - (size_t)(url - text), "://...");
	}
	cli_redact(text, clean, sizeof clean);
	fputs(clean, stderr);
}

/* A character that ends a URL in a message. */
static bool url_end(char ch)
{
	return !ch || ch == ' ' || ch == '\t' || ch == '\n' || ch == '\'' || ch == '"';
}

void cli_redact(const char *in, char *out, size_t cap)
{
	size_t n = 0;

	if (!cap)
		return;
	while (*in && n + 1 < cap) {
		const char *at = NULL, *p;

		if (strncmp(in, "://", 3) != 0) {
			out[n++] = *in++;
			continue;
		}
		/* The userinfo is everything up to the last '@' of the URL: a
		 * password may hold an '@' or a ':' of its own; a host or a
		 * stream name never holds one. */
		for (p = in + 3; !url_end(*p); p++)
			if (*p == '@')
				at = p;
		n += (size_t)snprintf(out + n, cap - n, "%s", at ? "://***" : "://");
		if (n >= cap)
			n = cap - 1;
		in = at ? at : in + 3;
	}
	out[n] = '\0';
}

void cli_msg(const cli *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(c, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* True when @p word (of @p n bytes) is one of the command's words
 * ("snapshot", "journal" of "journal tail") or ends @p what. */
static bool said(const cli *c, const char *what, const char *word, size_t n)
{
	const char *p = c && c->cmd ? c->cmd : "";
	size_t wl = strlen(what);

	if (wl >= n && !memcmp(what + wl - n, word, n) && (wl == n || what[wl - n - 1] == ' '))
		return true;
	if (strlen(p) == n && !memcmp(p, word, n))
		return true;   /* all of a two-word command ("cluster status") */
	while (*p) {
		size_t l = strcspn(p, " ");
		if (l == n && !memcmp(p, word, n))
			return true;
		p += l;
		p += *p == ' ';
	}
	return false;
}

/* The library's message names the field or byte; when a call failed
 * without one (not found is not a fault), the code's description stands in.
 * The library starts its messages with the operation or the path
 * ("snapshot: DIR: why", "PATH: no such bank"); a prefix the command's
 * message already says is dropped, so each is said once:
 * "membank: snapshot: cannot write the files: DIR: why". */
int cli_fail(const cli *c, const mb_bank *b, int code, const char *fmt, ...)
{
	const char *why = mb_last_error(b);
	char what[1024];
	va_list ap;

	if (code == MB_ENOTFOUND || !why || !*why)
		why = mb_strerror(code);
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	for (const char *colon; (colon = strstr(why, ": ")) && said(c, what, why,
	                                                             (size_t)(colon - why));)
		why = colon + 2;
	if (*what)
		cli_msg(c, "%s: %s", what, why);
	else
		cli_msg(c, "%s", why);
	return cli_exit_code(code);
}

int cli_usage_error(const cli *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(c, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (c && c->usage) {
		/* The first line of the usage text is the synopsis. */
		const char *nl = strchr(c->usage, '\n');
		int n = nl ? (int)(nl - c->usage) : (int)strlen(c->usage);
		fprintf(stderr, "usage: %.*s\n", n, c->usage);
	}
	if (c && c->cmd)
		fprintf(stderr, "Try 'membank %s --help' for more.\n", c->cmd);
	else
		fprintf(stderr, "Try 'membank --help' for more.\n");
	return EX_USAGE;
}

/* getopt_long's value for --format (no short option). */
#define OPT_FORMAT 0x100
/* and for --quiet, every command's too (no progress line) */
#define OPT_QUIET 0x101
/* the journal's options and --fresh: every command's, like --format */
#define OPT_JOURNAL 0x102
#define OPT_JOURNAL_CREDS 0x103
#define OPT_JOURNAL_CA 0x104
#define OPT_JOURNAL_CERT 0x105
#define OPT_JOURNAL_KEY 0x106
#define OPT_JOURNAL_TIMEOUT 0x107
#define OPT_FRESH 0x108

static const struct option common_opts[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "journal", required_argument, NULL, OPT_JOURNAL },
	{ "journal-creds", required_argument, NULL, OPT_JOURNAL_CREDS },
	{ "journal-ca", required_argument, NULL, OPT_JOURNAL_CA },
	{ "journal-cert", required_argument, NULL, OPT_JOURNAL_CERT },
	{ "journal-key", required_argument, NULL, OPT_JOURNAL_KEY },
	{ "journal-timeout", required_argument, NULL, OPT_JOURNAL_TIMEOUT },
	{ "fresh", no_argument, NULL, OPT_FRESH },
};
#define COMMON_N (sizeof common_opts / sizeof common_opts[0])

static int take_format(cli *c, const char *name, int *exit_code);

/* --journal URL: the URL is copied, then its user, password or token are
 * overwritten in argv, so that ps and /proc/PID/cmdline show "x"s instead
 * from here on (as mysql does; the credentials file or MEMBANK_JOURNAL
 * keeps them out of the process list altogether, see docs/cluster.md). */
static int take_journal(cli *c, char *arg, int *exit_code)
{
	char *scheme = strstr(arg, "://");
	/* the userinfo ends at the URL's last '@' (as cli_redact() says) */
	char *at = scheme ? strrchr(scheme + 3, '@') : NULL;

	free(c->journal_url);
	if (!(c->journal_url = strdup(arg))) {
		cli_msg(c, "out of memory");
		*exit_code = EX_BANK;
		return -1;
	}
	c->opts.journal_url = c->journal_url;
	if (at)
		memset(scheme + 3, 'x', (size_t)(at - (scheme + 3)));
	return 0;
}

/* A file option's value: a path, never empty. */
static int take_file(cli *c, const char *opt, const char *arg, const char **to, int *exit_code)
{
	if (!*arg) {
		*exit_code = cli_usage_error(c, "%s needs a file", opt);
		return -1;
	}
	*to = arg;
	return 0;
}

/* The options every command takes; -1 with *exit_code on a bad value. */
static int take_common(cli *c, int ch, char *arg, int *exit_code)
{
	uint64_t v;

	switch (ch) {
	case OPT_QUIET:
		c->quiet = true;
		cli_progress_setup(c);
		return 0;
	case OPT_FORMAT:
		return take_format(c, arg, exit_code);
	case OPT_JOURNAL:
		return take_journal(c, arg, exit_code);
	case OPT_JOURNAL_CREDS:
		return take_file(c, "--journal-creds", arg, &c->opts.journal_creds, exit_code);
	case OPT_JOURNAL_CA:
		return take_file(c, "--journal-ca", arg, &c->opts.journal_tls_ca, exit_code);
	case OPT_JOURNAL_CERT:
		return take_file(c, "--journal-cert", arg, &c->opts.journal_tls_cert, exit_code);
	case OPT_JOURNAL_KEY:
		return take_file(c, "--journal-key", arg, &c->opts.journal_tls_key, exit_code);
	case OPT_JOURNAL_TIMEOUT:
		if (cli_parse_u64(arg, 3600000, &v) || v < 100) {
			*exit_code = cli_usage_error(c, "--journal-timeout needs 100..3600000 "
			                                "milliseconds, not '%s'", arg);
			return -1;
		}
		c->opts.journal_timeout_ms = (uint32_t)v;
		return 0;
	case OPT_FRESH:
		c->fresh = true;
		return 0;
	}
	return 1;
}

/* --format NAME, taken by every command and by the global options. */
static int take_format(cli *c, const char *name, int *exit_code)
{
	int f = cli_parse_format(name);

	if (f < 0) {
		*exit_code = cli_usage_error(c, "--format is json, pretty, text or prometheus, "
		                                "not '%s'", name);
		return -1;
	}
	c->format = f;
	return 0;
}

/* At the end of a command's options: the format asked for is one it prints. */
static int check_format(cli *c, int *exit_code)
{
	char names[64];

	if (c->format == FMT_AUTO || (c->formats & (1u << c->format)))
		return 0;
	*exit_code = cli_usage_error(c, "--format %s is not available here; this command "
	                                "prints %s", c->format == FMT_JSON ? "json"
	                             : c->format == FMT_PRETTY ? "pretty"
	                             : c->format == FMT_TEXT ? "text" : "prometheus",
	                             cli_format_names(c->formats, names, sizeof names));
	return -1;
}

int cli_getopt(cli *c, int argc, char **argv, const char *shortopts,
               const struct option *longopts, int *exit_code)
{
	/* -h, --help, --format, --quiet, the journal's options and --fresh
	 * are every command's; the caller's table comes first. */
	struct option all[12 + COMMON_N + 1];
	char shorts[64];
	size_t n = 0;
	int ch;

	while (longopts && longopts[n].name && n < 12) {
		all[n] = longopts[n];
		n++;
	}
	for (size_t i = 0; i < COMMON_N; i++)
		all[n++] = common_opts[i];
	all[n] = (struct option){ NULL, 0, NULL, 0 };
	/* GNU getopt wants a leading '+' (stop at the first operand) before the
	 * ':' that makes it report a missing value apart from an unknown option. */
	shortopts = shortopts ? shortopts : "";
	if (*shortopts == '+')
		snprintf(shorts, sizeof shorts, "+:%sh", shortopts + 1);
	else
		snprintf(shorts, sizeof shorts, ":%sh", shortopts);

	while ((ch = getopt_long(argc, argv, shorts, all, NULL)) >= OPT_FORMAT &&
	       ch <= OPT_FRESH)
		if (take_common(c, ch, optarg, exit_code) < 0)
			return -1;
	if (ch == -1)
		return check_format(c, exit_code) ? -1 : 0;
	if (ch == 'h') {
		fputs("usage: ", stdout);
		fputs(c->usage, stdout);
		cli_output_failed();   /* a help longer than stdio's buffer: keep errno */
		*exit_code = EX_OK;
		return -1;
	}
	if (ch == '?' || ch == ':') {
		const char *opt = argv[optind - 1];
		*exit_code = cli_usage_error(c, ch == '?' ? "unknown option '%s'"
		                                          : "option '%s' needs a value",
		                             opt ? opt : "?");
		return -1;
	}
	return ch;
}

int cli_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

const char *cli_bank_path(const cli *c)
{
	const char *p = c->bank_dir ? c->bank_dir : getenv("MEMBANK_DIR");

	return p && *p ? p : "./memory-bank";
}

bool cli_bank_missing(const cli *c)
{
	struct stat st;

	return lstat(cli_bank_path(c), &st) && errno == ENOENT;
}

static int open_bank(const cli *c, bool create, mb_bank **out)
{
	mb_options opts = c->opts;
	int rc;

	/* a write's automatic checkpoint runs in cli_close_written(), after
	 * the write, where a signal cannot make an acknowledged write look
	 * failed */
	opts.defer_auto_checkpoint = true;

	opts.create = create;
	if ((rc = mb_open(c->bank_dir, &opts, out))) {
		if (!create && cli_bank_missing(c)) {
			cli_msg(c, "no bank at %s", cli_bank_path(c));
			return EX_BANK;
		}
		return cli_fail(c, NULL, rc, "cannot open the bank %s", cli_bank_path(c));
	}
	/* --fresh: what the stream holds at this instant, or a failure; never
	 * the local cache alone (a local journal: nothing to do) */
	if (c->fresh && (rc = mb_catch_up(*out))) {
		int ex = cli_fail(c, *out, rc, "--fresh: cannot catch up with the stream");
		mb_close(*out);
		*out = NULL;
		return ex;
	}
	return EX_OK;
}

const char *cli_journal(const cli *c)
{
	const char *url = c->opts.journal_url ? c->opts.journal_url : getenv("MEMBANK_JOURNAL");

	return url && *url ? url : NULL;
}

int cli_open(const cli *c, mb_bank **out)
{
	return open_bank(c, true, out);
}

int cli_open_existing(const cli *c, mb_bank **out)
{
	return open_bank(c, false, out);
}

/* errno of the first failed flush: a stream that failed keeps only its
 * error flag, and the final flush may have nothing left to report. */
static int out_errno;

bool cli_output_failed(void)
{
	if (!ferror(stdout))
		return false;
	if (!out_errno)
		out_errno = errno;  /* called right after the failed write */
	return true;
}

int cli_flush(void)
{
	if (fflush(stdout) == EOF) {
		if (!out_errno)
			out_errno = errno;
		return -1;
	}
	return ferror(stdout) ? -1 : 0;
}

/* set by cli_reader_gone(): the output failed as a write would have */
static bool reader_gone;

bool cli_reader_gone(void)
{
	struct pollfd p = { .fd = STDOUT_FILENO, .events = 0 };

	/* POLLERR: a pipe with no reader left; POLLHUP: a hung-up terminal or
	 * a socket whose peer went.  A file or /dev/null reports neither. */
	if (poll(&p, 1, 0) == 1 && p.revents & (POLLERR | POLLHUP)) {
		reader_gone = true;
		if (!out_errno)
			out_errno = EPIPE;
	}
	return reader_gone;
}

int cli_close_stdout(const cli *c, int ex)
{
	cli_progress_break();
	bool failed = ferror(stdout) != 0 || reader_gone;
	int err = out_errno;

	/* fflush reports the error of the bytes still buffered (the usual
	 * case: stdout to a file is flushed at exit); a stream that failed
	 * earlier keeps its error flag, whose errno is gone. */
	errno = 0;
	if (fflush(stdout) == EOF) {
		failed = true;
		err = err ? err : errno;
	}
	if (fclose(stdout) == EOF && !failed) {
		failed = true;
		err = errno;
	}
	if (failed && err != EPIPE) {
		if (err)
			fprintf(stderr, "membank: %s%swrite error: %s\n", c && c->cmd ? c->cmd : "",
			        c && c->cmd ? ": " : "", strerror(err));
		else
			fprintf(stderr, "membank: %s%swrite error\n", c && c->cmd ? c->cmd : "",
			        c && c->cmd ? ": " : "");
	}
	if (failed && ex == EX_OK)
		ex = EX_OUTPUT;
	return ex;
}

/* Read all of stdin, refusing more than CLI_MAX_INPUT bytes. */
static int read_stdin(const cli *c, char **buf, size_t *len)
{
	size_t cap = 64 * 1024, n = 0;
	char *p = malloc(cap + 1), *q;

	while (p) {
		ssize_t r = read(STDIN_FILENO, p + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			cli_msg(c, "cannot read stdin: %s", strerror(errno));
			free(p);
			return EX_BANK;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > CLI_MAX_INPUT) {
			cli_msg(c, "stdin: input larger than %u bytes (16 MiB) refused",
			        CLI_MAX_INPUT);
			free(p);
			return EX_INVALID;
		}
		if (n == cap) {
			q = realloc(p, cap * 2 + 1);
			if (!q)
				free(p);
			p = q;
			cap *= 2;
		}
	}
	if (!p) {
		cli_msg(c, "stdin: out of memory");
		return EX_BANK;
	}
	p[n] = '\0';
	*buf = p;
	*len = n;
	return EX_OK;
}

int cli_input(const cli *c, const char *arg, char **buf, const char **text, size_t *len)
{
	int ex;

	*buf = NULL;
	if (strcmp(arg, "-") != 0) {
		*text = arg;
		*len = strlen(arg);
		if (*len > CLI_MAX_INPUT) {
			cli_msg(c, "JSON argument larger than 16 MiB refused");
			return EX_INVALID;
		}
		return EX_OK;
	}
	if ((ex = read_stdin(c, buf, len)))
		return ex;
	*text = *buf;
	return EX_OK;
}

void cli_block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigprocmask(SIG_BLOCK, set, NULL);
}

bool cli_wait_signal(const sigset_t *set, long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	struct timespec end, now;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ts.tv_sec;
	end.tv_nsec += ts.tv_nsec;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	for (;;) {
		if (sigtimedwait(set, NULL, &ts) >= 0)
			return true;
		if (errno != EINTR)
			return false;   /* EAGAIN: the time is up */
		/* Another signal (SIGCHLD, SIGWINCH...) woke us: sleep the rest. */
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left = (end.tv_sec - now.tv_sec) * 1000000000L + (end.tv_nsec - now.tv_nsec);
		if (left <= 0)
			return false;
		ts.tv_sec = left / 1000000000L;
		ts.tv_nsec = left % 1000000000L;
	}
}

int cli_dispatch(cli *c, const char *group, const cli_sub *subs, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;

	if (sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h"))) {
		const cli_sub *s = subs;

		printf("usage: membank %s <command> ...\n\ncommands:\n", group);
		for (; s->name; s++) {
			const char *nl = strchr(s->usage, '\n');
			printf("  %.*s\n", nl ? (int)(nl - s->usage) : (int)strlen(s->usage),
			       s->usage);
		}
		if (s->usage)
			printf("\n%s", s->usage);
		return EX_OK;
	}
	for (const cli_sub *s = subs; sub && s->name; s++) {
		if (strcmp(sub, s->name) != 0)
			continue;
		snprintf(c->cmdbuf, sizeof c->cmdbuf, "%s %s", group, s->name);
		c->cmd = c->cmdbuf;
		c->usage = s->usage;
		optind = 0;   /* GNU getopt: 0 re-initialises for the new argv */
		return s->fn(c, argc - 1, argv + 1);
	}
	c->cmd = group;
	snprintf(c->usagebuf, sizeof c->usagebuf, "membank %s <command> ...", group);
	c->usage = c->usagebuf;
	if (!sub)
		return cli_usage_error(c, "missing command; 'membank %s --help' lists them", group);
	return cli_usage_error(c, "unknown command '%s'; 'membank %s --help' lists them", sub, group);
}

int cli_positional(cli *c, int argc, char **argv, int min, int max, int *ex)
{
	int ch = cli_getopt(c, argc, argv, "", NULL, ex);
	int n;

	if (ch < 0)
		return -1;
	n = argc - optind;
	if (n < min || n > max) {
		*ex = cli_usage_error(c, n < min ? "missing argument" : "too many arguments");
		return -1;
	}
	return 0;
}

void cli_close_written(mb_bank *b, int ex)
{
	sigset_t set;

	if (b && ex == EX_OK) {
		/* Held to the end: a SIGINT or SIGTERM now would report as failed a
		 * write that is done; it is taken as "stop once this is over",
		 * which the exit is. */
		cli_block_signals(&set);
		cli_progress_transient();  /* shown while long, then gone: not asked for */
		mb_checkpoint_if_due(b);
	}
	mb_close(b);
}
