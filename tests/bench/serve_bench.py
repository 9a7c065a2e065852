#!/usr/bin/env python3
"""End-to-end benchmark of `graphbox serve` on a large mailbox (issue 3 targets).

Seeds one folder with N items (default 1,000,000; rows share one generated item's
content via `admin seed --shared-content`, so the figures are about metadata,
listing and delta, not blob I/O), then measures against the real release-built
server over loopback HTTP with keep-alive:

  * start-up time on that data dir (spawn -> "listening on" line), median of 5;
  * enumerating every item through items/delta with Prefer: odata.maxpagesize=1000
    (items/s over the whole enumeration);
  * a delta round that returns exactly one change (median of 50 rounds; each
    round first adds one item with `graphbox admin seed`, untimed);
  * the baseline measured in the same run: the median latency of the smallest
    authorized request (GET /admin/exchange/mailboxes/{id}) over the same
    connection, to put the delta latency in proportion;
  * the server's peak resident memory (VmHWM) over the whole run.

Latencies are measured at the client, over loopback: they are an upper bound of the
server-side time. Usage:

    cargo build --release --bin graphbox
    python3 tests/bench/serve_bench.py [--items N] [--bin target/release/graphbox]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.parse


def run(bin_, data, *args):
    out = subprocess.run([bin_, *args, "--data-dir", data], check=True,
                         capture_output=True, text=True)
    return out.stdout


def start(bin_, data):
    t0 = time.perf_counter()
    p = subprocess.Popen([bin_, "serve", "--data-dir", data, "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            return p, m.group(1), time.perf_counter() - t0
    raise SystemExit("server did not start")


def stop(p):
    p.terminate()
    p.wait(timeout=30)


def vmhwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Client:
    def __init__(self, base, token):
        u = urllib.parse.urlparse(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port)
        self.base = base
        self.token = token

    def get_raw(self, url, prefer=None):
        """GET returning the raw body (no JSON parsing: the client stays cheap
        so the figure is the server's, not Python's json module's)."""
        path = url[len(self.base):] if url.startswith(self.base) else url
        headers = {"Authorization": f"Bearer {self.token}"}
        if prefer:
            headers["Prefer"] = prefer
        self.conn.request("GET", path, headers=headers)
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise SystemExit(f"GET {path} -> {r.status}: {body[:300]!r}")
        return body

    def get(self, url, prefer=None):
        path = url[len(self.base):] if url.startswith(self.base) else url
        headers = {"Authorization": f"Bearer {self.token}"}
        if prefer:
            headers["Prefer"] = prefer
        t0 = time.perf_counter()
        self.conn.request("GET", path, headers=headers)
        r = self.conn.getresponse()
        body = r.read()
        dt = time.perf_counter() - t0
        if r.status != 200:
            raise SystemExit(f"GET {path} -> {r.status}: {body[:300]!r}")
        return json.loads(body), dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--bin", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "target"), "release", "graphbox"))
    ap.add_argument("--rounds", type=int, default=50)
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="graphbox-bench-")
    try:
        run(args.bin, data, "admin", "tenant", "create", "--domain", "bench.test")
        user = json.loads(run(args.bin, data, "admin", "user", "create", "--tenant",
                              "bench.test", "--upn", "big@bench.test", "--json"))
        mbx = user["primaryMailboxId"]
        t0 = time.perf_counter()
        run(args.bin, data, "admin", "seed", "--mailbox", mbx, "--items", str(args.items),
            "--shared-content")
        seed_s = time.perf_counter() - t0
        db_mb = os.path.getsize(os.path.join(data, "meta.sqlite")) / 1e6

        starts = []
        for _ in range(5):
            p, base, dt = start(args.bin, data)
            starts.append(dt)
            stop(p)
        p, base, _ = start(args.bin, data)
        token = run(args.bin, data, "token", "--tenant", "bench.test", "--roles",
                    "MailboxItem.Read.All,MailboxFolder.Read.All").strip()
        c = Client(base, token)
        root = f"{base}/v1.0/admin/exchange/mailboxes/{mbx}"

        baseline = [c.get(root)[1] for _ in range(200)]

        # Each entity starts with its @odata.type; the link is the last member.
        marker = b'"@odata.type":"#microsoft.graph.mailboxItem"'
        link_re = re.compile(rb'"@odata\.(nextLink|deltaLink)":"([^"]+)"\}$')
        t0 = time.perf_counter()
        url = f"{root}/folders/inbox/items/delta"
        n = pages = 0
        while True:
            body = c.get_raw(url, prefer="odata.maxpagesize=1000")
            n += body.count(marker)
            pages += 1
            kind, url = link_re.search(body).groups()
            url = url.decode()
            if kind == b"deltaLink":
                break
        enum_s = time.perf_counter() - t0
        assert n == args.items, (n, args.items)
        link = url

        rounds = []
        for _ in range(args.rounds):
            run(args.bin, data, "admin", "seed", "--mailbox", mbx, "--items", "1",
                "--shared-content")
            page, dt = c.get(link, prefer="odata.maxpagesize=1000")
            assert len(page["value"]) == 1, len(page["value"])
            link = page["@odata.deltaLink"]
            rounds.append(dt)
        hwm = vmhwm_kib(p.pid)
        stop(p)

        base_ms = statistics.median(baseline) * 1e3
        round_ms = statistics.median(rounds) * 1e3
        print(json.dumps({
            "items": args.items,
            "seed_seconds": round(seed_s, 1),
            "meta_sqlite_mb": round(db_mb),
            "startup_ms_median": round(statistics.median(starts) * 1e3, 1),
            "delta_enumeration_items_per_s": round(n / enum_s),
            "delta_enumeration_pages": pages,
            "delta_one_change_ms_median": round(round_ms, 2),
            "delta_one_change_ms_p90": round(sorted(rounds)[int(len(rounds) * 0.9)] * 1e3, 2),
            "baseline_get_mailbox_ms_median": round(base_ms, 2),
            "delta_one_change_over_baseline": round(round_ms / base_ms, 2),
            "server_peak_rss_mb": round(hwm / 1024, 1),
        }, indent=2))
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
