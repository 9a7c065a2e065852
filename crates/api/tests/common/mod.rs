//! Test environment: a real SQLite meta store in a temp dir, two tenants,
//! users with mailboxes, the router, and token helpers.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use api::{AppState, Authority, Grant, TokenRequest, TokenUser};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use store::{BlobRef, Mailbox, MailboxKind, MetaStore, NewItem, SqliteMetaStore, Tenant, User};
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;
use uuid::Uuid;

pub const BASE: &str = "http://graphbox.test";
pub const ISSUER: &str = "https://login.graphbox.test";

/// One RSA key for the whole test binary (key generation is slow); seeded
/// into every store before the authority loads, exactly as a second
/// instance would find it.
pub fn pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| api::auth::generate_signing_key_pem().unwrap())
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub meta: Arc<SqliteMetaStore>,
    pub state: AppState,
    pub app: Router,
    pub tenant: Tenant,
    pub user: User,
    pub mbx: Mailbox,
    pub archive: Mailbox,
    /// Same tenant, another user.
    pub colleague: User,
    pub colleague_mbx: Mailbox,
    /// Another tenant.
    pub foreign_tenant: Tenant,
    pub foreign_user: User,
    pub foreign_mbx: Mailbox,
    pub app_id: Uuid,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
    pub fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        self
    }
    #[track_caller]
    pub fn expect(self, status: u16, code: &str) -> Self {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.code(), code, "{}", self.text);
        self
    }
}

pub async fn open_state(meta: Arc<SqliteMetaStore>) -> AppState {
    meta.put_setting_if_absent(api::auth::SIGNING_KEY_SETTING, pem())
        .await
        .unwrap();
    AppState::load(meta, BASE, ISSUER).await.unwrap()
}

pub async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(
        SqliteMetaStore::open(dir.path().join("meta.db"))
            .await
            .unwrap(),
    );
    let tenant = meta.create_tenant("contoso.com", "Contoso").await.unwrap();
    let user = meta
        .create_user(tenant.id, "megan@contoso.com", "Megan Bowen")
        .await
        .unwrap();
    let mbx = meta
        .create_mailbox(user.id, MailboxKind::Primary)
        .await
        .unwrap();
    let archive = meta
        .create_mailbox(user.id, MailboxKind::Archive)
        .await
        .unwrap();
    let colleague = meta
        .create_user(tenant.id, "alex@contoso.com", "Alex Wilber")
        .await
        .unwrap();
    let colleague_mbx = meta
        .create_mailbox(colleague.id, MailboxKind::Primary)
        .await
        .unwrap();
    let foreign_tenant = meta
        .create_tenant("fabrikam.com", "Fabrikam")
        .await
        .unwrap();
    let foreign_user = meta
        .create_user(foreign_tenant.id, "pat@fabrikam.com", "Pat")
        .await
        .unwrap();
    let foreign_mbx = meta
        .create_mailbox(foreign_user.id, MailboxKind::Primary)
        .await
        .unwrap();
    let state = open_state(meta.clone()).await;
    let app = api::router(state.clone());
    Env {
        dir,
        meta,
        state,
        app,
        tenant,
        user,
        mbx,
        archive,
        colleague,
        colleague_mbx,
        foreign_tenant,
        foreign_user,
        foreign_mbx,
        app_id: Uuid::new_v4(),
    }
}

pub const ALL_APP_ROLES: &[&str] = &[
    "MailboxFolder.Read.All",
    "MailboxItem.Read.All",
    "User.Read.All",
];

impl Env {
    /// Simulates a server restart: drops the router, state and store, then
    /// reopens the same database file and loads the state from it alone
    /// (nothing is re-seeded).
    pub async fn restart(self) -> Env {
        let Env {
            dir,
            meta,
            state,
            app,
            tenant,
            user,
            mbx,
            archive,
            colleague,
            colleague_mbx,
            foreign_tenant,
            foreign_user,
            foreign_mbx,
            app_id,
        } = self;
        drop(app);
        drop(state);
        drop(meta);
        let meta = Arc::new(
            SqliteMetaStore::open(dir.path().join("meta.db"))
                .await
                .unwrap(),
        );
        let state = AppState::load(meta.clone(), BASE, ISSUER).await.unwrap();
        let app = api::router(state.clone());
        Env {
            dir,
            meta,
            state,
            app,
            tenant,
            user,
            mbx,
            archive,
            colleague,
            colleague_mbx,
            foreign_tenant,
            foreign_user,
            foreign_mbx,
            app_id,
        }
    }

