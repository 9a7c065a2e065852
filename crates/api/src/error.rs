//! Graph's error envelope and the per-request identity every answer carries.
//!
//! Microsoft Graph answers every failure with the same JSON shape
//! (`{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`)
//! and puts `request-id` / `client-request-id` headers on *every* response,
//! success or not. SDKs surface `code` and `message` to callers (Kiota's
//! `ODataError`) and support engineers ask for the request id, so both must be
//! right everywhere, including for errors that axum produces itself (a 405)
//! and for errors raised deep inside a handler that does not know the ids.
//!
//! The split that makes that work:
//! - [`ApiError`] is what handlers return. Its `IntoResponse` renders the
//!   envelope without ids and also tucks the code/message into the response
//!   extensions.
//! - [`request_context`] is a middleware that assigns the request id, echoes
//!   the client's `client-request-id`, opens a tracing span carrying the id
//!   (so every log line of the request has it) and, on the way out, re-renders
//!   any error body with the ids filled in and sets the two headers.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use time::OffsetDateTime;
use time::macros::format_description;
use tracing::Instrument;
use uuid::Uuid;

/// The `request-id` header name.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
/// The `client-request-id` header name.
pub const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");

/// A failure answered in Graph's error envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Graph / Exchange error code (`ErrorItemNotFound`, `BadRequest`, …).
    pub code: String,
    /// Developer-facing message: what was wrong and what to do next.
    pub message: String,
    /// Extra response headers (`Location` on 410, `WWW-Authenticate` on 401, `Allow` on 405).
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// 400 `BadRequest`: a malformed or unsupported request (query options, ids).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 404 `ErrorItemNotFound`, Exchange's answer for a folder or item that does
    /// not exist in the addressed mailbox (or not under the addressed folder).
    pub fn item_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    /// 404 for a path Graph does not serve, naming the first segment that
    /// could not be resolved (Graph's wording).
    pub fn unknown_segment(segment: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "UnknownRequest",
            format!("Resource not found for the segment '{segment}'."),
        )
    }

    /// 405 for a method the resource does not support; `allow` lists the ones it does.
    pub fn method_not_allowed(method: &str, allow: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "notAllowed",
            format!("The HTTP method '{method}' is not allowed on this resource; use {allow}."),
        )
        .with_header(header::ALLOW, allow)
    }

    /// 500 `generalException` for failures of the server itself (storage).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "generalException",
            message,
        )
    }

    fn body(&self, ids: Option<&RequestIds>) -> serde_json::Value {
        let date = OffsetDateTime::now_utc()
            .format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]"
            ))
            .unwrap_or_default();
        let mut inner = serde_json::Map::new();
        inner.insert("date".into(), json!(date));
        if let Some(ids) = ids {
            inner.insert("request-id".into(), json!(ids.request_id));
            inner.insert("client-request-id".into(), json!(ids.client_request_id));
        }
        json!({"error": {"code": self.code, "message": self.message, "innerError": inner}})
    }
}

/// Storage failures map onto Graph answers: a missing object is Exchange's
/// `ErrorItemNotFound`, a rejected request is 400, a conflict 409, a backend
/// failure 500 (logged, with a message that does not leak internals).
impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::NotFound { .. } => ApiError::item_not_found(),
            store::StoreError::Invalid(m) => ApiError::bad_request(m),
            store::StoreError::Conflict(m) => {
                ApiError::new(StatusCode::CONFLICT, "ErrorIrresolvableConflict", m)
            }
            store::StoreError::Backend(m) => {
                tracing::error!(error = %m, "storage backend failed");
                ApiError::internal("The mailbox store failed to complete the request; retry later.")
            }
        }
    }
}

/// The rendered error, kept in the response extensions so that
/// [`request_context`] can re-render it with the request's ids.
#[derive(Clone, Debug)]
struct RenderedError(ApiError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body(None).to_string();
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                resp.headers_mut().append(name.clone(), v);
            }
        }
        resp.extensions_mut().insert(RenderedError(self));
        resp
    }
}

/// The ids of one request, also available to handlers as a request extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestIds {
    /// Server-generated UUID.
    pub request_id: String,
    /// The client's `client-request-id`, or the request id when it sent none
    /// (Graph does the same).
    pub client_request_id: String,
}

