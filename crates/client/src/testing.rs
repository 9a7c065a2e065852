//! A fault-injecting reverse proxy for tests (feature `testing`).
//!
//! Put it between a client and a real server (graphbox, started in-process
//! with its public URL set to the proxy's, so `nextLink`s and import URLs come
//! back through the proxy) and it answers some requests itself:
//! `429 Too Many Requests` with a `Retry-After`, `503 Service Unavailable`,
//! `502 Bad Gateway`, a connection closed without an answer, and exportItems
//! answers with an entry removed (Exchange sometimes leaves items out), with
//! `/` escaped as `\/`, or with an entry's data that is not base64.
//! Faults are deterministic: the n-th eligible request gets fault X when n is
//! a multiple of X's period. Eligible: Graph requests (`/v1.0/…`, `/beta/…`)
//! and import URL posts (`/api/g…`); the token endpoint only with
//! [`FaultPlan::fault_token_endpoint`].
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use client::testing::{FaultPlan, FaultProxy};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let proxy = FaultProxy::serve(listener, "http://127.0.0.1:8080", FaultPlan {
//!     throttle_every: 7, retry_after: Some("1".into()), drop_export_every: 2,
//!     ..FaultPlan::default()
//! });
//! println!("point the client at {}", proxy.url());
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// Which faults to inject. A period of 0 disables that fault.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    /// Every n-th eligible request: 429 Too Many Requests.
    pub throttle_every: u64,
    /// The `Retry-After` value sent with 429 (and 503); `None`: no header
    /// (the client must back off on its own).
    pub retry_after: Option<String>,
    /// Every n-th eligible request: 503 Service Unavailable.
    pub unavailable_every: u64,
    /// Every n-th eligible request: 502 Bad Gateway.
    pub bad_gateway_every: u64,
    /// Every n-th eligible request: the connection is closed without an
    /// answer (before the request reaches the server).
    pub reset_every: u64,
    /// Resets also hit POSTs other than exportItems (imports, folder
    /// creation). Off by default: a client must not blindly repeat a
    /// non-idempotent request after an ambiguous failure, so such a reset
    /// surfaces as an error.
    pub reset_posts: bool,
    /// Resets happen after the server has carried the request out (the
    /// answer is lost), instead of before it reaches the server.
    pub reset_after_forward: bool,
    /// Every n-th exportItems answer loses its first entry.
    pub drop_export_every: u64,
    /// Every n-th exportItems answer has every `/` written as `\/` (the
    /// same JSON, as some serializers write it).
    pub escape_slashes_every: u64,
    /// Every n-th exportItems answer has its first entry's `data` replaced
    /// by text that is not base64.
    pub corrupt_data_every: u64,
    /// Every n-th eligible request: `308 Permanent Redirect` to the same
    /// URL (as Graph answers for content in an auxiliary archive); the
    /// client must repeat the request there, body included.
    pub redirect_every: u64,
    /// Every n-th exportItems answer has its first entry replaced by
    /// `ErrorArchiveFolderMovedPermanently` whose message is the URL to ask
    /// (the same exportItems URL, through the proxy).
    pub archive_moved_every: u64,
    /// Every n-th import URL post: 401 `InvalidAuthenticationToken`, as an
    /// expired import session is answered.
    pub refuse_import_every: u64,
    /// Also inject faults into the token endpoint.
    pub fault_token_endpoint: bool,
    /// Hold every eligible request this long before forwarding it (makes
    /// concurrency observable).
    pub delay_ms: u64,
}

/// What the proxy saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests received (all paths).
    pub requests: u64,
    /// Requests to `…/oauth2/v2.0/token`.
    pub token_requests: u64,
    pub throttled: u64,
    pub unavailable: u64,
    pub bad_gateway: u64,
    pub resets: u64,
    /// exportItems entries removed from answers.
    pub dropped_items: u64,
    /// 308 answers sent.
    pub redirects: u64,
    /// exportItems entries turned into ErrorArchiveFolderMovedPermanently.
    pub archive_moved: u64,
    /// exportItems answers with `/` escaped.
    pub escaped_answers: u64,
    /// exportItems entries whose data was replaced by non-base64 text.
    pub corrupted_items: u64,
    /// Number of ids in each exportItems request forwarded to the server.
    pub export_batches: Vec<usize>,
    /// Import URL posts forwarded.
    pub imports: u64,
    /// Import URL posts answered 401 by the proxy.
    pub refused_imports: u64,
    /// createImportSession requests forwarded.
    pub import_sessions: u64,
    /// Requests that carried an `Authorization` header to the import URL.
    pub imports_with_authorization: u64,
    /// Most eligible requests in flight at once.
    pub max_in_flight: u64,
}

