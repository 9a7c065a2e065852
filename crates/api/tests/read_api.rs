//! End-to-end tests of the read side over a real SQLite store.

mod common;

use common::*;
use serde_json::{Value, json};
use store::{ExtProp, ExtValue, MetaStore, NewFolder};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

// ---------------------------------------------------------------------------
// Wire basics: request ids, envelope, unknown paths, methods
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_response_carries_request_ids() {
    let env = env().await;
    let ok = env
        .get_with(
            &env.mp(&env.mbx, ""),
            &env.admin(),
            &[("client-request-id", "my-id-1")],
        )
        .await
        .ok();
    assert_eq!(ok.header("client-request-id"), Some("my-id-1"));
    let rid = ok.header("request-id").unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&rid).is_ok(), "{rid}");

    // Errors carry them in the body too.
    let err = env
        .get_with(
            &env.mp(&env.mbx, "/folders/nope"),
            &env.admin(),
            &[("client-request-id", "c-2")],
        )
        .await
        .expect(404, "ErrorItemNotFound");
    let body = err.json();
    assert_eq!(body["error"]["innerError"]["client-request-id"], "c-2");
    assert_eq!(
        body["error"]["innerError"]["request-id"],
        err.header("request-id").unwrap()
    );
    assert!(body["error"]["innerError"]["date"].is_string());
    assert_ne!(err.header("request-id").unwrap(), rid);

    // Without a client id, the request id is echoed as the client id.
    let r = env
        .request("GET", "/v1.0/me/settings/exchange", None, &[])
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("client-request-id"), r.header("request-id"));
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let env = env().await;
    let t = env.admin();
    let r = env
        .get("/v1.0/admin/exchange/mailboxes/x/messages", &t)
        .await
        .expect(404, "UnknownRequest");
    assert_eq!(
        r.message(),
        "Resource not found for the segment 'messages'."
    );
    env.get("/v2.0/admin", &t)
        .await
        .expect(404, "UnknownRequest");
    env.get(&env.mp(&env.mbx, "/folders/inbox/items/x/attachments"), &t)
        .await
        .expect(404, "UnknownRequest");
    let r = env
        .request(
            "PUT",
            &env.mp(&env.mbx, "/folders/inbox/items/abc"),
            Some(&t),
            &[],
        )
        .await
        .expect(405, "notAllowed");
    // Items answer GET and (issue 4) DELETE.
    assert_eq!(r.header("allow"), Some("GET, DELETE"));
    env.request("PUT", &env.mp(&env.mbx, "/folders"), Some(&t), &[])
        .await
        .expect(405, "notAllowed");
}

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tokens_are_validated() {
    let env = env().await;
    let path = env.mp(&env.mbx, "/folders");
    let r = env
        .request("GET", &path, None, &[])
        .await
        .expect(401, "InvalidAuthenticationToken");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert_eq!(r.message(), "Access token is empty.");

    env.get(&path, "garbage")
        .await
        .expect(401, "InvalidAuthenticationToken");
    let r = env
        .request(
            "GET",
            &path,
            None,
            &[("authorization", "Basic dXNlcjpwYXNz")],
        )
        .await
        .expect(401, "InvalidAuthenticationToken");
    assert!(r.message().contains("Bearer"));

    // Expired beyond the skew.
    let expired = env.authority().mint(&api::TokenRequest {
        tenant_id: env.tenant.id,
        app_id: env.app_id,
        grant: api::Grant::Application {
            roles: vec!["MailboxFolder.Read.All".into()],
        },
        lifetime: Duration::hours(1),
        issued_at: Some(OffsetDateTime::now_utc() - Duration::minutes(62)),
    });
    let r = env
        .get(&path, &expired)
        .await
        .expect(401, "InvalidAuthenticationToken");
    assert!(r.message().contains("expired"));

    // Signed by another key (another graphbox).
    let other =
        api::Authority::from_pem(&api::auth::generate_signing_key_pem().unwrap(), ISSUER).unwrap();
    let forged = other.mint(&api::TokenRequest {
        tenant_id: env.tenant.id,
        app_id: env.app_id,
        grant: api::Grant::Application {
            roles: vec!["MailboxFolder.Read.All".into()],
        },
        lifetime: Duration::hours(1),
        issued_at: None,
    });
    env.get(&path, &forged)
        .await
        .expect(401, "InvalidAuthenticationToken");

    // Right key, wrong audience / wrong issuer.
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let sign = |claims: Value| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.kid = Some(env.authority().kid().to_owned());
        jsonwebtoken::encode(
            &h,
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(pem().as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let claims = json!({
        "aud": "https://outlook.office.com", "iss": env.authority().issuer_for(env.tenant.id),
        "iat": now, "nbf": now, "exp": now + 600, "tid": env.tenant.id.to_string(),
        "azp": env.app_id.to_string(), "roles": ["MailboxFolder.Read.All"],
    });
    let r = env
        .get(&path, &sign(claims.clone()))
        .await
        .expect(401, "InvalidAuthenticationToken");
    assert!(r.message().contains("audience"), "{}", r.message());
    let mut c = claims.clone();
    c["aud"] = json!("00000003-0000-0000-c000-000000000000");
    env.get(&path, &sign(c.clone())).await.ok();
    c["iss"] = json!(format!(
        "https://login.microsoftonline.com/{}/v2.0",
        env.tenant.id
    ));
    env.get(&path, &sign(c.clone()))
        .await
        .expect(401, "InvalidAuthenticationToken");
    // A token whose tid disagrees with its issuer.
    let mut c = claims;
    c["aud"] = json!("https://graph.microsoft.com");
    c["tid"] = json!(env.foreign_tenant.id.to_string());
    env.get(&path, &sign(c))
        .await
        .expect(401, "InvalidAuthenticationToken");
}

// ---------------------------------------------------------------------------
// Authorization
// ---------------------------------------------------------------------------

#[tokio::test]
async fn permission_boundaries() {
    let env = env().await;
    let folders = env.mp(&env.mbx, "/folders");
    let items = env.mp(&env.mbx, "/folders/inbox/items");
    let settings = "/v1.0/users/megan@contoso.com/settings/exchange";

    // Application roles.
    let t = env.app_token(&["MailboxItem.Read.All"]);
    env.get(&items, &t).await.ok();
    env.get(&folders, &t).await.expect(403, "ErrorAccessDenied");
    env.get(settings, &t)
        .await
        .expect(403, "Authorization_RequestDenied");
    let t = env.app_token(&["MailboxFolder.ReadWrite.All"]);
    env.get(&folders, &t).await.ok();
    let r = env.get(&items, &t).await.expect(403, "ErrorAccessDenied");
    assert!(r.message().contains("MailboxItem.Read.All"));
    env.get(&env.mp(&env.mbx, "/folders/inbox/items/delta"), &t)
        .await
        .expect(403, "ErrorAccessDenied");
    env.get(&env.mp(&env.mbx, "/folders/inbox/items/$count"), &t)
        .await
        .expect(403, "ErrorAccessDenied");
    // Export / import permissions don't read items.
    let t = env.app_token(&["MailboxItem.ImportExport.All", "MailboxItem.Export.All"]);
    env.get(&items, &t).await.expect(403, "ErrorAccessDenied");
    env.get(&folders, &t).await.expect(403, "ErrorAccessDenied");
    // ... but may see the mailbox itself.
    env.get(&env.mp(&env.mbx, ""), &t).await.ok();
    let t = env.app_token(&["User.ReadWrite.All"]);
    env.get(settings, &t).await.ok();
    env.get(&env.mp(&env.mbx, ""), &t)
        .await
        .expect(403, "ErrorAccessDenied");
    // Delegated scope names don't work as roles.
    let t = env.app_token(&["MailboxFolder.Read", "MailboxItem.Read"]);
    env.get(&folders, &t).await.expect(403, "ErrorAccessDenied");
    env.get(&items, &t).await.expect(403, "ErrorAccessDenied");

    // Delegated scopes.
    let t = env.user_token(&env.user, &["MailboxFolder.Read"]);
    env.get(&folders, &t).await.ok();
    env.get(&items, &t).await.expect(403, "ErrorAccessDenied");
    let t = env.user_token(&env.user, &["MailboxItem.Read", "openid", "profile"]);
    env.get(&items, &t).await.ok();
    env.get(&folders, &t).await.expect(403, "ErrorAccessDenied");
    let t = env.user_token(
        &env.user,
        &["MailboxFolder.Read.All", "MailboxItem.Read.All"],
    );
    env.get(&folders, &t).await.expect(403, "ErrorAccessDenied");
    let t = env.user_token(&env.user, &["User.Read"]);
    env.get(settings, &t)
        .await
        .expect(403, "Authorization_RequestDenied");
}

#[tokio::test]
async fn delegated_reaches_only_own_mailboxes_and_apps_only_their_tenant() {
    let env = env().await;
    let t = env.user_token(&env.user, &["MailboxFolder.ReadWrite", "MailboxItem.Read"]);
    env.get(&env.mp(&env.mbx, "/folders"), &t).await.ok();
    env.get(&env.mp(&env.archive, "/folders"), &t).await.ok();
    env.get(&env.mp(&env.mbx, "/folders/inbox/items"), &t)
        .await
        .ok();
    let r = env
        .get(&env.mp(&env.colleague_mbx, "/folders"), &t)
        .await
        .expect(403, "ErrorAccessDenied");
    assert!(r.message().contains("signed-in user"), "{}", r.message());
    env.get(&env.mp(&env.colleague_mbx, "/folders/inbox/items"), &t)
        .await
        .expect(403, "ErrorAccessDenied");
    env.get(&env.mp(&env.colleague_mbx, ""), &t)
        .await
        .expect(403, "ErrorAccessDenied");
    env.get(&env.mp(&env.foreign_mbx, "/folders"), &t)
        .await
        .expect(403, "ErrorAccessDenied");

    let admin = env.admin();
    env.get(&env.mp(&env.colleague_mbx, "/folders"), &admin)
        .await
        .ok();
    env.get(&env.mp(&env.archive, "/folders/inbox/items"), &admin)
        .await
        .ok();
    let r = env
        .get(&env.mp(&env.foreign_mbx, "/folders"), &admin)
        .await
        .expect(403, "ErrorAccessDenied");
    assert!(r.message().contains("another tenant"));
    env.get(
        &env.mp(&env.foreign_mbx, "/folders/inbox/items/delta"),
        &admin,
    )
    .await
    .expect(403, "ErrorAccessDenied");
    // The foreign tenant's own app does reach it.
    let foreign_admin = env.app_token_for(env.foreign_tenant.id, ALL_APP_ROLES);
    env.get(&env.mp(&env.foreign_mbx, "/folders"), &foreign_admin)
        .await
        .ok();
    env.get(&env.mp(&env.mbx, "/folders"), &foreign_admin)
        .await
        .expect(403, "ErrorAccessDenied");
    // Users of another tenant are invisible.
    env.get(
        "/v1.0/users/megan@contoso.com/settings/exchange",
        &foreign_admin,
    )
    .await
    .expect(404, "Request_ResourceNotFound");
}

// ---------------------------------------------------------------------------
// Exchange settings and mailbox
// ---------------------------------------------------------------------------

#[tokio::test]
async fn exchange_settings() {
    let env = env().await;
    let t = env.admin();
    let body = env
        .get("/v1.0/users/megan%40contoso.com/settings/exchange", &t)
        .await
        .ok()
        .json();
    assert_eq!(body["primaryMailboxId"], env.mbx.id.to_string());
    assert!(
        body.get("inPlaceArchiveMailboxId").is_none(),
        "v1.0 has no archive id: {body}"
    );
    assert_eq!(
        body["@odata.context"],
        format!("{BASE}/v1.0/$metadata#users('megan%40contoso.com')/settings/exchange/$entity")
    );
    assert_eq!(body["@odata.type"], "#microsoft.graph.exchangeSettings");

    let body = env
        .get("/beta/users/MEGAN@contoso.com/settings/exchange", &t)
        .await
        .ok()
        .json();
    assert_eq!(body["primaryMailboxId"], env.mbx.id.to_string());
    assert_eq!(body["inPlaceArchiveMailboxId"], env.archive.id.to_string());
    // By object id, and a user without archive.
    let body = env
        .get(
            &format!("/beta/users/{}/settings/exchange", env.colleague.id),
            &t,
        )
        .await
        .ok()
        .json();
    assert_eq!(body["primaryMailboxId"], env.colleague_mbx.id.to_string());
    assert!(body.get("inPlaceArchiveMailboxId").is_none());
    // OData key form.
    env.get("/v1.0/users('alex@contoso.com')/settings/exchange", &t)
        .await
        .ok();

    let r = env
        .get("/v1.0/users/nobody@contoso.com/settings/exchange", &t)
        .await
        .expect(404, "Request_ResourceNotFound");
    assert!(r.message().contains("nobody@contoso.com"));
    let mailless = env
        .meta
        .create_user(env.tenant.id, "nomail@contoso.com", "No Mail")
        .await
        .unwrap();
    env.get(
        &format!("/v1.0/users/{}/settings/exchange", mailless.upn),
        &t,
    )
    .await
    .expect(404, "MailboxNotEnabledForRESTAPI");

    // /me with a delegated token; not with an app token.
    let me = env.user_token(&env.user, &["User.Read.All"]);
    let body = env.get("/beta/me/settings/exchange", &me).await.ok().json();
    assert_eq!(body["inPlaceArchiveMailboxId"], env.archive.id.to_string());
    env.get("/v1.0/me/settings/exchange", &t)
        .await
        .expect(400, "BadRequest");
    // $select.
    let body = env
        .get("/beta/me/settings/exchange?$select=primaryMailboxId", &me)
        .await
        .ok()
        .json();
    assert!(body.get("inPlaceArchiveMailboxId").is_none());
    env.get("/beta/me/settings/exchange?$select=foo", &me)
        .await
        .expect(400, "BadRequest");
}

#[tokio::test]
async fn mailbox_resource_and_id_forms() {
    let env = env().await;
    let t = env.admin();
    let id = env.mbx.id.to_string();
    let body = env.get(&env.mp(&env.mbx, ""), &t).await.ok().json();
    assert_eq!(body["id"], id);
    assert_eq!(body["@odata.type"], "#microsoft.graph.mailbox");
    assert_eq!(body["deletedDateTime"], Value::Null);
    assert_eq!(
        body["@odata.context"],
        format!("{BASE}/v1.0/$metadata#admin/exchange/mailboxes/$entity")
    );
    // Percent-encoded (as the SDKs send it), upper-case, and the key form.
    let enc = id.replace(':', "%3A").replace('@', "%40");
    env.get(&format!("/v1.0/admin/exchange/mailboxes/{enc}"), &t)
        .await
        .ok();
    env.get(
        &format!("/v1.0/admin/exchange/mailboxes/{}", id.to_uppercase()),
        &t,
    )
    .await
    .ok();
    env.get(
        &format!("/beta/admin/exchange/mailboxes('{enc}')/folders"),
        &t,
    )
    .await
    .ok();
    env.get(
        &format!("/beta/admin/Exchange/Mailboxes('{id}')/folders/Inbox/items"),
        &t,
    )
    .await
    .ok();

    // Unknown and malformed mailbox ids.
    let unknown = format!("MBX:{}@{}", uuid::Uuid::new_v4(), env.tenant.id);
    let r = env
        .get(
            &format!("/v1.0/admin/exchange/mailboxes/{unknown}/folders"),
            &t,
        )
        .await
        .expect(404, "ErrorNonExistentMailbox");
    assert!(r.message().contains("settings/exchange"));
    env.get("/v1.0/admin/exchange/mailboxes/not-a-mailbox/folders", &t)
        .await
        .expect(404, "ErrorNonExistentMailbox");
}

// ---------------------------------------------------------------------------
// Folders
// ---------------------------------------------------------------------------

#[tokio::test]
async fn list_folders_shapes_and_hidden() {
    let env = env().await;
    let t = env.admin();
    let root = env
        .meta
        .resolve_folder(&env.mbx.id, "msgfolderroot")
        .await
        .unwrap();
    let body = env
        .get(&env.mp(&env.mbx, "/folders?$top=100"), &t)
        .await
        .ok()
        .json();
    assert_eq!(
        body["@odata.context"],
        format!(
            "{BASE}/v1.0/$metadata#admin/exchange/mailboxes/{}/folders",
            env.mbx.id
        )
    );
    let value = body["value"].as_array().unwrap();
    let inbox = value
        .iter()
        .find(|f| f["wellKnownName"] == "inbox")
        .expect("inbox listed");
    assert_eq!(inbox["@odata.type"], "#microsoft.graph.mailboxFolder");
    assert_eq!(inbox["displayName"], "Inbox");
    assert_eq!(inbox["parentFolderId"], root.id.as_str());
    assert_eq!(inbox["type"], "IPF.Note");
    assert_eq!(inbox["childFolderCount"], 0);
    assert_eq!(inbox["totalItemCount"], 0);
    assert!(
        inbox.get("parentMailboxUrl").is_none(),
        "v1.0 has no parentMailboxUrl"
    );
    assert!(inbox.get("isHidden").is_none());
    let keys: Vec<&String> = inbox.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 8, "{keys:?}");
    assert!(
        value
            .iter()
            .all(|f| f["displayName"] != "Recoverable Items")
    );
    assert!(
        value
            .iter()
            .any(|f| f["wellKnownName"] == "calendar" && f["type"] == "IPF.Appointment")
    );

    // Member order as in the docs.
    let r = env.get(&env.mp(&env.mbx, "/folders/inbox"), &t).await.ok();
    let order = [
        "@odata.context",
        "@odata.type",
        "\"id\"",
        "displayName",
        "parentFolderId",
        "childFolderCount",
        "totalItemCount",
        "wellKnownName",
        "\"type\"",
    ];
    let pos: Vec<usize> = order.iter().map(|k| r.text.find(k).unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{}", r.text);

    // Hidden folders only on request, with isHidden.
    let body = env
        .get(
            &env.mp(&env.mbx, "/folders?includeHiddenFolders=true&$top=100"),
            &t,
        )
        .await
        .ok()
        .json();
    let value = body["value"].as_array().unwrap();
    let rec = value
        .iter()
        .find(|f| f["displayName"] == "Recoverable Items")
        .expect("hidden folder listed");
    assert_eq!(rec["isHidden"], true);
    assert!(
        value
            .iter()
            .filter(|f| f["displayName"] == "Inbox")
            .all(|f| f["isHidden"] == false)
    );
    let body = env
        .get(
            &env.mp(
                &env.mbx,
                "/folders?includeHiddenFolders=true&$select=id,displayName,isHidden&$top=100",
            ),
            &t,
        )
        .await
        .ok()
        .json();
    let rec = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["displayName"] == "Recoverable Items")
        .unwrap()
        .clone();
    assert_eq!(rec.as_object().unwrap().len(), 4, "{rec}");
    env.get(&env.mp(&env.mbx, "/folders?includeHiddenFolders=maybe"), &t)
        .await
        .expect(400, "BadRequest");

    // Beta: parentMailboxUrl, kept under $select.
    let body = env
        .get(&format!("/beta/admin/exchange/mailboxes/{}/folders?$filter=type eq 'IPF.Appointment'&$select=displayName,type,wellKnownName&$top=5", env.mbx.id), &t)
        .await
        .ok()
        .json();
    let value = body["value"].as_array().unwrap();
    assert_eq!(value.len(), 1, "{body}");
    let cal = value[0].as_object().unwrap();
    assert_eq!(
        cal["parentMailboxUrl"],
        format!("{BASE}/beta/admin/exchange/mailboxes/{}", env.mbx.id)
    );
    let mut keys: Vec<&str> = cal.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "@odata.type",
            "displayName",
            "id",
            "parentMailboxUrl",
            "type",
            "wellKnownName"
        ]
    );
    assert_eq!(
        body["@odata.context"],
        format!(
            "{BASE}/beta/$metadata#admin/exchange/mailboxes/{}/folders(displayName,type,wellKnownName)",
            env.mbx.id
        )
    );
}

