"""End to end: the backup client against a real graphbox server.

Full and incremental backups of two mailboxes, snapshot listing and diffs,
restores (whole snapshot into another user's empty mailbox, one item, to
.fts files, dry runs), the restore journal, a restore interrupted with
Ctrl-C and continued, wrong passwords, a corrupted pack, a backup killed
with SIGKILL and resumed, two backups racing for one
repository, and prune; the whole cycle again with the repository on the S3
emulator and on Azurite. Every check compares real bytes exported by the
server, never the client's own claims alone.

Run by scripts/test.sh (`.venv/bin/python -m pytest -q tests/backup`);
needs the debug binary (GRAPHBOX_BIN or $CARGO_TARGET_DIR/debug/graphbox)
and, for the object-store cycle, the emulators' environment
(`scripts/services.sh start`; the test fails with instructions without it).
"""

from __future__ import annotations

import collections
import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import DOMAIN, graphbox_bin


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def mailbox_content(g, mbx: str) -> dict[str, tuple[str, str, bytes]]:
    """item id -> (folder path, changeKey, exported bytes) of every item."""
    items = g.all_items(mbx)
    data = g.export(mbx, [i["id"] for _, i in items])
    return {i["id"]: (path, i.get("changeKey", ""), data[i["id"]]) for path, i in items}


def summary_of(result: dict, user: str) -> dict:
    for m in result["mailboxes"]:
        if m["label"].lower().startswith(user):
            return m
    raise AssertionError(f"no summary for {user} in {json.dumps(result, indent=1)}")


@pytest.fixture(scope="module")
def first(world):
    """megan and alex seeded (nested folders included), one repository,
    the first backup, and what the server exported at that time."""
    w = world
    g0 = None
    for name in ("megan", "alex"):
        w.user(name)
    w.seed("megan", "inbox", 60, 11)
    w.seed("megan", "calendar", 8, 12)
    w.seed("alex", "inbox", 45, 21)
    w.seed("alex", "sentitems", 25, 22)
    g0 = w.graph()
    mb = w.mbx("megan")
    projects = g0.call("POST", f"{g0.mbx(mb)}/folders/inbox/childFolders",
                       {"displayName": "Projects"}, expect=(201,))
    year = g0.call("POST", f"{g0.mbx(mb)}/folders/{projects['id']}/childFolders",
                   {"displayName": "2026"}, expect=(201,))
    top = g0.call("POST", f"{g0.mbx(mb)}/folders", {"displayName": "Receipts"}, expect=(201,))
    w.seed("megan", projects["id"], 25, 13)
    w.seed("megan", year["id"], 15, 14)
    w.seed("megan", top["id"], 10, 15)

    g = w.graph()
    source = {n: mailbox_content(g, w.mbx(n)) for n in ("megan", "alex")}
    assert len(source["megan"]) == 118 and len(source["alex"]) == 70
    repo = w.new_repo()
    result = w.backup(repo, "megan", "alex")
    snaps = {n: summary_of(result, n) for n in ("megan", "alex")}
    return {"repo": repo, "source": source, "result": result, "snaps": snaps,
            "folders": {"projects": projects, "year": year, "top": top}}


def test_first_backup_lists_and_verifies(world, first):
    w, repo = world, first["repo"]
    assert first["result"]["ok"] is True
    for name, n in (("megan", 118), ("alex", 70)):
        s = first["snaps"][name]
        assert s["failed"] is None and s["errors"] == []
        assert s["items"] == n and s["exported"] == n
        assert s["reused"] == 0 and s["resumed"] == 0 and s["parent"] is None
        assert s["exported_bytes"] == sum(len(v[2]) for v in first["source"][name].values())
    megan = first["snaps"]["megan"]
    assert megan["folders"] >= 5

    listed = w.client_json("snapshots", "--repo", repo)
    assert sorted(s["id"] for s in listed) == sorted(s["snapshot"] for s in first["snaps"].values())
    by_id = {s["id"]: s for s in listed}
    assert by_id[megan["snapshot"]]["item_count"] == 118
    text = w.client("snapshots", "--repo", repo).stdout
    assert "2 snapshots" in text and f"megan@{DOMAIN}" in text.lower()

    v = w.client_json("verify", "--repo", repo, "--read-data")
    assert v["ok"] is True and v["problems"] == []
    assert v["blobs"] >= 188

    # The snapshot records every item with its folder path.
    show = w.client_json("snapshots", "--repo", repo, "show", megan["snapshot"], "--items")
    assert sorted(i["id"] for i in show["items"]) == sorted(first["source"]["megan"])


