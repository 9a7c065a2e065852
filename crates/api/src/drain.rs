//! Answers given before the request body was read.
//!
//! Many answers come before the body is looked at: a missing or expired
//! token (401), an import session for another mailbox (403), an unknown
//! route. If the connection were closed with request bytes still unread,
//! the kernel would answer the client's next segments with a reset, and a
//! client still sending a large body (an import of several megabytes) would
//! see a broken connection instead of the answer — it could not tell an
//! expired session (renew it and send again) from a network failure (maybe
//! imported, do not repeat). So the rest of the body is read and dropped
//! before the answer goes out, up to the largest body the server accepts
//! (an import of the configured maximum item size); past that the
//! connection is closed as before.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use http_body::Body as _;
use http_body_util::BodyExt;

/// The request body, shared between the handler (which reads it through
/// [`SharedBody`]) and this layer (which reads what the handler left), and
/// whether anyone has asked for it yet.
#[derive(Clone)]
struct SharedBody(Arc<Mutex<Body>>, Arc<AtomicBool>);

impl http_body::Body for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        self.1.store(true, Ordering::Relaxed);
        let mut body = self.0.lock().expect("request body lock");
        Pin::new(&mut *body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.lock().expect("request body lock").is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.lock().expect("request body lock").size_hint()
    }
}

/// Middleware: runs the request, then reads and drops whatever part of its
/// body (at most `limit` bytes in all) the handler did not read.
///
/// A client that sent `Expect: 100-continue` waits for a go-ahead before it
/// sends the body; when the handler never asked for the body, that client
/// sent nothing, so nothing is read (reading would send the go-ahead and
/// make it upload a body only to be refused).
pub async fn drain_unread_body(State(limit): State<u64>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let expects_continue = parts
        .headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let shared = SharedBody(Arc::new(Mutex::new(body)), Arc::default());
    let resp = next
        .run(Request::from_parts(parts, Body::new(shared.clone())))
        .await;
    if expects_continue && !shared.1.load(Ordering::Relaxed) {
        return resp;
    }
    let announced = shared.size_hint().exact();
    if announced.is_none_or(|n| n <= limit) {
        let mut read = 0u64;
        let mut rest = shared;
        while let Some(frame) = rest.frame().await {
            match frame {
                Ok(f) => {
                    read += f.data_ref().map_or(0, |d| d.len() as u64);
                    if read > limit {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
    resp
}
