//! Import sessions and the import endpoint, and the blob collector.
//!
//! `createImportSession` hands out an Outlook-shaped URL,
//! `{import base}/api/g{v1.0|beta}/Mailboxes('MBX:…')/importItem?authtoken=…`.
//! The token is self-contained and MACed (HMAC-SHA256) under a server secret
//! kept in the meta store (`import_mac_key`, created once through
//! `put_setting_if_absent`), so every instance accepts every session and a
//! restart does not end them. It binds the mailbox, the API version, the
//! caller (tenant plus user or app) and the expiry.
//!
//! The import POST carries no bearer token. Its body
//! (`{"FolderId","Mode","Data","ItemId","ChangeKey"}`, names
//! case-insensitive) is read into one buffer of at most
//! `ceil(max_item_size / 3) * 4 + 64 KiB` bytes; `Data` is base64-decoded *in
//! place* inside that buffer, so the peak memory of one import is about
//! 1.34× the item size (the JSON text), never the text plus a decoded copy.
//! The decoded bytes are validated with `fts::decode` (zero-copy) before
//! anything is stored. An item up to `inline_max` bytes (64 KiB by default)
//! is committed with its content to the meta store in one transaction with
//! the change log; a larger one is first written to the blob store
//! (fsynced), then committed. A crash between the two leaves at most an
//! unreferenced blob file, never a visible half item.
//!
//! Blobs are deduplicated by BLAKE3 and reference-counted in the meta store.
//! The collector ([`collect_garbage`]) forgets a blob whose count is zero and
//! only then deletes its content. The race the store docs describe (an
//! import re-using a blob the collector is deleting) is closed by
//! [`Exim::gate`]: an import holds it shared from `BlobStore::put` until its
//! metadata commits, the collector holds it exclusively around each
//! `forget_blob` + `delete`. The gate is per process: instances sharing one
//! store must run the collector on one instance only (`graphbox serve
//! --no-collector` on the others is not needed for the embedded engine,
//! which is single-process; see docs/API.md).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use percent_encoding::percent_decode_str;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::Sha256;
use store::{MailboxId, MetaStore, StoreError};
use time::{Duration, OffsetDateTime};
use tokio::sync::RwLock;

use crate::AppState;
use crate::auth::{Principal, PrincipalKind};
use crate::error::ApiError;
use crate::path::Version;

/// The meta-store setting that holds the import-token MAC key (standard base64).
pub const IMPORT_KEY_SETTING: &str = "import_mac_key";
/// Default import session lifetime.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::hours(1);
/// Default largest importable item (decoded FTS bytes): Exchange Online's
/// maximum message size.
pub const DEFAULT_MAX_ITEM_SIZE: u64 = 150 * 1024 * 1024;
/// JSON overhead allowed on top of the base64 text of an import body.
const BODY_SLACK: u64 = 64 * 1024;
const MAC_CONTEXT: &[u8] = b"graphbox import session v1\0";

/// Import configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportSettings {
    /// How long an import URL is valid.
    pub session_lifetime: Duration,
    /// Largest item accepted (decoded bytes); larger → 413.
    pub max_item_size: u64,
    /// Items up to this size (decoded bytes) are kept in the meta store, in
    /// the item's own transaction; larger ones go to the blob store.
    pub inline_max: u64,
    /// Scheme, host and port of import URLs (no trailing slash); differs
    /// from the Graph base behind a proxy.
    pub import_base_url: String,
}

impl ImportSettings {
    /// One hour, 150 MB, import URLs on the Graph base URL.
    pub fn defaults(public_base_url: &str) -> ImportSettings {
        ImportSettings {
            session_lifetime: DEFAULT_SESSION_LIFETIME,
            max_item_size: DEFAULT_MAX_ITEM_SIZE,
            inline_max: store::blob::DEFAULT_INLINE_MAX,
            import_base_url: public_base_url.trim_end_matches('/').to_owned(),
        }
    }
}

/// Import sessions and the blob gate.
pub struct Exim {
    /// The settings in force.
    pub settings: ImportSettings,
    key: Vec<u8>,
    /// Held shared by imports from blob put to metadata commit, exclusively
    /// by the collector around forget + delete.
    pub gate: Arc<RwLock<()>>,
}

