"""The read side of the mailbox API through the official v1.0 SDK (msgraph-sdk)."""

from __future__ import annotations

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from conftest import make_client


def mbx(client, mailbox_id):
    return client.admin.exchange.mailboxes.by_mailbox_id(mailbox_id)


async def all_pages(builder, page):
    """Follows @odata.nextLink to the end (Graph pages lists by 10 by default)."""
    values = list(page.value)
    while page.odata_next_link:
        page = await builder.with_url(page.odata_next_link).get()
        values += page.value
    return values


async def test_exchange_settings_gives_primary_mailbox(world):
    client = make_client(world["base"], world["app_token"])
    settings = await client.users.by_user_id("megan@contoso.test").settings.exchange.get()
    assert settings.primary_mailbox_id == world["megan"]["primaryMailboxId"]
    # v1.0 has no inPlaceArchiveMailboxId
    assert "inPlaceArchiveMailboxId" not in (settings.additional_data or {})
    by_id = await client.users.by_user_id(world["megan"]["id"]).settings.exchange.get()
    assert by_id.primary_mailbox_id == world["megan"]["primaryMailboxId"]


async def test_unknown_user_is_404(world):
    client = make_client(world["base"], world["app_token"])
    with pytest.raises(ODataError) as e:
        await client.users.by_user_id("nobody@contoso.test").settings.exchange.get()
    assert e.value.response_status_code == 404
    assert e.value.error.code


async def test_get_mailbox(world):
    client = make_client(world["base"], world["app_token"])
    m = await mbx(client, world["megan"]["primaryMailboxId"]).get()
    assert m.id == world["megan"]["primaryMailboxId"]


async def test_list_folders_standard_tree(world):
    client = make_client(world["base"], world["app_token"])
    folders = mbx(client, world["megan"]["primaryMailboxId"]).folders
    page = await folders.get()
    assert len(page.value) == 10 and page.odata_next_link  # Graph's default page size
    names = {f.well_known_name: f for f in await all_pages(folders, page)}
    for wk in ["inbox", "drafts", "sentitems", "deleteditems", "junkemail", "outbox",
               "archive", "conversationhistory", "calendar", "contacts", "tasks", "notes",
               "journal"]:
        assert wk in names, f"{wk} missing from {sorted(map(str, names))}"
    assert names["calendar"].type == "IPF.Appointment"
    assert names["contacts"].type == "IPF.Contact"
    assert names["inbox"].type == "IPF.Note"
    assert names["inbox"].total_item_count == 30
    assert names["calendar"].total_item_count == 5
    # hidden folders are not listed by default
    assert "recoverableitemsroot" not in names


async def test_include_hidden_folders(world):
    client = make_client(world["base"], world["app_token"])
    folders = mbx(client, world["megan"]["primaryMailboxId"]).folders
    url = f"{world['base']}/v1.0/admin/exchange/mailboxes/{world['megan']['primaryMailboxId']}/folders?includeHiddenFolders=true"
    listed = await all_pages(folders, await folders.with_url(url).get())
    hidden = [f for f in listed if (f.additional_data or {}).get("isHidden")]
    assert any(f.well_known_name == "recoverableitemsroot" for f in hidden)
    assert not any((f.additional_data or {}).get("isHidden") for f in listed
                   if f.well_known_name == "inbox")
    root = next(f for f in listed if f.well_known_name == "recoverableitemsroot")
    kids = await folders.by_mailbox_folder_id(root.id).child_folders.with_url(
        f"{world['base']}/v1.0/admin/exchange/mailboxes/{world['megan']['primaryMailboxId']}/folders/{root.id}/childFolders?includeHiddenFolders=true"
    ).get()
    assert "recoverableitemsdeletions" in {f.well_known_name for f in kids.value}


async def test_filter_select_top_folders(world):
    client = make_client(world["base"], world["app_token"])
    cfg = RequestConfiguration(
        query_parameters=mbx(client, "x").folders.FoldersRequestBuilderGetQueryParameters(
            filter="type eq 'IPF.Appointment'", select=["displayName", "type"], top=5))
    page = await mbx(client, world["megan"]["primaryMailboxId"]).folders.get(
        request_configuration=cfg)
    assert [f.type for f in page.value] == ["IPF.Appointment"]
    assert page.value[0].id
    assert page.value[0].total_item_count is None  # not selected


