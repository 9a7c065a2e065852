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
incremental backup under `perf stat` (page faults, task clock).

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
    ap.add_argument("--perf-stat", action="store_true")
    a = ap.parse_args()
    bins = [os.path.abspath(b) for b in a.bins.split(",")]
    if len(bins) < 2:
        raise SystemExit("give at least two binaries")
    d = tempfile.mkdtemp(prefix="graphbox-backup-ab-")
    p = None
    try:
        p, run_client, conn_args, changer = setup(bins[0], d, a.items)
        report(a, bins, d, p, run_client, conn_args, changer)
    finally:
        if p is not None:
            p.terminate()
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


def setup(srv, d, n_items):
    run = bb.run
    run(srv, d, "admin", "tenant", "create", "--domain", bb.DOMAIN, "--name", "Bench")
    u = json.loads(run(srv, d, "admin", "user", "create", "--tenant", bb.DOMAIN, "--upn",
                       f"u@{bb.DOMAIN}", "--name", "U", "--json"))
    mbx = u["primaryMailboxId"]
    split = [("inbox", n_items * 6 // 10), ("sentitems", n_items * 3 // 10)]
    split.append(("deleteditems", n_items - sum(n for _, n in split)))
    for k, (folder, n) in enumerate(split):
        run(srv, d, "admin", "seed", "--mailbox", mbx, "--items", str(n), "--folder", folder,
            "--seed", str(k + 1))
    app = json.loads(run(srv, d, "admin", "app", "create", "--tenant", bb.DOMAIN, "--name", "B",
                         "--json"))["appId"]
    for r in bb.ROLES:
        run(srv, d, "admin", "app", "permission", "add", "--app", app, "--permission", r,
            "--type", "application")
    secret = json.loads(run(srv, d, "admin", "app", "secret", "add", "--app", app,
                            "--json"))["secretText"]
    run(srv, d, "admin", "consent", "grant", "--app", app)
    token = run(srv, d, "token", "--tenant", bb.DOMAIN, "--app", app, "--roles",
                ",".join(bb.ROLES)).strip()
    p, base = bb.start(srv, d)
    mp = f"/v1.0/admin/exchange/mailboxes/{mbx}"
    c = bb.conn(base)
    items = []
    for folder, _ in split:
        url = f"{mp}/folders/{folder}/items?$top=1000&$select=id,changeKey"
        while url:
            body = bb.req(c, "GET", url, token=token)
            items += [(folder, v["id"], v["changeKey"]) for v in body["value"]]
            url = body.get("@odata.nextLink")
            if url:
                url = url[len(base):]
    env = dict(os.environ, GRAPHBOX_CLIENT_SECRET=secret, GRAPHBOX_REPO_PASSWORD=bb.PASSWORD)
    conn_args = ["--graph", base, "--tenant", bb.DOMAIN, "--client-id", app]

    def run_client(b, *args, perf_stat=False):
        """(wall s, client CPU s, server CPU s, page faults, task clock ms, stdout)"""
        os.sync()
        pre, stat = [], None
        if perf_stat:
            stat = os.path.join(d, f"stat-{time.monotonic_ns()}")
            pre = ["perf", "stat", "-x,", "-o", stat, "-e", "page-faults,task-clock"]
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        s0 = bb.server_cpu(p.pid)
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
        return dt, cpu, bb.server_cpu(p.pid) - s0, faults, clock, res.stdout

    source = bb.conn(base)
    upath = bb.req(source, "POST", f"{mp}/createImportSession", b"", token)["importUrl"][len(base):]
    keys = {i: (f, ck) for f, i, ck in items}
    ids = [i for _, i, _ in items]
    n_change = max(1, n_items // 100)

    def change(r):
        """Round r's 1%: update-mode imports of other items' content."""
        start = (r * n_change) % len(ids)
        chosen = (ids[start:] + ids[:start])[:n_change]
        donors = (ids[::-1][start:] + ids[::-1][:start])[:n_change]
        data = {}
        for k in range(0, len(donors), 20):
            for v in bb.req(source, "POST", f"{mp}/exportItems", {"itemIds": donors[k:k + 20]},
                            token)["value"]:
                data[v["itemId"]] = v["data"]
        for target, donor in zip(chosen, donors):
            folder, ck = keys[target]
            done = bb.req(source, "POST", upath, {"FolderId": folder, "Mode": "update",
                                                  "ItemId": target, "ChangeKey": ck,
                                                  "Data": data[donor]})
            keys[target] = (folder, done["changeKey"])
        return n_change

    return p, run_client, conn_args, change


def paired(first, other):
    diffs = [(o - f) * 1000 for f, o in zip(first, other)]
    return (f"median {statistics.median(diffs):+.1f} ms, mean {statistics.mean(diffs):+.1f} ms, "
            f"faster in {sum(1 for x in diffs if x < 0)} of {len(diffs)}")


def report(a, bins, d, p, run_client, conn_args, change):
    mailbox = ["--mailbox", f"u@{bb.DOMAIN}", "--json"]
    names = {b: f"{i}:{b}" for i, b in enumerate(bins)}
    repos = {}
    for i, b in enumerate(bins):
        repos[b] = os.path.join(d, f"repo-{i}")
        run_client(b, "init", "--repo", repos[b])
        run_client(b, "backup", "--repo", repos[b], *conn_args, *mailbox)
    if a.full_runs:
        full = {b: [] for b in bins}
        for k in range(a.full_runs):
            for b in bins if k % 2 == 0 else bins[::-1]:
                repo = os.path.join(d, "full-repo")
                run_client(b, "init", "--repo", repo)
                dt, cpu, _, _, _, out = run_client(b, "backup", "--repo", repo, *conn_args, *mailbox)
                assert json.loads(out)["mailboxes"][0]["exported"] == a.items
                full[b].append((dt, cpu))
                shutil.rmtree(repo)
        for b in bins:
            print(f"full  {names[b]}: wall {statistics.median(x[0] for x in full[b]):.3f} s, "
                  f"client CPU {statistics.median(x[1] for x in full[b]):.2f} s "
                  f"({', '.join(f'{x[0]:.2f}' for x in full[b])})")
        for b in bins[1:]:
            print(f"full  {names[b]} vs {names[bins[0]]}: "
                  + paired([x[0] for x in full[bins[0]]], [x[0] for x in full[b]]))
    incr = {b: [] for b in bins}
    for r in range(a.rounds):
        n = change(r)
        for b in bins if r % 2 == 0 else bins[::-1]:
            res = run_client(b, "backup", "--repo", repos[b], *conn_args, *mailbox,
                             perf_stat=a.perf_stat)
            s = json.loads(res[5])["mailboxes"][0]
            assert s["exported"] == n and s["items"] == a.items, s
            incr[b].append(res[:5])
    for b in bins:
        xs = incr[b]
        line = (f"incr  {names[b]}: wall {statistics.median(x[0] for x in xs) * 1000:.1f} ms, "
                f"client CPU {statistics.median(x[1] for x in xs) * 1000:.0f} ms, "
                f"server CPU {statistics.median(x[2] for x in xs) * 1000:.0f} ms")
        if a.perf_stat:
            line += (f", page faults {statistics.median(x[3] for x in xs):.0f}, "
                     f"task clock {statistics.median(x[4] for x in xs):.1f} ms")
        print(line)
    for b in bins[1:]:
        print(f"incr  {names[b]} vs {names[bins[0]]}: "
              + paired([x[0] for x in incr[bins[0]]], [x[0] for x in incr[b]]))


if __name__ == "__main__":
    sys.exit(main())