@pytest.fixture(scope="module")
def second(world, first):
    """A new item, an updated one, a deleted one, a moved one and a renamed
    folder in megan's mailbox; then the second backup."""
    w = world
    g = w.graph()
    mb = w.mbx("megan")
    src = first["source"]["megan"]
    alex_bytes = [v[2] for v in first["source"]["alex"].values()]
    inbox = sorted(i for i, v in src.items() if v[0] == "/Inbox")
    calendar = sorted(i for i, v in src.items() if v[0] == "/Calendar")

    new = g.import_item(mb, "inbox", alex_bytes[0])
    to_update = inbox[0]
    updated = g.import_item(mb, "inbox", alex_bytes[1], item_id=to_update,
                            change_key=src[to_update][1])
    assert updated["itemId"] == to_update
    deleted = calendar[0]
    g.call("DELETE", f"{g.mbx(mb)}/folders/calendar/items/{deleted}?disposalType=hardDelete",
           expect=(204,))
    moved = inbox[1]
    w.admin("admin", "item", "move", "--mailbox", mb, "--id", moved,
            "--to", first["folders"]["top"]["id"])
    year = first["folders"]["year"]["id"]
    g.call("PATCH", f"{g.mbx(mb)}/folders/{year}", {"displayName": "2026-old"})

    after = mailbox_content(g, mb)
    before_keys = {(i, v[1]) for i, v in src.items()}
    changed = {i for i, v in after.items() if (i, v[1]) not in before_keys}
    result = w.backup(first["repo"], "megan", "alex")
    return {"result": result, "after": after, "changed": changed, "new": new["itemId"],
            "updated": to_update, "deleted": deleted, "moved": moved}


def test_incremental_backup_exports_only_changes(world, first, second):
    w, repo = world, first["repo"]
    m = summary_of(second["result"], "megan")
    a = summary_of(second["result"], "alex")
    assert second["result"]["ok"] is True
    # Exactly the items whose change key changed were exported: the new and
    # the updated one, and the moved one when a move changes its key.
    changed = second["changed"]
    assert {second["new"], second["updated"]} <= changed <= {
        second["new"], second["updated"], second["moved"]}
    assert m["parent"] == first["snaps"]["megan"]["snapshot"]
    assert m["exported"] == len(changed)
    assert m["items"] == 118 and len(second["after"]) == 118
    assert m["reused"] == 118 - len(changed)
    assert m["full_delta"] is False
    assert m["removed"] == 1  # the deleted one; the moved one is still there
    assert a["exported"] == 0 and a["reused"] == 70 and a["items"] == 70

    d = w.client_json("snapshots", "--repo", repo, "diff",
                      first["snaps"]["megan"]["snapshot"], m["snapshot"])
    assert [i["id"] for i in d["itemsAdded"]] == [second["new"]]
    assert [i["id"] for i in d["itemsRemoved"]] == [second["deleted"]]
    ch = {c["id"]: c for c in d["itemsChanged"]}
    assert set(ch) == {second["updated"], second["moved"]}
    assert ch[second["updated"]]["contentChanged"] is True
    assert ch[second["updated"]]["moved"] is False
    assert ch[second["moved"]]["moved"] is True
    assert ch[second["moved"]]["contentChanged"] is False
    assert ch[second["moved"]]["from"] == "/Inbox" and ch[second["moved"]]["to"] == "/Receipts"
    assert d["foldersRenamed"] == [{"from": "/Inbox/Projects/2026",
                                    "to": "/Inbox/Projects/2026-old"}]
    assert d["foldersAdded"] == [] and d["foldersRemoved"] == []

    # The snapshot holds exactly what the server has now.
    show = w.client_json("snapshots", "--repo", repo, "show", m["snapshot"], "--items")
    assert {i["id"] for i in show["items"]} == set(second["after"])
    d_alex = w.client_json("snapshots", "--repo", repo, "diff",
                           first["snaps"]["alex"]["snapshot"], a["snapshot"])
    assert d_alex["itemsAdded"] == d_alex["itemsRemoved"] == d_alex["itemsChanged"] == []


def test_restore_first_snapshot_into_empty_mailbox(world, first, second):
    w, repo = world, first["repo"]
    snap = first["snaps"]["megan"]["snapshot"]
    w.user("rita")
    r = w.restore(repo, snap, "--to", f"rita@{DOMAIN}")
    assert r["selected"] == 118 and r["imported"] == 118 and r["failed"] == []
    assert "/Inbox/Projects/2026" in r["folders_created"]
    assert "/Receipts" in r["folders_created"]

    g = w.graph()
    target = mailbox_content(g, w.mbx("rita"))
    want = collections.Counter((v[0], sha(v[2])) for v in first["source"]["megan"].values())
    got = collections.Counter((v[0], sha(v[2])) for v in target.values())
    assert got == want

    # The journal: the same restore again imports nothing.
    again = w.restore(repo, snap, "--to", f"rita@{DOMAIN}")
    assert again["imported"] == 0 and again["updated"] == 0
    assert again["skipped_already_restored"] == 118
    assert len(g.all_items(w.mbx("rita"))) == 118


