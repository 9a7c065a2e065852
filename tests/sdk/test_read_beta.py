"""The read side through the official beta SDK (msgraph-beta-sdk)."""

from __future__ import annotations

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError

from conftest import make_client


def mbx(client, mailbox_id):
    return client.admin.exchange.mailboxes.by_mailbox_id(mailbox_id)


async def test_beta_settings_include_archive(world):
    client = make_client(world["base"], world["app_token"], beta=True)
    s = await client.users.by_user_id("megan@contoso.test").settings.exchange.get()
    assert s.primary_mailbox_id == world["megan"]["primaryMailboxId"]
    assert s.in_place_archive_mailbox_id == world["megan"]["archiveMailboxId"]
    s = await client.users.by_user_id("alex@contoso.test").settings.exchange.get()
    assert s.in_place_archive_mailbox_id is None


async def test_beta_folders_carry_parent_mailbox_url(world):
    client = make_client(world["base"], world["app_token"], beta=True)
    cfg = RequestConfiguration(query_parameters=mbx(client, "x").folders.FoldersRequestBuilderGetQueryParameters(
        filter="displayName eq 'Inbox'"))
    page = await mbx(client, world["megan"]["primaryMailboxId"]).folders.get(
        request_configuration=cfg)
    inbox = next(f for f in page.value if f.well_known_name == "inbox")
    assert inbox.parent_mailbox_url.endswith(world["megan"]["primaryMailboxId"])


async def test_beta_archive_mailbox_has_folders(world):
    client = make_client(world["base"], world["megan_token"], beta=True)
    page = await mbx(client, world["megan"]["archiveMailboxId"]).folders.get()
    assert page.value


async def test_beta_items_and_delta(world):
    client = make_client(world["base"], world["app_token"], beta=True)
    items = mbx(client, world["megan"]["primaryMailboxId"]).folders.by_mailbox_folder_id(
        "calendar").items
    page = await items.get()
    assert len(page.value) == 5
    d = await items.delta.get()
    ids = [i.id for i in d.value]
    while d.odata_next_link:
        d = await items.delta.with_url(d.odata_next_link).get()
        ids += [i.id for i in d.value]
    assert sorted(ids) == sorted(i.id for i in page.value)
    assert d.odata_delta_link


async def test_beta_errors_are_odataerror(world):
    client = make_client(world["base"], world["app_token"], beta=True)
    with pytest.raises(ODataError) as e:
        await mbx(client, world["megan"]["primaryMailboxId"]).folders.by_mailbox_folder_id(
            "inbox").items.by_mailbox_item_id("AAMkdoesnotexist").get()
    assert e.value.response_status_code == 404
    assert e.value.error.code == "ErrorItemNotFound"
