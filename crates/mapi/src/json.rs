//! A lossless JSON dump of a decoded stream (`graphbox fts decode`).
//!
//! [`to_json`] writes every frame record, the root, every property (raw tag,
//! raw type word, canonical name, named-property definition, a human-readable
//! value and the exact raw bytes), recipients, attachments, nested embedded
//! messages, the FXDelProp metas, unknown elements and the decoder's
//! warnings. [`from_json`] reads it back: `from_json(&to_json(d)) == Ok(d)`,
//! so re-encoding the result reproduces the original bytes.
//!
//! # Shape
//! ```text
//! { "framing": null | { "frames": [Frame], "truncated": null | n, "warnings": [Warning] },
//!   "root": Root, "warnings": [Warning] }
//! Frame   = { "opcode": 1, "name": "Config", "payload": "<hex>" }      (any non-TransferBuffer record)
//!         | { "opcode": 2, "name": "TransferBuffer", "size": 31680 }  (chunk size only)
//! Root    = { "kind": "messageContent", "content": Content }
//!         | { "kind": "message", "fai": false, "content": Content }
//!         | { "kind": "attachmentContent", "attachment": Attachment }
//!         | { "kind": "messageList", "messages": [{ "warning": Prop|null, "fai": bool, "content": Content }] }
//!         | { "kind": "elements", "elements": [{ "marker": "0x40030003", "name": "StartRecip" } | { "prop": Prop }] }
//! Content = { "props": [Prop], "recip_delprop": Prop|null, "recipients": [{ "props": [Prop] }],
//!             "attach_delprop": Prop|null, "attachments": [Attachment] }
//! Attachment = { "props": [Prop], "embedded": Content|null }
//! Prop    = { "tag": "0x003784B0", "type": "0x84B0", "name": "PidTagSubject",
//!             "named": { "guid", "set", "kind": "id", "id": "0x8208" }
//!                    | { "guid", "set", "kind": "name", "name": "Keywords", "name_utf16_hex"? },
//!             "value": …, "raw": "<hex>" | "raw_base64": "…"          (single-valued)
//!                         "raw": ["<hex>", …] | "raw_base64": ["…", …] (multi-valued) }
//! ```
//! The raw bytes are authoritative: `value` (and `name`, `set`, `type`) are
//! for people and are not read back, except that `type` must agree with the
//! low 16 bits of `tag`. Raw bytes are hex up to 1 KiB per value, base64
//! beyond. A named-property name that is not valid UTF-16 (an unpaired
//! surrogate) also gets `name_utf16_hex`, the exact UTF-16LE units, which
//! then wins over `name`.

use crate::filetime::FileTime;
use crate::named;
use crate::tags;
use base64::Engine;
use bytes::Bytes;
use fts::frame::{Frame, Framing, Record, opcode};
use fts::{
    Attachment, Decoded, Element, Guid, Message, MessageContent, NamedProp, Prop, PropData,
    PropName, Recipient, Root, Value, Warning, WarningKind,
};
use serde_json::{Map, Value as J, json};

/// Values up to this many bytes are written as hex, longer ones as base64.
const HEX_MAX: usize = 1024;
/// Binary values up to this many bytes also get a hex `value`.
const BINARY_VALUE_MAX: usize = 64;

/// A JSON document that does not describe a decoded stream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at {path}: {message}")]
pub struct JsonError {
    /// Where, e.g. `$.root.content.props[3].raw`.
    pub path: String,
    pub message: String,
}

fn b64() -> &'static base64::engine::GeneralPurpose {
    &base64::engine::general_purpose::STANDARD
}

fn opcode_name(op: u32) -> &'static str {
    match op {
        opcode::NONE => "None",
        opcode::CONFIG => "Config",
        opcode::TRANSFER_BUFFER => "TransferBuffer",
        opcode::IS_INTERFACE_OK => "IsInterfaceOk",
        opcode::TELL_PARTNER_VERSION => "TellPartnerVersion",
        11 => "StartMdbEventsImport",
        12 => "FinishMdbEventsImport",
        13 => "AddMdbEvents",
        14 => "SetWatermarks",
        15 => "SetReceiveFolder",
        16 => "SetPerUser",
        17 => "SetProps",
        _ => "Unknown",
    }
}

