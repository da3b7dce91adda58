"""Tests of the membank Python package (python/membank) over libmembank.

Run by `meson test --suite python`, which sets MEMBANK_LIBRARY and PYTHONPATH;
by hand:
    MEMBANK_LIBRARY=build/libshm/libmembank.so PYTHONPATH=python \
        python3 tests/python/test_membank.py
The last line of the output is "N passed, F failed, S skipped"; the exit
status is non-zero when anything failed.
"""

import ctypes
import json
import multiprocessing
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

import membank
from membank import BankError, Error, InvalidInput, MemoryBank, NotFound
from membank import _lib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SPEC = os.path.join(os.path.dirname(ROOT), "shared", "spec", "memory-bank.md")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

# The usage block of spec/memory-bank.md, verbatim.
SPEC_USAGE = """\
# Initialize memory bank
memory_bank = MemoryBank()

# Update page information
memory_bank.update_page(page_id, data)

# Track sync status
memory_bank.update_sync_status(status, error)

# Log errors
memory_bank.log_error(exception)

# Update configuration
memory_bank.update_config(new_config)

# Retrieve information
page_data = memory_bank.get_page(page_id)
sync_status = memory_bank.get_sync_status()
error_stats = memory_bank.get_error_stats()
"""

PROCS = 8
OPS = 300
THREADS = 8


def has_symbol(name):
    return _lib.load().lazy(name) is not None


class BankTest(unittest.TestCase):
    """Each test gets a fresh temporary directory and a bank in it."""

    durability = "fast"

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="membank-py-")
        self.path = os.path.join(self.tmp, "bank")
        self.bank = MemoryBank(self.path, durability=self.durability)

    def tearDown(self):
        self.bank.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ------------------------------------------------------------------ the spec

class TestSpecUsage(BankTest):
    def test_usage_block_matches_the_spec(self):
        if not os.path.exists(SPEC):
            self.skipTest("spec not found at %s" % SPEC)
        with open(SPEC, encoding="utf-8") as f:
            text = f.read()
        block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
        self.assertEqual(block, SPEC_USAGE)

    def test_usage_block_runs_as_written(self):
        try:
            raise ConnectionError("Notion API timed out")
        except ConnectionError as exc:
            caught = exc
        ns = {"MemoryBank": MemoryBank, "page_id": "page-1",
              "data": {"title": "Hello", "tags": ["a", "b"]},
              "status": "failed", "error": "Notion API timed out",
              "exception": caught,
              "new_config": {"notion_settings": {"retry_attempts": 5}}}
        old, old_env = os.getcwd(), os.environ.pop("MEMBANK_DIR", None)
        os.chdir(self.tmp)
        try:
            exec(SPEC_USAGE, ns)
        finally:
            ns["memory_bank"].close()
            os.chdir(old)
            if old_env is not None:
                os.environ["MEMBANK_DIR"] = old_env
        self.assertEqual(ns["page_data"]["properties"], {"title": "Hello", "tags": ["a", "b"]})
        self.assertRegex(ns["page_data"]["last_updated"], TIMESTAMP)
        self.assertEqual(ns["sync_status"]["current_status"], "failed")
        self.assertEqual(ns["sync_status"]["error_count"], 1)
        self.assertEqual(ns["error_stats"]["patterns"], {"ConnectionError": 1})
        self.assertEqual(ns["error_stats"]["last_error"]["message"], "Notion API timed out")
        self.assertTrue(os.path.isdir(os.path.join(self.tmp, "memory-bank")))
        with MemoryBank(os.path.join(self.tmp, "memory-bank")) as again:
            self.assertEqual(again.get_config()["notion_settings"]["retry_attempts"], 5)


# ------------------------------------------------------------------- pages

class TestPages(BankTest):
    def test_get_absent_page_is_none(self):
        self.assertIsNone(self.bank.get_page("absent"))

    def test_update_page_round_trips_unicode_and_nesting(self):
        props = {"Name": "Zoë 東京 🚀", "nested": {"a": [1, 2.5, None, True, {"b": "ß"}]},
                 "ключ": "значение", "empty": {}, "list": []}
        self.bank.update_page("страница-1", props)
        page = self.bank.get_page("страница-1")
        self.assertEqual(page["properties"], props)
        self.assertRegex(page["last_updated"], TIMESTAMP)
        self.assertEqual(sorted(page), ["last_updated", "properties"])

    def test_update_page_replaces_properties(self):
        self.bank.update_page("p", {"a": 1, "b": 2})
        self.bank.update_page("p", {"c": 3})
        self.assertEqual(self.bank.get_page("p")["properties"], {"c": 3})

    def test_merge_page_keeps_other_keys_and_removes_none(self):
        self.bank.update_page("p", {"a": 1, "b": 2})
        self.bank.merge_page("p", {"b": None, "c": {"d": 4}})
        self.assertEqual(self.bank.get_page("p")["properties"], {"a": 1, "c": {"d": 4}})

    def test_merge_page_creates_absent_page(self):
        self.bank.merge_page("new", {"x": "y"})
        self.assertEqual(self.bank.get_page("new")["properties"], {"x": "y"})

    def test_delete_page(self):
        self.bank.update_page("p", {"a": 1})
        self.bank.delete_page("p")
        self.assertIsNone(self.bank.get_page("p"))
        self.assertEqual(self.bank.page_count(), 0)

    def test_delete_absent_page_raises_not_found(self):
        with self.assertRaises(NotFound) as cm:
            self.bank.delete_page("ghost")
        e = cm.exception
        self.assertIsInstance(e, KeyError)
        self.assertIsInstance(e, Error)
        self.assertEqual(e.code, -2)
        self.assertEqual(e.name, "MB_ENOTFOUND")
        self.assertIn("ghost", e.message)
        self.assertEqual(str(e), "MB_ENOTFOUND: " + e.message)

    def test_page_count_ids_and_iteration_in_id_order(self):
        for pid in ["c", "a", "b"]:
            self.bank.update_page(pid, {"id": pid})
        self.assertEqual(self.bank.page_count(), 3)
        self.assertEqual(list(self.bank.page_ids()), ["a", "b", "c"])
        self.assertEqual(list(self.bank.page_ids(after="a")), ["b", "c"])
        pages = list(self.bank.iter_pages())
        self.assertEqual([p for p, _ in pages], ["a", "b", "c"])
        self.assertEqual([d["properties"]["id"] for _, d in pages], ["a", "b", "c"])

    def test_iteration_crosses_batches(self):
        self.bank.update_config({"cache_settings": {"max_entries": 0}})
        ids = ["p%05d" % i for i in range(2100)]
        for pid in ids:
            self.bank.update_page(pid, {"n": pid})
        self.assertEqual(list(self.bank.page_ids()), ids)
        got = list(self.bank.iter_pages())
        self.assertEqual([p for p, _ in got], ids)
        self.assertEqual(got[1500][1]["properties"], {"n": ids[1500]})

    def test_iteration_of_empty_bank(self):
        self.assertEqual(list(self.bank.page_ids()), [])
        self.assertEqual(list(self.bank.iter_pages()), [])


class TestNumbers(BankTest):
    """Numbers round-trip exactly, keeping int or float and the sign of
    -0.0, through put, merge, snapshot and restore."""

    VALUES = [9223372036854775807, -9223372036854775808, 18446744073709551615,
              9007199254740993, -9007199254740993, 1.0, 12345678.0, -0.0, 0, 0.1, 1e300,
              5e-324, 1.7976931348623157e308, 0.30000000000000004, 2.0 ** 53 + 2]

    def assert_same(self, got, want):
        """Equal, with the same types throughout and the same sign of zero."""
        self.assertEqual(repr(got), repr(want))

    def props(self):
        return {"v%d" % i: v for i, v in enumerate(self.VALUES)} | \
            {"nested": [1.0, {"x": [-0.0, 18446744073709551615, -1]}]}

    def test_put_get_keeps_value_and_type(self):
        props = self.props()
        self.bank.update_page("n", props)
        self.assert_same(self.bank.get_page("n")["properties"], props)

    def test_merge_keeps_value_and_type(self):
        self.bank.update_page("n", {"a": 1.0})
        self.bank.merge_page("n", {"b": -0.0, "c": 18446744073709551615})
        self.assert_same(self.bank.get_page("n")["properties"],
                         {"a": 1.0, "b": -0.0, "c": 18446744073709551615})

    def test_beyond_64_bits_is_refused(self):
        self.bank.update_page("n", {"a": 1})
        for big in (2 ** 64, -2 ** 63 - 1, 10 ** 30):
            with self.assertRaises(InvalidInput) as cm:
                self.bank.update_page("n", {"a": big})
            self.assertIn("integer out of range (beyond 64 bits)", str(cm.exception))
        self.assert_same(self.bank.get_page("n")["properties"], {"a": 1})

    def test_config_timeout_keeps_its_type(self):
        for v in (30.0, 30, 12.5):
            self.bank.update_config({"notion_settings": {"timeout_seconds": v}})
            self.assert_same(self.bank.get_config()["notion_settings"]["timeout_seconds"], v)
        with self.assertRaisesRegex(InvalidInput, "max_entries must be an integer"):
            self.bank.update_config({"cache_settings": {"max_entries": 5.0}})

    def test_snapshot_restore_keeps_value_and_type(self):
        if not has_symbol("mb_snapshot") or not has_symbol("mb_restore"):
            self.skipTest("no mb_snapshot/mb_restore")
        props = self.props()
        self.bank.update_page("n", props)
        out = os.path.join(self.tmp, "snap")
        os.mkdir(out, 0o700)
        self.bank.snapshot(out)
        dest = os.path.join(self.tmp, "restored")
        MemoryBank.restore(out, dest)
        with MemoryBank(dest, durability="fast") as r:
            self.assert_same(r.get_page("n")["properties"], props)


