"""exportItems, createImportSession (msgraph-sdk and msgraph-beta-sdk), the import
upload through plain HTTP (httpx, no Authorization header), folder and item writes
through the SDKs, and a crash test: kill -9 during concurrent imports, restart,
every acknowledged import is there with identical bytes, `graphbox admin check`
passes."""

from __future__ import annotations

import base64
import os
import signal
import tempfile
import threading

import httpx
import pytest

from conftest import Graphbox, make_client

IMPEX_ROLES = ",".join([
    "MailboxItem.ImportExport.All", "MailboxItem.Read.All", "MailboxFolder.Read.All",
    "MailboxFolder.ReadWrite.All", "MailboxItem.ReadWrite.All", "User.Read.All",
])


def impex_token(world):
    return world["gb"].token("contoso.test", roles=IMPEX_ROLES)


async def inbox_ids(client, mailbox_id, n):
    page = await client.admin.exchange.mailboxes.by_mailbox_id(mailbox_id) \
        .folders.by_mailbox_folder_id("inbox").items.get()
    return [i.id for i in page.value[:n]]


def upload(url, folder, data, mode="create", item_id=None, change_key=None):
    body = {"FolderId": folder, "Mode": mode, "Data": base64.b64encode(data).decode()}
    if item_id:
        body["ItemId"] = item_id
        body["ChangeKey"] = change_key
    r = httpx.post(url, json=body, timeout=60)
    return r


@pytest.mark.parametrize("beta", [False, True])
async def test_export_and_import_through_the_sdks(world, beta):
    from msgraph.generated.admin.exchange.mailboxes.item.export_items.export_items_post_request_body import \
        ExportItemsPostRequestBody as V1Body
    from msgraph_beta.generated.admin.exchange.mailboxes.item.export_items.export_items_post_request_body import \
        ExportItemsPostRequestBody as BetaBody

    token = impex_token(world)
    client = make_client(world["base"], token, beta=beta)
    megan = world["megan"]["primaryMailboxId"]
    alex = world["alex"]["primaryMailboxId"]
    ids = await inbox_ids(client, megan, 3)
    body_cls = BetaBody if beta else V1Body
    res = await client.admin.exchange.mailboxes.by_mailbox_id(megan).export_items.post(
        body_cls(item_ids=ids + ["not-an-item"]))
    values = res.value
    assert [v.item_id for v in values] == ids + ["not-an-item"]
    assert all(v.data for v in values[:3])
    assert values[3].error.code == "ErrorItemNotFound"
    assert not values[3].data

    session = await client.admin.exchange.mailboxes.by_mailbox_id(alex) \
        .create_import_session.post()
    assert f"/api/g{'beta' if beta else 'v1.0'}/Mailboxes('{alex}')/importItem?authtoken=" \
        in session.import_url
    assert session.expiration_date_time is not None
    r = upload(session.import_url, "inbox", values[0].data)
    assert r.status_code == 200, r.text
    new_id = r.json()["itemId"]
    again = await client.admin.exchange.mailboxes.by_mailbox_id(alex).export_items.post(
        body_cls(item_ids=[new_id]))
    assert again.value[0].data == values[0].data

    # Update mode with the current change key, then a stale one.
    ck = r.json()["changeKey"]
    r2 = upload(session.import_url, "inbox", values[1].data, "update", new_id, ck)
    assert r2.status_code == 200, r2.text
    assert r2.json()["itemId"] == new_id and r2.json()["changeKey"] != ck
    r3 = upload(session.import_url, "inbox", values[2].data, "update", new_id, ck)
    assert r3.status_code == 409
    assert r3.json()["error"]["code"] == "ErrorIrresolvableConflict"

    # A tampered token and invalid data are refused.
    bad = session.import_url[:-3] + ("AAA" if not session.import_url.endswith("AAA") else "BBB")
    assert upload(bad, "inbox", values[0].data).status_code == 401
    # A refusal decided before the body is read reaches a client that is
    # still sending a large one: the 401 in the error envelope, not a broken
    # connection (8 MB of FTS, 11 MB of JSON; and 8 MB of ids to exportItems
    # through the SDK with a token that is not one).
    r5 = upload(bad, "inbox", bytes(8 << 20))
    assert r5.status_code == 401 and r5.json()["error"]["code"], r5.text
    from kiota_abstractions.api_error import APIError
    stranger = make_client(world["base"], "not-a-token", beta=beta)
    with pytest.raises(APIError) as refused:
        await stranger.admin.exchange.mailboxes.by_mailbox_id(megan).export_items.post(
            body_cls(item_ids=["x" * (400 << 10)] * 20))
    assert refused.value.response_status_code == 401
    r4 = upload(session.import_url, "inbox", b"\x01\x00\x00\x00garbage")
    assert r4.status_code == 400 and "at byte" in r4.json()["error"]["message"]

    # Item delete through the SDK (the disposalType query is not modelled: with_url).
    item = client.admin.exchange.mailboxes.by_mailbox_id(alex).folders \
        .by_mailbox_folder_id("inbox").items.by_mailbox_item_id(new_id)
    version = "beta" if beta else "v1.0"
    await item.with_url(
        f"{world['base']}/{version}/admin/exchange/mailboxes/{alex}/folders/inbox/items/"
        f"{new_id}?disposalType=hardDelete").delete()
    with pytest.raises(APIError):
        await item.get()


