#!/usr/bin/env python3
"""The store is readable by independent tools (issue 14).

Writer processes (the membank package) fill a bank while this process reads
its LMDB environment, <bank>/store, with the Debian packages python3-lmdb
and python3-msgpack only: read-only, every named database, every value
decoded with msgpack.unpackb (strict: one document, no extra data) and
checked against the shapes README.md documents ("The store's databases").
A round of reads runs while every writer is stopped halfway (its handle
open, half its work done), more run while they go on, and a last one after
they stop, when the pages must equal what the writers wrote and the counters
what they did.

Those packages are importable by Debian's /usr/bin/python3 only: run under
another python3 (a pyenv one on PATH), the test runs itself again with
/usr/bin/python3 when that one has them, and is skipped (exit 77) with a
message saying what to install when none has.

Run by meson (suite python, test python-store-format) with MEMBANK_LIBRARY
and PYTHONPATH set.
"""
import os
import subprocess
import sys

SYSTEM_PYTHON = "/usr/bin/python3"
NEEDED = "import lmdb, msgpack"


def _ensure_modules():
    try:
        import lmdb  # noqa: F401
        import msgpack  # noqa: F401
        return
    except ImportError as exc:
        why = str(exc)
    if (os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON)
            and os.access(SYSTEM_PYTHON, os.X_OK)
            and subprocess.run([SYSTEM_PYTHON, "-c", NEEDED],
                               stderr=subprocess.DEVNULL).returncode == 0):
        sys.stdout.flush()
        os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON, os.path.abspath(__file__)] + sys.argv[1:])
    print("SKIP: %s (%s), and %s cannot import them either: "
          "apt-get install python3-lmdb python3-msgpack" % (why, sys.executable, SYSTEM_PYTHON))
    sys.exit(77)


_ensure_modules()

import multiprocessing  # noqa: E402
import shutil  # noqa: E402
import struct  # noqa: E402
import tempfile  # noqa: E402
import unittest  # noqa: E402

import lmdb  # noqa: E402
import msgpack  # noqa: E402

from membank import MemoryBank  # noqa: E402

WRITERS = 3
PAGES = 300                     # per writer
DATABASES = ("pages", "ptime", "meta", "errtypes", "synchist", "errhist")
META_KEYS = {"format", "sync", "errors", "pages", "config", "config.extra",
             "removed", "jend"}


def props_of(w, i):
    """What writer w puts as page i."""
    return {"title": "Page %d of writer %d" % (i, w), "w": w, "i": i, "neg": -i,
            "big": 2 ** 40 + i, "f": i + 0.5, "ok": i % 2 == 0, "none": None,
            "tags": ["a", "é", i], "nested": {"d": {"e": [1.5, -2]}}}


def page_id(w, i):
    return "w%d-%04d" % (w, i)


def step(bank, w, i):
    """Writer w's i-th step: a put, and now and then a merge, a delete, a
    sync, an error logged or resolved, a config update."""
    bank.update_page(page_id(w, i), props_of(w, i))
    if i % 10 == 3:
        bank.merge_page(page_id(w, i), {"merged": w, "neg": None})
    if i % 25 == 7:
        bank.delete_page(page_id(w, i - 5))
    if i % 20 == 0:
        bank.update_sync_status("success" if i % 40 else "failed",
                                None if i % 40 else "HTTP 502")
    if i % 30 == 1:
        bank.log_error("rate_limited" if w else "timeout", "HTTP 429 at step %d" % i)
    if i % 90 == 2:
        bank.resolve_error("rate_limited" if w else "timeout", "backed off")
    if w == 0 and i % 50 == 5:
        bank.update_config({"notion_settings": {"retry_attempts": i % 7}})