async def test_folder_by_well_known_name_and_child_folders(world):
    client = make_client(world["base"], world["app_token"])
    m = mbx(client, world["megan"]["primaryMailboxId"])
    inbox = await m.folders.by_mailbox_folder_id("Inbox").get()
    assert inbox.well_known_name == "inbox"
    assert inbox.display_name == "Inbox"
    again = await m.folders.by_mailbox_folder_id(inbox.id).get()
    assert again.id == inbox.id
    root = await m.folders.by_mailbox_folder_id("msgfolderroot").get()
    kids_b = m.folders.by_mailbox_folder_id(root.id).child_folders
    kids = await all_pages(kids_b, await kids_b.get())
    top = await all_pages(m.folders, await m.folders.get())
    assert {f.id for f in kids} == {f.id for f in top} and len(top) == 13
    child = await m.folders.by_mailbox_folder_id(root.id).child_folders.by_mailbox_folder_id1(
        inbox.id).get()
    assert child.id == inbox.id


async def test_items_paging_and_count(world):
    client = make_client(world["base"], world["app_token"])
    items = mbx(client, world["megan"]["primaryMailboxId"]).folders.by_mailbox_folder_id(
        "inbox").items
    cfg = RequestConfiguration(
        query_parameters=items.ItemsRequestBuilderGetQueryParameters(top=7, count=True))
    page = await items.get(request_configuration=cfg)
    assert page.odata_count == 30
    seen = [i.id for i in page.value]
    assert len(seen) == 7
    while page.odata_next_link:
        page = await items.with_url(page.odata_next_link).get()
        seen += [i.id for i in page.value]
    assert len(seen) == 30 and len(set(seen)) == 30
    count = await items.count.get()
    assert count == 30
    first = await items.by_mailbox_item_id(seen[0]).get()
    assert first.id == seen[0]
    assert first.type and first.type.startswith("IPM.")
    assert first.size > 0
    assert first.change_key
    assert first.created_date_time is not None


async def test_item_through_wrong_folder_is_404(world):
    client = make_client(world["base"], world["app_token"])
    m = mbx(client, world["megan"]["primaryMailboxId"])
    page = await m.folders.by_mailbox_folder_id("inbox").items.get()
    with pytest.raises(ODataError) as e:
        await m.folders.by_mailbox_folder_id("drafts").items.by_mailbox_item_id(
            page.value[0].id).get()
    assert e.value.response_status_code == 404
    assert e.value.error.code == "ErrorItemNotFound"


async def test_item_id_from_other_mailbox_is_404(world):
    client = make_client(world["base"], world["app_token"])
    page = await mbx(client, world["megan"]["primaryMailboxId"]).folders.by_mailbox_folder_id(
        "inbox").items.get()
    with pytest.raises(ODataError) as e:
        await mbx(client, world["alex"]["primaryMailboxId"]).folders.by_mailbox_folder_id(
            "inbox").items.by_mailbox_item_id(page.value[0].id).get()
    assert e.value.response_status_code == 404


async def test_filter_items_by_type_and_date(world):
    client = make_client(world["base"], world["app_token"])
    items = mbx(client, world["megan"]["primaryMailboxId"]).folders.by_mailbox_folder_id(
        "calendar").items
    cfg = RequestConfiguration(query_parameters=items.ItemsRequestBuilderGetQueryParameters(
        filter="type eq 'IPM.Appointment' and createdDateTime ge 2000-01-01", count=True))
    page = await items.get(request_configuration=cfg)
    assert page.odata_count == 5
    assert all(i.type == "IPM.Appointment" for i in page.value)
    cfg = RequestConfiguration(query_parameters=items.ItemsRequestBuilderGetQueryParameters(
        filter="createdDateTime lt 2000-01-01"))
    assert (await items.get(request_configuration=cfg)).value == []


async def test_bad_filter_is_400(world):
    client = make_client(world["base"], world["app_token"])
    items = mbx(client, world["megan"]["primaryMailboxId"]).folders.by_mailbox_folder_id(
        "inbox").items
    cfg = RequestConfiguration(query_parameters=items.ItemsRequestBuilderGetQueryParameters(
        filter="type eq"))
    with pytest.raises(ODataError) as e:
        await items.get(request_configuration=cfg)
    assert e.value.response_status_code == 400