async def test_folder_writes_through_the_beta_sdk(world):
    from msgraph_beta.generated.models.mailbox_folder import MailboxFolder

    client = make_client(world["base"], impex_token(world), beta=True)
    megan = client.admin.exchange.mailboxes.by_mailbox_id(world["megan"]["primaryMailboxId"])
    created = await megan.folders.post(MailboxFolder(display_name="SDK folder", type="IPF.Note"))
    assert created.id and created.display_name == "SDK folder" and created.type == "IPF.Note"
    child = await megan.folders.by_mailbox_folder_id(created.id).child_folders.post(
        MailboxFolder(display_name="SDK child"))
    assert child.parent_folder_id == created.id
    parent = await megan.folders.by_mailbox_folder_id(created.id).get()
    assert parent.child_folder_count == 1
    renamed = await megan.folders.by_mailbox_folder_id(created.id).patch(
        MailboxFolder(display_name="SDK folder 2"))
    assert renamed.display_name == "SDK folder 2"
    from kiota_abstractions.api_error import APIError
    with pytest.raises(APIError) as e:
        await megan.folders.by_mailbox_folder_id(created.id).patch(
            MailboxFolder(type="IPF.Contact"))
    assert e.value.response_status_code == 400
    with pytest.raises(APIError) as e:
        await megan.folders.post(MailboxFolder(display_name="SDK folder 2", type="IPF.Note"))
    assert e.value.response_status_code == 409
    with pytest.raises(APIError) as e:
        await megan.folders.by_mailbox_folder_id("inbox").delete()
    assert e.value.response_status_code == 400
    await megan.folders.by_mailbox_folder_id(created.id).delete()
    with pytest.raises(APIError) as e:
        await megan.folders.by_mailbox_folder_id(created.id).get()
    assert e.value.response_status_code == 404


def test_kill_9_during_concurrent_imports():
    gb = Graphbox(tempfile.mkdtemp(prefix="graphbox-crash-"))
    gb.json("admin", "tenant", "create", "--domain", "crash.test", "--name", "Crash")
    src = gb.json("admin", "user", "create", "--tenant", "crash.test", "--upn", "a@crash.test",
                  "--name", "A")
    dst = gb.json("admin", "user", "create", "--tenant", "crash.test", "--upn", "b@crash.test",
                  "--name", "B")
    gb.json("admin", "seed", "--mailbox", src["primaryMailboxId"], "--items", "120",
            "--folder", "inbox")
    base = gb.start()
    token = gb.token("crash.test", roles=IMPEX_ROLES)
    h = {"Authorization": f"Bearer {token}"}
    src_id, dst_id = src["primaryMailboxId"], dst["primaryMailboxId"]
    listing = httpx.get(f"{base}/v1.0/admin/exchange/mailboxes/{src_id}/folders/inbox/items"
                        "?$top=200&$select=id", headers=h, timeout=30).json()
    ids = [v["id"] for v in listing["value"]]
    assert len(ids) == 120
    datas = []
    for i in range(0, len(ids), 20):
        r = httpx.post(f"{base}/v1.0/admin/exchange/mailboxes/{src_id}/exportItems",
                       json={"itemIds": ids[i:i + 20]}, headers=h, timeout=60)
        datas += [v["data"] for v in r.json()["value"]]
    url = httpx.post(f"{base}/v1.0/admin/exchange/mailboxes/{dst_id}/createImportSession",
                     headers=h, timeout=30).json()["importUrl"]

    acked: list[tuple[str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(k):
        with httpx.Client(timeout=30) as c:
            n = k
            while not stop.is_set():
                data = datas[n % len(datas)]
                n += 8
                try:
                    r = c.post(url, json={"FolderId": "inbox", "Mode": "create", "Data": data})
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    with lock:
                        acked.append((r.json()["itemId"], data))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    while True:
        with lock:
            if len(acked) >= 150:
                break
        if gb.proc.poll() is not None:
            break
    os.kill(gb.proc.pid, signal.SIGKILL)
    gb.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    gb.proc = None
    assert len(acked) >= 150

    base = gb.start()
    try:
        for i in range(0, len(acked), 20):
            chunk = acked[i:i + 20]
            r = httpx.post(f"{base}/v1.0/admin/exchange/mailboxes/{dst_id}/exportItems",
                           json={"itemIds": [c[0] for c in chunk]}, headers=h, timeout=60)
            assert r.status_code == 200
            for (item_id, data), v in zip(chunk, r.json()["value"]):
                assert v["itemId"] == item_id
                assert v.get("data") == data, v.get("error")
        inbox = httpx.get(f"{base}/v1.0/admin/exchange/mailboxes/{dst_id}/folders/inbox",
                          headers=h, timeout=30).json()
        assert inbox["totalItemCount"] >= len(acked)
    finally:
        gb.stop()
    res = gb.run("admin", "check")
    assert "store OK" in res.stdout, res.stdout + res.stderr