def expected_pages():
    """Every page the writers leave, as its properties."""
    pages = {}
    for w in range(WRITERS):
        for i in range(PAGES):
            p = props_of(w, i)
            if i % 10 == 3:
                p = dict(p, merged=w)
                del p["neg"]
            pages[page_id(w, i)] = p
            if i % 25 == 7:
                pages.pop(page_id(w, i - 5), None)
    return pages


def expected_counts():
    syncs = [i for i in range(PAGES) if i % 20 == 0]
    return {"successes": WRITERS * sum(1 for i in syncs if i % 40),
            "errors": WRITERS * sum(1 for i in syncs if not i % 40),
            "logged": WRITERS * sum(1 for i in range(PAGES) if i % 30 == 1)}


def writer(path, w, half, go):
    bank = MemoryBank(path, durability="fast")
    for i in range(PAGES):
        if i == PAGES // 2:
            half.release()          # stopped halfway, the bank open
            if not go.wait(300):
                os._exit(3)
        step(bank, w, i)
    bank.close()


# ------------------------------------------------------------ the reader

def unpack(value, where):
    """One msgpack document, nothing after it (msgpack raises ExtraData)."""
    try:
        return msgpack.unpackb(value, raw=False, strict_map_key=True)
    except Exception as exc:  # noqa: BLE001: the message says which value
        raise AssertionError("%s: not one msgpack document (%s: %s): %r"
                             % (where, type(exc).__name__, exc, bytes(value[:64])))


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def time_or_nil(v):
    return v is None or is_int(v)


def str_or_nil(v):
    return v is None or isinstance(v, str)


META_SHAPES = {
    "format": lambda v: v == 2,
    "sync": lambda v: (isinstance(v, list) and len(v) == 6 and str_or_nil(v[0])
                       and time_or_nil(v[1]) and time_or_nil(v[2])
                       and all(is_int(x) and x >= 0 for x in v[3:])),
    "errors": lambda v: (isinstance(v, list) and len(v) == 7
                         and all(is_int(x) and x >= 0 for x in v[:3]) and time_or_nil(v[3])
                         and str_or_nil(v[4]) and str_or_nil(v[5])
                         and is_int(v[6]) and v[6] >= 0),
    "pages": lambda v: isinstance(v, list) and len(v) == 1 and time_or_nil(v[0]),
    "config": lambda v: (isinstance(v, list) and len(v) == 8 and isinstance(v[0], str)
                         and is_int(v[1]) and isinstance(v[2], (int, float))
                         and isinstance(v[3], str) and isinstance(v[4], bool)
                         and is_int(v[5]) and is_int(v[6]) and time_or_nil(v[7])),
    "config.extra": lambda v: isinstance(v, dict),
    "removed": lambda v: (isinstance(v, list) and len(v) == 2
                          and all(is_int(x) and x >= 0 for x in v)),
    "jend": lambda v: (isinstance(v, list) and len(v) == 4
                       and all(is_int(x) and x >= 0 for x in v[:3]) and time_or_nil(v[3])),
}


