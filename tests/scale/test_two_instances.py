"""Two real `graphbox serve` processes on one PostgreSQL database and one S3
bucket (the throwaway services of scripts/services.sh):

* a token minted once is accepted by both (the signing key lives in the
  shared database, not in an instance);
* a delta round started on one instance is continued on the other, page by
  page, alternating, and its delta link works on either;
* writes through both at the same time (`graphbox admin seed` processes, each
  on the shared backends, while the servers run) give unique ids, unique
  change numbers and consistent folder counters, seen identically by both.

Needs GRAPHBOX_TEST_POSTGRES_URL, GRAPHBOX_TEST_S3_URL and the AWS_* variables
(`eval "$(scripts/services.sh start)"`); fails, never skips, without them.
Run by scripts/test.sh with the virtualenv it creates.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def graphbox_bin() -> str:
    explicit = os.environ.get("GRAPHBOX_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return str(pathlib.Path(target) / "debug" / "graphbox")


def required(var: str) -> str:
    v = os.environ.get(var, "").strip()
    if not v:
        pytest.fail(f"{var} is not set: start the services with "
                    "`eval \"$(scripts/services.sh start)\"` or run scripts/test.sh")
    return v


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-q", url, "-c", sql], check=True,
                   capture_output=True, text=True)


@pytest.fixture(scope="module")
def backends():
    server = required("GRAPHBOX_TEST_POSTGRES_URL")
    s3 = required("GRAPHBOX_TEST_S3_URL")
    db = f"gb_two_{uuid.uuid4().hex[:12]}"
    psql(server, f"CREATE DATABASE {db}")
    u = urllib.parse.urlsplit(server)
    meta = urllib.parse.urlunsplit((u.scheme, u.netloc, f"/{db}", u.query, u.fragment))
    blobs = s3.rstrip("/") + f"/two-{uuid.uuid4().hex[:12]}"
    return {"meta": meta, "blobs": blobs}


def cli(b, *args: str) -> subprocess.CompletedProcess:
    cmd = [graphbox_bin(), *args, "--meta", b["meta"], "--blobs", b["blobs"],
           "--data-dir", tempfile.mkdtemp(prefix="graphbox-cli-")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def cli_json(b, *args: str):
    return json.loads(cli(b, *args, "--json").stdout)


class Server:
    def __init__(self, b):
        # Each instance gets its own (empty, unused) data directory: nothing
        # an instance needs may live there.
        cmd = [graphbox_bin(), "serve", "--listen", "127.0.0.1:0", "--meta", b["meta"],
               "--blobs", b["blobs"], "--data-dir", tempfile.mkdtemp(prefix="graphbox-inst-")]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.log: list[str] = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"listening on (https?://\S+)", line)
            if m:
                self.base = m.group(1).rstrip("/")
                threading.Thread(target=self._drain, daemon=True).start()
                return
        raise AssertionError("graphbox serve did not start:\n" + "".join(self.log))

    def _drain(self):
        for line in self.proc.stdout:
            self.log.append(line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def get(url: str, token: str):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def on(server: Server, link: str) -> str:
    """The same link (path and query) on another instance."""
    u = urllib.parse.urlsplit(link)
    return server.base + u.path + ("?" + u.query if u.query else "")


def full_delta(start_url: str, token: str, servers: list[Server], page: int = 7):
    """Follows a delta round, alternating instances page by page."""
    ids, n = [], 0
    url = start_url
    if "token=" not in start_url:
        # Options go on the first request of a round only; links carry them.
        url += ("&" if "?" in start_url else "?") + f"$top={page}"
    while True:
        status, body = get(on(servers[n % len(servers)], url), token)
        assert status == 200, body
        ids += [e["id"] for e in body["value"] if "@removed" not in e]
        n += 1
        if "@odata.nextLink" in body:
            url = body["@odata.nextLink"]
        else:
            return ids, body["@odata.deltaLink"], n


def test_two_instances_share_everything(backends):
    b = backends
    cli_json(b, "admin", "tenant", "create", "--domain", "scale.test", "--name", "Scale")
    user = cli_json(b, "admin", "user", "create", "--tenant", "scale.test", "--upn",
                    "pat@scale.test", "--name", "Pat")
    mbx = user["primaryMailboxId"]
    cli_json(b, "admin", "seed", "--mailbox", mbx, "--items", "20", "--folder", "inbox")

    a, c = Server(b), Server(b)
    try:
        token = cli(b, "token", "--tenant", "scale.test", "--roles",
                    "User.Read.All,MailboxFolder.Read.All,MailboxItem.Read.All").stdout.strip()
        items = f"/beta/admin/exchange/mailboxes/{mbx}/folders/inbox/items"
        for s in (a, c):
            status, body = get(s.base + items + "?$top=100", token)
            assert status == 200, body
            assert len(body["value"]) == 20

        # A delta round alternating between the instances.
        ids, delta_link, pages = full_delta(a.base + items + "/delta", token, [a, c])
        assert pages >= 3
        assert len(ids) == 20 and len(set(ids)) == 20

        # Concurrent writes through both sides while both servers run.
        seeders = [
            subprocess.Popen([graphbox_bin(), "admin", "seed", "--mailbox", mbx, "--items",
                              "40", "--folder", "inbox", "--seed", str(k), "--meta", b["meta"],
                              "--blobs", b["blobs"], "--data-dir",
                              tempfile.mkdtemp(prefix="graphbox-seed-"), "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for k in range(2, 6)
        ]
        for p in seeders:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err

        # The old delta link continues on either instance with exactly the
        # new items; both see the same, consistent store.
        new_a, _, _ = full_delta(on(a, delta_link), token, [a, c])
        new_c, _, _ = full_delta(on(c, delta_link), token, [c, a])
        assert len(new_a) == 160 and len(set(new_a)) == 160
        assert sorted(new_a) == sorted(new_c)
        assert not set(new_a) & set(ids)
        for s in (a, c):
            status, folder = get(s.base + f"/beta/admin/exchange/mailboxes/{mbx}/folders/inbox",
                                 token)
            assert status == 200, folder
            assert folder["totalItemCount"] == 180
            status, body = get(s.base + items + "?$top=1000", token)
            assert len({i["id"] for i in body["value"]}) == 180
            keys = [i["changeKey"] for i in body["value"]]
            assert len(set(keys)) == 180
    finally:
        a.stop()
        c.stop()
