//! Argon2id (RFC 9106, version 0x13), for the repository key derivation.
//!
//! The `argon2` crate computes the same function; this implementation is
//! here for speed. Every command that opens a repository derives a key over
//! 64 MiB × 3 passes, and on the two-core machines graphbox is measured on,
//! that derivation was about half the CPU time of an incremental backup
//! (docs/BENCHMARKS.md). Here the compression function `G` runs on AVX-512
//! registers when the CPU has them (native 64-bit rotations; one instruction
//! works on two BlaMka permutations) and writes its result in place (the
//! `argon2` crate returns each new block by value and copies it). Other CPUs
//! get a portable `G` (compiled for AVX2 where there is AVX2). The lanes of a
//! slice run on parallel threads, and a thread computes its lanes interleaved
//! block by block, prefetching each lane's next reference block while the
//! others compute. Tests here pin the output to RFC 9106's test vector and to
//! the `argon2` crate for both backends; the backup crate's `crypto.rs` pins
//! it to answers of the reference C implementation.

use blake2::digest::{Digest, Update, VariableOutput};
use blake2::{Blake2b512, Blake2bVar};

/// Words in a 1 KiB block.
const WORDS: usize = 128;
/// Slices (synchronisation points) per pass.
const SLICES: usize = 4;
/// Argon2 version 1.3.
const VERSION: u32 = 0x13;
/// The type code of Argon2id.
const TYPE_ID: u64 = 2;

/// One 1 KiB block of Argon2 memory.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub struct Block(pub [u64; WORDS]);

impl Block {
    pub const ZERO: Block = Block([0; WORDS]);
}

/// Cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Memory in KiB (at least 8 per lane).
    pub memory_kib: u32,
    /// Passes over the memory (at least 1).
    pub passes: u32,
    /// Lanes (1 to 2^24 − 1).
    pub lanes: u32,
}

/// Why parameters or inputs were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError(pub &'static str);

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ParamError {}

impl Params {
    /// Checks the ranges RFC 9106 (section 3.1) allows.
    pub fn check(&self) -> Result<(), ParamError> {
        if self.lanes == 0 || self.lanes >= 1 << 24 {
            return Err(ParamError("the lane count must be between 1 and 2^24 - 1"));
        }
        if self.passes == 0 {
            return Err(ParamError("at least one pass is needed"));
        }
        if u64::from(self.memory_kib) < 8 * u64::from(self.lanes) {
            return Err(ParamError("the memory must be at least 8 KiB per lane"));
        }
        Ok(())
    }

    /// Blocks of memory the derivation uses: the memory rounded down to a
    /// multiple of 4 × lanes.
    pub fn block_count(&self) -> usize {
        let unit = SLICES * self.lanes as usize;
        self.memory_kib as usize / unit * unit
    }

    fn lane_length(&self) -> usize {
        self.block_count() / self.lanes as usize
    }
}

/// Which compression function to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// AVX-512 if the CPU has it, else the portable one.
    Auto,
    /// The portable one (for tests and benchmarks that compare both).
    Portable,
}

/// Derives `out.len()` bytes (4 or more) from `password` and `salt` (8 bytes
/// or more) in `memory` (at least `params.block_count()` blocks; its contents
/// on entry do not matter), computing the lanes on up to `threads` threads.
pub fn derive(
    password: &[u8],
    salt: &[u8],
    params: Params,
    out: &mut [u8],
    memory: &mut [Block],
    threads: usize,
    backend: Backend,
) -> Result<(), ParamError> {
    let inputs = Inputs {
        password,
        salt,
        secret: &[],
        associated: &[],
    };
    derive_with(inputs, params, out, memory, threads, backend)
}

/// The message inputs of RFC 9106 (3.1).
struct Inputs<'a> {
    password: &'a [u8],
    salt: &'a [u8],
    secret: &'a [u8],
    associated: &'a [u8],
}