def test_find_single_item_files_and_dry_run(world, first, second):
    w, repo = world, first["repo"]
    snap = first["snaps"]["megan"]["snapshot"]
    show = w.client_json("snapshots", "--repo", repo, "show", snap, "--items")
    subjects = [i["subject"] or "" for i in show["items"]]
    pick = next(i for i in show["items"]
                if i["subject"] and sum(i["subject"].lower() in s.lower() for s in subjects) == 1)
    hits = w.client_json("find", "--repo", repo, "--snapshot", snap, "--subject", pick["subject"])
    assert [h["item"]["id"] for h in hits] == [pick["id"]]
    none = w.client_json("find", "--repo", repo, "--subject", "no such subject at all 42")
    assert none == []

    # One item into another mailbox.
    w.user("ivy")
    r = w.restore(repo, snap, "--item", pick["id"], "--to", f"ivy@{DOMAIN}")
    assert r["selected"] == 1 and r["imported"] == 1
    g = w.graph()
    got = mailbox_content(g, w.mbx("ivy"))
    src_path, _, src_bytes = first["source"]["megan"][pick["id"]]
    assert [(v[0], v[2]) for v in got.values()] == [(src_path, src_bytes)]

    # An unknown item id is refused.
    bad = w.client("restore", snap, "--repo", repo, *w.conn(), "--item", "AAMkNope",
                   "--to", f"ivy@{DOMAIN}", check=False)
    assert bad.returncode != 0 and "not in the snapshot" in bad.stderr

    # To files: one .fts per item, byte-identical to the export.
    out = w.mkdtemp("fts-")
    files = w.client_json("restore", snap, "--repo", repo, "--to-file", out)
    assert len(files["files"]) == 118
    for f in files["files"]:
        with open(f["path"], "rb") as fh:
            assert fh.read() == first["source"]["megan"][f["itemId"]][2], f
    assert len(glob.glob(os.path.join(out, "**", "*.fts"), recursive=True)) == 118

    # Dry runs change nothing.
    dry_dir = w.mkdtemp("dry-")
    dry_files = w.client_json("restore", snap, "--repo", repo, "--to-file", dry_dir, "--dry-run")
    assert dry_files["dryRun"] is True and len(dry_files["files"]) == 118
    assert os.listdir(dry_dir) == []
    w.user("dora")
    folders_before = sorted(g.folder_paths(w.mbx("dora")).values())
    dry = w.restore(repo, snap, "--to", f"dora@{DOMAIN}", "--dry-run")
    assert dry["dry_run"] is True and dry["imported"] == 118
    assert "/Inbox/Projects/2026" in dry["folders_created"]
    assert g.all_items(w.mbx("dora")) == []
    assert sorted(g.folder_paths(w.mbx("dora")).values()) == folders_before


