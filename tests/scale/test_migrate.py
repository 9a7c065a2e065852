"""`graphbox admin migrate`: a real SQLite + local-files deployment is copied to
a fresh PostgreSQL database and an S3 prefix (the throwaway services of
scripts/services.sh), and the server started on the copy must be the same
deployment:

* every item of every mailbox exports the same bytes (and change key);
* delta links (items and folders) taken before the migration still work and
  return exactly the changes made after them;
* an access token, an import URL and an app's client secret issued before the
  migration are still accepted (signing keys, import MAC key and the identity
  directory moved with the data);
* the row counts printed by the command match, every blob is verified;
* bad input is refused clearly, and a refused migration changes nothing.

Needs GRAPHBOX_TEST_POSTGRES_URL, GRAPHBOX_TEST_S3_URL and the AWS_* variables
(`eval "$(scripts/services.sh start)"`); fails, never skips, without them.
"""

from __future__ import annotations

import base64
import json
import pathlib
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from test_two_instances import Server, graphbox_bin, psql, required

ROLES = ("User.Read.All,MailboxFolder.ReadWrite.All,MailboxItem.ReadWrite.All,"
         "MailboxFolder.Read.All,MailboxItem.Read.All,"
         "MailboxItem.ImportExport.All")
MBX = "/beta/admin/exchange/mailboxes"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [graphbox_bin(), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def call(method: str, url: str, token: str | None = None, body=None, form=None):
    headers = {}
    data = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw) if raw else None
        except ValueError:
            return e.code, raw.decode(errors="replace")


def on(server: Server, link: str) -> str:
    u = urllib.parse.urlsplit(link)
    return server.base + u.path + ("?" + u.query if u.query else "")


def pages(server: Server, url: str, token: str):
    """Every entry of a paged collection or delta round, and its deltaLink."""
    out = []
    while True:
        status, body = call("GET", on(server, url), token)
        assert status == 200, body
        out += body["value"]
        if "@odata.nextLink" in body:
            url = body["@odata.nextLink"]
        else:
            return out, body.get("@odata.deltaLink")


def all_folders(server: Server, token: str, mbx: str) -> list[dict]:
    """The whole folder tree, hidden folders included."""
    out, todo = [], ["root"]
    while todo:
        fid = urllib.parse.quote(todo.pop(), safe="")
        children, _ = pages(server, f"{server.base}{MBX}/{mbx}/folders/{fid}/childFolders"
                                    "?includeHiddenFolders=true&$top=100", token)
        out += children
        todo += [c["id"] for c in children]
    return out


def snapshot(server: Server, token: str, mailboxes: list[str]):
    """For every item of every mailbox: folder, changeKey and exported bytes;
    and every folder's item count."""
    items, counts = {}, {}
    for mbx in mailboxes:
        for f in all_folders(server, token, mbx):
            counts[f["id"]] = f["totalItemCount"]
            fid = urllib.parse.quote(f["id"], safe="")
            listed, _ = pages(server, f"{server.base}{MBX}/{mbx}/folders/{fid}/items?$top=50",
                              token)
            ids = [i["id"] for i in listed]
            for k in range(0, len(ids), 20):
                status, body = call("POST", f"{server.base}{MBX}/{mbx}/exportItems", token,
                                    {"itemIds": ids[k:k + 20]})
                assert status == 200, body
                for e in body["value"]:
                    assert "error" not in e, e
                    items[e["itemId"]] = (mbx, f["id"], e["changeKey"],
                                          base64.b64decode(e["data"]))
    return items, counts


def changes(entries: list[dict]) -> tuple[set[str], set[str]]:
    upserts = {e["id"] for e in entries if "@removed" not in e}
    removed = {e["id"] for e in entries if "@removed" in e}
    return upserts, removed


@pytest.fixture(scope="module")
def target():
    server = required("GRAPHBOX_TEST_POSTGRES_URL")
    s3 = required("GRAPHBOX_TEST_S3_URL")
    db = f"gb_mig_{uuid.uuid4().hex[:12]}"
    psql(server, f"CREATE DATABASE {db}")
    u = urllib.parse.urlsplit(server)
    meta = urllib.parse.urlunsplit((u.scheme, u.netloc, f"/{db}", u.query, u.fragment))
    return {"meta": meta, "blobs": s3.rstrip("/") + f"/mig-{uuid.uuid4().hex[:12]}"}


def pg_count(meta: str, table: str) -> int:
    res = subprocess.run(["psql", "-tA", meta, "-c", f"SELECT COUNT(*) FROM {table}"],
                         check=True, capture_output=True, text=True)
    return int(res.stdout.strip())


