"""Fixtures for the end-to-end tests of the backup client (`graphbox init |
backup | snapshots | verify | prune | find | restore`).

One real `graphbox serve` process per test module over a fresh SQLite data
directory: a tenant, source users with seeded mail in several folders
(nested ones included), empty target users for restores, and an app
registration with a client secret and consented application permissions.
The backup client is the real binary, signing in with the client secret
through the server's own token endpoint, exactly as against Exchange Online.

Test-side Graph calls (listing, exporting, importing, deleting, renaming)
use plain urllib with an app token minted by `graphbox token`.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import re
import signal
import subprocess
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOMAIN = "contoso.test"
PASSWORD = "correct horse battery staple"
ROLES = [
    "User.Read.All",
    "MailboxFolder.ReadWrite.All",
    "MailboxItem.Read.All",
    "MailboxItem.ReadWrite.All",
    "MailboxItem.ImportExport.All",
]


def graphbox_bin() -> str:
    explicit = os.environ.get("GRAPHBOX_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return str(pathlib.Path(target) / "debug" / "graphbox")


class Graph:
    """Minimal Graph client for the test's own checks (beta endpoints)."""

    def __init__(self, base: str, token: str):
        self.base = base
        self.token = token

    def call(self, method: str, path: str, body=None, *, expect=(200,)):
        url = path if path.startswith("http") else f"{self.base}/beta{path}"
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        if status not in expect:
            raise AssertionError(f"{method} {url} -> {status}: {raw[:500]!r}")
        return json.loads(raw) if raw else None

    def pages(self, path: str) -> list[dict]:
        out, url = [], path
        while url:
            body = self.call("GET", url)
            out += body["value"]
            url = body.get("@odata.nextLink")
        return out

    def mbx(self, mbx: str) -> str:
        return f"/admin/exchange/mailboxes/{mbx}"

    def folders(self, mbx: str) -> list[dict]:
        """Every folder of the mailbox (folder delta: the whole tree)."""
        return [f for f in self.pages(f"{self.mbx(mbx)}/folders/delta") if "@removed" not in f]

    def folder_paths(self, mbx: str) -> dict[str, str]:
        """folder id -> /Path/Of/Names."""
        fs = {f["id"]: f for f in self.folders(mbx)}

        def path(fid: str) -> str:
            parts = []
            while fid in fs:
                parts.append(fs[fid]["displayName"])
                fid = fs[fid].get("parentFolderId")
            return "/" + "/".join(reversed(parts))

        return {fid: path(fid) for fid in fs}

    def items(self, mbx: str, folder: str) -> list[dict]:
        return self.pages(f"{self.mbx(mbx)}/folders/{folder}/items?$top=500")

    def all_items(self, mbx: str) -> list[tuple[str, dict]]:
        """(folder path, item) for every item of the mailbox."""
        out = []
        for fid, path in self.folder_paths(mbx).items():
            out += [(path, i) for i in self.items(mbx, fid)]
        return out

    def export(self, mbx: str, ids: list[str]) -> dict[str, bytes]:
        out = {}
        for k in range(0, len(ids), 20):
            body = self.call("POST", f"{self.mbx(mbx)}/exportItems", {"itemIds": ids[k:k + 20]})
            for e in body["value"]:
                assert "error" not in e, e
                out[e["itemId"]] = base64.b64decode(e["data"])
        return out

    def import_url(self, mbx: str) -> str:
        return self.call("POST", f"{self.mbx(mbx)}/createImportSession", {})["importUrl"]

    def import_item(self, mbx: str, folder: str, data: bytes, *, item_id=None, change_key=None):
        body = {"FolderId": folder, "Mode": "create" if item_id is None else "update",
                "Data": base64.b64encode(data).decode()}
        if item_id is not None:
            body["ItemId"] = item_id
            body["ChangeKey"] = change_key
        return self.call("POST", self.import_url(mbx), body)


