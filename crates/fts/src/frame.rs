//! The EWS/Graph record envelope around the FTS (reference §3).
//!
//! Export data is a sequence of records `[u32 opcode][u32 len][len bytes]`,
//! little-endian: Config (1), IsInterfaceOk (3), TellPartnerVersion (4), then
//! TransferBuffer (2) records whose payloads, joined, are the FTS. Records are
//! Exchange's FxProxy calls, so other opcodes may appear; they are kept verbatim.
//!
//! # Detection
//! Input is framed iff its first two u32 are 1 and 8 (a Config record). This is
//! unambiguous: a raw FTS cannot start with the word 0x00000001 (property id 0
//! of type 0x0001 PtypNull is not a valid FTS type and not a marker), so a raw
//! stream starting that way would be rejected anyway. After detection, the
//! record walk either succeeds or the input ends inside a record, which is
//! truncation: [`unframe`] keeps everything read so far and sets
//! [`Framing::truncated`], so the header records of a cut stream can still be
//! inspected, and [`crate::decode()`] reports the truncation at the end of the input.
//!
//! # Lossless layout
//! [`Framing`] keeps every non-TransferBuffer record (payload included) and the
//! length of every TransferBuffer record, in order, so [`crate::encode`]
//! re-frames byte for byte when the FTS length is unchanged.
//!
//! # Empty TransferBuffers
//! Exchange's importer rejects a zero-length TransferBuffer. On read we accept
//! one (and keep it, so the input still round-trips) and add
//! [`WarningKind::EmptyTransferBuffer`] to [`Framing::warnings`]. [`write_frames`]
//! never emits one; an empty FTS therefore gets the three header records and no
//! TransferBuffer at all.

use crate::ast::Guid;
use crate::error::{Error, ErrorKind, Warning, WarningKind};
use bytes::{Bytes, BytesMut};
use std::io::{self, Write};

/// Record opcodes (Exchange's FxOpcodes).
pub mod opcode {
    pub const NONE: u32 = 0;
    pub const CONFIG: u32 = 1;
    pub const TRANSFER_BUFFER: u32 = 2;
    pub const IS_INTERFACE_OK: u32 = 3;
    pub const TELL_PARTNER_VERSION: u32 = 4;
}

/// Exchange's TransferBuffer chunk size: 31,680 bytes (0x7BC0).
pub const DEFAULT_CHUNK: usize = 31_680;

/// IID_IMessage {00020307-0000-0000-C000-000000000046}.
pub const IID_IMESSAGE: Guid = Guid::from_fields(0x0002_0307, 0, 0, [0xC0, 0, 0, 0, 0, 0, 0, 0x46]);

/// Transfer method CopyTo, the only one a message target accepts.
pub const TRANSFER_METHOD_COPY_TO: u32 = 1;

/// IsInterfaceOk flags seen in every sample (meaning unknown).
pub const INTERFACE_OK_FLAGS: u32 = 0x8000_2400;

/// One record, payload verbatim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub opcode: u32,
    pub payload: Bytes,
}

/// One entry of the record layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Any record other than TransferBuffer, kept whole.
    Record(Record),
    /// A TransferBuffer record: only its payload length is kept (the payload is
    /// part of the joined FTS).
    Chunk(u32),
}

/// The record layout of a framed input.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Framing {
    pub frames: Vec<Frame>,
    pub warnings: Vec<Warning>,
    /// Set when the input ended inside a record: how many more bytes that record
    /// needed. The partial payload of a cut TransferBuffer is part of the FTS.
    pub truncated: Option<u64>,
}

/// The version in a TellPartnerVersion record: three u16 LE words,
/// `(major << 8) | minor`, `0x8000 | build_major`, `build_minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PartnerVersion {
    pub major: u8,
    pub minor: u8,
    /// 15 bits (the high bit of the word is the 0x8000 flag).
    pub build_major: u16,
    pub build_minor: u16,
}

impl PartnerVersion {
    /// An Exchange Online (15.20) build; importers ignore this record (§3.3),
    /// the number only has to look like what Exchange sends.
    pub const EXCHANGE_ONLINE: PartnerVersion = PartnerVersion {
        major: 15,
        minor: 20,
        build_major: 8000,
        build_minor: 0,
    };

    /// Decodes the 6-byte payload (None if it is not 6 bytes).
    pub fn from_bytes(b: &[u8]) -> Option<PartnerVersion> {
        let b: &[u8; 6] = b.try_into().ok()?;
        let w = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(PartnerVersion {
            major: (w(0) >> 8) as u8,
            minor: w(0) as u8,
            build_major: w(2) & 0x7FFF,
            build_minor: w(4),
        })
    }

