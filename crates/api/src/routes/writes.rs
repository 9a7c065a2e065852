//! The write side: exportItems, createImportSession, folder create / update
//! / delete, item delete. (The import POST itself is in [`crate::exim`]: it
//! carries no bearer token.)

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::SinkExt;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use store::{ExtProp, ExtValue, Folder, FolderPatch, Item, Mailbox, NewFolder, StoreError};

use super::{Ctx, json_response, quoted_key};
use crate::auth::Operation;
use crate::error::ApiError;
use crate::exim::{read_body, spawn_collector};
use crate::path::Tail;
use crate::render::{self, FolderView, Obj};

/// Most ids one exportItems request takes (Graph's documented limit).
pub const MAX_EXPORT_IDS: usize = 20;
/// Largest JSON body accepted by the Graph write endpoints.
const MAX_JSON_BODY: u64 = 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportRequest {
    #[serde(rename = "itemIds")]
    item_ids: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtPropIn {
    id: String,
    value: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FolderIn {
    #[serde(rename = "displayName")]
    display_name: Option<String>,
    #[serde(rename = "type")]
    class: Option<String>,
    #[serde(rename = "singleValueExtendedProperties")]
    single: Option<Vec<ExtPropIn>>,
    #[serde(rename = "multiValueExtendedProperties")]
    multi: Option<Vec<ExtPropIn>>,
    #[serde(rename = "@odata.type", default)]
    _odata_type: Option<Value>,
}

fn ext_props(f: &FolderIn) -> Result<Option<Vec<ExtProp>>, ApiError> {
    if f.single.is_none() && f.multi.is_none() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for p in f.single.iter().flatten() {
        let id = canonical_ext_id(&p.id)?;
        let Value::String(v) = &p.value else {
            return Err(ApiError::bad_request(format!(
                "singleValueExtendedProperties '{}': value must be a string.",
                p.id
            )));
        };
        out.push(ExtProp {
            id,
            value: ExtValue::Single(v.clone()),
        });
    }
    for p in f.multi.iter().flatten() {
        let id = canonical_ext_id(&p.id)?;
        let Value::Array(vs) = &p.value else {
            return Err(ApiError::bad_request(format!(
                "multiValueExtendedProperties '{}': value must be an array of strings.",
                p.id
            )));
        };
        let mut strings = Vec::with_capacity(vs.len());
        for v in vs {
            let Value::String(s) = v else {
                return Err(ApiError::bad_request(format!(
                    "multiValueExtendedProperties '{}': every value must be a string.",
                    p.id
                )));
            };
            strings.push(s.clone());
        }
        out.push(ExtProp {
            id,
            value: ExtValue::Multi(strings),
        });
    }
    Ok(Some(out))
}

fn canonical_ext_id(id: &str) -> Result<String, ApiError> {
    mapi::extprop::ExtPropId::parse(id)
        .map(|p| p.to_string())
        .map_err(|e| {
            ApiError::bad_request(format!(
                "'{id}' is not a legacy extended property id ({e}); use forms like 'String 0x3001' or 'String {{guid}} Name X'."
            ))
        })
}

fn folder_exists(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "ErrorFolderExists", m),
        other => other.into(),
    }
}

/// The JSON prefix of one export entry, up to the opening quote of `data`.
fn entry_head(item: &Item, first: bool) -> String {
    let mut s = String::new();
    if !first {
        s.push(',');
    }
    s.push_str("{\"itemId\":");
    s.push_str(&Value::String(item.id.clone()).to_string());
    s.push_str(",\"changeKey\":");
    s.push_str(&Value::String(item.change_key.clone()).to_string());
    s.push_str(",\"data\":\"");
    s
}

fn entry_error(id: &str, code: &str, message: &str, first: bool) -> String {
    let v = serde_json::json!({"itemId": id, "error": {"code": code, "message": message}});
    format!("{}{}", if first { "" } else { "," }, v)
}