class TestBadInput(BankTest):
    def test_non_str_page_id_is_type_error(self):
        for bad in (1, None, b"bytes"):
            with self.assertRaises(TypeError):
                self.bank.update_page(bad, {})
        with self.assertRaises(TypeError):
            self.bank.get_page(42)

    def test_non_dict_data_is_type_error(self):
        for bad in ([1], "{}", None, 3):
            with self.assertRaisesRegex(TypeError, "data must be a dict"):
                self.bank.update_page("p", bad)
        with self.assertRaises(TypeError):
            self.bank.update_config(["x"])

    def test_nul_in_id_is_invalid_input_before_c(self):
        with self.assertRaisesRegex(InvalidInput, "NUL") as cm:
            self.bank.update_page("a\0b", {})
        self.assertEqual(cm.exception.code, -1)
        self.assertIsInstance(cm.exception, ValueError)
        self.assertEqual(self.bank.page_count(), 0)

    def test_lone_surrogate_is_invalid_input(self):
        with self.assertRaisesRegex(InvalidInput, "UTF-8"):
            self.bank.update_page("p", {"x": "\udc80"})

    def test_nan_is_invalid_input(self):
        with self.assertRaisesRegex(InvalidInput, "data"):
            self.bank.update_page("p", {"x": float("nan")})

    def test_empty_id_is_rejected_by_the_library(self):
        with self.assertRaises(InvalidInput) as cm:
            self.bank.update_page("", {})
        self.assertEqual(cm.exception.name, "MB_EINVAL")
        self.assertEqual(str(cm.exception), "MB_EINVAL: page id: empty")

    def test_too_long_id(self):
        with self.assertRaisesRegex(InvalidInput, "longer than 255 bytes"):
            self.bank.update_page("x" * 256, {})
        self.bank.update_page("x" * 255, {})

    def test_json_above_max_json_bytes(self):
        path = os.path.join(self.tmp, "small")
        with MemoryBank(path, durability="fast", max_json_bytes=64) as small:
            with self.assertRaises(InvalidInput):
                small.update_page("p", {"x": "y" * 100})
            self.assertIsNone(small.get_page("p"))

    def test_too_deep_json_changes_nothing(self):
        self.bank.update_page("p", {"v": 1})
        deep = {}
        node = deep
        for _ in range(100):
            node["x"] = {}
            node = node["x"]
        with self.assertRaises(InvalidInput) as cm:
            self.bank.update_page("p", deep)
        self.assertEqual(cm.exception.code, -1)
        self.assertTrue(cm.exception.message)
        self.assertEqual(self.bank.get_page("p")["properties"], {"v": 1})

    def test_unencodable_data_is_invalid_input_naming_it(self):
        """Whatever json refuses comes out as InvalidInput naming the
        argument and the reason, and nothing changes."""
        self.bank.update_page("p", {"v": 1})

        def nest(depth):
            deep = node = {}
            for _ in range(depth):
                node["x"] = {}
                node = node["x"]
            return deep

        loop = {}
        loop["self"] = loop
        cases = [(nest(1000), "nested too deep"),
                 (nest(100000), "nested too deep"),
                 ({"x": [nest(2000)]}, "nested too deep"),
                 ({"s": {1, 2}}, "set is not JSON serializable"),
                 ({"o": object()}, "object is not JSON serializable"),
                 ({("a", "b"): 1}, "keys must be"),
                 ({"n": float("inf")}, "Out of range float"),
                 ({"i": 10 ** 5000}, "data"),
                 (loop, "Circular reference")]
        for bad, reason in cases:
            for call in (lambda: self.bank.update_page("p", bad),
                         lambda: self.bank.merge_page("p", bad)):
                with self.assertRaises(InvalidInput) as cm:
                    call()
                self.assertEqual(cm.exception.code, -1)
                self.assertIn("data: ", cm.exception.message)
                self.assertIn(reason, cm.exception.message)
        with self.assertRaisesRegex(InvalidInput, "new_config: nested too deep"):
            self.bank.update_config({"notion_settings": nest(1500)})
        self.assertEqual(self.bank.get_page("p")["properties"], {"v": 1})
        self.assertEqual(self.bank.page_count(), 1)

    def test_bad_options(self):
        with self.assertRaisesRegex(InvalidInput, "durability"):
            MemoryBank(self.path, durability="sometimes")
        with self.assertRaises(TypeError):
            MemoryBank(self.path, durability=1)
        with self.assertRaisesRegex(InvalidInput, "history_limit"):
            MemoryBank(self.path, history_limit=10**9)
        with self.assertRaises(TypeError):
            MemoryBank(self.path, max_json_bytes="big")


# ------------------------------------------------------------- sync status

class TestSyncStatus(BankTest):
    def test_initial_document(self):
        s = self.bank.get_sync_status()
        self.assertEqual(sorted(s), ["current_status", "error_count", "last_successful_sync",
                                     "success_count", "sync_history"])
        self.assertEqual((s["error_count"], s["success_count"], s["sync_history"]), (0, 0, []))

    def test_counts_and_history(self):
        self.bank.update_sync_status("success")
        self.bank.update_sync_status("failed", "HTTP 502")
        self.bank.update_sync_status("running")
        self.bank.update_sync_status("failed", RuntimeError("boom"))
        s = self.bank.get_sync_status()
        self.assertEqual(s["success_count"], 1)
        self.assertEqual(s["error_count"], 2)
        self.assertEqual(s["current_status"], "failed")
        self.assertEqual([(h["status"], h["error"]) for h in s["sync_history"]],
                         [("success", None), ("failed", "HTTP 502"), ("running", None),
                          ("failed", "boom")])
        self.assertEqual(s["last_successful_sync"], s["sync_history"][0]["timestamp"])

    def test_failure_status_without_error_counts_a_failure(self):
        for status in ("failed", "Failure", "ERROR", "failing", "Success"):
            self.bank.update_sync_status(status)
        s = self.bank.get_sync_status()
        self.assertEqual((s["error_count"], s["success_count"]), (3, 0))
        self.assertEqual([(h["status"], h["error"]) for h in s["sync_history"]],
                         [("failed", ""), ("Failure", ""), ("ERROR", ""),
                          ("failing", None), ("Success", None)])

    def test_history_limit(self):
        with MemoryBank(os.path.join(self.tmp, "h"), durability="fast", history_limit=3) as b:
            for i in range(5):
                b.update_sync_status("s%d" % i)
            self.assertEqual([h["status"] for h in b.get_sync_status()["sync_history"]],
                             ["s2", "s3", "s4"])

    def test_history_limit_of_existing_bank(self):
        path = os.path.join(self.tmp, "h")
        MemoryBank(path, durability="fast", history_limit=3).close()
        with self.assertRaises(InvalidInput) as cm:
            MemoryBank(path, history_limit=5)
        self.assertEqual(cm.exception.message, "options: history_limit 5, but the bank at "
                         "%s keeps 3 (set when it was created; 0 takes the bank's)" % path)
        for limit in (None, 3):
            with MemoryBank(path, durability="fast", history_limit=limit) as b:
                self.assertEqual(b.options["history_limit"], limit)
                for i in range(5):
                    b.update_sync_status("s%d" % i)
                self.assertEqual(len(b.get_sync_status()["sync_history"]), 3)

    def test_empty_status_is_invalid(self):
        with self.assertRaisesRegex(InvalidInput, "status"):
            self.bank.update_sync_status("")


# ------------------------------------------------------------------ batches

