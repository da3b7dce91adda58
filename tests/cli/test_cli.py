#!/usr/bin/env python3
"""Tests of the membank command: the real binary ($MEMBANK) driven through
subprocess.  Every test gets a fresh bank in its own temporary directory.

Exit codes under test: 0 success, 1 not found, 2 usage error, 3 invalid input,
4 bank error, 5 output error.
"""
import hashlib
import concurrent.futures
import datetime
import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

MEMBANK = os.environ.get("MEMBANK", "membank")
if os.sep in MEMBANK:
    MEMBANK = os.path.abspath(MEMBANK)
FOUR = ("notion_pages.json", "sync_status.json", "error_log.json", "config_cache.json")

# Every command, as its words, for the --help checks.
COMMANDS = [
    ["init"], ["page", "put"], ["page", "merge"], ["page", "get"], ["page", "rm"],
    ["page", "list"], ["page", "count"], ["sync", "record"], ["sync", "status"],
    ["error", "log"], ["error", "resolve"], ["error", "stats"], ["config", "get"],
    ["config", "set"], ["snapshot"], ["restore"], ["compactor"], ["journal", "tail"],
    ["journal", "verify"], ["journal", "repair"], ["stats"], ["demo"], ["doctor"], ["batch"],
    ["cluster", "status"],
]
GROUPS = ["page", "sync", "error", "config", "journal", "cluster"]


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="membank-cli-test-")
        self.bank = os.path.join(self.tmp, "bank")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def mb(self, *args, bank=True, input=None, env=None, cwd=None, timeout=60):
        """Run membank [-b bank] args; return the CompletedProcess (bytes)."""
        argv = [MEMBANK] + (["-b", self.bank] if bank else []) + list(args)
        if isinstance(input, str):
            input = input.encode()
        return subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, cwd=cwd, timeout=timeout)

    def ok(self, *args, **kw):
        """Run and require exit 0; return stdout as text."""
        p = self.mb(*args, **kw)
        self.assertEqual(p.returncode, 0, "membank %s: %s" % (args, p.stderr.decode()))
        return p.stdout.decode()

    def doc(self, *args, **kw):
        """Run a command that prints one JSON document on one line."""
        out = self.ok(*args, **kw)
        self.assertEqual(out.count("\n"), 1, "one line when stdout is a pipe: %r" % out)
        return json.loads(out)

    def fails(self, code, *args, **kw):
        """Run and require exit @code, nothing on stdout, a message on stderr."""
        p = self.mb(*args, **kw)
        self.assertEqual(p.returncode, code,
                         "membank %s: exit %d, stderr %s" % (args, p.returncode, p.stderr))
        self.assertEqual(p.stdout, b"")
        self.assertTrue(p.stderr.startswith(b"membank: "), p.stderr)
        return p.stderr.decode(errors="replace")

    def state(self):
        """Everything a script can read of the bank, for before/after checks."""
        pages = self.ok("page", "list").split()
        return {
            "pages": {p: self.doc("page", "get", p) for p in pages},
            "sync": self.doc("sync", "status"),
            "errors": self.doc("error", "stats"),
            "config": self.doc("config", "get"),
            "last_seq": self.doc("stats")["journal"]["last_seq"],
        }

    def seed(self):
        """A bank with some of everything."""
        self.ok("page", "put", "p1", '{"title":"One","n":1}')
        self.ok("page", "put", "p2", '{"title":"Two","tags":["a","b"]}')
        self.ok("sync", "record", "success")
        self.ok("sync", "record", "failed", "--error", "HTTP 429 rate_limited")
        self.ok("error", "log", "rate_limited", "HTTP 429")
        self.ok("config", "set", '{"notion_settings":{"retry_attempts":5}}')


class Help(CliTest):
    def check_help(self, args):
        p = self.mb(*args, bank=False)
        self.assertEqual(p.returncode, 0, args)
        self.assertEqual(p.stderr, b"")
        self.assertTrue(p.stdout.startswith(b"usage: membank"), (args, p.stdout[:80]))
        return p.stdout.decode()

    def test_top_level_help(self):
        for flag in ("--help", "-h"):
            out = self.check_help([flag])
            for words in COMMANDS:
                self.assertIn(" ".join(words), out)
            self.assertIn("exit codes", out)

    def test_group_help(self):
        for g in GROUPS:
            for flag in ("--help", "-h"):
                out = self.check_help([g, flag])
                subs = [w[1] for w in COMMANDS if w[0] == g]
                for s in subs:
                    self.assertIn("%s %s" % (g, s), out)

    def test_every_command_help(self):
        for words in COMMANDS:
            for flag in ("--help", "-h"):
                out = self.check_help(words + [flag])
                self.assertTrue(out.startswith("usage: membank " + " ".join(words)), out)

    def test_help_does_not_touch_the_bank(self):
        self.mb("page", "put", "--help")
        self.assertFalse(os.path.exists(self.bank))

    def test_version(self):
        p = self.mb("--version", bank=False)
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout.decode(), r"^membank \d+\.\d+\.\d+\n$")


class Usage(CliTest):
    CASES = [
        [],
        ["frobnicate"],
        ["page"],
        ["page", "frob"],
        ["page", "put"],
        ["page", "put", "id"],
        ["page", "put", "id", "{}", "extra"],
        ["page", "get"],
        ["page", "rm"],
        ["page", "list", "--limit"],
        ["page", "list", "--limit", "0"],
        ["page", "list", "--limit", "x"],
        ["page", "list", "--limit", "-3"],
        ["page", "count", "extra"],
        ["page", "get", "--bogus", "x"],
        ["sync", "record"],
        ["sync", "record", "a", "b"],
        ["sync", "record", "failed", "--error"],
        ["error", "log", "type"],
        ["error", "resolve", "type"],
        ["error", "stats", "x"],
        ["config", "get", "a", "b"],
        ["config", "set"],
        ["snapshot", "extra"],
        ["restore"],
        ["compactor", "--every", "0"],
        ["compactor", "--every", "abc"],
        ["journal", "tail", "-n", "x"],
        ["journal"],
        ["stats", "x"],
        ["demo", "--workers", "0"],
        ["demo", "--seconds", "0"],
        ["demo", "--machines", "0"],
        ["demo", "--machines", "9"],
        ["demo", "--machines", "2"],            # no journal on a cluster
        ["demo", "--journal", "nats://h:1/S", "--machines", "3", "--workers", "2"],
        ["init", "--replicas", "0"],
        ["init", "--replicas", "6"],
        ["init", "--replicas", "x"],
        ["init", "--replicas", "3"],            # a new bank, no journal given
        ["--journal-timeout", "99", "init"],
        ["--journal-timeout", "x", "init"],
        ["--journal-creds", "", "init"],
        ["--journal"],
        ["cluster"],
        ["cluster", "frob"],
        ["cluster", "status", "x"],
        ["--durability", "slow", "init"],
        ["--bank"],
        ["-x", "init"],
    ]

    def test_usage_errors_exit_2(self):
        for args in self.CASES:
            err = self.fails(2, *args, bank=args[:1] != ["--bank"])
            self.assertIn("usage:", err, args)

    def test_usage_errors_create_nothing(self):
        self.mb("page", "put", "id")
        self.assertFalse(os.path.exists(self.bank))


class Init(CliTest):
    def test_init_creates_and_prints_path(self):
        out = self.ok("init")
        self.assertEqual(out, self.bank + "\n")
        self.assertTrue(os.path.isdir(os.path.join(self.bank, "store")))
        self.assertEqual(os.stat(self.bank).st_mode & 0o777, 0o700)
        self.assertEqual(self.ok("init"), self.bank + "\n")  # again: still fine

    def test_files_are_private(self):
        self.seed()
        self.ok("snapshot")
        for root, dirs, files in os.walk(self.bank):
            for d in dirs:
                self.assertEqual(os.stat(os.path.join(root, d)).st_mode & 0o777, 0o700, d)
            for f in files:
                self.assertEqual(os.stat(os.path.join(root, f)).st_mode & 0o777, 0o600, f)

    def test_empty_bank_argument(self):
        p = subprocess.run([MEMBANK, "-b", "", "init"], capture_output=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"usage:", p.stderr)

    def test_bank_long_option(self):
        p = subprocess.run([MEMBANK, "--bank", self.bank, "init"], capture_output=True)
        self.assertEqual(p.stdout.decode(), self.bank + "\n")
        p = subprocess.run([MEMBANK, "--bank=" + self.bank, "page", "count"], capture_output=True)
        self.assertEqual(p.stdout, b"0\n")

    def test_membank_dir_env(self):
        env = dict(os.environ, MEMBANK_DIR=self.bank)
        self.assertEqual(self.ok("init", bank=False, env=env), self.bank + "\n")
        self.ok("page", "put", "x", "{}", bank=False, env=env)
        self.assertEqual(self.ok("page", "count"), "1\n")

    def test_default_is_memory_bank_in_cwd(self):
        env = {k: v for k, v in os.environ.items() if k != "MEMBANK_DIR"}
        self.assertEqual(self.ok("init", bank=False, env=env, cwd=self.tmp), "./memory-bank\n")
        self.assertTrue(os.path.isdir(os.path.join(self.tmp, "memory-bank", "store")))

    def test_reads_do_not_create(self):
        for args in (["page", "get", "x"], ["page", "list"], ["page", "count"], ["page", "rm", "x"],
                     ["sync", "status"], ["error", "stats"], ["config", "get"], ["stats"],
                     ["snapshot"], ["journal", "tail"], ["journal", "verify"]):
            err = self.fails(4, *args)
            self.assertIn(self.bank, err)
            self.assertFalse(os.path.exists(self.bank), args)

    def test_writes_create(self):
        self.ok("sync", "record", "success")
        self.assertEqual(self.doc("sync", "status")["success_count"], 1)

    def test_not_a_bank_exits_4(self):
        os.makedirs(self.bank)
        with open(os.path.join(self.bank, "unrelated.txt"), "w") as f:
            f.write("mine")
        self.fails(4, "page", "count")
        # Nothing of a bank is made there (the library leaves an empty
        # open.lock behind: reported), and the file is untouched.
        left = set(os.listdir(self.bank)) - {"open.lock"}
        self.assertEqual(left, {"unrelated.txt"})
        with open(os.path.join(self.bank, "unrelated.txt")) as f:
            self.assertEqual(f.read(), "mine")

    def test_bank_is_a_file_exits_4(self):
        with open(self.bank, "w") as f:
            f.write("x")
        self.fails(4, "init")

    def test_newer_format_exits_4(self):
        self.ok("init")
        path = os.path.join(self.bank, "membank.json")
        with open(path) as f:
            meta = json.load(f)
        meta["format"] = 999
        with open(path, "w") as f:
            json.dump(meta, f)
        err = self.fails(4, "page", "count")
        self.assertIn("format 999", err)

    def test_symlink_bank_refused(self):
        self.ok("init")
        link = os.path.join(self.tmp, "link")
        os.symlink(self.bank, link)
        p = subprocess.run([MEMBANK, "-b", link, "page", "count"], capture_output=True)
        self.assertEqual(p.returncode, 4, p.stderr)