    pub fn authority(&self) -> &Authority {
        &self.state.authority
    }

    pub fn app_token_for(&self, tenant: Uuid, roles: &[&str]) -> String {
        self.authority().mint(&TokenRequest {
            tenant_id: tenant,
            app_id: self.app_id,
            grant: Grant::Application {
                roles: roles.iter().map(|s| s.to_string()).collect(),
            },
            lifetime: Duration::hours(1),
            issued_at: None,
        })
    }

    pub fn app_token(&self, roles: &[&str]) -> String {
        self.app_token_for(self.tenant.id, roles)
    }

    /// An application token with every read permission.
    pub fn admin(&self) -> String {
        self.app_token(ALL_APP_ROLES)
    }

    pub fn user_token(&self, user: &User, scopes: &[&str]) -> String {
        self.authority().mint(&TokenRequest {
            tenant_id: user.tenant_id,
            app_id: self.app_id,
            grant: Grant::Delegated {
                user: TokenUser {
                    id: user.id,
                    upn: user.upn.clone(),
                },
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
            },
            lifetime: Duration::hours(1),
            issued_at: None,
        })
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.request("GET", path, Some(token), &[]).await
    }

    pub async fn get_with(&self, path: &str, token: &str, headers: &[(&str, &str)]) -> Resp {
        self.request("GET", path, Some(token), headers).await
    }

    /// Follows an absolute link the server produced.
    pub async fn follow(&self, link: &str, token: &str, headers: &[(&str, &str)]) -> Resp {
        let path = link
            .strip_prefix(BASE)
            .unwrap_or_else(|| panic!("link outside base: {link}"));
        self.request("GET", path, Some(token), headers).await
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        // Write literal spaces the way clients put them on the wire.
        let path = path.replace(' ', "%20");
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = self
            .app
            .clone()
            .oneshot(b.body(Body::empty()).unwrap())
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

    /// `/v1.0/admin/exchange/mailboxes/{mbx}` + rest.
    pub fn mp(&self, mbx: &Mailbox, rest: &str) -> String {
        format!("/v1.0/admin/exchange/mailboxes/{}{rest}", mbx.id)
    }
}

pub fn blob(n: u64) -> BlobRef {
    BlobRef {
        hash: format!("{n:064x}"),
        size: 100 + n,
    }
}

pub fn new_item(class: &str, size: i64, created: OffsetDateTime, categories: &[&str]) -> NewItem {
    NewItem {
        class: class.into(),
        size,
        created,
        modified: created + Duration::seconds(3),
        categories: categories.iter().map(|s| s.to_string()).collect(),
        blob: blob(size as u64),
        inline: None,
        ext_props: Vec::new(),
    }
}

/// Collects `value` from a list response and every page after it.
pub async fn collect_pages(
    env: &Env,
    first: Resp,
    token: &str,
    headers: &[(&str, &str)],
) -> (Vec<Value>, usize, Value) {
    let mut body = first.ok().json();
    let mut all = body["value"].as_array().unwrap().clone();
    let mut pages = 1;
    while let Some(next) = body["@odata.nextLink"].as_str().map(str::to_owned) {
        body = env.follow(&next, token, headers).await.ok().json();
        all.extend(body["value"].as_array().unwrap().iter().cloned());
        pages += 1;
        assert!(pages < 1000, "runaway paging");
    }
    (all, pages, body)
}

pub fn ids(values: &[Value]) -> Vec<String> {
    values
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

pub fn meta_dyn(env: &Env) -> &dyn MetaStore {
    env.meta.as_ref()
}
