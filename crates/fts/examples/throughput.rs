//! Decode throughput against a memcpy baseline on the same bytes.
//!
//! `cargo run --release -p fts --example throughput`

use bytes::Bytes;
use fts::ast::*;
use fts::value::build;
use std::hint::black_box;
use std::time::Instant;

fn best_of<F: FnMut()>(iters: usize, mut f: F) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / iters as f64);
    }
    best
}

fn report(name: &str, input: &Bytes, iters: usize, framed: bool) {
    let mut dst = vec![0u8; input.len()];
    let copy = best_of(iters, || {
        dst.copy_from_slice(black_box(input));
        black_box(&dst);
    });
    let dec = best_of(iters, || {
        if framed {
            black_box(fts::decode(black_box(input)).unwrap());
        } else {
            black_box(fts::decode_fts(black_box(input)).unwrap());
        }
    });
    let enc_root = fts::decode(input).unwrap();
    let enc = best_of(iters, || {
        black_box(fts::encode(black_box(&enc_root)));
    });
    let mb = input.len() as f64 / 1e6;
    println!(
        "{name:<34} {:>9} B  decode {:>8.0} MB/s ({:>5.2}x memcpy)  encode {:>6.0} MB/s  memcpy {:>6.0} MB/s",
        input.len(),
        mb / dec,
        dec / copy,
        mb / enc,
        mb / copy,
    );
}

fn message(attachment: usize, dense_props: usize) -> Root {
    let mut mc = MessageContent {
        recip_delprop: Some(Prop::single(
            0x4016_0003,
            None,
            0x0E12_000Du32.to_le_bytes().to_vec(),
        )),
        attach_delprop: Some(Prop::single(
            0x4016_0003,
            None,
            0x0E13_000Du32.to_le_bytes().to_vec(),
        )),
        ..Default::default()
    };
    mc.props.push(build::string(0x001A, None, "IPM.Note"));
    mc.props
        .push(build::string(0x0037, None, "Quarterly report"));
    for i in 0..dense_props {
        let id = 0x1000 + (i % 0x2000) as u16;
        mc.props.push(match i % 4 {
            0 => build::i32(id, None, i as i32),
            1 => build::string(id, None, "value"),
            2 => build::bool(id, None, true),
            _ => build::time(id, None, 133_000_000_000_000_000),
        });
    }
    for r in 0..3 {
        mc.recipients.push(Recipient {
            props: vec![
                build::i32(0x3000, None, r),
                build::i32(0x0C15, None, 1),
                build::string(0x3001, None, "Bob Example"),
                build::string(0x39FE, None, "bob@example.com"),
            ],
        });
    }
    if attachment > 0 {
        let data: Vec<u8> = (0..attachment).map(|i| (i * 7) as u8).collect();
        mc.attachments.push(Attachment {
            props: vec![
                build::i32(0x0E21, None, 0),
                build::i32(0x3705, None, 1),
                build::binary(0x3701, None, data),
            ],
            embedded: None,
        });
    }
    Root::MessageContent(mc)
}

fn main() {
    let big = Bytes::from(fts::encode_fts(&message(5 << 20, 0)));
    report("5 MiB attachment (raw FTS)", &big, 200, false);
    let framed = Bytes::from(fts::write_frames(
        &fts::FrameHeader::default(),
        &big,
        fts::frame::DEFAULT_CHUNK,
    ));
    report("5 MiB attachment (framed)", &framed, 100, true);
    let dense = Bytes::from(fts::encode_fts(&message(0, 20_000)));
    report("20,000 small properties (raw FTS)", &dense, 50, false);
}
