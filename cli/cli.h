/*
 * cli.h - what the membank command's files share.
 *
 * Exit codes are a contract with scripts:
 *   0 success, 1 not found (MB_ENOTFOUND), 2 usage error,
 *   3 invalid input (MB_EINVAL), 4 bank error (every other MB_E* code),
 *   5 output error: stdout could not be written (checked once at exit,
 *     after the command ran: what the command did to the bank stands).
 * stdout carries data only (JSON documents, ids, paths); stderr carries
 * messages, each "membank: <command>: <what>: <why>".
 */
#ifndef MEMBANK_CLI_H
#define MEMBANK_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>

#include "membank.h"

enum {
	EX_OK = 0,
	EX_NOTFOUND = 1,
	EX_USAGE = 2,
	EX_INVALID = 3,
	EX_BANK = 4,
	EX_OUTPUT = 5,
};

/* The largest JSON document read from stdin or an argument. */
#define CLI_MAX_INPUT (16u << 20)

/* --format: how a document prints.  AUTO is json when stdout is not a
 * terminal, pretty when it is.  Masks of them are 1u << FMT_x. */
enum cli_format { FMT_AUTO, FMT_JSON, FMT_PRETTY, FMT_TEXT, FMT_PROMETHEUS };
#define FMT_DOCUMENT ((1u << FMT_JSON) | (1u << FMT_PRETTY) | (1u << FMT_TEXT))

/* One invocation: the global options and the command being run. */
typedef struct cli {
	const char *bank_dir;  /* -b DIR, else NULL (the library's default) */
	bool bank_given;       /* -b was on the command line */
	bool quiet;            /* --quiet: no progress line */
	bool fresh;            /* --fresh: catch up with the stream after the open */
	char *journal_url;     /* --journal's copy (argv's is scrubbed), opts point to it */
	mb_options opts;
	bool tty;              /* stdout is a terminal: indent documents */
	int format;            /* enum cli_format, from --format */
	unsigned formats;      /* the formats the command prints (mask) */
	const char *cmd;       /* "page get": names the command in messages */
	const char *usage;     /* its usage text (help and usage errors) */
	char cmdbuf[64];       /* storage of cmd for two-word commands */
	char usagebuf[96];     /* storage of a group's synopsis */
} cli;

/* A command: argv[0] is its last name word ("get" of "page get"). */
typedef int (*cli_fn)(cli *c, int argc, char **argv);

