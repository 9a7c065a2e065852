//! The request layer: bearer tokens, the per-mailbox concurrency limit,
//! retries (429/503 with `Retry-After`, transient failures with backoff),
//! redirects (re-sending bodies), Graph's error envelope, counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::auth::TokenCache;
use crate::error::{Error, Result};
use crate::http::Http;

/// Counters of what the client did (for progress and summaries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP requests sent (every attempt counts).
    pub requests: u64,
    /// Attempts repeated after a throttle, a transient failure or a redirect-free 401.
    pub retries: u64,
    /// 429 and 503 answers received.
    pub throttled: u64,
    /// Transport failures (connect, reset, timeout, truncated body).
    pub network_errors: u64,
    /// Redirects followed (308/307, ErrorArchiveFolderMovedPermanently).
    pub redirects: u64,
    /// Body bytes received / sent.
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Requests to the token endpoint.
    pub token_requests: u64,
}

/// Why an attempt is repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryReason {
    /// 429 or 503.
    Throttled { status: u16 },
    /// 502 / 504 / 500 on an idempotent request.
    ServerError { status: u16 },
    /// Connect, reset, timeout or truncated body.
    Network { message: String },
    /// Graph refused the token (401); a new one is fetched.
    TokenRefused,
}

/// Passed to the observer before every retry.
#[derive(Debug, Clone)]
pub struct RetryEvent {
    pub method: String,
    /// URL without the query string.
    pub url: String,
    /// The attempt that failed (1-based).
    pub attempt: u32,
    pub reason: RetryReason,
    /// How long the client waits before the next attempt.
    pub wait: Duration,
}

/// Observer hook, called on every retry (e.g. to print "throttled, waiting 3 s").
pub type Observer = Arc<dyn Fn(&RetryEvent) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    network_errors: AtomicU64,
    pub(crate) redirects: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self, token_requests: u64) -> ClientStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClientStats {
            requests: g(&self.requests),
            retries: g(&self.retries),
            throttled: g(&self.throttled),
            network_errors: g(&self.network_errors),
            redirects: g(&self.redirects),
            bytes_received: g(&self.bytes_received),
            bytes_sent: g(&self.bytes_sent),
            token_requests,
        }
    }
}

/// Tuning taken from the profile.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_backoff: Duration,
    pub per_mailbox: usize,
}

pub(crate) struct Transport {
    pub http: Arc<Http>,
    pub tokens: Arc<TokenCache>,
    pub policy: Policy,
    pub counters: Counters,
    pub observer: Mutex<Option<Observer>>,
    /// Origin (scheme://host:port) the bearer token may be sent to.
    pub graph_origin: String,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// One logical request (may take several attempts).
pub(crate) struct Req {
    pub method: Method,
    pub url: String,
    pub body: Option<Bytes>,
    /// Send the bearer token (false for the import URL).
    pub bearer: bool,
    /// Count against this mailbox's concurrency limit.
    pub mailbox: Option<String>,
    /// Safe to repeat after an ambiguous failure (reset mid-request, 502/504).
    pub idempotent: bool,
    pub headers: Vec<(&'static str, String)>,
}

impl Req {
    pub fn get(url: String, mailbox: Option<&str>) -> Req {
        Req {
            method: Method::GET,
            url,
            body: None,
            bearer: true,
            mailbox: mailbox.map(str::to_owned),
            idempotent: true,
            headers: vec![],
        }
    }
    pub fn json(
        method: Method,
        url: String,
        mailbox: Option<&str>,
        body: &serde_json::Value,
        idempotent: bool,
    ) -> Req {
        Req {
            method,
            url,
            body: Some(Bytes::from(body.to_string())),
            bearer: true,
            mailbox: mailbox.map(str::to_owned),
            idempotent,
            headers: vec![],
        }
    }
}

/// A successful answer.
pub(crate) struct Answer {
    pub body: Bytes,
    /// The URL that finally answered (after redirects).
    pub url: String,
}

impl Answer {
    /// The body as JSON; `T` may borrow strings from it.
    pub fn json<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Decode {
            what: strip_query(&self.url),
            message: format!("{e} (body starts {:?})", snippet(&self.body)),
        })
    }
}

