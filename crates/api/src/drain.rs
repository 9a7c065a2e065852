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
/// than `limit` bytes (or takes longer than 30 s to arrive).
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
    let rest = async {
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read > limit {
                break;
            }
        }
    };
    // A client that trickles its body does not hold the refusal back for
    // longer than this.
    let _ = tokio::time::timeout(DRAIN_TIME, rest).await;
}

/// The longest a refusal waits for the rest of the body.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use axum::body::Bytes;
    use futures::StreamExt;

    use super::*;

    /// A body of `chunks` chunks of 1 KiB, then (if `stall`) no end; counts
    /// the chunks handed out.
    fn body(chunks: u64, stall: bool, taken: Arc<AtomicU64>) -> Body {
        let data = futures::stream::iter(0..chunks).map(move |_| {
            taken.fetch_add(1, Ordering::Relaxed);
            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 1024]))
        });
        if stall {
            Body::from_stream(data.chain(futures::stream::pending()))
        } else {
            Body::from_stream(data)
        }
    }

    #[tokio::test]
    async fn reads_the_rest_up_to_the_limit() {
        let taken = Arc::new(AtomicU64::new(0));
        drain_unread(body(10, false, taken.clone()), &HeaderMap::new(), 1 << 20).await;
        assert_eq!(taken.load(Ordering::Relaxed), 10);
        // Past the limit it stops reading.
        let taken = Arc::new(AtomicU64::new(0));
        drain_unread(body(1000, false, taken.clone()), &HeaderMap::new(), 4096).await;
        assert_eq!(taken.load(Ordering::Relaxed), 5);
    }

    #[tokio::test]
    async fn a_client_expecting_continue_is_not_read() {
        let taken = Arc::new(AtomicU64::new(0));
        let mut headers = HeaderMap::new();
        headers.insert(header::EXPECT, "100-Continue".parse().unwrap());
        drain_unread(body(10, false, taken.clone()), &headers, 1 << 20).await;
        assert_eq!(taken.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_given_up_on() {
        let taken = Arc::new(AtomicU64::new(0));
        let started = tokio::time::Instant::now();
        drain_unread(body(3, true, taken.clone()), &HeaderMap::new(), 1 << 20).await;
        assert_eq!(taken.load(Ordering::Relaxed), 3);
        assert_eq!(started.elapsed(), DRAIN_TIME);
    }
}