fn derive_with(
    inputs: Inputs<'_>,
    params: Params,
    out: &mut [u8],
    memory: &mut [Block],
    threads: usize,
    backend: Backend,
) -> Result<(), ParamError> {
    let Inputs {
        password,
        salt,
        secret,
        associated,
    } = inputs;
    params.check()?;
    if out.len() < 4 || u32::try_from(out.len()).is_err() {
        return Err(ParamError("the output must be 4 bytes or more"));
    }
    if salt.len() < 8 || u32::try_from(salt.len()).is_err() {
        return Err(ParamError("the salt must be 8 bytes or more"));
    }
    if [password, secret, associated]
        .iter()
        .any(|x| u32::try_from(x.len()).is_err())
    {
        return Err(ParamError("an input is longer than 2^32 - 1 bytes"));
    }
    let blocks = params.block_count();
    let memory = memory.get_mut(..blocks).ok_or(ParamError(
        "the memory is smaller than the parameters ask for",
    ))?;
    let compress = select(backend);

    // H0 (RFC 9106, 3.2 step 1).
    let mut h = Blake2b512::new();
    for x in [
        params.lanes,
        out.len() as u32,
        params.memory_kib,
        params.passes,
        VERSION,
        TYPE_ID as u32,
        password.len() as u32,
    ] {
        Digest::update(&mut h, x.to_le_bytes());
    }
    Digest::update(&mut h, password);
    Digest::update(&mut h, (salt.len() as u32).to_le_bytes());
    Digest::update(&mut h, salt);
    for x in [secret, associated] {
        Digest::update(&mut h, (x.len() as u32).to_le_bytes());
        Digest::update(&mut h, x);
    }
    let h0 = h.finalize();

    // The first two blocks of every lane (steps 3 and 4).
    let lane_length = params.lane_length();
    let mut bytes = [0u8; WORDS * 8];
    for lane in 0..params.lanes {
        for column in 0..2u32 {
            hash_long(
                &mut bytes,
                &[&h0, &column.to_le_bytes(), &lane.to_le_bytes()],
            );
            let block = &mut memory[lane as usize * lane_length + column as usize];
            for (w, b) in block.0.iter_mut().zip(bytes.chunks_exact(8)) {
                *w = u64::from_le_bytes(b.try_into().expect("8 bytes"));
            }
        }
    }

    fill(
        memory,
        params,
        threads.clamp(1, params.lanes as usize),
        compress,
    );

    // The final block: the last blocks of all lanes XORed (steps 7 and 8).
    let mut last = memory[lane_length - 1];
    for lane in 1..params.lanes as usize {
        let other = &memory[lane * lane_length + lane_length - 1];
        for (a, b) in last.0.iter_mut().zip(other.0.iter()) {
            *a ^= b;
        }
    }
    for (b, w) in bytes.chunks_exact_mut(8).zip(last.0.iter()) {
        b.copy_from_slice(&w.to_le_bytes());
    }
    hash_long(out, &[&bytes]);
    bytes.fill(0);
    Ok(())
}

/// H' (RFC 9106, 3.3): BLAKE2b of any output length over the concatenation
/// of `parts`.
fn hash_long(out: &mut [u8], parts: &[&[u8]]) {
    let len = (out.len() as u32).to_le_bytes();
    if out.len() <= 64 {
        let mut h = Blake2bVar::new(out.len()).expect("1 to 64 bytes");
        h.update(&len);
        for p in parts {
            h.update(p);
        }
        h.finalize_variable(out).expect("sized above");
        return;
    }
    let mut h = Blake2b512::new();
    Digest::update(&mut h, len);
    for p in parts {
        Digest::update(&mut h, p);
    }
    let mut v = h.finalize();
    out[..32].copy_from_slice(&v[..32]);
    let mut at = 32;
    while out.len() - at > 64 {
        v = Blake2b512::digest(v);
        out[at..at + 32].copy_from_slice(&v[..32]);
        at += 32;
    }
    let mut h = Blake2bVar::new(out.len() - at).expect("33 to 64 bytes");
    h.update(&v);
    h.finalize_variable(&mut out[at..]).expect("sized above");
}