#[tokio::test]
async fn folder_filters_counts_order_and_paging() {
    let env = env().await;
    let t = env.admin();
    for i in 0..7 {
        env.meta
            .create_folder(
                &env.mbx.id,
                "msgfolderroot",
                NewFolder {
                    display_name: format!("Project {i}"),
                    class: "IPF.Note".into(),
                    ext_props: vec![],
                },
            )
            .await
            .unwrap();
    }
    let all = env
        .get(&env.mp(&env.mbx, "/folders?$top=1000&$count=true"), &t)
        .await
        .ok()
        .json();
    let total = all["@odata.count"].as_u64().unwrap();
    let full_ids = ids(all["value"].as_array().unwrap());
    assert_eq!(total as usize, full_ids.len());
    assert!(total >= 20, "{total}");
    assert!(all.get("@odata.nextLink").is_none());

    // $count segment as text/plain, with a filter.
    let r = env.get(&env.mp(&env.mbx, "/folders/$count"), &t).await.ok();
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(r.text, total.to_string());
    let r = env
        .get(
            &env.mp(
                &env.mbx,
                "/folders/%24count?$filter=startswith(displayName,'P')",
            ),
            &t,
        )
        .await;
    r.expect(400, "BadRequest");
    let r = env
        .get(
            &env.mp(
                &env.mbx,
                "/folders/$count?$filter=type eq 'IPF.Note' and wellKnownName eq null",
            ),
            &t,
        )
        .await
        .ok();
    assert_eq!(r.text, "7");
    env.get(&env.mp(&env.mbx, "/folders/$count?$top=1"), &t)
        .await
        .expect(400, "BadRequest");

    // Default page size 10 and nextLink with %24skip.
    let first = env.get(&env.mp(&env.mbx, "/folders"), &t).await;
    let body = first.json();
    assert_eq!(body["value"].as_array().unwrap().len(), 10);
    assert_eq!(
        body["@odata.nextLink"],
        format!(
            "{BASE}/v1.0/admin/exchange/mailboxes/{}/folders?%24skip=10",
            env.mbx.id
        )
    );
    let (paged, pages, _) = collect_pages(&env, first, &t, &[]).await;
    assert_eq!(ids(&paged), full_ids);
    assert_eq!(pages, full_ids.len().div_ceil(10));

    // $top pages, keeping the options in the links.
    let first = env
        .get(
            &env.mp(
                &env.mbx,
                "/folders?$top=3&$orderby=displayName desc&$count=true",
            ),
            &t,
        )
        .await;
    let body = first.json();
    let next = body["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.ends_with("?%24top=3&%24orderby=displayName+desc&%24count=true&%24skip=3"),
        "{next}"
    );
    let (paged, _, last) = collect_pages(&env, first, &t, &[]).await;
    assert_eq!(last["@odata.count"].as_u64(), Some(total));
    let names: Vec<String> = paged
        .iter()
        .map(|f| f["displayName"].as_str().unwrap().to_lowercase())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(names, sorted);
    assert_eq!(paged.len() as u64, total);

    // Prefer: odata.maxpagesize.
    let first = env
        .get_with(
            &env.mp(&env.mbx, "/folders"),
            &t,
            &[("prefer", "odata.maxpagesize=4")],
        )
        .await;
    assert_eq!(
        first.header("preference-applied"),
        Some("odata.maxpagesize=4")
    );
    assert_eq!(first.json()["value"].as_array().unwrap().len(), 4);
    let (paged, pages, _) =
        collect_pages(&env, first, &t, &[("prefer", "odata.maxpagesize=4")]).await;
    assert_eq!(ids(&paged), full_ids);
    assert_eq!(pages, full_ids.len().div_ceil(4));

    // $skip.
    let body = env
        .get(&env.mp(&env.mbx, "/folders?$skip=5&$top=1000"), &t)
        .await
        .ok()
        .json();
    assert_eq!(
        ids(body["value"].as_array().unwrap()),
        full_ids[5..].to_vec()
    );

    // Filters.
    let body = env
        .get(
            &env.mp(
                &env.mbx,
                "/folders?$filter=startswith(displayName,'Project')",
            ),
            &t,
        )
        .await;
    assert!(
        body.expect(400, "BadRequest")
            .message()
            .contains("startswith")
    );
    let body = env
        .get(&env.mp(&env.mbx, "/folders?$filter=(displayName eq 'project 1' or displayName eq 'Project 2') and not (wellKnownName ne null)"), &t)
        .await
        .ok()
        .json();
    let mut names: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Project 1", "Project 2"]);
    let body = env
        .get(
            &env.mp(&env.mbx, "/folders?$filter=wellKnownName eq 'INBOX'"),
            &t,
        )
        .await
        .ok()
        .json();
    assert_eq!(body["value"].as_array().unwrap().len(), 1);

    // Bad options.
    let r = env
        .get(&env.mp(&env.mbx, "/folders?$filter=displayName eq"), &t)
        .await
        .expect(400, "BadRequest");
    assert!(r.message().contains("position 14"), "{}", r.message());
    env.get(&env.mp(&env.mbx, "/folders?$top=0"), &t)
        .await
        .expect(400, "BadRequest");
    env.get(&env.mp(&env.mbx, "/folders?$top=1001"), &t)
        .await
        .expect(400, "BadRequest");
    env.get(&env.mp(&env.mbx, "/folders?$Top=1000"), &t)
        .await
        .ok();
    let r = env
        .get(&env.mp(&env.mbx, "/folders?$search=inbox"), &t)
        .await
        .expect(400, "BadRequest");
    assert!(r.message().contains("$search"));
    env.get(&env.mp(&env.mbx, "/folders?$select=size"), &t)
        .await
        .expect(400, "BadRequest");
    env.get(&env.mp(&env.mbx, "/folders?$orderby=nope"), &t)
        .await
        .expect(400, "BadRequest");
    env.get(&env.mp(&env.mbx, "/folders?$filter=size gt 1"), &t)
        .await
        .expect(400, "BadRequest");
    env.get(&env.mp(&env.mbx, "/folders?$skiptoken=abc"), &t)
        .await
        .expect(400, "BadRequest");
}