def test_sqlite_deployment_moves_to_postgres_and_s3(target):
    data = pathlib.Path(tempfile.mkdtemp(prefix="graphbox-mig-src-"))
    d = ["--data-dir", str(data)]
    run("admin", "tenant", "create", "--domain", "mig.test", "--name", "Mig", *d)
    users = [json.loads(run("admin", "user", "create", "--tenant", "mig.test", "--upn", upn,
                            "--name", upn, *extra, "--json", *d).stdout)
             for upn, extra in (("ann@mig.test", ["--archive"]), ("bob@mig.test", []))]
    mailboxes = [users[0]["primaryMailboxId"], users[0]["archiveMailboxId"],
                 users[1]["primaryMailboxId"]]
    ann, archive, bob = mailboxes
    run("admin", "seed", "--mailbox", ann, "--items", "30", "--folder", "inbox", *d)
    run("admin", "seed", "--mailbox", ann, "--items", "8", "--folder", "sentitems", "--seed",
        "2", *d)
    run("admin", "seed", "--mailbox", archive, "--items", "5", "--folder", "inbox", "--seed",
        "3", *d)
    run("admin", "seed", "--mailbox", bob, "--items", "12", "--folder", "inbox", "--seed",
        "4", *d)
    app = json.loads(run("admin", "app", "create", "--tenant", "mig.test", "--name", "Sync",
                         "--json", *d).stdout)
    run("admin", "app", "permission", "add", "--app", app["appId"], "--permission",
        "MailboxItem.Read.All", *d)
    run("admin", "consent", "grant", "--app", app["appId"], *d)
    secret = json.loads(run("admin", "app", "secret", "add", "--app", app["appId"], "--json",
                            *d).stdout)["secretText"]

    src = Server({"meta": f"sqlite://{data}/meta.sqlite", "blobs": (data / "blobs").as_uri()})
    try:
        token = run("token", "--tenant", "mig.test", "--roles", ROLES, *d).stdout.strip()
        inbox = f"{src.base}{MBX}/{ann}/folders/inbox"
        # Writes that leave tombstones and new content: a folder with an
        # imported copy, an updated item, deleted items, a deleted folder.
        status, f = call("POST", f"{src.base}{MBX}/{ann}/folders", token,
                         {"displayName": "Projects"})
        assert status == 201, f
        status, gone = call("POST", f"{src.base}{MBX}/{ann}/folders", token,
                            {"displayName": "Old stuff"})
        assert status == 201, gone
        listed, _ = pages(src, inbox + "/items?$top=50", token)
        ids = [i["id"] for i in listed]
        status, exp = call("POST", f"{src.base}{MBX}/{ann}/exportItems", token,
                           {"itemIds": ids[:2]})
        assert status == 200, exp
        status, session = call("POST", f"{src.base}{MBX}/{ann}/createImportSession", token, {})
        assert status == 200, session
        import_url = session["importUrl"]
        status, imp = call("POST", on(src, import_url), None,
                           {"FolderId": f["id"], "Mode": "create", "Data": exp["value"][0]["data"]})
        assert status == 200, imp
        status, upd = call("POST", on(src, import_url), None,
                           {"FolderId": "inbox", "Mode": "update", "Data": exp["value"][1]["data"],
                            "ItemId": ids[2], "ChangeKey": listed[2]["changeKey"]})
        assert status == 200, upd
        for i in ids[3:6]:
            status, body = call("DELETE", f"{inbox}/items/{urllib.parse.quote(i, safe='')}"
                                "?disposalType=hardDelete", token)
            assert status == 204, body
        status, body = call("DELETE", f"{src.base}{MBX}/{ann}/folders/{gone['id']}", token)
        assert status == 204, body

        # Delta state before the migration: the inbox's items and the folders.
        _, item_link = pages(src, inbox + "/items/delta", token)
        _, folder_link = pages(src, f"{src.base}{MBX}/{ann}/folders/delta", token)
        assert item_link and folder_link
        before, counts_before = snapshot(src, token, mailboxes)
        assert len(before) == 30 + 8 + 5 + 12 + 1 - 3
    finally:
        src.stop()

    # A non-SQLite, unreachable or identical target is refused up front.
    src_url = f"sqlite://{data}/meta.sqlite"
    bad = run("admin", "migrate", "--from", src_url, "--to", "mysql://x/y", check=False)
    assert bad.returncode != 0 and "unsupported metadata store URL" in bad.stderr, bad.stderr
    bad = run("admin", "migrate", "--from", src_url, "--to", src_url, check=False)
    assert bad.returncode != 0 and "same metadata store" in bad.stderr, bad.stderr
    bad = run("admin", "migrate", "--from", src_url, "--to", "postgres://nobody@127.0.0.1:1/x",
              "--to-blobs", target["blobs"], check=False)
    assert bad.returncode != 0 and "cannot open the PostgreSQL database" in bad.stderr, bad.stderr
    bad = run("admin", "migrate", "--from", src_url, "--to", target["meta"], check=False)
    assert bad.returncode != 0 and "--to-blobs is required" in bad.stderr, bad.stderr
    bad = run("admin", "migrate", "--from", f"sqlite://{data}/nope.sqlite", "--to",
              target["meta"], "--to-blobs", target["blobs"], check=False)
    assert bad.returncode != 0 and "does not exist" in bad.stderr, bad.stderr

    res = run("admin", "migrate", "--from", src_url, "--to", target["meta"],
              "--to-blobs", target["blobs"], "--batch-size", "7", "--json")
    summary = json.loads(res.stdout)
    tables = {t["table"]: t for t in summary["tables"]}
    assert all(t["source"] == t["target"] for t in tables.values())
    assert tables["items"]["target"] == len(before)
    assert tables["tombstones"]["target"] >= 4
    assert tables["dir_apps"]["target"] == 1 and tables["dir_secrets"]["target"] == 1
    # The two imports keep their content in the metadata (it moves with the
    # tables); every other blob is copied to the target blob store.
    blobs = summary["blobs"]
    assert blobs["inline"] == 2, blobs
    assert blobs["copied"] + blobs["inline"] == blobs["blobs"] > 2, blobs
    verified = summary["verifiedBlobs"]
    assert verified["copied"] + verified["inline"] == blobs["blobs"], verified
    assert pg_count(target["meta"], "items") == len(before)

    # Migrating again into the (now non-empty) target is refused; nothing changes.
    again = run("admin", "migrate", "--from", src_url, "--to", target["meta"],
                "--to-blobs", target["blobs"], check=False)
    assert again.returncode != 0, again.stdout
    assert "not empty" in again.stderr and "nothing was changed" in again.stderr, again.stderr
    assert pg_count(target["meta"], "items") == len(before)

    dst = Server(target)
    try:
        # The old token is accepted: the signing key moved with the settings.
        after, counts_after = snapshot(dst, token, mailboxes)
        assert after == before, "every item exports identical bytes with the same change key"
        assert counts_after == counts_before

        # The import URL of a session created before the migration still works.
        status, imp2 = call("POST", on(dst, import_url), None,
                            {"FolderId": "inbox", "Mode": "create",
                             "Data": exp["value"][0]["data"]})
        assert status == 200, imp2
        # ... and is exactly what the old item delta link now reports.
        dinbox = f"{dst.base}{MBX}/{ann}/folders/inbox"
        got, _ = pages(dst, on(dst, item_link), token)
        assert changes(got) == ({imp2["itemId"]}, set()), got
        # One deletion: the same old link reports both changes, nothing else.
        victim = ids[10]
        status, body = call("DELETE", f"{dinbox}/items/{urllib.parse.quote(victim, safe='')}"
                            "?disposalType=hardDelete", token)
        assert status == 204, body
        got, _ = pages(dst, on(dst, item_link), token)
        assert changes(got) == ({imp2["itemId"]}, {victim}), got

        # The old folder delta link sees exactly a folder created now.
        _, nothing = call("GET", on(dst, folder_link), token)
        assert nothing["value"] == [], nothing
        status, nf = call("POST", f"{dst.base}{MBX}/{ann}/folders", token,
                          {"displayName": "After the move"})
        assert status == 201, nf
        got, _ = pages(dst, on(dst, folder_link), token)
        assert [e["id"] for e in got] == [nf["id"]], got

        # The identity directory moved: the old client secret gets a token
        # from the identity endpoints, now served on PostgreSQL.
        tenant_id = users[0]["tenantId"]
        status, tok = call("POST", f"{dst.base}/{tenant_id}/oauth2/v2.0/token", form={
            "grant_type": "client_credentials", "client_id": app["appId"],
            "client_secret": secret, "scope": "https://graph.microsoft.com/.default"})
        assert status == 200, tok
        status, body = call("GET", f"{dinbox}/items?$top=1", tok["access_token"])
        assert status == 200, body
    finally:
        dst.stop()