fn warning_kind_name(k: &WarningKind) -> &'static str {
    match k {
        WarningKind::EmptyTransferBuffer => "EmptyTransferBuffer",
        WarningKind::MissingAttachNumber => "MissingAttachNumber",
    }
}

fn warning_kind_from(s: &str) -> Option<WarningKind> {
    match s {
        "EmptyTransferBuffer" => Some(WarningKind::EmptyTransferBuffer),
        "MissingAttachNumber" => Some(WarningKind::MissingAttachNumber),
        _ => None,
    }
}

// ------------------------------------------------------------------ to_json

/// The JSON dump of a decoded stream (see the module docs for the shape).
pub fn to_json(d: &Decoded) -> J {
    json!({
        "framing": d.framing.as_ref().map(framing_json),
        "root": root_json(&d.root),
        "warnings": warnings_json(&d.warnings),
    })
}

/// The JSON of a root alone (same shape as the `root` member of [`to_json`]).
pub fn root_to_json(root: &Root) -> J {
    root_json(root)
}

fn warnings_json(ws: &[Warning]) -> J {
    J::Array(
        ws.iter()
            .map(|w| json!({"offset": w.offset, "kind": warning_kind_name(&w.kind)}))
            .collect(),
    )
}

fn framing_json(f: &Framing) -> J {
    let frames: Vec<J> = f
        .frames
        .iter()
        .map(|fr| match fr {
            Frame::Chunk(n) => json!({
                "opcode": opcode::TRANSFER_BUFFER,
                "name": "TransferBuffer",
                "size": n,
            }),
            Frame::Record(r) => {
                let mut m = Map::new();
                m.insert("opcode".into(), json!(r.opcode));
                m.insert("name".into(), json!(opcode_name(r.opcode)));
                m.insert("payload".into(), json!(hex::encode(&r.payload)));
                if let Some(v) = r.partner_version() {
                    m.insert("version".into(), json!(v.to_string()));
                }
                J::Object(m)
            }
        })
        .collect();
    json!({
        "frames": frames,
        "truncated": f.truncated,
        "warnings": warnings_json(&f.warnings),
    })
}

fn root_json(root: &Root) -> J {
    match root {
        Root::MessageContent(mc) => json!({"kind": "messageContent", "content": content_json(mc)}),
        Root::Message(m) => json!({
            "kind": "message",
            "fai": m.fai,
            "content": content_json(&m.content),
        }),
        Root::AttachmentContent(a) => json!({
            "kind": "attachmentContent",
            "attachment": attachment_json(a, None),
        }),
        Root::MessageList(list) => json!({
            "kind": "messageList",
            "messages": list.iter().map(|(w, m)| json!({
                "warning": w.as_ref().map(|p| prop_json(p, None)),
                "fai": m.fai,
                "content": content_json(&m.content),
            })).collect::<Vec<_>>(),
        }),
        Root::Elements(els) => json!({
            "kind": "elements",
            "elements": els.iter().map(|e| match e {
                Element::Marker(w) => json!({
                    "marker": format!("0x{w:08X}"),
                    "name": tags::marker_name(*w),
                }),
                Element::Prop(p) => json!({"prop": prop_json(p, None)}),
            }).collect::<Vec<_>>(),
        }),
    }
}

/// The code page for PtypString8 values of a message's props.
fn string8_codepage(props: &[Prop]) -> Option<u16> {
    let find = |pid: u16| {
        props
            .iter()
            .find(|p| p.id() == pid && p.named.is_none())
            .and_then(|p| p.as_i32())
            .and_then(|v| u16::try_from(v).ok())
    };
    find(tags::id::MESSAGE_CODEPAGE).or_else(|| find(tags::id::INTERNET_CODEPAGE))
}