#[tokio::test]
async fn get_folder_child_folders_and_ids() {
    let env = env().await;
    let t = env.admin();
    let inbox = env.meta.resolve_folder(&env.mbx.id, "inbox").await.unwrap();
    let sub = env
        .meta
        .create_folder(
            &env.mbx.id,
            &inbox.id,
            NewFolder {
                display_name: "Receipts".into(),
                class: "IPF.Note".into(),
                ext_props: vec![ExtProp {
                    id: "String 0x3001".into(),
                    value: ExtValue::Single("Receipts".into()),
                }],
            },
        )
        .await
        .unwrap();
    let subsub = env
        .meta
        .create_folder(
            &env.mbx.id,
            &sub.id,
            NewFolder {
                display_name: "2024".into(),
                class: String::new(),
                ext_props: vec![],
            },
        )
        .await
        .unwrap();

    for path in [
        "/folders/inbox",
        "/folders/INBOX",
        "/folders/Inbox",
        &format!("/folders/{}", inbox.id),
        &format!("/folders('{}')", inbox.id),
    ] {
        let body = env.get(&env.mp(&env.mbx, path), &t).await.ok().json();
        assert_eq!(body["id"], inbox.id.as_str(), "{path}");
        assert_eq!(body["childFolderCount"], 1);
        assert_eq!(body["wellKnownName"], "inbox");
    }
    let body = env
        .get(&env.mp(&env.mbx, "/folders/inbox"), &t)
        .await
        .json();
    assert_eq!(
        body["@odata.context"],
        format!(
            "{BASE}/v1.0/$metadata#admin/exchange/mailboxes/{}/folders/$entity",
            env.mbx.id
        )
    );

    // childFolders list / get / count / nested.
    let body = env
        .get(&env.mp(&env.mbx, "/folders/inbox/childFolders"), &t)
        .await
        .ok()
        .json();
    assert_eq!(
        body["@odata.context"],
        format!(
            "{BASE}/v1.0/$metadata#admin/exchange/mailboxes/{}/folders('inbox')/childFolders",
            env.mbx.id
        )
    );
    let v = body["value"].as_array().unwrap();
    assert_eq!(ids(v), vec![sub.id.clone()]);
    assert_eq!(v[0]["wellKnownName"], Value::Null);
    assert_eq!(v[0]["parentFolderId"], inbox.id.as_str());
    assert_eq!(
        env.get(&env.mp(&env.mbx, "/folders/inbox/childFolders/$count"), &t)
            .await
            .ok()
            .text,
        "1"
    );
    let body = env
        .get(
            &env.mp(&env.mbx, &format!("/folders/inbox/childFolders/{}", sub.id)),
            &t,
        )
        .await
        .ok()
        .json();
    assert_eq!(body["displayName"], "Receipts");
    assert_eq!(
        body["@odata.context"],
        format!(
            "{BASE}/v1.0/$metadata#admin/exchange/mailboxes/{}/folders('inbox')/childFolders/$entity",
            env.mbx.id
        )
    );
    let body = env
        .get(
            &env.mp(
                &env.mbx,
                &format!(
                    "/folders/inbox/childFolders/{}/childFolders/{}",
                    sub.id, subsub.id
                ),
            ),
            &t,
        )
        .await
        .ok()
        .json();
    assert_eq!(body["type"], "IPF.Note");
    // Through the wrong parent: 404.
    env.get(
        &env.mp(
            &env.mbx,
            &format!("/folders/drafts/childFolders/{}", sub.id),
        ),
        &t,
    )
    .await
    .expect(404, "ErrorItemNotFound");
    env.get(
        &env.mp(
            &env.mbx,
            &format!("/folders/inbox/childFolders/{}", subsub.id),
        ),
        &t,
    )
    .await
    .expect(404, "ErrorItemNotFound");
    // A folder of another mailbox: 404.
    env.get(
        &env.mp(&env.colleague_mbx, &format!("/folders/{}", sub.id)),
        &t,
    )
    .await
    .expect(404, "ErrorItemNotFound");
    env.get(&env.mp(&env.mbx, "/folders/AAMkdoesnotexist"), &t)
        .await
        .expect(404, "ErrorItemNotFound");

    // $select and $expand on a single folder.
    let body = env
        .get(&env.mp(&env.mbx, &format!("/folders/{}?$select=displayName&$expand=singleValueExtendedProperties($filter=id eq 'String 0x3001')", sub.id)), &t)
        .await
        .ok()
        .json();
    assert_eq!(
        body["singleValueExtendedProperties"],
        json!([{"id": "String 0x3001", "value": "Receipts"}])
    );
    assert!(body.get("type").is_none());
    assert_eq!(body["id"], sub.id.as_str());
    env.get(&env.mp(&env.mbx, "/folders/inbox?$top=1"), &t)
        .await
        .expect(400, "BadRequest");
    env.get(&env.mp(&env.mbx, "/folders/inbox?$expand=childFolders"), &t)
        .await
        .expect(400, "BadRequest");
    // Hidden folders are reachable by id or name.
    let body = env
        .get(
            &env.mp(
                &env.mbx,
                "/folders/recoverableitemsdeletions?$select=isHidden",
            ),
            &t,
        )
        .await
        .ok()
        .json();
    assert_eq!(body["isHidden"], true);
}