def read_store(store):
    """Every database of the store in one read transaction, decoded and
    checked; {"pages": {id: props}, "times": {id: us}, "meta": {..}, ...}."""
    env = lmdb.open(store, readonly=True, lock=True, max_dbs=len(DATABASES), subdir=True,
                    create=False)
    try:
        dbs = {name: env.open_db(name.encode(), create=False) for name in DATABASES}
        with env.begin(buffers=False) as txn:
            raw = {name: list(txn.cursor(db=dbi)) for name, dbi in dbs.items()}
    finally:
        env.close()
    out = {"pages": {}, "times": {}, "meta": {}, "errtypes": {}, "synchist": [],
           "errhist": [], "ptime": []}
    for k, v in raw["pages"]:
        pid = k.decode("utf-8")
        doc = unpack(v, "pages[%s]" % pid)
        assert isinstance(doc, list) and len(doc) == 2, ("pages", pid, doc)
        assert is_int(doc[0]) and isinstance(doc[1], dict), ("pages", pid, doc)
        out["times"][pid], out["pages"][pid] = doc
    for k, v in raw["ptime"]:
        assert len(k) > 8, ("ptime key", k)
        assert unpack(v, "ptime") is None, ("ptime value", v)
        out["ptime"].append((struct.unpack(">Q", k[:8])[0], k[8:].decode("utf-8")))
    for k, v in raw["meta"]:
        name = k.decode("utf-8")
        assert name in META_KEYS, ("meta key not documented", name)
        doc = unpack(v, "meta[%s]" % name)
        assert META_SHAPES[name](doc), ("meta", name, doc)
        out["meta"][name] = doc
    for k, v in raw["errtypes"]:
        doc = unpack(v, "errtypes")
        assert (isinstance(doc, list) and len(doc) == 5 and is_int(doc[0]) and is_int(doc[1])
                and str_or_nil(doc[2]) and time_or_nil(doc[3])
                and time_or_nil(doc[4])), ("errtypes", k, doc)
        out["errtypes"][k.decode("utf-8")] = doc
    for name, third in (("synchist", str_or_nil), ("errhist", lambda x: isinstance(x, str))):
        for k, v in raw[name]:
            assert len(k) == 8, (name, "key", k)
            doc = unpack(v, name)
            assert (isinstance(doc, list) and len(doc) == 3 and is_int(doc[0])
                    and isinstance(doc[1], str) and third(doc[2])), (name, doc)
            out[name].append(doc)
    # the time index is the pages' own times, in the same transaction
    assert sorted(out["ptime"]) == sorted((t, p) for p, t in out["times"].items()), \
        "ptime differs from the pages' times"
    return out


class StoreFormat(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="membank-storefmt-")
        self.path = os.path.join(self.tmp, "bank")
        self.store = os.path.join(self.path, "store")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_live_store_read_by_lmdb_and_msgpack(self):
        bank = MemoryBank(self.path, durability="fast")
        # the time index exists only while eviction or expiry is on
        bank.update_config({"cache_settings": {"max_entries": 1000000}})
        ctx = multiprocessing.get_context("fork")
        half, go = ctx.Semaphore(0), ctx.Event()
        procs = [ctx.Process(target=writer, args=(self.path, w, half, go))
                 for w in range(WRITERS)]
        for p in procs:
            p.start()
        try:
            for _ in procs:
                self.assertTrue(half.acquire(timeout=300), "a writer never got halfway")
            mid = read_store(self.store)     # every writer stopped halfway, open
            self.assertEqual(mid["meta"]["format"], 2)
            self.assertGreaterEqual(len(mid["pages"]), WRITERS * (PAGES // 2 - 10))
            go.set()
            rounds = 0
            while any(p.is_alive() for p in procs) or rounds == 0:
                read_store(self.store)       # while they write
                rounds += 1
            for p in procs:
                p.join(300)
                self.assertEqual(p.exitcode, 0)
        finally:
            go.set()
            for p in procs:
                if p.is_alive():
                    p.kill()
                    p.join()
        final = read_store(self.store)
        print("%d read rounds while the writers ran" % rounds)

        self.assertEqual(final["pages"], expected_pages())
        counts = expected_counts()
        sync, errors = final["meta"]["sync"], final["meta"]["errors"]
        self.assertEqual((sync[3], sync[4]), (counts["errors"], counts["successes"]))
        self.assertEqual(errors[0], counts["logged"])
        self.assertEqual(final["meta"]["jend"][2], bank.journal_last_seq())
        self.assertEqual(final["meta"]["format"], 2)
        # the store says what the library says
        for pid, props in list(final["pages"].items())[:50]:
            self.assertEqual(bank.get_page(pid)["properties"], props)
        self.assertEqual(bank.get_config()["notion_settings"]["retry_attempts"],
                         final["meta"]["config"][1])
        self.assertEqual(len(final["synchist"]), len(bank.get_sync_status()["sync_history"]))
        bank.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
