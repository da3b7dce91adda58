#!/usr/bin/env python3
"""The original design, as a peer: one JSON file (notion_pages.json of the
spec) rewritten whole under flock by every operation, in Python as the
original was.

    jsonfile.py init FILE PAGES VALUES       write FILE with PAGES pages
    jsonfile.py run FILE PAGES VALUES W P S  P processes for S seconds

W is W1 (upsert: lock exclusive, read the whole file, set one page, write the
whole file back) or W2 (get: lock shared, read the whole file, return one
page as JSON text).  VALUES holds the property variants, one JSON object a
line (`bench-<system> --values`): the same bytes the C systems write.  Like
the original, nothing is fsync'ed.  Prints one JSON line in the format of
the C driver (bench/driver.c), with system "jsonfile-<PAGES>".
"""
import array
import datetime
import fcntl
import json
import os
import random
import sys
import tempfile
import time


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def key(k):
    return "page-%07d" % k


def init(path, pages, values):
    ts = now()
    doc = {"pages": {key(k): {"properties": values[k % len(values)], "last_updated": ts}
                     for k in range(pages)},
           "last_updated": ts,
           "metadata": {"total_pages": pages, "last_sync": None}}
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)


def upsert(path, page_id, props):
    with open(path, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        doc = json.load(f)
        ts = now()
        doc["pages"][page_id] = {"properties": props, "last_updated": ts}
        doc["last_updated"] = ts
        doc["metadata"]["total_pages"] = len(doc["pages"])
        f.seek(0)
        f.truncate()
        json.dump(doc, f, indent=2)
        f.flush()   # written before the lock goes with the close


def get(path, page_id):
    with open(path, "r") as f:
        fcntl.flock(f, fcntl.LOCK_SH)
        doc = json.load(f)
    page = doc["pages"].get(page_id)
    if page is None:
        raise KeyError(page_id)
    return json.dumps(page)


def worker(path, pages, values, wl, seconds, ready_w, go_r, out):
    os.write(ready_w, b"1")
    os.read(go_r, 1)
    rng = random.Random(os.getpid())
    lat = array.array("Q")
    errors = 0
    n = 0
    start = time.monotonic_ns()
    end = start
    deadline = start + int(seconds * 1e9)
    while end < deadline or n == 0:
        page_id = key(rng.randrange(pages))
        t0 = time.monotonic_ns()
        try:
            if wl == "W1":
                upsert(path, page_id, values[n % len(values)])
            else:
                get(path, page_id)
        except Exception as e:   # report, stop this worker
            print("jsonfile: %s" % e, file=sys.stderr)
            errors += 1
            break
        end = time.monotonic_ns()
        lat.append(end - t0)
        n += 1
    with open(out, "wb") as f:
        f.write(array.array("Q", [n, errors, end - start]).tobytes())
        f.write(lat.tobytes())


def pct(sorted_lat, q):
    if not sorted_lat:
        return 0.0
    return sorted_lat[min(len(sorted_lat) - 1, int(q * len(sorted_lat)))] / 1000.0


def run(path, pages, values, wl, procs, seconds):
    tmp = tempfile.mkdtemp(prefix="jsonfile-", dir=os.path.dirname(path))
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pids = []
    for i in range(procs):
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            os.close(go_w)
            code = 0
            try:
                worker(path, pages, values, wl, seconds, ready_w, go_r,
                       os.path.join(tmp, "lat-%d" % i))
            except BaseException:
                code = 1
            os._exit(code)
        pids.append(pid)
    os.close(ready_w)
    for _ in pids:
        os.read(ready_r, 1)
    os.close(go_w)   # the barrier
    failed = sum(1 for p in pids if os.waitpid(p, 0)[1] != 0)
    ops = errors = elapsed = 0
    lat = []
    for i in range(procs):
        name = os.path.join(tmp, "lat-%d" % i)
        try:
            with open(name, "rb") as f:
                raw = f.read()
            os.unlink(name)
        except OSError:
            failed += 1
            continue
        hdr = array.array("Q", raw[:24])
        ops += hdr[0]
        errors += hdr[1]
        elapsed = max(elapsed, hdr[2])
        lat.extend(array.array("Q", raw[24:]))
    os.rmdir(tmp)
    lat.sort()
    secs = elapsed / 1e9
    print(json.dumps({
        "system": "jsonfile-%d" % pages, "workload": wl, "durability": "fast",
        "procs": procs, "ops": ops, "seconds": round(secs, 4),
        "ops_per_s": round(ops / secs, 2) if secs > 0 else 0.0,
        "p50_us": pct(lat, 0.5), "p99_us": pct(lat, 0.99), "p999_us": pct(lat, 0.999),
        "errors": errors + failed}), flush=True)
    return 0 if ops and not errors and not failed else 1


def main(argv):
    if len(argv) >= 4:
        with open(argv[3]) as f:
            values = [json.loads(line) for line in f if line.strip()]
    if len(argv) == 4 and argv[0] == "init":
        init(argv[1], int(argv[2]), values)
        return 0
    if len(argv) == 7 and argv[0] == "run" and argv[4] in ("W1", "W2"):
        return run(argv[1], int(argv[2]), values, argv[4], int(argv[5]), float(argv[6]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
