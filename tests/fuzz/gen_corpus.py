#!/usr/bin/env python3
"""Write the seed corpus of fuzz_journal from the format documented at the
top of journal/segment.c (an independent implementation of it, so a seed
that the C reader rejects shows a mismatch between the doc and the code).

Usage: tests/fuzz/gen_corpus.py [OUTDIR]   (default tests/fuzz/corpus/journal)
Input layout of the target: byte 0 bit 0 clear -> bytes 1.. are segment 1;
set -> byte 1 names a second segment (first seq 2 + byte 1) and the rest is
split in half between the two segments.  Bit 1 set: the target recomputes
the CRCs (the "fixcrc-" seeds).
"""
import os
import struct
import sys

def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

def header(first, version=1, magic=b"MBJRNL\r\n"):
    h = magic + struct.pack("<IIQI", version, 0, first, 0)
    return h + struct.pack("<I", crc32c(h))

def record(seq, payload, rtype=1, ts=1764000000000000):
    body = struct.pack("<QBq", seq, rtype, ts) + payload
    ln = struct.pack("<I", len(payload))
    return ln + struct.pack("<I", crc32c(body, crc32c(ln))) + body

def segment(first, n, pad=64, size=lambda s: (s * 37) % 90):
    out = header(first)
    for seq in range(first, first + n):
        out += record(seq, bytes((seq * 7 + i) & 0xFF for i in range(size(seq))))
    return out + bytes(pad)

def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "journal")
    os.makedirs(outdir, exist_ok=True)
    good = segment(1, 6)
    seeds = {
        "empty-header": b"\0" + header(1) + bytes(40),
        "valid-6": b"\0" + good,
        "valid-1-empty-payload": b"\0" + header(1) + record(1, b"") + bytes(25),
        "torn-tail": b"\0" + good[:-64 - 20],
        "garbage-tail": b"\0" + good[:-64] + b"\x17garbage!" * 4,
        "crc-flip-middle": b"\0" + good[:100] + bytes([good[100] ^ 0x10]) + good[101:],
        "zeroed-middle": b"\0" + good[:60] + bytes(30) + good[90:],
        "bad-magic": b"\0" + header(1, magic=b"MBJRNX\r\n") + good[32:],
        "newer-version": b"\0" + header(1, version=2) + good[32:],
        "seq-gap": b"\0" + header(1) + record(1, b"a") + record(3, b"b") + bytes(30),
        "huge-length": b"\0" + header(1) + struct.pack("<I", 0xFFFFFFF0) + bytes(60),
        "crashed-roll": b"\0" + bytes(100),
    }
    # two segments: 1..4 then 5..7 (byte 1 = 3 -> second segment named 5)
    a, b = segment(1, 4), segment(5, 3)
    n = max(len(a), len(b))
    a, b = a + bytes(n - len(a)), b + bytes(n - len(b))
    seeds["two-segments"] = b"\x01\x03" + a + b
    seeds["two-segments-gap"] = b"\x01\x04" + a + b
    seeds["fixcrc-seq-gap"] = b"\x02" + header(1) + record(1, b"a") + record(5, b"b") + bytes(30)
    seeds["fixcrc-two-segments"] = b"\x03\x03" + a + b
    for name, data in seeds.items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)

if __name__ == "__main__":
    main()