// ---------------------------------------------------------------------------
// Items
// ---------------------------------------------------------------------------

async fn seed_items(env: &Env) -> Vec<store::Item> {
    let mut out = Vec::new();
    let specs: [(&str, i64, OffsetDateTime, &[&str]); 5] = [
        ("IPM.Note", 71133, datetime!(2021-08-20 10:00:00 UTC), &[]),
        (
            "IPM.Note",
            500,
            datetime!(2021-08-21 00:00:00 UTC),
            &["Red"],
        ),
        (
            "IPM.Appointment",
            1200,
            datetime!(2021-09-15 12:16:38.700 UTC),
            &["Blue", "red"],
        ),
        (
            "IPM.Note",
            64,
            datetime!(2021-09-16 08:00:00 UTC),
            &["Green"],
        ),
        ("IPM.Contact", 9000, datetime!(2022-01-01 00:00:00 UTC), &[]),
    ];
    for (class, size, created, cats) in specs {
        let mut ni = new_item(class, size, created, cats);
        // Real content: `$expand` reads extended properties from the FTS.
        let content = mapi::builder::MessageBuilder::new(class)
            .subject(format!("subject {size}"))
            .received(mapi::FileTime::from_datetime(
                datetime!(2021-09-15 12:16:38 UTC),
            ))
            .categories(["a", "b"])
            .to_framed_bytes();
        ni.blob = env.state.blobs.put(content.into()).await.unwrap();
        out.push(
            env.meta
                .create_item(&env.mbx.id, "inbox", ni)
                .await
                .unwrap(),
        );
    }
    out
}