fn content_json(mc: &MessageContent) -> J {
    let cp = string8_codepage(&mc.props);
    json!({
        "props": mc.props.iter().map(|p| prop_json(p, cp)).collect::<Vec<_>>(),
        "recip_delprop": mc.recip_delprop.as_ref().map(|p| prop_json(p, cp)),
        "recipients": mc.recipients.iter().map(|r| json!({
            "props": r.props.iter().map(|p| prop_json(p, cp)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "attach_delprop": mc.attach_delprop.as_ref().map(|p| prop_json(p, cp)),
        "attachments": mc.attachments.iter().map(|a| attachment_json(a, cp)).collect::<Vec<_>>(),
    })
}

fn attachment_json(a: &Attachment, cp: Option<u16>) -> J {
    json!({
        "props": a.props.iter().map(|p| prop_json(p, cp)).collect::<Vec<_>>(),
        "embedded": a.embedded.as_deref().map(content_json),
    })
}

fn named_json(n: &NamedProp) -> J {
    let mut m = Map::new();
    m.insert("guid".into(), json!(n.guid.to_string()));
    if let Some(set) = named::set_name(&n.guid) {
        m.insert("set".into(), json!(set));
    }
    match &n.name {
        PropName::Id(id) => {
            m.insert("kind".into(), json!("id"));
            m.insert("id".into(), json!(format!("0x{id:04X}")));
        }
        PropName::Name(units) => {
            m.insert("kind".into(), json!("name"));
            m.insert("name".into(), json!(String::from_utf16_lossy(units)));
            if String::from_utf16(units).is_err() {
                let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_le_bytes()).collect();
                m.insert("name_utf16_hex".into(), json!(hex::encode(bytes)));
            }
        }
    }
    J::Object(m)
}

fn raw_one(b: &Bytes) -> (bool, J) {
    if b.len() <= HEX_MAX {
        (false, json!(hex::encode(b)))
    } else {
        (true, json!(b64().encode(b)))
    }
}

fn value_json(v: &Value) -> J {
    match v {
        Value::I16(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::I64(x) | Value::Currency(x) => json!(x),
        Value::F32(x) => float_json(*x as f64),
        Value::F64(x) | Value::AppTime(x) => float_json(*x),
        Value::ErrorCode(x) => json!(format!("0x{x:08X}")),
        Value::Bool(b) => json!(b),
        Value::Time(t) => json!(FileTime(*t).to_iso8601()),
        Value::Guid(g) => json!(g.to_string()),
        Value::String(s) => json!(s),
        Value::Binary(b) | Value::ServerId(b) | Value::Object(b) => {
            if b.len() <= BINARY_VALUE_MAX {
                json!(hex::encode(b))
            } else {
                json!(format!("<{} bytes>", b.len()))
            }
        }
        Value::Multi(items) => J::Array(items.iter().map(value_json).collect()),
    }
}

fn float_json(x: f64) -> J {
    serde_json::Number::from_f64(x).map_or_else(|| json!(x.to_string()), J::Number)
}

fn prop_json(p: &Prop, cp: Option<u16>) -> J {
    let mut m = Map::new();
    m.insert("tag".into(), json!(format!("0x{:08X}", p.tag)));
    m.insert("type".into(), json!(format!("0x{:04X}", p.type_word())));
    let name = match &p.named {
        Some(n) => named::lookup(n).map(|d| d.canonical),
        None => tags::name_of(p.tag),
    };
    if let Some(name) = name {
        m.insert("name".into(), json!(name));
    }
    if let Some(n) = &p.named {
        m.insert("named".into(), named_json(n));
    }
    match p.value_cp(cp) {
        Ok(v) => {
            let v = if p.tag == tags::meta::FX_DEL_PROP {
                match v {
                    Value::I32(t) => {
                        let t = t as u32;
                        json!(match tags::name_of(t) {
                            Some(n) => format!("0x{t:08X} {n}"),
                            None => format!("0x{t:08X}"),
                        })
                    }
                    v => value_json(&v),
                }
            } else {
                value_json(&v)
            };
            m.insert("value".into(), v);
        }
        Err(e) => {
            m.insert("value".into(), J::Null);
            m.insert("value_error".into(), json!(e.to_string()));
        }
    }
    match &p.data {
        PropData::Single(b) => {
            let (is_b64, raw) = raw_one(b);
            m.insert(if is_b64 { "raw_base64" } else { "raw" }.into(), raw);
        }
        PropData::Multi(items) => {
            let big = items.iter().any(|b| b.len() > HEX_MAX);
            let raw: Vec<J> = items
                .iter()
                .map(|b| {
                    if big {
                        json!(b64().encode(b))
                    } else {
                        json!(hex::encode(b))
                    }
                })
                .collect();
            m.insert(if big { "raw_base64" } else { "raw" }.into(), J::Array(raw));
        }
    }
    J::Object(m)
}

// ---------------------------------------------------------------- from_json

struct At(String);

impl At {
    fn err(&self, message: impl Into<String>) -> JsonError {
        JsonError {
            path: self.0.clone(),
            message: message.into(),
        }
    }
    fn key(&self, k: &str) -> At {
        At(format!("{}.{k}", self.0))
    }
    fn idx(&self, i: usize) -> At {
        At(format!("{}[{i}]", self.0))
    }
}

fn obj<'a>(v: &'a J, at: &At) -> Result<&'a Map<String, J>, JsonError> {
    v.as_object()
        .ok_or_else(|| at.err(format!("expected an object, found {}", kind_of(v))))
}

fn kind_of(v: &J) -> &'static str {
    match v {
        J::Null => "null",
        J::Bool(_) => "a boolean",
        J::Number(_) => "a number",
        J::String(_) => "a string",
        J::Array(_) => "an array",
        J::Object(_) => "an object",
    }
}

fn get<'a>(m: &'a Map<String, J>, k: &str, at: &At) -> Result<&'a J, JsonError> {
    m.get(k)
        .ok_or_else(|| at.err(format!("missing field \"{k}\"")))
}