impl std::fmt::Debug for Exim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exim")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What an import token carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// Mailbox id (canonical text).
    pub mbx: String,
    /// `v1.0` or `beta`.
    pub ver: String,
    /// Tenant of the caller.
    pub tid: String,
    /// `user:<oid>` or `app:<appid>`.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Session id (makes every URL distinct; logged).
    pub sid: String,
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionError {
    /// Not ours, altered, or unreadable.
    Invalid,
    /// Past its expiry.
    Expired(OffsetDateTime),
}

impl Exim {
    /// Loads (or creates on first start) the token key.
    pub async fn load_or_create(
        meta: &dyn MetaStore,
        settings: ImportSettings,
    ) -> store::Result<Exim> {
        let stored = match meta.get_setting(IMPORT_KEY_SETTING).await? {
            Some(v) => v,
            None => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                meta.put_setting_if_absent(IMPORT_KEY_SETTING, &STANDARD.encode(key))
                    .await?
            }
        };
        let key = STANDARD.decode(stored.trim()).map_err(|_| {
            StoreError::Invalid(format!(
                "setting '{IMPORT_KEY_SETTING}' is not base64; delete it to generate a new key (outstanding import URLs then stop working)"
            ))
        })?;
        Ok(Exim {
            settings,
            key,
            gate: Arc::new(RwLock::new(())),
        })
    }

    /// The same key and gate with other settings.
    pub fn with_settings(&self, settings: ImportSettings) -> Exim {
        Exim {
            settings,
            key: self.key.clone(),
            gate: self.gate.clone(),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        let mut m =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        m.update(MAC_CONTEXT);
        m
    }

    /// Signs a session token.
    pub fn encode(&self, claims: &SessionClaims) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        let mut m = self.mac();
        m.update(&payload);
        let mut bytes = m.finalize().into_bytes().to_vec();
        bytes.extend_from_slice(&payload);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Verifies a session token and its expiry.
    pub fn decode(&self, token: &str, now: OffsetDateTime) -> Result<SessionClaims, SessionError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim().trim_end_matches('='))
            .map_err(|_| SessionError::Invalid)?;
        if bytes.len() <= 32 {
            return Err(SessionError::Invalid);
        }
        let (tag, payload) = bytes.split_at(32);
        let mut m = self.mac();
        m.update(payload);
        m.verify_slice(tag).map_err(|_| SessionError::Invalid)?;
        let claims: SessionClaims =
            serde_json::from_slice(payload).map_err(|_| SessionError::Invalid)?;
        let exp =
            OffsetDateTime::from_unix_timestamp(claims.exp).map_err(|_| SessionError::Invalid)?;
        if now >= exp {
            return Err(SessionError::Expired(exp));
        }
        Ok(claims)
    }

    /// A new session for `caller` on `mbx`: (import URL, expiry).
    pub fn new_session(
        &self,
        mbx: &MailboxId,
        version: Version,
        caller: &Principal,
    ) -> (String, OffsetDateTime) {
        let exp = OffsetDateTime::now_utc() + self.settings.session_lifetime;
        let claims = SessionClaims {
            mbx: mbx.to_string(),
            ver: version.as_str().to_owned(),
            tid: caller.tenant_id.as_hyphenated().to_string(),
            sub: caller_subject(caller),
            exp: exp.unix_timestamp(),
            sid: uuid::Uuid::new_v4().simple().to_string(),
        };
        let url = format!(
            "{}/api/g{}/Mailboxes('{}')/importItem?authtoken={}",
            self.settings.import_base_url,
            version.as_str(),
            mbx,
            self.encode(&claims)
        );
        (
            url,
            OffsetDateTime::from_unix_timestamp(claims.exp).unwrap_or(exp),
        )
    }
}

fn caller_subject(p: &Principal) -> String {
    match &p.kind {
        PrincipalKind::Delegated { user_id, .. } => format!("user:{}", user_id.as_hyphenated()),
        PrincipalKind::Application { app_id, .. } => format!("app:{app_id}"),
    }
}

// ---- the blob collector ---------------------------------------------------------

