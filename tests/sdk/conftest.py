"""Shared fixtures for the end-to-end tests that drive graphbox with the official
Microsoft Graph Python SDKs (msgraph-sdk for v1.0, msgraph-beta-sdk for beta).

One real `graphbox serve` process is started per test session on a private
loopback port, over a fresh data directory that the `graphbox admin` commands
populate. The SDK clients differ from production use only in their base URL and
in the allowed-hosts list of the authentication provider (127.0.0.1 instead of
graph.microsoft.com); tokens are minted by `graphbox token` from the server's
own signing key.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest
from azure.core.credentials import AccessToken

ROOT = pathlib.Path(__file__).resolve().parents[2]


def graphbox_bin() -> str:
    explicit = os.environ.get("GRAPHBOX_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return str(pathlib.Path(target) / "debug" / "graphbox")


class Graphbox:
    """A graphbox data directory, its CLI, and (once started) its server."""

    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.proc: subprocess.Popen | None = None
        self.base_url: str | None = None
        self._log: list[str] = []

    # --- CLI -----------------------------------------------------------------
    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [graphbox_bin(), *args, "--data-dir", self.data_dir]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check and res.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
            )
        return res

    def json(self, *args: str):
        return json.loads(self.run(*args, "--json").stdout)

    def token(self, tenant: str, *, user: str | None = None, scopes: str | None = None,
              app: str | None = None, roles: str | None = None, lifetime: int | None = None) -> str:
        args = ["token", "--tenant", tenant]
        if user:
            args += ["--user", user, "--scopes", scopes or ""]
        else:
            args += ["--app", app or "11111111-2222-3333-4444-555555555555", "--roles", roles or ""]
        if lifetime is not None:
            args += ["--lifetime", str(lifetime)]
        return self.run(*args).stdout.strip()

    # --- server --------------------------------------------------------------
    def start(self, *extra: str) -> str:
        cmd = [graphbox_bin(), "serve", "--data-dir", self.data_dir,
               "--listen", "127.0.0.1:0", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        deadline = time.time() + 60
        assert self.proc.stdout is not None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self._log.append(line)
            m = re.search(r"listening on (https?://\S+)", line)
            if m:
                self.base_url = m.group(1).rstrip("/")
                threading.Thread(target=self._drain, daemon=True).start()
                return self.base_url
        raise AssertionError("graphbox serve did not start:\n" + "".join(self._log))

    def _drain(self):
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.append(line)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class StaticTokenCredential:
    """An async azure-core TokenCredential that hands out one pre-minted token."""

    def __init__(self, token: str):
        self._token = token

    async def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)

    async def close(self):
        return None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None


def make_client(base_url: str, token: str, *, beta: bool = False):
    """A GraphServiceClient pointed at graphbox (v1.0, or beta with beta=True)."""
    from urllib.parse import urlparse

    from msgraph_core.authentication import AzureIdentityAuthenticationProvider

    host = urlparse(base_url).hostname
    auth = AzureIdentityAuthenticationProvider(
        StaticTokenCredential(token), scopes=["https://graph.microsoft.com/.default"],
        allowed_hosts=[host])
    if beta:
        from msgraph_beta import GraphServiceClient
        from msgraph_beta.graph_request_adapter import GraphRequestAdapter
        adapter = GraphRequestAdapter(auth)
        adapter.base_url = f"{base_url}/beta"
    else:
        from msgraph import GraphServiceClient
        from msgraph.graph_request_adapter import GraphRequestAdapter
        adapter = GraphRequestAdapter(auth)
        adapter.base_url = f"{base_url}/v1.0"
    return GraphServiceClient(request_adapter=adapter)


ALL_READ_ROLES = ",".join([
    "User.Read.All", "MailboxFolder.Read.All", "MailboxItem.Read.All",
])
MEGAN_SCOPES = " ".join([
    "User.Read.All", "MailboxFolder.Read", "MailboxItem.Read",
])


@pytest.fixture(scope="session", autouse=True)
def _one_temporary_root():
    """Every temporary directory these tests make goes under one, removed at
    the end of the session (kept with GRAPHBOX_KEEP_TEST_DATA=1)."""
    root = tempfile.mkdtemp(prefix="graphbox-sdk-tests-")
    before, tempfile.tempdir = tempfile.tempdir, root
    yield
    tempfile.tempdir = before
    if os.environ.get("GRAPHBOX_KEEP_TEST_DATA") != "1":
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def world():
    """A running server with two tenants, three users and seeded mailboxes."""
    tmp = tempfile.mkdtemp(prefix="graphbox-sdk-")
    gb = Graphbox(tmp)
    contoso = gb.json("admin", "tenant", "create", "--domain", "contoso.test",
                      "--name", "Contoso")
    fabrikam = gb.json("admin", "tenant", "create", "--domain", "fabrikam.test",
                       "--name", "Fabrikam")
    megan = gb.json("admin", "user", "create", "--tenant", "contoso.test",
                    "--upn", "megan@contoso.test", "--name", "Megan Bowen", "--archive")
    alex = gb.json("admin", "user", "create", "--tenant", "contoso.test",
                   "--upn", "alex@contoso.test", "--name", "Alex Wilber")
    fab = gb.json("admin", "user", "create", "--tenant", "fabrikam.test",
                  "--upn", "pat@fabrikam.test", "--name", "Pat")
    gb.json("admin", "seed", "--mailbox", megan["primaryMailboxId"], "--items", "30",
            "--folder", "inbox")
    gb.json("admin", "seed", "--mailbox", megan["primaryMailboxId"], "--items", "5",
            "--folder", "calendar")
    gb.json("admin", "seed", "--mailbox", alex["primaryMailboxId"], "--items", "3",
            "--folder", "inbox")
    base = gb.start()
    w = {
        "gb": gb,
        "base": base,
        "contoso": contoso,
        "fabrikam": fabrikam,
        "megan": megan,
        "alex": alex,
        "pat": fab,
        "app_token": gb.token("contoso.test", roles=ALL_READ_ROLES),
        "megan_token": gb.token("contoso.test", user="megan@contoso.test",
                                scopes=MEGAN_SCOPES),
    }
    yield w
    gb.stop()