class TestBatch(BankTest):
    def test_500_updates_are_one_journal_record(self):
        before = self.bank.journal_last_seq()
        with self.bank.batch() as b:
            for i in range(500):
                b.update_page("p%03d" % i, {"n": i})
            self.assertEqual(len(b), 500)
            self.assertIsNone(self.bank.get_page("p000"))   # nothing before the end
        self.assertEqual(self.bank.journal_last_seq(), before + 1)
        self.assertEqual(self.bank.page_count(), 500)
        self.assertEqual(self.bank.get_page("p499")["properties"], {"n": 499})

    def test_every_operation(self):
        self.bank.update_page("gone", {"x": 1})
        self.bank.update_page("m", {"a": 1, "b": 2})
        before = self.bank.journal_last_seq()
        with self.bank.batch() as b:
            b.update_page("new", {"t": "hello"})
            b.merge_page("m", {"b": None, "c": 3})
            b.delete_page("gone")
            b.update_sync_status("success")
            b.log_error("rate_limited", "slow down")
            b.resolve_error("rate_limited", "waited")
            b.update_config({"cache_settings": {"max_entries": 7}})
            self.assertEqual(len(b), 7)
        self.assertEqual(self.bank.journal_last_seq(), before + 1)
        self.assertEqual(self.bank.get_page("new")["properties"], {"t": "hello"})
        self.assertEqual(self.bank.get_page("m")["properties"], {"a": 1, "c": 3})
        self.assertIsNone(self.bank.get_page("gone"))
        s = self.bank.get_sync_status()
        self.assertEqual((s["current_status"], s["success_count"]), ("success", 1))
        e = self.bank.get_error_stats()
        self.assertEqual((e["total_errors"], e["resolved_errors"]), (1, 1))
        self.assertEqual(e["last_error"]["message"], "slow down")
        self.assertEqual(self.bank.get_config()["cache_settings"]["max_entries"], 7)

    def test_exception_in_block_applies_nothing(self):
        before = self.bank.journal_last_seq()
        with self.assertRaisesRegex(RuntimeError, "stop"):
            with self.bank.batch() as b:
                b.update_page("a", {"x": 1})
                b.update_sync_status("success")
                raise RuntimeError("stop")
        self.assertEqual(self.bank.journal_last_seq(), before)
        self.assertIsNone(self.bank.get_page("a"))
        self.assertEqual(self.bank.get_sync_status()["success_count"], 0)
        with self.assertRaisesRegex(BankError, "aborted by RuntimeError"):
            b.update_page("a", {"x": 1})

    def test_bad_input_raises_and_the_rest_commits(self):
        with self.bank.batch() as b:
            b.update_page("a", {"x": 1})
            with self.assertRaisesRegex(InvalidInput, "page_id"):
                b.update_page("bad\0id", {"x": 2})
            with self.assertRaisesRegex(InvalidInput, "data: .*NaN|data: Out of range"):
                b.update_page("b", {"x": float("nan")})
            with self.assertRaises(InvalidInput) as cm:
                b.update_config({"notion_settings": {"colour": 1}})
            self.assertEqual(cm.exception.name, "MB_EINVAL")
            self.assertIn("notion_settings.colour", cm.exception.message)
            with self.assertRaises(InvalidInput):
                b.update_page("", {})               # the library's check
            with self.assertRaises(TypeError):
                b.update_page("c", [1])
            with self.assertRaises(InvalidInput):
                b.update_sync_status("")
            b.update_page("d", {"x": 4})
            self.assertEqual(len(b), 2)
        self.assertEqual(sorted(self.bank.page_ids()), ["a", "d"])

    def test_delete_of_absent_page_fails_the_commit(self):
        before = self.bank.journal_last_seq()
        with self.assertRaises(NotFound) as cm:
            with self.bank.batch() as b:
                b.update_page("a", {"x": 1})
                b.delete_page("a")
                b.delete_page("a")              # absent at its point
        self.assertEqual(cm.exception.message, 'batch: operation 3 (page delete): '
                         'page "a": not found; nothing was applied')
        self.assertEqual(self.bank.journal_last_seq(), before)
        self.assertEqual(self.bank.page_count(), 0)
        with self.assertRaisesRegex(BankError, "failed to commit"):
            b.update_page("a", {})

    def test_unusable_outside_its_block(self):
        b = self.bank.batch()
        with self.assertRaisesRegex(BankError, "not entered"):
            b.update_page("a", {})
        with b:
            b.update_page("a", {"x": 1})
        for call in (lambda: b.update_page("a", {}), lambda: b.delete_page("a"),
                     lambda: len(b), lambda: b.log_error("t", "m")):
            with self.assertRaisesRegex(BankError, "committed; a batch is used inside"):
                call()
        with self.assertRaisesRegex(BankError, "committed; begin another"):
            with b:
                pass
        self.assertEqual(self.bank.get_page("a")["properties"], {"x": 1})

    def test_empty_batch_writes_nothing(self):
        before = self.bank.journal_last_seq()
        with self.bank.batch():
            pass
        self.assertEqual(self.bank.journal_last_seq(), before)

    def test_close_inside_the_block_drops_the_batch(self):
        with self.assertRaisesRegex(BankError, "closed before its end"):
            with self.bank.batch() as b:
                b.update_page("a", {"x": 1})
                self.bank.close()
        with MemoryBank(self.path) as again:
            self.assertIsNone(again.get_page("a"))
        with self.assertRaisesRegex(BankError, "the bank is closed"):
            with self.bank.batch():
                pass

    def test_forked_child_refuses_the_parents_batch(self):
        if not hasattr(os, "fork"):
            self.skipTest("no fork")
        with self.bank.batch() as b:
            b.update_page("parent", {"x": 1})
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    try:
                        b.update_page("child", {"x": 2})
                    except BankError as exc:
                        code = 0 if "belongs to the process that began it" in str(exc) else 2
                    with self.bank.batch() as cb:      # a child's own batch works
                        cb.update_page("child", {"x": 3})
                finally:
                    os.write(w, bytes([code]))
                    os._exit(0)
            os.close(w)
            self.assertEqual(os.read(r, 1), b"\x00")
            os.close(r)
            os.waitpid(pid, 0)
        self.assertEqual(self.bank.get_page("parent")["properties"], {"x": 1})
        self.assertEqual(self.bank.get_page("child")["properties"], {"x": 3})

    def test_threads_share_a_batch(self):
        with self.bank.batch() as b:
            ts = [threading.Thread(target=lambda k=k: [b.update_page("t%d-%d" % (k, i), {"i": i})
                                                      for i in range(50)])
                  for k in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        self.assertEqual(self.bank.page_count(), 200)


# ------------------------------------------------------------------ errors

class TestErrors(BankTest):
    def test_log_exception(self):
        try:
            {}["missing"]
        except KeyError as exc:
            self.bank.log_error(exc)
        st = self.bank.get_error_stats()
        self.assertEqual(sorted(st), ["last_error", "patterns", "resolved_errors", "total_errors"])
        self.assertEqual(st["total_errors"], 1)
        self.assertEqual(st["patterns"], {"KeyError": 1})
        self.assertEqual(st["last_error"]["error_type"], "KeyError")
        self.assertEqual(st["last_error"]["message"], "'missing'")

    def test_log_strings(self):
        self.bank.log_error("RateLimited", "429 from Notion")
        self.bank.log_error("RateLimited", "again")
        self.bank.log_error("Timeout")            # a plain string is the message
        self.bank.log_error("Timeout again")
        st = self.bank.get_error_stats()
        self.assertEqual(st["patterns"], {"RateLimited": 2, "error": 2})
        self.assertEqual((st["last_error"]["error_type"], st["last_error"]["message"]),
                         ("error", "Timeout again"))
        self.bank.log_error("")
        self.assertEqual(self.bank.get_error_stats()["last_error"]["message"], "")

    def test_long_exception_message_is_cut(self):
        self.bank.log_error(ValueError("é" * 5000))
        msg = self.bank.get_error_stats()["last_error"]["message"]
        self.assertEqual(msg, "é" * 2048)

    def test_exception_with_nul_and_surrogate_is_escaped(self):
        self.bank.log_error(ValueError("a\0b\udc80c"))
        self.bank.update_sync_status("failed", OSError("x\0y"))
        self.assertEqual(self.bank.get_error_stats()["last_error"]["message"],
                         "a\\x00b\\udc80c")
        self.assertEqual(self.bank.get_sync_status()["sync_history"][-1]["error"], "x\\x00y")

    def test_strings_are_escaped_and_cut_not_refused(self):
        self.bank.log_error("T\0\udc80", "a\0b\udc80")
        last = self.bank.get_error_stats()["last_error"]
        self.assertEqual((last["error_type"], last["message"]),
                         ("T\\x00\\udc80", "a\\x00b\\udc80"))
        self.bank.log_error("é" * 100, "é" * 5000)
        last = self.bank.get_error_stats()["last_error"]
        self.assertEqual((last["error_type"], last["message"]), ("é" * 64, "é" * 2048))
        self.bank.update_sync_status("failed", "x\udc80" + "é" * 5000)
        err = self.bank.get_sync_status()["sync_history"][-1]["error"]
        self.assertEqual(err, "x\\udc80" + "é" * 2044)
        self.assertEqual(len(err.encode()), 4096 - 1)
        self.assertEqual(self.bank.get_error_stats()["total_errors"], 2)

    def test_empty_or_non_str_type_is_refused(self):
        with self.assertRaises(InvalidInput):
            self.bank.log_error("", "m")
        with self.assertRaises(TypeError):
            self.bank.log_error(42)
        with self.assertRaises(TypeError):
            self.bank.log_error("t", 42)
        with self.assertRaises(TypeError):
            self.bank.update_sync_status("failed", 42)
        self.assertEqual(self.bank.get_error_stats()["total_errors"], 0)

    def test_exceptions_that_cannot_be_printed(self):
        """log_error and update_sync_status never fail on what an exception
        holds: a failing or non-str __str__, an empty or odd class name."""
        class StrRaises(Exception):
            def __str__(self):
                raise RuntimeError("no str")

        class StrNotStr(Exception):
            def __str__(self):
                return 42

        class Sneaky(str):
            def replace(self, *a):
                raise RuntimeError("no replace")

            def encode(self, *a):
                raise RuntimeError("no encode")

        class StrSubclass(Exception):
            def __str__(self):
                return Sneaky("sub\0class")

        Nameless = type("", (ValueError,), {})

        class Meta(type):
            __name__ = property(lambda cls: 42)

        class OddMeta(Exception, metaclass=Meta):
            pass

        Long = type("E" * 300, (Exception,), {})
        cases = [(StrRaises(), "StrRaises", "<exception str() failed>"),
                 (StrNotStr(), "StrNotStr", "<exception str() failed>"),
                 (StrSubclass(), "StrSubclass", "sub\\x00class"),
                 (Nameless("m"), "ValueError", "m"),
                 (OddMeta("m"), "OddMeta", "m"),
                 (Long("m"), "E" * 128, "m"),
                 (KeyboardInterrupt(), "KeyboardInterrupt", "")]
        for exc, etype, message in cases:
            self.bank.log_error(exc)
            last = self.bank.get_error_stats()["last_error"]
            self.assertEqual((last["error_type"], last["message"]), (etype, message))
            self.bank.update_sync_status("failed", exc)
            self.assertEqual(self.bank.get_sync_status()["sync_history"][-1]["error"],
                             message)
        self.assertEqual(self.bank.get_error_stats()["total_errors"], len(cases))

    def test_notion_sdk_shaped_exception(self):
        """The Notion SDK's APIResponseError: .code a member of a str Enum,
        .status the HTTP status; raised from a transport error."""
        import enum

        class APIErrorCode(str, enum.Enum):
            RateLimited = "rate_limited"
            ObjectNotFound = "object_not_found"

        class APIResponseError(Exception):
            def __init__(self, code, status, message):
                super().__init__(message)
                self.code, self.status = code, status

        self.assertEqual(str(APIErrorCode.RateLimited), "APIErrorCode.RateLimited")
        try:
            try:
                raise ConnectionResetError("peer reset")
            except ConnectionResetError as transport:
                raise APIResponseError(APIErrorCode.RateLimited, 429,
                                       "You have been rate limited.") from transport
        except APIResponseError as exc:
            self.bank.log_error(exc)
            self.bank.update_sync_status("failed", exc)
        last = self.bank.get_error_stats()["last_error"]
        want = "HTTP 429: You have been rate limited.; caused by ConnectionResetError: peer reset"
        self.assertEqual((last["error_type"], last["message"]), ("rate_limited", want))
        self.assertEqual(self.bank.get_sync_status()["sync_history"][-1]["error"], want)
        self.bank.log_error(APIResponseError(APIErrorCode.ObjectNotFound, 404, "gone"))
        self.bank.log_error(APIResponseError("validation_error", 400, "bad"))
        self.assertEqual(self.bank.get_error_stats()["patterns"],
                         {"rate_limited": 1, "object_not_found": 1, "validation_error": 1})

    def test_exception_attributes(self):
        """No str code: the class name.  status_code as status.  An implicit
        context; a bounded chain; attributes that raise are ignored."""
        class HTTPError(Exception):
            status_code = 502
            code = 7                              # not a str: ignored

        class Hostile(Exception):
            @property
            def code(self):
                raise RuntimeError("no code")

            @property
            def status(self):
                raise RuntimeError("no status")

        def last():
            e = self.bank.get_error_stats()["last_error"]
            return e["error_type"], e["message"]

        try:
            try:
                1 / 0
            except ZeroDivisionError:
                raise HTTPError("bad gateway")
        except HTTPError as exc:
            self.bank.log_error(exc)
        self.assertEqual(last(), ("HTTPError", "HTTP 502: bad gateway; "
                                  "while handling ZeroDivisionError: division by zero"))
        self.bank.log_error(Hostile("h"))
        self.assertEqual(last(), ("Hostile", "h"))
        self.bank.log_error(Hostile(HTTPError()))       # empty-code fallbacks
        exc = ValueError("top")
        cur = exc
        for i in range(10):
            cur.__cause__ = ValueError("c%d" % i + "x" * 400)
            cur = cur.__cause__
        cur.__cause__ = exc                               # a cycle
        self.bank.log_error(exc)
        typ, msg = last()
        cut = "x" * 298 + "..."
        self.assertEqual(msg, "top" + "".join("; caused by ValueError: c%d%s" % (i, cut)
                                              for i in range(4)))
        self.bank.log_error(KeyError("k"))
        self.assertEqual(last(), ("KeyError", "'k'"))
        e = ValueError("s")
        e.code = ""                                        # empty: the class name
        e.status = True                                    # a bool is no status
        self.bank.log_error(e)
        self.assertEqual(last(), ("ValueError", "s"))

    def test_exception_and_message_together_is_type_error(self):
        with self.assertRaises(TypeError):
            self.bank.log_error(ValueError("x"), "y")

    def test_resolve_error(self):
        self.bank.log_error("Timeout", "a")
        self.bank.log_error("Timeout", "b")
        self.bank.log_error("Other", "c")
        self.bank.resolve_error("Timeout", "raised timeout_seconds")
        st = self.bank.get_error_stats()
        self.assertEqual((st["total_errors"], st["resolved_errors"]), (3, 2))


# ------------------------------------------------------------------ config

class TestConfig(BankTest):
    DEFAULTS = {"notion_settings": {"api_version": "2022-06-28", "retry_attempts": 3,
                                    "timeout_seconds": 30},
                "logging_settings": {"log_level": "INFO", "structured_logging": True},
                "cache_settings": {"ttl_seconds": 0, "max_entries": 0}}

    def test_defaults(self):
        c = self.bank.get_config()
        self.assertIsNone(c.pop("last_config_update"))
        self.assertEqual(c, self.DEFAULTS)

    def test_evicted_pages_counted(self):
        # the issue: pages dropped by cache_settings were silent
        self.bank.update_config({"cache_settings": {"max_entries": 5}})
        for i in range(12):
            self.bank.update_page("p%d" % i, {})
        st = self.bank.stats()
        self.assertEqual((st["pages_evicted"], st["pages_expired"], st["pages_purged"]),
                         (7, 0, 0))
        snap = self.bank.snapshot()
        self.assertEqual((snap["pages"], snap["pages_evicted"], snap["pages_purged"]), (5, 7, 0))

    def test_deep_merge(self):
        self.bank.update_config({"notion_settings": {"timeout_seconds": 12.5},
                                 "logging_settings": {"log_level": "DEBUG"}})
        c = self.bank.get_config()
        self.assertRegex(c.pop("last_config_update"), TIMESTAMP)
        want = {k: dict(v) for k, v in self.DEFAULTS.items()}
        want["notion_settings"]["timeout_seconds"] = 12.5
        want["logging_settings"]["log_level"] = "DEBUG"
        self.assertEqual(c, want)

    def test_unknown_key_leaves_config_unchanged(self):
        before = self.bank.get_config()
        with self.assertRaises(InvalidInput) as cm:
            self.bank.update_config({"notion_settings": {"retry_attempts": 4, "colour": "red"}})
        self.assertIn("notion_settings.colour", str(cm.exception))
        self.assertEqual(self.bank.get_config(), before)

    def test_section_of_wrong_type(self):
        before = self.bank.get_config()
        with self.assertRaisesRegex(InvalidInput, "notion_settings"):
            self.bank.update_config({"notion_settings": 5})
        self.assertEqual(self.bank.get_config(), before)

    def test_wrong_type_leaves_config_unchanged(self):
        before = self.bank.get_config()
        with self.assertRaises(InvalidInput) as cm:
            self.bank.update_config({"cache_settings": {"ttl_seconds": 5,
                                                        "max_entries": "many"}})
        self.assertIn("cache_settings.max_entries", str(cm.exception))
        self.assertEqual(self.bank.get_config(), before)


# --------------------------------------------------------------- lifecycle

class TestLifecycle(BankTest):
    def test_context_manager_closes(self):
        with MemoryBank(os.path.join(self.tmp, "cm"), durability="fast") as b:
            b.update_page("p", {})
        self.assertTrue(b.closed)
        with self.assertRaises(BankError) as cm:
            b.get_page("p")
        self.assertIsNone(cm.exception.code)
        self.assertIn("closed", str(cm.exception))
        b.close()  # twice is fine

    def test_path_is_absolute_and_survives_chdir(self):
        old = os.getcwd()
        os.chdir(self.tmp)
        try:
            b = MemoryBank("rel", durability="fast")
            os.chdir("/")
            self.assertEqual(b.path, os.path.join(self.tmp, "rel"))
            b.update_page("p", {"a": 1})
            b.close()
        finally:
            os.chdir(old)
        self.assertTrue(os.path.isdir(os.path.join(self.tmp, "rel", "journal")))

    def test_default_path_is_membank_dir(self):
        target = os.path.join(self.tmp, "from-env")
        old = os.environ.get("MEMBANK_DIR")
        os.environ["MEMBANK_DIR"] = target
        try:
            with MemoryBank(durability="fast") as b:
                self.assertEqual(b.path, target)
        finally:
            if old is None:
                del os.environ["MEMBANK_DIR"]
            else:
                os.environ["MEMBANK_DIR"] = old
        self.assertTrue(os.path.isdir(os.path.join(target, "store")))

    def test_open_missing_bank_without_create(self):
        with self.assertRaises(BankError) as cm:
            MemoryBank(os.path.join(self.tmp, "nope"), create=False)
        self.assertEqual(cm.exception.name, "MB_ENOTBANK")
        self.assertIn("nope", cm.exception.message)

    def test_open_non_bank_directory(self):
        junk = os.path.join(self.tmp, "junk")
        os.mkdir(junk)
        open(os.path.join(junk, "file.txt"), "w").close()
        with self.assertRaises(BankError) as cm:
            MemoryBank(junk)
        self.assertEqual(cm.exception.name, "MB_ENOTBANK")

    def test_two_objects_share_one_bank(self):
        with MemoryBank(self.path, durability="fast") as other:
            self.bank.update_page("p", {"v": 1})
            self.assertEqual(other.get_page("p")["properties"], {"v": 1})

    def test_stats(self):
        self.bank.update_page("p", {})
        st = self.bank.stats()
        self.assertEqual(st["pages"], 1)
        self.assertEqual(st["durability"], "fast")
        self.assertEqual(os.path.realpath(st["path"]), os.path.realpath(self.path))

    def test_file_modes(self):
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o700)
        shared = os.path.join(self.tmp, "shared")
        with MemoryBank(shared, durability="fast", group_shared=True):
            pass
        self.assertEqual(os.stat(shared).st_mode & 0o777, 0o770)

    def test_options_and_repr(self):
        self.assertEqual(self.bank.options["durability"], "fast")
        self.assertIn("open", repr(self.bank))

    def test_pickle_in_process_opens_a_second_handle(self):
        self.bank.update_page("p", {"v": 1})
        clone = pickle.loads(pickle.dumps(self.bank))
        try:
            self.assertIsNot(clone, self.bank)
            self.assertEqual(clone.get_page("p")["properties"], {"v": 1})
            self.assertEqual(clone.options, dict(self.bank.options, create=False))
        finally:
            clone.close()

    def test_exceptions_pickle(self):
        e = InvalidInput(-1, "MB_EINVAL", "page id: empty")
        back = pickle.loads(pickle.dumps(e))
        self.assertEqual((type(back), back.code, back.message), (InvalidInput, -1, e.message))