impl RequestIds {
    fn from_headers(headers: &HeaderMap) -> Self {
        let request_id = Uuid::new_v4().to_string();
        let client_request_id = headers
            .get(&CLIENT_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 200)
            .map(str::to_owned)
            .unwrap_or_else(|| request_id.clone());
        RequestIds {
            request_id,
            client_request_id,
        }
    }
}

/// Middleware: request ids, tracing span, error-body completion.
///
/// A bare 405 produced by axum itself (no [`ApiError`] inside) is turned into
/// the Graph envelope too, so no response ever leaves without one.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let ids = RequestIds::from_headers(req.headers());
    req.extensions_mut().insert(ids.clone());
    let span = tracing::info_span!(
        "request",
        request_id = %ids.request_id,
        client_request_id = %ids.client_request_id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;

    if let Some(RenderedError(err)) = resp.extensions_mut().remove::<RenderedError>() {
        *resp.body_mut() = Body::from(err.body(Some(&ids)).to_string());
        resp.headers_mut().remove(header::CONTENT_LENGTH);
    } else if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
        // axum's own 405 (from a method router): give it the envelope. Its
        // `Allow` header is added by axum outside this layer, so it is left
        // alone here.
        let err = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "notAllowed",
            format!("The HTTP method '{method}' is not allowed on this resource."),
        );
        *resp.body_mut() = Body::from(err.body(Some(&ids)).to_string());
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }

    if let Ok(v) = HeaderValue::from_str(&ids.request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    if let Ok(v) = HeaderValue::from_str(&ids.client_request_id) {
        resp.headers_mut().insert(CLIENT_REQUEST_ID, v);
    }
    let status = resp.status().as_u16();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, elapsed_ms, "request failed");
        } else {
            tracing::info!(status, elapsed_ms, "request done");
        }
    });
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_carries_ids_and_date() {
        let e = ApiError::item_not_found();
        let ids = RequestIds {
            request_id: "r1".into(),
            client_request_id: "c1".into(),
        };
        let v = e.body(Some(&ids));
        assert_eq!(v["error"]["code"], "ErrorItemNotFound");
        assert_eq!(v["error"]["innerError"]["request-id"], "r1");
        assert_eq!(v["error"]["innerError"]["client-request-id"], "c1");
        let date = v["error"]["innerError"]["date"].as_str().unwrap();
        assert_eq!(date.len(), 19, "{date}");
    }

    #[test]
    fn client_request_id_defaults_to_request_id() {
        let ids = RequestIds::from_headers(&HeaderMap::new());
        assert_eq!(ids.request_id, ids.client_request_id);
        let mut h = HeaderMap::new();
        h.insert(CLIENT_REQUEST_ID, HeaderValue::from_static("abc"));
        let ids = RequestIds::from_headers(&h);
        assert_eq!(ids.client_request_id, "abc");
        assert_ne!(ids.request_id, "abc");
    }

    #[tokio::test]
    async fn axum_405_gets_the_envelope_and_ids() {
        use axum::routing::post;
        use tower::ServiceExt;
        let app = axum::Router::new()
            .route("/x", post(|| async { "ok" }))
            .layer(axum::middleware::from_fn(request_context));
        let req = axum::http::Request::builder()
            .uri("/x")
            .header("client-request-id", "abc")
            .body(Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[header::ALLOW], "POST");
        assert_eq!(resp.headers()[&CLIENT_REQUEST_ID], "abc");
        let rid = resp.headers()[&REQUEST_ID].to_str().unwrap().to_owned();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["error"]["code"], "notAllowed");
        assert_eq!(v["error"]["innerError"]["request-id"], rid.as_str());
        assert_eq!(v["error"]["innerError"]["client-request-id"], "abc");
    }

    #[test]
    fn store_errors_map_to_graph_codes() {
        let e: ApiError = store::StoreError::NotFound {
            what: "item",
            id: "x".into(),
        }
        .into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.code, "ErrorItemNotFound");
        let e: ApiError = store::StoreError::Backend("disk on fire".into()).into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("disk"));
        let e: ApiError = store::StoreError::Invalid("bad".into()).into();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
