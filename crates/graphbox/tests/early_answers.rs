//! An answer that comes before the request body was read (a 401 for a bad
//! token or an invalid import session) reaches a client that is still
//! sending a large body, instead of a reset connection: the server reads and
//! drops the rest of the body first (up to the largest import it accepts).

mod common;

/// A `graphbox serve --demo` in a data directory of its own.
struct Demo {
    // Stopped before its directory is removed (fields drop in order).
    _server: common::Server,
    base: String,
    _dir: tempfile::TempDir,
}

fn start(extra: &[&str]) -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = vec!["--demo"];
    args.extend_from_slice(extra);
    let (server, base) = common::serve(data.to_str().unwrap(), &args);
    Demo {
        _server: server,
        base,
        _dir: dir,
    }
}

const MBX: &str = "MBX:00000000-0000-4000-8000-000000000001@00000000-0000-4000-8000-000000000002";

async fn post(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    body: Vec<u8>,
) -> Result<(u16, serde_json::Value), String> {
    let mut rb = http
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = bearer {
        rb = rb.bearer_auth(t);
    }
    let resp = rb.send().await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| format!("{e:?}"))?;
    let json = serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "{status}: not JSON ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    })?;
    Ok((status, json))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_before_the_body_reach_a_client_still_sending_it() {
    let server = start(&[]);
    let http = reqwest::Client::new();
    let targets = [
        (format!("{}/v1.0/users", server.base), Some("not-a-token")),
        (
            format!(
                "{}/v1.0/admin/exchange/mailboxes/{MBX}/exportItems",
                server.base
            ),
            Some("not-a-token"),
        ),
        (
            format!(
                "{}/api/gv1.0/Mailboxes('{MBX}')/importItem?authtoken=altered",
                server.base
            ),
            None,
        ),
    ];
    // 8 MB: far more than the socket buffers hold, so the answer is sent
    // while the client is still writing (before, most of these requests
    // failed with a broken pipe or a reset connection).
    let body = vec![b' '; 8 << 20];
    for (url, bearer) in &targets {
        for round in 0..8 {
            let (status, json) = post(&http, url, *bearer, body.clone())
                .await
                .unwrap_or_else(|e| panic!("{url} round {round}: no answer: {e}"));
            assert_eq!(status, 401, "{url}: {json}");
            let code = json["error"]["code"].as_str().unwrap_or_default();
            assert!(
                code == "InvalidAuthenticationToken" || code == "Unauthorized",
                "{url}: the Graph error envelope: {json}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_beyond_the_largest_import_does_not_stall_the_server() {
    // Imports of at most 64 KiB: bodies past ~150 KiB are not drained.
    let server = start(&["--max-import-bytes", "65536"]);
    let http = reqwest::Client::new();
    let url = format!(
        "{}/api/gv1.0/Mailboxes('{MBX}')/importItem?authtoken=altered",
        server.base
    );
    // Whether the client sees the 401 or a closed connection, the server
    // does not swallow 64 MiB first and keeps answering.
    let started = std::time::Instant::now();
    let _ = post(&http, &url, None, vec![b' '; 64 << 20]).await;
    let (status, _) = post(&http, &url, None, b"{}".to_vec()).await.unwrap();
    assert_eq!(status, 401);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// A client that asks `Expect: 100-continue` gets the 401 at once and is
/// never told to send the body it announced (curl does this for bodies over
/// a megabyte).
#[test]
fn a_client_expecting_continue_is_refused_without_sending_its_body() {
    use std::io::{Read, Write};
    let server = start(&[]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /api/gv1.0/Mailboxes('{MBX}')/importItem?authtoken=altered HTTP/1.1\r\n\
         Host: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        8 << 20
    );
    conn.write_all(head.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn
            .read(&mut buf)
            .expect("an answer within 10 s, without the body being sent");
        assert!(
            n > 0,
            "closed without an answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 401"),
        "the refusal, not a go-ahead: {text}"
    );
}