class TestJsonLimit(unittest.TestCase):
    """max_json_bytes is the bank's (membank.json, set at creation): Python,
    the command and C accept and refuse the same documents (tests/cli
    JsonLimit, tests/hardening test_max_json_bytes_option)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="membank-py-")
        self.path = os.path.join(self.tmp, "bank")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    @staticmethod
    def data(n):
        return {"a": "x" * (n - 8)}  # '{"a":"x..."}': n bytes as the binding sends it

    def cli(self, *args, input=None):
        exe = os.environ.get("MEMBANK_CLI")
        if not exe:
            self.skipTest("MEMBANK_CLI (the membank command) not set")
        return subprocess.run([exe, "-b", self.path] + list(args), input=input,
                              capture_output=True, text=True, timeout=60).returncode

    def test_a_bank_created_by_python_binds_every_client(self):
        with MemoryBank(self.path, durability="fast", max_json_bytes=1000) as b:
            b.update_page("a", self.data(1000))
            with self.assertRaises(InvalidInput):
                b.update_page("b", self.data(1001))
            self.assertEqual(b.stats()["max_json_bytes"], 1000)
        with MemoryBank(self.path, durability="fast") as b:  # None: the bank's
            with self.assertRaisesRegex(InvalidInput, "larger than the limit of 1000"):
                b.update_page("b", self.data(1001))
        with self.assertRaisesRegex(InvalidInput, "accepts at most 1000"):
            MemoryBank(self.path, max_json_bytes=2000)
        with MemoryBank(self.path, durability="fast", max_json_bytes=500) as b:
            with self.assertRaises(InvalidInput):  # lowered for this handle only
                b.update_page("c", self.data(600))
        self.assertEqual(self.cli("page", "put", "c", json.dumps(self.data(1000),
                                                               separators=(",", ":"))), 0)
        self.assertEqual(self.cli("page", "put", "d", json.dumps(self.data(1001),
                                                               separators=(",", ":"))), 3)

    def test_a_bank_created_by_the_command_binds_python(self):
        self.assertEqual(self.cli("init"), 0)
        big = json.dumps(self.data((1 << 20) + 1), separators=(",", ":"))
        self.assertEqual(self.cli("page", "put", "big", "-", input=big), 3)  # was 0: 16 MiB
        with MemoryBank(self.path, durability="fast") as b:
            with self.assertRaises(InvalidInput):
                b.update_page("big", self.data((1 << 20) + 1))
            b.update_page("mib", self.data(1 << 20))
        self.assertEqual(self.cli("page", "put", "mib2", "-",
                                  input=json.dumps(self.data(1 << 20), separators=(",", ":"))), 0)

    def test_absurd_values_refused(self):
        for bad in (1, 63, _lib.MB_MAX_JSON_BYTES + 1):
            with self.assertRaises((InvalidInput, ValueError)):
                MemoryBank(self.path, max_json_bytes=bad)
            self.assertFalse(os.path.exists(os.path.join(self.path, "membank.json")))


class TestSnapshotRestore(BankTest):
    def setUp(self):
        super().setUp()
        if not has_symbol("mb_snapshot") or not has_symbol("mb_restore"):
            self.skipTest("mb_snapshot/mb_restore are not in %s yet" % membank.library_path())

    def test_snapshot_to_dir_and_restore(self):
        self.bank.update_page("p", {"ü": [1, 2]})
        self.bank.log_error("T", "m")
        out = os.path.join(self.tmp, "snap")
        os.mkdir(out, 0o700)
        info = self.bank.snapshot(out)
        self.assertEqual(info["pages"], 1)
        self.assertGreater(info["seq"], 0)
        self.assertLessEqual({"config_cache.json", "error_log.json", "notion_pages.json",
                              "sync_status.json"}, set(os.listdir(out)))
        dest = os.path.join(self.tmp, "restored")
        MemoryBank.restore(out, dest)
        with MemoryBank(dest, durability="fast") as r:
            self.assertEqual(r.get_page("p")["properties"], {"ü": [1, 2]})
            self.assertEqual(r.get_error_stats()["patterns"], {"T": 1})

    def test_snapshot_into_bank_directory(self):
        self.bank.update_page("p", {})
        self.bank.snapshot()
        self.assertTrue(os.path.exists(os.path.join(self.path, "notion_pages.json")))

    def test_restore_refuses_a_bank_open_here(self):
        out = os.path.join(self.tmp, "snap")
        os.mkdir(out, 0o700)
        self.bank.snapshot(out)
        with self.assertRaises(BankError) as cm:
            MemoryBank.restore(out, self.path, force=True)
        self.assertEqual(cm.exception.name, "MB_EPERM")

    def test_restore_refuses_a_bank_open_in_another_process(self):
        out = os.path.join(self.tmp, "snap")
        os.mkdir(out, 0o700)
        self.bank.update_page("p", {"v": 1})
        self.bank.snapshot(out)
        self.bank.close()
        holder = subprocess.Popen(
            [sys.executable, "-c", "import membank, sys\n"
             "b = membank.MemoryBank(sys.argv[1])\nprint('open', flush=True)\n"
             "sys.stdin.read()\n", self.path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(holder.stdout.readline(), "open\n")
            with self.assertRaises(BankError) as cm:
                MemoryBank.restore(out, self.path, force=True)
            self.assertEqual(cm.exception.name, "MB_EPERM")
            self.assertIn("open in another process", cm.exception.message)
        finally:
            holder.communicate("", timeout=30)

    def test_restore_refuses_non_empty_bank_without_force(self):
        self.bank.update_page("p", {"v": 1})
        out = os.path.join(self.tmp, "snap")
        os.mkdir(out, 0o700)
        self.bank.snapshot(out)
        dest = os.path.join(self.tmp, "other")
        with MemoryBank(dest, durability="fast") as o:
            o.update_page("q", {})
        with self.assertRaises(BankError) as cm:
            MemoryBank.restore(out, dest)
        self.assertEqual(cm.exception.name, "MB_EEXIST")
        MemoryBank.restore(out, dest, force=True)
        with MemoryBank(dest, durability="fast") as o:
            self.assertIsNone(o.get_page("q"))
            self.assertEqual(o.get_page("p")["properties"], {"v": 1})


    def test_restore_expired_pages_need_a_choice(self):
        """A backup whose pages are older than its ttl_seconds: restore says
        how many and wants expired="keep" or "expire"."""
        out = os.path.join(self.tmp, "old")
        os.mkdir(out, 0o700)
        old = "2020-01-01T00:00:00.000000Z"
        with open(os.path.join(out, "notion_pages.json"), "w") as f:
            json.dump({"pages": {"a": {"properties": {"v": 1}, "last_updated": old},
                                 "b": {"properties": {"v": 2}, "last_updated": old}},
                       "last_updated": old,
                       "metadata": {"total_pages": 2, "last_sync": None}}, f)
        with open(os.path.join(out, "config_cache.json"), "w") as f:
            json.dump({"cache_settings": {"ttl_seconds": 3600, "max_entries": 0}}, f)
        dest = os.path.join(self.tmp, "restored")
        with self.assertRaises(InvalidInput) as cm:
            MemoryBank.restore(out, dest)
        self.assertIn("2 of 2 pages are older than ttl_seconds=3600", cm.exception.message)
        self.assertFalse(os.path.exists(os.path.join(dest, "membank.json")))
        with self.assertRaises(InvalidInput):
            MemoryBank.restore(out, dest, expired="later")
        MemoryBank.restore(out, dest, expired="keep")
        with MemoryBank(dest, durability="fast") as r:
            self.assertEqual(r.page_count(), 2)
            self.assertEqual(r.get_page("a")["properties"], {"v": 1})
            self.assertEqual(r.get_config()["cache_settings"]["ttl_seconds"], 0)
        MemoryBank.restore(out, dest, force=True, expired="expire")
        with MemoryBank(dest, durability="fast") as r:
            self.assertEqual(r.page_count(), 0)

    def test_restore_keeps_every_page_and_says_so(self):
        """More pages than the files' max_entries: all kept, max_entries 0,
        and the returned report says so (before: None, and the next new page
        evicted all but max_entries)."""
        out = os.path.join(self.tmp, "many")
        os.mkdir(out, 0o700)
        now = "2099-01-01T00:00:00.000000Z"
        with open(os.path.join(out, "notion_pages.json"), "w") as f:
            json.dump({"pages": {"p%02d" % i: {"properties": {"i": i}, "last_updated": now}
                                 for i in range(30)},
                       "last_updated": now, "metadata": {"total_pages": 30, "last_sync": None}}, f)
        with open(os.path.join(out, "config_cache.json"), "w") as f:
            json.dump({"cache_settings": {"ttl_seconds": 0, "max_entries": 10}}, f)
        dest = os.path.join(self.tmp, "restored")
        report = MemoryBank.restore(out, dest)
        self.assertEqual(report, {"pages": 30, "expired_pages": 0, "expired_pages_kept": 0,
                                  "expired_pages_dropped": 0, "config_cache_json": True,
                                  "ttl_seconds_was": 0, "ttl_seconds_now": 0,
                                  "max_entries_was": 10, "max_entries_now": 0})
        with MemoryBank(dest, durability="fast") as r:
            r.update_page("new", {})
            self.assertEqual(r.page_count(), 31)
            self.assertEqual(r.get_config()["cache_settings"]["max_entries"], 0)


# ------------------------------------------------------- library discovery

def _run_python(code, env):
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)


class TestLibrarySearch(unittest.TestCase):
    def test_env_var_is_the_only_candidate_when_set(self):
        self.assertEqual(_lib.candidates({"MEMBANK_LIBRARY": "/x/libmembank.so"}),
                         ["/x/libmembank.so"])

    def test_order_soname_installed_then_build_tree_newest_first(self):
        with tempfile.TemporaryDirectory() as root:
            paths = []
            for i, name in enumerate(["build-old", "build-new"]):
                d = os.path.join(root, name, "libshm")
                os.makedirs(d)
                p = os.path.join(d, "libmembank.so")
                open(p, "w").close()
                os.utime(p, (1000 + i, 1000 + i))
                paths.append(p)
            got = _lib.candidates({}, root)
            self.assertEqual(got[0], "libmembank.so.0")
            self.assertIn("/usr/local/lib/libmembank.so.0", got)
            self.assertEqual(got[-2:], [paths[1], paths[0]])

    def test_the_normal_path_imports_no_ctypes_util(self):
        """By MEMBANK_LIBRARY, and by the soname through the loader."""
        lib = os.environ.get("MEMBANK_LIBRARY")
        if not lib:
            self.skipTest("MEMBANK_LIBRARY not set")
        by_soname = {k: v for k, v in os.environ.items() if k != "MEMBANK_LIBRARY"}
        by_soname["LD_LIBRARY_PATH"] = os.path.dirname(lib)
        for env, path in ((dict(os.environ), lib), (by_soname, "libmembank.so.0")):
            r = _run_python("import sys\n"
                            "before = set(sys.modules)\n"
                            "import membank\n"
                            "print(membank.library_path())\n"
                            "print(sorted(m for m in ('ctypes.util', 'subprocess', 'glob', "
                            "'typing', 'sysconfig', 'queue') if m in set(sys.modules) - before))\n",
                            env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, "%s\n[]\n" % path)

    def test_library_of_another_abi_is_refused(self):
        fake = os.environ.get("MEMBANK_TEST_FAKE_LIB")
        if not fake:
            self.skipTest("MEMBANK_TEST_FAKE_LIB not set")
        env = dict(os.environ, MEMBANK_LIBRARY=fake)
        r = _run_python("import membank\n"
                        "try:\n    membank.MemoryBank('/tmp/x')\n"
                        "except membank.LibraryNotFound as e:\n    print(e.tried)\n", env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "[(%r, 'libmembank 0.3.0, but this membank package "
                         "(0.2.0) needs 0.2.x')]\n" % fake)

    def test_abi_rule(self):
        self.assertIsNone(_lib.abi_problem("0.2.7", 207, "0.2.0"))
        self.assertIsNone(_lib.abi_problem("1.4.0", 10400, "1.0.0"))
        self.assertEqual(_lib.abi_problem("0.1.0", 100, "0.2.0"),
                         "libmembank 0.1.0, but this membank package (0.2.0) needs 0.2.x")
        self.assertEqual(_lib.abi_problem("2.0.0", 20000, "1.3.0"),
                         "libmembank 2.0.0, but this membank package (1.3.0) needs 1.x")

    def test_version_is_the_librarys(self):
        self.assertEqual(membank.__version__, _lib.load().cdll.mb_version(None).decode())
        self.assertEqual(membank.__version__, "0.2.0")

    def test_bad_env_var_names_the_path(self):
        env = dict(os.environ, MEMBANK_LIBRARY="/nonexistent/libmembank.so")
        r = _run_python("import membank\n"
                        "try:\n    membank.MemoryBank('/tmp/x')\n"
                        "except membank.LibraryNotFound as e:\n    print(e)\n", env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("cannot load libmembank; tried, in order:", r.stdout)
        self.assertIn("/nonexistent/libmembank.so:", r.stdout)
        self.assertIn("set MEMBANK_LIBRARY", r.stdout)

    def test_no_library_anywhere_lists_every_path(self):
        with tempfile.TemporaryDirectory() as root:
            shutil.copytree(os.path.dirname(membank.__file__),
                            os.path.join(root, "python", "membank"))
            env = {k: v for k, v in os.environ.items()
                   if k not in ("MEMBANK_LIBRARY", "LD_LIBRARY_PATH")}
            env["PYTHONPATH"] = os.path.join(root, "python")
            r = _run_python("import membank\n"
                            "print(membank.Error.__name__)\n"
                            "try:\n    membank.library_path()\n"
                            "except OSError as e:\n    print(e)\n", env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("Error\ncannot load libmembank"), r.stdout)
        self.assertIn("libmembank.so.0:", r.stdout)

    def test_loaded_library_is_the_env_one(self):
        want = os.environ.get("MEMBANK_LIBRARY")
        if not want:
            self.skipTest("MEMBANK_LIBRARY not set")
        self.assertEqual(membank.library_path(), want)


# ------------------------------------------------------ automatic checkpoints

class TestAutoCheckpoint(BankTest):
    FOUR = ("notion_pages.json", "sync_status.json", "error_log.json", "config_cache.json")

    def test_files_appear_without_a_snapshot(self):
        self.bank.update_page("p1", {"title": "One"})
        for name in self.FOUR:
            with open(os.path.join(self.path, name)) as f:
                json.load(f)
        with open(os.path.join(self.path, "notion_pages.json")) as f:
            self.assertEqual(json.load(f)["pages"]["p1"]["properties"], {"title": "One"})
        self.assertEqual(self.bank.stats()["checkpoint"]["auto"]["runs"], 1)

    def test_turned_off(self):
        other = os.path.join(self.tmp, "off")
        with MemoryBank(other, durability="fast", auto_checkpoint=False) as b:
            b.update_page("p1", {"title": "One"})
            self.assertFalse(b.options["auto_checkpoint"])
            self.assertEqual(b.stats()["checkpoint"]["auto"]["runs"], 0)
            self.assertFalse(b.stats()["checkpoint"]["auto"]["enabled"])
        for name in self.FOUR:
            self.assertFalse(os.path.exists(os.path.join(other, name)), name)


# ------------------------------------------------- processes and threads

def _child_write(bank, tag):
    bank.update_page("child-" + tag, {"pid": os.getpid()})
    bank.log_error("ChildError", tag)


def _hammer(bank, i):
    """OPS mixed operations of worker i; totals are checked by the parent."""
    for j in range(OPS):
        op = j % 5
        if op == 0:
            bank.merge_page("shared-%d" % (j % 3), {"w%d-%d" % (i, j): j})
        elif op == 1:
            bank.update_page("own-%d-%d" % (i, j), {"i": i, "j": j})
        elif op == 2:
            bank.update_sync_status("success")
        elif op == 3:
            bank.update_sync_status("failed", "worker %d" % i)
        elif j % 2:
            bank.log_error(RuntimeError("worker %d op %d" % (i, j)))
        else:
            bank.log_error("Type%d" % (i % 3), "op %d" % j)
        if j % 50 == 0:
            assert bank.get_page("own-%d-%d" % (i, j - 49)) is not None or j == 0


def _check_hammer(test, bank, workers):
    per = OPS // 5
    s = bank.get_sync_status()
    test.assertEqual(s["success_count"], workers * per)
    test.assertEqual(s["error_count"], workers * per)
    st = bank.get_error_stats()
    test.assertEqual(st["total_errors"], workers * per)
    test.assertEqual(sum(st["patterns"].values()), workers * per)
    test.assertEqual(bank.page_count(), 3 + workers * per)
    keys = set()
    for k in range(3):
        keys |= set(bank.get_page("shared-%d" % k)["properties"])
    test.assertEqual(keys, {"w%d-%d" % (i, j) for i in range(workers)
                            for j in range(0, OPS, 5)})


def _run_procs(ctx, target, args_list, timeout=240):
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    for p in procs:
        if p.exitcode is None:
            p.kill()
    return [p.exitcode for p in procs]


class TestFork(BankTest):
    def test_forked_child_reopens_transparently(self):
        self.bank.update_page("parent", {})
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _child_write(self.bank, "fork")
                code = 0 if self.bank.get_page("parent") is not None else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertEqual(self.bank.get_page("child-fork")["properties"], {"pid": pid})
        self.assertEqual(self.bank.get_error_stats()["patterns"], {"ChildError": 1})
        self.bank.update_page("parent-again", {})  # the parent's handle is intact

    def test_child_walks_after_parent_walked(self):
        """The parent's walk helper thread does not exist in a forked child:
        the child starts its own (it must not wait on the parent's queue)."""
        for pid in ("a", "b", "c"):
            self.bank.update_page(pid, {})
        self.assertEqual(list(self.bank.page_ids()), ["a", "b", "c"])
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = 0 if [p for p, _ in self.bank.iter_pages()] == ["a", "b", "c"] else 2
            finally:
                os._exit(code)
        import time
        for _ in range(1200):  # a bound of 120 s, so that a hang fails the test
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            self.fail("the child's walk hung")
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)

    def test_closed_bank_stays_closed_in_a_child(self):
        self.bank.close()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                self.bank.get_page("p")
            except BankError as exc:
                code = 0 if exc.code is None else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)

    def test_child_retries_a_failed_reopen(self):
        moved = self.path + ".away"
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.rename(self.path, moved)
                open(self.path, "w").close()
                try:
                    self.bank.get_page("p")  # not a directory: reopen fails
                except BankError:
                    os.unlink(self.path)
                    os.rename(moved, self.path)
                    code = 0 if self.bank.get_page("p") is None else 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)

    def test_multiprocessing_fork(self):
        ctx = multiprocessing.get_context("fork")
        codes = _run_procs(ctx, _child_write, [(self.bank, "mp%d" % i) for i in range(3)])
        self.assertEqual(codes, [0, 0, 0])
        self.assertEqual(self.bank.page_count(), 3)

    def test_multiprocessing_spawn_pickles_the_bank(self):
        ctx = multiprocessing.get_context("spawn")
        codes = _run_procs(ctx, _child_write, [(self.bank, "sp%d" % i) for i in range(2)])
        self.assertEqual(codes, [0, 0])
        self.assertEqual(sorted(self.bank.page_ids()), ["child-sp0", "child-sp1"])


