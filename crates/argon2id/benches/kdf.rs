//! The repository key derivation (Argon2id, 64 MiB, 3 passes, 4 lanes) with
//! this crate's AVX-512 and portable compression functions, against the
//! `argon2` crate (lanes on rayon threads) in the same run. The memory is
//! allocated and faulted in once, outside the measurement.
//!
//!     cargo bench -p argon2id --bench kdf

use argon2id::{Backend, Block, Params, derive};
use criterion::{Criterion, criterion_group, criterion_main};

const PARAMS: Params = Params {
    memory_kib: 64 * 1024,
    passes: 3,
    lanes: 4,
};

fn bench(c: &mut Criterion) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut g = c.benchmark_group("argon2id_64MiB_t3_p4");
    g.sample_size(20);
    let mut memory = vec![Block::ZERO; PARAMS.block_count()];
    let mut out = [0u8; 32];
    for (name, backend) in [
        ("graphbox", Backend::Auto),
        ("graphbox_portable", Backend::Portable),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                derive(
                    b"password",
                    b"saltsaltsaltsalt",
                    PARAMS,
                    &mut out,
                    &mut memory,
                    threads,
                    backend,
                )
                .unwrap()
            })
        });
    }
    let params =
        argon2::Params::new(PARAMS.memory_kib, PARAMS.passes, PARAMS.lanes, Some(32)).unwrap();
    let crate_ = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut blocks = vec![argon2::Block::default(); PARAMS.block_count()];
    g.bench_function("argon2_crate", |b| {
        b.iter(|| {
            crate_
                .hash_password_into_with_memory(
                    b"password",
                    b"saltsaltsaltsalt",
                    &mut out,
                    &mut blocks,
                )
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
