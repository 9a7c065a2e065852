//! Refusals given before the request body was read.
//!
//! Some answers are decided from the request line and headers alone: a
//! missing or expired token (401), an import session for another mailbox
//! (403), an unknown resource. If the connection were closed with request
//! bytes still unread, the kernel would answer the client's next segments
//! with a reset, and a client still sending a large body (an import of
//! several megabytes) would see a broken connection instead of the answer:
//! it could not tell an expired session (renew it, send again) from a
//! network failure (maybe imported, do not repeat). So before such a refusal
//! goes out the rest of the body is read and dropped, up to the largest body
//! the server accepts (an import of the configured maximum item size); past
//! that the connection is closed as before.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use http_body::Body as _;
use http_body_util::BodyExt;

/// Reads and drops `body`, which nothing has read yet, unless it is larger
/// than `limit` bytes.
///
/// A client that sent `Expect: 100-continue` waits for a go-ahead before it
/// sends the body, and reading would send one: such a client has sent
/// nothing and gets the refusal at once.
pub(crate) async fn drain_unread(body: Body, headers: &HeaderMap, limit: u64) {
    let expects_continue = headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects_continue || body.is_end_stream() {
        return;
    }
    if body.size_hint().exact().is_some_and(|n| n > limit) {
        return;
    }
    let mut body = body;
    let mut read = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, |d| d.len() as u64);
        if read > limit {
            break;
        }
    }
}