class World:
    """A data directory, its CLI, its running server and the backup client."""

    def __init__(self):
        # Everything the tests write (server data, repositories, .fts files)
        # lives under one directory, removed when the module's tests are done
        # (kept with GRAPHBOX_KEEP_TEST_DATA=1, for looking at a failure).
        self.root = tempfile.mkdtemp(prefix="graphbox-backup-")
        self.data_dir = os.path.join(self.root, "data")
        self.proc: subprocess.Popen | None = None
        self.base: str | None = None
        self.log: list[str] = []
        self.users: dict[str, dict] = {}

    # --- server-side CLI ------------------------------------------------------
    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [graphbox_bin(), *args, "--data-dir", self.data_dir]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def admin_json(self, *args: str):
        return json.loads(self.admin(*args, "--json").stdout)

    def user(self, name: str) -> dict:
        """Creates (once) a user name@contoso.test and returns it."""
        if name not in self.users:
            self.users[name] = self.admin_json(
                "admin", "user", "create", "--tenant", DOMAIN, "--upn", f"{name}@{DOMAIN}",
                "--name", name.title())
        return self.users[name]

    def mbx(self, name: str) -> str:
        return self.user(name)["primaryMailboxId"]

    def seed(self, name: str, folder: str, n: int, seed: int) -> None:
        self.admin_json("admin", "seed", "--mailbox", self.mbx(name), "--items", str(n),
                        "--folder", folder, "--seed", str(seed))

    # --- server ---------------------------------------------------------------
    def start(self) -> None:
        cmd = [graphbox_bin(), "serve", "--data-dir", self.data_dir, "--listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 60
        assert self.proc.stdout is not None
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
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def graph(self) -> Graph:
        token = self.admin("token", "--tenant", DOMAIN, "--app", self.app_id,
                           "--roles", ",".join(ROLES)).stdout.strip()
        return Graph(self.base, token)

    # --- the backup client ------------------------------------------------------
    def env(self, password: str = PASSWORD) -> dict:
        env = dict(os.environ)
        env.update({
            "GRAPHBOX_CLIENT_SECRET": self.secret,
            "GRAPHBOX_REPO_PASSWORD": password,
            "NO_COLOR": "1",
            # The hints each backup leaves for the next (prefetch.rs), kept
            # with the rest of the test data instead of in ~/.cache.
            "GRAPHBOX_CACHE_DIR": os.path.join(self.root, "cache"),
        })
        for k in ("GRAPHBOX_REPO", "GRAPHBOX_PROFILE", "GRAPHBOX_REPO_PASSWORD_FILE"):
            env.pop(k, None)
        return env

    def conn(self) -> list[str]:
        return ["--graph", self.base, "--tenant", DOMAIN, "--client-id", self.app_id]

    def client(self, *args: str, password: str = PASSWORD, timeout: int = 900,
               check: bool = True) -> subprocess.CompletedProcess:
        cmd = [graphbox_bin(), *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             env=self.env(password))
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def client_json(self, *args: str, **kw):
        res = self.client(*args, "--json", **kw)
        return json.loads(res.stdout)

    def backup(self, repo: str, *mailboxes: str, extra=(), **kw):
        args = ["backup", "--repo", repo, *self.conn(), *extra]
        for m in mailboxes:
            args += ["--mailbox", f"{m}@{DOMAIN}"]
        return self.client_json(*args, **kw)

    def restore(self, repo: str, snap: str, *extra: str, **kw):
        return self.client_json("restore", snap, "--repo", repo, *self.conn(), *extra, **kw)

    def mkdtemp(self, prefix: str) -> str:
        """A fresh directory under the world's root."""
        return tempfile.mkdtemp(prefix=prefix, dir=self.root)

    def cleanup(self) -> None:
        if os.environ.get("GRAPHBOX_KEEP_TEST_DATA") != "1":
            shutil.rmtree(self.root, ignore_errors=True)

    def new_repo(self) -> str:
        path = os.path.join(self.mkdtemp("repo-"), "repo")
        self.client("init", "--repo", path)
        return path


@pytest.fixture(scope="module")
def world():
    w = World()
    w.admin_json("admin", "tenant", "create", "--domain", DOMAIN, "--name", "Contoso")
    app = w.admin_json("admin", "app", "create", "--tenant", DOMAIN, "--name", "Backup")
    w.app_id = app["appId"]
    for p in ROLES:
        w.admin_json("admin", "app", "permission", "add", "--app", w.app_id, "--permission", p,
                     "--type", "application")
    w.secret = w.admin_json("admin", "app", "secret", "add", "--app", w.app_id)["secretText"]
    w.admin_json("admin", "consent", "grant", "--app", w.app_id)
    w.start()
    yield w
    w.stop()
    w.cleanup()


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"