#[tokio::test]
async fn list_and_get_items() {
    let env = env().await;
    let t = env.admin();
    let items = seed_items(&env).await;
    let inbox = env.meta.resolve_folder(&env.mbx.id, "inbox").await.unwrap();

    let body = env
        .get(&env.mp(&env.mbx, "/folders/Inbox/items"), &t)
        .await
        .ok()
        .json();
    assert_eq!(
        body["@odata.context"],
        format!(
            "{BASE}/v1.0/$metadata#admin/exchange/mailboxes/{}/folders('Inbox')/items",
            env.mbx.id
        )
    );
    let v = body["value"].as_array().unwrap();
    assert_eq!(v.len(), 5);
    // Default order: newest first.
    assert_eq!(v[0]["id"], items[4].id.as_str());
    let appt = v.iter().find(|i| i["id"] == items[2].id.as_str()).unwrap();
    assert_eq!(appt["@odata.type"], "#microsoft.graph.mailboxItem");
    assert_eq!(
        appt["@odata.etag"],
        format!("W/\"{}\"", items[2].change_key)
    );
    assert_eq!(appt["changeKey"], items[2].change_key.as_str());
    assert_eq!(appt["createdDateTime"], "2021-09-15T12:16:38Z");
    assert_eq!(appt["lastModifiedDateTime"], "2021-09-15T12:16:41Z");
    assert_eq!(appt["categories"], json!(["Blue", "red"]));
    assert_eq!(appt["type"], "IPM.Appointment");
    assert_eq!(appt["size"], 1200);
    assert_eq!(appt.as_object().unwrap().len(), 9);

    // Get, by id and key form, and its context.
    let path = format!("/folders/inbox/items/{}", items[0].id);
    let body = env.get(&env.mp(&env.mbx, &path), &t).await.ok().json();
    assert_eq!(body["size"], 71133);
    assert_eq!(
        body["@odata.context"],
        format!(
            "{BASE}/v1.0/$metadata#admin/exchange/mailboxes/{}/folders('inbox')/items/$entity",
            env.mbx.id
        )
    );
    env.get(
        &env.mp(
            &env.mbx,
            &format!("/folders('{}')/items('{}')", inbox.id, items[0].id),
        ),
        &t,
    )
    .await
    .ok();
    // Wrong folder, other mailbox, unknown.
    env.get(
        &env.mp(&env.mbx, &format!("/folders/drafts/items/{}", items[0].id)),
        &t,
    )
    .await
    .expect(404, "ErrorItemNotFound");
    env.get(
        &env.mp(
            &env.colleague_mbx,
            &format!("/folders/inbox/items/{}", items[0].id),
        ),
        &t,
    )
    .await
    .expect(404, "ErrorItemNotFound");
    env.get(&env.mp(&env.mbx, "/folders/inbox/items/AAMkmissing"), &t)
        .await
        .expect(404, "ErrorItemNotFound");
    env.get(&env.mp(&env.mbx, "/folders/nofolder/items"), &t)
        .await
        .expect(404, "ErrorItemNotFound");

    // $count both ways.
    assert_eq!(
        env.get(&env.mp(&env.mbx, "/folders/inbox/items/$count"), &t)
            .await
            .ok()
            .text,
        "5"
    );
    let body = env
        .get(
            &env.mp(&env.mbx, "/folders/inbox/items?$count=true&$top=2"),
            &t,
        )
        .await
        .ok()
        .json();
    assert_eq!(body["@odata.count"], 5);
    assert_eq!(body["value"].as_array().unwrap().len(), 2);

    // Items under a child folder.
    let sub = env
        .meta
        .create_folder(
            &env.mbx.id,
            "inbox",
            NewFolder {
                display_name: "Sub".into(),
                class: "IPF.Note".into(),
                ext_props: vec![],
            },
        )
        .await
        .unwrap();
    let child_item = env
        .meta
        .create_item(
            &env.mbx.id,
            &sub.id,
            new_item("IPM.Note", 5, datetime!(2023-01-01 0:00 UTC), &[]),
        )
        .await
        .unwrap();
    let body = env
        .get(
            &env.mp(
                &env.mbx,
                &format!("/folders/inbox/childFolders/{}/items", sub.id),
            ),
            &t,
        )
        .await
        .ok()
        .json();
    assert_eq!(
        ids(body["value"].as_array().unwrap()),
        vec![child_item.id.clone()]
    );
    assert_eq!(
        body["@odata.context"],
        format!(
            "{BASE}/v1.0/$metadata#admin/exchange/mailboxes/{}/folders('inbox')/childFolders('{}')/items",
            env.mbx.id, sub.id
        )
    );
    env.get(
        &env.mp(
            &env.mbx,
            &format!(
                "/folders/inbox/childFolders/{}/items/{}",
                sub.id, child_item.id
            ),
        ),
        &t,
    )
    .await
    .ok();
    env.get(
        &env.mp(
            &env.mbx,
            &format!(
                "/folders/inbox/childFolders/{}/items/{}",
                sub.id, items[0].id
            ),
        ),
        &t,
    )
    .await
    .expect(404, "ErrorItemNotFound");
    env.get(
        &env.mp(
            &env.mbx,
            &format!("/folders/inbox/childFolders/{}/items/$count", sub.id),
        ),
        &t,
    )
    .await
    .ok();
}