fn arr<'a>(v: &'a J, at: &At) -> Result<&'a Vec<J>, JsonError> {
    v.as_array()
        .ok_or_else(|| at.err(format!("expected an array, found {}", kind_of(v))))
}

fn string<'a>(v: &'a J, at: &At) -> Result<&'a str, JsonError> {
    v.as_str()
        .ok_or_else(|| at.err(format!("expected a string, found {}", kind_of(v))))
}

fn u64_of(v: &J, at: &At) -> Result<u64, JsonError> {
    v.as_u64()
        .ok_or_else(|| at.err(format!("expected a non-negative integer, found {v}")))
}

fn u32_of(v: &J, at: &At) -> Result<u32, JsonError> {
    u32::try_from(u64_of(v, at)?).map_err(|_| at.err(format!("{v} does not fit in 32 bits")))
}

/// A u32 given as "0x…" hex text or as a JSON number.
fn hex_u32(v: &J, at: &At) -> Result<u32, JsonError> {
    if let Some(s) = v.as_str() {
        let h = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .ok_or_else(|| at.err(format!("expected hex like \"0x0037001F\", found {s:?}")))?;
        return u32::from_str_radix(h, 16)
            .map_err(|_| at.err(format!("{s:?} is not a 32-bit hex number")));
    }
    u32_of(v, at)
}

fn bool_of(v: &J, at: &At) -> Result<bool, JsonError> {
    v.as_bool()
        .ok_or_else(|| at.err(format!("expected true or false, found {v}")))
}

fn hex_bytes(v: &J, at: &At) -> Result<Bytes, JsonError> {
    let s = string(v, at)?;
    hex::decode(s)
        .map(Bytes::from)
        .map_err(|e| at.err(format!("bad hex: {e}")))
}