async def test_unknown_folder_and_mailbox(world):
    client = make_client(world["base"], world["app_token"])
    with pytest.raises(ODataError) as e:
        await mbx(client, world["megan"]["primaryMailboxId"]).folders.by_mailbox_folder_id(
            "AAMkNOPE").get()
    assert e.value.response_status_code == 404
    assert e.value.error.code == "ErrorItemNotFound"
    with pytest.raises(ODataError) as e:
        await mbx(client, "MBX:00000000-0000-0000-0000-000000000001@00000000-0000-0000-0000-000000000002").folders.get()
    assert e.value.response_status_code == 404


async def test_delta_rounds_with_changes(world):
    gb = world["gb"]
    client = make_client(world["base"], world["app_token"])
    mailbox = world["alex"]["primaryMailboxId"]
    delta = mbx(client, mailbox).folders.by_mailbox_folder_id("inbox").items.delta
    cfg = RequestConfiguration()
    cfg.headers.add("Prefer", "odata.maxpagesize=2")
    page = await delta.get(request_configuration=cfg)
    ids = [i.id for i in page.value]
    while page.odata_next_link:
        page = await delta.with_url(page.odata_next_link).get(request_configuration=cfg)
        ids += [i.id for i in page.value]
    assert page.odata_delta_link
    assert len(set(ids)) == 3

    # No changes: the delta link answers with nothing new.
    page = await delta.with_url(page.odata_delta_link).get()
    assert page.value == [] and page.odata_delta_link
    link = page.odata_delta_link

    # Two new items and one deletion between rounds.
    gb.json("admin", "seed", "--mailbox", mailbox, "--items", "2", "--folder", "inbox")
    gb.run("admin", "item", "delete", "--mailbox", mailbox, "--id", ids[0])
    page = await delta.with_url(link).get()
    changes = list(page.value)
    while page.odata_next_link:
        page = await delta.with_url(page.odata_next_link).get()
        changes += page.value
    removed = [c.id for c in changes if "@removed" in (c.additional_data or {})]
    added = [c.id for c in changes if "@removed" not in (c.additional_data or {})]
    assert removed == [ids[0]]
    assert len(added) == 2 and not set(added) & set(ids)


async def test_folder_delta(world):
    client = make_client(world["base"], world["app_token"])
    delta = mbx(client, world["megan"]["primaryMailboxId"]).folders.delta
    page = await delta.get()
    seen = list(page.value)
    while page.odata_next_link:
        page = await delta.with_url(page.odata_next_link).get()
        seen += page.value
    assert page.odata_delta_link
    assert "inbox" in {f.well_known_name for f in seen}


async def test_delegated_token_reaches_only_own_mailbox(world):
    client = make_client(world["base"], world["megan_token"])
    own = await mbx(client, world["megan"]["primaryMailboxId"]).folders.get()
    assert own.value
    with pytest.raises(ODataError) as e:
        await mbx(client, world["alex"]["primaryMailboxId"]).folders.get()
    assert e.value.response_status_code == 403


async def test_app_token_does_not_reach_other_tenant(world):
    client = make_client(world["base"], world["app_token"])
    with pytest.raises(ODataError) as e:
        await mbx(client, world["pat"]["primaryMailboxId"]).folders.get()
    assert e.value.response_status_code in (403, 404)


async def test_missing_permission_is_403(world):
    token = world["gb"].token("contoso.test", roles="MailboxFolder.Read.All")
    client = make_client(world["base"], token)
    folders = await mbx(client, world["megan"]["primaryMailboxId"]).folders.get()
    assert folders.value
    with pytest.raises(ODataError) as e:
        await mbx(client, world["megan"]["primaryMailboxId"]).folders.by_mailbox_folder_id(
            "inbox").items.get()
    assert e.value.response_status_code == 403


async def test_bad_token_is_401(world):
    client = make_client(world["base"], "not-a-jwt")
    with pytest.raises(ODataError) as e:
        await mbx(client, world["megan"]["primaryMailboxId"]).folders.get()
    assert e.value.response_status_code == 401
    expired = world["gb"].token("contoso.test", roles="MailboxFolder.Read.All", lifetime=-600)
    client = make_client(world["base"], expired)
    with pytest.raises(ODataError) as e:
        await mbx(client, world["megan"]["primaryMailboxId"]).folders.get()
    assert e.value.response_status_code == 401