#[tokio::test]
async fn item_filters_select_expand_and_paging_links() {
    let env = env().await;
    let t = env.admin();
    let items = seed_items(&env).await;
    let q = |qs: &str| env.mp(&env.mbx, &format!("/folders/inbox/items?{qs}"));
    let got = |body: &Value| {
        let mut v = ids(body["value"].as_array().unwrap());
        v.sort();
        v
    };
    let want = |idx: &[usize]| {
        let mut v: Vec<String> = idx.iter().map(|i| items[*i].id.clone()).collect();
        v.sort();
        v
    };

    let b = env
        .get(
            &q("$filter=createdDateTime ge 2021-08-21 and createdDateTime lt 2021-09-16&$top=100"),
            &t,
        )
        .await
        .ok()
        .json();
    assert_eq!(got(&b), want(&[1, 2]));
    let b = env
        .get(
            &q("$filter=createdDateTime gt 2021-09-15T12:16:38Z&$top=100"),
            &t,
        )
        .await
        .ok()
        .json();
    assert_eq!(
        got(&b),
        want(&[2, 3, 4]),
        "sub-second precision is compared"
    );
    let b = env
        .get(
            &q("$filter=lastModifiedDateTime le 2021-08-21T00:00:03%2B00:00&$top=100"),
            &t,
        )
        .await
        .ok()
        .json();
    assert_eq!(got(&b), want(&[0, 1]));
    let b = env
        .get(&q("$filter=categories/any(c:c eq 'Red')"), &t)
        .await
        .ok()
        .json();
    assert_eq!(got(&b), want(&[1, 2]));
    let b = env
        .get(
            &q("$filter=type eq 'ipm.note' and (size gt 1000 or categories/any(c: c eq 'green'))"),
            &t,
        )
        .await
        .ok()
        .json();
    assert_eq!(got(&b), want(&[0, 3]));
    let b = env
        .get(&q("$filter=not (type eq 'IPM.Note')"), &t)
        .await
        .ok()
        .json();
    assert_eq!(got(&b), want(&[2, 4]));
    let b = env
        .get(&q("$filter=type ne 'IPM.Note' and size le 1200"), &t)
        .await
        .ok()
        .json();
    assert_eq!(got(&b), want(&[2]));
    let b = env
        .get(&q(&format!("$filter=id eq '{}'", items[3].id)), &t)
        .await
        .ok()
        .json();
    assert_eq!(got(&b), want(&[3]));

    // Errors name the problem.
    let r = env
        .get(&q("$filter=createdDateTime ge '2021-08-21'"), &t)
        .await
        .expect(400, "BadRequest");
    assert!(r.message().contains("incompatible"), "{}", r.message());
    let r = env
        .get(&q("$filter=receivedDateTime ge 2021-08-21"), &t)
        .await
        .expect(400, "BadRequest");
    assert!(r.message().contains("receivedDateTime"), "{}", r.message());
    let r = env
        .get(&q("$filter=size gt 5 and"), &t)
        .await
        .expect(400, "BadRequest");
    assert!(r.message().contains("position 13"), "{}", r.message());
    env.get(&q("$filter=isHidden eq true"), &t)
        .await
        .expect(400, "BadRequest");
    env.get(&q("$orderby=categories"), &t)
        .await
        .expect(400, "BadRequest");
    env.get(&q("includeHiddenFolders=true"), &t)
        .await
        .expect(400, "BadRequest");

    // $orderby.
    let b = env.get(&q("$orderby=size asc"), &t).await.ok().json();
    let sizes: Vec<i64> = b["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["size"].as_i64().unwrap())
        .collect();
    assert_eq!(sizes, [64, 500, 1200, 9000, 71133]);

    // $select keeps id, @odata.type and @odata.etag; the nextLink re-encodes every option.
    let first = env
        .get(&env.mp(&env.mbx, "/folders/Inbox/items?$filter=createdDateTime ge 2021-08-21 and createdDateTime lt 2021-09-16&$select=type,size&$top=1"), &t)
        .await
        .ok();
    let b = first.json();
    let one = b["value"][0].as_object().unwrap();
    let mut keys: Vec<&str> = one.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["@odata.etag", "@odata.type", "id", "size", "type"]);
    assert_eq!(
        b["@odata.nextLink"],
        format!(
            "{BASE}/v1.0/admin/exchange/mailboxes/{}/folders/Inbox/items?%24filter=createdDateTime+ge+2021-08-21+and+createdDateTime+lt+2021-09-16&%24select=type%2csize&%24top=1&%24skip=1",
            env.mbx.id
        )
    );
    let (all, pages, _) = collect_pages(&env, first, &t, &[]).await;
    assert_eq!(pages, 2);
    let mut all_ids = ids(&all);
    all_ids.sort();
    assert_eq!(all_ids, want(&[1, 2]));

    // $expand of extended properties, with and without filters.
    let b = env
        .get(&q("$top=1&$orderby=size&$expand=singleValueExtendedProperties($filter=(id eq 'String 0x0037') or (id eq 'SystemTime 0x0E06'))"), &t)
        .await
        .ok()
        .json();
    assert_eq!(
        b["value"][0]["singleValueExtendedProperties"],
        json!([{"id": "String 0x37", "value": "subject 64"}, {"id": "SystemTime 0xe06", "value": "2021-09-15T12:16:38Z"}])
    );
    assert!(b["value"][0].get("multiValueExtendedProperties").is_none());
    let b = env
        .get(&q("$top=1&$orderby=size&$expand=multiValueExtendedProperties,singleValueExtendedProperties($filter=id eq 'Integer 0x3601')"), &t)
        .await
        .ok()
        .json();
    assert_eq!(
        b["value"][0]["multiValueExtendedProperties"][0]["value"],
        json!(["a", "b"])
    );
    assert!(
        b["value"][0].get("singleValueExtendedProperties").is_none(),
        "nothing matched: left out"
    );
    let r = env
        .get(
            &q("$expand=singleValueExtendedProperties($filter=id eq 'Nonsense 0x37')"),
            &t,
        )
        .await
        .expect(400, "BadRequest");
    assert!(r.message().contains("Nonsense"));
    let one = format!(
        "/folders/inbox/items/{}?$expand=singleValueExtendedProperties($filter=id eq 'String 0x37')&$select=size",
        items[0].id
    );
    let b = env.get(&env.mp(&env.mbx, &one), &t).await.ok().json();
    assert_eq!(
        b["singleValueExtendedProperties"][0]["value"],
        "subject 71133"
    );
    assert!(b.get("type").is_none());
}