fn b64_bytes(v: &J, at: &At) -> Result<Bytes, JsonError> {
    let s = string(v, at)?;
    b64()
        .decode(s)
        .map(Bytes::from)
        .map_err(|e| at.err(format!("bad base64: {e}")))
}

fn opt<'a>(m: &'a Map<String, J>, k: &str) -> Option<&'a J> {
    m.get(k).filter(|v| !v.is_null())
}

/// Reads a dump written by [`to_json`] back into the decoded stream.
pub fn from_json(v: &J) -> Result<Decoded, JsonError> {
    let at = At("$".into());
    let m = obj(v, &at)?;
    let framing = match opt(m, "framing") {
        None => None,
        Some(f) => Some(framing_from(f, &at.key("framing"))?),
    };
    let root = root_from(get(m, "root", &at)?, &at.key("root"))?;
    let warnings = match opt(m, "warnings") {
        None => Vec::new(),
        Some(w) => warnings_from(w, &at.key("warnings"))?,
    };
    Ok(Decoded {
        framing,
        root,
        warnings,
    })
}

/// Reads a root written by [`root_to_json`].
pub fn root_from_json(v: &J) -> Result<Root, JsonError> {
    root_from(v, &At("$".into()))
}

fn warnings_from(v: &J, at: &At) -> Result<Vec<Warning>, JsonError> {
    arr(v, at)?
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let at = at.idx(i);
            let m = obj(w, &at)?;
            let offset = u64_of(get(m, "offset", &at)?, &at.key("offset"))?;
            let k = string(get(m, "kind", &at)?, &at.key("kind"))?;
            let kind = warning_kind_from(k).ok_or_else(|| {
                at.key("kind").err(format!(
                    "unknown warning kind {k:?}: expected EmptyTransferBuffer or MissingAttachNumber"
                ))
            })?;
            Ok(Warning { offset, kind })
        })
        .collect()
}

fn framing_from(v: &J, at: &At) -> Result<Framing, JsonError> {
    let m = obj(v, at)?;
    let fat = at.key("frames");
    let frames = arr(get(m, "frames", at)?, &fat)?
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let at = fat.idx(i);
            let fm = obj(f, &at)?;
            let op = u32_of(get(fm, "opcode", &at)?, &at.key("opcode"))?;
            if op == opcode::TRANSFER_BUFFER {
                Ok(Frame::Chunk(u32_of(
                    get(fm, "size", &at)?,
                    &at.key("size"),
                )?))
            } else {
                Ok(Frame::Record(Record {
                    opcode: op,
                    payload: hex_bytes(get(fm, "payload", &at)?, &at.key("payload"))?,
                }))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let truncated = match opt(m, "truncated") {
        None => None,
        Some(t) => Some(u64_of(t, &at.key("truncated"))?),
    };
    let warnings = match opt(m, "warnings") {
        None => Vec::new(),
        Some(w) => warnings_from(w, &at.key("warnings"))?,
    };
    Ok(Framing {
        frames,
        warnings,
        truncated,
    })
}

fn root_from(v: &J, at: &At) -> Result<Root, JsonError> {
    let m = obj(v, at)?;
    let kind = string(get(m, "kind", at)?, &at.key("kind"))?;
    Ok(match kind {
        "messageContent" => {
            Root::MessageContent(content_from(get(m, "content", at)?, &at.key("content"))?)
        }
        "message" => Root::Message(Message {
            fai: bool_of(get(m, "fai", at)?, &at.key("fai"))?,
            content: content_from(get(m, "content", at)?, &at.key("content"))?,
        }),
        "attachmentContent" => Root::AttachmentContent(attachment_from(
            get(m, "attachment", at)?,
            &at.key("attachment"),
        )?),
        "messageList" => {
            let lat = at.key("messages");
            Root::MessageList(
                arr(get(m, "messages", at)?, &lat)?
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let at = lat.idx(i);
                        let em = obj(e, &at)?;
                        let warning = match opt(em, "warning") {
                            None => None,
                            Some(w) => Some(prop_from(w, &at.key("warning"))?),
                        };
                        Ok((
                            warning,
                            Message {
                                fai: bool_of(get(em, "fai", &at)?, &at.key("fai"))?,
                                content: content_from(
                                    get(em, "content", &at)?,
                                    &at.key("content"),
                                )?,
                            },
                        ))
                    })
                    .collect::<Result<_, JsonError>>()?,
            )
        }
        "elements" => {
            let eat = at.key("elements");
            Root::Elements(
                arr(get(m, "elements", at)?, &eat)?
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let at = eat.idx(i);
                        let em = obj(e, &at)?;
                        if let Some(w) = em.get("marker") {
                            Ok(Element::Marker(hex_u32(w, &at.key("marker"))?))
                        } else if let Some(p) = em.get("prop") {
                            Ok(Element::Prop(prop_from(p, &at.key("prop"))?))
                        } else {
                            Err(at.err("expected a \"marker\" or a \"prop\" member"))
                        }
                    })
                    .collect::<Result<_, JsonError>>()?,
            )
        }
        other => {
            return Err(at.key("kind").err(format!(
                "unknown root kind {other:?}: expected messageContent, message, attachmentContent, messageList or elements"
            )));
        }
    })
}

