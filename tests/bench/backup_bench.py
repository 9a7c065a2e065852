#!/usr/bin/env python3
"""Backup client benchmark (issue 7) against a real release-built `graphbox serve`.

Measures, on one mailbox of N realistic items (`graphbox admin seed`, spread
over three folders):

  * raw export throughput of the server in the same run: every item id
    exported in 20-id exportItems requests by 4 concurrent keep-alive
    connections of a minimal Python client (http.client; the answer is read
    and JSON-decoded, the base64 is decoded too, nothing is stored);
  * a full `graphbox backup` into a fresh repository (wall time of the
    process: sign-in, folder and item delta, export, encryption, compression,
    packing, fsync, snapshot), as items/s and as a ratio of the raw export;
  * an incremental `graphbox backup` after 1% of the items changed (update-mode
    imports with other content), as a ratio of the full run's time;
  * repository size on disk against the raw FTS bytes of the mailbox.

Every figure is the median of 3 runs (9 for the incremental run, which is
short enough for this shared machine's noise to move a median of 3 by 20%);
the full runs come first, then the incremental runs (`--order interleaved`
follows each full run with a third of the incremental runs instead, so that
both medians sample the same stretches of the machine's load); each timed run starts after a sync(2), so none inherits the previous run's
writeback, and an incremental run starts once the server has been idle for
0.2 s (the changes' background work, collecting replaced content, done). The client, the server and the benchmark script share the
machine's cores.

    cargo build --release -p graphbox
    python3 tests/bench/backup_bench.py --bin target/release/graphbox
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import urlparse

DOMAIN = "bench.test"
PASSWORD = "benchmark password"
ROLES = ["User.Read.All", "MailboxFolder.ReadWrite.All", "MailboxItem.Read.All",
         "MailboxItem.ReadWrite.All", "MailboxItem.ImportExport.All"]


def run(bin_, data_dir, *args):
    res = subprocess.run([bin_, *args, "--data-dir", data_dir], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout


def start(bin_, data_dir, listen="127.0.0.1:0"):
    p = subprocess.Popen([bin_, "serve", "--data-dir", data_dir, "--listen", listen],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    while True:
        line = p.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
            return p, m.group(1).rstrip("/")
        if not line:
            raise SystemExit("server did not start")


def conn(base):
    u = urlparse(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=300)


def req(c, method, path, body=None, token=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    out = r.read()
    if r.status >= 300:
        raise RuntimeError(f"{method} {path}: {r.status} {out[:300]!r}")
    return json.loads(out) if out else None


def parallel(n_threads, work):
    ts = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def server_cpu(pid):
    """CPU seconds (user + system) the server process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