// ---------------------------------------------------------------------------
// Delta
// ---------------------------------------------------------------------------

/// Runs a delta round to its deltaLink; returns (entries, pages, deltaLink).
async fn delta_round(
    env: &Env,
    url: &str,
    token: &str,
    page: Option<u64>,
) -> (Vec<Value>, usize, String) {
    let pref = page.map(|p| format!("odata.maxpagesize={p}"));
    let headers: Vec<(&str, &str)> = pref
        .as_deref()
        .map(|p| vec![("prefer", p)])
        .unwrap_or_default();
    let first = if url.starts_with(BASE) {
        env.follow(url, token, &headers).await
    } else {
        env.get_with(url, token, &headers).await
    };
    if let Some(p) = page {
        assert_eq!(
            first.header("preference-applied"),
            Some(format!("odata.maxpagesize={p}").as_str())
        );
    }
    let (all, pages, last) = collect_pages(env, first, token, &headers).await;
    let link = last["@odata.deltaLink"]
        .as_str()
        .expect("the last page carries a deltaLink")
        .to_owned();
    assert!(last.get("@odata.nextLink").is_none());
    (all, pages, link)
}

#[tokio::test]
async fn item_delta_rounds() {
    let env = env().await;
    let t = env.admin();
    let items = seed_items(&env).await;
    let url = env.mp(&env.mbx, "/folders/inbox/items/delta");

    // Initial round, paged by 2.
    let first = env
        .get_with(&url, &t, &[("prefer", "odata.maxpagesize=2")])
        .await
        .ok();
    let b = first.json();
    assert_eq!(
        b["@odata.context"],
        format!("{BASE}/v1.0/$metadata#Collection(mailboxItem)")
    );
    let next = b["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{BASE}{url}?$skiptoken=")),
        "{next}"
    );
    let (all, pages, delta_link) = delta_round(&env, &url, &t, Some(2)).await;
    assert_eq!(pages, 3);
    let mut got = ids(&all);
    got.sort();
    let mut want: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
    want.sort();
    assert_eq!(got, want);
    assert!(all.iter().all(
        |i| i["@odata.type"] == "#microsoft.graph.mailboxItem" && i["@odata.etag"].is_string()
    ));
    assert!(delta_link.starts_with(&format!("{BASE}{url}?$deltatoken=")));

    // Nothing changed: empty round.
    let (all, _, delta_link) = delta_round(&env, &delta_link, &t, None).await;
    assert!(all.is_empty(), "{all:?}");

    // Add, update, delete, move out.
    let added = env
        .meta
        .create_item(
            &env.mbx.id,
            "inbox",
            new_item("IPM.Note", 77, OffsetDateTime::now_utc(), &[]),
        )
        .await
        .unwrap();
    let updated = env
        .meta
        .replace_item(
            &env.mbx.id,
            &items[0].id,
            &items[0].change_key,
            new_item("IPM.Note", 88, datetime!(2021-08-20 10:00 UTC), &["Red"]),
        )
        .await
        .unwrap();
    env.meta
        .delete_item(&env.mbx.id, &items[1].id)
        .await
        .unwrap();
    env.meta
        .move_item(&env.mbx.id, &items[2].id, "archive")
        .await
        .unwrap();

    let (all, _, delta_link) = delta_round(&env, &delta_link, &t, None).await;
    let find = |id: &str| all.iter().find(|v| v["id"] == id).cloned();
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(find(&added.id).unwrap()["size"], 77);
    let u = find(&updated.id).unwrap();
    assert_eq!(u["changeKey"], updated.change_key.as_str());
    assert_ne!(u["changeKey"], items[0].change_key.as_str());
    assert_eq!(u["categories"], json!(["Red"]));
    assert_eq!(
        find(&items[1].id).unwrap()["@removed"],
        json!({"reason": "deleted"})
    );
    assert_eq!(
        find(&items[2].id).unwrap()["@removed"],
        json!({"reason": "deleted"})
    );
    assert!(find(&items[2].id).unwrap().get("size").is_none());

    // The moved item shows up in the target folder's delta.
    let (arch, _, _) = delta_round(
        &env,
        &env.mp(&env.mbx, "/folders/archive/items/delta"),
        &t,
        None,
    )
    .await;
    assert_eq!(ids(&arch), vec![items[2].id.clone()]);

    // And the next round is empty again.
    let (all, _, _) = delta_round(&env, &delta_link, &t, None).await;
    assert!(all.is_empty(), "{all:?}");
}

#[tokio::test]
async fn delta_select_is_kept_in_tokens() {
    let env = env().await;
    let t = env.admin();
    seed_items(&env).await;
    let url = env.mp(&env.mbx, "/folders/inbox/items/delta?$select=size");
    let (all, pages, link) = delta_round(&env, &url, &t, Some(3)).await;
    assert_eq!(pages, 2);
    for v in &all {
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["@odata.etag", "@odata.type", "id", "size"]);
    }
    env.meta
        .create_item(
            &env.mbx.id,
            "inbox",
            new_item("IPM.Note", 1, OffsetDateTime::now_utc(), &[]),
        )
        .await
        .unwrap();
    let (all, _, _) = delta_round(&env, &link, &t, None).await;
    assert_eq!(all.len(), 1);
    assert!(all[0].get("type").is_none());
    // Options besides the token are refused on later calls.
    let r = env
        .follow(&format!("{link}&$select=type"), &t, &[])
        .await
        .expect(400, "BadRequest");
    assert!(r.message().contains("first delta request"));
    // $filter/$orderby are not delta options here.
    env.get(
        &env.mp(&env.mbx, "/folders/inbox/items/delta?$filter=size gt 1"),
        &t,
    )
    .await
    .expect(400, "BadRequest");
    env.get(
        &env.mp(&env.mbx, "/folders/inbox/items/delta?$top=2000"),
        &t,
    )
    .await
    .expect(400, "BadRequest");
    // $top sets the page size.
    let b = env
        .get(&env.mp(&env.mbx, "/folders/inbox/items/delta?$top=2"), &t)
        .await
        .ok()
        .json();
    assert_eq!(b["value"].as_array().unwrap().len(), 2);
    assert!(b["@odata.nextLink"].is_string());
}