def _opener_loop(path, stop):
    while not stop.is_set():
        MemoryBank(path, durability="fast").close()


class TestForkWhileOpening(BankTest):
    def test_fork_while_threads_open_and_close(self):
        """fork() waits for opens/closes in flight, so a child never inherits
        the library's registry mutex locked."""
        stop = threading.Event()
        threads = [threading.Thread(target=_opener_loop, args=(self.path, stop))
                   for _ in range(3)]
        for t in threads:
            t.start()
        ctx = multiprocessing.get_context("fork")
        try:
            for i in range(10):
                codes = _run_procs(ctx, _child_write, [(self.bank, "f%d" % i)], timeout=60)
                self.assertEqual(codes, [0])
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertEqual(self.bank.page_count(), 10)


class TestHammer(BankTest):
    durability = "full"

    def test_8_forked_processes(self):
        ctx = multiprocessing.get_context("fork")
        codes = _run_procs(ctx, _hammer, [(self.bank, i) for i in range(PROCS)])
        self.assertEqual(codes, [0] * PROCS)
        _check_hammer(self, self.bank, PROCS)

    def test_4_spawned_processes(self):
        ctx = multiprocessing.get_context("spawn")
        codes = _run_procs(ctx, _hammer, [(self.bank, i) for i in range(4)])
        self.assertEqual(codes, [0] * 4)
        _check_hammer(self, self.bank, 4)

    def test_8_threads_share_one_object(self):
        failures = []

        def run(i):
            try:
                _hammer(self.bank, i)
            except Exception as exc:  # reported below
                failures.append(repr(exc))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        self.assertEqual(failures, [])
        _check_hammer(self, self.bank, THREADS)


