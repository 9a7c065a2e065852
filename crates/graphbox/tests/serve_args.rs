//! `graphbox serve` refuses out-of-range settings before it touches the data
//! directory: a clear message naming the setting and its range, exit status 2.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_graphbox");

fn serve(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir")
        .arg(dir)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("GRAPHBOX_CONFIG")
        .env_remove("GRAPHBOX_INLINE_MAX_BYTES");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("graphbox runs")
}

#[track_caller]
fn assert_refused(out: &std::process::Output, dir: &std::path::Path, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("--inline-max-bytes") && stderr.contains(needle),
        "the message names the setting and what is wrong: {stderr}"
    );
    assert!(
        !dir.exists(),
        "nothing was created in the data directory before the refusal"
    );
}

#[test]
fn inline_max_bytes_out_of_range_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");

    let out = serve(&dir, &["--inline-max-bytes", "1048577"], &[]);
    assert_refused(&out, &dir, "0..=1048576");

    let out = serve(&dir, &[], &[("GRAPHBOX_INLINE_MAX_BYTES", "99999999")]);
    assert_refused(&out, &dir, "0..=1048576");

    let out = serve(&dir, &["--inline-max-bytes=-1"], &[]);
    assert_refused(&out, &dir, "-1");

    let out = serve(&dir, &["--inline-max-bytes", "64k"], &[]);
    assert_refused(&out, &dir, "64k");
}
