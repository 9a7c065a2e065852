#!/usr/bin/env python3
"""Export/import benchmark of a real release-built `graphbox serve` (issue 4 targets).

Measures over loopback HTTP with keep-alive connections (http.client, one per thread):

  * import of ~10 KB items at 16 concurrent uploads (items/s);
  * export in 20-item requests (items/s), 4 concurrent clients;
  (not measured yet: export of 1 MB items and the RSS of one 100 MB import, which
  need a generator of large FTS items; see docs/BENCHMARKS.md)
  * the baseline in the same run: raw sequential disk write speed of the data
    directory's filesystem (dd-like: 256 MiB written and fsynced from Python).

Each throughput figure is the median of 3 runs. Items are produced by the server
itself (`graphbox admin seed`, then exportItems), so the data is realistic FTS.
The client runs on the same 2-core machine and competes with the server for CPU,
so the figures are a lower bound of the server's capacity.

    cargo build --release -p graphbox
    python3 tests/bench/exim_bench.py --bin target/release/graphbox
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import urlparse


def run(bin_, data_dir, *args):
    res = subprocess.run([bin_, *args, "--data-dir", data_dir], capture_output=True, text=True,
                         check=True)
    return res.stdout


def start(bin_, data_dir):
    p = subprocess.Popen([bin_, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    while True:
        line = p.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
            return p, m.group(1)
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
    return out


def rss(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def parallel(n_threads, work):
    """Runs work(thread_index) on n threads; returns elapsed seconds."""
    ts = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def disk_baseline(dir_):
    path = os.path.join(dir_, "dd.bin")
    block = os.urandom(1 << 20)
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(256):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    dt = time.perf_counter() - t0
    os.remove(path)
    return 256 / dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/graphbox")
    ap.add_argument("--imports", type=int, default=4000)
    ap.add_argument("--exports", type=int, default=4000)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="graphbox-exim-bench-")
    run(a.bin, d, "admin", "tenant", "create", "--domain", "b.test", "--name", "B")
    u = json.loads(run(a.bin, d, "admin", "user", "create", "--tenant", "b.test", "--upn",
                       "u@b.test", "--name", "U", "--json"))
    mbx = u["primaryMailboxId"]
    run(a.bin, d, "admin", "seed", "--mailbox", mbx, "--items", "200", "--folder", "inbox")
    token = run(a.bin, d, "token", "--tenant", "b.test", "--app",
                "11111111-2222-3333-4444-555555555555", "--roles",
                "MailboxItem.ImportExport.All,MailboxItem.Read.All,MailboxFolder.ReadWrite.All"
                ).strip()
    p, base = start(a.bin, d)
    mp = f"/v1.0/admin/exchange/mailboxes/{mbx}"
    c = conn(base)
    ids = [v["id"] for v in json.loads(req(c, "GET", f"{mp}/folders/inbox/items?$top=200&$select=id",
                                           token=token))["value"]]
    seeds = []
    for i in range(0, len(ids), 20):
        seeds += [v["data"] for v in json.loads(req(c, "POST", f"{mp}/exportItems",
                                                    {"itemIds": ids[i:i + 20]}, token))["value"]]
    # The seeded items are realistic mail of a few KB; the mean size is reported.
    mean_kb = statistics.mean(len(base64.b64decode(s)) for s in seeds) / 1024
    url = json.loads(req(c, "POST", f"{mp}/createImportSession", b"", token))["importUrl"]
    ipath = url[len(base):]
    bodies = [json.dumps({"FolderId": "inbox", "Mode": "create", "Data": s}).encode()
              for s in seeds]

    # 1. import at 16 concurrent uploads
    imported = []
    lock = threading.Lock()

    def importer(k):
        cc = conn(base)
        mine = []
        for n in range(k, a.imports, 16):
            mine.append(json.loads(req(cc, "POST", ipath, bodies[n % len(bodies)]))["itemId"])
        with lock:
            imported.extend(mine)

    imp = []
    for _ in range(3):
        imp.append(a.imports / parallel(16, importer))
    # 2. export in 20-item requests
    batches = [imported[i:i + 20] for i in range(0, min(len(imported), a.exports), 20)]

    def exporter(k):
        cc = conn(base)
        for b in batches[k::4]:
            req(cc, "POST", f"{mp}/exportItems", {"itemIds": b}, token)

    exp = []
    for _ in range(3):
        exp.append(sum(len(b) for b in batches) / parallel(4, exporter))
    print(json.dumps({
        "mean_item_kb": round(mean_kb, 1),
        "import_items_per_s": [round(x) for x in imp],
        "import_median": round(statistics.median(imp)),
        "export_items_per_s": [round(x) for x in exp],
        "export_median": round(statistics.median(exp)),
        "disk_write_mb_s": round(disk_baseline(d)),
        "server_vmhwm_mb": rss(p.pid, "VmHWM") // (1 << 20),
    }, indent=1))
    p.terminate()
    p.wait()


if __name__ == "__main__":
    sys.exit(main())