/// The compression function: `out = G(x, y)`, or `out ^= G(x, y)` with
/// `xor`. `out` is neither `x` nor `y`.
type Compress = unsafe fn(out: *mut Block, x: *const Block, y: *const Block, xor: bool);

fn select(backend: Backend) -> Compress {
    #[cfg(target_arch = "x86_64")]
    {
        if backend == Backend::Auto && std::arch::is_x86_feature_detected!("avx512f") {
            return avx512::compress;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return portable::compress_avx2;
        }
    }
    let _ = backend;
    portable::compress
}

/// The memory shared by the threads that fill it.
struct Memory {
    blocks: *mut Block,
}

// SAFETY: the threads that share a `Memory` write disjoint blocks and never
// read a block another thread writes in the same slice (see `fill`).
unsafe impl Sync for Memory {}

/// Passes over the memory, slice by slice; within a slice the lanes are
/// independent and run on `threads` threads, which wait for each other at
/// the end of every slice.
///
/// Why the threads do not race: in a slice, lane `l` writes only its own
/// segment (the slice's quarter of lane `l`). It reads the previous block
/// (its own, earlier in the segment or in a finished slice) and a reference
/// block that RFC 9106 (3.4.2) takes from the lane's own finished blocks or,
/// for another lane, only from slices other than the current one. Every
/// block read was written before the last barrier or by the same thread.
fn fill(memory: &mut [Block], params: Params, threads: usize, compress: Compress) {
    let shared = Memory {
        blocks: memory.as_mut_ptr(),
    };
    let lanes = params.lanes as usize;
    let work = |thread: usize, barrier: &std::sync::Barrier| {
        let mine: Vec<usize> = (thread..lanes).step_by(threads).collect();
        for pass in 0..params.passes as usize {
            for slice in 0..SLICES {
                // SAFETY: see the function's comment; `memory` holds
                // `block_count()` blocks (checked by `derive`).
                unsafe { fill_segments(&shared, params, pass, slice, &mine, compress) };
                barrier.wait();
            }
        }
    };
    let barrier = std::sync::Barrier::new(threads);
    std::thread::scope(|s| {
        for thread in 1..threads {
            let (work, barrier) = (&work, &barrier);
            s.spawn(move || work(thread, barrier));
        }
        work(0, &barrier);
    });
}

/// Where one lane's segment stands.
struct Segment {
    lane: usize,
    /// Data-independent addressing: the input block and the current 128
    /// pseudo-random values.
    input: Block,
    addresses: Block,
    /// The block before the next one to compute.
    previous: usize,
    /// The next block's reference block.
    reference: usize,
}

