#!/usr/bin/env python3
"""Per-call cost of the Python binding against the C API.

Times MemoryBank.update_page / get_page in Python and the same calls
(mb_page_put / mb_page_get, same 100 ids, same JSON) in a C loop, the
program tests/python/bench_c_calls built by meson, each on a fresh bank, and
prints ops/s of both and the microseconds the binding adds per call.

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


def python_loop(path, n, durability):
    ids = ["bench-%03d" % (i % PAGES) for i in range(PAGES)]
    out = {}
    with membank.MemoryBank(path, durability=durability) as bank:
        t0 = time.perf_counter()
        for i in range(n):
            bank.update_page(ids[i % PAGES], PROPS)
        out["update_page"] = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(n):
            bank.get_page(ids[i % PAGES])
        out["get_page"] = n / (time.perf_counter() - t0)
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
    r = subprocess.run([exe, path, str(n), durability], capture_output=True, text=True,
                       env=env, check=True)
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
    args = ap.parse_args()
    exe = args.c_loop or find_c_loop()
    tmp = tempfile.mkdtemp(prefix="membank-bench-")
    best_py, best_c = {}, {}
    try:
        for r in range(args.rounds):
            got = python_loop(os.path.join(tmp, "py%d" % r), args.n, args.durability)
            for k, v in got.items():
                best_py[k] = max(best_py.get(k, 0), v)
            if exe:
                got = c_loop(exe, os.path.join(tmp, "c%d" % r), args.n, args.durability)
                for k, v in got.items():
                    best_c[k] = max(best_c.get(k, 0), v)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("library: %s  durability: %s  n: %d  best of %d"
          % (membank.library_path(), args.durability, args.n, args.rounds))
    print("%-12s %12s %12s %14s" % ("call", "python ops/s", "C ops/s", "binding us/call"))
    for k in ("update_page", "get_page"):
        if k in best_c:
            extra = (1 / best_py[k] - 1 / best_c[k]) * 1e6
            print("%-12s %12.0f %12.0f %14.2f" % (k, best_py[k], best_c[k], extra))
        else:
            print("%-12s %12.0f %12s %14s" % (k, best_py[k], "-", "-"))
    if not exe:
        print("(no bench_c_calls found: build it with ninja -C BUILD "
              "tests/python/bench_c_calls)")


if __name__ == "__main__":
    main()
