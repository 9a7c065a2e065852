//! `graphbox fts decode|encode`: the codec on the command line.
//!
//! `decode` prints the JSON dump of `mapi::json` (frame records, every property
//! with its raw bytes and a readable value, recipients, attachments, nested
//! messages); `encode` turns that JSON back into the exact input bytes, so
//! `graphbox fts decode x | graphbox fts encode` reproduces `x` byte for byte.

use std::io::{Read, Write};

use anyhow::Context;
use base64::Engine;
use bytes::Bytes;

use crate::cli::FtsCmd;

fn read_input(file: &str) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if file == "-" {
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read standard input")?;
    } else {
        buf = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
    }
    Ok(buf)
}

/// Decodes base64 as found in a Graph `data` field or an EWS `<Data>` element
/// (line breaks and spaces are ignored).
fn unbase64(text: &[u8]) -> anyhow::Result<Vec<u8>> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .context("the input is not valid base64 (drop --base64 for a binary file)")
}

pub fn run(cmd: FtsCmd) -> anyhow::Result<()> {
    match cmd {
        FtsCmd::Decode { file, base64 } => {
            let mut raw = read_input(&file)?;
            if base64 {
                raw = unbase64(&raw)?;
            }
            let decoded = fts::decode(&Bytes::from(raw)).map_err(|e| {
                anyhow::anyhow!("{e} (the input is not a valid FastTransfer stream)")
            })?;
            let json = mapi::json::to_json(&decoded);
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &json)?;
            writeln!(out)?;
        }
        FtsCmd::Encode { file, base64 } => {
            let text = read_input(&file)?;
            let value: serde_json::Value = serde_json::from_slice(&text).context(
                "the input is not JSON (it should be the output of `graphbox fts decode`)",
            )?;
            let decoded = mapi::json::from_json(&value).map_err(|e| anyhow::anyhow!("{e}"))?;
            let bytes = fts::encode(&decoded);
            let mut out = std::io::stdout().lock();
            if base64 {
                writeln!(
                    out,
                    "{}",
                    base64::engine::general_purpose::STANDARD.encode(&bytes)
                )?;
            } else {
                out.write_all(&bytes)?;
            }
        }
    }
    Ok(())
}