/// The answer entry (and the log line) for an item whose content cannot be read.
fn unreadable_entry(id: &str, item: &Item, err: &StoreError, first: bool) -> String {
    tracing::error!(item = %item.id, blob = %item.blob.hash, error = %err, "exported item's content is unreadable");
    entry_error(
        id,
        "ErrorCorruptData",
        "The item's content could not be read from the blob store.",
        first,
    )
}

type Chunk = Result<Bytes, std::io::Error>;

/// Items up to this size are read whole and sent as one chunk; larger ones
/// stream. With the 4-chunk channel a response holds at most ~4 × 2.7 MB of
/// encoded text whatever the items' sizes.
const WHOLE_READ_MAX: u64 = 2 << 20;
/// Gathered small entries are sent once they reach this size.
const OUT_CHUNK: usize = 256 * 1024;

impl Ctx<'_> {
    async fn json_body<T: serde::de::DeserializeOwned>(&self, body: Body) -> Result<T, ApiError> {
        let bytes = read_body(body, &self.headers, MAX_JSON_BODY, MAX_JSON_BODY).await?;
        crate::body::from_slice(&bytes)
    }

    /// Resolves a folder chain (first by id or well-known name, every further
    /// one a child of the one before).
    async fn resolve_chain(&self, mbx: &Mailbox, chain: &[String]) -> Result<Folder, ApiError> {
        let mut folder: Option<Folder> = None;
        for key in chain {
            let f = self.state.meta.resolve_folder(&mbx.id, key).await?;
            if let Some(parent) = &folder
                && f.parent_id.as_deref() != Some(parent.id.as_str())
            {
                return Err(ApiError::item_not_found());
            }
            folder = Some(f);
        }
        match folder {
            Some(f) => Ok(f),
            None => Ok(self
                .state
                .meta
                .resolve_folder(&mbx.id, "msgfolderroot")
                .await?),
        }
    }

    // ---- exportItems ------------------------------------------------------------

    pub(super) async fn export_items(&self, key: &str, body: Body) -> Result<Response, ApiError> {
        self.principal.require(Operation::ExportItems)?;
        let mbx = self.resolve_mailbox(key).await?;
        let req: ExportRequest = self.json_body(body).await?;
        let Some(ids) = req.item_ids else {
            return Err(ApiError::bad_request(
                "itemIds is required: a list of 1 to 20 item ids of this mailbox.",
            ));
        };
        if ids.is_empty() {
            return Err(ApiError::bad_request(
                "itemIds is empty: give 1 to 20 item ids of this mailbox.",
            ));
        }
        if ids.len() > MAX_EXPORT_IDS {
            return Err(ApiError::bad_request(format!(
                "itemIds has {} ids; exportItems takes at most {MAX_EXPORT_IDS} per request. Split them over several requests.",
                ids.len()
            )));
        }
        // Metadata first (small), so every store failure is a clean 500
        // before the 200 is sent.
        let found = self.state.meta.get_items(&mbx.id, &ids).await?;
        // Content kept in the meta store (small imported items), in one read.
        let hashes: Vec<String> = found
            .iter()
            .flatten()
            .map(|i| i.blob.hash.clone())
            .collect();
        let inline = self.state.meta.inline_content(&hashes).await?;
        let entries: Vec<(String, Option<Item>)> = ids.into_iter().zip(found).collect();
        let head = format!(
            "{{\"@odata.context\":{},\"value\":[",
            Value::String(format!(
                "{}Collection(microsoft.graph.exportItemResponse)",
                self.metadata()
            ))
        );
        let blobs = self.state.blobs.clone();
        // A bounded channel: at most a few encoded chunks (≤ 350 KB each) are
        // ever buffered, whatever the items' sizes.
        let (mut tx, rx) = futures::channel::mpsc::channel::<Chunk>(4);
        tokio::spawn(async move {
            let send = |tx: &mut futures::channel::mpsc::Sender<Chunk>, b: Bytes| {
                let mut tx = tx.clone();
                async move { tx.send(Ok(b)).await.is_ok() }
            };
            if !send(&mut tx, Bytes::from(head)).await {
                return;
            }
            // Small items are read in groups (one blocking read task per
            // group) and their entries gathered into chunks of ~256 KB, so a
            // 20-item request costs a few task hand-offs, not dozens.
            let whole =
                |i: &Item| i.blob.size <= WHOLE_READ_MAX || inline.contains_key(&i.blob.hash);
            let small = |i: &Option<Item>| i.as_ref().is_some_and(whole);
            let mut fetched: std::collections::HashMap<usize, store::Result<Bytes>> =
                std::collections::HashMap::new();
            let mut out = String::new();
            let total = entries.len();
            let mut entries: Vec<Option<(String, Option<Item>)>> =
                entries.into_iter().map(Some).collect();
            for n in 0..total {
                let (id, item) = entries[n].take().expect("each entry is taken once");
                let first = n == 0;
                let Some(item) = item else {
                    out.push_str(&entry_error(
                        &id,
                        "ErrorItemNotFound",
                        "The specified object was not found in the store.",
                        first,
                    ));
                    continue;
                };
                if whole(&item) {
                    if !fetched.contains_key(&n) {
                        // Read this and the following small items, up to a budget.
                        let mut group = vec![(n, item.blob.hash.clone())];
                        let mut budget = item.blob.size;
                        for (k, e) in entries.iter().enumerate().skip(n + 1) {
                            let Some((_, i)) = e else { continue };
                            if !small(i) {
                                break;
                            }
                            let Some(i) = i else { continue };
                            if budget + i.blob.size > 2 * WHOLE_READ_MAX {
                                break;
                            }
                            budget += i.blob.size;
                            group.push((k, i.blob.hash.clone()));
                        }
                        group.retain(|(k, hash)| match inline.get(hash) {
                            Some(data) => {
                                fetched.insert(*k, Ok(data.clone()));
                                false
                            }
                            None => true,
                        });
                        let (idx, hashes): (Vec<usize>, Vec<String>) = group.into_iter().unzip();
                        if !hashes.is_empty() {
                            for (k, r) in idx.into_iter().zip(blobs.get_many(hashes).await) {
                                fetched.insert(k, r);
                            }
                        }
                    }
                    match fetched.remove(&n).expect("fetched above") {
                        Ok(data) => {
                            out.reserve(data.len().div_ceil(3) * 4 + 256);
                            out.push_str(&entry_head(&item, first));
                            base64_simd::STANDARD.encode_append(&data, &mut out);
                            out.push_str("\"}");
                        }
                        Err(err) => out.push_str(&unreadable_entry(&id, &item, &err, first)),
                    }
                    if out.len() >= OUT_CHUNK
                        && !send(&mut tx, Bytes::from(std::mem::take(&mut out))).await
                    {
                        return;
                    }
                    continue;
                }
                if !out.is_empty() && !send(&mut tx, Bytes::from(std::mem::take(&mut out))).await {
                    return;
                }
                let mut stream = match blobs.get_stream(&item.blob.hash).await {
                    Ok(s) => s,
                    Err(err) => {
                        let e = unreadable_entry(&id, &item, &err, first);
                        if !send(&mut tx, Bytes::from(e)).await {
                            return;
                        }
                        continue;
                    }
                };
                if !send(&mut tx, Bytes::from(entry_head(&item, first))).await {
                    return;
                }
                let mut carry: Vec<u8> = Vec::new();
                while let Some(chunk) = stream.next().await {
                    let chunk = match chunk {
                        Ok(c) => c,
                        Err(err) => {
                            // The 200 is already out: end the body early so the
                            // client sees an incomplete response, not wrong data.
                            tracing::error!(item = %item.id, error = %err, "blob read failed mid-export");
                            let _ = tx.send(Err(std::io::Error::other(err.to_string()))).await;
                            return;
                        }
                    };
                    carry.extend_from_slice(&chunk);
                    let whole = carry.len() / 3 * 3;
                    let encoded = base64_simd::STANDARD.encode_to_string(&carry[..whole]);
                    carry.drain(..whole);
                    if !send(&mut tx, Bytes::from(encoded)).await {
                        return;
                    }
                }
                let mut tail = base64_simd::STANDARD.encode_to_string(&carry);
                tail.push_str("\"}");
                if !send(&mut tx, Bytes::from(tail)).await {
                    return;
                }
            }
            out.push_str("]}");
            let _ = send(&mut tx, Bytes::from(out)).await;
        });
        let mut resp = Response::new(Body::from_stream(rx));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(
                "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8",
            ),
        );
        Ok(resp)
    }

    // ---- createImportSession -----------------------------------------------------

    pub(super) async fn create_import_session(
        &self,
        key: &str,
        body: Body,
    ) -> Result<Response, ApiError> {
        self.principal.require(Operation::CreateImportSession)?;
        let mbx = self.resolve_mailbox(key).await?;
        // No body is documented; an empty body or any JSON object is accepted.
        let v: Value = self.json_body(body).await?;
        if !v.is_object() {
            return Err(ApiError::bad_request(
                "createImportSession takes no body (or an empty JSON object).",
            ));
        }
        let (url, exp) = self
            .state
            .exim
            .new_session(&mbx.id, self.version, &self.principal);
        let mut o = Obj::new();
        o.put(
            "@odata.context",
            format!(
                "{}microsoft.graph.mailboxItemImportSession",
                self.metadata()
            ),
        );
        o.put("importUrl", url);
        o.put("expirationDateTime", render::timestamp(exp));
        Ok(json_response(StatusCode::OK, &o))
    }

    // ---- folder and item writes --------------------------------------------------

    pub(super) async fn folder_write(
        &self,
        mailbox: &str,
        chain: Vec<String>,
        tail: Tail,
        method: Method,
        body: Body,
    ) -> Result<Response, ApiError> {
        let op = match tail {
            Tail::Item(_) => Operation::DeleteItems,
            _ => Operation::WriteFolders,
        };
        self.principal.require(op)?;
        let mbx = self.resolve_mailbox(mailbox).await?;
        let folder = self.resolve_chain(&mbx, &chain).await?;
        match (tail, method) {
            (Tail::ChildList, Method::POST) => {
                self.create_folder(&mbx, &folder, &chain, body).await
            }
            (Tail::Folder, Method::PATCH) => self.update_folder(&mbx, &folder, &chain, body).await,
            (Tail::Folder | Tail::FolderRef, Method::DELETE) => {
                self.state.meta.delete_folder(&mbx.id, &folder.id).await?;
                spawn_collector(self.state);
                Ok(no_content())
            }
            (Tail::Item(id), Method::DELETE) => self.delete_item(&mbx, &folder, &id).await,
            (_, m) => Err(ApiError::method_not_allowed(m.as_str(), "GET")),
        }
    }

    fn folder_entity(&self, mbx: &Mailbox, f: &Folder, nav: &str, status: StatusCode) -> Response {
        let url = self
            .version
            .is_beta()
            .then(|| format!("{}/beta/admin/exchange/mailboxes/{}", self.base(), mbx.id));
        let view = FolderView {
            select: None,
            parent_mailbox_url: url.as_deref(),
            show_hidden: true,
            expand: None,
        };
        let mut o = Obj::new();
        o.put(
            "@odata.context",
            format!("{}{nav}/$entity", self.metadata()),
        );
        o.0.extend(render::folder(f, &view).0);
        json_response(status, &o)
    }

    fn nav_path(&self, mbx: &Mailbox, chain: &[String], child: bool) -> String {
        let mut p = format!(
            "admin/exchange/mailboxes('{}')",
            quoted_key(&mbx.id.to_string())
        );
        for (i, key) in chain.iter().enumerate() {
            let nav = if i == 0 { "folders" } else { "childFolders" };
            p.push_str(&format!("/{nav}('{}')", quoted_key(key)));
        }
        if child {
            p.push_str(if chain.is_empty() {
                "/folders"
            } else {
                "/childFolders"
            });
        }
        p
    }

    async fn create_folder(
        &self,
        mbx: &Mailbox,
        parent: &Folder,
        chain: &[String],
        body: Body,
    ) -> Result<Response, ApiError> {
        let req: FolderIn = self.json_body(body).await?;
        let Some(name) = req.display_name.clone().filter(|n| !n.trim().is_empty()) else {
            return Err(ApiError::bad_request(
                "displayName is required and must not be empty.",
            ));
        };
        let ext = ext_props(&req)?.unwrap_or_default();
        let new = NewFolder {
            display_name: name,
            class: req.class.clone().unwrap_or_default(),
            ext_props: ext,
        };
        let f = self
            .state
            .meta
            .create_folder(&mbx.id, &parent.id, new)
            .await
            .map_err(folder_exists)?;
        let nav = self.nav_path(mbx, chain, true);
        Ok(self.folder_entity(mbx, &f, &nav, StatusCode::CREATED))
    }

    async fn update_folder(
        &self,
        mbx: &Mailbox,
        folder: &Folder,
        chain: &[String],
        body: Body,
    ) -> Result<Response, ApiError> {
        let req: FolderIn = self.json_body(body).await?;
        if let Some(t) = &req.class
            && !t.eq_ignore_ascii_case(&folder.class)
        {
            return Err(ApiError::bad_request(format!(
                "A folder's type can't be changed (it is '{}'); delete the folder and create a new one of type '{t}'.",
                folder.class
            )));
        }
        if let Some(n) = &req.display_name
            && n.trim().is_empty()
        {
            return Err(ApiError::bad_request("displayName must not be empty."));
        }
        let patch = FolderPatch {
            display_name: req.display_name.clone(),
            ext_props: ext_props(&req)?,
        };
        let f = self
            .state
            .meta
            .update_folder(&mbx.id, &folder.id, patch)
            .await
            .map_err(folder_exists)?;
        let nav = self.nav_path(mbx, &chain[..chain.len() - 1], true);
        Ok(self.folder_entity(mbx, &f, &nav, StatusCode::OK))
    }

    async fn delete_item(
        &self,
        mbx: &Mailbox,
        folder: &Folder,
        id: &str,
    ) -> Result<Response, ApiError> {
        let disposal = self.raw_query.as_deref().and_then(|q| {
            q.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                k.eq_ignore_ascii_case("disposalType").then(|| {
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned()
                })
            })
        });
        let Some(disposal) = disposal else {
            return Err(ApiError::bad_request(
                "disposalType is required: add ?disposalType=softDelete (move to Recoverable Items) or ?disposalType=hardDelete (delete permanently).",
            ));
        };
        let hard = if disposal.eq_ignore_ascii_case("hardDelete") {
            true
        } else if disposal.eq_ignore_ascii_case("softDelete") {
            false
        } else {
            return Err(ApiError::bad_request(format!(
                "disposalType '{disposal}' is not supported: use softDelete or hardDelete."
            )));
        };
        let item = self.state.meta.get_item(&mbx.id, id).await?;
        if item.folder_id != folder.id {
            return Err(ApiError::item_not_found());
        }
        if hard {
            self.state.meta.delete_item(&mbx.id, &item.id).await?;
            spawn_collector(self.state);
        } else {
            let bin = self
                .state
                .meta
                .resolve_folder(&mbx.id, "recoverableitemsdeletions")
                .await?;
            self.state
                .meta
                .move_item(&mbx.id, &item.id, &bin.id)
                .await?;
        }
        Ok(no_content())
    }
}

fn no_content() -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}
