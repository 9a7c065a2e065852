//! `graphbox fts decode|encode` as a user runs them: real process, real files.

use std::io::Write;
use std::process::{Command, Stdio};

fn graphbox() -> Command {
    Command::new(env!("CARGO_BIN_EXE_graphbox"))
}

fn run_with_stdin(args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = graphbox()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("graphbox runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("graphbox finishes")
}

/// A realistic framed item in Exchange's layout, with an attachment and an
/// embedded message.
fn sample_item() -> Vec<u8> {
    let inner = mapi::builder::MessageBuilder::mail()
        .subject("inner")
        .text_body("embedded body");
    mapi::builder::MessageBuilder::mail()
        .subject("Quarterly report — Ünïcödé")
        .from(mapi::builder::Mailbox::new(
            "Megan Bowen",
            "megan@contoso.test",
        ))
        .to(mapi::builder::Mailbox::new(
            "Alex Wilber",
            "alex@contoso.test",
        ))
        .html_body("<p>Hello</p>")
        .category("Red")
        .attach("report.bin", "application/octet-stream", vec![7u8; 70_000])
        .attach_message(inner)
        .to_framed_bytes()
}

#[test]
fn decode_then_encode_reproduces_the_bytes() {
    let item = sample_item();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("item.fts");
    std::fs::write(&path, &item).unwrap();

    let decoded = graphbox()
        .args(["fts", "decode", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        decoded.status.success(),
        "{}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&decoded.stdout).unwrap();
    let text = serde_json::to_string(&json).unwrap();
    assert!(
        text.contains("Quarterly report — Ünïcödé"),
        "subject readable in the dump"
    );
    assert!(text.contains("PidTagSubject"));

    let encoded = run_with_stdin(&["fts", "encode", "-"], &decoded.stdout);
    assert!(
        encoded.status.success(),
        "{}",
        String::from_utf8_lossy(&encoded.stderr)
    );
    assert_eq!(encoded.stdout, item, "decode | encode is byte-exact");
}

#[test]
fn base64_input_and_output() {
    use base64::Engine;
    let item = sample_item();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&item);
    // Graph's `data` field, wrapped as a text file might be.
    let wrapped: String = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap().to_owned() + "\n")
        .collect();
    let decoded = run_with_stdin(&["fts", "decode", "--base64"], wrapped.as_bytes());
    assert!(
        decoded.status.success(),
        "{}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    let encoded = run_with_stdin(&["fts", "encode", "--base64"], &decoded.stdout);
    assert!(encoded.status.success());
    assert_eq!(String::from_utf8(encoded.stdout).unwrap().trim(), b64);
}

#[test]
fn truncated_input_fails_with_the_offset() {
    let item = sample_item();
    let cut = &item[..item.len() - 10];
    let out = run_with_stdin(&["fts", "decode"], cut);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at byte"), "names the offset: {err}");
    assert!(out.stdout.is_empty(), "nothing printed on failure");
}

#[test]
fn garbage_and_bad_json_fail_clearly() {
    let out = run_with_stdin(&["fts", "decode", "--base64"], b"not base64 !!!");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("base64"));

    let out = run_with_stdin(&["fts", "encode"], b"{\"root\": 5}");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains('$'), "names the JSON path: {err}");

    let out = run_with_stdin(&["fts", "encode"], b"this is not json");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not JSON"));

    let out = graphbox()
        .args(["fts", "decode", "/nonexistent/item.fts"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}
