"""The backup client signing in as a user with the device-code flow against
graphbox's own authority: the test plays the user, completing the
verification page over HTTP while `graphbox backup --device-code` polls."""

from __future__ import annotations

import html
import http.cookiejar
import json
import re
import subprocess
import time
import urllib.parse
import urllib.request

from conftest import DOMAIN, PASSWORD, graphbox_bin

DELEGATED = [
    "User.Read.All",
    "MailboxFolder.ReadWrite",
    "MailboxItem.Read",
    "MailboxItem.ImportExport",
]


def hidden(page: str, name: str) -> str:
    m = re.search(r'name="%s" value="([^"]*)"' % re.escape(name), page)
    assert m, f"no hidden field {name} in:\n{page}"
    return html.unescape(m.group(1))


def form_action(page: str, base: str) -> str:
    m = re.search(r'<form method="post" action="([^"]+)"', page)
    assert m, page
    return urllib.parse.urljoin(base, html.unescape(m.group(1)))


class Browser:
    """A cookie-keeping HTTP client that posts the authority's forms."""

    def __init__(self):
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, url: str) -> str:
        with self.opener.open(url, timeout=30) as r:
            return r.read().decode()

    def post(self, url: str, fields: dict) -> str:
        data = urllib.parse.urlencode(fields).encode()
        with self.opener.open(url, data=data, timeout=30) as r:
            return r.read().decode()


def test_device_code_backup_of_the_users_own_mailbox(world):
    # A public client with delegated permissions, consented by the administrator.
    app = world.admin_json("admin", "app", "create", "--tenant", DOMAIN, "--name", "Backup Desk",
                           "--public-client")
    for p in DELEGATED:
        world.admin_json("admin", "app", "permission", "add", "--app", app["appId"],
                         "--permission", p, "--type", "delegated")
    world.admin_json("admin", "consent", "grant", "--app", app["appId"])
    user = world.admin_json("admin", "user", "create", "--tenant", DOMAIN,
                            "--upn", f"desk@{DOMAIN}", "--name", "Desk User",
                            "--password", PASSWORD)
    world.admin_json("admin", "seed", "--mailbox", user["primaryMailboxId"], "--items", "7",
                     "--folder", "inbox", "--seed", "77")
    repo = world.new_repo()

    env = world.env()
    env.pop("GRAPHBOX_CLIENT_SECRET")
    cmd = [graphbox_bin(), "backup", "--repo", repo, "--graph", world.base, "--tenant", DOMAIN,
           "--client-id", app["appId"], "--device-code", "--mailbox", f"desk@{DOMAIN}", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        # The prompt names the verification page and the code, as Entra's does.
        prompt = ""
        deadline = time.time() + 60
        while time.time() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            prompt += line
            if "enter the code" in line:
                break
        m = re.search(r"(https?://\S+/oauth2/deviceauth)\S* and enter the code (\w+)", prompt)
        assert m, f"no device-code prompt on stderr:\n{prompt}"
        uri, code = m.group(1), m.group(2)

        b = Browser()
        entry = b.get(uri)
        page = b.post(uri, {"otc": code, "csrf": hidden(entry, "csrf")})
        assert "Backup Desk" in page, page
        page = b.post(form_action(page, uri), {
            "flow": hidden(page, "flow"), "csrf": hidden(page, "csrf"),
            "login": f"desk@{DOMAIN}", "passwd": PASSWORD})
        if 'name="action"' in page or "value=\"accept\"" in page:
            page = b.post(form_action(page, uri), {
                "flow": hidden(page, "flow"), "csrf": hidden(page, "csrf"),
                "action": "accept"})
        assert "You have signed in to the Backup Desk application" in page, page

        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"backup failed ({proc.returncode}):\n{out}\n{prompt}{err}"
    summary = json.loads(out)
    assert summary["ok"] is True, summary
    [m] = summary["mailboxes"]
    assert m["label"].lower().startswith("desk@"), m
    assert m["failed"] is None and m["errors"] == [], m
    assert m["items"] == 7 and m["exported"] == 7, m

    # The snapshot holds every seeded item, as exported with the user's own token.
    show = world.client_json("snapshots", "--repo", repo, "show", m["snapshot"], "--items")
    assert len(show["items"]) == 7, show
    v = world.client_json("verify", "--repo", repo, "--read-data")
    assert v["ok"] is True and v["problems"] == [], v