/// Reclaims unreferenced blobs: forgets each in the meta store, then deletes
/// its content, under the exclusive gate. Returns how many were reclaimed.
pub async fn collect_garbage(
    meta: &dyn MetaStore,
    blobs: &store::BlobStore,
    gate: &RwLock<()>,
) -> store::Result<u64> {
    let mut reclaimed = 0u64;
    loop {
        let batch = meta.unreferenced_blobs(256).await?;
        if batch.is_empty() {
            return Ok(reclaimed);
        }
        let mut progressed = false;
        for hash in batch {
            let _exclusive = gate.write().await;
            if meta.forget_blob(&hash).await? {
                blobs.delete(&hash).await?;
                reclaimed += 1;
                progressed = true;
            }
        }
        if !progressed {
            return Ok(reclaimed);
        }
    }
}

/// Runs the collector in the background (after a delete or a replace).
pub fn spawn_collector(state: &AppState) {
    let meta = state.meta.clone();
    let blobs = state.blobs.clone();
    let gate = state.exim.gate.clone();
    tokio::spawn(async move {
        if let Err(e) = collect_garbage(meta.as_ref(), &blobs, &gate).await {
            tracing::warn!(error = %e, "blob collection failed; it is retried after the next delete or by the periodic collector");
        }
    });
}

// ---- the import endpoint ----------------------------------------------------------

/// Whether a raw request path is an import URL path (`/api/g…/…`).
pub fn is_import_path(raw_path: &str) -> bool {
    let p = raw_path.trim_start_matches('/');
    p.len() > 5 && p[..5].eq_ignore_ascii_case("api/g")
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "ErrorMessageSizeExceeded",
        format!(
            "The item is larger than this server accepts ({max} bytes of FTS data). Split or shrink it, or raise the server's import size limit."
        ),
    )
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        message,
    )
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "ErrorAccessDenied", message)
}

/// Parses `/api/g{ver}/Mailboxes('{id}')/importItem` (case-insensitive
/// segments, percent-decoded key) into the version and mailbox key.
fn parse_import_path(raw_path: &str) -> Result<(Version, String), ApiError> {
    let not_found = || ApiError::unknown_segment(raw_path.trim_start_matches('/'));
    let segs: Vec<&str> = raw_path.trim_matches('/').split('/').collect();
    let [api, ver, mbx, action] = segs.as_slice() else {
        return Err(not_found());
    };
    if !api.eq_ignore_ascii_case("api") || !action.eq_ignore_ascii_case("importItem") {
        return Err(not_found());
    }
    let version = if ver.eq_ignore_ascii_case("gv1.0") {
        Version::V1
    } else if ver.eq_ignore_ascii_case("gbeta") {
        Version::Beta
    } else {
        return Err(not_found());
    };
    let decoded = percent_decode_str(mbx)
        .decode_utf8()
        .map_err(|_| not_found())?
        .into_owned();
    let Some(open) = decoded.find('(') else {
        return Err(not_found());
    };
    if !decoded[..open].eq_ignore_ascii_case("Mailboxes") || !decoded.ends_with(')') {
        return Err(not_found());
    }
    let inner = &decoded[open + 1..decoded.len() - 1];
    let key = inner
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .unwrap_or(inner);
    Ok((version, key.to_owned()))
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        k.eq_ignore_ascii_case(name).then(|| {
            percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// The import body without `Data` (which is handled in place).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportFields {
    #[serde(rename = "FolderId")]
    folder_id: Option<String>,
    #[serde(rename = "Mode")]
    mode: Option<String>,
    #[serde(rename = "ItemId")]
    item_id: Option<String>,
    #[serde(rename = "ChangeKey")]
    change_key: Option<String>,
    #[serde(rename = "@odata.type", default)]
    _odata_type: Option<serde_json::Value>,
}

/// Reads a body of at most `limit` bytes into one buffer; 413 above it.
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: u64,
    max_item: u64,
) -> Result<Vec<u8>, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(max_item));
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("Could not read the request body: {e}.")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() as u64 + data.len() as u64 > limit {
                return Err(too_large(max_item));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

/// Decodes standard base64 (padding optional, whitespace ignored) held in
/// `buf[start..end]` in place, leaving the decoded bytes at
/// `buf[start..start + n]`; returns `n`. The write position never passes the
/// read position, so no second buffer is needed.
fn decode_base64_in_place(buf: &mut [u8], start: usize, end: usize) -> Result<usize, String> {
    const CHUNK: usize = 4096;
    let mut quad = [0u8; CHUNK];
    let mut out = [0u8; CHUNK / 4 * 3];
    let mut read = start;
    let mut write = start;
    let mut fill = 0usize;
    let mut pad_seen = false;
    let mut pos_text = 0usize; // characters consumed (for error messages)
    while read < end || fill > 0 {
        // Gather up to CHUNK significant characters.
        while read < end && fill < CHUNK {
            let c = buf[read];
            read += 1;
            pos_text += 1;
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b'=' => pad_seen = true,
                _ if pad_seen => {
                    return Err(format!(
                        "character {pos_text} of Data follows '=' padding; Data must be one standard base64 string"
                    ));
                }
                _ => {
                    quad[fill] = c;
                    fill += 1;
                }
            }
        }
        let whole = if read < end { fill / 4 * 4 } else { fill };
        if whole == 0 {
            if read >= end {
                break;
            }
            continue;
        }
        let n = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode_slice(&quad[..whole], &mut out)
            .map_err(|e| format!("Data is not valid base64 ({e})"))?;
        buf[write..write + n].copy_from_slice(&out[..n]);
        write += n;
        quad.copy_within(whole..fill, 0);
        fill -= whole;
        debug_assert!(write <= read);
    }
    Ok(write - start)
}