fn props_from(v: &J, at: &At) -> Result<Vec<Prop>, JsonError> {
    arr(v, at)?
        .iter()
        .enumerate()
        .map(|(i, p)| prop_from(p, &at.idx(i)))
        .collect()
}

fn opt_prop(m: &Map<String, J>, k: &str, at: &At) -> Result<Option<Prop>, JsonError> {
    match opt(m, k) {
        None => Ok(None),
        Some(p) => prop_from(p, &at.key(k)).map(Some),
    }
}

fn content_from(v: &J, at: &At) -> Result<MessageContent, JsonError> {
    let m = obj(v, at)?;
    let props = props_from(get(m, "props", at)?, &at.key("props"))?;
    let recip_delprop = opt_prop(m, "recip_delprop", at)?;
    let rat = at.key("recipients");
    let recipients = arr(get(m, "recipients", at)?, &rat)?
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let at = rat.idx(i);
            let rm = obj(r, &at)?;
            Ok(Recipient {
                props: props_from(get(rm, "props", &at)?, &at.key("props"))?,
            })
        })
        .collect::<Result<_, JsonError>>()?;
    let attach_delprop = opt_prop(m, "attach_delprop", at)?;
    let aat = at.key("attachments");
    let attachments = arr(get(m, "attachments", at)?, &aat)?
        .iter()
        .enumerate()
        .map(|(i, a)| attachment_from(a, &aat.idx(i)))
        .collect::<Result<_, JsonError>>()?;
    Ok(MessageContent {
        props,
        recip_delprop,
        recipients,
        attach_delprop,
        attachments,
    })
}

fn attachment_from(v: &J, at: &At) -> Result<Attachment, JsonError> {
    let m = obj(v, at)?;
    let props = props_from(get(m, "props", at)?, &at.key("props"))?;
    let embedded = match opt(m, "embedded") {
        None => None,
        Some(e) => Some(Box::new(content_from(e, &at.key("embedded"))?)),
    };
    Ok(Attachment { props, embedded })
}