/* Messages and exit codes. */
int cli_exit_code(int mb_code);
void cli_msg(const cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_fail(const cli *c, const mb_bank *b, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int cli_usage_error(const cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Option parsing shared by every command: getopt_long over argv with
 * -h/--help added; prints help (returns -1 with *exit_code 0) or a usage
 * error (returns -1 with *exit_code 2).  Otherwise returns the option
 * character as getopt_long does, 0 at the end (optind then points at the
 * first positional argument). */
struct option;
int cli_getopt(cli *c, int argc, char **argv, const char *shortopts,
               const struct option *longopts, int *exit_code);
/* A command without options: @p min..@p max positional arguments, from
 * argv[optind].  0, or -1 with *ex the exit code (help or usage error). */
int cli_positional(cli *c, int argc, char **argv, int min, int max, int *ex);
int cli_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* The bank, opened with the global options: created when missing by the
 * commands that write, never by those that only read (a typo in -b must not
 * leave a new bank behind). */
int cli_open(const cli *c, mb_bank **out);
/* The bank's directory: -b, else $MEMBANK_DIR, else ./memory-bank.  A
 * command that only reads says "no bank at PATH" (exit 4) when it is
 * missing. */
const char *cli_bank_path(const cli *c);
bool cli_bank_missing(const cli *c);
int cli_open_existing(const cli *c, mb_bank **out);
/* The journal URL in effect: --journal, else $MEMBANK_JOURNAL; NULL for
 * none given (the bank's recorded one, or the local journal).  Secret: it
 * may hold credentials, never print it. */
const char *cli_journal(const cli *c);
/* Copy @p in to @p out (at most @p cap bytes with the NUL) with the user,
 * password or token of every URL in it replaced by "***".  Every message
 * of the command passes through it. */
void cli_redact(const char *in, char *out, size_t cap);
/* Close a handle a command wrote through: when the command succeeded, first
 * the automatic checkpoint its write left (mb_checkpoint_if_due()), with
 * SIGINT and SIGTERM held until the process exits. */
void cli_close_written(mb_bank *b, int ex);

/* The end of every command, like GNU's close_stdout: flush and close
 * stdout; when any output was lost, say so on stderr ("membank: write error:
 * No space left on device") and exit EX_OUTPUT unless the command already
 * failed with its own code.  A reader that closed the pipe (EPIPE, with
 * SIGPIPE ignored) gets EX_OUTPUT without a message.  Returns the exit
 * code. */
int cli_close_stdout(const cli *c, int ex);
/* Output already failed: loops that print stop early. */
bool cli_output_failed(void);
/* fflush(stdout), remembering why it failed for cli_close_stdout().  -1
 * when the output failed (now or before). */
int cli_flush(void);
/* The reader of stdout is gone (a pipe whose reader closed it, a hung-up
 * terminal), found without writing: a command that waits for something to
 * print ('journal tail --follow') stops then, as a failed write would (exit
 * EX_OUTPUT, no message), instead of waiting for ever.  Cheap: one poll(). */
bool cli_reader_gone(void);

/* Print a JSON document as --format says (format.c): one line (json, and
 * the default when stdout is not a terminal), indented (pretty, the default
 * on a terminal) or aligned tables (text).  Number tokens are copied as
 * written in every format.  Returns an exit code. */
int cli_print_json(const cli *c, const char *json);
/* Print rows x cols cells (NULL: empty) in columns two spaces apart. */
void cli_print_table(char **cells, size_t rows, size_t cols);
/* FMT_x of a --format value, -1 for an unknown name. */
int cli_parse_format(const char *name);
/* "json, pretty, text" for a mask, into @p buf. */
const char *cli_format_names(unsigned mask, char *buf, size_t cap);
/* The same for @p len bytes of JSON (a value inside a document). */
int cli_print_json_n(const cli *c, const char *json, size_t len);

/* The JSON text of an argument, or of stdin when it is "-" (at most
 * CLI_MAX_INPUT bytes).  *buf is malloc'ed (free it) or NULL when the
 * argument itself is used.  Returns an exit code. */
int cli_input(const cli *c, const char *arg, char **buf, const char **text, size_t *len);

/* SIGINT and SIGTERM are blocked while a loop runs and taken only by
 * cli_wait_signal(), so a signal can never fall between a check and a sleep. */
void cli_block_signals(sigset_t *set);
/* Sleep up to @p ms milliseconds; true when SIGINT or SIGTERM arrived. */
bool cli_wait_signal(const sigset_t *set, long ms);

/* The progress line (progress.c): on stderr when it is a terminal and not
 * --quiet.  cli_progress_setup() sets c->opts.progress (after the options:
 * --quiet may follow the command's words); cli_progress() is that
 * callback, also fed by the command's own loops (doctor);
 * cli_progress_break() ends a line left open (a message follows). */
void cli_progress_setup(cli *c);
int cli_progress(void *ctx, const mb_progress *p);
void cli_progress_break(void);
/* The line is erased when its work is done instead of ending as a summary
 * (a command that reports each run itself: the compactor). */
void cli_progress_transient(void);

/* Command groups, in their own files. */
int cmd_page(cli *c, int argc, char **argv);
int cmd_sync(cli *c, int argc, char **argv);
int cmd_error(cli *c, int argc, char **argv);
int cmd_config(cli *c, int argc, char **argv);
int cmd_journal(cli *c, int argc, char **argv);
int cmd_init(cli *c, int argc, char **argv);
int cmd_snapshot(cli *c, int argc, char **argv);
int cmd_restore(cli *c, int argc, char **argv);
int cmd_compactor(cli *c, int argc, char **argv);
int cmd_stats(cli *c, int argc, char **argv);
int cmd_demo(cli *c, int argc, char **argv);
int cmd_doctor(cli *c, int argc, char **argv);
int cmd_batch(cli *c, int argc, char **argv);
int cmd_cluster(cli *c, int argc, char **argv);

/* A group's subcommands: name, usage text, function. */
typedef struct cli_sub {
	const char *name;
	const char *usage;
	cli_fn fn;
} cli_sub;

/* Run argv[1] of group argv[0] from @p subs (terminated by a NULL name;
 * that entry's usage, if any, ends the group's --help). */
int cli_dispatch(cli *c, const char *group, const cli_sub *subs, int argc, char **argv);

#endif /* MEMBANK_CLI_H */