class TestCloseWithThreads(BankTest):
    def test_close_while_threads_read(self):
        self.bank.update_page("p", {"v": 1})
        outcomes = []
        start = threading.Barrier(5)

        def reader():
            start.wait()
            try:
                while True:
                    assert self.bank.get_page("p")["properties"] == {"v": 1}
            except BankError as exc:
                outcomes.append(exc.code)

        threads = [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        start.wait()
        self.bank.close()
        for t in threads:
            t.join(30)
        self.assertEqual(outcomes, [None] * 4)


# ------------------------------------------- exceptions in the middle of calls

class _Timeout(Exception):
    """What the signal handler of the tests below raises."""


def _fill(bank, n):
    bank.update_config({"cache_settings": {"max_entries": 0}})
    for i in range(n):
        bank.update_page("p%05d" % i, {"n": i})


class TestWalkExceptions(BankTest):
    """An exception raised while page_ids()/iter_pages() runs (by a signal
    handler, or inside the per-page collection) stops the walk and reaches
    the caller: a walk never ends short as if complete."""

    N = 3000

    def setUp(self):
        super().setUp()
        _fill(self.bank, self.N)
        self.addCleanup(setattr, membank._bank, "_walk_hook", None)

    def _raise_at(self, k, exc):
        seen = [0]

        def hook(_count):   # _count is per batch; k counts the whole walk
            seen[0] += 1
            if seen[0] == k:
                raise exc
        membank._bank._walk_hook = hook

    def test_exception_at_nth_item_is_raised(self):
        for k in (1, 700, 1024, 1025, 2999, 3000):
            for walk in (self.bank.page_ids, self.bank.iter_pages):
                stop = KeyboardInterrupt("item %d" % k)
                self._raise_at(k, stop)
                got = []
                with self.assertRaises(KeyboardInterrupt) as cm:
                    for item in walk():
                        got.append(item)
                self.assertIs(cm.exception, stop)
                self.assertLess(len(got), k)   # the batch holding item k is not yielded
        membank._bank._walk_hook = None
        self.assertEqual(len(list(self.bank.page_ids())), self.N)
        self.assertEqual(self.bank._inflight, {})

    def test_interrupted_walks_always_raise(self):
        """SIGALRM at spread-out points of 200 walks: every walk the handler
        fired in raised _Timeout; every other walk returned every id."""
        import signal
        fired = []

        def handler(signum, frame):
            fired.append(True)
            raise _Timeout()

        old = signal.signal(signal.SIGALRM, handler)
        self.addCleanup(signal.signal, signal.SIGALRM, old)
        interrupted = complete = 0
        for i in range(200):
            fired.clear()
            ids = None
            try:
                try:
                    signal.setitimer(signal.ITIMER_REAL, 1e-5 * (1 + i % 50))
                    ids = list(self.bank.page_ids())
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except _Timeout:
                interrupted += 1
                self.assertTrue(fired)
                continue
            self.assertFalse(fired, "walk %d: the handler ran, nothing was raised" % i)
            self.assertEqual(len(ids), self.N, "walk %d ended short" % i)
            complete += 1
        self.assertEqual(interrupted + complete, 200)
        self.assertGreater(interrupted, 0)
        # an interrupted batch ends in the helper thread; a new walk queues
        # behind it, so once it is done nothing is in flight
        self.assertEqual(len(list(self.bank.page_ids())), self.N)
        self.assertEqual(self.bank._inflight, {})


class TestInterruptedCalls(BankTest):
    def test_interrupted_calls_leave_nothing_in_flight(self):
        """A handler raising at any point of a call (a 20-60 us timer over
        3000 calls) never leaves a call counted in flight, and close()
        returns."""
        import signal

        def handler(signum, frame):
            raise _Timeout()

        old = signal.signal(signal.SIGALRM, handler)
        self.addCleanup(signal.signal, signal.SIGALRM, old)
        self.bank.update_page("p", {"v": 1})
        hits = 0
        for i in range(3000):
            try:
                try:
                    signal.setitimer(signal.ITIMER_REAL, 1e-5 * (2 + i % 5))
                    if i % 3 == 0:
                        self.bank.get_page("p")
                    elif i % 3 == 1:
                        self.bank.get_sync_status()
                    else:
                        self.bank.page_count()
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except _Timeout:
                hits += 1
        self.assertGreater(hits, 0)
        self.assertEqual(self.bank.get_page("p")["properties"], {"v": 1})
        self.assertEqual(self.bank._inflight, {})
        closer = threading.Thread(target=self.bank.close, daemon=True)
        closer.start()
        closer.join(60)
        self.assertFalse(closer.is_alive(), "close() did not return")
        self.assertTrue(self.bank.closed)
        self.assertIsNone(self.bank._handle)

    def test_open_interrupted_after_mb_open_leaks_no_handle(self):
        """A handler raising the instant mb_open() returns (simulated: a
        wrapper raises after the real call) leaves no handle open: another
        process can restore over the bank."""
        import gc
        out = os.path.join(self.tmp, "snap")
        os.mkdir(out, 0o700)
        self.bank.snapshot(out)
        other = os.path.join(self.tmp, "other")
        MemoryBank(other, durability="fast").close()
        lib = _lib.load()
        real = lib.mb_open

        def interrupted(*args):
            rc = real(*args)
            raise KeyboardInterrupt("after mb_open")

        lib.mb_open = interrupted
        try:
            self.assertRaises(KeyboardInterrupt, MemoryBank, other, durability="fast")
        finally:
            lib.mb_open = real
        gc.collect()
        code = ("import membank, sys\n"
                "membank.MemoryBank.restore(sys.argv[1], sys.argv[2], force=True)\n")
        r = subprocess.run([sys.executable, "-c", code, out, other], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((r.returncode, r.stderr), (0, ""))

    def test_close_waits_with_a_bound_then_last_call_closes(self):
        """A call still running in another thread: close(timeout) returns,
        new calls are refused, and the running call closes the handle when
        it ends."""
        _fill(self.bank, 10)
        inside, release = threading.Event(), threading.Event()

        def hook(count):
            if count == 1:
                inside.set()
                release.wait(60)

        membank._bank._walk_hook = hook
        self.addCleanup(setattr, membank._bank, "_walk_hook", None)
        got = []
        walker = threading.Thread(target=lambda: got.extend(self.bank.page_ids()))
        walker.start()
        self.assertTrue(inside.wait(60))
        self.bank.close(timeout=0.05)
        self.assertTrue(self.bank.closed)
        self.assertIsNotNone(self.bank._handle)     # still in use by the walk
        with self.assertRaises(BankError) as cm:
            self.bank.get_page("p00000")
        self.assertIsNone(cm.exception.code)
        release.set()
        walker.join(60)
        self.assertEqual(len(got), 10)
        self.assertIsNone(self.bank._handle)        # closed by the last call
        self.bank.close()                           # twice is fine


# ------------------------------------------------------- the journal's ABI

class TestAbiLayout(unittest.TestCase):
    """_lib.py's ctypes structs against the compiler's layout of membank.h
    (tests/python/abi_layout.c prints it): a field added, moved or resized
    in C but not in Python would make the library read garbage options."""

    def test_structs_match_the_header(self):
        exe = os.environ.get("MEMBANK_TEST_ABI_LAYOUT")
        if not exe:
            self.skipTest("MEMBANK_TEST_ABI_LAYOUT not set (run by meson test)")
        c = json.loads(subprocess.run([exe], capture_output=True, text=True,
                                      check=True).stdout)
        for cname, py in (("mb_options", _lib.Options),
                          ("mb_cluster_info", _lib.ClusterInfo),
                          ("mb_snapshot_info", _lib.SnapshotInfo)):
            want = c[cname]
            self.assertEqual(ctypes.sizeof(py), want["size"], cname)
            names = [f[0] for f in py._fields_]
            self.assertEqual(names, list(want["fields"]), cname)
            for name, (offset, size) in want["fields"].items():
                field = getattr(py, name)
                self.assertEqual((field.offset, field.size), (offset, size),
                                 "%s.%s" % (cname, name))


# ------------------------------------------- the journal on a cluster (no server)

def unused_port():
    """A TCP port of 127.0.0.1 on which nothing listens (bound, then closed)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_CLUSTER_SUPPORT = []


def cluster_journal_supported():
    """Whether this library implements the journal on a cluster: a stub
    (the API without it) opens a bank with an unreachable URL as a local one."""
    if not _CLUSTER_SUPPORT:
        tmp = tempfile.mkdtemp(prefix="membank-py-probe-")
        try:
            MemoryBank(os.path.join(tmp, "b"), journal_timeout_ms=300,
                       journal="nats://127.0.0.1:%d/PROBE" % unused_port()).close()
            _CLUSTER_SUPPORT.append(False)
        except Error:
            _CLUSTER_SUPPORT.append(True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _CLUSTER_SUPPORT[0]


class TestJournalOptions(BankTest):
    """The journal keywords, refused before anything opens, and a bank with
    a local journal answering the cluster calls."""

    def test_keywords_are_checked_first(self):
        other = os.path.join(self.tmp, "other")
        for kw, exc, words in (
                ({"journal_replicas": 0}, InvalidInput, "journal_replicas must be 1..5, not 0"),
                ({"journal_replicas": 9}, InvalidInput, "journal_replicas must be 1..5, not 9"),
                ({"journal_replicas": True}, TypeError, "journal_replicas"),
                ({"journal_timeout_ms": 99}, InvalidInput, "100..3600000"),
                ({"journal_timeout_ms": 3600001}, InvalidInput, "100..3600000"),
                ({"journal": 5}, TypeError, "journal must be str"),
                ({"journal": "nats://h:1/S\0"}, InvalidInput, "NUL"),
                ({"journal_creds": ""}, InvalidInput, "journal_creds: empty"),
                ({"journal_tls_ca": 3}, TypeError, "journal_tls_ca"),
        ):
            with self.assertRaisesRegex(exc, re.escape(words), msg=kw):
                MemoryBank(other, **kw)
            self.assertFalse(os.path.exists(other), kw)

    def test_local_bank_catch_up_and_fresh_reads(self):
        self.bank.update_page("p", {"v": 1})
        self.bank.catch_up()                        # nothing to do: no error
        self.assertEqual(self.bank.get_page("p", fresh=True)["properties"], {"v": 1})
        self.assertEqual(self.bank.page_count(fresh=True), 1)
        self.assertEqual(self.bank.get_sync_status(fresh=True)["success_count"], 0)
        self.assertEqual(self.bank.get_error_stats(fresh=True)["total_errors"], 0)
        self.assertIn("cache_settings", self.bank.get_config(fresh=True))
        stats = self.bank.stats(fresh=True)
        self.assertIn("cluster", stats)
        self.assertIsNone(stats["cluster"])         # a local journal

    def test_local_bank_has_no_cluster_status(self):
        with self.assertRaisesRegex(InvalidInput, "not bound to a cluster") as cm:
            self.bank.cluster_status()
        self.assertEqual(cm.exception.code, _lib.MB_EINVAL)

    def test_redact(self):
        from membank._bank import redact
        self.assertEqual(redact("nats://u:p@h:1,h:2/S"), "nats://***@h:1,h:2/S")
        self.assertEqual(redact("x tls://tok@h:1/S: refused"), "x tls://***@h:1/S: refused")
        self.assertEqual(redact("nats://u:p@ss@h:1/S"), "nats://***@h:1/S")
        self.assertEqual(redact("nats://h:1/S and a@b"), "nats://h:1/S and a@b")

    def test_options_never_show_credentials(self):
        if not cluster_journal_supported():
            self.skipTest("this libmembank has no journal on a cluster (a stub)")
        secret = "pw-%d-secret" % os.getpid()
        url = "nats://mbuser:%s@127.0.0.1:%d/S" % (secret, unused_port())
        with self.assertRaises(Error) as cm:
            MemoryBank(os.path.join(self.tmp, "c"), journal=url, journal_timeout_ms=500)
        e = cm.exception
        self.assertEqual(e.code, _lib.MB_EUNAVAIL, e)
        for text in (str(e), repr(e), e.message, repr(e.args), pickle.dumps(e).decode("latin-1")):
            self.assertNotIn(secret, text)
            self.assertNotIn("mbuser:", text)

    def test_bad_url_names_the_part(self):
        if not cluster_journal_supported():
            self.skipTest("this libmembank has no journal on a cluster (a stub)")
        secret = "pw-%d-secret" % os.getpid()
        for url, part in (("http://u:%s@127.0.0.1:4222/S" % secret, "scheme"),
                          ("nats://u:%s@127.0.0.1:99999/S" % secret, "port"),
                          ("nats://u:%s@127.0.0.1:4222" % secret, "STREAM"),
                          ("nats://u:%s@127.0.0.1:4222/a.b" % secret, "stream name")):
            path = os.path.join(self.tmp, "bad")
            with self.assertRaises(InvalidInput, msg=part) as cm:
                MemoryBank(path, journal=url)
            self.assertIn("journal URL", str(cm.exception))
            self.assertIn(part, str(cm.exception))
            self.assertNotIn(secret, str(cm.exception))
            self.assertFalse(os.path.exists(os.path.join(path, "membank.json")), url)


# ------------------------------------------------------------------ runner

def main():
    module = sys.modules[__name__]
    loader = unittest.defaultTestLoader
    if len(sys.argv) > 1:  # e.g. TestFork or TestFork.test_multiprocessing_fork
        suite = loader.loadTestsFromNames(sys.argv[1:], module)
    else:
        suite = loader.loadTestsFromModule(module)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed or result.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
