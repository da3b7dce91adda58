#!/usr/bin/env python3
"""Per-call cost of the Python binding against the C API.

Times MemoryBank.update_page / get_page in Python and the same calls
(mb_page_put / mb_page_get, same 100 ids, same JSON) in a C loop, the
program tests/python/bench_c_calls built by meson, each on a fresh bank, and
prints ops/s of both and the microseconds the binding adds per call; a
third loop calls the C functions through ctypes directly (no JSON, no
checks), to show how much of that is ctypes' own cost.

    MEMBANK_LIBRARY=build/libshm/libmembank.so PYTHONPATH=python \\
        python3 python/bench_binding.py -n 20000 --durability fast \\
        --c-loop build/tests/python/bench_c_calls

Without --c-loop the newest build*/tests/python/bench_c_calls is used.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import membank  # noqa: E402

PAGES = 100
PROPS = {"title": "Benchmark page", "status": "In progress", "tags": ["a", "b", "c"],
         "count": 42}


CLOCK = time.perf_counter  # --clock cpu: time.process_time


def python_loop(path, n, durability):
    ids = ["bench-%03d" % (i % PAGES) for i in range(PAGES)]
    out = {}
    with membank.MemoryBank(path, durability=durability) as bank:
        t0 = CLOCK()
        for i in range(n):
            bank.update_page(ids[i % PAGES], PROPS)
        out["update_page"] = n / (CLOCK() - t0)
        t0 = CLOCK()
        for i in range(n):
            bank.get_page(ids[i % PAGES])
        out["get_page"] = n / (CLOCK() - t0)
    return out


def raw_ctypes_loop(path, n, durability):
    """The same calls through ctypes directly (pre-encoded bytes, no JSON,
    no checks): separates ctypes' own cost from the wrapper's."""
    import ctypes
    import json
    ids = [("bench-%03d" % (i % PAGES)).encode() for i in range(PAGES)]
    body = json.dumps(PROPS, separators=(",", ":")).encode()
    out = {}
    with membank.MemoryBank(path, durability=durability) as bank:
        lib, h = bank._lib, bank._handle
        put, get, free = lib.mb_page_put, lib.mb_page_get, lib.mb_free
        t0 = CLOCK()
        for i in range(n):
            put(h, ids[i % PAGES], body, len(body))
        out["update_page"] = n / (CLOCK() - t0)
        buf, size = ctypes.POINTER(ctypes.c_char)(), ctypes.c_size_t()
        pbuf, psize = ctypes.byref(buf), ctypes.byref(size)
        t0 = CLOCK()
        for i in range(n):
            get(h, ids[i % PAGES], pbuf, psize)
            free(buf)
        out["get_page"] = n / (CLOCK() - t0)
    return out


def find_c_loop():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = glob.glob(os.path.join(root, "build*", "tests", "python", "bench_c_calls"))
    found.sort(key=os.path.getmtime, reverse=True)
    return found[0] if found else None


def c_loop(exe, path, n, durability):
    env = dict(os.environ)
    lib = membank.library_path()
    env["LD_LIBRARY_PATH"] = os.path.dirname(lib)  # the same library as Python's
    clock = "cpu" if CLOCK is time.process_time else "wall"
    r = subprocess.run([exe, path, str(n), durability, clock], capture_output=True,
                       text=True, env=env, check=True)
    out = {}
    for line in r.stdout.splitlines():
        f = line.split()
        out[{"mb_page_put": "update_page", "mb_page_get": "get_page"}[f[1]]] = float(f[6])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=20000, help="calls per operation")
    ap.add_argument("--durability", choices=["fast", "full"], default="fast")
    ap.add_argument("--c-loop", help="path of bench_c_calls")
    ap.add_argument("--rounds", type=int, default=3, help="best of R rounds")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: process CPU time, steadier on a busy machine")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    exe = args.c_loop or find_c_loop()
    tmp = tempfile.mkdtemp(prefix="membank-bench-")
    best_py, best_raw, best_c = {}, {}, {}

    def keep(best, got):
        for k, v in got.items():
            best[k] = max(best.get(k, 0), v)

    try:
        for r in range(args.rounds):
            keep(best_py, python_loop(os.path.join(tmp, "py%d" % r), args.n, args.durability))
            keep(best_raw, raw_ctypes_loop(os.path.join(tmp, "raw%d" % r), args.n,
                                           args.durability))
            if exe:
                keep(best_c, c_loop(exe, os.path.join(tmp, "c%d" % r), args.n,
                                    args.durability))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("library: %s  durability: %s  n: %d  best of %d  clock: %s"
          % (membank.library_path(), args.durability, args.n, args.rounds, args.clock))
    print("%-12s %13s %13s %10s %12s %12s" % ("call", "MemoryBank/s", "raw ctypes/s",
                                              "C ops/s", "+us binding", "+us ctypes"))
    for k in ("update_page", "get_page"):
        c = best_c.get(k)
        print("%-12s %13.0f %13.0f %10s %12s %12s" % (
            k, best_py[k], best_raw[k], "%.0f" % c if c else "-",
            "%.2f" % ((1 / best_py[k] - 1 / c) * 1e6) if c else "-",
            "%.2f" % ((1 / best_raw[k] - 1 / c) * 1e6) if c else "-"))
    if not exe:
        print("(no bench_c_calls found: build it with ninja -C BUILD "
              "tests/python/bench_c_calls)")


if __name__ == "__main__":
    main()