struct Shared {
    upstream: String,
    /// The proxy's own base URL.
    public: String,
    plan: Mutex<FaultPlan>,
    stats: Mutex<FaultStats>,
    eligible: AtomicU64,
    exports: AtomicU64,
    imports: AtomicU64,
    in_flight: AtomicU64,
    http: reqwest::Client,
}

/// The running proxy; stops when dropped.
pub struct FaultProxy {
    url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Fault {
    Status(StatusCode),
    Reset,
    Redirect,
}

impl FaultProxy {
    /// Serves on `listener`, forwarding to `upstream` (`http://host:port`).
    pub fn serve(listener: tokio::net::TcpListener, upstream: &str, plan: FaultPlan) -> FaultProxy {
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            public: format!("http://{addr}"),
            plan: Mutex::new(plan),
            stats: Mutex::new(FaultStats::default()),
            eligible: AtomicU64::new(0),
            exports: AtomicU64::new(0),
            imports: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .expect("a plain reqwest client builds"),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors and the like: wait instead of
                    // spinning on the failing accept.
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // As graphbox serve does: no Nagle delay on the answers.
                let _ = stream.set_nodelay(true);
                let s = s.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(s.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            url: format!("http://{addr}"),
            shared,
            task,
        }
    }

    /// The proxy's base URL (`http://127.0.0.1:port`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Replaces the plan (counters keep running).
    pub fn set_plan(&self, plan: FaultPlan) {
        *self.shared.plan.lock().expect("plan lock") = plan;
    }

    /// A copy of the counters.
    pub fn stats(&self) -> FaultStats {
        self.shared.stats.lock().expect("stats lock").clone()
    }

