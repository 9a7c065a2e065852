//! A Microsoft Graph mailbox import/export client.
//!
//! It speaks only the public Graph API (`/users/{upn}/settings/exchange`,
//! `/admin/exchange/mailboxes/{id}/…`: folders, delta, exportItems,
//! createImportSession, the import URL), so it works against a graphbox
//! server and against Exchange Online alike. It gets its tokens from an
//! Entra-shaped authority (client secret, certificate assertion or device
//! code), keeps at most N requests in flight per mailbox, waits out 429/503
//! (`Retry-After`), retries transient failures, follows 308 redirects and
//! `ErrorArchiveFolderMovedPermanently`, and asks again for items an
//! exportItems answer left out.
//!
//! ```no_run
//! # async fn f() -> client::Result<()> {
//! use client::{Credential, GraphClient, Profile};
//! let mut p = Profile::new("contoso.test", "d3e00000-0000-4000-8000-000000000001",
//!     Credential::Secret { secret: "…".into() });
//! p.graph_base = "https://localhost:8443".into();
//! p.authority = "https://localhost:8443".into();
//! let c = GraphClient::new(p)?;
//! let mbx = c.mailbox_for_user("megan@contoso.test").await?;
//! let folders = c.folders_delta(&mbx.id, None).await?;
//! # Ok(()) }
//! ```

mod auth;
mod error;
mod export;
mod http;
mod model;
mod profile;
mod transport;

#[cfg(feature = "testing")]
pub mod testing;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use auth::{DEVICE_CODE_GRANT, certificate_thumbprint_s256};
pub use error::{Error, Result};
pub use export::{ARCHIVE_MOVED, MAX_IDS_PER_EXPORT, plan_batches};
pub use model::{
    DeltaResult, ExportOutcome, Folder, ImportSession, Imported, ItemSummary, Mailbox, MailboxRef,
};
pub use profile::{
    ApiVersion, Credential, DEFAULT_AUTHORITY, DEFAULT_GRAPH_BASE, DeviceCodeCallback,
    DeviceCodePrompt, GRAPH_DEFAULT_SCOPE, Profile,
};
pub use transport::{ClientStats, Observer, RetryEvent, RetryReason};

use transport::{Answer, Policy, Req, Transport, strip_query};

/// Page size asked for on lists and delta (Outlook's maximum).
const PAGE_SIZE: &str = "1000";

/// The Graph client. Cheap to clone; clones share tokens, sessions, limits
/// and counters.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

