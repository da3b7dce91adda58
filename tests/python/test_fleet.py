#!/usr/bin/env python3
"""A sync integration as a new user writes it: 8 worker processes that use
only the original MemoryBank API (the spec's calls), with the defaults,
pushing 12,000 pages and logging raised exceptions of several kinds, one
shaped like the Notion SDK's APIResponseError.

Afterwards: every page is there, the counts and patterns are exact, the
four files exist and parse without any snapshot call (the automatic
checkpoint wrote them), they agree with the live bank up to what was written
after them, and the stats show no page evicted or expired.

Run by meson (suite python) with MEMBANK_LIBRARY and PYTHONPATH set.
"""
import enum
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import unittest

from membank import MemoryBank

WORKERS = 8
PAGES_PER_WORKER = 1500          # 12,000 pages in all
FOUR = ("notion_pages.json", "sync_status.json", "error_log.json", "config_cache.json")


class APIErrorCode(str, enum.Enum):
    """As notion_client.APIErrorCode: members of a str Enum."""
    RateLimited = "rate_limited"
    ObjectNotFound = "object_not_found"


class APIResponseError(Exception):
    """Shaped like notion_client.APIResponseError: code, status, message."""

    def __init__(self, code, status, message):
        super().__init__(message)
        self.code = code
        self.status = status


def worker(path, w, ready):
    """One sync worker: the spec's usage block, over and over."""
    ready.wait()
    bank = MemoryBank(path)
    for i in range(PAGES_PER_WORKER):
        page_id = "w%d-p%05d" % (w, i)
        bank.update_page(page_id, {"title": "Page %d of %d" % (i, w), "n": i, "ok": True})
        if i % 100 == 0:
            try:
                raise APIResponseError(APIErrorCode.RateLimited, 429, "rate limited")
            except APIResponseError as exc:
                bank.log_error(exc)
                bank.update_sync_status("failed", exc)
        elif i % 150 == 1:
            try:
                raise TimeoutError("no answer in 30 s")
            except TimeoutError as exc:
                bank.log_error(exc)
        else:
            bank.update_sync_status("success", None)
    bank.close()


class Fleet(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="membank-fleet-")
        self.path = os.path.join(self.tmp, "memory-bank")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_eight_workers_original_api(self):
        ctx = multiprocessing.get_context("fork")
        ready = ctx.Event()
        procs = [ctx.Process(target=worker, args=(self.path, w, ready)) for w in range(WORKERS)]
        for p in procs:
            p.start()
        ready.set()
        for p in procs:
            p.join(600)
            self.assertEqual(p.exitcode, 0)

        bank = MemoryBank(self.path)
        total = WORKERS * PAGES_PER_WORKER
        # every page is there: the defaults evict and expire nothing
        self.assertEqual(bank.page_count(), total)
        self.assertEqual(sum(1 for _ in bank.page_ids()), total)
        for w in range(WORKERS):
            for i in (0, PAGES_PER_WORKER // 2, PAGES_PER_WORKER - 1):
                page = bank.get_page("w%d-p%05d" % (w, i))
                self.assertIsNotNone(page, (w, i))
                self.assertEqual(page["properties"]["n"], i)
        # the counts and patterns are exact
        rate = WORKERS * len(range(0, PAGES_PER_WORKER, 100))
        timeouts = WORKERS * sum(1 for i in range(PAGES_PER_WORKER)
                                 if i % 100 and i % 150 == 1)
        stats = bank.get_error_stats()
        self.assertEqual(stats["patterns"], {"rate_limited": rate, "TimeoutError": timeouts})
        self.assertEqual(stats["total_errors"], rate + timeouts)
        log = bank.get_error_stats()
        sync = bank.get_sync_status()
        self.assertEqual(sync["error_count"], rate)
        self.assertEqual(sync["success_count"], total - rate - timeouts)
        # nothing was evicted or expired
        st = bank.stats()
        for key in ("pages_evicted", "pages_expired", "pages_purged"):
            self.assertEqual(st.get(key, 0), 0, key)
        # the four files exist without any snapshot call, and parse
        docs = {}
        for name in FOUR:
            p = os.path.join(self.path, name)
            self.assertTrue(os.path.exists(p), name + " was not written by the automatic "
                            "checkpoint")
            with open(p) as f:
                docs[name] = json.load(f)
        pages = docs["notion_pages.json"]
        self.assertEqual(pages["metadata"]["total_pages"], len(pages["pages"]))
        self.assertGreater(len(pages["pages"]), 0)
        for pid, page in pages["pages"].items():   # what the files hold is what was written
            w, i = pid[1:].split("-p")
            self.assertEqual(page["properties"], {"title": "Page %d of %s" % (int(i), w),
                                                  "n": int(i), "ok": True})
        self.assertLessEqual(docs["error_log.json"]["error_stats"]["total_errors"],
                             rate + timeouts)
        bank.close()


def main():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    res = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(res.failures) + len(res.errors)
    print("%d passed, %d failed" % (res.testsRun - failed - len(res.skipped), failed))
    sys.exit(0 if res.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