#[tokio::test]
async fn folder_delta_rounds() {
    let env = env().await;
    let t = env.admin();
    let url = env.mp(&env.mbx, "/folders/delta");
    let (all, _, link) = delta_round(&env, &url, &t, Some(5)).await;
    let names: Vec<&str> = all
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Inbox") && names.contains(&"Calendar"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"Recoverable Items"),
        "hidden folders only on request"
    );
    assert!(
        all.iter()
            .all(|f| f["wellKnownName"] != "msgfolderroot" && f["wellKnownName"] != "root")
    );
    assert!(
        all.iter()
            .all(|f| f["@odata.type"] == "#microsoft.graph.mailboxFolder")
    );
    let b = env.get(&url, &t).await.ok().json();
    assert_eq!(
        b["@odata.context"],
        format!("{BASE}/v1.0/$metadata#Collection(mailboxFolder)")
    );

    let a = env
        .meta
        .create_folder(
            &env.mbx.id,
            "inbox",
            NewFolder {
                display_name: "A".into(),
                class: "IPF.Note".into(),
                ext_props: vec![],
            },
        )
        .await
        .unwrap();
    let b_folder = env
        .meta
        .create_folder(
            &env.mbx.id,
            "msgfolderroot",
            NewFolder {
                display_name: "B".into(),
                class: "IPF.Note".into(),
                ext_props: vec![],
            },
        )
        .await
        .unwrap();
    let (all, _, link) = delta_round(&env, &link, &t, None).await;
    let got = ids(&all);
    assert!(got.contains(&a.id) && got.contains(&b_folder.id), "{all:?}");

    env.meta.delete_folder(&env.mbx.id, &a.id).await.unwrap();
    let (all, _, _) = delta_round(&env, &link, &t, None).await;
    let removed = all
        .iter()
        .find(|f| f["id"] == a.id.as_str())
        .expect("deleted folder reported");
    assert_eq!(removed["@removed"], json!({"reason": "deleted"}));

    // childFolders/delta covers one folder's children; beta keeps parentMailboxUrl under $select.
    let c = env
        .meta
        .create_folder(
            &env.mbx.id,
            &b_folder.id,
            NewFolder {
                display_name: "C".into(),
                class: "IPF.Note".into(),
                ext_props: vec![],
            },
        )
        .await
        .unwrap();
    let url = format!(
        "/beta/admin/exchange/mailboxes/{}/folders/{}/childFolders/delta?$select=displayName",
        env.mbx.id, b_folder.id
    );
    let (all, _, link) = delta_round(&env, &url, &t, None).await;
    assert_eq!(ids(&all), vec![c.id.clone()]);
    let mut keys: Vec<&str> = all[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["@odata.type", "displayName", "id", "parentMailboxUrl"]
    );
    env.meta.delete_folder(&env.mbx.id, &c.id).await.unwrap();
    let (all, _, _) = delta_round(&env, &link, &t, None).await;
    assert_eq!(
        all,
        vec![
            json!({"@odata.type": "#microsoft.graph.mailboxFolder", "id": c.id, "@removed": {"reason": "deleted"}})
        ]
    );

    // Hidden folders on request.
    let (all, _, _) = delta_round(
        &env,
        &env.mp(&env.mbx, "/folders/delta?includeHiddenFolders=true"),
        &t,
        Some(50),
    )
    .await;
    assert!(all.iter().any(|f| f["displayName"] == "Recoverable Items"));
}

#[tokio::test]
async fn delta_tokens_survive_restart() {
    let env = env().await;
    let t = env.admin();
    seed_items(&env).await;
    let url = env.mp(&env.mbx, "/folders/inbox/items/delta");
    let (_, _, link) = delta_round(&env, &url, &t, Some(2)).await;
    // A nextLink from the middle of a round too.
    let mid = env
        .get_with(&url, &t, &[("prefer", "odata.maxpagesize=2")])
        .await
        .json()["@odata.nextLink"]
        .as_str()
        .unwrap()
        .to_owned();
    let added = env
        .meta
        .create_item(
            &env.mbx.id,
            "inbox",
            new_item("IPM.Note", 3, OffsetDateTime::now_utc(), &[]),
        )
        .await
        .unwrap();

    let kid = env.authority().kid().to_owned();
    let env = env.restart().await;
    assert_eq!(
        env.authority().kid(),
        kid,
        "the signing key comes back from the store"
    );
    let (all, _, _) = delta_round(&env, &link, &t, None).await;
    assert_eq!(ids(&all), vec![added.id.clone()]);
    let r = env.follow(&mid, &t, &[]).await.ok();
    assert_eq!(r.json()["value"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_and_stale_delta_tokens() {
    let env = env().await;
    let t = env.admin();
    let items = seed_items(&env).await;
    let url = env.mp(&env.mbx, "/folders/inbox/items/delta");
    let (_, _, link) = delta_round(&env, &url, &t, None).await;

    // Tampered.
    let (prefix, token) = link.split_once("$deltatoken=").unwrap();
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'x' { 'y' } else { 'x' };
    let bad: String = chars.into_iter().collect();
    let r = env
        .follow(&format!("{prefix}$deltatoken={bad}"), &t, &[])
        .await
        .expect(400, "ErrorInvalidSyncStateData");
    assert!(r.message().contains("Start over"));
    env.follow(&format!("{prefix}$deltatoken=%%%"), &t, &[])
        .await
        .expect(400, "ErrorInvalidSyncStateData");
    env.follow(&format!("{prefix}$skiptoken=AAAA"), &t, &[])
        .await
        .expect(400, "ErrorInvalidSyncStateData");
    // Another folder's or mailbox's URL with this token.
    env.get(
        &env.mp(
            &env.mbx,
            &format!("/folders/drafts/items/delta?$deltatoken={token}"),
        ),
        &t,
    )
    .await
    .expect(400, "ErrorInvalidSyncStateData");
    env.get(
        &env.mp(&env.mbx, &format!("/folders/delta?$deltatoken={token}")),
        &t,
    )
    .await
    .expect(400, "ErrorInvalidSyncStateData");
    env.get(
        &env.mp(
            &env.colleague_mbx,
            &format!("/folders/inbox/items/delta?$deltatoken={token}"),
        ),
        &t,
    )
    .await
    .expect(400, "ErrorInvalidSyncStateData");
    // A token signed under another key (another deployment).
    let other = api::DeltaCodec::new(b"another key".to_vec());
    let mut st = env.state.delta.decode(token).unwrap();
    st.since = 0;
    env.follow(
        &format!("{prefix}$deltatoken={}", other.encode(&st)),
        &t,
        &[],
    )
    .await
    .expect(400, "ErrorInvalidSyncStateData");

    // Tombstones purged past the token: 410 with a Location for a fresh sync.
    env.meta
        .delete_item(&env.mbx.id, &items[0].id)
        .await
        .unwrap();
    env.meta
        .create_item(
            &env.mbx.id,
            "drafts",
            new_item("IPM.Note", 1, OffsetDateTime::now_utc(), &[]),
        )
        .await
        .unwrap();
    let high = env.state.delta.decode(token).unwrap().since;
    env.meta
        .purge_tombstones(&env.mbx.id, high + 2)
        .await
        .unwrap();
    let r = env
        .follow(&link, &t, &[])
        .await
        .expect(410, "syncStateNotFound");
    assert_eq!(r.header("location"), Some(format!("{BASE}{url}").as_str()));
    // The fresh sync works and yields a usable token.
    let (all, _, _) = delta_round(&env, r.header("location").unwrap(), &t, None).await;
    assert_eq!(all.len(), 4);

    // With $select, the Location keeps it.
    let url = env.mp(&env.mbx, "/folders/delta?$select=displayName");
    let (_, _, link) = delta_round(&env, &url, &t, Some(100)).await;
    let created = env
        .meta
        .create_folder(
            &env.mbx.id,
            "inbox",
            NewFolder {
                display_name: "X".into(),
                class: "IPF.Note".into(),
                ext_props: vec![],
            },
        )
        .await
        .unwrap();
    env.meta
        .delete_folder(&env.mbx.id, &created.id)
        .await
        .unwrap();
    let hw = {
        let tok = link.split_once("$deltatoken=").unwrap().1;
        env.state.delta.decode(tok).unwrap().since
    };
    env.meta
        .purge_tombstones(&env.mbx.id, hw + 10)
        .await
        .unwrap();
    let r = env
        .follow(&link, &t, &[])
        .await
        .expect(410, "syncStateNotFound");
    assert_eq!(
        r.header("location").unwrap(),
        format!(
            "{BASE}/v1.0/admin/exchange/mailboxes/{}/folders/delta?%24select=displayName",
            env.mbx.id
        )
    );
}