/// Computes the segments of `slice` in `pass` of the lanes `lanes`
/// (RFC 9106, 3.4), interleaved block by block: the next reference block of
/// each lane is known as soon as that lane's current block is done, and it
/// is prefetched while the other lanes compute theirs. A reference block is
/// anywhere in the memory (64 MiB by default), so a lane on its own waits
/// for it about as long as the compression takes.
///
/// # Safety
/// `memory` points to `params.block_count()` blocks, and no other thread
/// accesses these segments or writes the blocks they reference (see `fill`).
unsafe fn fill_segments(
    memory: &Memory,
    params: Params,
    pass: usize,
    slice: usize,
    lanes: &[usize],
    compress: Compress,
) {
    let lane_length = params.lane_length();
    let segment = lane_length / SLICES;
    let independent = pass == 0 && slice < SLICES / 2;
    let first = if pass == 0 && slice == 0 { 2 } else { 0 };
    let mut segments: Vec<Segment> = lanes
        .iter()
        .map(|&lane| {
            let base = lane * lane_length;
            let start = base + slice * segment + first;
            let mut input = Block::ZERO;
            if independent {
                input.0[..6].copy_from_slice(&[
                    pass as u64,
                    lane as u64,
                    slice as u64,
                    params.block_count() as u64,
                    u64::from(params.passes),
                    TYPE_ID,
                ]);
            }
            Segment {
                lane,
                input,
                addresses: Block::ZERO,
                previous: if start == base {
                    base + lane_length - 1
                } else {
                    start - 1
                },
                reference: 0,
            }
        })
        .collect();
    // The reference block of block `index` of the segment `s`, whose
    // previous block is done.
    let reference = |s: &mut Segment, index: usize| {
        let random = if independent {
            if index.is_multiple_of(WORDS) || index == first {
                // SAFETY: local blocks.
                unsafe { next_addresses(&mut s.input, &mut s.addresses, compress) };
            }
            s.addresses.0[index % WORDS]
        } else {
            // SAFETY: `previous` was written by this thread (earlier in the
            // segment) or before the last barrier.
            unsafe { (*memory.blocks.add(s.previous)).0[0] }
        };
        let ref_lane = if pass == 0 && slice == 0 {
            s.lane
        } else {
            ((random >> 32) % u64::from(params.lanes)) as usize
        };
        let ref_index = reference_index(
            pass,
            slice,
            index,
            segment,
            lane_length,
            ref_lane == s.lane,
            random as u32,
        );
        s.reference = ref_lane * lane_length + ref_index;
        // SAFETY: an index inside the memory.
        prefetch(unsafe { memory.blocks.add(s.reference) });
    };
    for s in &mut segments {
        reference(s, first);
    }
    for index in first..segment {
        for s in &mut segments {
            let current = s.lane * lane_length + slice * segment + index;
            // SAFETY: `current` is in this thread's segment; `previous` and
            // `reference` are other blocks, finished (see `fill`).
            unsafe {
                compress(
                    memory.blocks.add(current),
                    memory.blocks.add(s.previous),
                    memory.blocks.add(s.reference),
                    pass != 0,
                )
            };
            s.previous = current;
            if index + 1 < segment {
                reference(s, index + 1);
            }
        }
    }
}