    /// Zeroes the counters (fault periods restart too).
    pub fn reset_stats(&self) {
        *self.shared.stats.lock().expect("stats lock") = FaultStats::default();
        self.shared.eligible.store(0, Ordering::Relaxed);
        self.shared.exports.store(0, Ordering::Relaxed);
        self.shared.imports.store(0, Ordering::Relaxed);
    }
}

type Boxed = Box<dyn std::error::Error + Send + Sync>;

fn answer(
    status: StatusCode,
    retry_after: Option<&str>,
    code: &str,
    message: &str,
) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("request-id", uuid::Uuid::new_v4().to_string());
    if let Some(ra) = retry_after {
        r = r.header("retry-after", ra);
    }
    r.body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

/// Decrements the in-flight count when a request is done (or dropped).
struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle(s: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Boxed> {
    let lower = req.uri().path().to_ascii_lowercase();
    let eligible =
        lower.starts_with("/v1.0/") || lower.starts_with("/beta/") || lower.starts_with("/api/g");
    let _guard = if eligible {
        let now = s.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let guard = InFlight(s.clone());
        {
            let mut st = s.stats.lock().expect("stats lock");
            st.max_in_flight = st.max_in_flight.max(now);
        }
        let delay = s.plan.lock().expect("plan lock").delay_ms;
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        Some(guard)
    } else {
        None
    };
    handle_inner(s, req).await
}

async fn handle_inner(
    s: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Boxed> {
    let path = req.uri().path().to_owned();
    let lower = path.to_ascii_lowercase();
    let is_token = lower.ends_with("/oauth2/v2.0/token");
    let is_import = lower.starts_with("/api/g");
    let is_export =
        lower.ends_with("/exportitems") || lower.ends_with("/microsoft.graph.exportitems");
    let is_graph = lower.starts_with("/v1.0/") || lower.starts_with("/beta/");
    let plan = s.plan.lock().expect("plan lock").clone();
    {
        let mut st = s.stats.lock().expect("stats lock");
        st.requests += 1;
        if is_token {
            st.token_requests += 1;
        }
    }
    let eligible = is_graph || is_import || (is_token && plan.fault_token_endpoint);
    if eligible {
        let n = s.eligible.fetch_add(1, Ordering::Relaxed) + 1;
        let hit = |every: u64| every > 0 && n.is_multiple_of(every);
        let may_reset = req.method() == hyper::Method::GET || is_export || plan.reset_posts;
        let fault = if hit(plan.throttle_every) {
            Some(Fault::Status(StatusCode::TOO_MANY_REQUESTS))
        } else if hit(plan.unavailable_every) {
            Some(Fault::Status(StatusCode::SERVICE_UNAVAILABLE))
        } else if hit(plan.bad_gateway_every) {
            Some(Fault::Status(StatusCode::BAD_GATEWAY))
        } else if hit(plan.reset_every) && may_reset {
            Some(Fault::Reset)
        } else if hit(plan.redirect_every) {
            Some(Fault::Redirect)
        } else {
            None
        };
        match fault {
            Some(Fault::Redirect) => {
                let pq = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "/".into());
                drain(req).await;
                s.stats.lock().expect("stats lock").redirects += 1;
                return Ok(Response::builder()
                    .status(StatusCode::PERMANENT_REDIRECT)
                    .header("location", format!("{}{pq}", s.public))
                    .header("content-length", "0")
                    .body(Full::new(Bytes::new()))?);
            }
            Some(Fault::Reset) => {
                s.stats.lock().expect("stats lock").resets += 1;
                if plan.reset_after_forward {
                    let is_import = is_import && req.method() == hyper::Method::POST;
                    let _ = forward(&s, req, is_export, is_import, &plan).await;
                }
                // An error from the service makes hyper close the connection
                // without writing an answer.
                return Err("fault proxy: connection reset".into());
            }
            Some(Fault::Status(code)) => {
                drain(req).await;
                let mut st = s.stats.lock().expect("stats lock");
                let (c, m, ra) = match code {
                    StatusCode::TOO_MANY_REQUESTS => {
                        st.throttled += 1;
                        (
                            "ApplicationThrottled",
                            "Application is over its MailboxConcurrency limit.",
                            plan.retry_after.as_deref(),
                        )
                    }
                    StatusCode::SERVICE_UNAVAILABLE => {
                        st.unavailable += 1;
                        (
                            "serviceNotAvailable",
                            "The service is temporarily unavailable.",
                            plan.retry_after.as_deref(),
                        )
                    }
                    _ => {
                        st.bad_gateway += 1;
                        ("BadGateway", "The upstream server did not answer.", None)
                    }
                };
                return Ok(answer(code, ra, c, m));
            }
            None => {}
        }
    }
    if is_import && req.method() == hyper::Method::POST {
        let k = s.imports.fetch_add(1, Ordering::Relaxed) + 1;
        if plan.refuse_import_every > 0 && k.is_multiple_of(plan.refuse_import_every) {
            drain(req).await;
            s.stats.lock().expect("stats lock").refused_imports += 1;
            return Ok(answer(
                StatusCode::UNAUTHORIZED,
                None,
                "InvalidAuthenticationToken",
                "The import session expired: create a new import session.",
            ));
        }
    }
    if lower.ends_with("/createimportsession") {
        s.stats.lock().expect("stats lock").import_sessions += 1;
    }
    forward(&s, req, is_export, is_import, &plan).await
}

/// Reads the request body before the proxy answers by itself, the way a
/// front end does: a connection closed with unread request bytes makes the
/// kernel send a reset, which can destroy the answer on its way to the
/// client (a planned 429 would arrive as an unplanned, ambiguous connection
/// failure).
async fn drain(req: Request<Incoming>) {
    let _ = req.into_body().collect().await;
}

/// An exportItems answer with its `value` entries changed by `edit`, or
/// `None` when it is not such an answer or `edit` changed nothing (false).
fn edit_entries(
    bytes: &Bytes,
    edit: impl FnOnce(&mut Vec<serde_json::Value>) -> bool,
) -> Option<Bytes> {
    let mut v = serde_json::from_slice::<serde_json::Value>(bytes).ok()?;
    let entries = v.get_mut("value")?.as_array_mut()?;
    edit(entries).then(|| Bytes::from(v.to_string()))
}

async fn forward(
    s: &Shared,
    req: Request<Incoming>,
    is_export: bool,
    is_import: bool,
    plan: &FaultPlan,
) -> Result<Response<Full<Bytes>>, Boxed> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    if is_export && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
        let n = v
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("itemIds")))
            .and_then(|(_, v)| v.as_array())
            .map_or(0, Vec::len);
        s.stats.lock().expect("stats lock").export_batches.push(n);
    }
    if is_import {
        let mut st = s.stats.lock().expect("stats lock");
        st.imports += 1;
        if parts.headers.contains_key(hyper::header::AUTHORIZATION) {
            st.imports_with_authorization += 1;
        }
    }
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())?;
    let mut rb = s.http.request(method, format!("{}{pq}", s.upstream));
    for (k, v) in &parts.headers {
        if matches!(
            k.as_str(),
            "host" | "connection" | "content-length" | "transfer-encoding"
        ) {
            continue;
        }
        rb = rb.header(k.as_str(), v.as_bytes());
    }
    let resp = match rb.body(body).send().await {
        Ok(r) => r,
        Err(e) => {
            return Ok(answer(
                StatusCode::BAD_GATEWAY,
                None,
                "BadGateway",
                &format!("fault proxy: upstream failed: {e}"),
            ));
        }
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut bytes = resp.bytes().await?;
    if is_export && status == 200 {
        let k = s.exports.fetch_add(1, Ordering::Relaxed) + 1;
        let due = |every: u64| every > 0 && k.is_multiple_of(every);
        if due(plan.drop_export_every)
            && let Some(edited) = edit_entries(&bytes, |entries| {
                if entries.is_empty() {
                    return false;
                }
                entries.remove(0);
                true
            })
        {
            s.stats.lock().expect("stats lock").dropped_items += 1;
            bytes = edited;
        }
        if due(plan.archive_moved_every)
            && let Some(edited) = edit_entries(&bytes, |entries| {
                let Some(first) = entries.first_mut() else {
                    return false;
                };
                let Some(id) = first.get("itemId").cloned() else {
                    return false;
                };
                let path = pq.split('?').next().unwrap_or_default();
                *first = serde_json::json!({
                    "itemId": id,
                    "Error": {
                        "message": format!("{}{path}", s.public),
                        "code": "ErrorArchiveFolderMovedPermanently",
                    }
                });
                true
            })
        {
            s.stats.lock().expect("stats lock").archive_moved += 1;
            bytes = edited;
        }
        if due(plan.corrupt_data_every)
            && let Some(edited) = edit_entries(&bytes, |entries| {
                let Some(data) = entries.first_mut().and_then(|e| e.get_mut("data")) else {
                    return false;
                };
                *data = serde_json::Value::String("@@ not base64 @@".into());
                true
            })
        {
            s.stats.lock().expect("stats lock").corrupted_items += 1;
            bytes = edited;
        }
        if due(plan.escape_slashes_every) {
            let text = String::from_utf8_lossy(&bytes).replace('/', "\\/");
            s.stats.lock().expect("stats lock").escaped_answers += 1;
            bytes = Bytes::from(text);
        }
    }
    let mut out = Response::builder().status(status);
    for (k, v) in &headers {
        if matches!(
            k.as_str(),
            "connection" | "content-length" | "transfer-encoding"
        ) {
            continue;
        }
        out = out.header(k.as_str(), v.as_bytes());
    }
    Ok(out.body(Full::new(bytes))?)
}