class Setup:
    """A data directory with a tenant, an app holding the backup roles and
    one mailbox of `n_items` seeded items in three folders (60/30/10%), served
    by a running `graphbox serve` (`p`, at `base`)."""

    def __init__(self, bin_, d, n_items, listen="127.0.0.1:0"):
        run(bin_, d, "admin", "tenant", "create", "--domain", DOMAIN, "--name", "Bench")
        u = json.loads(run(bin_, d, "admin", "user", "create", "--tenant", DOMAIN, "--upn",
                           f"u@{DOMAIN}", "--name", "U", "--json"))
        mbx = u["primaryMailboxId"]
        split = [("inbox", n_items * 6 // 10), ("sentitems", n_items * 3 // 10)]
        split.append(("deleteditems", n_items - sum(n for _, n in split)))
        for k, (folder, n) in enumerate(split):
            run(bin_, d, "admin", "seed", "--mailbox", mbx, "--items", str(n), "--folder", folder,
                "--seed", str(k + 1))
        self.app = json.loads(run(bin_, d, "admin", "app", "create", "--tenant", DOMAIN, "--name",
                                  "B", "--json"))["appId"]
        for r in ROLES:
            run(bin_, d, "admin", "app", "permission", "add", "--app", self.app, "--permission", r,
                "--type", "application")
        self.secret = json.loads(run(bin_, d, "admin", "app", "secret", "add", "--app", self.app,
                                     "--json"))["secretText"]
        run(bin_, d, "admin", "consent", "grant", "--app", self.app)
        self.token = run(bin_, d, "token", "--tenant", DOMAIN, "--app", self.app, "--roles",
                         ",".join(ROLES)).strip()
        self.p, self.base = start(bin_, d, listen)
        self.mp = f"/v1.0/admin/exchange/mailboxes/{mbx}"
        c = conn(self.base)
        self.items = []  # (folder, id, changeKey)
        for folder, _ in split:
            url = f"{self.mp}/folders/{folder}/items?$top=1000&$select=id,changeKey"
            while url:
                body = req(c, "GET", url, token=self.token)
                self.items += [(folder, v["id"], v["changeKey"]) for v in body["value"]]
                url = body.get("@odata.nextLink")
                if url:
                    url = url[len(self.base):]

    def client_env(self):
        return dict(os.environ, GRAPHBOX_CLIENT_SECRET=self.secret,
                    GRAPHBOX_REPO_PASSWORD=PASSWORD)

    def conn_args(self):
        return ["--graph", self.base, "--tenant", DOMAIN, "--client-id", self.app]


class Changes:
    """Changes a `Setup`'s mailbox: update-mode imports that give each
    chosen item the content of a donor item, or new items with donors'
    content."""

    def __init__(self, w):
        self.w = w
        self.source = conn(w.base)
        self.upath = req(self.source, "POST", f"{w.mp}/createImportSession", b"",
                         w.token)["importUrl"][len(w.base):]
        self.keys = {i: (f, ck) for f, i, ck in w.items}

    def apply(self, chosen, donors):
        data = self._export(donors)
        for target, donor in zip(chosen, donors):
            folder, ck = self.keys[target]
            done = req(self.source, "POST", self.upath, {"FolderId": folder, "Mode": "update",
                                                         "ItemId": target, "ChangeKey": ck,
                                                         "Data": data[donor]})
            self.keys[target] = (folder, done["changeKey"])
        self._settle()

    def add(self, folder, donors):
        """New items in `folder`, each with a donor item's content."""
        data = self._export(donors)
        for donor in donors:
            req(self.source, "POST", self.upath, {"FolderId": folder, "Mode": "create",
                                                  "Data": data[donor]})
        self._settle()

    def _export(self, ids):
        data = {}
        for k in range(0, len(ids), 20):
            for v in req(self.source, "POST", f"{self.w.mp}/exportItems",
                         {"itemIds": ids[k:k + 20]}, self.w.token)["value"]:
                data[v["itemId"]] = v["data"]
        return data

    def _settle(self):
        # Replacing an item's content leaves its old blob to the server's
        # collector, which runs in the background after the import answers.
        # A backup is timed against a server that has finished that work,
        # as a nightly run after a day's changes would be.
        wait_quiet(self.w.p.pid)


def wait_quiet(pid, window=0.2, limit=5.0):
    """Waits until process `pid` has used no CPU for `window` seconds (at
    most `limit` seconds)."""
    end = time.monotonic() + limit
    last, since = server_cpu(pid), time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.02)
        now = server_cpu(pid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= window:
            return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/graphbox")
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--incr-runs", type=int, default=9)
    ap.add_argument("--order", choices=["sequential", "interleaved"], default="sequential",
                    help="sequential: all full runs, then all incremental runs; interleaved: "
                         "each full run followed by its share of the incremental runs")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="graphbox-backup-bench-")
    repos, servers = [], []
    try:
        bench(a, d, repos, servers)
    finally:
        # The server's data and the repositories are ~2 GB: leave nothing
        # behind, also when a run fails.
        for p in servers:
            p.terminate()
            p.wait()
        shutil.rmtree(d, ignore_errors=True)
        for repo in repos:
            shutil.rmtree(os.path.dirname(repo), ignore_errors=True)


def bench(a, d, repos, servers):
    w = Setup(a.bin, d, a.items)
    servers.append(w.p)
    p, base, token, mp, items = w.p, w.base, w.token, w.mp, w.items
    assert len(items) == a.items, len(items)
    ids = [i for _, i, _ in items]

    # 1. Raw export: 20-id requests, 4 connections.
    batches = [ids[i:i + 20] for i in range(0, len(ids), 20)]
    sizes = {}
    lock = threading.Lock()

    def exporter(k):
        cc = conn(base)
        mine = {}
        for b in batches[k::4]:
            for v in req(cc, "POST", f"{mp}/exportItems", {"itemIds": b}, token)["value"]:
                mine[v["itemId"]] = len(base64.b64decode(v["data"]))
        with lock:
            sizes.update(mine)

    raw = [len(ids) / parallel(4, exporter) for _ in range(a.runs)]
    raw_bytes = sum(sizes.values())
    assert len(sizes) == len(ids)

    env, conn_args = w.client_env(), w.conn_args()

    cpu = {"client": [], "server": []}

    def client(*args):
        # Each timed run starts with no dirty pages left by the one before
        # (a full run writes ~0.5 GB; its writeback would land in the next).
        os.sync()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        s0 = server_cpu(p.pid)
        t0 = time.perf_counter()
        res = subprocess.run([a.bin, *args], capture_output=True, text=True, env=env)
        dt = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if res.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
        if args[0] == "backup":
            cpu["client"].append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
            cpu["server"].append(server_cpu(p.pid) - s0)
        return dt, res.stdout

    # 2. Full backups, each into a fresh repository, and 3. incremental
    #    backups after 1% of the items changed (update mode, the content of
    #    another item), into the first repository. By default all full runs
    #    come first; `--order interleaved` alternates them (full run k, then
    #    its share of the incremental runs), so that the two medians of the
    #    ratio come from the same stretches of this shared machine's load.
    full, repo_sizes, full_cpu = [], [], {"client": [], "server": []}
    changes = Changes(w)
    n_change = max(1, a.items // 100)
    incr, incr_exported, incr_cpu = [], [], {"client": [], "server": []}
    assert 2 * a.incr_runs * n_change + 1 <= len(ids), "too many incremental runs for the mailbox"

    def take_cpu(into):
        for k in ("client", "server"):
            into[k].append(cpu[k].pop())

    def full_run():
        repo = os.path.join(tempfile.mkdtemp(prefix="graphbox-bench-repo-"), "repo")
        repos.append(repo)
        client("init", "--repo", repo)
        dt, out = client("backup", "--repo", repo, *conn_args, "--mailbox", f"u@{DOMAIN}",
                         "--json")
        s = json.loads(out)["mailboxes"][0]
        assert s["items"] == a.items and s["exported"] == a.items, s
        full.append(dt)
        take_cpu(full_cpu)
        repo_sizes.append(du(repo))

    def incremental_run(r):
        changes.apply(ids[r * n_change:(r + 1) * n_change],
                      ids[-(r + 1) * n_change - 1:-r * n_change - 1])
        dt, out = client("backup", "--repo", repos[0], *conn_args, "--mailbox",
                         f"u@{DOMAIN}", "--json")
        s = json.loads(out)["mailboxes"][0]
        assert s["items"] == a.items and s["exported"] == n_change, s
        incr.append(dt)
        take_cpu(incr_cpu)
        incr_exported.append(s["exported"])

    if a.order == "sequential":
        schedule = ["full"] * a.runs + ["incr"] * a.incr_runs
    else:
        schedule = []
        for k in range(a.runs):
            schedule += ["full"] + ["incr"] * len(range(k, a.incr_runs, a.runs))
    r = 0
    for kind in schedule:
        if kind == "full":
            full_run()
        else:
            incremental_run(r)
            r += 1
    assert r == a.incr_runs, r

    raw_med = statistics.median(raw)
    full_med = statistics.median(full)
    backup_rate = a.items / full_med
    incr_med = statistics.median(incr)
    # Interleaved, only the first full run backs up the mailbox whose raw
    # bytes were measured: later ones see items whose content was replaced by
    # another item's, which the repository stores once.
    repo_med = statistics.median(repo_sizes) if a.order == "sequential" else repo_sizes[0]
    print(json.dumps({
        "items": a.items,
        "mean_item_kb": round(raw_bytes / len(ids) / 1024, 1),
        "raw_fts_mb": round(raw_bytes / 2**20, 1),
        "raw_export_items_per_s": [round(x) for x in raw],
        "raw_export_median": round(raw_med),
        "full_backup_s": [round(x, 2) for x in full],
        "full_backup_median_s": round(full_med, 2),
        "full_backup_items_per_s": round(backup_rate),
        "full_vs_raw_ratio": round(backup_rate / raw_med, 3),
        "order": a.order,
        "incremental_changed_items": n_change,
        "incremental_s": [round(x, 3) for x in incr],
        "incremental_median_s": round(incr_med, 3),
        "incremental_vs_full_ratio": round(incr_med / full_med, 4),
        "full_client_cpu_s": [round(x, 2) for x in full_cpu["client"]],
        "full_server_cpu_s": [round(x, 2) for x in full_cpu["server"]],
        "incremental_client_cpu_s": [round(x, 3) for x in incr_cpu["client"]],
        "incremental_client_cpu_median_s": round(statistics.median(incr_cpu["client"]), 3),
        "incremental_server_cpu_s": [round(x, 3) for x in incr_cpu["server"]],
        "repo_mb": [round(x / 2**20, 1) for x in repo_sizes],
        "repo_vs_raw_ratio": round(repo_med / raw_bytes, 3),
    }, indent=1))


if __name__ == "__main__":
    sys.exit(main())
