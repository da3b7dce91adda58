"""Tests of the membank Python package (python/membank) over libmembank.

Run by `meson test --suite python`, which sets MEMBANK_LIBRARY and PYTHONPATH;
by hand:
    MEMBANK_LIBRARY=build/libshm/libmembank.so PYTHONPATH=python \
        python3 tests/python/test_membank.py
The last line of the output is "N passed, F failed, S skipped"; the exit
status is non-zero when anything failed.
"""

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

    def test_history_limit(self):
        with MemoryBank(os.path.join(self.tmp, "h"), durability="fast", history_limit=3) as b:
            for i in range(5):
                b.update_sync_status("s%d" % i)
            self.assertEqual([h["status"] for h in b.get_sync_status()["sync_history"]],
                             ["s2", "s3", "s4"])

    def test_empty_status_is_invalid(self):
        with self.assertRaisesRegex(InvalidInput, "status"):
            self.bank.update_sync_status("")


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
        self.bank.log_error("Timeout")
        st = self.bank.get_error_stats()
        self.assertEqual(st["patterns"], {"RateLimited": 2, "Timeout": 1})
        self.assertEqual(st["last_error"]["message"], "")

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

    def test_nul_in_string_message_is_invalid(self):
        with self.assertRaisesRegex(InvalidInput, "NUL"):
            self.bank.log_error("T", "a\0b")

    def test_long_string_message_is_invalid(self):
        with self.assertRaisesRegex(InvalidInput, "message"):
            self.bank.log_error("T", "x" * 5000)
        self.assertEqual(self.bank.get_error_stats()["total_errors"], 0)

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


# ------------------------------------------------------- library discovery

def _run_python(code, env):
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)


class TestLibrarySearch(unittest.TestCase):
    def test_env_var_is_the_only_candidate_when_set(self):
        self.assertEqual(_lib.candidates({"MEMBANK_LIBRARY": "/x/libmembank.so"}),
                         ["/x/libmembank.so"])

    def test_build_tree_newest_first_then_system(self):
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
            self.assertEqual(got[:2], [paths[1], paths[0]])
            self.assertEqual(got[-1], "libmembank.so.0")

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