    pub fn to_bytes(self) -> [u8; 6] {
        let w0 = ((self.major as u16) << 8) | self.minor as u16;
        let w1 = 0x8000 | (self.build_major & 0x7FFF);
        let [a, b] = w0.to_le_bytes();
        let [c, d] = w1.to_le_bytes();
        let [e, f] = self.build_minor.to_le_bytes();
        [a, b, c, d, e, f]
    }
}

impl Default for PartnerVersion {
    fn default() -> Self {
        PartnerVersion::EXCHANGE_ONLINE
    }
}

impl std::fmt::Display for PartnerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.major, self.minor, self.build_major, self.build_minor
        )
    }
}

/// The three header records [`write_frames`] emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub config_flags: u32,
    pub transfer_method: u32,
    pub interface_iid: Guid,
    pub interface_flags: u32,
    pub version: PartnerVersion,
}

impl Default for FrameHeader {
    /// Exactly what Exchange exports carry, with [`PartnerVersion::EXCHANGE_ONLINE`].
    fn default() -> Self {
        FrameHeader {
            config_flags: 0,
            transfer_method: TRANSFER_METHOD_COPY_TO,
            interface_iid: IID_IMESSAGE,
            interface_flags: INTERFACE_OK_FLAGS,
            version: PartnerVersion::EXCHANGE_ONLINE,
        }
    }
}

impl FrameHeader {
    /// The header records, in Exchange's order.
    pub fn records(&self) -> [Record; 3] {
        let mut config = Vec::with_capacity(8);
        config.extend_from_slice(&self.config_flags.to_le_bytes());
        config.extend_from_slice(&self.transfer_method.to_le_bytes());
        let mut ok = Vec::with_capacity(24);
        ok.extend_from_slice(&self.transfer_method.to_le_bytes());
        ok.extend_from_slice(&self.interface_iid.0);
        ok.extend_from_slice(&self.interface_flags.to_le_bytes());
        [
            Record {
                opcode: opcode::CONFIG,
                payload: config.into(),
            },
            Record {
                opcode: opcode::IS_INTERFACE_OK,
                payload: ok.into(),
            },
            Record {
                opcode: opcode::TELL_PARTNER_VERSION,
                payload: Bytes::copy_from_slice(&self.version.to_bytes()),
            },
        ]
    }
}

impl Record {
    /// The version of a TellPartnerVersion record.
    pub fn partner_version(&self) -> Option<PartnerVersion> {
        (self.opcode == opcode::TELL_PARTNER_VERSION)
            .then(|| PartnerVersion::from_bytes(&self.payload))
            .flatten()
    }
}

impl Framing {
    /// The non-TransferBuffer records, in order.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.frames.iter().filter_map(|f| match f {
            Frame::Record(r) => Some(r),
            Frame::Chunk(_) => None,
        })
    }

    /// The TransferBuffer payload lengths, in order.
    pub fn chunk_sizes(&self) -> impl Iterator<Item = u32> + '_ {
        self.frames.iter().filter_map(|f| match f {
            Frame::Chunk(n) => Some(*n),
            Frame::Record(_) => None,
        })
    }

    /// The producer's version, from the first TellPartnerVersion record.
    pub fn partner_version(&self) -> Option<PartnerVersion> {
        self.records().find_map(Record::partner_version)
    }

    /// Maps an offset in the joined FTS to the offset in the framed bytes. The
    /// end of the FTS maps to the end of the last TransferBuffer payload.
    pub fn map_offset(&self, fts_offset: u64) -> u64 {
        let mut framed = 0u64;
        let mut fts = 0u64;
        let mut last_end = None;
        for f in &self.frames {
            match f {
                Frame::Record(r) => framed += 8 + r.payload.len() as u64,
                Frame::Chunk(n) => {
                    let n = *n as u64;
                    let payload = framed + 8;
                    if fts_offset < fts + n {
                        return payload + (fts_offset - fts);
                    }
                    fts += n;
                    framed = payload + n;
                    last_end = Some(framed);
                }
            }
        }
        last_end.map_or(framed, |e| e + fts_offset.saturating_sub(fts))
    }

    /// The record layout for an FTS of `fts_len` bytes. When the kept chunk
    /// sizes sum to `fts_len` it is the original layout; otherwise the records
    /// before the first TransferBuffer, then chunks of [`DEFAULT_CHUNK`], then
    /// the remaining records in their order (their position relative to the
    /// old chunks cannot be kept once the chunks change).
    pub fn layout_for(&self, fts_len: usize) -> Vec<Frame> {
        let kept: u64 = self.chunk_sizes().map(u64::from).sum();
        if kept == fts_len as u64 {
            return self.frames.clone();
        }
        let first_chunk = self
            .frames
            .iter()
            .position(|f| matches!(f, Frame::Chunk(_)))
            .unwrap_or(self.frames.len());
        let mut out: Vec<Frame> = self.frames[..first_chunk].to_vec();
        let mut left = fts_len;
        while left > 0 {
            let n = left.min(DEFAULT_CHUNK);
            out.push(Frame::Chunk(n as u32));
            left -= n;
        }
        out.extend(
            self.frames[first_chunk..]
                .iter()
                .filter(|f| matches!(f, Frame::Record(_)))
                .cloned(),
        );
        out
    }

    /// Writes the records around `fts` (layout from [`Framing::layout_for`]).
    pub fn write(&self, fts: &[u8], out: &mut Vec<u8>) {
        let mut w = FramedWriter::new(out, self.layout_for(fts.len()));
        w.write_all(fts).expect("writing to a Vec cannot fail");
        w.finish().expect("writing to a Vec cannot fail");
    }

    /// Size of [`Framing::write`]'s output for an FTS of `fts_len` bytes.
    pub fn framed_len(&self, fts_len: usize) -> usize {
        let kept: u64 = self.chunk_sizes().map(u64::from).sum();
        let records: usize = self.records().map(|r| 8 + r.payload.len()).sum();
        if kept == fts_len as u64 {
            records + 8 * self.chunk_sizes().count() + fts_len
        } else {
            records + 8 * fts_len.div_ceil(DEFAULT_CHUNK) + fts_len
        }
    }
}