fn snippet(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned()
}

/// The URL without query string (import URLs carry a token there).
pub fn strip_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or(url).to_owned()
}

/// Every source of an error, joined (reqwest's Display hides the cause).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = strip_urls(&e.to_string());
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn strip_urls(s: &str) -> String {
    // reqwest prints "error sending request for url (http://…?authtoken=…)".
    match (s.find('?'), s.rfind(')')) {
        (Some(q), Some(p)) if q < p => format!("{}{}", &s[..q], &s[p..]),
        _ => s.to_owned(),
    }
}

/// `Retry-After` in seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[derive(Deserialize)]
struct Envelope {
    error: Option<GraphError>,
    #[serde(rename = "Message", alias = "message")]
    message: Option<String>,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default, rename = "innerError", alias = "innererror")]
    inner: Option<Inner>,
}

#[derive(Deserialize)]
struct Inner {
    #[serde(rename = "request-id")]
    request_id: Option<String>,
}

/// Turns a non-success answer into the typed error.
pub(crate) fn error_from(
    method: &Method,
    url: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Error {
    let header_id = headers
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (code, message, inner_id) = match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { error: Some(e), .. }) => {
            (e.code, e.message, e.inner.and_then(|i| i.request_id))
        }
        Ok(Envelope {
            message: Some(m), ..
        }) => (
            status
                .canonical_reason()
                .unwrap_or("error")
                .replace(' ', ""),
            m,
            None,
        ),
        _ => (
            status
                .canonical_reason()
                .unwrap_or("error")
                .replace(' ', ""),
            if body.is_empty() {
                "(empty body)".to_owned()
            } else {
                snippet(body)
            },
            None,
        ),
    };
    let request_id = header_id.or(inner_id);
    let url = strip_query(url);
    match status.as_u16() {
        404 => Error::NotFound {
            what: url,
            code,
            message,
            request_id,
        },
        410 => Error::SyncStateNotFound {
            location: headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        },
        401 => Error::Auth {
            error: code,
            description: message,
            aadsts: None,
            status: Some(401),
        },
        _ if code.eq_ignore_ascii_case("syncStateNotFound")
            || code.eq_ignore_ascii_case("resyncRequired") =>
        {
            Error::SyncStateNotFound { location: None }
        }
        s => Error::Http {
            method: method.to_string(),
            url,
            status: s,
            code,
            message,
            request_id,
        },
    }
}

fn origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(u.origin().ascii_serialization())
}