fn named_from(v: &J, at: &At) -> Result<NamedProp, JsonError> {
    let m = obj(v, at)?;
    let gs = string(get(m, "guid", at)?, &at.key("guid"))?;
    let guid = Guid::parse(gs).ok_or_else(|| {
        at.key("guid").err(format!(
            "bad GUID {gs:?}: expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
        ))
    })?;
    let kind = string(get(m, "kind", at)?, &at.key("kind"))?;
    let name = match kind {
        "id" => PropName::Id(hex_u32(get(m, "id", at)?, &at.key("id"))?),
        "name" => {
            if let Some(h) = m.get("name_utf16_hex") {
                let hat = at.key("name_utf16_hex");
                let bytes = hex_bytes(h, &hat)?;
                if bytes.len() % 2 != 0 {
                    return Err(hat.err("UTF-16 hex must have an even number of bytes"));
                }
                PropName::Name(
                    bytes
                        .chunks(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]))
                        .collect(),
                )
            } else {
                PropName::Name(
                    string(get(m, "name", at)?, &at.key("name"))?
                        .encode_utf16()
                        .collect(),
                )
            }
        }
        other => {
            return Err(at.key("kind").err(format!(
                "unknown named kind {other:?}: expected \"id\" or \"name\""
            )));
        }
    };
    Ok(NamedProp { guid, name })
}

fn prop_from(v: &J, at: &At) -> Result<Prop, JsonError> {
    let m = obj(v, at)?;
    let tag = hex_u32(get(m, "tag", at)?, &at.key("tag"))?;
    if let Some(t) = m.get("type") {
        let tat = at.key("type");
        let ty = hex_u32(t, &tat)?;
        if ty != (tag & 0xFFFF) {
            return Err(tat.err(format!(
                "type 0x{ty:04X} does not match the low 16 bits of tag 0x{tag:08X}"
            )));
        }
    }
    let named = match opt(m, "named") {
        None => None,
        Some(n) => Some(named_from(n, &at.key("named"))?),
    };
    let (raw, is_b64, rat) = if let Some(r) = m.get("raw") {
        (r, false, at.key("raw"))
    } else if let Some(r) = m.get("raw_base64") {
        (r, true, at.key("raw_base64"))
    } else {
        return Err(
            at.err("missing field \"raw\" (or \"raw_base64\"): the value bytes are required")
        );
    };
    let one = |v: &J, at: &At| {
        if is_b64 {
            b64_bytes(v, at)
        } else {
            hex_bytes(v, at)
        }
    };
    let data = match raw {
        J::Array(items) => PropData::Multi(
            items
                .iter()
                .enumerate()
                .map(|(i, b)| one(b, &rat.idx(i)))
                .collect::<Result<_, _>>()?,
        ),
        other => PropData::Single(one(other, &rat)?),
    };
    Ok(Prop { tag, named, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_path() {
        let bad = json!({"framing": null, "root": {"kind": "messageContent", "content": {
            "props": [{"tag": "0x0037001F", "raw": "zz"}],
            "recipients": [], "attachments": []}}});
        let e = from_json(&bad).unwrap_err();
        assert_eq!(e.path, "$.root.content.props[0].raw");
        assert!(e.message.contains("bad hex"), "{e}");

        let bad = json!({"root": {"kind": "folder"}});
        let e = from_json(&bad).unwrap_err();
        assert_eq!(e.path, "$.root.kind");

        let bad = json!({"root": {"kind": "messageContent", "content": {
            "props": [{"tag": "0x0037001F", "type": "0x84B0", "raw": "0000"}],
            "recipients": [], "attachments": []}}});
        let e = from_json(&bad).unwrap_err();
        assert_eq!(e.path, "$.root.content.props[0].type");

        let bad = json!({"root": {"kind": "messageContent", "content": {
            "props": [], "recipients": [{"props": [{"tag": 5}]}], "attachments": []}}});
        let e = from_json(&bad).unwrap_err();
        assert_eq!(e.path, "$.root.content.recipients[0].props[0]");
        assert!(e.message.contains("raw"));

        let bad = json!({"root": {"kind": "messageContent", "content": {
            "props": [{"tag": "0x80010003", "named": {"guid": "nope", "kind": "id", "id": 1}, "raw": "00000000"}],
            "recipients": [], "attachments": []}}});
        let e = from_json(&bad).unwrap_err();
        assert_eq!(e.path, "$.root.content.props[0].named.guid");

        let e = from_json(&json!([])).unwrap_err();
        assert_eq!(e.path, "$");
    }
}