def test_wrong_password_and_corrupt_pack(world, first, second):
    w = world
    wrong = w.client("snapshots", "--repo", first["repo"], password="not the password",
                     check=False)
    assert wrong.returncode != 0
    assert "wrong password" in wrong.stderr.lower()
    assert "Traceback" not in wrong.stderr and "panicked" not in wrong.stderr

    # A copy of the repository with one byte of a pack changed.
    repo = os.path.join(w.mkdtemp("corrupt-"), "repo")
    shutil.copytree(first["repo"], repo)
    packs = sorted(glob.glob(os.path.join(repo, "data", "*", "*")), key=os.path.getsize)
    pack = packs[-1]
    with open(pack, "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xFF]))
    v = w.client("verify", "--repo", repo, "--read-data", check=False)
    assert v.returncode != 0
    assert os.path.basename(pack) in v.stdout + v.stderr

    # The broken item fails; every other item of the snapshot restores.
    snap = first["snaps"]["megan"]["snapshot"]
    w.user("cora")
    r = w.client("restore", snap, "--repo", repo, *w.conn(), "--to", f"cora@{DOMAIN}",
                 "--json", check=False)
    assert r.returncode != 0
    summary = json.loads(r.stdout)
    assert len(summary["failed"]) >= 1
    assert summary["imported"] == 118 - len(summary["failed"])
    g = w.graph()
    got = mailbox_content(g, w.mbx("cora"))
    assert len(got) == 118 - len(summary["failed"])
    source = {sha(v[2]) for v in first["source"]["megan"].values()}
    assert {sha(v[2]) for v in got.values()} <= source

    # To files likewise: every readable item written, the broken one named.
    out = w.mkdtemp("corrupt-fts-")
    r = w.client("restore", snap, "--repo", repo, "--to-file", out, "--json", check=False)
    assert r.returncode != 0
    files = json.loads(r.stdout)
    assert {f["itemId"] for f in files["failed"]} == {f["itemId"] for f in summary["failed"]}
    assert len(files["files"]) == 118 - len(files["failed"])
    for f in files["files"]:
        with open(f["path"], "rb") as fh:
            assert fh.read() == first["source"]["megan"][f["itemId"]][2], f


@pytest.fixture(scope="module")
def big(world):
    """kate: 3,000 items (slow enough to interrupt a backup)."""
    w = world
    w.user("kate")
    w.seed("kate", "inbox", 3000, 31)
    return 3000


def wait_for(pred, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_backup_resumes(world, big):
    w = world
    repo = w.new_repo()
    cmd = [graphbox_bin(), "backup", "--repo", repo, *w.conn(), "--mailbox", f"kate@{DOMAIN}",
           "--checkpoint-items", "200", "--json"]
    p = subprocess.Popen(cmd, env=w.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state = os.path.join(repo, "state")
    # Kill it once a checkpoint was saved and before it finished.
    wait_for(lambda: p.poll() is not None or (os.path.isdir(state) and os.listdir(state)),
             300, "a checkpoint")
    assert p.poll() is None, "the backup finished before it could be killed: make it bigger"
    p.send_signal(signal.SIGKILL)
    p.wait()
    listed = w.client_json("snapshots", "--repo", repo)
    assert listed == []

    result = w.backup(repo, "kate")
    s = summary_of(result, "kate")
    assert result["ok"] is True
    assert s["items"] == big
    assert s["resumed"] > 0
    assert s["exported"] + s["resumed"] == big
    assert s["exported"] < big
    v = w.client_json("verify", "--repo", repo, "--read-data")
    assert v["ok"] is True, v
    show = w.client_json("snapshots", "--repo", repo, "show", s["snapshot"])
    assert show["itemCount"] == big
    assert os.listdir(state) == []


def test_concurrent_backups_one_fails_fast(world, big):
    w = world
    repo = w.new_repo()
    cmd = [graphbox_bin(), "backup", "--repo", repo, *w.conn(), "--mailbox", f"kate@{DOMAIN}",
           "--json"]
    first = subprocess.Popen(cmd, env=w.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    locks = os.path.join(repo, "locks")
    wait_for(lambda: first.poll() is not None or (os.path.isdir(locks) and os.listdir(locks)),
             120, "the first backup's lock")
    assert first.poll() is None
    t0 = time.time()
    second = w.client("backup", "--repo", repo, *w.conn(), "--mailbox", f"alex@{DOMAIN}",
                      check=False, timeout=60)
    assert time.time() - t0 < 30
    assert second.returncode != 0
    assert "locked" in second.stderr.lower()
    assert first.poll() is None, "the second backup must not disturb the first"
    out, err = first.communicate(timeout=900)
    assert first.returncode == 0, err
    s = summary_of(json.loads(out), "kate")
    assert s["items"] == big and s["exported"] == big
    listed = w.client_json("snapshots", "--repo", repo)
    assert [x["label"].lower() for x in listed] == [f"kate@{DOMAIN}"]


def test_interrupted_restore_continues_without_duplicates(world, big):
    """Ctrl-C during a restore: no further import starts, those in flight
    finish and go into the journal, and the same restore again imports exactly
    the rest: the target ends with every item once."""
    w = world
    repo = w.new_repo()
    snap = summary_of(w.backup(repo, "kate"), "kate")["snapshot"]
    w.user("rosa")
    cmd = [graphbox_bin(), "restore", snap, "--repo", repo, *w.conn(), "--to", f"rosa@{DOMAIN}",
           "--json"]
    p = subprocess.Popen(cmd, env=w.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    state = os.path.join(repo, "state")
    # Interrupt once the journal was first saved (after 200 items or 1 s).
    wait_for(lambda: p.poll() is not None or (os.path.isdir(state) and os.listdir(state)),
             300, "the restore journal")
    assert p.poll() is None, "the restore finished before it could be interrupted: make it bigger"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=300)
    assert p.returncode != 0
    assert "interrupted" in err and "running the same restore again continues" in err, err
    first = json.loads(out)
    done = first["imported"]
    assert 0 < done < big and first["failed"] == [], first
    assert first["interrupted_not_started"] == big - done
    g = w.graph()
    assert len(g.all_items(w.mbx("rosa"))) == done

    again = w.restore(repo, snap, "--to", f"rosa@{DOMAIN}")
    assert again["skipped_already_restored"] == done
    assert again["imported"] == big - done and again["failed"] == []
    assert "interrupted_not_started" not in again
    assert len(g.all_items(w.mbx("rosa"))) == big


def test_prune_keep_last(world, first, second):
    w, repo = world, first["repo"]
    r = w.client_json("prune", "--repo", repo, "--keep-last", "1")
    old = {first["snaps"]["megan"]["snapshot"], first["snaps"]["alex"]["snapshot"]}
    new = {summary_of(second["result"], n)["snapshot"] for n in ("megan", "alex")}
    assert set(r["removed"]) == old
    assert set(r["kept"]) == new
    # The deleted and the pre-update content are no longer used: removed, or
    # left in a pack that is mostly still in use (below the repack threshold).
    assert r["blobsRemoved"] >= 2 or r["unusedBytesKept"] > 0, r
    listed = w.client_json("snapshots", "--repo", repo)
    assert {s["id"] for s in listed} == new
    v = w.client_json("verify", "--repo", repo, "--read-data")
    assert v["ok"] is True, v

    # The kept snapshot still restores, byte for byte.
    out = w.mkdtemp("pruned-")
    snap = summary_of(second["result"], "megan")["snapshot"]
    files = w.client_json("restore", snap, "--repo", repo, "--to-file", out)
    assert len(files["files"]) == 118
    for f in files["files"]:
        with open(f["path"], "rb") as fh:
            assert fh.read() == second["after"][f["itemId"]][2], f

    no_rule = w.client("prune", "--repo", repo, check=False)
    assert no_rule.returncode != 0 and "no retention rule" in no_rule.stderr


def test_mailbox_named_twice_in_one_run(world, first):
    """By user and by id in one run: the second backup of the mailbox is an
    incremental one on top of the first (its head is read again, not taken
    from the run's one reading of the snapshot files)."""
    w = world
    repo = w.new_repo()
    mb = w.mbx("alex")
    result = w.client_json("backup", "--repo", repo, *w.conn(), "--mailbox", f"alex@{DOMAIN}",
                           "--mailbox", mb)
    assert result["ok"] is True, result
    a, b = result["mailboxes"]
    assert a["mailbox"] == b["mailbox"] == mb
    assert a["parent"] is None and a["exported"] == a["items"] > 0
    assert b["parent"] == a["snapshot"], result
    assert b["exported"] == 0 and b["reused"] == a["items"], result


def test_folders_added_and_removed_between_backups(world):
    """A folder deleted (with its subfolder and items) and one created
    between two backups: the incremental run drops the deleted ones without
    recording an error (their item deltas, asked for alongside the folder
    delta, answer 404 and are discarded) and exports the new folder's item."""
    w = world
    w.user("fred")
    w.seed("fred", "inbox", 6, 61)
    mb = w.mbx("fred")
    g = w.graph()
    old = g.call("POST", f"{g.mbx(mb)}/folders", {"displayName": "Old"}, expect=(201,))
    sub = g.call("POST", f"{g.mbx(mb)}/folders/{old['id']}/childFolders",
                 {"displayName": "Sub"}, expect=(201,))
    w.seed("fred", old["id"], 3, 62)
    w.seed("fred", sub["id"], 2, 63)
    repo = w.new_repo()
    s1 = summary_of(w.backup(repo, "fred"), "fred")
    assert s1["failed"] is None and s1["items"] == 11 and s1["errors"] == [], s1

    g.call("DELETE", f"{g.mbx(mb)}/folders/{old['id']}", expect=(204,))
    new = g.call("POST", f"{g.mbx(mb)}/folders", {"displayName": "New"}, expect=(201,))
    inbox_item = next(iter(mailbox_content(g, mb).values()))[2]
    added = g.import_item(mb, new["id"], inbox_item)["itemId"]

    result = w.backup(repo, "fred")
    assert result["ok"] is True, result
    s2 = summary_of(result, "fred")
    assert s2["errors"] == [] and s2["failed"] is None, s2
    assert s2["exported"] == 1 and s2["items"] == 7 and s2["removed"] == 5, s2
    d = w.client_json("snapshots", "--repo", repo, "diff", s1["snapshot"], s2["snapshot"])
    assert d["foldersAdded"] == ["/New"], d
    assert sorted(d["foldersRemoved"]) == ["/Old", "/Old/Sub"], d
    assert [i["id"] for i in d["itemsAdded"]] == [added]
    assert len(d["itemsRemoved"]) == 5
    show = w.client_json("snapshots", "--repo", repo, "show", s2["snapshot"], "--items")
    assert {i["id"] for i in show["items"]} == set(mailbox_content(g, mb))


def test_changes_are_asked_for_ahead_only_from_a_matching_hint(world):
    """Each backup leaves a hint (the mailbox's id and delta links) in the
    cache directory; the next run sends its delta requests and exports what
    they report changed from it while the repository key is derived. A hint
    that is stale, names another mailbox or is damaged is not used: the
    snapshot is what a full backup of the same state records."""
    w = world
    w.user("nina")
    w.seed("nina", "inbox", 40, 81)
    g = w.graph()
    mb = w.mbx("nina")
    repo = w.new_repo()
    cache = w.mkdtemp("cache-")
    hints = os.path.join(cache, "backup-hints")
    run = lambda *extra: summary_of(w.backup(repo, "nina", extra=["--cache-dir", cache, *extra]),
                                    "nina")

    def change(n: int, seed: int) -> set[str]:
        """Replaces the content of n inbox items; their ids."""
        items = sorted(mailbox_content(g, mb).items())
        donor = items[-1][1][2]
        picked = items[seed:seed + n]
        for i, (_, ck, _) in picked:
            g.import_item(mb, "inbox", donor, item_id=i, change_key=ck)
        return {i for i, _ in picked}

    def hint_file() -> str:
        files = os.listdir(hints)
        assert len(files) == 1, files
        return os.path.join(hints, files[0])

    def same_as_full(s: dict) -> None:
        """A --full backup (the next run's parent) records what s does."""
        full = run("--full")
        d = w.client_json("snapshots", "--repo", repo, "diff", s["snapshot"], full["snapshot"])
        assert d["itemsAdded"] == d["itemsRemoved"] == d["itemsChanged"] == [], d

    s1 = run()
    assert s1["failed"] is None and s1["items"] == 40 and s1["prefetched_deltas"] is False, s1
    hint = json.load(open(hint_file()))
    assert hint["mailbox"] == mb and hint["key"] == f"nina@{DOMAIN}", hint
    assert oct(os.stat(hint_file()).st_mode & 0o777) == "0o600"
    # Ids and links only: no folder names.
    assert "Inbox" not in open(hint_file()).read()
    stale = open(hint_file()).read()

    changed = change(3, 0)
    s2 = run()
    assert s2["prefetched_deltas"] is True and s2["prefetched_items"] == 3, s2
    assert s2["exported"] == 3 and s2["reused"] == 37 and s2["failed"] is None, s2
    same_as_full(s2)

    # s1's hint while the parent is a later snapshot: its links would report
    # changes the parent already holds, so it is not used.
    changed = change(2, 10)
    open(hint_file(), "w").write(stale)
    s3 = run()
    assert s3["prefetched_deltas"] is False and s3["prefetched_items"] == 0, s3
    assert s3["exported"] == 2 and s3["failed"] is None, s3
    assert {i["id"] for i in w.client_json("snapshots", "--repo", repo, "diff", s2["snapshot"],
                                            s3["snapshot"])["itemsChanged"]} == changed
    same_as_full(s3)

    # The right links under another mailbox's id: not used either.
    change(1, 20)
    h = json.load(open(hint_file()))
    h["mailbox"] = w.mbx("paul")
    json.dump(h, open(hint_file(), "w"))
    s4 = run()
    assert s4["prefetched_deltas"] is False and s4["exported"] == 1, s4
    assert s4["failed"] is None and s4["errors"] == [], s4
    same_as_full(s4)

    # A damaged hint is ignored and replaced by a good one.
    change(1, 30)
    open(hint_file(), "w").write("{not json")
    s5 = run()
    assert s5["prefetched_deltas"] is False and s5["exported"] == 1, s5
    assert json.load(open(hint_file()))["mailbox"] == mb
    s6 = run()
    assert s6["prefetched_deltas"] is True and s6["exported"] == 0, s6

    # A hint newer than the parent: its links would miss the changes made
    # in between. Here another repository's, taken after those changes.
    mine = hint_file()
    changed = change(2, 5)
    other = w.new_repo()
    summary_of(w.backup(other, "nina", extra=["--cache-dir", cache]), "nina")
    theirs = json.load(open(next(os.path.join(hints, f) for f in os.listdir(hints)
                                 if os.path.join(hints, f) != mine)))
    assert theirs["repository"] == other
    theirs["repository"] = repo
    json.dump(theirs, open(mine, "w"))
    s7 = run()
    assert s7["prefetched_deltas"] is False and s7["exported"] == 2, s7
    assert {i["id"] for i in w.client_json("snapshots", "--repo", repo, "diff", s6["snapshot"],
                                            s7["snapshot"])["itemsChanged"]} == changed
    same_as_full(s7)

    # --no-cache reads and writes no hint.
    shutil.rmtree(hints)
    s8 = run("--no-cache")
    assert s8["prefetched_deltas"] is False and not os.path.exists(hints), s8

    # A cache directory that cannot be written: the backup succeeds and says
    # why the next run will not ask ahead.
    blocked = os.path.join(cache, "not-a-directory")
    open(blocked, "w").write("x")
    res = w.client("backup", "--repo", repo, *w.conn(), "--mailbox", f"nina@{DOMAIN}",
                   "--cache-dir", blocked, "--json")
    assert json.loads(res.stdout)["ok"] is True, res.stdout
    assert "could not write the hint file" in res.stderr and "--cache-dir" in res.stderr, res.stderr


def test_incremental_list_on_a_large_mailbox_equals_a_full_one(world):
    """A list of many chunks: the incremental run reads and rewrites only
    the chunks its changes touch and carries the others as they are. What it
    records must be exactly what a full backup of the same state records."""
    w = world
    w.user("lena")
    w.seed("lena", "inbox", 5000, 71)
    w.seed("lena", "sentitems", 2000, 72)
    g = w.graph()
    mb = w.mbx("lena")
    old = g.call("POST", f"{g.mbx(mb)}/folders", {"displayName": "Old"}, expect=(201,))
    w.seed("lena", old["id"], 20, 73)
    arch = g.call("POST", f"{g.mbx(mb)}/folders", {"displayName": "Arch"}, expect=(201,))
    w.seed("lena", arch["id"], 4000, 74)
    repo = w.new_repo()
    s1 = summary_of(w.backup(repo, "lena"), "lena")
    assert s1["failed"] is None and s1["items"] == 11020, s1

    def listing():
        """item id -> (folder path, changeKey): no content (11,000 items)."""
        return {i["id"]: (path, i.get("changeKey", "")) for path, i in g.all_items(mb)}

    src = listing()
    inbox = sorted(i for i, v in src.items() if v[0] == "/Inbox")
    sent = sorted(i for i, v in src.items() if v[0] == "/Sent Items")
    archived = sorted(i for i, v in src.items() if v[0] == "/Arch")
    donors = g.export(mb, sent[:6] + inbox[7:10])
    sent_id = next(f["id"] for f in g.folders(mb) if f["displayName"] == "Sent Items")
    # Each kind of change in a folder of its own, so that a run missing
    # one kind would carry a stale chunk: updates at both ends of the inbox
    # and in its middle; deletions only in Arch; a move and new items into
    # Sent Items; a folder deleted with its items and a new one.
    for k, i in enumerate([inbox[0], inbox[2500], inbox[-1]]):
        g.import_item(mb, "inbox", donors[sent[k]], item_id=i, change_key=src[i][1])
    for i in (archived[1000], archived[3000]):
        g.call("DELETE", f"{g.mbx(mb)}/folders/{arch['id']}/items/{i}?disposalType=hardDelete",
               expect=(204,))
    w.admin("admin", "item", "move", "--mailbox", mb, "--id", inbox[300], "--to", sent_id)
    g.import_item(mb, "inbox", donors[sent[5]])
    g.import_item(mb, sent_id, donors[inbox[7]])
    g.call("DELETE", f"{g.mbx(mb)}/folders/{old['id']}", expect=(204,))
    new = g.call("POST", f"{g.mbx(mb)}/folders", {"displayName": "New"}, expect=(201,))
    g.import_item(mb, new["id"], donors[inbox[9]])

    after = listing()
    changed = {i for i, v in after.items() if src.get(i, (None, None))[1] != v[1]}
    s2 = summary_of(w.backup(repo, "lena"), "lena")
    assert s2["failed"] is None and s2["errors"] == [] and s2["full_delta"] is False, s2
    assert s2["exported"] == len(changed), (s2, len(changed))
    assert s2["items"] == len(after) == 11020 - 20 - 2 + 3, s2
    assert s2["reused"] == len(after) - len(changed), s2
    assert s2["removed"] == 22, s2
    # The deltas were asked for from the first run's hint (prefetch.rs), and
    # the changed items exported ahead.
    assert s2["prefetched_deltas"] is True and s2["prefetched_items"] == len(changed), s2

    s3 = summary_of(w.backup(repo, "lena", extra=["--full"]), "lena")
    assert s3["failed"] is None and s3["items"] == len(after), s3
    d = w.client_json("snapshots", "--repo", repo, "diff", s2["snapshot"], s3["snapshot"])
    assert d["itemsAdded"] == d["itemsRemoved"] == d["itemsChanged"] == [], d
    shown = [w.client_json("snapshots", "--repo", repo, "show", s["snapshot"], "--items")["items"]
             for s in (s2, s3)]
    assert shown[0] == shown[1]
    assert {i["id"] for i in shown[0]} == set(after)

    # A large folder deleted and nothing else: its chunks are read (to drop
    # its items) because the folder has no delta, not because of any key.
    g.call("DELETE", f"{g.mbx(mb)}/folders/{arch['id']}", expect=(204,))
    s4 = summary_of(w.backup(repo, "lena"), "lena")
    assert s4["failed"] is None and s4["exported"] == 0, s4
    assert s4["items"] == len(after) - 3998 and s4["removed"] == 3998, s4
    # With the deltas asked for ahead, only the chunks holding Arch's items
    # were read.
    assert s4["prefetched_deltas"] is True, s4
    assert 0 < s4["parent_chunks_read"] < s4["parent_chunks"], s4
    s5 = summary_of(w.backup(repo, "lena", extra=["--full"]), "lena")
    shown = [w.client_json("snapshots", "--repo", repo, "show", s["snapshot"], "--items")["items"]
             for s in (s4, s5)]
    assert shown[0] == shown[1] and len(shown[0]) == s4["items"]
    v = w.client_json("verify", "--repo", repo)
    assert v["ok"] is True and v["problems"] == [], v


def object_store_url(var: str) -> str:
    base = os.environ.get(var, "").strip()
    if not base:
        raise AssertionError(
            f"{var} is not set: this test needs the object store emulators. Start them with "
            "`eval \"$(scripts/services.sh start)\"`, or run scripts/test.sh, which does that.")
    return f"{base.rstrip('/')}/backup-e2e-{os.getpid()}-{time.time_ns():x}"


@pytest.mark.parametrize("var,fmt", [("GRAPHBOX_TEST_S3_URL", 2), ("GRAPHBOX_TEST_AZURE_URL", 2),
                                     (None, 1)])
def test_the_whole_cycle_on_object_stores_and_in_format_1(world, var, fmt):
    """Backup, incremental, verify, restore into a mailbox (and again: the
    journal lives in the repository), restore to files, prune: the same
    commands against the S3 emulator and Azurite instead of a directory, and
    in a directory repository of format version 1 (JSON index files and
    item lists, what graphbox releases before format 2 read)."""
    w = world
    name = {"GRAPHBOX_TEST_S3_URL": "olga", "GRAPHBOX_TEST_AZURE_URL": "omar", None: "fiona"}[var]
    w.user(name)
    w.seed(name, "inbox", 12, 41)
    w.seed(name, "sentitems", 5, 42)
    mb = w.mbx(name)
    g = w.graph()
    before = mailbox_content(g, mb)
    repo = object_store_url(var) if var else os.path.join(w.mkdtemp("repo-v1-"), "repo")
    created = w.client_json("init", "--repo", repo, "--format-version", str(fmt))
    assert created["format_version"] == fmt, created
    if var is None:
        # A version this build does not write is refused before anything is created.
        other = os.path.join(w.mkdtemp("repo-v3-"), "repo")
        bad = w.client("init", "--repo", other, "--format-version", "3", check=False)
        assert bad.returncode != 0 and "1..=2" in bad.stderr, bad.stderr
        assert not os.path.exists(other)

    s1 = summary_of(w.backup(repo, name), name)
    assert s1["failed"] is None and s1["exported"] == 17 and s1["items"] == 17, s1
    new = g.import_item(mb, "inbox", next(iter(before.values()))[2])["itemId"]
    s2 = summary_of(w.backup(repo, name), name)
    assert s2["parent"] == s1["snapshot"]
    assert s2["exported"] == 1 and s2["reused"] == 17 and s2["items"] == 18, s2

    v = w.client_json("verify", "--repo", repo, "--read-data")
    assert v["ok"] is True and v["problems"] == [], v

    out = w.mkdtemp("objstore-files-")
    files = w.client_json("restore", s1["snapshot"], "--repo", repo, "--to-file", out)
    assert len(files["files"]) == 17
    for f in files["files"]:
        with open(f["path"], "rb") as fh:
            assert fh.read() == before[f["itemId"]][2], f

    target = f"{name}-restored"
    w.user(target)
    r = w.restore(repo, s2["snapshot"], "--to", f"{target}@{DOMAIN}")
    assert r["imported"] == 18 and r["failed"] == [], r
    after = mailbox_content(g, mb)
    assert new in after
    restored = mailbox_content(g, w.mbx(target))
    assert (collections.Counter((v[0], sha(v[2])) for v in restored.values())
            == collections.Counter((v[0], sha(v[2])) for v in after.values()))
    again = w.restore(repo, s2["snapshot"], "--to", f"{target}@{DOMAIN}")
    assert again["imported"] == 0 and again["skipped_already_restored"] == 18, again

    p = w.client_json("prune", "--repo", repo, "--keep-last", "1")
    assert p["removed"] == [s1["snapshot"]] and p["kept"] == [s2["snapshot"]], p
    listed = w.client_json("snapshots", "--repo", repo)
    assert [s["id"] for s in listed] == [s2["snapshot"]]
    v = w.client_json("verify", "--repo", repo, "--read-data")
    assert v["ok"] is True, v
