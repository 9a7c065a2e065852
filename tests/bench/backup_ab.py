#!/usr/bin/env python3
"""Paired A/B of `graphbox backup` binaries (issue 7), for telling a change
from this shared machine's noise, which moves a single `backup_bench.py`
invocation by more than most changes do.

One `graphbox serve` (the first binary) with one mailbox of N seeded items;
one repository per binary, each with a full backup first. Then, every round:
1% of the items change (update-mode imports of another item's content), and
each binary makes an incremental backup into its own repository, in
alternating order. Printed: per binary the median wall time and CPU (client
and server), and per later binary the paired differences against the first
(median, mean, rounds faster). `--full-runs K` also alternates K full
backups per binary into fresh repositories; `--perf-stat` runs every
incremental backup under `perf stat` (page faults, task clock); `--pause S`
idles S seconds before each incremental run; `--changes new` adds 1% new
items to the inbox each round (imports of other items' content) instead of
changing existing ones: mail arriving, the change most nightly runs see;
`--delay-ms MS` puts `delay_proxy.py` between clients and server, adding MS
milliseconds each way (a server with real latency; the server is started with
GRAPHBOX_PUBLIC_URL set to the proxy, so its links lead through it too).

    python3 tests/bench/backup_ab.py --bins /tmp/old/graphbox,target/release/graphbox --rounds 24
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backup_bench as bb  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bins", required=True, help="comma-separated graphbox binaries (2 or more)")
    ap.add_argument("--rounds", type=int, default=24)
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--full-runs", type=int, default=0)
    ap.add_argument("--changes", choices=["update", "new"], default="update",
                    help="what changes before each round: 1%% of the items updated with other "
                         "content (scattered over the mailbox), or 1%% new items in the inbox")
    ap.add_argument("--perf-stat", action="store_true")
    ap.add_argument("--pause", type=float, default=0.0,
                    help="seconds of idle time before every incremental run (a VM's free memory "
                         "that stays idle gets handed back to its host, and faulting it in again "
                         "costs far more than memory freed a moment ago)")
    ap.add_argument("--delay-ms", type=float, default=0.0,
                    help="put delay_proxy.py between the clients and the server, adding this "
                         "many milliseconds each way (a server with real latency)")
    a = ap.parse_args()
    bins = [os.path.abspath(b) for b in a.bins.split(",")]
    if len(bins) < 2:
        raise SystemExit("give at least two binaries")
    d = tempfile.mkdtemp(prefix="graphbox-backup-ab-")
    p = proxy = None
    try:
        listen = "127.0.0.1:0"
        if a.delay_ms:
            # The server announces (and links to) the proxy's address.
            server_port, proxy_port = free_port(), free_port()
            listen = f"127.0.0.1:{server_port}"
            os.environ["GRAPHBOX_PUBLIC_URL"] = f"http://127.0.0.1:{proxy_port}"
            proxy = subprocess.Popen(
                [sys.executable, os.path.join(os.path.dirname(__file__), "delay_proxy.py"),
                 "--listen", f"127.0.0.1:{proxy_port}", "--to", listen,
                 "--delay-ms", str(a.delay_ms)], stdout=subprocess.PIPE, text=True)
            proxy.stdout.readline()
        p, run_client, conn_args, changer = setup(bins[0], d, a.items, a.changes, listen)
        report(a, bins, d, p, run_client, conn_args, changer)
    finally:
        for q in (p, proxy):
            if q is not None:
                q.terminate()
                q.wait()
        shutil.rmtree(d, ignore_errors=True)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(srv, d, n_items, kind="update", listen="127.0.0.1:0"):
    """The server and mailbox (`backup_bench.Setup`), a client runner, the
    client's connection arguments and round r's change of 1% of the items."""
    w = bb.Setup(srv, d, n_items, listen)
    env, conn_args = w.client_env(), w.conn_args()

    def run_client(b, *args, perf_stat=False):
        """(wall s, client CPU s, server CPU s, page faults, task clock ms, stdout)"""
        os.sync()
        pre, stat = [], None
        if perf_stat:
            stat = os.path.join(d, f"stat-{time.monotonic_ns()}")
            pre = ["perf", "stat", "-x,", "-o", stat, "-e", "page-faults,task-clock"]
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        s0 = bb.server_cpu(w.p.pid)
        t0 = time.perf_counter()
        res = subprocess.run([*pre, b, *args], capture_output=True, text=True, env=env)
        dt = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if res.returncode != 0:
            raise SystemExit(f"{b} {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
        faults = clock = None
        if stat:
            for line in open(stat):
                f = line.strip().split(",")
                if len(f) > 2 and f[2] == "page-faults":
                    faults = float(f[0])
                if len(f) > 2 and f[2] == "task-clock":
                    clock = float(f[0])
        cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
        return dt, cpu, bb.server_cpu(w.p.pid) - s0, faults, clock, res.stdout

    changes = bb.Changes(w)
    ids = [i for _, i, _ in w.items]
    n_change = max(1, n_items // 100)

    def change(r):
        """Round r's 1%: other items' content imported in update mode, or
        as new items in the inbox."""
        start = (r * n_change) % len(ids)
        if kind == "new":
            changes.add("inbox", (ids[::-1][start:] + ids[::-1][:start])[:n_change])
            return n_change
        changes.apply((ids[start:] + ids[:start])[:n_change],
                      (ids[::-1][start:] + ids[::-1][:start])[:n_change])
        return n_change

    return w.p, run_client, conn_args, change


def paired(first, other):
    diffs = [(o - f) * 1000 for f, o in zip(first, other)]
    return (f"median {statistics.median(diffs):+.1f} ms, mean {statistics.mean(diffs):+.1f} ms, "
            f"faster in {sum(1 for x in diffs if x < 0)} of {len(diffs)}")


def report(a, bins, d, p, run_client, conn_args, change):
    """Everything per binary is kept by its position, so a binary named twice
    (an A/A run, to see the noise alone) gets a repository of its own."""
    mailbox = ["--mailbox", f"u@{bb.DOMAIN}", "--json"]
    names = [f"{i}:{b}" for i, b in enumerate(bins)]
    order = list(range(len(bins)))
    repos = [os.path.join(d, f"repo-{i}") for i in order]
    for i in order:
        run_client(bins[i], "init", "--repo", repos[i])
        run_client(bins[i], "backup", "--repo", repos[i], *conn_args, *mailbox)
    if a.full_runs:
        full = [[] for _ in order]
        for k in range(a.full_runs):
            for i in order if k % 2 == 0 else order[::-1]:
                repo = os.path.join(d, "full-repo")
                run_client(bins[i], "init", "--repo", repo)
                dt, cpu, _, _, _, out = run_client(bins[i], "backup", "--repo", repo, *conn_args,
                                                   *mailbox)
                assert json.loads(out)["mailboxes"][0]["exported"] == a.items
                full[i].append((dt, cpu))
                shutil.rmtree(repo)
        for i in order:
            print(f"full  {names[i]}: wall {statistics.median(x[0] for x in full[i]):.3f} s, "
                  f"client CPU {statistics.median(x[1] for x in full[i]):.2f} s "
                  f"({', '.join(f'{x[0]:.2f}' for x in full[i])})")
        for i in order[1:]:
            print(f"full  {names[i]} vs {names[0]}: "
                  + paired([x[0] for x in full[0]], [x[0] for x in full[i]]))
    incr = [[] for _ in order]
    for r in range(a.rounds):
        n = change(r)
        for i in order if r % 2 == 0 else order[::-1]:
            time.sleep(a.pause)
            res = run_client(bins[i], "backup", "--repo", repos[i], *conn_args, *mailbox,
                             perf_stat=a.perf_stat)
            s = json.loads(res[5])["mailboxes"][0]
            grown = (r + 1) * n if a.changes == "new" else 0
            assert s["exported"] == n and s["items"] == a.items + grown, s
            incr[i].append(res[:5])
    for i in order:
        xs = incr[i]
        line = (f"incr  {names[i]}: wall {statistics.median(x[0] for x in xs) * 1000:.1f} ms, "
                f"client CPU {statistics.median(x[1] for x in xs) * 1000:.0f} ms, "
                f"server CPU {statistics.median(x[2] for x in xs) * 1000:.0f} ms")
        if a.perf_stat:
            line += (f", page faults {statistics.median(x[3] for x in xs):.0f}, "
                     f"task clock {statistics.median(x[4] for x in xs):.1f} ms")
        print(line)
    for i in order[1:]:
        print(f"incr  {names[i]} vs {names[0]}: "
              + paired([x[0] for x in incr[0]], [x[0] for x in incr[i]]))


if __name__ == "__main__":
    sys.exit(main())