/// A writer that frames the FTS written through it, following a layout: it
/// emits each record when the stream reaches its position and a TransferBuffer
/// header before each chunk, so the FTS is never assembled separately.
pub struct FramedWriter<'a, W: Write> {
    out: &'a mut W,
    plan: std::vec::IntoIter<Frame>,
    /// Bytes left in the current TransferBuffer.
    left: usize,
}

impl<'a, W: Write> FramedWriter<'a, W> {
    /// `layout`'s chunk sizes must sum to the number of bytes that will be written.
    pub fn new(out: &'a mut W, layout: Vec<Frame>) -> Self {
        FramedWriter {
            out,
            plan: layout.into_iter(),
            left: 0,
        }
    }

    /// Writes records up to the next non-empty chunk and opens it.
    fn open_chunk(&mut self) -> io::Result<()> {
        for f in self.plan.by_ref() {
            match f {
                Frame::Record(r) => put_record(self.out, r.opcode, &r.payload)?,
                Frame::Chunk(n) => {
                    put_header(self.out, opcode::TRANSFER_BUFFER, n as usize)?;
                    if n > 0 {
                        self.left = n as usize;
                        return Ok(());
                    }
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "more FTS bytes than the frame layout holds",
        ))
    }

    /// Writes the records (and empty chunks) after the last byte.
    pub fn finish(mut self) -> io::Result<()> {
        if self.left > 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "fewer FTS bytes than the frame layout holds",
            ));
        }
        for f in self.plan.by_ref() {
            match f {
                Frame::Record(r) => put_record(self.out, r.opcode, &r.payload)?,
                Frame::Chunk(0) => put_header(self.out, opcode::TRANSFER_BUFFER, 0)?,
                Frame::Chunk(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "fewer FTS bytes than the frame layout holds",
                    ));
                }
            }
        }
        Ok(())
    }
}

fn put_header(out: &mut impl Write, op: u32, len: usize) -> io::Result<()> {
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(&op.to_le_bytes());
    h[4..].copy_from_slice(&(len as u32).to_le_bytes());
    out.write_all(&h)
}

fn put_record(out: &mut impl Write, op: u32, payload: &[u8]) -> io::Result<()> {
    put_header(out, op, payload.len())?;
    out.write_all(payload)
}

impl<W: Write> Write for FramedWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            self.open_chunk()?;
        }
        let n = buf.len().min(self.left);
        self.out.write_all(&buf[..n])?;
        self.left -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// True iff `input` starts with a Config record header (`01 00 00 00 08 00 00 00`).
pub fn is_framed(input: &[u8]) -> bool {
    input.len() >= 8 && input[..8] == [1, 0, 0, 0, 8, 0, 0, 0]
}

/// Splits framed input into its record layout and the joined FTS. The FTS is a
/// zero-copy slice when there is a single TransferBuffer, a copy otherwise.
pub fn unframe(input: &Bytes) -> Result<(Framing, Bytes), Error> {
    if !is_framed(input) {
        return Err(Error::new(0, ErrorKind::NotFramed));
    }
    let (framing, chunks) = scan(input, |s, e| input.slice(s..e));
    let fts = match chunks.as_slice() {
        [] => Bytes::new(),
        [(s, n)] => input.slice(*s..*s + *n),
        many => {
            let total: usize = many.iter().map(|(_, n)| n).sum();
            let mut b = BytesMut::with_capacity(total);
            for (s, n) in many {
                b.extend_from_slice(&input[*s..*s + *n]);
            }
            b.freeze()
        }
    };
    Ok((framing, fts))
}