class Pages(CliTest):
    def test_put_get_roundtrip(self):
        self.ok("page", "put", "abc", '{"title":"Roadmap","n":3,"tags":["x"],"d":{"k":null}}')
        d = self.doc("page", "get", "abc")
        self.assertEqual(d["properties"], {"title": "Roadmap", "n": 3, "tags": ["x"], "d": {"k": None}})
        self.assertRegex(d["last_updated"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

    def test_put_replaces(self):
        self.ok("page", "put", "abc", '{"a":1,"b":2}')
        self.ok("page", "put", "abc", '{"c":3}')
        self.assertEqual(self.doc("page", "get", "abc")["properties"], {"c": 3})

    def test_merge_top_level(self):
        self.ok("page", "put", "abc", '{"a":1,"b":{"x":1},"c":3}')
        self.ok("page", "merge", "abc", '{"b":{"y":2},"c":null,"d":"new"}')
        self.assertEqual(self.doc("page", "get", "abc")["properties"],
                         {"a": 1, "b": {"y": 2}, "d": "new"})

    def test_merge_creates(self):
        self.ok("page", "merge", "fresh", '{"a":1}')
        self.assertEqual(self.doc("page", "get", "fresh")["properties"], {"a": 1})

    def test_put_from_stdin(self):
        self.ok("page", "put", "s", "-", input='{"from":"stdin","n":[1,2,3]}')
        self.assertEqual(self.doc("page", "get", "s")["properties"], {"from": "stdin", "n": [1, 2, 3]})
        self.ok("page", "merge", "s", "-", input='{"m":true}')
        self.assertEqual(self.doc("page", "get", "s")["properties"]["m"], True)

    def test_get_missing_exits_1(self):
        self.ok("init")
        err = self.fails(1, "page", "get", "nope")
        self.assertIn('page "nope"', err)
        self.assertIn("not found", err)

    def test_rm(self):
        self.ok("page", "put", "a", "{}")
        self.ok("page", "rm", "a")
        self.fails(1, "page", "get", "a")
        self.fails(1, "page", "rm", "a")
        self.assertEqual(self.ok("page", "count"), "0\n")

    def test_list_count_limit(self):
        ids = ["p%02d" % i for i in range(12)]
        for i in reversed(ids):
            self.ok("page", "put", i, '{"i":"%s"}' % i)
        self.assertEqual(self.ok("page", "list").split("\n")[:-1], ids)
        self.assertEqual(self.ok("page", "list", "--limit", "5").split(), ids[:5])
        self.assertEqual(self.ok("page", "list", "-n", "1").split(), ids[:1])
        self.assertEqual(self.ok("page", "list", "--limit", "100").split(), ids)
        self.assertEqual(self.ok("page", "count"), "12\n")

    def test_list_empty(self):
        self.ok("init")
        self.assertEqual(self.ok("page", "list"), "")
        self.assertEqual(self.ok("page", "count"), "0\n")

    def test_max_id_255_bytes(self):
        pid = "x" * 255
        self.ok("page", "put", pid, '{"long":true}')
        self.assertEqual(self.doc("page", "get", pid)["properties"], {"long": True})

    def test_utf8_id(self):
        pid = "página-日本"
        self.ok("page", "put", pid, '{"ü":"ß"}')
        self.assertEqual(self.doc("page", "get", pid)["properties"], {"ü": "ß"})
        self.assertEqual(self.ok("page", "list"), pid + "\n")

    def test_pretty_on_a_terminal(self):
        self.ok("page", "put", "t", '{"a":1,"b":[1,2]}')
        master, slave = pty.openpty()
        p = subprocess.run([MEMBANK, "-b", self.bank, "page", "get", "t"], stdout=slave,
                           stderr=subprocess.PIPE, timeout=30)
        os.close(slave)
        out = b""
        try:
            while True:
                chunk = os.read(master, 65536)
                if not chunk:
                    break
                out += chunk
        except OSError:
            pass
        os.close(master)
        self.assertEqual(p.returncode, 0)
        text = out.decode().replace("\r\n", "\n")
        self.assertGreater(text.count("\n"), 3, "indented on a terminal: %r" % text)
        self.assertEqual(json.loads(text)["properties"], {"a": 1, "b": [1, 2]})


class Numbers(CliTest):
    """Numbers print as they were written: 64-bit integers exactly, floats
    as floats (1.0, -0.0), on a pipe, on a terminal and after a restore."""

    PROPS = ('{"imax":9223372036854775807,"imin":-9223372036854775808,'
             '"umax":18446744073709551615,"p53":9007199254740993,"one":1.0,'
             '"big":12345678.0,"nz":-0.0,"iz":0,"tenth":0.1,"e":1e+300,"tiny":5e-324,'
             '"dmax":1.7976931348623157e+308,"deep":[1.0,{"x":[-0.0,18446744073709551615]}]}')

    def props_text(self, page):
        out = self.ok("page", "get", page)
        self.assertTrue(out.startswith('{"properties":'), out)
        return out[len('{"properties":'):out.index(',"last_updated":')]

    def test_put_get_exact_text(self):
        self.ok("page", "put", "n", self.PROPS)
        self.assertEqual(self.props_text("n"), self.PROPS)
        self.ok("page", "put", "z", '{"a": -0, "b": 1E2}')
        self.assertEqual(self.props_text("z"), '{"a":0,"b":100.0}')

    def test_merge_keeps_types(self):
        self.ok("page", "put", "n", '{"a":1.0}')
        self.ok("page", "merge", "n", "-", input='{"b":-0.0,"c":18446744073709551615}')
        self.assertEqual(self.props_text("n"), '{"a":1.0,"b":-0.0,"c":18446744073709551615}')

    def test_refused_with_a_message(self):
        self.ok("page", "put", "n", '{"a":1}')
        for bad, says in (('{"a":18446744073709551616}', "integer out of range (beyond 64 bits)"),
                          ('{"a":-9223372036854775809}', "integer out of range (beyond 64 bits)"),
                          ('{"a":1e400}', "number out of range")):
            err = self.fails(3, "page", "put", "n", bad)
            self.assertIn(says, err)
        self.assertEqual(self.props_text("n"), '{"a":1}')

    def test_config_timeout_keeps_its_type(self):
        self.ok("config", "set", '{"notion_settings":{"timeout_seconds":30.0}}')
        self.assertEqual(self.ok("config", "get", "notion_settings.timeout_seconds"), "30.0\n")
        self.ok("config", "set", '{"notion_settings":{"timeout_seconds":45}}')
        self.assertEqual(self.ok("config", "get", "notion_settings.timeout_seconds"), "45\n")
        err = self.fails(3, "config", "set", '{"cache_settings":{"max_entries":1e3}}')
        self.assertIn("max_entries must be an integer", err)

    def test_journal_tail_exact(self):
        self.ok("page", "put", "n", self.PROPS)
        event = self.ok("journal", "tail", "-n", "1")
        self.assertIn('"properties":' + self.PROPS, event)

    def test_snapshot_restore_exact(self):
        self.ok("page", "put", "n", self.PROPS)
        out = os.path.join(self.tmp, "out")
        os.mkdir(out, 0o700)
        self.ok("snapshot", "--out", out)
        self.bank = os.path.join(self.tmp, "restored")
        self.ok("restore", out)
        self.assertEqual(self.props_text("n"), self.PROPS)

    def test_pretty_on_a_terminal_keeps_numbers(self):
        self.ok("page", "put", "n", self.PROPS)
        master, slave = pty.openpty()
        p = subprocess.run([MEMBANK, "-b", self.bank, "page", "get", "n"], stdout=slave,
                           stderr=subprocess.PIPE, timeout=30)
        os.close(slave)
        out = b""
        try:
            while True:
                chunk = os.read(master, 65536)
                if not chunk:
                    break
                out += chunk
        except OSError:
            pass
        os.close(master)
        self.assertEqual(p.returncode, 0)
        text = out.decode().replace("\r\n", "\n")
        self.assertGreater(text.count("\n"), 10, text)
        for token in ("18446744073709551615", "9007199254740993", "1.0", "12345678.0", "-0.0",
                      "5e-324"):
            self.assertIn(token, text)
        self.assertEqual(repr(json.loads(text)["properties"]), repr(json.loads(self.PROPS)))


class BadInput(CliTest):
    """Invalid input exits 3 with a message naming what was wrong, and
    changes nothing a script can see."""

    def assert_refused(self, *args, input=None, code=3, says=None):
        before = self.state()
        err = self.fails(code, *args, input=input)
        self.assertEqual(self.state(), before, args)
        if says:
            self.assertIn(says, err)
        return err

    def test_invalid_json(self):
        self.seed()
        for bad in ['{"a":', "{a:1}", "", "{\"a\":1}x", "{'a':1}", "nul"]:
            self.assert_refused("page", "put", "p1", bad)
            self.assert_refused("page", "merge", "p1", bad)
            self.assert_refused("config", "set", bad)

    def test_not_an_object(self):
        self.seed()
        for bad in ["[1,2]", '"text"', "42", "null", "true"]:
            self.assert_refused("page", "put", "p1", bad)
            self.assert_refused("page", "merge", "p2", bad)
            self.assert_refused("config", "set", bad)

    def test_too_deep(self):
        self.seed()
        deep65 = '{"a":' * 65 + "1" + "}" * 65
        self.assert_refused("page", "put", "p1", deep65)
        self.assert_refused("page", "put", "p1", "-", input=deep65)
        arrays = '{"a":' + "[" * 64 + "]" * 64 + "}"
        self.assert_refused("page", "merge", "p1", arrays)
        deep64 = '{"a":' * 63 + "1" + "}" * 63 + ""
        self.ok("page", "put", "deep", deep64)

    def test_too_large_stdin(self):
        self.seed()
        big = b'{"a":"' + b"x" * (16 << 20) + b'"}'
        err = self.assert_refused("page", "put", "p1", "-", input=big)
        self.assertIn("16 MiB", err)
        self.assert_refused("config", "set", "-", input=big)

    def test_large_but_allowed(self):
        self.ok("init", "--max-json-bytes", str(16 << 20))  # the bank's bound (1 MiB default)
        doc = json.dumps({"blob": "y" * (3 << 20)})
        self.ok("page", "put", "big", "-", input=doc)
        self.assertEqual(len(self.doc("page", "get", "big")["properties"]["blob"]), 3 << 20)

    def test_wrong_config_types(self):
        self.seed()
        for bad in ['{"notion_settings":{"retry_attempts":"3"}}',
                    '{"notion_settings":{"retry_attempts":1.5}}',
                    '{"notion_settings":{"retry_attempts":-1}}',
                    '{"notion_settings":{"timeout_seconds":0}}',
                    '{"logging_settings":{"log_level":"LOUD"}}',
                    '{"logging_settings":{"structured_logging":"yes"}}',
                    '{"cache_settings":{"max_entries":"1000"}}',
                    '{"cache_settings":"x"}']:
            self.assert_refused("config", "set", bad)

    def test_unknown_config_key(self):
        self.seed()
        err = self.assert_refused("config", "set", '{"notion_settings":{"retry":3}}')
        self.assertIn("notion_settings.retry", err)
        self.assert_refused("config", "set", '{"bogus":1}', says="bogus")
        # One bad key spoils the whole update, the good one included.
        self.assert_refused("config", "set",
                            '{"cache_settings":{"max_entries":7},"x":{"y":1}}')

    def test_empty_id(self):
        self.seed()
        self.assert_refused("page", "put", "", "{}")
        self.assert_refused("page", "merge", "", "{}")
        self.assert_refused("page", "get", "")
        self.assert_refused("page", "rm", "")

    def test_id_256_bytes(self):
        self.seed()
        self.assert_refused("page", "put", "x" * 256, "{}")
        self.assert_refused("page", "merge", "é" * 128, "{}")   # 256 bytes of UTF-8

    def test_invalid_utf8_arguments(self):
        self.seed()
        bad = b"bad\xff\xfeid"
        self.assert_refused("page", "put", bad, "{}")
        self.assert_refused("page", "put", "p1", b'{"a":"\xc3("}')
        self.assert_refused("sync", "record", b"ok\xff")
        self.assert_refused("sync", "record", "failed", "--error", b"\xed\xa0\x80")
        self.assert_refused("error", "log", b"t\xff", "message")
        self.assert_refused("error", "log", "type", b"msg\xc0\xaf")
        self.assert_refused("error", "resolve", "type", b"steps\xff")

    def test_empty_status_and_type(self):
        self.seed()
        self.assert_refused("sync", "record", "")
        self.assert_refused("sync", "record", "", "--error", "boom")
        self.assert_refused("error", "log", "", "message")
        self.assert_refused("error", "resolve", "", "steps")

    def test_too_long_fields(self):
        self.seed()
        self.assert_refused("sync", "record", "s" * 65)
        self.assert_refused("error", "log", "t" * 129, "m")
        self.assert_refused("error", "log", "t", "m" * 4097)


class SyncErrors(CliTest):
    def test_sync_counts_and_history(self):
        self.ok("sync", "record", "success")
        self.ok("sync", "record", "failed", "--error", "HTTP 409 conflict_error")
        self.ok("sync", "record", "running")
        self.ok("sync", "record", "success", "-e", "partial")
        s = self.doc("sync", "status")
        self.assertEqual(s["success_count"], 1)
        self.assertEqual(s["error_count"], 2)
        self.assertEqual(s["current_status"], "success")
        self.assertEqual([(h["status"], h["error"]) for h in s["sync_history"]],
                         [("success", None), ("failed", "HTTP 409 conflict_error"),
                          ("running", None), ("success", "partial")])
        self.assertEqual(s["last_successful_sync"], s["sync_history"][0]["timestamp"])

    def test_empty_error_counts_a_failure(self):
        self.ok("sync", "record", "failed", "--error=")
        s = self.doc("sync", "status")
        self.assertEqual((s["error_count"], s["success_count"]), (1, 0))
        self.assertEqual(s["sync_history"][0]["error"], "")

    def test_failure_status_counts_without_error(self):
        self.ok("sync", "record", "failed")
        self.ok("sync", "record", "ERROR")
        self.ok("sync", "record", "failing")
        s = self.doc("sync", "status")
        self.assertEqual((s["error_count"], s["success_count"]), (2, 0))
        self.assertEqual([(h["status"], h["error"]) for h in s["sync_history"]],
                         [("failed", ""), ("ERROR", ""), ("failing", None)])
        out = self.ok("sync", "record", "--help")
        self.assertIn("failed, failure or error in any case", out)

    def test_argument_starting_with_dash(self):
        self.ok("error", "log", "timeout", "--", "-5 retries left")
        self.assertEqual(self.doc("error", "stats")["last_error"]["message"], "-5 retries left")

    def test_fresh_status(self):
        self.ok("init")
        s = self.doc("sync", "status")
        self.assertEqual((s["success_count"], s["error_count"], s["sync_history"]), (0, 0, []))
        self.assertIsNone(s["last_successful_sync"])

    def test_error_log_resolve_stats(self):
        self.ok("error", "log", "rate_limited", "HTTP 429: slow down")
        self.ok("error", "log", "rate_limited", "HTTP 429 again")
        self.ok("error", "log", "timeout", "ReadTimeout after 30 s")
        e = self.doc("error", "stats")
        self.assertEqual(e["total_errors"], 3)
        self.assertEqual(e["resolved_errors"], 0)
        self.assertEqual(e["patterns"], {"rate_limited": 2, "timeout": 1})
        self.assertEqual(e["last_error"]["error_type"], "timeout")
        self.assertEqual(e["last_error"]["message"], "ReadTimeout after 30 s")
        self.ok("error", "resolve", "rate_limited", "back off")
        self.assertEqual(self.doc("error", "stats")["resolved_errors"], 2)
        self.ok("error", "resolve", "rate_limited", "back off again")
        self.assertEqual(self.doc("error", "stats")["resolved_errors"], 2)

    def test_empty_message_allowed(self):
        self.ok("error", "log", "t", "")
        self.assertEqual(self.doc("error", "stats")["last_error"]["message"], "")

    def test_concurrent_processes_exact_totals(self):
        """8 concurrent workers, each running 200 `membank sync record`."""
        self.ok("init")

        def worker(w):
            for i in range(200):
                args = ["sync", "record", "success"] if (w + i) % 2 == 0 else \
                       ["sync", "record", "failed", "--error", "w%d-%d" % (w, i)]
                p = self.mb(*args)
                if p.returncode != 0:
                    return p.stderr.decode()
            return None

        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            results = list(ex.map(worker, range(8)))
        self.assertEqual(results, [None] * 8)
        s = self.doc("sync", "status")
        self.assertEqual(s["success_count"], 800)
        self.assertEqual(s["error_count"], 800)
        self.assertEqual(s["success_count"] + s["error_count"], 1600)
        self.assertEqual(len(s["sync_history"]), 100)
        self.assertEqual(self.doc("stats")["journal"]["last_seq"], 1600)
        self.assertEqual(self.ok("journal", "verify").count('"clean":true'), 1)


class Config(CliTest):
    def test_defaults(self):
        self.ok("init")
        c = self.doc("config", "get")
        self.assertEqual(c["notion_settings"]["retry_attempts"], 3)
        # a new bank drops no page (the original file's 1000/3600 were examples)
        self.assertEqual(c["cache_settings"], {"ttl_seconds": 0, "max_entries": 0})
        self.assertEqual(c["logging_settings"]["log_level"], "INFO")

    def test_get_key(self):
        self.ok("init")
        self.assertEqual(self.ok("config", "get", "cache_settings.max_entries"), "0\n")
        self.assertEqual(self.ok("config", "get", "logging_settings.structured_logging"), "true\n")
        self.assertEqual(json.loads(self.ok("config", "get", "cache_settings")),
                         {"ttl_seconds": 0, "max_entries": 0})

    def test_unknown_key_exits_1(self):
        self.ok("init")
        for key in ("nope", "cache_settings.nope", "cache_settings.max_entries.x", "", "."):
            err = self.fails(1, "config", "get", key)
            self.assertIn("not found", err)

    def test_set_deep_merges(self):
        self.ok("config", "set", '{"cache_settings":{"max_entries":7}}')
        self.ok("config", "set", "-", input='{"logging_settings":{"log_level":"DEBUG"}}')
        c = self.doc("config", "get")
        self.assertEqual(c["cache_settings"], {"ttl_seconds": 0, "max_entries": 7})
        self.assertEqual(c["logging_settings"]["log_level"], "DEBUG")
        self.assertIsNotNone(c["last_config_update"])


    def test_removed_pages_counted(self):
        """Pages eviction drops are counted in stats and in the snapshot's
        result, and `config --help` states the defaults."""
        self.ok("init")
        st = self.doc("stats")
        self.assertEqual((st["pages_evicted"], st["pages_expired"], st["pages_purged"]),
                         (0, 0, 0))
        self.ok("config", "set", '{"cache_settings":{"max_entries":5}}')
        for i in range(12):
            self.ok("--durability", "fast", "page", "put", "p%d" % i, "{}")
        self.assertEqual(self.ok("page", "count"), "5\n")
        st = self.doc("stats")
        self.assertEqual((st["pages_evicted"], st["pages_expired"], st["pages_purged"]),
                         (7, 0, 0))
        snap = self.doc("snapshot")
        self.assertEqual((snap["pages"], snap["pages_evicted"], snap["pages_purged"],
                          snap["pages_expired"], snap["purged"]), (5, 7, 0, 0, 0))
        self.assertEqual(self.doc("stats")["pages_evicted"], 7)
        out = self.ok("config", "--help")
        self.assertIn("0 (default) = no bound", out)
        self.assertIn("0 (default) = never", out)
        self.assertIn("1000 and 3600", out)


class Journal(CliTest):
    def test_tail(self):
        self.seed()
        lines = self.ok("journal", "tail", "-n", "3").splitlines()
        events = [json.loads(x) for x in lines]
        self.assertEqual([e["seq"] for e in events], [4, 5, 6])
        self.assertEqual([e["op"] for e in events], ["sync.record", "error.log", "config.update"])
        self.assertEqual(events[1]["error_type"], "rate_limited")
        every = self.ok("journal", "tail", "--lines", "100").splitlines()
        self.assertEqual([json.loads(x)["seq"] for x in every], [1, 2, 3, 4, 5, 6])
        self.assertEqual(json.loads(every[0])["op"], "page.put")
        self.assertEqual(self.ok("journal", "tail", "-n", "0"), "")
        self.assertEqual(len(self.ok("journal", "tail").splitlines()), 6)

    def test_tail_empty(self):
        self.ok("init")
        self.assertEqual(self.ok("journal", "tail"), "")

    def test_tail_follow(self):
        self.seed()
        p = subprocess.Popen([MEMBANK, "-b", self.bank, "journal", "tail", "-n", "1", "-f"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            first = json.loads(p.stdout.readline())
            self.assertEqual(first["seq"], 6)
            self.ok("page", "put", "followed", '{"x":1}')
            self.ok("sync", "record", "success")
            second = json.loads(p.stdout.readline())
            third = json.loads(p.stdout.readline())
            self.assertEqual((second["seq"], second["op"]), (7, "page.put"))
            self.assertEqual((third["seq"], third["op"]), (8, "sync.record"))
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=10), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()

    def test_tail_follow_ends_when_the_reader_goes(self):
        """`journal tail -f | head -1` on an idle bank: the follower finds
        its reader gone without anything to write and exits 5 without a
        message (it used to wait for ever for an event to fail on); with
        SIGPIPE at its default too.  stdout on a file goes on."""
        self.seed()
        for ignore in (True, False):
            r, w = os.pipe()
            p = subprocess.Popen([MEMBANK, "-b", self.bank, "journal", "tail", "-n", "1", "-f"],
                                 stdout=w, stderr=subprocess.PIPE,
                                 preexec_fn=(lambda: signal.signal(signal.SIGPIPE, signal.SIG_IGN))
                                 if ignore else None)
            os.close(w)
            try:
                with os.fdopen(r, "rb") as f:
                    self.assertEqual(json.loads(f.readline())["seq"], 6)
                self.assertEqual(p.wait(timeout=30), 5)
                self.assertEqual(p.stderr.read(), b"")
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                p.stderr.close()
        with open(os.path.join(self.tmp, "out"), "wb") as out:
            p = subprocess.Popen([MEMBANK, "-b", self.bank, "journal", "tail", "-n", "1", "-f"],
                                 stdout=out, stderr=subprocess.PIPE)
            try:
                with self.assertRaises(subprocess.TimeoutExpired):
                    p.wait(timeout=1)
                p.send_signal(signal.SIGTERM)
                self.assertEqual(p.wait(timeout=10), 0)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                p.stderr.close()

    def test_tail_follow_says_what_a_snapshot_removed(self):
        """A follower that lags behind a snapshot which removes the segments
        holding its next events says which it skipped; --journal-retention
        keeps them."""
        self.ok("init", "--max-json-bytes", str(16 << 20))  # for the 15 MiB records
        self.ok("page", "put", "a", '{"x":1}')
        self.ok("page", "put", "b", '{"x":2}')
        p = subprocess.Popen([MEMBANK, "-b", self.bank, "journal", "tail", "-n", "1", "-f"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            self.assertEqual(json.loads(p.stdout.readline())["seq"], 2)
            os.kill(p.pid, signal.SIGSTOP)   # the follower lags from seq 3 on
            big = '{"blob":"%s"}' % ("z" * (15 << 20))
            for i in range(5):   # 15 MiB records: the 64 MiB segment rolls at seq 11
                self.ok("--durability", "fast", "page", "put", "big%d" % i, "-", input=big)
                if i < 4:
                    self.ok("--durability", "fast", "page", "rm", "big%d" % i)
            jdir = os.path.join(self.bank, "journal")
            segs = sorted(f for f in os.listdir(jdir) if f.endswith(".jnl"))
            self.assertEqual(segs, ["%020d.jnl" % 1, "%020d.jnl" % 11])
            self.assertEqual(self.doc("snapshot", "--journal-retention", "3600")["seq"], 11)
            self.assertEqual(sorted(f for f in os.listdir(jdir) if f.endswith(".jnl")), segs)
            # a snapshot removes the segments the checkpoint before it covers
            self.ok("page", "put", "c", '{"x":3}')
            self.assertEqual(self.doc("snapshot")["seq"], 12)
            self.assertEqual(sorted(f for f in os.listdir(jdir) if f.endswith(".jnl")), segs[1:])
            os.kill(p.pid, signal.SIGCONT)
            ev = json.loads(p.stdout.readline())
            self.assertEqual((ev["seq"], ev["op"], ev["id"]), (11, "page.put", "big4"))
            self.assertEqual(json.loads(p.stdout.readline())["seq"], 12)
            self.ok("page", "put", "d", '{"x":4}')
            self.assertEqual(json.loads(p.stdout.readline())["seq"], 13)
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=30), 0)
            err = p.stderr.read().decode()
            self.assertIn("membank: journal tail: events 3 to 10 (8) were skipped: a snapshot "
                          "removed the journal segments", err)
            self.assertEqual(err.count("skipped"), 1)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()

    def test_journal_retention_option(self):
        self.ok("init")
        for cmd in (["snapshot"], ["compactor"]):
            err = self.fails(2, *cmd, "--journal-retention", "x")
            self.assertIn("--journal-retention needs 0..4294967295 seconds, not 'x'", err)
            self.assertIn("--journal-retention S", self.ok(*cmd, "--help"))

    def test_repair_keeps_what_the_checkpoint_holds(self):
        """Damage before the newest checkpoint's seq, with a store that cannot
        be trusted (another boot's): the repair keeps the checkpoint usable
        and the bank opens with everything it holds."""
        for i in range(100):
            self.ok("page", "put", "p%03d" % i, '{"x":%d}' % i)
        self.assertEqual(self.doc("snapshot")["seq"], 100)
        for i in range(10):
            self.ok("page", "put", "q%03d" % i, '{"y":%d}' % i)
        seg = os.path.join(self.bank, "journal", "%020d.jnl" % 1)
        with open(seg, "r+b") as f:
            data = f.read()
            f.seek(data.index(b"p049"))
            f.write(b"X")
        with open(os.path.join(self.bank, "store", "boot_id"), "w") as f:
            f.write("an-older-boot")
        self.assertIn("journal", self.fails(4, "page", "count"))
        r = self.doc("journal", "repair")
        self.assertTrue(r["clean"])
        self.assertEqual(r["damage"]["seq"], 50)
        self.assertEqual(r["action"], "checkpoint %020d holds seq 1 to 100, past the damage: "
                         "moved 1 segment(s) aside as .damaged" % 100)
        self.assertEqual(self.ok("page", "count"), "100\n")
        self.assertEqual(json.loads(self.ok("page", "get", "p049"))["properties"], {"x": 49})
        self.ok("page", "put", "after", '{"z":1}')
        self.assertEqual(json.loads(self.ok("journal", "tail", "-n", "1"))["seq"], 101)
        self.assertTrue(self.doc("journal", "verify")["clean"])

    def test_verify_clean(self):
        self.seed()
        r = self.doc("journal", "verify")
        self.assertEqual((r["clean"], r["records"], r["last_seq"], r["damage"]), (True, 6, 6, None))

    def corrupt_first_record(self):
        self.ok("page", "put", "corruptme-page", '{"a":1}')
        for i in range(5):
            self.ok("sync", "record", "success")
        jdir = os.path.join(self.bank, "journal")
        seg = os.path.join(jdir, sorted(f for f in os.listdir(jdir) if f.endswith(".jnl"))[0])
        with open(seg, "r+b") as f:
            data = f.read()
            at = data.index(b"corruptme-page")
            f.seek(at)
            f.write(b"X")
        return seg

    def test_verify_damaged_then_repair(self):
        seg = self.corrupt_first_record()
        p = self.mb("journal", "verify")
        self.assertEqual(p.returncode, 4, p.stderr)
        r = json.loads(p.stdout)
        self.assertFalse(r["clean"])
        self.assertEqual(r["damage"]["seq"], 1)
        self.assertIn(os.path.basename(seg), r["damage"]["segment"])
        self.assertIn(b"damaged", p.stderr)
        p = self.mb("journal", "repair")
        self.assertIn(p.returncode, (0, 4), p.stderr)
        json.loads(p.stdout)
        self.assertTrue(any(f.endswith(".damaged") for f in os.listdir(os.path.dirname(seg))))
        self.assertTrue(self.doc("journal", "verify")["clean"])
        self.ok("sync", "record", "success")
        self.assertTrue(self.doc("journal", "verify")["clean"])
        # the store held the damaged record: the repair kept it
        self.assertEqual(json.loads(self.ok("page", "get", "corruptme-page"))["properties"],
                         {"a": 1})

    def cut_segment(self, pages, middle):
        """@pages puts, then the only segment cut after half its records
        (in the middle of the next one when @middle)."""
        for i in range(pages):
            self.ok("page", "put", "p%03d" % i, '{"x":%d}' % i)
        seg = os.path.join(self.bank, "journal", "%020d.jnl" % 1)
        with open(seg, "rb") as f:
            data = f.read()
        ends, off = [], 32
        while off + 25 <= len(data) and data[off + 16] != 0:
            off += 25 + int.from_bytes(data[off:off + 4], "little")
            ends.append(off)
        self.assertEqual(len(ends), pages)
        keep = ends[pages // 2 - 1]
        os.truncate(seg, keep + 10 if middle else keep)
        return pages // 2

    def test_verify_reports_records_the_store_holds(self):
        for middle in (True, False):
            with self.subTest(middle=middle):
                shutil.rmtree(self.bank, ignore_errors=True)
                kept = self.cut_segment(100, middle)
                self.assertIn("journal: damaged", self.fails(4, "page", "count"))
                p = self.mb("journal", "verify")
                self.assertEqual(p.returncode, 4, p.stderr)
                r = json.loads(p.stdout)
                self.assertFalse(r["clean"])
                self.assertEqual((r["last_seq"], r["torn_tail"]), (kept, middle))
                self.assertEqual(r["damage"]["seq"], kept + 1)
                self.assertIn("records %d to 100 are missing" % (kept + 1), r["damage"]["reason"])
                self.assertIn(b"records %d to 100 are missing" % (kept + 1), p.stderr)

    def test_repair_keeps_what_the_store_holds(self):
        kept = self.cut_segment(100, True)
        r = self.doc("journal", "repair")
        self.assertTrue(r["clean"])
        self.assertEqual(r["action"], "wrote checkpoint/%020d from the store (seq 1 to 100), "
                         "moved 1 segment(s) aside as .damaged" % 100)
        self.assertEqual(r["damage"]["seq"], kept + 1)
        self.assertEqual(self.ok("page", "count"), "100\n")
        self.ok("page", "put", "after", '{"y":1}')
        self.assertEqual(json.loads(self.ok("journal", "tail", "-n", "1"))["seq"], 101)
        v = self.doc("journal", "verify")
        self.assertEqual((v["clean"], v["first_seq"], v["last_seq"]), (True, 101, 101))
        # the checkpoint alone gives the bank back (the store is a cache)
        shutil.rmtree(os.path.join(self.bank, "store"))
        self.assertEqual(self.ok("page", "count"), "101\n")
        self.assertEqual(json.loads(self.ok("page", "get", "p099"))["properties"], {"x": 99})
        jdir = os.path.join(self.bank, "journal")
        self.assertIn("%020d.jnl.damaged" % 1, os.listdir(jdir))


class StoppedPeers(CliTest):
    """A process that holds a lock and is stopped (SIGSTOP) makes others
    fail with a message that names it, not wait forever."""

    def test_open_lock_held_by_stopped_process(self):
        self.ok("page", "put", "a", '{"x":1}')
        holder = subprocess.Popen(
            [sys.executable, "-c",
             "import fcntl, os, signal, sys\n"
             "f = open(sys.argv[1], 'a')\n"
             "fcntl.lockf(f, fcntl.LOCK_EX)\n"
             "print('locked', flush=True)\n"
             "os.kill(os.getpid(), signal.SIGSTOP)\n",
             os.path.join(self.bank, "open.lock")],
            stdout=subprocess.PIPE)
        try:
            self.assertEqual(holder.stdout.readline(), b"locked\n")
            _, status = os.waitpid(holder.pid, os.WUNTRACED)
            self.assertTrue(os.WIFSTOPPED(status))
            start = time.monotonic()
            err = self.fails(4, "page", "get", "a", timeout=120)
            self.assertLess(time.monotonic() - start, 60)
            self.assertIn("open.lock: held by process %d, which has been stopped" % holder.pid, err)
            self.assertIn("kill -CONT %d" % holder.pid, err)
            # once it continues (and lets go), opens work again
            holder.send_signal(signal.SIGCONT)
            holder.wait(timeout=30)
            self.assertEqual(json.loads(self.ok("page", "get", "a"))["properties"], {"x": 1})
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
            holder.stdout.close()


class SnapshotRestore(CliTest):
    def test_snapshot_into_bank(self):
        self.seed()
        info = self.doc("snapshot")
        self.assertEqual((info["pages"], info["seq"]), (2, 6))
        for name in FOUR:
            with open(os.path.join(self.bank, name)) as f:
                json.load(f)
        with open(os.path.join(self.bank, "notion_pages.json")) as f:
            pages = json.load(f)
        self.assertEqual(pages["metadata"]["total_pages"], 2)
        self.assertEqual(pages["pages"]["p1"]["properties"], {"title": "One", "n": 1})
        self.assertEqual(info["bytes"], sum(os.path.getsize(os.path.join(self.bank, n)) for n in FOUR))

    def test_snapshot_out(self):
        self.seed()
        out = os.path.join(self.tmp, "out")
        os.mkdir(out, 0o700)
        info = self.doc("snapshot", "--out", out)
        self.assertEqual(info["dir"], out)
        with open(os.path.join(out, "sync_status.json")) as f:
            s = json.load(f)
        self.assertEqual((s["success_count"], s["error_count"]), (1, 1))
        with open(os.path.join(out, "error_log.json")) as f:
            e = json.load(f)
        self.assertEqual(e["error_stats"]["total_errors"], 1)
        self.assertEqual(e["patterns"], {"rate_limited": 1})
        with open(os.path.join(out, "config_cache.json")) as f:
            self.assertEqual(json.load(f)["notion_settings"]["retry_attempts"], 5)

    def test_restore_roundtrip(self):
        self.seed()
        before = self.state()
        out = os.path.join(self.tmp, "out")
        os.mkdir(out, 0o700)
        self.ok("snapshot", "--out", out)
        self.bank = os.path.join(self.tmp, "restored")
        self.assertEqual(self.ok("restore", out), self.bank + "\n")
        after = self.state()
        for k in ("pages", "sync", "errors", "config"):
            self.assertEqual(after[k], before[k], k)

    def test_restore_refuses_nonempty_then_force(self):
        self.seed()
        out = os.path.join(self.tmp, "out")
        os.mkdir(out, 0o700)
        self.ok("snapshot", "--out", out)
        self.ok("page", "put", "later", "{}")
        before = self.state()
        self.fails(4, "restore", out)
        self.assertEqual(self.state(), before)
        self.ok("restore", out, "--force")
        self.fails(1, "page", "get", "later")
        self.assertEqual(self.doc("page", "get", "p1")["properties"], {"title": "One", "n": 1})

    def write_four(self, d, npages):
        ts = now_rfc3339()
        os.makedirs(d, 0o700, exist_ok=True)
        pages = {"%032x" % (i * 7919): {"properties": {"i": i}, "last_updated": ts}
                 for i in range(npages)}
        docs = {
            "notion_pages.json": {"pages": pages, "last_updated": ts,
                                  "metadata": {"total_pages": npages, "last_sync": None}},
            "sync_status.json": {"last_successful_sync": None, "sync_history": [],
                                 "current_status": None, "error_count": 0, "success_count": 0},
            "error_log.json": {"errors": [], "patterns": {}, "resolutions": {}, "last_error": {},
                               "error_stats": {"total_errors": 0, "resolved_errors": 0}},
            "config_cache.json": {"notion_settings": {"api_version": "2022-06-28",
                                                      "retry_attempts": 3, "timeout_seconds": 30},
                                  "logging_settings": {"log_level": "INFO",
                                                       "structured_logging": True},
                                  "cache_settings": {"ttl_seconds": 3600, "max_entries": 0},
                                  "last_config_update": ts},
        }
        for name, doc in docs.items():
            with open(os.path.join(d, name), "w") as f:
                json.dump(doc, f)
        return sorted(pages)

    def test_restore_generated_and_list_in_batches(self):
        src = os.path.join(self.tmp, "gen")
        ids = self.write_four(src, 2500)
        self.ok("restore", src)
        self.assertEqual(self.ok("page", "count"), "2500\n")
        self.assertEqual(self.ok("page", "list").split(), ids)
        self.assertEqual(self.ok("page", "list", "--limit", "1500").split(), ids[:1500])
        self.assertEqual(self.doc("page", "get", ids[-1])["properties"]["i"],
                         int(ids[-1], 16) // 7919)

    def test_restore_bad_file_changes_nothing(self):
        self.seed()
        before = self.state()
        src = os.path.join(self.tmp, "gen")
        self.write_four(src, 3)
        with open(os.path.join(src, "sync_status.json"), "w") as f:
            f.write('{"success_count": "many"')
        p = self.mb("restore", src, "--force")
        self.assertIn(p.returncode, (3, 4), p.stderr)
        self.assertIn(b"sync_status.json", p.stderr)
        self.assertEqual(self.state(), before)

    def test_restore_force_never_replaces_a_non_bank(self):
        src = os.path.join(self.tmp, "gen")
        self.write_four(src, 3)
        self.bank = os.path.join(self.tmp, "documents")
        os.mkdir(self.bank, 0o700)
        with open(os.path.join(self.bank, "precious.txt"), "w") as f:
            f.write("keep me")
        p = self.mb("restore", src, "--force")
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn(b"not a membank bank", p.stderr)
        self.assertEqual(sorted(os.listdir(self.bank)), ["precious.txt"])
        self.assertEqual([n for n in os.listdir(self.tmp) if ".restore-" in n], [])

    def test_restore_missing_dir(self):
        p = self.mb("restore", os.path.join(self.tmp, "nowhere"))
        self.assertIn(p.returncode, (1, 3, 4))
        self.assertNotEqual(p.returncode, 0)


def write_original(d, pages_age_s=0, ttl=3600):
    """A directory the way the original MemoryBank class wrote it:
    json.dump(indent=2), datetime.now().isoformat() (naive, no Z)."""
    import datetime
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    old = now - datetime.timedelta(seconds=pages_age_s)
    os.makedirs(d, 0o755, exist_ok=True)
    docs = {
        "notion_pages.json": {
            "pages": {"a1": {"properties": {"title": "Roadmap"}, "last_updated": old.isoformat()},
                      "b2": {"properties": {"n": 2}, "last_updated": old.isoformat()}},
            "last_updated": now.isoformat(),
            "metadata": {"total_pages": 2, "last_sync": now.isoformat()}},
        "sync_status.json": {"last_successful_sync": now.isoformat(),
                             "sync_history": [{"timestamp": now.isoformat(), "status": "success",
                                               "error": None}],
                             "current_status": "success", "error_count": 0, "success_count": 1},
        "config_cache.json": {"notion_settings": {"api_version": "2022-06-28",
                                                  "retry_attempts": 3, "timeout_seconds": 30},
                              "logging_settings": {"log_level": "INFO",
                                                   "structured_logging": True},
                              "cache_settings": {"ttl_seconds": ttl, "max_entries": 1000},
                              "last_config_update": now.isoformat()},
    }
    for name, doc in docs.items():
        with open(os.path.join(d, name), "w") as f:
            json.dump(doc, f, indent=2)
    return {name: open(os.path.join(d, name), "rb").read() for name in docs}


def write_many(d, n, age_s, cache=None):
    """@n pages updated @age_s seconds ago; config_cache.json with these
    cache_settings, or none when @cache is None."""
    import datetime
    when = (datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) -
            datetime.timedelta(seconds=age_s)).isoformat()
    os.makedirs(d, 0o700)
    pages = {"p%05d" % i: {"properties": {"i": i}, "last_updated": when} for i in range(n)}
    with open(os.path.join(d, "notion_pages.json"), "w") as f:
        json.dump({"pages": pages, "last_updated": when,
                   "metadata": {"total_pages": n, "last_sync": None}}, f)
    if cache is not None:
        with open(os.path.join(d, "config_cache.json"), "w") as f:
            json.dump({"cache_settings": cache}, f)


class RestoreKeepsEveryPage(CliTest):
    """No page in the files is evicted or expired without a word.  Before:
    notion_pages.json alone (1,200 pages, a day old) restored with
    --keep-expired gave 1,000 pages and max_entries 1000 (the absent config
    read as the legacy 1000 and 3600); a config whose max_entries was below
    the pages kept them until the next new page evicted the excess."""

    def restore(self, src, *flags):
        p = self.mb("restore", src, *flags)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode(), self.bank + "\n")
        return p.stderr.decode()

    def assert_kept(self, pages, max_entries, ttl):
        self.assertEqual(self.ok("page", "count"), "%d\n" % pages)
        cache = self.doc("config", "get")["cache_settings"]
        self.assertEqual((cache["max_entries"], cache["ttl_seconds"]), (max_entries, ttl))
        self.ok("page", "put", "new", "{}")
        self.assertEqual(self.ok("page", "count"), "%d\n" % (pages + 1))
        self.assertEqual(self.doc("stats")["pages_evicted"], 0)

    def test_pages_alone_keep_expired(self):
        src = os.path.join(self.tmp, "src")
        write_many(src, 1200, 86400)
        err = self.restore(src, "--keep-expired")
        self.assertIn("no config_cache.json: cache_settings off (max_entries 0, ttl_seconds 0)",
                      err)
        self.assert_kept(1200, 0, 0)

    def test_pages_alone_no_flag(self):
        src = os.path.join(self.tmp, "src")
        write_many(src, 1200, 86400)
        self.restore(src)
        self.assert_kept(1200, 0, 0)

    def test_config_without_cache_settings(self):
        """A key config_cache.json lacks reads as a new bank's (before: the
        legacy 1000 and 3600: a choice needed, then 1,000 pages)."""
        src = os.path.join(self.tmp, "src")
        write_many(src, 1200, 86400, {})
        self.assertEqual(self.restore(src), "")
        self.assert_kept(1200, 0, 0)

    def test_max_entries_below_pages(self):
        src = os.path.join(self.tmp, "src")
        write_many(src, 30, 0, {"ttl_seconds": 3600, "max_entries": 10})
        err = self.restore(src)
        self.assertIn("max_entries was 10, fewer than the pages kept: set to 0 (no bound)", err)
        self.assert_kept(30, 0, 3600)

    def test_max_entries_below_pages_keep_expired(self):
        src = os.path.join(self.tmp, "src")
        write_many(src, 30, 86400, {"ttl_seconds": 3600, "max_entries": 10})
        err = self.restore(src, "--keep-expired")
        self.assertIn("max_entries was 10", err)
        self.assertIn("30 pages older than ttl_seconds=3600 kept: ttl_seconds set to 0", err)
        self.assert_kept(30, 0, 0)

    def test_expire_says_how_many(self):
        src = os.path.join(self.tmp, "src")
        write_many(src, 30, 86400, {"ttl_seconds": 3600, "max_entries": 10})
        err = self.restore(src, "--expire")
        self.assertIn("30 pages older than ttl_seconds=3600 dropped (--expire)", err)
        self.assertNotIn("max_entries was", err)  # what is kept (none) fits
        self.assertEqual(self.ok("page", "count"), "0\n")

    def test_force_replaces_with_the_same_rule(self):
        self.ok("page", "put", "x", "{}")
        src = os.path.join(self.tmp, "src")
        write_many(src, 30, 0, {"ttl_seconds": 0, "max_entries": 10})
        self.restore(src, "--force")
        self.assert_kept(30, 0, 0)

    def test_own_snapshot_says_nothing(self):
        src = os.path.join(self.tmp, "src")
        write_many(src, 30, 0, {"ttl_seconds": 0, "max_entries": 100})
        self.restore(src)
        out = os.path.join(self.tmp, "out")
        os.mkdir(out, 0o700)
        self.ok("snapshot", "--out", out)
        self.bank = os.path.join(self.tmp, "again")
        self.assertEqual(self.restore(out), "")
        self.assert_kept(30, 100, 0)

    def test_migration_without_config(self):
        write_many(self.bank, 1200, 86400)
        self.assert_kept(1200, 0, 0)


class Migration(CliTest):
    """The original class's directory converts in place on first open, its
    files kept under original-memory-bank/ (before: exit 4, "not a membank
    bank", and restore into it refused)."""

    def test_read_command_migrates(self):
        orig = write_original(self.bank)
        self.assertEqual(self.doc("page", "get", "a1")["properties"], {"title": "Roadmap"})
        kept = os.path.join(self.bank, "original-memory-bank")
        for name, data in orig.items():
            with open(os.path.join(kept, name), "rb") as f:
                self.assertEqual(f.read(), data, name)
        self.assertTrue(os.path.exists(os.path.join(self.bank, "membank.json")))
        self.assertEqual(self.ok("page", "count"), "2\n")
        self.assertEqual(self.doc("sync", "status")["success_count"], 1)
        self.assertEqual(self.doc("config", "get")["cache_settings"]["ttl_seconds"], 3600)
        self.ok("doctor")

    def test_expired_pages_kept_with_ttl_off(self):
        write_original(self.bank, pages_age_s=7200)
        self.assertEqual(self.ok("page", "count"), "2\n")
        self.assertEqual(self.doc("config", "get")["cache_settings"]["ttl_seconds"], 0)
        with open(os.path.join(self.bank, "original-memory-bank", "migration.json")) as f:
            note = json.load(f)
        self.assertEqual((note["pages"], note["expired_pages_kept"], note["ttl_seconds_was"],
                          note["ttl_seconds_now"]), (2, 2, 3600, 0))

    def test_other_files_not_migrated(self):
        write_original(self.bank)
        with open(os.path.join(self.bank, "notes.txt"), "w") as f:
            f.write("mine")
        err = self.fails(4, "page", "count")
        self.assertIn("not a membank bank", err)
        self.assertNotIn("membank.json", os.listdir(self.bank))


class RestoreExpired(CliTest):
    """A restore whose pages are older than ttl_seconds needs a choice
    (before: exit 0 and every page absent)."""

    def test_refused_without_choice(self):
        src = os.path.join(self.tmp, "old")
        write_original(src, pages_age_s=7200)
        err = self.fails(3, "restore", src)
        self.assertIn("2 of 2 pages are older than ttl_seconds=3600 and would be expired on "
                      "arrival; restore with --keep-expired", err)
        self.assertFalse(os.path.exists(self.bank))
        self.fails(2, "restore", src, "--keep-expired", "--expire")

    def test_keep_expired(self):
        src = os.path.join(self.tmp, "old")
        write_original(src, pages_age_s=7200)
        self.assertEqual(self.ok("restore", src, "--keep-expired"), self.bank + "\n")
        self.assertEqual(self.ok("page", "count"), "2\n")
        self.assertEqual(self.doc("config", "get")["cache_settings"]["ttl_seconds"], 0)
        self.ok("snapshot")
        self.assertEqual(self.ok("page", "count"), "2\n")

    def test_expire(self):
        src = os.path.join(self.tmp, "old")
        write_original(src, pages_age_s=7200)
        self.ok("restore", src, "--expire")
        self.assertEqual(self.ok("page", "count"), "0\n")
        self.assertEqual(self.doc("config", "get")["cache_settings"]["ttl_seconds"], 3600)

    def test_fresh_pages_need_no_choice(self):
        src = os.path.join(self.tmp, "new")
        write_original(src)
        self.ok("restore", src)
        self.assertEqual(self.ok("page", "count"), "2\n")


class RestoreLenient(CliTest):
    """Times with offsets, other fractions and none (naive, read as UTC);
    absent files read as empty ones, but one of the four must be there."""

    def test_time_forms_and_absent_files(self):
        src = os.path.join(self.tmp, "src")
        os.mkdir(src)
        pages = {"pages": {
            "z": {"properties": {}, "last_updated": "2099-01-31T12:00:00Z"},
            "o": {"properties": {}, "last_updated": "2099-01-31T14:30:00.5+02:30"},
            "n": {"properties": {}, "last_updated": "2099-01-31T12:00:00.123456789"}},
            "last_updated": None, "metadata": {"total_pages": 3, "last_sync": None}}
        with open(os.path.join(src, "notion_pages.json"), "w") as f:
            json.dump(pages, f, indent=2)
        self.ok("restore", src)
        self.assertEqual(self.doc("page", "get", "z")["last_updated"], "2099-01-31T12:00:00.000000Z")
        self.assertEqual(self.doc("page", "get", "o")["last_updated"], "2099-01-31T12:00:00.500000Z")
        self.assertEqual(self.doc("page", "get", "n")["last_updated"], "2099-01-31T12:00:00.123456Z")
        self.assertEqual(self.doc("sync", "status")["success_count"], 0)
        self.assertEqual(self.doc("error", "stats")["total_errors"], 0)

    def test_no_file_refused(self):
        src = os.path.join(self.tmp, "empty")
        os.mkdir(src)
        err = self.fails(3, "restore", src)
        self.assertIn("none of notion_pages.json", err)
        self.assertFalse(os.path.exists(self.bank))


class RestoreExactCounts(CliTest):
    """Counts in hand-written files are read exactly or refused: cJSON keeps
    doubles, so 9007199254740993 used to load as ...992 and a pattern count
    of 1e30 as 0 (an undefined cast); the same for membank.json and the
    checkpoint's position."""

    def files(self, success_count="0", pattern="3", total="3"):
        src = os.path.join(self.tmp, "src")
        shutil.rmtree(src, ignore_errors=True)
        os.mkdir(src)
        with open(os.path.join(src, "sync_status.json"), "w") as f:
            f.write('{"last_successful_sync":null,"sync_history":[],"current_status":null,'
                    '"error_count":0,"success_count":%s}' % success_count)
        with open(os.path.join(src, "error_log.json"), "w") as f:
            f.write('{"errors":[],"patterns":{"x":%s},"resolutions":{},"last_error":{},'
                    '"error_stats":{"total_errors":%s,"resolved_errors":0}}' % (pattern, total))
        return src

    def test_largest_exact_count_kept(self):
        big = "9007199254740991"
        self.ok("restore", self.files(big, big, big))
        self.assertEqual(self.doc("sync", "status")["success_count"], 9007199254740991)
        st = self.doc("error", "stats")
        self.assertEqual((st["patterns"]["x"], st["total_errors"]),
                         (9007199254740991, 9007199254740991))

    def test_inexact_counts_refused(self):
        for sc, pat, tot, what in (("9007199254740993", "3", "3", "success_count"),
                                   ("18446744073709551615", "3", "3", "success_count"),
                                   ("0", "1e30", "1e30", "total_errors"),
                                   ("0", "1e30", "3", 'patterns."x"'),
                                   ("0", "9007199254740993", "9007199254740993", "total_errors"),
                                   ("0", "2.5", "3", 'patterns."x"')):
            err = self.fails(3, "restore", self.files(sc, pat, tot))
            self.assertIn(what, err)
            self.assertIn("9007199254740991", err)
            self.assertFalse(os.path.exists(self.bank))

    def test_identity_with_fractional_history_limit_refused(self):
        self.ok("init")
        ident = os.path.join(self.bank, "membank.json")
        with open(ident) as f:
            doc = json.load(f)
        for hl in ("100.5", "1e30", "-1"):
            with open(ident, "w") as f:
                f.write(json.dumps(doc).replace('"history_limit": %d' % doc["history_limit"],
                                                '"history_limit": %s' % hl))
            err = self.fails(4, "page", "count")
            self.assertIn("membank.json", err)

    def test_checkpoint_position_beyond_a_double_is_damage(self):
        self.seed()
        self.ok("snapshot")
        ck = os.path.join(self.bank, "checkpoint")
        newest = os.path.join(ck, sorted(os.listdir(ck))[-1], "checkpoint.json")
        with open(newest) as f:
            text = f.read()
        doc = json.loads(text)
        os.unlink(newest)  # a hard link shared with the bank directory's view
        with open(newest, "w") as f:
            f.write(text.replace('"seq":%d' % doc["seq"], '"seq":1e30'))
        # the store is a cache: rebuilt from the checkpoints and the journal
        shutil.rmtree(os.path.join(self.bank, "store"))
        # the bad position is damage: that checkpoint is set aside and the
        # rebuild starts from the one before it (it used to be taken as seq
        # 2^63, an undefined cast)
        self.assertEqual(self.ok("page", "list").split(), ["p1", "p2"])
        self.assertIn(os.path.basename(os.path.dirname(newest)) + ".damaged", os.listdir(ck))
        self.assertEqual(self.doc("sync", "status")["success_count"], 1)


class CheckpointNotADirectory(CliTest):
    """An entry in checkpoint/ named like a checkpoint but not a directory of
    its own is damage: recovery sets it aside and loads the one before.  A
    file or FIFO there failed every rebuild ("Not a directory", exit 4);
    a symlink to another bank's files loaded those instead of this bank's."""

    def test_set_aside(self):
        other = os.path.join(self.tmp, "other")
        out = os.path.join(self.tmp, "out")
        self.assertEqual(self.mb("-b", other, "page", "put", "foreign", "{}", bank=False).returncode, 0)
        self.assertEqual(self.mb("-b", other, "snapshot", "--out", out, bank=False).returncode, 0)
        for kind in ("fifo", "file", "symlink"):
            shutil.rmtree(self.bank, ignore_errors=True)
            self.seed()
            ck = os.path.join(self.bank, "checkpoint")
            planted = os.path.join(ck, "%020d" % 99)
            if kind == "fifo":
                os.mkfifo(planted)
            elif kind == "file":
                with open(planted, "w") as f:
                    f.write("x")
            else:
                os.symlink(out, planted)
            shutil.rmtree(os.path.join(self.bank, "store"))   # a rebuild
            self.assertEqual(self.ok("page", "list").split(), ["p1", "p2"], kind)
            self.assertIn("%020d.damaged" % 99, os.listdir(ck), kind)
            self.assertEqual(self.doc("sync", "status")["success_count"], 1, kind)


class Compactor(CliTest):
    def run_compactor(self, sig):
        self.seed()
        p = subprocess.Popen([MEMBANK, "-b", self.bank, "compactor", "--every", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 20
            lines = []
            while len(lines) < 2 and time.time() < deadline:
                line = p.stderr.readline()
                if not line:
                    break
                lines.append(line.decode())
                self.ok("page", "put", "during-%d" % len(lines), "{}")
            p.send_signal(sig)
            rc = p.wait(timeout=10)
            rest = p.stderr.read().decode()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        self.assertEqual(rc, 0, rest)
        self.assertEqual(len(lines), 2)
        m = re.search(r"snapshot in ([\d.]+) s: (\d+) pages, (\d+) bytes, seq (\d+)", lines[0])
        self.assertIsNotNone(m, lines[0])
        self.assertEqual((int(m.group(2)), int(m.group(4))), (2, 6))
        self.assertIn("stopping on signal", rest)
        # No temp file is left, in the bank directory or below it.
        for root, _dirs, files in os.walk(self.bank):
            for f in files:
                self.assertNotRegex(f, r"(?i)(tmp|temp|~$|^\.)", os.path.join(root, f))
        for name in FOUR:
            with open(os.path.join(self.bank, name)) as f:
                json.load(f)

    def test_sigterm_exits_0(self):
        self.run_compactor(signal.SIGTERM)

    def test_sigint_exits_0(self):
        self.run_compactor(signal.SIGINT)

    def test_skips_unchanged(self):
        """A run with nothing new since the checkpoint says so and writes nothing."""
        self.seed()
        p = subprocess.Popen([MEMBANK, "-b", self.bank, "compactor", "--every", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            first = p.stderr.readline().decode()
            ck = os.path.join(self.bank, "checkpoint.json")
            before = (os.stat(ck).st_ino, sorted(os.listdir(os.path.join(self.bank, "checkpoint"))),
                      [os.stat(os.path.join(self.bank, n)).st_mtime_ns for n in FOUR])
            second = p.stderr.readline().decode()
            after = (os.stat(ck).st_ino, sorted(os.listdir(os.path.join(self.bank, "checkpoint"))),
                     [os.stat(os.path.join(self.bank, n)).st_mtime_ns for n in FOUR])
            p.terminate()
            self.assertEqual(p.wait(timeout=10), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        self.assertIn("seq 6", first)
        self.assertIn("unchanged since the checkpoint at seq 6", second)
        self.assertEqual(before, after)

    def test_out_dir(self):
        self.seed()
        out = os.path.join(self.tmp, "out")
        os.mkdir(out, 0o700)
        p = subprocess.Popen([MEMBANK, "-b", self.bank, "compactor", "-e", "5", "--out", out],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stderr.readline()
        p.terminate()
        self.assertEqual(p.wait(timeout=10), 0)
        p.stdout.close()
        p.stderr.close()
        self.assertTrue(set(FOUR) <= set(os.listdir(out)))


class Stats(CliTest):
    def test_stats(self):
        self.seed()
        s = self.doc("stats")
        self.assertEqual(s["pages"], 2)
        self.assertEqual(s["journal"]["last_seq"], 6)
        self.assertEqual(s["journal"]["segments"], 1)
        self.assertEqual(s["durability"], "full")
        self.assertGreater(s["store"]["map_used"], 0)

    def test_durability_fast(self):
        p = self.mb("--durability", "fast", "page", "put", "f", '{"fast":true}')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.doc("page", "get", "f")["properties"], {"fast": True})
        self.assertEqual(self.doc("--durability", "fast", "stats")["durability"], "fast")


class Doctor(CliTest):
    def checks(self, report):
        return {c["check"]: c["result"] for c in report["checks"]}

    def test_healthy(self):
        self.seed()
        self.ok("snapshot")
        r = self.doc("doctor")
        self.assertTrue(r["healthy"])
        self.assertEqual(self.checks(r), {"open": "ok", "journal": "ok", "permissions": "ok",
                                          "store": "ok", "readers": "ok", "checkpoint": "ok"})

    def test_healthy_with_many_error_types(self):
        """checkpoint.json carries every type's last_seen: read whole."""
        self.seed()
        for i in range(40):
            self.ok("error", "log", "type-%02d" % i, "message")
        self.ok("snapshot")
        self.assertGreater(os.path.getsize(os.path.join(self.bank, "checkpoint.json")), 1024)
        r = self.doc("doctor")
        self.assertEqual(self.checks(r)["checkpoint"], "ok", r)

    def test_changes_nothing(self):
        self.seed()
        before = self.state()
        self.doc("doctor")
        self.assertEqual(before, self.state())

    def test_world_readable_file(self):
        self.seed()
        os.chmod(os.path.join(self.bank, "membank.json"), 0o644)
        p = self.mb("doctor")
        self.assertEqual(p.returncode, 4)
        r = json.loads(p.stdout)
        self.assertFalse(r["healthy"])
        self.assertEqual(self.checks(r)["permissions"], "failed")

    def test_damaged_journal(self):
        Journal.corrupt_first_record(self)
        p = self.mb("doctor")
        self.assertEqual(p.returncode, 4)
        self.assertEqual(self.checks(json.loads(p.stdout))["journal"], "failed")

    def test_missing_bank(self):
        p = self.mb("doctor")
        self.assertEqual(p.returncode, 4)
        self.assertEqual(self.checks(json.loads(p.stdout))["open"], "failed")
        self.assertFalse(os.path.exists(self.bank))


def bank_files(bank):
    """{relative path: (size, mtime_ns, sha256)} of every file in the bank."""
    out = {}
    for root, dirs, files in os.walk(bank):
        for name in files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(path, bank)] = (st.st_size, st.st_mtime_ns, digest)
    return out


# Runnable commands (after seed()), their exit code, and whether they print
# to stdout.  "{tmp}" is the test's directory.
RUNS = [
    (["init"], 0, True),
    (["page", "put", "p3", '{"t":3}'], 0, False),
    (["page", "merge", "p3", '{"u":4}'], 0, False),
    (["page", "get", "p1"], 0, True),
    (["page", "get", "absent"], 1, False),
    (["page", "rm", "p2"], 0, False),
    (["page", "list"], 0, True),
    (["page", "list", "--limit", "1"], 0, True),
    (["page", "count"], 0, True),
    (["sync", "record", "success"], 0, False),
    (["sync", "status"], 0, True),
    (["error", "log", "timeout", "slow"], 0, False),
    (["error", "resolve", "timeout", "retry"], 0, False),
    (["error", "stats"], 0, True),
    (["config", "get"], 0, True),
    (["config", "get", "cache_settings.max_entries"], 0, True),
    (["config", "get", "no.such.key"], 1, False),
    (["config", "set", '{"cache_settings":{"ttl_seconds":0}}'], 0, False),
    (["snapshot"], 0, True),
    (["snapshot", "--out", "{tmp}/out"], 0, True),
    (["journal", "tail"], 0, True),
    (["journal", "tail", "-n", "2"], 0, True),
    (["journal", "verify"], 0, True),
    (["journal", "repair"], 0, True),
    (["stats"], 0, True),
    (["doctor"], 0, True),
    (["--fresh", "page", "count"], 0, True),
    (["page", "get", "p1", "--fresh"], 0, True),
    (["cluster", "status"], 3, False),   # a local journal: a message, no document
    (["page", "get"], 2, False),   # a usage error: its message goes to stderr
    (["--version"], 0, True),
]

# The commands that only read (README: what they may touch).
READ_ONLY = [
    ["page", "get", "p1"], ["page", "get", "absent"], ["page", "list"], ["page", "count"],
    ["sync", "status"], ["error", "stats"], ["config", "get"],
    ["config", "get", "cache_settings.max_entries"], ["stats"], ["journal", "verify"],
    ["journal", "tail"], ["doctor"],
]


class ClosedStdio(CliTest):
    """Run from cron or with `<&- >&- 2>&-`: the bank's files were opened on
    0..2 and the command's output and messages were written into them."""

    # what the commands print, never in a bank file (the JSON documents
    # printed are only looked for in the files that are not JSON)
    JUNK = (b"membank: ", b"usage: ")
    JSON_JUNK = (b'"healthy"', b'"clean"', b'{"dir"', b'{"path"', b'{"properties"')

    def closed(self, *args):
        argv = ["sh", "-c", 'exec "$@" <&- >&- 2>&-', "sh", MEMBANK, "-b", self.bank]
        return subprocess.run(argv + list(args), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=120).returncode

    def assert_clean(self, what):
        self.assertFalse([n for n in os.listdir(self.bank) if n.startswith("store.invalid")],
                         "%s: the store was damaged and rebuilt" % what)
        for rel in bank_files(self.bank):
            with open(os.path.join(self.bank, rel), "rb") as f:
                data = f.read()
            junks = self.JUNK + (() if rel.endswith(".json") else
                                 self.JSON_JUNK + ((self.bank + "\n").encode(),))
            for junk in junks:
                self.assertNotIn(junk, data, "%s: output found in %s" % (what, rel))

    def test_every_command_with_stdio_closed(self):
        self.seed()
        os.mkdir(os.path.join(self.tmp, "out"), 0o700)
        for args, code, _ in RUNS:
            args = [a.replace("{tmp}", self.tmp) for a in args]
            self.assertEqual(self.closed(*args), code, args)
            self.assert_clean(args)
            self.ok("page", "count")   # the bank still opens
        self.assertEqual(self.doc("page", "get", "p3")["properties"], {"t": 3, "u": 4})
        self.fails(1, "page", "get", "p2")
        s = self.doc("sync", "status")
        self.assertEqual((s["success_count"], s["error_count"]), (2, 1))
        self.assertEqual(self.doc("error", "stats")["resolved_errors"], 1)
        self.assertEqual(self.ok("config", "get", "cache_settings.ttl_seconds"), "0\n")
        self.assertTrue(self.doc("doctor")["healthy"])
        self.assertTrue(self.doc("journal", "verify")["clean"])

    def test_fresh_bank_and_restore_with_stdio_closed(self):
        self.assertEqual(self.closed("page", "put", "a", '{"v":1}'), 0)
        self.assert_clean("page put on a new bank")
        out = os.path.join(self.tmp, "out")
        os.mkdir(out, 0o700)
        self.ok("snapshot", "--out", out)
        bank = self.bank
        self.bank = os.path.join(self.tmp, "restored")
        self.assertEqual(self.closed("restore", out), 0)
        self.assert_clean("restore")
        self.assertEqual(self.doc("page", "get", "a")["properties"], {"v": 1})
        self.bank = bank
        self.assertEqual(self.doc("page", "get", "a")["properties"], {"v": 1})


class OutputErrors(CliTest):
    """stdout on /dev/full, or a pipe whose reader went away: the command
    says so and exits 5 instead of 0."""

    def full(self, *args, bank=True):
        argv = [MEMBANK] + (["-b", self.bank] if bank else []) + list(args)
        with open("/dev/full", "wb") as full:
            return subprocess.run(argv, stdout=full, stderr=subprocess.PIPE, timeout=120)

    def test_every_help_on_dev_full(self):
        cases = [["--help"], ["-h"]] + [[g, "--help"] for g in GROUPS] + \
                [w + ["--help"] for w in COMMANDS]
        for args in cases:
            p = self.full(*args, bank=False)
            self.assertEqual(p.returncode, 5, (args, p.stderr))
            self.assertIn(b"write error: No space left on device", p.stderr, args)

    def test_every_command_on_dev_full(self):
        self.seed()
        os.mkdir(os.path.join(self.tmp, "out"), 0o700)
        for args, code, prints in RUNS:
            args = [a.replace("{tmp}", self.tmp) for a in args]
            p = self.full(*args)
            if prints:
                self.assertEqual(p.returncode, 5, (args, p.stderr))
                self.assertTrue(p.stderr.startswith(b"membank: "), (args, p.stderr))
                self.assertIn(b"write error: No space left on device", p.stderr, args)
            else:   # nothing printed, nothing lost: its own exit code
                self.assertEqual(p.returncode, code, (args, p.stderr))
                self.assertNotIn(b"write error", p.stderr, args)
        # what the commands did to the bank stands
        self.assertEqual(self.doc("page", "get", "p3")["properties"], {"t": 3, "u": 4})
        # restore prints the bank's path; the bank it built stands too
        self.bank = os.path.join(self.tmp, "restored")
        p = self.full("restore", os.path.join(self.tmp, "out"))
        self.assertEqual(p.returncode, 5, p.stderr)
        self.assertIn(b"write error: No space left on device", p.stderr)
        self.assertEqual(self.doc("page", "get", "p3")["properties"], {"t": 3, "u": 4})

    def test_large_output_on_dev_full(self):
        """Output larger than stdio's buffer fails while the command runs."""
        pad = "x" * 5000
        for i in range(20):
            self.ok("page", "put", "page-%02d" % i, '{"pad":"%s"}' % pad)
        for args in (["page", "list"], ["journal", "tail", "-n", "100"]):
            p = self.full(*args)
            self.assertEqual(p.returncode, 5, (args, p.stderr))
            self.assertIn(b"write error: No space left on device", p.stderr, args)

    def closed_pipe(self, *args):
        """Run with SIGPIPE ignored; read one byte of stdout, then close it."""
        argv = ["sh", "-c", "trap '' PIPE; exec \"$@\"", "sh", MEMBANK, "-b", self.bank]
        p = subprocess.Popen(argv + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = p.stdout.read(1)
        p.stdout.close()
        err = p.stderr.read()
        p.stderr.close()
        return p.wait(timeout=120), first, err

    def test_reader_went_away(self):
        """`journal tail -n 100000 | head -1` with SIGPIPE ignored: EPIPE is
        exit 5, without a message (the reader chose to stop)."""
        pad = "y" * 100000
        for i in range(30):   # 3 MB of events: far more than a pipe holds
            self.ok("page", "put", "big-%02d" % i, '{"pad":"%s"}' % pad)
        for args in (["journal", "tail", "-n", "100000"], ["journal", "tail", "-f"]):
            code, first, err = self.closed_pipe(*args)
            self.assertEqual(first, b"{", args)
            self.assertEqual(code, 5, (args, err))
            self.assertEqual(err, b"", args)


class ReadOnly(CliTest):
    """Commands that only read change no file of the bank but store/lock.mdb
    (LMDB's reader table: a reader takes a slot).  store/data.mdb keeps its
    size and bytes, but not its mtime: LMDB with MDB_WRITEMAP sets the file's
    size at every open (to the size it has), which the kernel counts as a
    change of the file (libshm/kv_lmdb.c, WRITEMAP)."""

    def test_read_only_commands_change_nothing(self):
        self.seed()
        self.ok("snapshot")
        self.ok("page", "put", "after", '{"tail":true}')   # a journal tail too
        self.ok("page", "get", "p1")    # a first open since the last write
        for args in READ_ONLY:
            before = bank_files(self.bank)
            p = self.mb(*args)
            self.assertIn(p.returncode, (0, 1), (args, p.stderr))
            after = bank_files(self.bank)
            self.assertEqual(sorted(before), sorted(after), args)
            for rel in before:
                if rel == os.path.join("store", "lock.mdb"):
                    continue
                b, a = before[rel], after[rel]
                if rel == os.path.join("store", "data.mdb"):
                    b, a = (b[0], b[2]), (a[0], a[2])   # size and digest
                self.assertEqual(b, a, "%s changed %s" % (args, rel))

    def test_doctor_claims_no_change(self):
        self.seed()
        r = self.doc("doctor")
        for c in r["checks"]:
            self.assertNotIn("cleared", c["detail"], c)


class Demo(CliTest):
    def test_demo_removes_its_bank(self):
        p = self.mb("demo", "--seconds", "1", "--workers", "1", bank=False, timeout=120,
                    env=dict(os.environ, TMPDIR=self.tmp))
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        self.assertIn(b"the temporary bank is removed (--keep keeps it)", p.stdout)
        self.assertEqual([x for x in os.listdir(self.tmp) if x.startswith("membank-demo-")], [])

    def test_demo_short(self):
        p = self.mb("demo", "--seconds", "2", "--workers", "2", "--keep", bank=False,
                    timeout=120, env=dict(os.environ, TMPDIR=self.tmp))
        out = p.stdout.decode()
        self.assertIn("the bank is kept in " + self.tmp, out)
        self.assertEqual(p.returncode, 0, out + p.stderr.decode())
        self.assertIn("result: all checks passed", out)
        self.assertNotIn("DIFFERENT", out)
        paths = re.findall(r"^  (/\S+\.json)$", out, re.M)
        self.assertEqual([os.path.basename(x) for x in paths], list(FOUR))
        with open(paths[0]) as f:
            pages = json.load(f)
        self.assertGreater(pages["metadata"]["total_pages"], 0)
        self.assertEqual(pages["metadata"]["total_pages"], len(pages["pages"]))
        self.assertTrue(all(re.fullmatch(r"[0-9a-f]{32}", k) for k in pages["pages"]))
        m = re.search(r"^total\s+(\d+)\s+(\d+)", out, re.M)
        self.assertGreater(int(m.group(1)), 0)

    def test_demo_stops_on_sigterm(self):
        p = subprocess.Popen([MEMBANK, "demo", "--seconds", "60", "--workers", "2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=dict(os.environ, TMPDIR=self.tmp))
        # A progress line is printed (and flushed) once the workers run with
        # the signals handled: wait for it rather than for a time.
        first = b""
        while b" ops " not in first:
            first = p.stdout.readline()
            self.assertNotEqual(first, b"", "demo ended before its first progress line")
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        out = first + out
        self.assertEqual(p.returncode, 0, out.decode() + err.decode())
        self.assertIn(b"stopped early by a signal", out)
        self.assertIn(b"result: all checks passed", out)

    def test_demo_refuses_nonempty_bank(self):
        self.ok("page", "put", "x", "{}")
        self.fails(2, "demo", "--seconds", "1", "--workers", "1")

    def test_demo_given_bank(self):
        p = self.mb("demo", "--seconds", "1", "--workers", "1", timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        self.assertEqual(self.ok("config", "get", "cache_settings.max_entries"), "5000\n")
        self.assertGreater(int(self.ok("page", "count")), 0)


NUMBER = re.compile(rb'(?<![\w."])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w"])')


def json_numbers(text):
    """The number tokens of JSON text, as written (strings skipped)."""
    out, i, s = [], 0, text
    while i < len(s):
        if s[i:i + 1] == b'"':
            j = i + 1
            while s[j:j + 1] != b'"':
                j += 2 if s[j:j + 1] == b"\\" else 1
            i = j + 1
            continue
        m = NUMBER.match(s, i)
        if m and (i == 0 or s[i - 1:i] in b":,[ \t\n"):
            out.append(m.group())
            i = m.end()
        else:
            i += 1
    return out


def unused_port():
    """A TCP port of 127.0.0.1 on which nothing listens (bound, then closed)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_CLUSTER_SUPPORT = []


def cluster_journal_supported():
    """Whether the library behind the command implements the journal on a
    cluster: a stub (the API without it) creates a local bank when given an
    unreachable URL."""
    if not _CLUSTER_SUPPORT:
        tmp = tempfile.mkdtemp(prefix="membank-cli-probe-")
        try:
            p = subprocess.run([MEMBANK, "-b", os.path.join(tmp, "b"), "--journal",
                                "nats://127.0.0.1:%d/PROBE" % unused_port(),
                                "--journal-timeout", "300", "init"],
                               capture_output=True, timeout=120)
            _CLUSTER_SUPPORT.append(p.returncode != 0)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _CLUSTER_SUPPORT[0]


class JournalOptions(CliTest):
    """The journal's options without a server: refusals, a local bank, and
    credentials that never reach an output."""

    SECRET = "pw-%d-Zq9" % os.getpid()

    def url(self, stream="S"):
        return "nats://mbuser:%s@127.0.0.1:%d/%s" % (self.SECRET, unused_port(), stream)

    def assert_secret_absent(self, p, what):
        for stream in (p.stdout, p.stderr):
            self.assertNotIn(self.SECRET.encode(), stream, what)
            self.assertNotIn(b"mbuser:", stream, what)

    def test_replicas_refused_outside_1_to_5(self):
        for n in ("0", "6", "9", "-1", "3x", ""):
            err = self.fails(2, "--journal", self.url(), "init", "--replicas", n)
            self.assertIn("--replicas needs 1..5, not '%s'" % n, err)
            self.assertFalse(os.path.exists(self.bank), n)

    def test_replicas_need_a_journal(self):
        err = self.fails(2, "init", "--replicas", "3")
        self.assertIn("--replicas needs a journal on a cluster", err)
        self.assertFalse(os.path.exists(self.bank))
        self.ok("init")
        err = self.fails(3, "init", "--replicas", "3")   # an existing local bank
        self.assertIn("has a local journal", err)

    def test_cluster_status_of_a_local_bank(self):
        err = self.fails(4, "cluster", "status")
        self.assertIn("no bank at %s" % self.bank, err)
        self.ok("init")
        err = self.fails(3, "cluster", "status")
        self.assertEqual(err.count("cluster status:"), 1, err)   # said once
        self.assertIn("is not bound to a cluster (its journal is local)", err)

    def test_fresh_on_a_local_bank(self):
        self.ok("page", "put", "p", '{"v":1}')
        self.assertEqual(self.doc("--fresh", "page", "get", "p")["properties"], {"v": 1})
        self.assertEqual(self.doc("page", "get", "p", "--fresh")["properties"], {"v": 1})
        self.assertEqual(self.ok("page", "count", "--fresh"), "1\n")
        self.assertEqual(self.ok("page", "list", "--fresh"), "p\n")
        self.assertEqual(self.doc("sync", "status", "--fresh")["success_count"], 0)
        stats = self.doc("stats", "--fresh")
        self.assertIn("cluster", stats)
        self.assertIsNone(stats["cluster"])   # a local journal: nothing to be stale about

    def test_stats_text_shows_cluster(self):
        self.ok("init")
        out = self.ok("stats", "--format", "text")
        self.assertRegex(out, r"(?m)^cluster +null$")

    def test_usage_echo_is_redacted(self):
        """An argument echoed back in a usage error may be a URL typed in
        the wrong place: its credentials are never printed."""
        url = self.url()
        for args in (["--jornal=" + url, "init"], [url], ["page", url],
                     ["--durability", url, "init"], ["--format", url, "stats"],
                     ["init", "--replicas", url], ["demo", "--machines", url]):
            p = self.mb(*args)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn(b"://***@127.0.0.1", p.stderr, args)
            self.assert_secret_absent(p, args)
        # a message cut at its 4 KiB bound inside the URL, before its '@'
        for pad in range(4030, 4096):
            p = self.mb("x" * pad + " " + url)
            self.assertEqual(p.returncode, 2)
            self.assert_secret_absent(p, pad)

    def test_help_and_completion_never_show_credentials(self):
        url = self.url()
        env = dict(os.environ, MEMBANK_JOURNAL=url)
        for args in (["--help"], ["--journal", url, "--help"], ["init", "--help"],
                     ["cluster", "--help"], ["cluster", "status", "--help"]):
            p = self.mb(*args, env=env, bank=False)
            self.assertEqual(p.returncode, 0, args)
            self.assert_secret_absent(p, args)
        script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
                  '_membank; printf "%s\\n" "${COMPREPLY[@]}"')
        completion = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))), "cli", "membank.bash")
        bindir = os.path.dirname(MEMBANK)
        for words in (["--journal", ""], ["--journal", "nats://mbuser:" + self.SECRET[:3]],
                      ["--journal", url, ""], ["--journal", url, "cluster", ""],
                      ["--journal=" + url, "page", "--"]):
            r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash",
                                completion, "membank"] + words, capture_output=True,
                               env=dict(env, PATH=bindir + os.pathsep + os.environ["PATH"]),
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assert_secret_absent(r, words)
        r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", completion,
                            "membank", "--journal", url, "cluster", ""], capture_output=True,
                           text=True, env=dict(os.environ, PATH=bindir + os.pathsep +
                                               os.environ["PATH"]), timeout=60)
        self.assertEqual(r.stdout.split(), ["status"])

    def test_argv_is_scrubbed(self):
        """ps and /proc/PID/cmdline show x's where --journal's credentials
        were, once the options are read (here the command then waits on
        stdin: batch reads its input before it opens the bank)."""
        url = self.url()
        p = subprocess.Popen([MEMBANK, "-b", self.bank, "--journal", url, "batch", "-"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            cmdline = b""
            for _ in range(3000):          # at most 30 s: reached at the first reads
                with open("/proc/%d/cmdline" % p.pid, "rb") as f:
                    cmdline = f.read()
                if self.SECRET.encode() not in cmdline and b"--journal" in cmdline:
                    break
                time.sleep(0.01)
            self.assertNotIn(self.SECRET.encode(), cmdline)
            self.assertIn(b"nats://" + b"x" * len("mbuser:" + self.SECRET) + b"@127.0.0.1",
                          cmdline)
        finally:
            p.kill()
            p.communicate(timeout=60)

    def test_unreachable_cluster_is_a_clear_error_without_credentials(self):
        if not cluster_journal_supported():
            self.skipTest("this libmembank has no journal on a cluster (a stub)")
        url = self.url()
        runs = [(["init"], True), (["init", "--replicas", "3"], True),
                (["page", "put", "p", "{}"], True), (["page", "get", "p"], False),
                (["stats"], False), (["cluster", "status"], False),
                (["--fresh", "page", "count"], False),
                (["demo", "--machines", "2", "--seconds", "1"], True)]
        for args, creates in runs:
            t0 = time.monotonic()
            p = self.mb("--journal", url, "--journal-timeout", "500", *args, timeout=120)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertIn(p.returncode, (3, 4), (args, p.stderr))
            self.assertTrue(p.stderr.startswith(b"membank: "), (args, p.stderr))
            self.assert_secret_absent(p, args)
            self.assertLess(time.monotonic() - t0, 60, args)
        with self.subTest("environment"):
            p = self.mb("--journal-timeout", "500", "init",
                        env=dict(os.environ, MEMBANK_JOURNAL=url))
            self.assertEqual(p.returncode, 4, p.stderr)
            self.assert_secret_absent(p, "MEMBANK_JOURNAL")

    def test_failed_create_leaves_no_bank(self):
        """A bank whose open failed to reach its cluster is not created: a
        typo in a host must not bind a new directory to it for life.  The
        directory is left as it was (the open lock file aside), so that the
        next init, with the right journal or none, creates the bank."""
        if not cluster_journal_supported():
            self.skipTest("this libmembank has no journal on a cluster (a stub)")
        p = self.mb("--journal", self.url(), "--journal-timeout", "300", "init")
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.bank, "membank.json")))
        self.assertEqual([e for e in os.listdir(self.bank) if e != "open.lock"], [])
        self.ok("init")
        self.ok("page", "put", "p1", "{}")

    def test_bad_url_names_the_part(self):
        if not cluster_journal_supported():
            self.skipTest("this libmembank has no journal on a cluster (a stub)")
        cred = "mbuser:%s@" % self.SECRET
        for url, part in (("http://%s127.0.0.1:4222/S" % cred, "scheme"),
                          ("nats://%s127.0.0.1:99999/S" % cred, "port"),
                          ("nats://%s127.0.0.1:4222" % cred, "STREAM"),
                          ("nats://%s127.0.0.1:4222/a.b" % cred, "stream name"),
                          ("nats://%s/S" % cred, "server")):
            p = self.mb("--journal", url, "init")
            self.assertEqual(p.returncode, 3, (url, p.stderr))
            self.assertIn(b"journal URL", p.stderr)
            self.assertIn(part.encode(), p.stderr, url)
            self.assert_secret_absent(p, url)
            self.assertFalse(os.path.exists(os.path.join(self.bank, "membank.json")), url)


class Formats(CliTest):
    """--format json|pretty|text, global or after the command's words."""

    DOCS = [["stats"], ["error", "stats"], ["sync", "status"], ["doctor"],
            ["page", "get", "p1"], ["config", "get"]]

    def seed_numbers(self):
        self.seed()
        self.ok("page", "put", "p1", '{"big":12345678901234567890,"f":1.5e300,"neg":-7,'
                                     '"x":1.0,"tiny":2.5e-308,"s":"line\\nbreak"}')
        self.ok("snapshot")

    def test_json_is_one_line_and_pretty_is_indented_when_piped(self):
        self.seed_numbers()
        for args in self.DOCS:
            plain = self.ok(*args)
            self.assertEqual(self.ok("--format", "json", *args), plain, args)
            self.assertEqual(self.ok(*args, "--format=json"), plain, args)
            pretty = self.ok(*args, "--format", "pretty")
            self.assertGreater(pretty.count("\n"), 2, args)
            self.assertEqual(json.loads(pretty), json.loads(plain), args)
            # Every number token copied as written, none re-printed.
            self.assertEqual(json_numbers(pretty.encode()), json_numbers(plain.encode()), args)

    def test_json_is_one_line_on_a_terminal(self):
        self.ok("page", "put", "t", '{"a":1,"b":[1,2]}')
        master, slave = pty.openpty()
        p = subprocess.run([MEMBANK, "-b", self.bank, "--format", "json", "page", "get", "t"],
                           stdout=slave, stderr=subprocess.PIPE, timeout=30)
        os.close(slave)
        out = b""
        try:
            while True:
                chunk = os.read(master, 65536)
                if not chunk:
                    break
                out += chunk
        except OSError:
            pass
        os.close(master)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(out.count(b"\n"), 1, out)
        self.assertEqual(json.loads(out)["properties"], {"a": 1, "b": [1, 2]})

    def test_text_stats_is_an_aligned_table_with_exact_numbers(self):
        self.seed_numbers()
        doc = self.doc("stats")
        out = self.ok("stats", "--format", "text")
        rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
        self.assertEqual(rows["pages"], str(doc["pages"]))
        self.assertEqual(rows["journal.last_seq"], str(doc["journal"]["last_seq"]))
        self.assertEqual(rows["store.map_size"], str(doc["store"]["map_size"]))
        self.assertEqual(rows["path"], doc["path"])
        # Aligned: every value starts in the same column.
        starts = {len(re.match(r"\S+\s+", line).group()) for line in out.splitlines()}
        self.assertEqual(len(starts), 1, out)

    def test_text_page_keeps_number_tokens_and_escapes_control_characters(self):
        self.seed_numbers()
        plain = self.ok("page", "get", "p1").encode()
        out = self.ok("page", "get", "p1", "--format", "text")
        rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
        nums = json_numbers(plain)
        for key in ("big", "f", "neg", "x", "tiny"):
            self.assertIn(rows["properties." + key].encode(), nums, key)
        self.assertEqual(rows["properties.s"], "line\\nbreak")   # one row, escape kept
        self.assertEqual(rows["last_updated"], json.loads(plain)["last_updated"])

    def test_text_sync_status_history_is_a_table(self):
        self.seed()
        out = self.ok("sync", "status", "--format", "text")
        head, table = out.split("\nsync_history:\n")
        self.assertRegex(head, r"current_status\s+failed")
        self.assertRegex(head, r"error_count\s+1\n")
        lines = table.splitlines()
        self.assertEqual(lines[0].split(), ["TIMESTAMP", "STATUS", "ERROR"])
        self.assertEqual(lines[1].split()[1:], ["success", "null"])
        self.assertEqual(lines[2].split()[1], "failed")
        self.assertTrue(lines[2].endswith("HTTP 429 rate_limited"), lines[2])
        col = lines[0].index("STATUS")
        self.assertTrue(all(l[col - 2:col] == "  " for l in lines), table)

    def test_text_error_stats(self):
        self.seed()
        out = self.ok("error", "stats", "--format", "text")
        self.assertRegex(out, r"(?m)^total_errors\s+1$")
        self.assertRegex(out, r"(?m)^patterns\.rate_limited\s+1$")
        self.assertRegex(out, r"(?m)^last_error\.message\s+HTTP 429$")

    def test_text_doctor_one_row_per_check(self):
        self.seed()
        self.ok("snapshot")
        out = self.ok("doctor", "--format", "text")
        table = out.split("\nchecks:\n")[1].splitlines()
        self.assertEqual(table[0].split(), ["CHECK", "RESULT", "DETAIL"])
        rows = {l.split()[0]: l.split()[1] for l in table[1:]}
        self.assertEqual(rows, {"open": "ok", "journal": "ok", "permissions": "ok",
                                "store": "ok", "readers": "ok", "checkpoint": "ok"})
        self.assertRegex(out, r"store\s+ok\s+.*pages_decoded=2, pages_stored=2")

    def test_page_list_formats(self):
        self.ok("page", "put", "b", '{"last_updated":"not this one"}')
        self.ok("page", "put", 'a"q', "{}")
        self.ok("page", "put", "ü-long", "{}")
        self.assertEqual(self.ok("page", "list"), 'a"q\nb\nü-long\n')
        self.assertEqual(self.ok("page", "list", "--format", "json"), '["a\\"q","b","ü-long"]\n')
        self.assertEqual(json.loads(self.ok("page", "list", "--format", "pretty")),
                         ['a"q', "b", "ü-long"])
        self.assertEqual(self.ok("page", "list", "--format", "json", "--limit", "1"),
                         '["a\\"q"]\n')
        out = self.ok("page", "list", "--format", "text").splitlines()
        self.assertEqual(out[0].split(), ["ID", "LAST_UPDATED"])
        self.assertEqual([l.split()[0] for l in out[1:]], ['a"q', "b", "ü-long"])
        got = self.doc("page", "get", "b")["last_updated"]
        self.assertEqual(out[2].split()[1], got)
        self.assertEqual({len(l) - len(l.split()[-1]) for l in out[1:]}, {len("ü-long  ")})

    def test_page_list_empty(self):
        self.ok("init")
        self.assertEqual(self.ok("page", "list", "--format", "json"), "[]\n")
        self.assertEqual(self.ok("page", "list", "--format", "pretty"), "[]\n")
        self.assertEqual(self.ok("page", "list", "--format", "text"), "ID  LAST_UPDATED\n")

    def test_bad_format_is_a_usage_error(self):
        self.ok("init")
        err = self.fails(2, "--format", "xml", "stats")
        self.assertIn("--format is json, pretty, text or prometheus, not 'xml'", err)
        err = self.fails(2, "page", "get", "p", "--format", "yaml")
        self.assertIn("not 'yaml'", err)
        err = self.fails(2, "page", "get", "p", "--format", "prometheus")
        self.assertIn("--format prometheus is not available here; this command prints "
                      "json, pretty, text", err)
        self.fails(2, "stats", "--format")

    def test_format_in_help(self):
        self.assertIn("--format FORMAT", self.ok("--help", bank=False))


class DoctorDetail(CliTest):
    """doctor: each check's detail is a JSON object, not JSON in a string; a
    missing bank is said once, as missing."""

    def test_details_are_objects(self):
        self.seed()
        self.ok("snapshot")
        r = self.doc("doctor")
        for c in r["checks"]:
            self.assertIsInstance(c["detail"], dict, c)
        d = {c["check"]: c["detail"] for c in r["checks"]}
        last = self.doc("stats")["journal"]["last_seq"]
        self.assertEqual(d["journal"]["clean"], True)
        self.assertEqual(d["journal"]["last_seq"], last)
        self.assertEqual(d["store"]["pages_decoded"], 2)
        self.assertEqual(d["store"]["pages_stored"], 2)
        self.assertEqual(d["readers"]["stale_readers"], 0)
        self.assertEqual(d["checkpoint"]["seq"], last)
        self.assertEqual(d["checkpoint"]["journal_last_seq"], last)
        self.assertEqual(d["permissions"]["group_accessible"], 0)
        for c in r["checks"]:
            self.assertIsInstance(c["detail"].get("message", ""), str)

    def test_damaged_journal_report_is_nested(self):
        Journal.corrupt_first_record(self)
        p = self.mb("doctor")
        self.assertEqual(p.returncode, 4)
        d = {c["check"]: c["detail"] for c in json.loads(p.stdout)["checks"]}
        self.assertEqual(d["journal"]["report"]["clean"], False)
        self.assertIsInstance(d["journal"]["report"]["damage"], dict)

    def test_missing_bank_says_missing(self):
        p = self.mb("doctor")
        self.assertEqual(p.returncode, 4)
        self.assertEqual(p.stderr.decode(), "membank: doctor: no bank at %s\n" % self.bank)
        r = json.loads(p.stdout)
        self.assertEqual(r["missing"], True)
        self.assertEqual(r["healthy"], False)
        self.assertEqual(len(r["checks"]), 1)
        self.assertNotIn("input/output", p.stdout.decode())
        self.assertFalse(os.path.exists(self.bank))

    def test_not_a_bank_is_no_io_error(self):
        """A directory that is not a bank: no check says input/output error,
        and the permissions check names what is open to others."""
        os.mkdir(self.bank, 0o755)
        p = self.mb("doctor")
        self.assertEqual(p.returncode, 4)
        self.assertNotIn(b"input/output", p.stdout)
        d = {c["check"]: c for c in json.loads(p.stdout)["checks"]}
        self.assertEqual(d["journal"]["detail"]["message"],
                         "%s/journal: no journal here (not a bank)" % self.bank)
        self.assertEqual(d["permissions"]["result"], "failed")
        self.assertEqual(d["permissions"]["detail"],
                         {"message": "the bank directory is open to others", "path": self.bank})
        err = self.fails(4, "journal", "verify")
        self.assertNotIn("input/output", err)
        self.assertIn("no journal here (not a bank)", err)
        self.assertEqual(os.listdir(self.bank), [])

    def test_missing_bank_for_every_reader(self):
        for args in (["stats"], ["page", "get", "x"], ["journal", "verify"], ["snapshot"],
                     ["sync", "status"]):
            err = self.fails(4, *args)
            self.assertEqual(err, "membank: %s: no bank at %s\n" % (" ".join(args[:2] if
                             args[0] in GROUPS else args[:1]), self.bank), args)
        self.assertFalse(os.path.exists(self.bank))


class SnapshotOut(CliTest):
    """snapshot/compactor --out DIR: DIR made 0700 when missing (its parent
    must exist, never through a symlink); messages say their prefix once."""

    def test_creates_missing_dir_0700(self):
        self.seed()
        out = os.path.join(self.tmp, "new")
        old = os.umask(0)
        try:
            r = self.doc("snapshot", "--out", out)
        finally:
            os.umask(old)
        self.assertEqual(r["dir"], out)
        self.assertEqual(os.stat(out).st_mode & 0o777, 0o700)
        self.assertEqual(sorted(os.listdir(out)), sorted(FOUR + ("checkpoint.json",)))

    def test_parent_must_exist(self):
        self.seed()
        out = os.path.join(self.tmp, "no", "sub")
        err = self.fails(3, "snapshot", "--out", out)
        self.assertEqual(err, "membank: snapshot: cannot create %s: No such file or "
                              "directory\n" % out)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "no")))

    def test_symlink_refused_with_one_prefix(self):
        self.seed()
        target = os.path.join(self.tmp, "target")
        os.mkdir(target, 0o700)
        link = os.path.join(self.tmp, "link")
        os.symlink(target, link)
        err = self.fails(4, "snapshot", "--out", link)
        self.assertEqual(err.count("snapshot:"), 1, err)
        self.assertIn("symlink", err)
        self.assertEqual(os.listdir(target), [])
        dangling = os.path.join(self.tmp, "dangling")
        os.symlink(os.path.join(self.tmp, "nowhere"), dangling)
        err = self.fails(4, "snapshot", "--out", dangling)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "nowhere")))

    def test_not_a_directory_one_prefix(self):
        self.seed()
        f = os.path.join(self.tmp, "file")
        open(f, "w").close()
        err = self.fails(3, "snapshot", "--out", f)
        self.assertEqual(err, "membank: snapshot: cannot write the files: %s: not a "
                              "directory\n" % f)

    def test_compactor_creates_dir(self):
        self.seed()
        out = os.path.join(self.tmp, "cdir")
        p = subprocess.Popen([MEMBANK, "-b", self.bank, "compactor", "--every", "3600",
                              "--out", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # The first run's line on stderr says the files are written.
            line = p.stderr.readline()
            self.assertIn(b"snapshot in", line)
        finally:
            p.send_signal(signal.SIGTERM)
            p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(os.stat(out).st_mode & 0o777, 0o700)
        self.assertIn("notion_pages.json", os.listdir(out))
        err = self.fails(3, "compactor", "--out", os.path.join(self.tmp, "x", "y"))
        self.assertEqual(err.count("compactor:"), 1, err)

    def test_no_message_repeats_its_prefix(self):
        """The class: a library message starting with what the command's
        message already says (its name, the path it named) says it once."""
        self.seed()
        for args, code in ((["page", "put", "", "{}"], 3), (["page", "put", "x", "[1]"], 3),
                           (["snapshot", "--out", os.path.join(self.tmp, "FOUR")], None)):
            if code is None:
                open(os.path.join(self.tmp, "FOUR"), "w").close()
                code = 3
            p = self.mb(*args)
            self.assertEqual(p.returncode, code, args)
            msg = p.stderr.decode().splitlines()[0]
            parts = msg.split(": ")
            self.assertEqual(len(parts), len(set(parts)), msg)


METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*=" + LABEL_VALUE
SAMPLE = re.compile(r"(%s)(?:\{(%s(?:,%s)*)?\})? (-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]Inf|NaN)(?: -?[0-9]+(?:\.[0-9]+)?)?$" % (METRIC_NAME, LABEL, LABEL))
TYPES = ("counter", "gauge", "stateset", "info", "histogram", "gaugehistogram", "summary",
         "unknown")


def unescape_label(v):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], v)


def parse_openmetrics(text):
    """Check OpenMetrics 1.0 text line by line; return {family: {"type",
    "help", "unit", "samples": [(name, {label: value}, value)]}}.  Raises
    AssertionError naming the first line that breaks the grammar."""
    assert text.endswith("# EOF\n"), "must end with '# EOF\\n': %r" % text[-40:]
    lines = text[:-len("# EOF\n")].split("\n")
    assert lines[-1] == "", "the line before # EOF ends with a newline"
    fams, current, closed = {}, None, set()
    for n, line in enumerate(lines[:-1], 1):
        where = "line %d: %r" % (n, line)
        m = re.match(r"# (HELP|TYPE|UNIT) (%s) (.*)$" % METRIC_NAME, line)
        if m:
            kind, name, rest = m.groups()
            if name != current:
                assert name not in fams, "family %s split: %s" % (name, where)
                if current:
                    closed.add(current)
                current = name
                fams[name] = {"samples": []}
            f = fams[name]
            assert kind.lower() not in f, "second %s: %s" % (kind, where)
            assert not f["samples"], "metadata after samples: " + where
            if kind == "HELP":
                assert re.fullmatch(r"(?:[^\\\n]|\\[\\n\"])*", rest), where
            elif kind == "TYPE":
                assert rest in TYPES, where
            else:
                assert re.fullmatch(r"[a-zA-Z0-9_:]+", rest) and name.endswith("_" + rest), \
                    "a UNIT's family name ends with _unit: " + where
            f[kind.lower()] = rest
            continue
        assert not line.startswith("#"), "unknown comment: " + where
        m = SAMPLE.match(line)
        assert m, "not a sample: " + where
        name, labels, value = m.group(1), m.group(2), m.group(3)
        assert current, "a sample before any family: " + where
        f = fams[current]
        suffixes = {"counter": ("_total", "_created")}.get(f.get("type"), ("",))
        assert any(name == current + s for s in suffixes), \
            "sample %s outside its family %s: %s" % (name, current, where)
        got = {}
        for lm in re.finditer(r"([a-zA-Z_][a-zA-Z0-9_]*)=(%s)" % LABEL_VALUE, labels or ""):
            assert lm.group(1) not in got, "label repeated: " + where
            got[lm.group(1)] = unescape_label(lm.group(2)[1:-1])
        f["samples"].append((name, got, value))
    for name, f in fams.items():
        assert "help" in f and "type" in f, "family %s lacks HELP or TYPE" % name
        assert name.startswith("membank_"), name
    return fams


class Metrics(CliTest):
    """stats --format prometheus: OpenMetrics text, every line checked by
    parse_openmetrics(), every figure against the JSON documents."""

    def metrics(self, *args, **kw):
        p = self.mb("stats", "--format", "prometheus", *args, **kw)
        self.assertEqual(p.returncode, 0, p.stderr)
        return parse_openmetrics(p.stdout.decode())

    def value(self, fams, name):
        (sample,) = fams[name]["samples"]
        return sample[2]

    def test_figures_match_the_documents(self):
        self.seed()
        self.ok("error", "log", "rate_limited", "again")
        self.ok("error", "log", 'odd "type"\\with\nnewline', "x")
        self.ok("error", "resolve", "rate_limited", "backoff")
        snap = self.doc("snapshot")
        self.ok("page", "put", "p3", "{}")
        stats, sync, errs = self.doc("stats"), self.doc("sync", "status"), self.doc("error", "stats")
        f = self.metrics()
        self.assertEqual(self.value(f, "membank_pages"), "3")
        self.assertEqual(f["membank_pages"]["type"], "gauge")
        for name, want in (("membank_store_map_size_bytes", stats["store"]["map_size"]),
                           ("membank_store_max_readers", stats["store"]["max_readers"]),
                           ("membank_store_stale_readers", 0),
                           ("membank_store_reader_lag_transactions", 0),
                           ("membank_journal_segments", stats["journal"]["segments"]),
                           ("membank_journal_bytes", stats["journal"]["bytes"]),
                           ("membank_journal_last_seq", stats["journal"]["last_seq"]),
                           ("membank_checkpoint_seq", snap["seq"]),
                           ("membank_sync_successes", sync["success_count"]),
                           ("membank_sync_errors", sync["error_count"]),
                           ("membank_errors", errs["total_errors"]),
                           ("membank_errors_resolved", errs["resolved_errors"]),
                           ("membank_error_types", len(errs["patterns"])),
                           ("membank_history_limit", stats["history_limit"])):
            self.assertEqual(self.value(f, name), str(want), name)
        self.assertGreater(int(self.value(f, "membank_store_map_used_bytes")), 0)
        self.assertGreaterEqual(int(self.value(f, "membank_store_readers")), 1)
        for name in ("membank_sync_successes", "membank_errors", "membank_errors_by_type"):
            self.assertEqual(f[name]["type"], "counter", name)
            self.assertTrue(all(s[0] == name + "_total" for s in f[name]["samples"]))
        for name in ("membank_journal_bytes", "membank_store_map_used_bytes"):
            self.assertEqual(f[name]["unit"], "bytes")
        self.assertEqual(f["membank_checkpoint_age_seconds"]["unit"], "seconds")
        age = float(self.value(f, "membank_checkpoint_age_seconds"))
        when = float(self.value(f, "membank_checkpoint_timestamp_seconds"))
        self.assertGreaterEqual(age, 0)
        mtime = os.stat(os.path.join(self.bank, "checkpoint.json")).st_mtime
        self.assertAlmostEqual(when, mtime, places=3)
        last_ok = datetime.datetime.strptime(sync["last_successful_sync"],
                                             "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        self.assertAlmostEqual(float(self.value(f, "membank_sync_last_success_timestamp_seconds")),
                               last_ok, places=5)
        by_type = {s[1]["type"]: int(s[2]) for s in f["membank_errors_by_type"]["samples"]}
        self.assertEqual(by_type, errs["patterns"])
        for fam in f.values():
            for s in fam["samples"]:
                self.assertEqual(s[1], dict(s[1], bank=self.bank))

    def test_no_checkpoint_no_age(self):
        self.ok("init")
        f = self.metrics()
        self.assertEqual(self.value(f, "membank_checkpoint_seq"), "0")
        self.assertEqual(f["membank_checkpoint_age_seconds"]["samples"], [])
        self.assertEqual(f["membank_sync_last_success_timestamp_seconds"]["samples"], [])
        self.assertEqual(f["membank_errors_by_type"]["samples"], [])

    def test_bank_label_escaped(self):
        odd = os.path.join(self.tmp, 'we"ird\\dir\nname')
        self.ok("init", bank=False, env=dict(os.environ, MEMBANK_DIR=odd))
        p = self.mb("stats", "--format", "prometheus", bank=False,
                    env=dict(os.environ, MEMBANK_DIR=odd))
        self.assertEqual(p.returncode, 0, p.stderr)
        text = p.stdout.decode()
        self.assertIn('bank="%s"' % odd.replace("\\", "\\\\").replace('"', '\\"')
                      .replace("\n", "\\n"), text)
        f = parse_openmetrics(text)
        self.assertEqual(f["membank_pages"]["samples"][0][1]["bank"], odd)

    def test_bank_label_not_utf8(self):
        odd = os.path.join(self.tmp.encode(), b"bad\xff")
        self.assertEqual(self.mb("-b", odd, "init", bank=False).returncode, 0)
        p = subprocess.run([MEMBANK, b"-b", odd, "stats", "--format", "prometheus"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        f = parse_openmetrics(p.stdout.decode("utf-8"))   # valid UTF-8 throughout
        self.assertTrue(f["membank_pages"]["samples"][0][1]["bank"].endswith("bad\ufffd"))

    def test_parser_catches_broken_text(self):
        good = ('# HELP membank_x An x.\n# TYPE membank_x counter\n'
                'membank_x_total{bank="a\\"b"} 1\n# EOF\n')
        self.assertEqual(parse_openmetrics(good)["membank_x"]["samples"][0][1]["bank"], 'a"b')
        for bad in (good[:-6],                                            # no # EOF
                    good.replace("# HELP membank_x An x.\n", ""),         # no HELP
                    good.replace("membank_x_total", "membank_x"),         # counter w/o _total
                    good.replace('a\\"b', 'a"b'),                         # unescaped quote
                    good.replace(" 1\n", " one\n"),
                    good + "membank_y 1\n"):
            with self.assertRaises(AssertionError, msg=bad):
                parse_openmetrics(bad)

    def test_prometheus_only_for_stats(self):
        self.ok("init")
        err = self.fails(2, "error", "stats", "--format", "prometheus")
        self.assertIn("prints json, pretty, text", err)
        self.assertIn("--format FORMAT   json, pretty, text or prometheus",
                      self.ok("stats", "--help"))


class JsonLimit(CliTest):
    """The bound on JSON input is the bank's (membank.json), the same for the
    command, C and Python (tests/python JsonLimit, tests/hardening
    test_max_json_bytes_option): before, the command took 16 MiB where the
    library and Python took 1 MiB on the same bank."""

    @staticmethod
    def text(n):
        return '{"a":"' + "x" * (n - 8) + '"}'

    def test_default_bank_takes_one_mib(self):
        self.ok("init")
        with open(os.path.join(self.bank, "membank.json")) as f:
            self.assertEqual(json.load(f)["max_json_bytes"], 1 << 20)
        self.assertEqual(self.doc("stats")["max_json_bytes"], 1 << 20)
        self.ok("page", "put", "a", "-", input=self.text(1 << 20))
        err = self.fails(3, "page", "put", "b", "-", input=self.text((1 << 20) + 1))
        self.assertIn("larger than the limit of 1048576 bytes", err)
        self.fails(3, "page", "merge", "a", "-", input=self.text((1 << 20) + 1))
        self.fails(1, "page", "get", "b")

    def test_init_sets_it_for_every_command(self):
        self.assertEqual(self.ok("init", "--max-json-bytes", "1000"), self.bank + "\n")
        self.assertEqual(self.doc("stats")["max_json_bytes"], 1000)
        self.ok("page", "put", "a", self.text(1000))
        self.fails(3, "page", "put", "b", self.text(1001))
        self.fails(3, "config", "set", '{"notion_settings":{"api_version":"%s"}}' % ("v" * 1000))
        ops = json.dumps({"op": "page.put", "id": "c", "properties": {"a": "x" * 993}})
        self.fails(3, "batch", "-", input=ops + "\n")
        # fixed at creation: another value is refused, the same is fine
        self.assertIn("accepts at most 1000", self.fails(3, "init", "--max-json-bytes", "2000"))
        self.assertIn("accepts 1000", self.fails(3, "init", "--max-json-bytes", "999"))
        self.ok("init", "--max-json-bytes", "1000")
        self.ok("init")
        self.assertEqual(self.doc("stats")["max_json_bytes"], 1000)

    def test_absurd_values_are_usage_errors(self):
        for bad in ("0", "63", "16777217", "1e6", "-5", "x"):
            err = self.fails(2, "init", "--max-json-bytes", bad)
            self.assertIn("--max-json-bytes needs 64..16777216 bytes", err)
            self.assertFalse(os.path.exists(self.bank))
        self.ok("init", "--max-json-bytes", "16777216")
        self.ok("page", "put", "big", "-", input=self.text(2 << 20))

    def test_restore_keeps_the_replaced_banks(self):
        self.ok("init", "--max-json-bytes", "4096")
        self.ok("page", "put", "a", self.text(3000))
        files = os.path.join(self.tmp, "files")
        self.ok("snapshot", "--out", files)
        self.ok("restore", "--force", files)
        self.assertEqual(self.doc("stats")["max_json_bytes"], 4096)
        self.fails(3, "page", "put", "b", self.text(4097))


class Progress(CliTest):
    """Long work draws a progress line on stderr when it is a terminal
    (the library's mb_options.progress feeds it): at most a few times a
    second, overwritten with \\r, ended by a summary line whose count is the
    page count; nothing in a pipe or with --quiet."""
    N = 10000

    def setUp(self):
        super().setUp()
        ops = "".join(json.dumps({"op": "page.put", "id": "p%05d" % i,
                                  "properties": {"n": i}}) + "\n" for i in range(self.N))
        self.ok("--durability", "fast", "batch", "-", input=ops)
        self.files = os.path.join(self.tmp, "files")
        self.ok("snapshot", "--out", self.files)

    def on_pty(self, *args):
        """membank -b bank args with stderr on a pseudo-terminal: (exit, the
        terminal's text, stdout)."""
        master, slave = pty.openpty()
        p = subprocess.Popen([MEMBANK, "-b", self.bank] + list(args), stdout=subprocess.PIPE,
                             stderr=slave)
        os.close(slave)
        out = b""
        try:
            while True:
                chunk = os.read(master, 65536)
                if not chunk:
                    break
                out += chunk
        except OSError:  # EIO: the last holder of the terminal is gone
            pass
        os.close(master)
        stdout = p.stdout.read()
        p.stdout.close()
        return p.wait(timeout=60), out.decode(), stdout

    def final_line(self, text, phase, unit="pages"):
        """The summary line of @phase; its count."""
        self.assertTrue(text.endswith("\r\n"), "ends with a newline: %r" % text[-200:])
        lines = [seg.strip() for line in text.split("\r\n") for seg in line.split("\r")]
        done = [l for l in lines if re.fullmatch(r"membank: %s: \d+ %s, [\d.]+ s, \d+ %s/s"
                                                 % (phase, unit, unit), l)]
        self.assertEqual(len(done), 1, "one summary of %s in %r" % (phase, text))
        for l in lines:  # every other line of the phase is a progress line
            if l.startswith("membank: %s:" % phase) and l not in done:
                self.assertRegex(l, r"^membank: %s: \d+ %s( of \d+ \(\d+%%\)| \(\d+%% of "
                                    r"the file\))?, \d+ %s/s(, ETA \d+ s)?$" % (phase, unit, unit))
        return int(done[0].split()[2])

    def test_restore_snapshot_doctor_on_a_terminal(self):
        self.bank = os.path.join(self.tmp, "other")
        ex, text, _ = self.on_pty("restore", self.files)
        self.assertEqual(ex, 0, text)
        self.assertEqual(self.final_line(text, "restore"), self.N)
        self.assertEqual(self.ok("page", "count"), "%d\n" % self.N)
        ex, text, _ = self.on_pty("snapshot")
        self.assertEqual(ex, 0, text)
        self.assertEqual(self.final_line(text, "snapshot"), self.N)
        ex, text, out = self.on_pty("doctor")
        self.assertEqual(ex, 0, text)
        self.assertEqual(self.final_line(text, "doctor"), self.N)
        self.assertNotIn(b"membank:", out)  # stdout carries the report only

    def test_rebuild_on_a_terminal(self):
        # the store of another boot is rebuilt by the next open
        with open(os.path.join(self.bank, "store", "boot_id"), "w") as f:
            f.write("another-boot\n")
        ex, text, out = self.on_pty("page", "count")
        self.assertEqual(ex, 0, text)
        self.assertEqual(out, b"%d\n" % self.N)
        self.assertEqual(self.final_line(text, "rebuild"), self.N)

    def test_nothing_in_a_pipe_or_with_quiet(self):
        self.bank = os.path.join(self.tmp, "other")
        p = self.mb("restore", self.files)
        self.assertEqual((p.returncode, p.stderr), (0, b""))
        p = self.mb("snapshot")
        self.assertEqual((p.returncode, p.stderr), (0, b""))
        for args in (("--quiet", "snapshot"), ("snapshot", "--quiet"),
                     ("--quiet", "doctor")):
            ex, text, _ = self.on_pty(*args)
            self.assertEqual((ex, text), (0, ""), args)
        self.bank = os.path.join(self.tmp, "third")
        ex, text, _ = self.on_pty("restore", self.files, "--quiet")
        self.assertEqual((ex, text), (0, ""))

    def test_a_failure_ends_the_line_before_its_message(self):
        self.bank = os.path.join(self.tmp, "other")
        with open(os.path.join(self.files, "notion_pages.json"), "r+b") as f:
            f.seek(-40, os.SEEK_END)
            f.write(b"@" * 10)
        ex, text, _ = self.on_pty("restore", self.files)
        self.assertEqual(ex, 3, text)
        self.assertRegex(text, r"(^|\r\n)membank: restore: cannot restore")


class SignalDuringCheckpoint(CliTest):
    """A signal that arrives while a write's automatic checkpoint runs does
    not make the acknowledged write look failed (a script would retry it and
    count it twice): the checkpoint runs after the write with SIGINT and
    SIGTERM held, and the command exits 0.  MEMBANK_TEST_CHECKPOINT_SIGNAL
    makes the library raise SIGTERM at the start of a checkpoint."""

    def test_write_then_signal_exits_0(self):
        env = dict(os.environ, MEMBANK_TEST_CHECKPOINT_SIGNAL="1")
        cmds = [("sync", "record", "success"), ("page", "put", "p", "{}"),
                ("error", "log", "E", "m"), ("config", "set", '{"notion_settings":{}}'),
                ("page", "rm", "p")]
        for i, cmd in enumerate(cmds):
            shutil.rmtree(os.path.join(self.bank, "checkpoint"), ignore_errors=True)
            for name in ("checkpoint.json",) + FOUR:   # a checkpoint is due
                try:
                    os.unlink(os.path.join(self.bank, name))
                except FileNotFoundError:
                    pass
            p = self.mb(*cmd, env=env)
            self.assertEqual(p.returncode, 0, (cmd, p.returncode, p.stderr))
            self.assertTrue(os.path.exists(os.path.join(self.bank, "checkpoint.json")), cmd)
        self.assertEqual(self.doc("sync", "status")["success_count"], 1)
        self.assertEqual(self.doc("error", "stats")["total_errors"], 1)
        # a read-only command never checkpoints (it writes nothing)
        os.unlink(os.path.join(self.bank, "checkpoint.json"))
        self.assertEqual(self.mb("page", "count", env=env).returncode, 0)
        self.assertFalse(os.path.exists(os.path.join(self.bank, "checkpoint.json")))


def main(module=None):
    """Run the tests of @module (this one by default) and print the count."""
    suite = unittest.defaultTestLoader.loadTestsFromModule(module or sys.modules[__name__])
    runner = unittest.TextTestRunner(verbosity=2, stream=sys.stdout)
    res = runner.run(suite)
    failed = len(res.failures) + len(res.errors)
    passed = res.testsRun - failed - len(res.skipped)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(0 if res.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
