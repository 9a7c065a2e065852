#!/usr/bin/env python3
"""Paired A/B of two `graphbox serve` binaries on the raw export that
`backup_bench.py` uses as its baseline: one data directory with one mailbox
of N seeded items; each round starts binary A then B (B then A in odd
rounds) on it and times two exports of every item (20-id exportItems
requests over 4 keep-alive connections, answers JSON- and base64-decoded).
Printed per binary: median items/s and median server CPU per export.

    python3 tests/bench/export_ab.py --bins /tmp/old/graphbox,target/release/graphbox --rounds 4
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backup_bench as bb  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bins", required=True, help="two comma-separated graphbox binaries")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--items", type=int, default=10000)
    a = ap.parse_args()
    bins = [os.path.abspath(b) for b in a.bins.split(",")]
    if len(bins) != 2:
        raise SystemExit("give two binaries")
    d = tempfile.mkdtemp(prefix="graphbox-export-ab-")
    try:
        w = bb.Setup(bins[0], d, a.items)
        w.p.terminate()
        w.p.wait()
        ids = [i for _, i, _ in w.items]
        batches = [ids[i:i + 20] for i in range(0, len(ids), 20)]
        rate, cpu = [[], []], [[], []]
        for r in range(a.rounds):
            for k in (0, 1) if r % 2 == 0 else (1, 0):
                p, base = bb.start(bins[k], d)
                try:
                    for _ in range(2):
                        s0 = bb.server_cpu(p.pid)

                        def exporter(j):
                            c = bb.conn(base)
                            for b in batches[j::4]:
                                for v in bb.req(c, "POST", f"{w.mp}/exportItems",
                                                {"itemIds": b}, w.token)["value"]:
                                    base64.b64decode(v["data"])

                        rate[k].append(len(ids) / bb.parallel(4, exporter))
                        cpu[k].append(bb.server_cpu(p.pid) - s0)
                finally:
                    p.terminate()
                    p.wait()
        for k, b in enumerate(bins):
            print(f"{k}:{b}: {statistics.median(rate[k]):.0f} items/s "
                  f"({', '.join(f'{x:.0f}' for x in rate[k])}), "
                  f"server CPU {statistics.median(cpu[k]):.2f} s per export")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