/// [`unframe`] of an owned buffer, joining the TransferBuffer payloads in
/// place: no second buffer the size of the input is ever allocated (the
/// import path of a 100 MB item relies on it). Other records' payloads are
/// copied out (they are a few bytes each).
pub fn unframe_vec(mut input: Vec<u8>) -> Result<(Framing, Bytes), Error> {
    if !is_framed(&input) {
        return Err(Error::new(0, ErrorKind::NotFramed));
    }
    let (framing, chunks) = scan(&input, |s, e| Bytes::copy_from_slice(&input[s..e]));
    let mut w = 0usize;
    for (s, n) in chunks {
        input.copy_within(s..s + n, w);
        w += n;
    }
    input.truncate(w);
    Ok((framing, Bytes::from(input)))
}

/// The record layout of framed input and the (start, length) of each
/// TransferBuffer payload; `payload` makes the other records' payloads.
fn scan(
    input: &[u8],
    mut payload: impl FnMut(usize, usize) -> Bytes,
) -> (Framing, Vec<(usize, usize)>) {
    let mut framing = Framing::default();
    let mut chunks: Vec<(usize, usize)> = Vec::new();
    let mut pos = 0usize;
    while pos < input.len() {
        let left = input.len() - pos;
        if left < 8 {
            framing.truncated = Some((8 - left) as u64);
            break;
        }
        let op = u32::from_le_bytes(input[pos..pos + 4].try_into().expect("4 bytes"));
        let len = u32::from_le_bytes(input[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let start = pos + 8;
        let avail = input.len() - start;
        let (take, short) = if (len as usize) > avail {
            (avail, Some((len as usize - avail) as u64))
        } else {
            (len as usize, None)
        };
        if op == opcode::TRANSFER_BUFFER {
            if len == 0 {
                framing.warnings.push(Warning {
                    offset: pos as u64,
                    kind: WarningKind::EmptyTransferBuffer,
                });
            }
            framing.frames.push(Frame::Chunk(take as u32));
            chunks.push((start, take));
        } else {
            framing.frames.push(Frame::Record(Record {
                opcode: op,
                payload: payload(start, start + take),
            }));
        }
        pos = start + take;
        if short.is_some() {
            framing.truncated = short;
            break;
        }
    }
    (framing, chunks)
}

impl Framing {
    /// The framed bytes of `fts` under this layout as a list of parts that
    /// borrow `fts` (record headers and records are small new buffers, chunk
    /// payloads are zero-copy slices): what [`Framing::write`] would produce,
    /// without assembling it.
    pub fn parts(&self, fts: &Bytes) -> Vec<Bytes> {
        let layout = self.layout_for(fts.len());
        let mut out = Vec::with_capacity(layout.len() * 2);
        let mut off = 0usize;
        for f in layout {
            match f {
                Frame::Record(r) => {
                    let mut h = Vec::with_capacity(8 + r.payload.len());
                    h.extend_from_slice(&r.opcode.to_le_bytes());
                    h.extend_from_slice(&(r.payload.len() as u32).to_le_bytes());
                    h.extend_from_slice(&r.payload);
                    out.push(Bytes::from(h));
                }
                Frame::Chunk(n) => {
                    let n = (n as usize).min(fts.len() - off);
                    let mut h = Vec::with_capacity(8);
                    h.extend_from_slice(&opcode::TRANSFER_BUFFER.to_le_bytes());
                    h.extend_from_slice(&(n as u32).to_le_bytes());
                    out.push(Bytes::from(h));
                    out.push(fts.slice(off..off + n));
                    off += n;
                }
            }
        }
        out
    }
}

fn write_record(out: &mut Vec<u8>, op: u32, payload: &[u8]) {
    put_record(out, op, payload).expect("writing to a Vec cannot fail");
}

fn write_chunks(out: &mut Vec<u8>, fts: &[u8], chunk: usize) {
    for c in fts.chunks(chunk.clamp(1, u32::MAX as usize)) {
        write_record(out, opcode::TRANSFER_BUFFER, c);
    }
}

/// Frames `fts` as Exchange does: Config, IsInterfaceOk, TellPartnerVersion,
/// then TransferBuffer records of at most `chunk` bytes (use [`DEFAULT_CHUNK`];
/// 0 is treated as 1). Never emits an empty TransferBuffer: an empty FTS gets
/// the header records only.
pub fn write_frames(header: &FrameHeader, fts: &[u8], chunk: usize) -> Vec<u8> {
    let chunk = chunk.clamp(1, u32::MAX as usize);
    let mut out =
        Vec::with_capacity(8 + 8 + 8 + 24 + 8 + 6 + 8 * fts.len().div_ceil(chunk) + fts.len());
    for r in header.records() {
        write_record(&mut out, r.opcode, &r.payload);
    }
    write_chunks(&mut out, fts, chunk);
    out
}