struct Inner {
    profile: Profile,
    base: url::Url,
    transport: Transport,
    /// Import session per mailbox (lowercase id) and when to renew it.
    sessions: tokio::sync::Mutex<HashMap<String, (ImportSession, time::OffsetDateTime)>>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("graph_base", &self.inner.profile.graph_base)
            .field("tenant", &self.inner.profile.tenant)
            .field("client_id", &self.inner.profile.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", default)]
    delta_link: Option<String>,
}

/// A delta entry: either an upsert or `@removed`.
#[derive(Deserialize)]
struct DeltaEntry {
    #[serde(rename = "@removed", default)]
    removed: Option<serde_json::Value>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExchangeSettings {
    primary_mailbox_id: Option<String>,
    #[serde(default)]
    in_place_archive_mailbox_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionAnswer {
    import_url: String,
    expiration_date_time: String,
}

fn is_mailbox_id(s: &str) -> bool {
    s.len() > 4 && s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("MBX:"))
}

impl GraphClient {
    /// Builds a client; checks the profile, reads certificate files, but
    /// sends nothing (the first token is fetched by the first request).
    pub fn new(profile: Profile) -> Result<GraphClient> {
        profile.validate()?;
        let http = Arc::new(http::Http::new(&profile)?);
        let tokens = Arc::new(auth::TokenCache::new(&profile, http.clone())?);
        let base = url::Url::parse(profile.graph_base.trim_end_matches('/'))
            .map_err(|e| Error::Config(format!("graph_base: {e}")))?;
        let policy = Policy {
            max_attempts: profile.max_attempts,
            base_delay: Duration::from_millis(profile.retry_base_delay_ms),
            max_backoff: Duration::from_secs(profile.max_backoff_secs),
            per_mailbox: profile.max_concurrency_per_mailbox,
        };
        let origin = base.origin().ascii_serialization();
        Ok(GraphClient {
            inner: Arc::new(Inner {
                transport: Transport::new(http, tokens, policy, origin),
                base,
                profile,
                sessions: tokio::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The profile this client was built from.
    pub fn profile(&self) -> &Profile {
        &self.inner.profile
    }

    /// Counters since the client was built.
    pub fn stats(&self) -> ClientStats {
        let t = &self.inner.transport;
        t.counters
            .snapshot(t.tokens.fetches.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Installs the hook called before every retry.
    pub fn set_observer(&self, observer: Option<Observer>) {
        *self.inner.transport.observer.lock().expect("observer lock") = observer;
    }

    /// A valid access token (cached; fetched or renewed when needed).
    pub async fn access_token(&self) -> Result<String> {
        self.inner.transport.tokens.token().await
    }

    /// Forgets the cached access token: the next request fetches a new one.
    pub async fn forget_token(&self) {
        self.inner.transport.tokens.clear().await;
    }

    /// `{graph_base}/{version}/{segments…}` with each segment percent-encoded.
    pub fn url(&self, segments: &[&str]) -> String {
        let mut u = self.inner.base.clone();
        {
            let mut p = u.path_segments_mut().expect("http(s) base URL has a path");
            p.pop_if_empty();
            p.push(self.inner.profile.api_version.segment());
            for s in segments {
                p.push(s);
            }
        }
        u.to_string()
    }

    fn mailbox_url(&self, mbx: &str, rest: &[&str]) -> String {
        let mut segs = vec!["admin", "exchange", "mailboxes", mbx];
        segs.extend_from_slice(rest);
        self.url(&segs)
    }

    fn folder_url(&self, mbx: &str, folder: &str, rest: &[&str]) -> String {
        let mut segs = vec!["folders", folder];
        segs.extend_from_slice(rest);
        self.mailbox_url(mbx, &segs)
    }

    async fn send(&self, req: Req) -> Result<Answer> {
        self.inner.transport.send(req).await
    }

    async fn get_json<T: DeserializeOwned>(&self, url: String, mbx: Option<&str>) -> Result<T> {
        self.send(Req::get(url, mbx)).await?.json()
    }

    /// Every page of a list (follows `@odata.nextLink`).
    async fn get_all<T: DeserializeOwned>(&self, url: String, mbx: &str) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut next = Some(url);
        while let Some(u) = next {
            let page: Page<T> = self.get_json(u, Some(mbx)).await?;
            out.extend(page.value);
            next = page.next_link;
        }
        Ok(out)
    }

    /// Resolves a user principal name (or user id) to its mailboxes through
    /// `GET /users/{upn}/settings/exchange`; an `MBX:` id is checked with
    /// [`GraphClient::get_mailbox`] and used as is.
    pub async fn mailbox_for_user(&self, upn_or_id: &str) -> Result<MailboxRef> {
        let key = upn_or_id.trim();
        if key.is_empty() {
            return Err(Error::Config(
                "empty mailbox: give a user principal name or an MBX: id".into(),
            ));
        }
        if is_mailbox_id(key) {
            let m = self.get_mailbox(key).await?;
            return Ok(MailboxRef {
                id: m.id,
                archive: None,
                label: key.to_owned(),
            });
        }
        let s: ExchangeSettings = self
            .get_json(self.url(&["users", key, "settings", "exchange"]), None)
            .await?;
        let id = s.primary_mailbox_id.ok_or_else(|| Error::Decode {
            what: format!("/users/{key}/settings/exchange"),
            message: "no primaryMailboxId in the answer".into(),
        })?;
        Ok(MailboxRef {
            id,
            archive: s.in_place_archive_mailbox_id,
            label: key.to_owned(),
        })
    }

    /// `GET /admin/exchange/mailboxes/{id}`.
    pub async fn get_mailbox(&self, mbx: &str) -> Result<Mailbox> {
        self.get_json(self.mailbox_url(mbx, &[]), Some(mbx)).await
    }

    /// `GET …/folders/{id}` (id or well-known name).
    pub async fn get_folder(&self, mbx: &str, folder: &str) -> Result<Folder> {
        self.get_json(self.folder_url(mbx, folder, &[]), Some(mbx))
            .await
    }

    /// Immediate children of `parent` (or of the root, `msgfolderroot`),
    /// hidden folders included, every page.
    pub async fn list_child_folders(&self, mbx: &str, parent: Option<&str>) -> Result<Vec<Folder>> {
        let base = match parent {
            None => self.mailbox_url(mbx, &["folders"]),
            Some(p) => self.folder_url(mbx, p, &["childFolders"]),
        };
        self.get_all(
            format!("{base}?includeHiddenFolders=true&%24top={PAGE_SIZE}"),
            mbx,
        )
        .await
    }

    /// The whole folder tree below `msgfolderroot` (breadth first, parents
    /// before children), hidden folders included.
    pub async fn list_folders(&self, mbx: &str) -> Result<Vec<Folder>> {
        let mut out = self.list_child_folders(mbx, None).await?;
        let mut i = 0;
        while i < out.len() {
            if out[i].child_folder_count.unwrap_or(1) > 0 {
                let id = out[i].id.clone();
                let children = self.list_child_folders(mbx, Some(&id)).await?;
                out.extend(children);
            }
            i += 1;
        }
        Ok(out)
    }

    /// The first child of `parent` (or of the root) named `display_name`
    /// (case-insensitive, as Exchange compares folder names).
    pub async fn find_child_folder(
        &self,
        mbx: &str,
        parent: Option<&str>,
        display_name: &str,
    ) -> Result<Option<Folder>> {
        Ok(self
            .list_child_folders(mbx, parent)
            .await?
            .into_iter()
            .find(|f| f.display_name.to_lowercase() == display_name.to_lowercase()))
    }

    /// Creates a folder under `parent` (or under the root).
    pub async fn create_folder(
        &self,
        mbx: &str,
        parent: Option<&str>,
        display_name: &str,
        folder_type: &str,
    ) -> Result<Folder> {
        if display_name.trim().is_empty() {
            return Err(Error::Config(
                "a folder needs a non-empty display name".into(),
            ));
        }
        let url = match parent {
            None => self.mailbox_url(mbx, &["folders"]),
            Some(p) => self.folder_url(mbx, p, &["childFolders"]),
        };
        let body = serde_json::json!({"displayName": display_name, "type": folder_type});
        match self
            .send(Req::json(Method::POST, url, Some(mbx), &body, false))
            .await
        {
            Ok(a) => a.json(),
            // The request may or may not have been carried out: if the
            // folder now exists, that was this request.
            Err(e @ Error::Network { .. }) => {
                match self.find_child_folder(mbx, parent, display_name).await {
                    Ok(Some(f)) if f.folder_type.eq_ignore_ascii_case(folder_type) => Ok(f),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Renames a folder.
    pub async fn rename_folder(
        &self,
        mbx: &str,
        folder: &str,
        display_name: &str,
    ) -> Result<Folder> {
        let body = serde_json::json!({"displayName": display_name});
        self.send(Req::json(
            Method::PATCH,
            self.folder_url(mbx, folder, &[]),
            Some(mbx),
            &body,
            true,
        ))
        .await?
        .json()
    }

    /// Deletes a folder with its subtree and items.
    pub async fn delete_folder(&self, mbx: &str, folder: &str) -> Result<()> {
        let mut r = Req::get(self.folder_url(mbx, folder, &[]), Some(mbx));
        r.method = Method::DELETE;
        self.send(r).await.map(drop)
    }

    /// Deletes an item: `hard` = permanently, else to Recoverable Items.
    pub async fn delete_item(&self, mbx: &str, folder: &str, item: &str, hard: bool) -> Result<()> {
        let disposal = if hard { "hardDelete" } else { "softDelete" };
        let url = format!(
            "{}?disposalType={disposal}",
            self.folder_url(mbx, folder, &["items", item])
        );
        let mut r = Req::get(url, Some(mbx));
        r.method = Method::DELETE;
        self.send(r).await.map(drop)
    }

    /// Every item of a folder (metadata only), every page.
    pub async fn list_items(&self, mbx: &str, folder: &str) -> Result<Vec<ItemSummary>> {
        let url = format!(
            "{}?%24top={PAGE_SIZE}",
            self.folder_url(mbx, folder, &["items"])
        );
        let mut items: Vec<ItemSummary> = self.get_all(url, mbx).await?;
        for i in &mut items {
            if i.folder_id.is_empty() {
                i.folder_id = folder.to_owned();
            }
        }
        Ok(items)
    }

    async fn delta<T: DeserializeOwned>(
        &self,
        first: String,
        link: Option<&str>,
        mbx: &str,
    ) -> Result<DeltaResult<T>> {
        let mut url = match link {
            Some(l) => {
                let u = url::Url::parse(l).map_err(|e| {
                    Error::Config(format!("the delta link is not a URL ({e}): pass the @odata.deltaLink of an earlier round"))
                })?;
                u.to_string()
            }
            None => first,
        };
        let mut order: Vec<String> = Vec::new();
        let mut changed: HashMap<String, T> = HashMap::new();
        let mut removed: Vec<String> = Vec::new();
        let mut pages = 0u32;
        loop {
            let mut req = Req::get(url.clone(), Some(mbx));
            req.headers
                .push(("prefer", format!("odata.maxpagesize={PAGE_SIZE}")));
            let answer = self.send(req).await?;
            pages += 1;
            let page: Page<DeltaEntry> = answer.json()?;
            for e in page.value {
                let id = e
                    .rest
                    .get("id")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| Error::Decode {
                        what: strip_query(&url),
                        message: "a delta entry has no id".into(),
                    })?
                    .to_owned();
                if e.removed.is_some() {
                    changed.remove(&id);
                    if !removed.contains(&id) {
                        removed.push(id);
                    }
                } else {
                    let v: T = serde_json::from_value(serde_json::Value::Object(e.rest)).map_err(
                        |err| Error::Decode {
                            what: strip_query(&url),
                            message: format!("delta entry {id}: {err}"),
                        },
                    )?;
                    removed.retain(|r| r != &id);
                    if changed.insert(id.clone(), v).is_none() {
                        order.push(id);
                    }
                }
            }
            match (page.next_link, page.delta_link) {
                (Some(n), _) => url = n,
                (None, Some(d)) => {
                    let changed = order
                        .into_iter()
                        .filter_map(|id| changed.remove(&id))
                        .collect();
                    return Ok(DeltaResult {
                        changed,
                        removed,
                        delta_link: d,
                        pages,
                    });
                }
                (None, None) => {
                    return Err(Error::Decode {
                        what: strip_query(&url),
                        message: "a delta page has neither @odata.nextLink nor @odata.deltaLink"
                            .into(),
                    });
                }
            }
        }
    }

    /// Folder delta over the whole tree (hidden folders included): every
    /// page, replays collapsed. `Error::SyncStateNotFound` means: call again
    /// with `None`.
    pub async fn folders_delta(
        &self,
        mbx: &str,
        link: Option<&str>,
    ) -> Result<DeltaResult<Folder>> {
        let first = format!(
            "{}?includeHiddenFolders=true",
            self.mailbox_url(mbx, &["folders", "delta"])
        );
        self.delta(first, link, mbx).await
    }

    /// Item delta of one folder. Each summary's `folder_id` is `folder`.
    pub async fn items_delta(
        &self,
        mbx: &str,
        folder: &str,
        link: Option<&str>,
    ) -> Result<DeltaResult<ItemSummary>> {
        let first = self.folder_url(mbx, folder, &["items", "delta"]);
        let mut r: DeltaResult<ItemSummary> = self.delta(first, link, mbx).await?;
        for i in &mut r.changed {
            if i.folder_id.is_empty() {
                i.folder_id = folder.to_owned();
            }
        }
        Ok(r)
    }

    /// `POST …/createImportSession` (a new session; see [`GraphClient::import_item`]
    /// for the cached one).
    pub async fn create_import_session(&self, mbx: &str) -> Result<ImportSession> {
        let url = self.mailbox_url(mbx, &["createImportSession"]);
        let mut r = Req::get(url, Some(mbx));
        r.method = Method::POST;
        r.body = Some(bytes::Bytes::from_static(b"{}"));
        let a: SessionAnswer = self.send(r).await?.json()?;
        let expires = time::OffsetDateTime::parse(
            &a.expiration_date_time,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|e| Error::Decode {
            what: "createImportSession".into(),
            message: format!("expirationDateTime {:?}: {e}", a.expiration_date_time),
        })?;
        url::Url::parse(&a.import_url).map_err(|e| Error::Decode {
            what: "createImportSession".into(),
            message: format!("importUrl is not a URL: {e}"),
        })?;
        Ok(ImportSession {
            url: a.import_url,
            expires,
        })
    }

    /// The cached session of `mbx`, renewed when it has less than five
    /// minutes (or a quarter of its life) left, or when `renew`.
    async fn session(&self, mbx: &str, renew: bool) -> Result<ImportSession> {
        let key = mbx.to_ascii_lowercase();
        let mut sessions = self.inner.sessions.lock().await;
        let now = time::OffsetDateTime::now_utc();
        if !renew
            && let Some((s, renew_at)) = sessions.get(&key)
            && now < *renew_at
        {
            return Ok(s.clone());
        }
        let s = self.create_import_session(mbx).await?;
        // Renew five minutes before expiry (as CIPP does), or a quarter of
        // the way before it for sessions shorter than twenty minutes.
        let life = s.expires - now;
        let margin = time::Duration::minutes(5).min(life / 4);
        sessions.insert(key, (s.clone(), s.expires - margin));
        Ok(s)
    }

    async fn import(&self, mbx: &str, body: serde_json::Value) -> Result<Imported> {
        let body = bytes::Bytes::from(body.to_string());
        let mut renewed = false;
        let mut target = mbx.to_owned();
        loop {
            let s = self.session(&target, renewed).await?;
            let req = Req {
                method: Method::POST,
                url: s.url.clone(),
                body: Some(body.clone()),
                bearer: false,
                mailbox: Some(mbx.to_owned()),
                idempotent: false,
                headers: vec![],
            };
            match self.send(req).await {
                Ok(a) => return a.json(),
                Err(e) if !renewed && matches!(e.status(), Some(401 | 403)) => {
                    tracing::info!(error = %e, "import URL refused; renewing the import session");
                    renewed = true;
                }
                Err(Error::Http {
                    status: 409,
                    message,
                    ..
                }) if !renewed && message.contains("Invalid import session") => {
                    // Archive redirect: "The target session is expected in mailbox MBX:…".
                    let Some(pos) = message.find("MBX:") else {
                        return Err(Error::Decode {
                            what: "import".into(),
                            message: format!("409 without a mailbox id: {message}"),
                        });
                    };
                    target = message[pos..]
                        .trim_end_matches(['.', ' '])
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .trim_end_matches('.')
                        .to_owned();
                    renewed = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Imports FTS `data` as a new item of `folder`.
    pub async fn import_item(&self, mbx: &str, folder: &str, data: &[u8]) -> Result<Imported> {
        if data.is_empty() {
            return Err(Error::Config("cannot import an empty item".into()));
        }
        self.import(
            mbx,
            serde_json::json!({"FolderId": folder, "Mode": "create", "Data": STANDARD.encode(data)}),
        )
        .await
    }

    /// Replaces item `item` (whose current change key is `change_key`) with
    /// FTS `data`. `folder` is the item's folder.
    pub async fn update_item(
        &self,
        mbx: &str,
        folder: &str,
        item: &str,
        change_key: &str,
        data: &[u8],
    ) -> Result<Imported> {
        if data.is_empty() {
            return Err(Error::Config("cannot import an empty item".into()));
        }
        self.import(
            mbx,
            serde_json::json!({
                "FolderId": folder, "Mode": "update", "ItemId": item,
                "ChangeKey": change_key, "Data": STANDARD.encode(data)
            }),
        )
        .await
    }
}