impl Transport {
    pub(crate) fn new(
        http: Arc<Http>,
        tokens: Arc<TokenCache>,
        policy: Policy,
        graph_origin: String,
    ) -> Transport {
        Transport {
            http,
            tokens,
            policy,
            counters: Counters::default(),
            observer: Mutex::new(None),
            graph_origin,
            limits: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, mailbox: &str) -> Arc<Semaphore> {
        let mut m = self.limits.lock().expect("limits lock");
        m.entry(mailbox.to_ascii_lowercase())
            .or_insert_with(|| Arc::new(Semaphore::new(self.policy.per_mailbox)))
            .clone()
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .policy
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.policy.max_backoff);
        // Jitter: between half and all of the step.
        let half = exp / 2;
        half + half.mul_f64(rand::thread_rng().r#gen::<f64>())
    }

    fn notify(&self, ev: RetryEvent) {
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(url = %ev.url, attempt = ev.attempt, reason = ?ev.reason, wait = ?ev.wait, "retrying");
        let obs = self.observer.lock().expect("observer lock").clone();
        if let Some(o) = obs {
            o(&ev);
        }
    }

    /// Sends `req`, retrying and following redirects; `Ok` only for 2xx.
    pub(crate) async fn send(&self, req: Req) -> Result<Answer> {
        let sem = req.mailbox.as_deref().map(|m| self.limit(m));
        let mut url = req.url.clone();
        let mut attempt: u32 = 0;
        let mut redirects = 0u32;
        let mut token_retried = false;
        loop {
            attempt += 1;
            let permit = match &sem {
                Some(s) => Some(
                    s.clone()
                        .acquire_owned()
                        .await
                        .expect("semaphore never closed"),
                ),
                None => None,
            };
            let bearer = req.bearer && origin(&url).is_some_and(|o| o == self.graph_origin);
            let token = if bearer {
                Some(self.tokens.token().await?)
            } else {
                None
            };
            let mut rb = self.http.request(req.method.clone(), &url).await?;
            if let Some(t) = &token {
                rb = rb.bearer_auth(t);
            }
            for (k, v) in &req.headers {
                rb = rb.header(*k, v);
            }
            if let Some(b) = &req.body {
                rb = rb
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )
                    .body(b.clone());
                self.counters
                    .bytes_sent
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
            }
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let result = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(body) => Ok((status, headers, body)),
                        Err(e) => Err((e, true)),
                    }
                }
                Err(e) => {
                    let sent = !e.is_connect();
                    Err((e, sent))
                }
            };
            drop(permit);
            let (status, headers, body) = match result {
                Ok(x) => x,
                Err((e, maybe_processed)) => {
                    self.counters.network_errors.fetch_add(1, Ordering::Relaxed);
                    let message = error_chain(&e);
                    if attempt < self.policy.max_attempts && (req.idempotent || !maybe_processed) {
                        let wait = self.backoff(attempt);
                        self.notify(RetryEvent {
                            method: req.method.to_string(),
                            url: strip_query(&url),
                            attempt,
                            reason: RetryReason::Network { message },
                            wait,
                        });
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(Error::Network {
                        method: req.method.to_string(),
                        url: strip_query(&url),
                        attempts: attempt,
                        message,
                    });
                }
            };
            self.counters
                .bytes_received
                .fetch_add(body.len() as u64, Ordering::Relaxed);
            let code = status.as_u16();
            if status.is_success() {
                return Ok(Answer { body, url });
            }
            if matches!(code, 301 | 302 | 303 | 307 | 308) {
                let Some(loc) = headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                else {
                    return Err(error_from(&req.method, &url, status, &headers, &body));
                };
                redirects += 1;
                if redirects > 10 {
                    return Err(Error::Http {
                        method: req.method.to_string(),
                        url: strip_query(&url),
                        status: code,
                        code: "TooManyRedirects".into(),
                        message: "more than 10 redirects".into(),
                        request_id: None,
                    });
                }
                let next = url::Url::parse(&url)
                    .and_then(|base| base.join(loc))
                    .map_err(|e| Error::Decode {
                        what: strip_query(&url),
                        message: format!("redirect Location {loc:?} is not a URL: {e}"),
                    })?;
                self.counters.redirects.fetch_add(1, Ordering::Relaxed);
                url = next.to_string();
                // A redirect is not a failed attempt.
                attempt -= 1;
                continue;
            }
            if code == 429 || code == 503 {
                self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                let ra = retry_after(&headers);
                if attempt >= self.policy.max_attempts {
                    return Err(Error::Throttled {
                        method: req.method.to_string(),
                        url: strip_query(&url),
                        status: code,
                        attempts: attempt,
                        retry_after: ra,
                    });
                }
                let wait = ra
                    .map(|d| d.min(self.policy.max_backoff))
                    .unwrap_or_else(|| self.backoff(attempt));
                self.notify(RetryEvent {
                    method: req.method.to_string(),
                    url: strip_query(&url),
                    attempt,
                    reason: RetryReason::Throttled { status: code },
                    wait,
                });
                tokio::time::sleep(wait).await;
                continue;
            }
            if matches!(code, 500 | 502 | 504)
                && req.idempotent
                && attempt < self.policy.max_attempts
            {
                let wait = self.backoff(attempt);
                self.notify(RetryEvent {
                    method: req.method.to_string(),
                    url: strip_query(&url),
                    attempt,
                    reason: RetryReason::ServerError { status: code },
                    wait,
                });
                tokio::time::sleep(wait).await;
                continue;
            }
            if code == 401
                && !token_retried
                && let Some(t) = &token
            {
                // The token may have been revoked or expired early: one
                // retry with a fresh token.
                token_retried = true;
                self.tokens.invalidate(t).await;
                self.notify(RetryEvent {
                    method: req.method.to_string(),
                    url: strip_query(&url),
                    attempt,
                    reason: RetryReason::TokenRefused,
                    wait: Duration::ZERO,
                });
                continue;
            }
            return Err(error_from(&req.method, &url, status, &headers, &body));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", " 0 ")])),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "1.5")])),
            Some(Duration::from_millis(1500))
        );
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        let d = retry_after(&headers(&[(
            "retry-after",
            &httpdate::fmt_http_date(later),
        )]))
        .unwrap();
        assert!(
            d > Duration::from_secs(27) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        // A date in the past: no wait.
        let d = retry_after(&headers(&[(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        )]));
        assert_eq!(d, Some(Duration::ZERO));
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-3")])), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn graph_error_envelope_is_typed() {
        let body = br#"{"error":{"code":"ErrorItemNotFound","message":"The specified object was not found in the store.","innerError":{"request-id":"abc","date":"x"}}}"#;
        let e = error_from(
            &Method::GET,
            "https://g/v1.0/x?$top=1",
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            body,
        );
        match e {
            Error::NotFound {
                what,
                code,
                request_id,
                ..
            } => {
                assert_eq!(what, "https://g/v1.0/x");
                assert_eq!(code, "ErrorItemNotFound");
                assert_eq!(request_id.as_deref(), Some("abc"));
            }
            e => panic!("{e:?}"),
        }
        let h = headers(&[("request-id", "hdr"), ("location", "https://g/delta")]);
        let e = error_from(&Method::GET, "u", StatusCode::GONE, &h, b"{}");
        assert!(
            matches!(e, Error::SyncStateNotFound { location: Some(l) } if l == "https://g/delta")
        );
        let e = error_from(
            &Method::POST,
            "https://o/api/gbeta/importItem?authtoken=secret",
            StatusCode::CONFLICT,
            &h,
            br#"{"Message":"Invalid import session."}"#,
        );
        match &e {
            Error::Http {
                status,
                code,
                message,
                request_id,
                url,
                ..
            } => {
                assert_eq!(*status, 409);
                assert_eq!(code, "Conflict");
                assert_eq!(message, "Invalid import session.");
                assert_eq!(request_id.as_deref(), Some("hdr"));
                assert!(!url.contains("secret"));
            }
            e => panic!("{e:?}"),
        }
        assert!(!e.to_string().contains("secret"));
        let e = error_from(
            &Method::GET,
            "u",
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"error":{"code":"resyncRequired","message":"m"}}"#,
        );
        assert!(matches!(e, Error::SyncStateNotFound { location: None }));
        let e = error_from(
            &Method::GET,
            "u",
            StatusCode::INTERNAL_SERVER_ERROR,
            &HeaderMap::new(),
            b"<html>oops",
        );
        assert!(
            matches!(&e, Error::Http { code, message, .. } if code == "InternalServerError" && message.contains("oops"))
        );
        let e = error_from(&Method::GET, "u", StatusCode::UNAUTHORIZED, &HeaderMap::new(), br#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token is empty."}}"#);
        assert!(
            matches!(&e, Error::Auth { error, status: Some(401), .. } if error == "InvalidAuthenticationToken")
        );
    }

    #[test]
    fn urls_are_stripped_of_tokens() {
        assert_eq!(strip_query("https://h/p?authtoken=x"), "https://h/p");
        assert_eq!(
            strip_urls("error sending request for url (https://h/p?authtoken=x)"),
            "error sending request for url (https://h/p)"
        );
    }
}