/// `POST {importUrl}`.
/// The largest import request body: `max_item` bytes of FTS as base64 in
/// the JSON object, with room for the other members.
pub(crate) fn largest_import_body(max_item: u64) -> u64 {
    max_item.div_ceil(3) * 4 + BODY_SLACK
}

/// The mailbox an import URL writes to, once its session token, the URL
/// and the caller's access to the mailbox are checked.
async fn import_mailbox(
    state: &AppState,
    raw_path: &str,
    query: Option<&str>,
) -> Result<(Version, store::Mailbox), ApiError> {
    let (version, mbx_key) = parse_import_path(raw_path)?;
    let Some(token) = query_param(query, "authtoken") else {
        return Err(unauthorized(
            "The import URL has no authtoken. Use the importUrl exactly as createImportSession returned it.",
        ));
    };
    let claims = match state.exim.decode(&token, OffsetDateTime::now_utc()) {
        Ok(c) => c,
        Err(SessionError::Invalid) => {
            return Err(unauthorized(
                "The import session token is invalid (altered, truncated, or not issued by this server). Create a new import session.",
            ));
        }
        Err(SessionError::Expired(at)) => {
            return Err(unauthorized(format!(
                "The import session expired at {}. Create a new import session.",
                crate::render::timestamp(at)
            )));
        }
    };
    let path_mbx = MailboxId::parse(&mbx_key).map_err(|_| {
        forbidden("The mailbox in the import URL is not the mailbox of its session; use the importUrl unmodified.")
    })?;
    if path_mbx.to_string() != claims.mbx || claims.ver != version.as_str() {
        return Err(forbidden(
            "The import session was issued for another mailbox or API version; use the importUrl unmodified.",
        ));
    }
    // The caller must still reach the mailbox.
    let mbx = match state.meta.get_mailbox(&path_mbx).await {
        Ok(m) => m,
        Err(StoreError::NotFound { .. }) => {
            return Err(forbidden(
                "The mailbox of this import session no longer exists.",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let reachable = mbx.tenant_id.as_hyphenated().to_string() == claims.tid
        && match claims.sub.strip_prefix("user:") {
            Some(u) => mbx.user_id.as_hyphenated().to_string() == u,
            None => claims.sub.starts_with("app:"),
        };
    if !reachable {
        return Err(forbidden(
            "The caller of this import session may not write to this mailbox.",
        ));
    }
    Ok((version, mbx))
}

pub async fn import_item(
    state: &AppState,
    raw_path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let max = state.exim.settings.max_item_size;
    let limit = largest_import_body(max);
    // A refusal decided before the body is read (an expired session) goes
    // out after the rest of the body was read: see `drain`.
    let (version, mbx) = match import_mailbox(state, raw_path, query).await {
        Ok(m) => m,
        Err(e) => {
            crate::drain::drain_unread(body, headers, limit).await;
            return Err(e);
        }
    };
    let mut buf = read_body(body, headers, limit, max).await?;

    // Locate Data (borrowed from the buffer) and parse the other members.
    let (fields, data_span, escaped_data) = {
        let raw: std::collections::BTreeMap<String, &RawValue> = serde_json::from_slice(&buf)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "The import body must be a JSON object with FolderId, Mode and Data: {e}."
                ))
            })?;
        let mut data: Option<&RawValue> = None;
        let mut rest = serde_json::Map::new();
        for (k, v) in raw {
            if k.eq_ignore_ascii_case("Data") {
                if data.is_some() {
                    return Err(ApiError::bad_request("The import body has Data twice."));
                }
                data = Some(v);
            } else {
                let value: serde_json::Value = serde_json::from_str(v.get()).map_err(|e| {
                    ApiError::bad_request(format!("Member '{k}' is not valid JSON: {e}."))
                })?;
                rest.insert(k, value);
            }
        }
        let fields: ImportFields =
            crate::body::from_value(serde_json::Value::Object(rest)).map_err(|e| {
                ApiError::bad_request(format!(
                    "The import body does not fit (expected FolderId, Mode, Data, and ItemId and ChangeKey in update mode): {e}."
                ))
            })?;
        let Some(data) = data else {
            return Err(ApiError::bad_request(
                "The import body has no Data: send the item's FTS stream, base64-encoded, as exportItems returns it.",
            ));
        };
        let text = data.get();
        if !(text.len() >= 2 && text.starts_with('"') && text.ends_with('"')) {
            return Err(ApiError::bad_request(
                "Data must be a string holding the item's base64-encoded FTS stream.",
            ));
        }
        let offset = text.as_ptr() as usize - buf.as_ptr() as usize;
        let inner = (offset + 1, offset + text.len() - 1);
        let escaped = text.contains('\\');
        let escaped_data = if escaped {
            Some(serde_json::from_str::<String>(text).map_err(|e| {
                ApiError::bad_request(format!("Data is not a valid JSON string: {e}."))
            })?)
        } else {
            None
        };
        (fields, inner, escaped_data)
    };

    // Mode and the ItemId/ChangeKey rules, before any decoding work.
    let Some(folder_id) = fields.folder_id.filter(|f| !f.is_empty()) else {
        return Err(ApiError::bad_request(
            "FolderId is required: the id or well-known name of the target folder.",
        ));
    };
    let mode = fields.mode.unwrap_or_default();
    let update = if mode.eq_ignore_ascii_case("create") {
        if fields.item_id.is_some() || fields.change_key.is_some() {
            return Err(ApiError::bad_request(
                "Mode 'create' makes a new item: do not send ItemId or ChangeKey (use Mode 'update' to replace an item).",
            ));
        }
        None
    } else if mode.eq_ignore_ascii_case("update") {
        match (fields.item_id, fields.change_key) {
            (Some(i), Some(c)) if !i.is_empty() && !c.is_empty() => Some((i, c)),
            _ => {
                return Err(ApiError::bad_request(
                    "Mode 'update' needs ItemId and ChangeKey: the item to replace and its current changeKey.",
                ));
            }
        }
    } else if mode.is_empty() {
        return Err(ApiError::bad_request(
            "Mode is required: 'create' or 'update'.",
        ));
    } else {
        return Err(ApiError::bad_request(format!(
            "Mode '{mode}' is not supported: use 'create' or 'update'."
        )));
    };

    // Decode Data in place and drop the JSON around it.
    let data: Vec<u8> = match escaped_data {
        Some(s) => {
            drop(buf);
            let mut v = s.into_bytes();
            let len = v.len();
            let n = decode_base64_in_place(&mut v, 0, len).map_err(ApiError::bad_request)?;
            v.truncate(n);
            v
        }
        None => {
            let (start, end) = data_span;
            let n = decode_base64_in_place(&mut buf, start, end).map_err(ApiError::bad_request)?;
            buf.copy_within(start..start + n, 0);
            buf.truncate(n);
            buf
        }
    };
    if data.len() as u64 > max {
        return Err(too_large(max));
    }
    if data.is_empty() {
        return Err(ApiError::bad_request(
            "Data is empty: send the item's FTS stream, base64-encoded.",
        ));
    }

    // Validate before anything is stored. The buffer is unframed in place,
    // so a 100 MB item never exists twice in memory; the stored blob is
    // rebuilt byte for byte from the unframed bytes and the record layout.
    let len = data.len();
    let (decoded, unframed) =
        fts::decode::decode_vec(data, &fts::Limits::default()).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "ErrorInvalidData",
                format!(
                    "Data is not a valid FTS item stream: at byte {} of the decoded Data: {}. Nothing was stored.",
                    e.offset, e.kind
                ),
            )
        })?;
    let fts::Root::MessageContent(content) = &decoded.root else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidData",
            "Data decodes as an FTS stream but not as one item (messageContent): import takes what exportItems returns for one item. Nothing was stored.",
        ));
    };
    let parts: Vec<Bytes> = match &decoded.framing {
        Some(f) => f.parts(&unframed),
        None => vec![unframed.clone()],
    };

    let folder = match state.meta.resolve_folder(&mbx.id, &folder_id).await {
        Ok(f) => f,
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "ErrorFolderNotFound",
                format!("Folder '{folder_id}' does not exist in this mailbox."),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some((item_id, _)) = &update {
        match state.meta.get_item(&mbx.id, item_id).await {
            Ok(i) if i.folder_id == folder.id => {}
            Ok(_) | Err(StoreError::NotFound { .. }) => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "ErrorItemNotFound",
                    format!(
                        "Item '{item_id}' does not exist in folder '{folder_id}'; update replaces an item of the folder given in FolderId."
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }

    let item = {
        let _shared = state.exim.gate.read().await;
        let new = if len as u64 <= state.exim.settings.inline_max {
            // Small: the content goes into the meta store with the item, in
            // one transaction (one group-committed WAL write on SQLite).
            let (blob, data) = store::blob::inline_ref(&parts);
            let mut new = crate::ingest::metadata(content, len, blob);
            new.inline = Some(data);
            new
        } else {
            let blob = state.blobs.put_parts(parts).await?;
            crate::ingest::metadata(content, len, blob)
        };
        match &update {
            None => state.meta.create_item(&mbx.id, &folder.id, new).await?,
            Some((id, ck)) => match state.meta.replace_item(&mbx.id, id, ck, new).await {
                Ok(i) => i,
                Err(StoreError::Conflict(_)) => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "ErrorIrresolvableConflict",
                        format!(
                            "The ChangeKey is stale: item '{id}' changed since it was read. Export it again to get its current changeKey. Nothing was changed."
                        ),
                    ));
                }
                Err(e) => return Err(e.into()),
            },
        }
    };
    drop(decoded);
    if update.is_some() {
        spawn_collector(state);
    }
    let body = serde_json::json!({
        "@odata.context": format!(
            "{}/api/g{}/$metadata#microsoft.graph.importMailboxItemResponse",
            state.exim.settings.import_base_url,
            version.as_str()
        ),
        "itemId": item.id,
        "changeKey": item.change_key,
    });
    let mut resp = Response::new(Body::from(body.to_string()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json;odata.metadata=minimal;charset=utf-8"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8], wrap: bool) {
        let enc = STANDARD.encode(data);
        let text = if wrap {
            enc.as_bytes()
                .chunks(76)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join("\r\n")
        } else {
            enc
        };
        let mut buf = format!("{{\"Data\":\"{text}\"}}").into_bytes();
        let start = 9;
        let end = buf.len() - 2;
        let n = decode_base64_in_place(&mut buf, start, end).unwrap();
        assert_eq!(&buf[start..start + n], data);
    }

    #[test]
    fn in_place_base64_matches_the_reference_decoder() {
        for len in [
            0usize, 1, 2, 3, 4, 5, 3071, 3072, 3073, 4096, 10_000, 100_003,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            roundtrip(&data, false);
            roundtrip(&data, true);
        }
    }

    #[test]
    fn in_place_base64_rejects_garbage() {
        let mut b = b"AAAA*AAA".to_vec();
        assert!(decode_base64_in_place(&mut b, 0, 8).is_err());
        let mut b = b"AA==AA".to_vec();
        assert!(decode_base64_in_place(&mut b, 0, 6).is_err());
    }

    #[test]
    fn import_paths_parse() {
        let (v, k) = parse_import_path("/api/gv1.0/Mailboxes('MBX:a@b')/importItem").unwrap();
        assert_eq!((v, k.as_str()), (Version::V1, "MBX:a@b"));
        let (v, k) = parse_import_path("/api/gbeta/mailboxes('MBX%3Aa%40b')/IMPORTITEM").unwrap();
        assert_eq!((v, k.as_str()), (Version::Beta, "MBX:a@b"));
        assert!(parse_import_path("/api/gv2/Mailboxes('x')/importItem").is_err());
        assert!(parse_import_path("/api/gv1.0/Mailboxes('x')/other").is_err());
    }
}
