#![allow(dead_code)]

use bytes::Bytes;
use fts::ast::{Guid, NamedProp, PropName};

/// Hex with any whitespace.
pub fn hex(s: &str) -> Bytes {
    let s: String = s.split_whitespace().collect();
    Bytes::from(hex::decode(s).expect("valid hex"))
}

/// UTF-16LE bytes of `s`, with the terminator when `nul`.
pub fn utf16(s: &str, nul: bool) -> Vec<u8> {
    let mut v: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    if nul {
        v.extend_from_slice(&[0, 0]);
    }
    v
}

pub const PS_INTERNET_HEADERS: Guid =
    Guid::from_fields(0x0002_0386, 0, 0, [0xC0, 0, 0, 0, 0, 0, 0, 0x46]);
pub const PSETID_COMMON: Guid =
    Guid::from_fields(0x0006_2008, 0, 0, [0xC0, 0, 0, 0, 0, 0, 0, 0x46]);

pub fn named_id(guid: Guid, lid: u32) -> NamedProp {
    NamedProp {
        guid,
        name: PropName::Id(lid),
    }
}

pub fn named_str(guid: Guid, name: &str) -> NamedProp {
    NamedProp {
        guid,
        name: PropName::Name(name.encode_utf16().collect()),
    }
}

/// The §6 worked example: the 211-byte FTS.
pub const WORKED_FTS: &str = "
1F001A00 12000000 49005000 4D002E00 4E006F00 74006500 0000
1F003700 06000000 48006900 0000
0B002900 0000
1F000080 86030200 00000000 C0000000 00000046 01 78002D00 66006F00 6F000000 08000000 62006100 72000000
03000180 08200600 00000000 C0000000 00000046 00 10850000 00000000
03001640 0D00120E
03000340
03000030 00000000
0300150C 01000000
1F000130 08000000 42006F00 62000000
03000440
03001640 0D00130E
03000040
0300210E 00000000
03000537 01000000
02010137 03000000 414243
03000E40";

/// The §6 header records (version 14.1.164.0) and the TransferBuffer header.
pub const WORKED_HEADER: &str = "
01000000 08000000 00000000 01000000
03000000 18000000 01000000 07030200 00000000 C0000000 00000046 00240080
04000000 06000000 010EA480 0000
02000000 D3000000";

pub fn worked_fts() -> Bytes {
    hex(WORKED_FTS)
}

pub fn worked_framed() -> Bytes {
    let mut v = hex(WORKED_HEADER).to_vec();
    v.extend_from_slice(&worked_fts());
    Bytes::from(v)
}

/// The 62 bytes of Config + IsInterfaceOk + TellPartnerVersion(14.1.164.0).
pub fn header_records() -> Vec<u8> {
    hex(WORKED_HEADER)[..62].to_vec()
}

/// Appends a record.
pub fn record(out: &mut Vec<u8>, op: u32, payload: &[u8]) {
    out.extend_from_slice(&op.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
}
