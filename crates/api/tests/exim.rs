//! exportItems, createImportSession, the import POST, folder and item writes:
//! behaviour, bad input and permissions, against a real SQLite store.

mod common;

use axum::body::Body;
use axum::http::Request;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Env, Resp, env};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use store::{Mailbox, MetaStore};
use tower::ServiceExt;

const IMPEX: &[&str] = &[
    "MailboxItem.ImportExport.All",
    "MailboxItem.Read.All",
    "MailboxFolder.ReadWrite.All",
    "MailboxItem.ReadWrite.All",
];

fn fts_item(seed: u64) -> Vec<u8> {
    let item = mapi::demo::stream(
        seed,
        mapi::demo::DEFAULT_BASE,
        Some(mapi::demo::DemoKind::Mail),
    )
    .next()
    .unwrap();
    let root = fts::Root::MessageContent(item.builder.build());
    fts::write_frames(
        &fts::FrameHeader::default(),
        &fts::encode_fts(&root),
        fts::frame::DEFAULT_CHUNK,
    )
}

async fn send(env: &Env, method: &str, path: &str, token: Option<&str>, body: &str) -> Resp {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let resp = env
        .app
        .clone()
        .oneshot(b.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

trait NoContent {
    fn pipe_204(self);
}

impl NoContent for Resp {
    #[track_caller]
    fn pipe_204(self) {
        assert_eq!(self.status.as_u16(), 204, "{}", self.text);
        assert!(self.text.is_empty());
    }
}

async fn session(env: &Env, mbx: &Mailbox, token: &str) -> String {
    let r = send(
        env,
        "POST",
        &env.mp(mbx, "/createImportSession"),
        Some(token),
        "",
    )
    .await
    .ok();
    let url = r.json()["importUrl"].as_str().unwrap().to_owned();
    assert!(
        r.json()["expirationDateTime"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    url
}

fn local(url: &str) -> &str {
    url.strip_prefix(common::BASE)
        .expect("import URL on the base")
}

async fn import(env: &Env, url: &str, body: Value) -> Resp {
    send(env, "POST", local(url), None, &body.to_string()).await
}

async fn create(env: &Env, url: &str, folder: &str, data: &[u8]) -> (String, String) {
    let r = import(
        env,
        url,
        json!({"FolderId": folder, "Mode": "create", "Data": STANDARD.encode(data)}),
    )
    .await
    .ok();
    let j = r.json();
    (
        j["itemId"].as_str().unwrap().to_owned(),
        j["changeKey"].as_str().unwrap().to_owned(),
    )
}

async fn export(env: &Env, mbx: &Mailbox, token: &str, ids: &[&str]) -> Vec<Value> {
    let r = send(
        env,
        "POST",
        &env.mp(mbx, "/exportItems"),
        Some(token),
        &json!({ "itemIds": ids }).to_string(),
    )
    .await
    .ok();
    r.json()["value"].as_array().unwrap().clone()
}

/// Whether content is stored: in the meta store (small items) or the blob store.
async fn kept(env: &Env, hash: &str) -> bool {
    let inline = env.meta.inline_content(&[hash.to_owned()]).await.unwrap();
    !inline.is_empty() || env.state.blobs.exists(hash).await.unwrap()
}

async fn inbox_count(env: &Env, mbx: &Mailbox) -> i64 {
    env.meta
        .resolve_folder(&mbx.id, "inbox")
        .await
        .unwrap()
        .total_item_count
}

#[tokio::test]
async fn export_import_round_trip_between_mailboxes() {
    let env = env().await;
    let t = env.app_token(IMPEX);
    let url = session(&env, &env.mbx, &t).await;
    assert!(url.contains(&format!(
        "/api/gv1.0/Mailboxes('{}')/importItem?authtoken=",
        env.mbx.id
    )));
    let data = fts_item(7);
    let (id, ck) = create(&env, &url, "inbox", &data).await;
    assert_eq!(inbox_count(&env, &env.mbx).await, 1);

    // Metadata is visible at once: get, list, delta.
    let got = env
        .get(&env.mp(&env.mbx, &format!("/folders/inbox/items/{id}")), &t)
        .await
        .ok()
        .json();
    assert_eq!(got["changeKey"], ck);
    assert_eq!(got["type"], "IPM.Note");
    let delta = env
        .get(&env.mp(&env.mbx, "/folders/inbox/items/delta"), &t)
        .await
        .ok()
        .json();
    assert!(
        delta["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == id)
    );

    let first = export(&env, &env.mbx, &t, &[&id]).await;
    assert_eq!(first[0]["itemId"], id);
    assert_eq!(first[0]["changeKey"], ck);
    let b64 = first[0]["data"].as_str().unwrap().to_owned();
    assert_eq!(STANDARD.decode(&b64).unwrap(), data);

    // Into another mailbox's folder, then export again: identical bytes.
    let url2 = session(&env, &env.colleague_mbx, &t).await;
    let r = import(
        &env,
        &url2,
        json!({"folderid": "inbox", "mode": "create", "data": b64}),
    )
    .await
    .ok();
    let id2 = r.json()["itemId"].as_str().unwrap().to_owned();
    assert_ne!(id2, id);
    let second = export(&env, &env.colleague_mbx, &t, &[&id2]).await;
    assert_eq!(second[0]["data"].as_str().unwrap(), b64);
    // Deduplicated: both items share one blob.
    let a = env.meta.get_item(&env.mbx.id, &id).await.unwrap();
    let b = env
        .meta
        .get_item(&env.colleague_mbx.id, &id2)
        .await
        .unwrap();
    assert_eq!(a.blob, b.blob);
}

#[tokio::test]
async fn update_mode_replaces_content_and_needs_the_current_change_key() {
    let env = env().await;
    let t = env.app_token(IMPEX);
    let url = session(&env, &env.mbx, &t).await;
    let (id, ck) = create(&env, &url, "inbox", &fts_item(1)).await;
    let new_data = fts_item(2);
    let r = import(
        &env,
        &url,
        json!({"FolderId": "inbox", "Mode": "update", "ItemId": id, "ChangeKey": ck, "Data": STANDARD.encode(&new_data)}),
    )
    .await
    .ok();
    assert_eq!(r.json()["itemId"], id);
    let ck2 = r.json()["changeKey"].as_str().unwrap().to_owned();
    assert_ne!(ck2, ck);
    let out = export(&env, &env.mbx, &t, &[&id]).await;
    assert_eq!(
        STANDARD.decode(out[0]["data"].as_str().unwrap()).unwrap(),
        new_data
    );
    assert_eq!(out[0]["changeKey"], ck2);
    assert_eq!(inbox_count(&env, &env.mbx).await, 1);

    // Stale change key: 409, nothing changed.
    import(
        &env,
        &url,
        json!({"FolderId": "inbox", "Mode": "update", "ItemId": id, "ChangeKey": ck, "Data": STANDARD.encode(fts_item(3))}),
    )
    .await
    .expect(409, "ErrorIrresolvableConflict");
    let out = export(&env, &env.mbx, &t, &[&id]).await;
    assert_eq!(
        STANDARD.decode(out[0]["data"].as_str().unwrap()).unwrap(),
        new_data
    );

    // Update naming an item of another folder: 404.
    import(
        &env,
        &url,
        json!({"FolderId": "sentitems", "Mode": "update", "ItemId": id, "ChangeKey": ck2, "Data": STANDARD.encode(fts_item(3))}),
    )
    .await
    .expect(404, "ErrorItemNotFound");
    // The old blob was released and gets collected.
    api::exim::collect_garbage(env.meta.as_ref(), &env.state.blobs, &env.state.exim.gate)
        .await
        .unwrap();
    // The update also started the background collector, which may have
    // forgotten the blob first and still be deleting it: it does so under
    // the exclusive gate, so taking the gate waits for it.
    drop(env.state.exim.gate.write().await);
    let old = blake3::hash(&fts_item(1)).to_hex().to_string();
    assert!(!kept(&env, &old).await);
}

#[tokio::test]
async fn export_answers_in_request_order_with_per_item_errors() {
    let env = env().await;
    let t = env.app_token(IMPEX);
    let url = session(&env, &env.mbx, &t).await;
    let (a, _) = create(&env, &url, "inbox", &fts_item(1)).await;
    let (b, _) = create(&env, &url, "inbox", &fts_item(2)).await;
    let url_c = session(&env, &env.colleague_mbx, &t).await;
    let (other, _) = create(&env, &url_c, "inbox", &fts_item(3)).await;
    let out = export(&env, &env.mbx, &t, &[&b, "nope", &other, &a]).await;
    assert_eq!(out.len(), 4);
    assert_eq!(out[0]["itemId"], b);
    assert!(out[0]["data"].is_string());
    for (i, id) in [(1usize, "nope"), (2, other.as_str())] {
        assert_eq!(out[i]["itemId"], id);
        assert_eq!(out[i]["error"]["code"], "ErrorItemNotFound");
        assert!(out[i].get("data").is_none());
    }
    assert_eq!(out[3]["itemId"], a);
    // PascalCase member and the namespaced action name.
    let r = send(
        &env,
        "POST",
        &env.mp(&env.mbx, "/microsoft.graph.exportItems"),
        Some(&t),
        &json!({ "ItemIds": [a] }).to_string(),
    )
    .await
    .ok();
    assert!(
        r.json()["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("Collection(microsoft.graph.exportItemResponse)")
    );
    // A deleted item is an error entry too.
    send(
        &env,
        "DELETE",
        &env.mp(
            &env.mbx,
            &format!("/folders/inbox/items/{a}?disposalType=hardDelete"),
        ),
        Some(&t),
        "",
    )
    .await;
    let out = export(&env, &env.mbx, &t, &[&a]).await;
    assert_eq!(out[0]["error"]["code"], "ErrorItemNotFound");
}

#[tokio::test]
async fn export_rejects_bad_bodies() {
    let env = env().await;
    let t = env.app_token(IMPEX);
    let p = env.mp(&env.mbx, "/exportItems");
    let ids: Vec<String> = (0..21).map(|i| format!("id{i}")).collect();
    for (body, what) in [
        (json!({ "itemIds": ids }).to_string(), "at most 20"),
        (json!({ "itemIds": [] }).to_string(), "empty"),
        ("{}".to_owned(), "required"),
        ("".to_owned(), "required"),
        ("{\"itemIds\": [".to_owned(), "not valid JSON"),
        (
            json!({ "itemIds": ["a"], "extra": 1 }).to_string(),
            "does not fit",
        ),
        (json!({ "itemIds": "a" }).to_string(), "does not fit"),
    ] {
        let r = send(&env, "POST", &p, Some(&t), &body).await;
        let r = r.expect(400, "BadRequest");
        assert!(r.message().contains(what), "{body}: {}", r.message());
    }
    let r = send(&env, "GET", &p, Some(&t), "").await;
    assert_eq!(r.status.as_u16(), 405);
}

#[tokio::test]
async fn import_rejects_bad_input_and_stores_nothing() {
    let env = env().await;
    let t = env.app_token(IMPEX);
    let url = session(&env, &env.mbx, &t).await;
    let good = STANDARD.encode(fts_item(1));
    let mut corrupt = fts_item(1);
    let cut = corrupt.len() - 10;
    corrupt.truncate(cut);
    let r = import(
        &env,
        &url,
        json!({"FolderId": "inbox", "Mode": "create", "Data": STANDARD.encode(&corrupt)}),
    )
    .await
    .expect(400, "ErrorInvalidData");
    assert!(r.message().contains("at byte "), "{}", r.message());
    let cases = [
        (
            json!({"FolderId": "inbox", "Mode": "create", "Data": "!!!!"}),
            "base64",
        ),
        (json!({"FolderId": "inbox", "Mode": "create"}), "no Data"),
        (
            json!({"FolderId": "inbox", "Mode": "create", "Data": 5}),
            "must be a string",
        ),
        (
            json!({"Mode": "create", "Data": good}),
            "FolderId is required",
        ),
        (
            json!({"FolderId": "inbox", "Data": good}),
            "Mode is required",
        ),
        (
            json!({"FolderId": "inbox", "Mode": "upsert", "Data": good}),
            "not supported",
        ),
        (
            json!({"FolderId": "inbox", "Mode": "create", "ItemId": "x", "Data": good}),
            "do not send ItemId",
        ),
        (
            json!({"FolderId": "inbox", "Mode": "create", "ChangeKey": "x", "Data": good}),
            "do not send ItemId",
        ),
        (
            json!({"FolderId": "inbox", "Mode": "update", "Data": good}),
            "needs ItemId and ChangeKey",
        ),
        (
            json!({"FolderId": "inbox", "Mode": "update", "ItemId": "x", "Data": good}),
            "needs ItemId and ChangeKey",
        ),
        (
            json!({"FolderId": "inbox", "Mode": "create", "Data": good, "Bogus": 1}),
            "does not fit",
        ),
        (
            json!({"FolderId": "inbox", "Mode": "create", "Data": ""}),
            "empty",
        ),
    ];
    for (body, what) in cases {
        let r = import(&env, &url, body.clone())
            .await
            .expect(400, "BadRequest");
        assert!(r.message().contains(what), "{body}: {}", r.message());
    }
    let r = send(&env, "POST", local(&url), None, "not json").await;
    assert_eq!(r.status.as_u16(), 400);
    import(
        &env,
        &url,
        json!({"FolderId": "nosuchfolder", "Mode": "create", "Data": good}),
    )
    .await
    .expect(404, "ErrorFolderNotFound");
    assert_eq!(inbox_count(&env, &env.mbx).await, 0);
    assert!(env.meta.unreferenced_blobs(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn import_tokens_are_checked() {
    let env = env().await;
    let t = env.app_token(IMPEX);
    let url = session(&env, &env.mbx, &t).await;
    let body = json!({"FolderId": "inbox", "Mode": "create", "Data": STANDARD.encode(fts_item(1))});
    // Tampered: flip one character of the token.
    let (head, token) = url.split_once("authtoken=").unwrap();
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let bad = format!("{head}authtoken={}", chars.into_iter().collect::<String>());
    import(&env, &bad, body.clone())
        .await
        .expect(401, "InvalidAuthenticationToken");
    // Missing.
    import(&env, head.trim_end_matches('?'), body.clone())
        .await
        .expect(401, "InvalidAuthenticationToken");
    // Foreign: a session of one mailbox used on another mailbox's URL.
    let moved = url.replace(&env.mbx.id.to_string(), &env.colleague_mbx.id.to_string());
    import(&env, &moved, body.clone())
        .await
        .expect(403, "ErrorAccessDenied");
    // Another version's URL.
    let beta = url.replace("/api/gv1.0/", "/api/gbeta/");
    import(&env, &beta, body.clone())
        .await
        .expect(403, "ErrorAccessDenied");
    // Expired.
    let mut s = env.state.exim.settings.clone();
    s.session_lifetime = time::Duration::seconds(-5);
    let expired_state = env.state.clone().with_import_settings(s);
    let mbx = env.meta.get_mailbox(&env.mbx.id).await.unwrap();
    let principal = env
        .state
        .authority
        .authenticate(&{
            let mut h = axum::http::HeaderMap::new();
            h.insert("authorization", format!("Bearer {t}").parse().unwrap());
            h
        })
        .unwrap();
    let (old_url, _) = expired_state
        .exim
        .new_session(&mbx.id, api::path::Version::V1, &principal);
    let r = import(&env, &old_url, body.clone())
        .await
        .expect(401, "InvalidAuthenticationToken");
    assert!(r.message().contains("expired"));
    // A delegated session of a user who does not own the mailbox cannot exist
    // (createImportSession refuses), and a beta session works on beta.
    let bs = send(
        &env,
        "POST",
        &format!(
            "/beta/admin/exchange/mailboxes/{}/createImportSession",
            env.mbx.id
        ),
        Some(&t),
        "{}",
    )
    .await
    .ok();
    let burl = bs.json()["importUrl"].as_str().unwrap().to_owned();
    assert!(burl.contains("/api/gbeta/"));
    import(&env, &burl, body.clone()).await.ok();
    assert_eq!(inbox_count(&env, &env.mbx).await, 1);
}

#[tokio::test]
async fn small_items_live_in_the_meta_store_large_ones_in_the_blob_store() {
    let env = env().await;
    let t = env.app_token(IMPEX);
    let url = session(&env, &env.mbx, &t).await;
    // Default limit (64 KiB): the item's content is committed with it.
    let small = (20..)
        .map(fts_item)
        .find(|d| d.len() as u64 <= store::blob::DEFAULT_INLINE_MAX)
        .unwrap();
    let large = (40..)
        .map(fts_item)
        .find(|d| d.len() > small.len())
        .unwrap();
    let (a, _) = create(&env, &url, "inbox", &small).await;
    let ha = env.meta.get_item(&env.mbx.id, &a).await.unwrap().blob.hash;
    assert_eq!(blake3::hash(&small).to_hex().as_str(), ha);
    let inline = env
        .meta
        .inline_content(std::slice::from_ref(&ha))
        .await
        .unwrap();
    assert_eq!(&inline[&ha][..], &small[..]);
    assert!(!env.state.blobs.exists(&ha).await.unwrap(), "no blob file");

    // With the limit below the item's size, the blob store takes it.
    let mut s = env.state.exim.settings.clone();
    s.inline_max = large.len() as u64 - 1;
    let files = Env {
        app: api::router(env.state.clone().with_import_settings(s)),
        ..env
    };
    let env = files;
    let (b, _) = create(&env, &url, "inbox", &large).await;
    let hb = env.meta.get_item(&env.mbx.id, &b).await.unwrap().blob.hash;
    assert!(
        env.meta
            .inline_content(std::slice::from_ref(&hb))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(env.state.blobs.exists(&hb).await.unwrap());

    // Both export byte for byte, in one request and one by one, and $expand
    // reads either kind of content.
    let out = export(&env, &env.mbx, &t, &[&b, &a, &b]).await;
    for (v, want) in out.iter().zip([&large, &small, &large]) {
        assert_eq!(&STANDARD.decode(v["data"].as_str().unwrap()).unwrap(), want);
    }
    for id in [&a, &b] {
        env.get(
            &env.mp(
                &env.mbx,
                &format!(
                    "/folders/inbox/items/{id}?$expand=singleValueExtendedProperties($filter=id eq 'String 0x001A')"
                ),
            ),
            &t,
        )
        .await
        .ok();
    }

    // Deleting both and collecting reclaims both kinds of content.
    for id in [&a, &b] {
        send(
            &env,
            "DELETE",
            &env.mp(
                &env.mbx,
                &format!("/folders/inbox/items/{id}?disposalType=hardDelete"),
            ),
            Some(&t),
            "",
        )
        .await
        .pipe_204();
    }
    api::exim::collect_garbage(env.meta.as_ref(), &env.state.blobs, &env.state.exim.gate)
        .await
        .unwrap();
    assert!(!kept(&env, &ha).await);
    assert!(!kept(&env, &hb).await);
    assert!(env.meta.unreferenced_blobs(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn import_enforces_the_size_limit() {
    let env = env().await;
    let t = env.app_token(IMPEX);
    let mut s = env.state.exim.settings.clone();
    s.max_item_size = 1000;
    let state = env.state.clone().with_import_settings(s);
    let small = Env {
        app: api::router(state),
        ..env
    };
    let url = session(&small, &small.mbx, &t).await;
    let big = fts_item(1);
    assert!(big.len() > 1000);
    let r = import(
        &small,
        &url,
        json!({"FolderId": "inbox", "Mode": "create", "Data": STANDARD.encode(&big)}),
    )
    .await
    .expect(413, "ErrorMessageSizeExceeded");
    assert!(r.message().contains("1000"));
    assert_eq!(inbox_count(&small, &small.mbx).await, 0);
}

#[tokio::test]
async fn permissions_follow_the_table() {
    let env = env().await;
    let admin = env.app_token(IMPEX);
    let url = session(&env, &env.mbx, &admin).await;
    let (id, _) = create(&env, &url, "inbox", &fts_item(1)).await;
    let body = json!({ "itemIds": [id] }).to_string();
    let exp = env.mp(&env.mbx, "/exportItems");
    let sess = env.mp(&env.mbx, "/createImportSession");
    // Export: Export(.All) or ImportExport(.All).
    for roles in [["MailboxItem.Export.All"], ["MailboxItem.ImportExport.All"]] {
        send(&env, "POST", &exp, Some(&env.app_token(&roles)), &body)
            .await
            .ok();
    }
    send(
        &env,
        "POST",
        &exp,
        Some(&env.app_token(&["MailboxItem.Read.All"])),
        &body,
    )
    .await
    .expect(403, "ErrorAccessDenied");
    let me = env.user_token(&env.user, &["MailboxItem.Export"]);
    send(&env, "POST", &exp, Some(&me), &body).await.ok();
    send(
        &env,
        "POST",
        &env.mp(&env.colleague_mbx, "/exportItems"),
        Some(&me),
        &body,
    )
    .await
    .expect(403, "ErrorAccessDenied");
    send(
        &env,
        "POST",
        &exp,
        Some(&env.user_token(&env.user, &["MailboxItem.Export.All"])),
        &body,
    )
    .await
    .expect(403, "ErrorAccessDenied");
    // createImportSession: ImportExport only.
    send(
        &env,
        "POST",
        &sess,
        Some(&env.app_token(&["MailboxItem.Export.All"])),
        "",
    )
    .await
    .expect(403, "ErrorAccessDenied");
    send(
        &env,
        "POST",
        &sess,
        Some(&env.user_token(&env.user, &["MailboxItem.ImportExport"])),
        "",
    )
    .await
    .ok();
    send(
        &env,
        "POST",
        &env.mp(&env.colleague_mbx, "/createImportSession"),
        Some(&env.user_token(&env.user, &["MailboxItem.ImportExport"])),
        "",
    )
    .await
    .expect(403, "ErrorAccessDenied");
    // A foreign tenant's app cannot reach the mailbox.
    send(
        &env,
        "POST",
        &sess,
        Some(&env.app_token_for(env.foreign_tenant.id, &["MailboxItem.ImportExport.All"])),
        "",
    )
    .await
    .expect(403, "ErrorAccessDenied");
    // Folder writes: MailboxFolder.ReadWrite(.All).
    let folders = env.mp(&env.mbx, "/folders");
    let f = json!({"displayName": "X", "type": "IPF.Note"}).to_string();
    send(
        &env,
        "POST",
        &folders,
        Some(&env.app_token(&["MailboxFolder.Read.All"])),
        &f,
    )
    .await
    .expect(403, "ErrorAccessDenied");
    send(
        &env,
        "POST",
        &folders,
        Some(&env.user_token(&env.user, &["MailboxFolder.Read"])),
        &f,
    )
    .await
    .expect(403, "ErrorAccessDenied");
    send(
        &env,
        "POST",
        &folders,
        Some(&env.user_token(&env.user, &["MailboxFolder.ReadWrite"])),
        &f,
    )
    .await
    .expect(201, "");
    // Item delete: MailboxItem.ReadWrite(.All).
    let del = env.mp(
        &env.mbx,
        &format!("/folders/inbox/items/{id}?disposalType=softDelete"),
    );
    send(
        &env,
        "DELETE",
        &del,
        Some(&env.app_token(&["MailboxItem.Read.All"])),
        "",
    )
    .await
    .expect(403, "ErrorAccessDenied");
    send(
        &env,
        "DELETE",
        &del,
        Some(&env.user_token(&env.user, &["MailboxItem.ReadWrite"])),
        "",
    )
    .await;
    assert_eq!(inbox_count(&env, &env.mbx).await, 0);
}

#[tokio::test]
async fn folder_writes() {
    let env = env().await;
    let t = env.app_token(IMPEX);
    let root = env
        .meta
        .resolve_folder(&env.mbx.id, "msgfolderroot")
        .await
        .unwrap();
    let r = send(
        &env,
        "POST",
        &env.mp(&env.mbx, "/folders"),
        Some(&t),
        &json!({"displayName": "Projects", "type": "IPF.Note", "singleValueExtendedProperties": [{"id": "String 0x3001", "value": "Projects"}]}).to_string(),
    )
    .await
    .expect(201, "");
    let f = r.json();
    assert_eq!(f["displayName"], "Projects");
    assert_eq!(f["type"], "IPF.Note");
    assert_eq!(f["childFolderCount"], 0);
    assert_eq!(f["parentFolderId"], root.id);
    let fid = f["id"].as_str().unwrap().to_owned();
    let after_create_ck = env
        .meta
        .get_folder(&env.mbx.id, &fid)
        .await
        .unwrap()
        .change_key;
    let after = env
        .meta
        .resolve_folder(&env.mbx.id, "msgfolderroot")
        .await
        .unwrap();
    assert_eq!(after.child_folder_count, root.child_folder_count + 1);

    // Folder delta baseline.
    let d0 = env
        .get(&env.mp(&env.mbx, "/folders/delta"), &t)
        .await
        .ok()
        .json();
    let mut link = d0["@odata.deltaLink"].as_str().map(str::to_owned);
    let mut next = d0["@odata.nextLink"].as_str().map(str::to_owned);
    while let Some(n) = next.take() {
        let j = env.follow(&n, &t, &[]).await.ok().json();
        link = j["@odata.deltaLink"].as_str().map(str::to_owned);
        next = j["@odata.nextLink"].as_str().map(str::to_owned);
    }
    let delta_link = link.unwrap();

    // Child folder, duplicate name.
    let child = send(
        &env,
        "POST",
        &env.mp(&env.mbx, &format!("/folders/{fid}/childFolders")),
        Some(&t),
        &json!({"displayName": "2026"}).to_string(),
    )
    .await
    .expect(201, "")
    .json();
    assert_eq!(child["type"], "IPF.Note", "inherits the parent's type");
    let cid = child["id"].as_str().unwrap().to_owned();
    send(
        &env,
        "POST",
        &env.mp(&env.mbx, &format!("/folders/{fid}/childFolders")),
        Some(&t),
        &json!({"displayName": "2026"}).to_string(),
    )
    .await
    .expect(409, "ErrorFolderExists");
    send(
        &env,
        "POST",
        &env.mp(&env.mbx, "/folders"),
        Some(&t),
        &json!({"type": "IPF.Note"}).to_string(),
    )
    .await
    .expect(400, "BadRequest");

    // PATCH: displayName yes, type no.
    let p = send(
        &env,
        "PATCH",
        &env.mp(&env.mbx, &format!("/folders/{fid}")),
        Some(&t),
        &json!({"displayName": "Projects 2"}).to_string(),
    )
    .await
    .ok()
    .json();
    assert_eq!(p["displayName"], "Projects 2");
    let fresh = env.meta.get_folder(&env.mbx.id, &fid).await.unwrap();
    assert_eq!(fresh.display_name, "Projects 2");
    assert_ne!(fresh.change_key, after_create_ck);
    let r = send(
        &env,
        "PATCH",
        &env.mp(&env.mbx, &format!("/folders/{fid}")),
        Some(&t),
        &json!({"type": "IPF.Contact"}).to_string(),
    )
    .await
    .expect(400, "BadRequest");
    assert!(r.message().contains("type"));
    send(
        &env,
        "PATCH",
        &env.mp(&env.mbx, "/folders/inbox"),
        Some(&t),
        &json!({"displayName": "Eingang"}).to_string(),
    )
    .await
    .expect(400, "BadRequest");

    // DELETE with and without $ref; well-known folders refuse.
    send(
        &env,
        "DELETE",
        &env.mp(&env.mbx, &format!("/folders/{fid}/childFolders/{cid}/$ref")),
        Some(&t),
        "",
    )
    .await
    .pipe_204();
    send(
        &env,
        "DELETE",
        &env.mp(&env.mbx, "/folders/inbox"),
        Some(&t),
        "",
    )
    .await
    .expect(400, "BadRequest");
    send(
        &env,
        "DELETE",
        &env.mp(&env.mbx, &format!("/folders/{fid}")),
        Some(&t),
        "",
    )
    .await
    .pipe_204();
    env.get(&env.mp(&env.mbx, &format!("/folders/{fid}")), &t)
        .await
        .expect(404, "ErrorItemNotFound");
    let d1 = env.follow(&delta_link, &t, &[]).await.ok().json();
    let removed: Vec<&str> = d1["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v.get("@removed").is_some())
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert!(removed.contains(&fid.as_str()), "{d1}");
}

#[tokio::test]
async fn item_delete_soft_and_hard() {
    let env = env().await;
    let t = env.app_token(IMPEX);
    let url = session(&env, &env.mbx, &t).await;
    let data = fts_item(4);
    let (a, _) = create(&env, &url, "inbox", &data).await;
    let (b, _) = create(&env, &url, "inbox", &data).await;
    let base = |id: &str, q: &str| env.mp(&env.mbx, &format!("/folders/inbox/items/{id}{q}"));
    let d0 = env
        .get(&env.mp(&env.mbx, "/folders/inbox/items/delta"), &t)
        .await
        .ok()
        .json();
    let delta_link = d0["@odata.deltaLink"].as_str().unwrap().to_owned();
    for q in ["", "?disposalType=", "?disposalType=moveToTrash"] {
        send(&env, "DELETE", &base(&a, q), Some(&t), "")
            .await
            .expect(400, "BadRequest");
    }
    send(
        &env,
        "DELETE",
        &base(&a, "?disposalType=softDelete"),
        Some(&t),
        "",
    )
    .await
    .pipe_204();
    let bin = env
        .meta
        .resolve_folder(&env.mbx.id, "recoverableitemsdeletions")
        .await
        .unwrap();
    assert_eq!(
        env.meta.get_item(&env.mbx.id, &a).await.unwrap().folder_id,
        bin.id
    );
    send(
        &env,
        "DELETE",
        &base(&a, "?disposalType=softDelete"),
        Some(&t),
        "",
    )
    .await
    .expect(404, "ErrorItemNotFound");
    send(
        &env,
        "DELETE",
        &base(&b, "?disposalType=HardDelete"),
        Some(&t),
        "",
    )
    .await
    .pipe_204();
    assert_eq!(inbox_count(&env, &env.mbx).await, 0);
    let d1 = env.follow(&delta_link, &t, &[]).await.ok().json();
    let removed = d1["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v.get("@removed").is_some())
        .count();
    assert_eq!(removed, 2, "{d1}");
    // The shared blob survives (a still references it), then goes with a.
    let hash = blake3::hash(&data).to_hex().to_string();
    api::exim::collect_garbage(env.meta.as_ref(), &env.state.blobs, &env.state.exim.gate)
        .await
        .unwrap();
    assert!(kept(&env, &hash).await);
    let out = export(&env, &env.mbx, &t, &[&a]).await;
    assert_eq!(
        STANDARD.decode(out[0]["data"].as_str().unwrap()).unwrap(),
        data
    );
    send(
        &env,
        "DELETE",
        &env.mp(
            &env.mbx,
            &format!("/folders/recoverableitemsdeletions/items/{a}?disposalType=hardDelete"),
        ),
        Some(&t),
        "",
    )
    .await
    .pipe_204();
    api::exim::collect_garbage(env.meta.as_ref(), &env.state.blobs, &env.state.exim.gate)
        .await
        .unwrap();
    assert!(!kept(&env, &hash).await);
}