/// Asks the CPU to start loading the block at `block` into its caches.
#[inline]
fn prefetch(block: *const Block) {
    #[cfg(target_arch = "x86_64")]
    for line in 0..std::mem::size_of::<Block>() / 64 {
        // SAFETY: a prefetch is only a hint; it does not fault, whatever the
        // address.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                block.cast::<i8>().wrapping_add(line * 64),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = block;
}

/// The next 128 pseudo-random values of data-independent addressing.
///
/// # Safety
/// Only that the compression function is one `select` returned.
unsafe fn next_addresses(input: &mut Block, addresses: &mut Block, compress: Compress) {
    input.0[6] += 1;
    let mut tmp = Block::ZERO;
    // SAFETY: distinct local blocks.
    unsafe {
        compress(&mut tmp, &Block::ZERO, input, false);
        compress(addresses, &Block::ZERO, &tmp, false);
    }
}

/// The reference block's index in its lane (RFC 9106, 3.4.1.2).
fn reference_index(
    pass: usize,
    slice: usize,
    index: usize,
    segment: usize,
    lane_length: usize,
    same_lane: bool,
    j1: u32,
) -> usize {
    let finished = if pass == 0 {
        slice * segment
    } else {
        lane_length - segment
    };
    let area = if same_lane {
        finished + index - 1
    } else if index == 0 {
        finished - 1
    } else {
        finished
    };
    let x = (u64::from(j1) * u64::from(j1)) >> 32;
    let y = (area as u64 * x) >> 32;
    let relative = area - 1 - y as usize;
    let start = if pass == 0 || slice == SLICES - 1 {
        0
    } else {
        (slice + 1) * segment
    };
    (start + relative) % lane_length
}

mod portable {
    use super::{Block, WORDS};

    #[inline(always)]
    fn blamka(x: u64, y: u64) -> u64 {
        let m = (x & 0xffff_ffff) * (y & 0xffff_ffff);
        x.wrapping_add(y).wrapping_add(m.wrapping_mul(2))
    }

    #[inline(always)]
    fn g(v: &mut [u64; 16], a: usize, b: usize, c: usize, d: usize) {
        v[a] = blamka(v[a], v[b]);
        v[d] = (v[d] ^ v[a]).rotate_right(32);
        v[c] = blamka(v[c], v[d]);
        v[b] = (v[b] ^ v[c]).rotate_right(24);
        v[a] = blamka(v[a], v[b]);
        v[d] = (v[d] ^ v[a]).rotate_right(16);
        v[c] = blamka(v[c], v[d]);
        v[b] = (v[b] ^ v[c]).rotate_right(63);
    }

    /// The BlaMka permutation P on 16 words.
    #[inline(always)]
    fn p(v: &mut [u64; 16]) {
        g(v, 0, 4, 8, 12);
        g(v, 1, 5, 9, 13);
        g(v, 2, 6, 10, 14);
        g(v, 3, 7, 11, 15);
        g(v, 0, 5, 10, 15);
        g(v, 1, 6, 11, 12);
        g(v, 2, 7, 8, 13);
        g(v, 3, 4, 9, 14);
    }

    #[inline(always)]
    fn compress_inline(out: &mut Block, x: &Block, y: &Block, xor: bool) {
        let mut r = [0u64; WORDS];
        for (i, w) in r.iter_mut().enumerate() {
            *w = x.0[i] ^ y.0[i];
        }
        let mut q = r;
        for row in 0..8 {
            let v: &mut [u64; 16] = (&mut q[row * 16..row * 16 + 16])
                .try_into()
                .expect("16 words");
            p(v);
        }
        for column in 0..8 {
            let mut v = [0u64; 16];
            for k in 0..8 {
                v[2 * k] = q[2 * column + 16 * k];
                v[2 * k + 1] = q[2 * column + 16 * k + 1];
            }
            p(&mut v);
            for k in 0..8 {
                q[2 * column + 16 * k] = v[2 * k];
                q[2 * column + 16 * k + 1] = v[2 * k + 1];
            }
        }
        for (i, o) in out.0.iter_mut().enumerate() {
            let z = q[i] ^ r[i];
            *o = if xor { *o ^ z } else { z };
        }
    }

    /// # Safety
    /// `out` is valid for writes, `x` and `y` for reads, and `out` is
    /// neither of them.
    pub(super) unsafe fn compress(out: *mut Block, x: *const Block, y: *const Block, xor: bool) {
        // SAFETY: as the caller promised.
        unsafe { compress_inline(&mut *out, &*x, &*y, xor) }
    }

    /// The same code compiled for AVX2 (the compiler vectorizes it).
    ///
    /// # Safety
    /// As `compress`, and the CPU has AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn compress_avx2(
        out: *mut Block,
        x: *const Block,
        y: *const Block,
        xor: bool,
    ) {
        // SAFETY: as the caller promised.
        unsafe { compress_inline(&mut *out, &*x, &*y, xor) }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! `G` on AVX-512 registers. A block is 16 registers of 8 words; each
    //! BlaMka permutation works on four registers `a b c d` that hold the
    //! 4-word rows of the 4×4 word matrix of two permutations (one per
    //! 256-bit half), so the diagonal step is a rotation within halves.
    use super::Block;
    use core::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn blamka(x: __m512i, y: __m512i) -> __m512i {
        let m = _mm512_mul_epu32(x, y);
        _mm512_add_epi64(_mm512_add_epi64(x, y), _mm512_add_epi64(m, m))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn g(a: &mut __m512i, b: &mut __m512i, c: &mut __m512i, d: &mut __m512i) {
        *a = blamka(*a, *b);
        *d = _mm512_ror_epi64::<32>(_mm512_xor_si512(*d, *a));
        *c = blamka(*c, *d);
        *b = _mm512_ror_epi64::<24>(_mm512_xor_si512(*b, *c));
        *a = blamka(*a, *b);
        *d = _mm512_ror_epi64::<16>(_mm512_xor_si512(*d, *a));
        *c = blamka(*c, *d);
        *b = _mm512_ror_epi64::<63>(_mm512_xor_si512(*b, *c));
    }

    /// Two BlaMka permutations: the column step, the rows of the 4×4
    /// matrices rotated by 1, 2 and 3 words, the diagonal step, rotated back.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn p(a: &mut __m512i, b: &mut __m512i, c: &mut __m512i, d: &mut __m512i) {
        g(a, b, c, d);
        *b = _mm512_permutex_epi64::<0b00_11_10_01>(*b);
        *c = _mm512_permutex_epi64::<0b01_00_11_10>(*c);
        *d = _mm512_permutex_epi64::<0b10_01_00_11>(*d);
        g(a, b, c, d);
        *b = _mm512_permutex_epi64::<0b10_01_00_11>(*b);
        *c = _mm512_permutex_epi64::<0b01_00_11_10>(*c);
        *d = _mm512_permutex_epi64::<0b00_11_10_01>(*d);
    }

    /// # Safety
    /// The CPU has AVX-512F; `out` is valid for writes, `x` and `y` for
    /// reads (all 64-byte aligned, as `Block` is), and `out` is neither.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn compress(out: *mut Block, x: *const Block, y: *const Block, xor: bool) {
        let (out, x, y) = (
            out.cast::<__m512i>(),
            x.cast::<__m512i>(),
            y.cast::<__m512i>(),
        );
        let mut r = [_mm512_setzero_si512(); 16];
        for (j, v) in r.iter_mut().enumerate() {
            // SAFETY: 16 aligned registers' worth in each block.
            *v = unsafe {
                _mm512_xor_si512(_mm512_load_si512(x.add(j)), _mm512_load_si512(y.add(j)))
            };
        }
        let saved = r;
        // Rows: register 2k holds words 0–7 of row k, register 2k + 1 words
        // 8–15; two rows at a time.
        for k in 0..4 {
            let (r0, r1, r2, r3) = (r[4 * k], r[4 * k + 1], r[4 * k + 2], r[4 * k + 3]);
            let mut a = _mm512_shuffle_i64x2::<0x44>(r0, r2);
            let mut b = _mm512_shuffle_i64x2::<0xEE>(r0, r2);
            let mut c = _mm512_shuffle_i64x2::<0x44>(r1, r3);
            let mut d = _mm512_shuffle_i64x2::<0xEE>(r1, r3);
            p(&mut a, &mut b, &mut c, &mut d);
            r[4 * k] = _mm512_shuffle_i64x2::<0x44>(a, b);
            r[4 * k + 2] = _mm512_shuffle_i64x2::<0xEE>(a, b);
            r[4 * k + 1] = _mm512_shuffle_i64x2::<0x44>(c, d);
            r[4 * k + 3] = _mm512_shuffle_i64x2::<0xEE>(c, d);
        }
        // Columns: column i is words 2i and 2i + 1 of every row; two
        // columns at a time, gathered from pairs of rows.
        let take = [
            _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11),
            _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15),
        ];
        let put_even = _mm512_setr_epi64(0, 1, 4, 5, 8, 9, 12, 13);
        let put_odd = _mm512_setr_epi64(2, 3, 6, 7, 10, 11, 14, 15);
        for h in 0..2 {
            let mut v = [[_mm512_setzero_si512(); 4]; 2];
            for (q, idx) in take.iter().enumerate() {
                let [a, b, c, d] = &mut v[q];
                *a = _mm512_permutex2var_epi64(r[h], *idx, r[2 + h]);
                *b = _mm512_permutex2var_epi64(r[4 + h], *idx, r[6 + h]);
                *c = _mm512_permutex2var_epi64(r[8 + h], *idx, r[10 + h]);
                *d = _mm512_permutex2var_epi64(r[12 + h], *idx, r[14 + h]);
                p(a, b, c, d);
            }
            for (m, pair) in (0..4).zip([0, 4, 8, 12]) {
                r[pair + h] = _mm512_permutex2var_epi64(v[0][m], put_even, v[1][m]);
                r[pair + 2 + h] = _mm512_permutex2var_epi64(v[0][m], put_odd, v[1][m]);
            }
        }
        for j in 0..16 {
            let mut z = _mm512_xor_si512(r[j], saved[j]);
            // SAFETY: as the caller promised.
            unsafe {
                if xor {
                    z = _mm512_xor_si512(z, _mm512_load_si512(out.add(j)));
                }
                _mm512_store_si512(out.add(j), z);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BACKENDS: [Backend; 2] = [Backend::Auto, Backend::Portable];

    fn run(inputs: Inputs<'_>, params: Params, len: usize, threads: usize, b: Backend) -> Vec<u8> {
        let mut memory = vec![Block([u64::MAX; WORDS]); params.block_count()];
        let mut out = vec![0u8; len];
        derive_with(inputs, params, &mut out, &mut memory, threads, b).unwrap();
        out
    }

    /// RFC 9106 section 5.3: Argon2id with a secret and associated data.
    #[test]
    fn rfc_9106_test_vector() {
        let (password, salt, secret, associated) = ([1u8; 32], [2u8; 16], [3u8; 8], [4u8; 12]);
        let params = Params {
            memory_kib: 32,
            passes: 3,
            lanes: 4,
        };
        for b in BACKENDS {
            for threads in [1, 2, 4, 9] {
                let inputs = Inputs {
                    password: &password,
                    salt: &salt,
                    secret: &secret,
                    associated: &associated,
                };
                assert_eq!(
                    hex::encode(run(inputs, params, 32, threads, b)),
                    "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659",
                    "{b:?}, {threads} threads"
                );
            }
        }
    }

    fn reference(password: &[u8], salt: &[u8], p: Params, len: usize) -> Vec<u8> {
        let params = argon2::Params::new(p.memory_kib, p.passes, p.lanes, Some(len)).unwrap();
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = vec![0u8; len];
        a.hash_password_into(password, salt, &mut out).unwrap();
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// The same output as the `argon2` crate, for any parameters, output
        /// length, thread count and backend (memory sizes that are not a
        /// multiple of 4 × lanes included).
        #[test]
        fn same_as_the_argon2_crate(
            password in proptest::collection::vec(any::<u8>(), 0..40),
            salt in proptest::collection::vec(any::<u8>(), 8..24),
            lanes in 1u32..6,
            extra_kib in 0u32..300,
            passes in 1u32..4,
            len in 4usize..130,
            threads in 1usize..5,
        ) {
            let params = Params { memory_kib: 8 * lanes + extra_kib, passes, lanes };
            let want = reference(&password, &salt, params, len);
            for b in BACKENDS {
                let inputs = Inputs { password: &password, salt: &salt, secret: &[], associated: &[] };
                prop_assert_eq!(&run(inputs, params, len, threads, b), &want, "{:?}", b);
            }
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        let ok = Params {
            memory_kib: 64,
            passes: 1,
            lanes: 2,
        };
        let mut memory = vec![Block::ZERO; 64];
        let mut out = [0u8; 32];
        let derive_ = |p: Params, salt: &[u8], out: &mut [u8], memory: &mut [Block]| {
            derive(b"pw", salt, p, out, memory, 2, Backend::Auto)
                .unwrap_err()
                .to_string()
        };
        let salt = [7u8; 16];
        for (p, want) in [
            (Params { lanes: 0, ..ok }, "lane count"),
            (
                Params {
                    lanes: 1 << 24,
                    ..ok
                },
                "lane count",
            ),
            (Params { passes: 0, ..ok }, "one pass"),
            (
                Params {
                    memory_kib: 15,
                    ..ok
                },
                "8 KiB per lane",
            ),
        ] {
            let e = derive_(p, &salt, &mut out, &mut memory);
            assert!(e.contains(want), "{p:?}: {e}");
        }
        assert!(derive_(ok, &salt[..7], &mut out, &mut memory).contains("salt"));
        assert!(derive_(ok, &salt, &mut out[..3], &mut memory).contains("output"));
        assert!(derive_(ok, &salt, &mut out, &mut memory[..63]).contains("memory"));
        // A bigger memory than needed is fine, and what it held does not matter.
        let mut big = vec![Block([0x5555; WORDS]); 100];
        derive(b"pw", &salt, ok, &mut out, &mut big, 2, Backend::Auto).unwrap();
        assert_eq!(out.to_vec(), reference(b"pw", &salt, ok, 32));
    }
}
