//! Builds realistic items as an FTS AST in Exchange's layout.
//!
//! Layout rules (as observed in Exchange exports, fts-format.md §4 and §7):
//! - the root is a bare `messageContent`;
//! - message properties are sorted by property id ascending, named
//!   properties (local ids >= 0x8000) last;
//! - both MetaTagFXDelProp elements (recipients, attachments) are present on
//!   the top-level message even when the lists are empty. Inside an
//!   embedded message the recipients' FXDelProp is always written and the
//!   attachments' one only when the embedded message has attachments (the
//!   one public real export with an embedded message ends
//!   `EndToRecip EndEmbed EndAttach`);
//! - each recipient starts with PidTagRowid, then its other properties by id;
//! - each attachment starts with PidTagAttachNumber then PidTagAttachSize,
//!   then its other properties by id;
//! - every string is in the code-page form 0x84B0 (MV strings 0x94B0);
//!   booleans are 2 bytes.
//!
//! Named properties get stream-local ids from 0x8000 upward in order of first
//! use, shared by the whole item (embedded messages included).
//!
//! Everything is deterministic: no clock, no randomness. Timestamps are
//! inputs; PidTagMessageSize and PidTagAttachSize are the encoded sizes of
//! the content they describe.

use crate::filetime::FileTime;
use crate::named::{self, NamedDef};
use crate::tags::{self, attach_method, id, message_flags, recipient_type};
use crate::view::{Importance, RecipientKind, Sensitivity};
use bytes::Bytes;
use fts::value::build;
use fts::{Attachment, MessageContent, NamedProp, Prop, Recipient};
use std::collections::{BTreeMap, HashMap};

/// One mailbox party with an SMTP address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    pub name: String,
    pub email: String,
}

impl Mailbox {
    pub fn new(name: impl Into<String>, email: impl Into<String>) -> Mailbox {
        Mailbox {
            name: name.into(),
            email: email.into(),
        }
    }

    /// A one-off EntryID ([MS-OXCDATA] 2.2.5.1) for this SMTP address, Unicode form.
    pub fn one_off_entry_id(&self) -> Vec<u8> {
        const MUIDOOP: [u8; 16] = [
            0x81, 0x2B, 0x1F, 0xA4, 0xBE, 0xA3, 0x10, 0x19, 0x9D, 0x6E, 0x00, 0xDD, 0x01, 0x0F,
            0x54, 0x02,
        ];
        let mut v = vec![0, 0, 0, 0];
        v.extend_from_slice(&MUIDOOP);
        // version 0, flags: MAPI_ONE_OFF_UNICODE | MAPI_ONE_OFF_NO_RICH_INFO | OOP_DONT_LOOKUP
        v.extend_from_slice(&[0x00, 0x00, 0x01, 0x90]);
        for s in [self.name.as_str(), "SMTP", self.email.as_str()] {
            v.extend_from_slice(&build::utf16z(s));
        }
        v
    }

    /// PidTagSearchKey form: `SMTP:<UPPER-CASE ADDRESS>` with a NUL.
    pub fn search_key(&self) -> Vec<u8> {
        let mut v = format!("SMTP:{}", self.email.to_ascii_uppercase()).into_bytes();
        v.push(0);
        v
    }
}

/// An attachment to add to a message.
#[derive(Clone, Debug, PartialEq)]
pub enum AttachmentSpec {
    /// afByValue: a file.
    File {
        filename: String,
        mime_type: String,
        data: Bytes,
        /// Content-ID (without `<>`), for inline parts referenced from HTML.
        content_id: Option<String>,
        /// Rendered in the body (attFlags 4, hidden).
        inline: bool,
    },
    /// afEmbeddedMessage: a message inside the message.
    Embedded(Box<MessageBuilder>),
}

#[derive(Clone, Debug, PartialEq)]
struct RecipSpec {
    kind: RecipientKind,
    mailbox: Mailbox,
    /// PidTagRecipientFlags (recipSendable 0x1, recipOrganizer 0x2).
    flags: i32,
}

/// A property added by the caller; named ones get their local id at build time.
#[derive(Clone, Debug, PartialEq)]
struct Extra(Prop);

/// Builds one message (mail, appointment, contact, task, note, …).
#[derive(Clone, Debug, PartialEq)]
pub struct MessageBuilder {
    class: String,
    subject: Option<String>,
    from: Option<Mailbox>,
    sender: Option<Mailbox>,
    recipients: Vec<RecipSpec>,
    body_text: Option<String>,
    body_html: Option<String>,
    created: Option<FileTime>,
    modified: Option<FileTime>,
    delivered: Option<FileTime>,
    submitted: Option<FileTime>,
    importance: Importance,
    sensitivity: Sensitivity,
    read: bool,
    draft: bool,
    extra_flags: u32,
    read_receipt: bool,
    categories: Vec<String>,
    message_id: Option<String>,
    in_reply_to: Option<String>,
    references: Option<String>,
    headers: Vec<(String, String)>,
    attachments: Vec<AttachmentSpec>,
    extra: Vec<Extra>,
    preview: bool,
}

impl Default for MessageBuilder {
    fn default() -> Self {
        MessageBuilder::new("IPM.Note")
    }
}

/// Splits a "RE: " / "FW: " style prefix off a subject ([MS-OXCMAIL] rules:
/// up to 3 characters, then ": ").
fn split_subject(subject: &str) -> (Option<&str>, &str) {
    if let Some(pos) = subject.find(": ") {
        let prefix = &subject[..pos];
        if (1..=3).contains(&prefix.chars().count()) && prefix.chars().all(|c| c.is_alphabetic()) {
            return (Some(&subject[..pos + 2]), &subject[pos + 2..]);
        }
    }
    (None, subject)
}

/// Plain text preview of an HTML body: tags dropped, whitespace collapsed.
fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn preview_of(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let joined = words.join(" ");
    joined.chars().take(255).collect()
}

/// 8.3 short name for PidTagAttachFilename.
fn short_name(long: &str) -> String {
    let (stem, ext) = match long.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, Some(e)),
        _ => (long, None),
    };
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    let stem_c = clean(stem);
    let ext_c = ext.map(clean).unwrap_or_default();
    let fits = stem_c.len() == stem.len()
        && stem.len() <= 8
        && ext.is_none_or(|e| e.len() <= 3 && ext_c.len() == e.len());
    if fits {
        return long.to_owned();
    }
    let base: String = stem_c.chars().take(6).collect();
    let base = if base.is_empty() {
        "FILE".to_owned()
    } else {
        base
    };
    let ext3: String = ext_c.chars().take(3).collect();
    if ext3.is_empty() {
        format!("{base}~1")
    } else {
        format!("{base}~1.{ext3}")
    }
}

/// Stream-local ids for named properties, allocated in order of first use.
#[derive(Default)]
struct NamedIds {
    map: HashMap<NamedProp, u16>,
    next: u16,
}

impl NamedIds {
    fn new() -> Self {
        NamedIds {
            map: HashMap::new(),
            next: 0x8000,
        }
    }
    fn get(&mut self, n: &NamedProp) -> u16 {
        if let Some(id) = self.map.get(n) {
            return *id;
        }
        let id = self.next;
        self.next = self.next.saturating_add(1);
        self.map.insert(n.clone(), id);
        id
    }
}

fn with_id(p: &Prop, pid: u16) -> Prop {
    Prop {
        tag: ((pid as u32) << 16) | (p.tag & 0xFFFF),
        named: p.named.clone(),
        data: p.data.clone(),
    }
}

/// Encoded size in bytes of a messageContent (markers and metas included).
pub fn content_encoded_len(m: &MessageContent) -> usize {
    fts::encoded_len(&fts::Root::MessageContent(m.clone()))
}

/// Encoded size of an attachment (NewAttach … EndAttach).
pub fn attachment_encoded_len(a: &Attachment) -> usize {
    8 + fts::encoded_len(&fts::Root::AttachmentContent(a.clone()))
}

fn delprop(target: u32) -> Prop {
    Prop::single(tags::meta::FX_DEL_PROP, None, target.to_le_bytes().to_vec())
}

/// Sorts tagged props by id and appends named props (ids assigned) sorted by id.
fn layout(tagged: BTreeMap<u16, Prop>, named_props: Vec<Prop>, ids: &mut NamedIds) -> Vec<Prop> {
    let mut out: Vec<Prop> = tagged.into_values().collect();
    let mut named: Vec<Prop> = named_props
        .iter()
        .map(|p| {
            let n = p.named.as_ref().expect("named list holds named props");
            with_id(p, ids.get(n))
        })
        .collect();
    named.sort_by_key(|p| p.id());
    out.extend(named);
    out
}

/// Collects props: tagged into a map (later wins), named into a list (later
/// wins, first position kept).
#[derive(Default)]
struct PropSet {
    tagged: BTreeMap<u16, Prop>,
    named: Vec<Prop>,
}

impl PropSet {
    fn put(&mut self, p: Prop) {
        match &p.named {
            None => {
                self.tagged.insert(p.id(), p);
            }
            Some(n) => {
                if let Some(slot) = self.named.iter_mut().find(|q| q.named.as_ref() == Some(n)) {
                    *slot = p;
                } else {
                    self.named.push(p);
                }
            }
        }
    }
    fn s(&mut self, pid: u16, v: &str) {
        self.put(build::string(pid, None, v));
    }
    fn i(&mut self, pid: u16, v: i32) {
        self.put(build::i32(pid, None, v));
    }
    fn b(&mut self, pid: u16, v: bool) {
        self.put(build::bool(pid, None, v));
    }
    fn t(&mut self, pid: u16, v: FileTime) {
        self.put(build::time(pid, None, v.0));
    }
    fn bin(&mut self, pid: u16, v: impl Into<Bytes>) {
        self.put(build::binary(pid, None, v));
    }
}

fn fnv1a(data: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// PidTagConversationIndex header block: 0x01, 5 bytes of FILETIME, 16-byte GUID.
fn conversation_index(time: FileTime, topic: &str) -> Vec<u8> {
    let mut v = vec![0x01];
    v.extend_from_slice(&time.0.to_be_bytes()[..5]);
    v.extend_from_slice(&fnv1a(topic.as_bytes(), 1).to_le_bytes());
    v.extend_from_slice(&fnv1a(topic.as_bytes(), 2).to_le_bytes());
    v
}

impl MessageBuilder {
    /// A message of the given class (`IPM.Note`, `IPM.Appointment`, …).
    pub fn new(class: impl Into<String>) -> Self {
        MessageBuilder {
            class: class.into(),
            subject: None,
            from: None,
            sender: None,
            recipients: Vec::new(),
            body_text: None,
            body_html: None,
            created: None,
            modified: None,
            delivered: None,
            submitted: None,
            importance: Importance::Normal,
            sensitivity: Sensitivity::Normal,
            read: false,
            draft: false,
            extra_flags: 0,
            read_receipt: false,
            categories: Vec::new(),
            message_id: None,
            in_reply_to: None,
            references: None,
            headers: Vec::new(),
            attachments: Vec::new(),
            extra: Vec::new(),
            preview: true,
        }
    }

    /// An `IPM.Note` mail.
    pub fn mail() -> Self {
        MessageBuilder::new("IPM.Note")
    }

    pub fn class(mut self, class: impl Into<String>) -> Self {
        self.class = class.into();
        self
    }
    /// The full subject; a short prefix ("RE: ", "FW: ") becomes PidTagSubjectPrefix.
    pub fn subject(mut self, s: impl Into<String>) -> Self {
        self.subject = Some(s.into());
        self
    }
    /// The author (PidTagSentRepresenting*; also PidTagSender* unless [`Self::sender`] is set).
    pub fn from(mut self, m: Mailbox) -> Self {
        self.from = Some(m);
        self
    }
    /// The sending mailbox when it differs from the author.
    pub fn sender(mut self, m: Mailbox) -> Self {
        self.sender = Some(m);
        self
    }
    pub fn to(mut self, m: Mailbox) -> Self {
        self.recipients.push(RecipSpec {
            kind: RecipientKind::To,
            mailbox: m,
            flags: 1,
        });
        self
    }
    pub fn cc(mut self, m: Mailbox) -> Self {
        self.recipients.push(RecipSpec {
            kind: RecipientKind::Cc,
            mailbox: m,
            flags: 1,
        });
        self
    }
    pub fn bcc(mut self, m: Mailbox) -> Self {
        self.recipients.push(RecipSpec {
            kind: RecipientKind::Bcc,
            mailbox: m,
            flags: 1,
        });
        self
    }
    /// A recipient with explicit kind and PidTagRecipientFlags.
    pub fn recipient(mut self, kind: RecipientKind, m: Mailbox, flags: i32) -> Self {
        self.recipients.push(RecipSpec {
            kind,
            mailbox: m,
            flags,
        });
        self
    }
    /// PidTagBody.
    pub fn text_body(mut self, s: impl Into<String>) -> Self {
        self.body_text = Some(s.into());
        self
    }
    /// PidTagHtml, stored as UTF-8 bytes with PidTagInternetCodepage 65001.
    pub fn html_body(mut self, s: impl Into<String>) -> Self {
        self.body_html = Some(s.into());
        self
    }
    /// PidTagCreationTime (also the default modification time).
    pub fn created(mut self, t: FileTime) -> Self {
        self.created = Some(t);
        self
    }
    pub fn modified(mut self, t: FileTime) -> Self {
        self.modified = Some(t);
        self
    }
    /// PidTagMessageDeliveryTime.
    pub fn received(mut self, t: FileTime) -> Self {
        self.delivered = Some(t);
        self
    }
    /// PidTagClientSubmitTime.
    pub fn sent(mut self, t: FileTime) -> Self {
        self.submitted = Some(t);
        self
    }
    pub fn importance(mut self, i: Importance) -> Self {
        self.importance = i;
        self
    }
    pub fn sensitivity(mut self, s: Sensitivity) -> Self {
        self.sensitivity = s;
        self
    }
    /// mfRead.
    pub fn read(mut self, read: bool) -> Self {
        self.read = read;
        self
    }
    /// mfUnsent (a draft).
    pub fn draft(mut self, draft: bool) -> Self {
        self.draft = draft;
        self
    }
    /// Extra PidTagMessageFlags bits, OR-ed into the computed ones.
    pub fn flags(mut self, bits: u32) -> Self {
        self.extra_flags |= bits;
        self
    }
    pub fn read_receipt_requested(mut self, yes: bool) -> Self {
        self.read_receipt = yes;
        self
    }
    /// Outlook categories (the `Keywords` named property).
    pub fn category(mut self, c: impl Into<String>) -> Self {
        self.categories.push(c.into());
        self
    }
    pub fn categories<I: IntoIterator<Item = S>, S: Into<String>>(mut self, cs: I) -> Self {
        self.categories.extend(cs.into_iter().map(Into::into));
        self
    }
    /// PidTagInternetMessageId (with its `<>`).
    pub fn message_id(mut self, s: impl Into<String>) -> Self {
        self.message_id = Some(s.into());
        self
    }
    pub fn in_reply_to(mut self, s: impl Into<String>) -> Self {
        self.in_reply_to = Some(s.into());
        self
    }
    pub fn references(mut self, s: impl Into<String>) -> Self {
        self.references = Some(s.into());
        self
    }
    /// An Internet header kept as a PS_INTERNET_HEADERS named property
    /// (name lower-cased, as Exchange stores it).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// A file attachment (afByValue), any size.
    pub fn attach(
        mut self,
        filename: impl Into<String>,
        mime_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Self {
        self.attachments.push(AttachmentSpec::File {
            filename: filename.into(),
            mime_type: mime_type.into(),
            data: data.into(),
            content_id: None,
            inline: false,
        });
        self
    }
    /// An inline attachment referenced from the HTML body as `cid:{content_id}`.
    pub fn attach_inline(
        mut self,
        filename: impl Into<String>,
        mime_type: impl Into<String>,
        data: impl Into<Bytes>,
        content_id: impl Into<String>,
    ) -> Self {
        self.attachments.push(AttachmentSpec::File {
            filename: filename.into(),
            mime_type: mime_type.into(),
            data: data.into(),
            content_id: Some(content_id.into()),
            inline: true,
        });
        self
    }
    /// An embedded message (afEmbeddedMessage); may itself embed messages.
    pub fn attach_message(mut self, m: MessageBuilder) -> Self {
        self.attachments.push(AttachmentSpec::Embedded(Box::new(m)));
        self
    }
    pub fn attachment(mut self, a: AttachmentSpec) -> Self {
        self.attachments.push(a);
        self
    }
    /// Whether to write PidTagPreview (default true).
    pub fn with_preview(mut self, yes: bool) -> Self {
        self.preview = yes;
        self
    }
    /// Any property. A tagged one replaces the computed property with the same
    /// id; a named one (its local id is ignored and reassigned) replaces the
    /// same named property.
    pub fn prop(mut self, p: Prop) -> Self {
        self.extra.push(Extra(p));
        self
    }
    pub fn named_string(self, def: &NamedDef, v: &str) -> Self {
        self.prop(build::string(0x8000, Some(def.to_named_prop()), v))
    }
    pub fn named_i32(self, def: &NamedDef, v: i32) -> Self {
        self.prop(build::i32(0x8000, Some(def.to_named_prop()), v))
    }
    pub fn named_bool(self, def: &NamedDef, v: bool) -> Self {
        self.prop(build::bool(0x8000, Some(def.to_named_prop()), v))
    }
    pub fn named_time(self, def: &NamedDef, v: FileTime) -> Self {
        self.prop(build::time(0x8000, Some(def.to_named_prop()), v.0))
    }
    pub fn named_f64(self, def: &NamedDef, v: f64) -> Self {
        self.prop(build::f64(0x8000, Some(def.to_named_prop()), v))
    }
    pub fn named_binary(self, def: &NamedDef, v: impl Into<Bytes>) -> Self {
        self.prop(build::binary(0x8000, Some(def.to_named_prop()), v))
    }

    /// The subject as set (for display names of embedded messages).
    pub fn subject_str(&self) -> Option<&str> {
        self.subject.as_deref()
    }
    pub fn message_class(&self) -> &str {
        &self.class
    }

    /// Builds the messageContent.
    pub fn build(&self) -> MessageContent {
        let mut ids = NamedIds::new();
        self.build_with(&mut ids, true)
    }

    /// The raw (unframed) FTS bytes of [`Self::build`].
    pub fn to_fts_bytes(&self) -> Vec<u8> {
        fts::encode_fts(&fts::Root::MessageContent(self.build()))
    }

    /// The FTS framed as Exchange exports it (Config, IsInterfaceOk,
    /// TellPartnerVersion, TransferBuffers of at most 31,680 bytes): what
    /// Graph `exportItems` returns in `data` before base64.
    pub fn to_framed_bytes(&self) -> Vec<u8> {
        fts::write_frames(
            &fts::FrameHeader::default(),
            &self.to_fts_bytes(),
            fts::frame::DEFAULT_CHUNK,
        )
    }

    fn build_with(&self, ids: &mut NamedIds, top: bool) -> MessageContent {
        let mut ps = PropSet::default();
        let created = self.created;
        let modified = self.modified.or(created);

        ps.i(id::IMPORTANCE, self.importance.to_i32());
        ps.s(id::MESSAGE_CLASS, &self.class);
        ps.b(id::ORIGINATOR_DELIVERY_REPORT_REQUESTED, false);
        ps.i(
            id::PRIORITY,
            match self.importance {
                Importance::High => 1,
                Importance::Low => -1,
                _ => 0,
            },
        );
        ps.b(id::READ_RECEIPT_REQUESTED, self.read_receipt);
        ps.i(id::SENSITIVITY, self.sensitivity.to_i32());

        let subject = self.subject.clone().unwrap_or_default();
        let (prefix, normalized) = split_subject(&subject);
        ps.s(id::SUBJECT, &subject);
        ps.s(id::SUBJECT_PREFIX, prefix.unwrap_or(""));
        ps.s(id::NORMALIZED_SUBJECT, normalized);
        ps.s(id::CONVERSATION_TOPIC, normalized);
        if let Some(t) = self.submitted.or(created) {
            ps.bin(id::CONVERSATION_INDEX, conversation_index(t, normalized));
        }
        if let Some(t) = self.submitted {
            ps.t(id::CLIENT_SUBMIT_TIME, t);
        }
        if let Some(t) = self.delivered {
            ps.t(id::MESSAGE_DELIVERY_TIME, t);
        }
        if let Some(t) = created {
            ps.t(id::CREATION_TIME, t);
        }
        if let Some(t) = modified {
            ps.t(id::LAST_MODIFICATION_TIME, t);
        }

        if let Some(from) = &self.from {
            ps.bin(id::SENT_REPRESENTING_SEARCH_KEY, from.search_key());
            ps.bin(id::SENT_REPRESENTING_ENTRY_ID, from.one_off_entry_id());
            ps.s(id::SENT_REPRESENTING_NAME, &from.name);
            ps.s(id::SENT_REPRESENTING_ADDRESS_TYPE, "SMTP");
            ps.s(id::SENT_REPRESENTING_EMAIL_ADDRESS, &from.email);
            ps.s(id::SENT_REPRESENTING_SMTP_ADDRESS, &from.email);
        }
        if let Some(sender) = self.sender.as_ref().or(self.from.as_ref()) {
            ps.bin(id::SENDER_ENTRY_ID, sender.one_off_entry_id());
            ps.s(id::SENDER_NAME, &sender.name);
            ps.bin(id::SENDER_SEARCH_KEY, sender.search_key());
            ps.s(id::SENDER_ADDRESS_TYPE, "SMTP");
            ps.s(id::SENDER_EMAIL_ADDRESS, &sender.email);
            ps.s(id::SENDER_SMTP_ADDRESS, &sender.email);
        }

        let names = |k: RecipientKind| -> String {
            self.recipients
                .iter()
                .filter(|r| r.kind == k)
                .map(|r| r.mailbox.name.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        };
        ps.s(id::DISPLAY_TO, &names(RecipientKind::To));
        ps.s(id::DISPLAY_CC, &names(RecipientKind::Cc));
        ps.s(id::DISPLAY_BCC, &names(RecipientKind::Bcc));

        let mut flags = self.extra_flags;
        if self.read {
            flags |= message_flags::READ | message_flags::EVER_READ;
        }
        if self.draft {
            flags |= message_flags::UNSENT;
        } else {
            flags |= message_flags::UNMODIFIED;
        }
        if !self.attachments.is_empty() {
            flags |= message_flags::HAS_ATTACH;
        }
        ps.i(id::MESSAGE_FLAGS, flags as i32);
        ps.b(id::HAS_ATTACHMENTS, !self.attachments.is_empty());

        if let Some(t) = &self.body_text {
            ps.s(id::BODY, t);
        }
        if let Some(h) = &self.body_html {
            ps.bin(id::HTML, h.clone().into_bytes());
        }
        ps.i(id::INTERNET_CODEPAGE, 65001);
        let native = if self.body_html.is_some() {
            tags::native_body::HTML
        } else if self.body_text.is_some() {
            tags::native_body::PLAIN_TEXT
        } else {
            tags::native_body::UNDEFINED
        };
        ps.i(id::NATIVE_BODY, native);
        if self.preview {
            let text = self
                .body_text
                .clone()
                .or_else(|| self.body_html.as_deref().map(html_to_text));
            if let Some(text) = text {
                ps.s(id::PREVIEW, &preview_of(&text));
            }
        }
        if let Some(v) = &self.message_id {
            ps.s(id::INTERNET_MESSAGE_ID, v);
        }
        if let Some(v) = &self.references {
            ps.s(id::INTERNET_REFERENCES, v);
        }
        if let Some(v) = &self.in_reply_to {
            ps.s(id::IN_REPLY_TO_ID, v);
        }
        ps.i(id::MESSAGE_LOCALE_ID, 1033);
        ps.i(id::MESSAGE_CODEPAGE, 1252);

        if !self.categories.is_empty() {
            let items: Vec<&str> = self.categories.iter().map(String::as_str).collect();
            ps.put(build::strings(
                0x8000,
                Some(named::KEYWORDS.to_named_prop()),
                &items,
            ));
        }
        for (name, value) in &self.headers {
            ps.put(build::string(
                0x8000,
                Some(named::internet_header(name)),
                value,
            ));
        }
        for Extra(p) in &self.extra {
            ps.put(p.clone());
        }

        // Size placeholder so the layout (and thus the length) is final.
        ps.i(id::MESSAGE_SIZE, 0);
        let PropSet { tagged, named } = ps;
        // Lay out this message's props first so its named properties get the
        // lowest local ids, then the embedded messages'.
        let props = layout(tagged, named, ids);
        let recipients: Vec<Recipient> = self
            .recipients
            .iter()
            .enumerate()
            .map(|(i, r)| build_recipient(i as i32, r))
            .collect();
        let attachments: Vec<Attachment> = self
            .attachments
            .iter()
            .enumerate()
            .map(|(i, a)| build_attachment(i as i32, a, created, modified, ids))
            .collect();
        let mut msg = MessageContent {
            props,
            recip_delprop: Some(delprop(tags::tag::MESSAGE_RECIPIENTS)),
            recipients,
            attach_delprop: (top || !attachments.is_empty())
                .then(|| delprop(tags::tag::MESSAGE_ATTACHMENTS)),
            attachments,
        };
        let size = content_encoded_len(&msg) as i32;
        if let Some(p) = msg.props.iter_mut().find(|p| p.id() == id::MESSAGE_SIZE) {
            *p = build::i32(id::MESSAGE_SIZE, None, size);
        }
        msg
    }
}

fn build_recipient(row: i32, r: &RecipSpec) -> Recipient {
    let mut ps = PropSet::default();
    let m = &r.mailbox;
    let kind = match r.kind {
        RecipientKind::Orig => recipient_type::ORIG,
        RecipientKind::To => recipient_type::TO,
        RecipientKind::Cc => recipient_type::CC,
        RecipientKind::Bcc => recipient_type::BCC,
    };
    let entry_id = m.one_off_entry_id();
    ps.i(id::RECIPIENT_TYPE, kind);
    ps.i(id::OBJECT_TYPE, 6);
    ps.bin(id::ENTRY_ID, entry_id.clone());
    ps.s(id::DISPLAY_NAME, &m.name);
    ps.s(id::ADDRESS_TYPE, "SMTP");
    ps.s(id::EMAIL_ADDRESS, &m.email);
    ps.bin(id::SEARCH_KEY, m.search_key());
    ps.i(id::DISPLAY_TYPE, 0);
    ps.s(id::SMTP_ADDRESS, &m.email);
    ps.s(id::TRANSMITTABLE_DISPLAY_NAME, &m.name);
    ps.b(id::SEND_RICH_INFO, false);
    ps.s(id::RECIPIENT_DISPLAY_NAME, &m.name);
    ps.bin(id::RECIPIENT_ENTRY_ID, entry_id);
    ps.i(id::RECIPIENT_FLAGS, r.flags);
    ps.i(id::RECIPIENT_TRACK_STATUS, 0);
    let mut props = vec![build::i32(id::ROWID, None, row)];
    props.extend(ps.tagged.into_values());
    Recipient { props }
}

fn build_attachment(
    num: i32,
    a: &AttachmentSpec,
    created: Option<FileTime>,
    modified: Option<FileTime>,
    ids: &mut NamedIds,
) -> Attachment {
    let mut ps = PropSet::default();
    if let Some(t) = created {
        ps.t(id::CREATION_TIME, t);
    }
    if let Some(t) = modified {
        ps.t(id::LAST_MODIFICATION_TIME, t);
    }
    ps.i(id::RENDERING_POSITION, -1);
    let embedded = match a {
        AttachmentSpec::File {
            filename,
            mime_type,
            data,
            content_id,
            inline,
        } => {
            ps.s(id::DISPLAY_NAME, filename);
            ps.bin(id::ATTACH_DATA_BINARY, data.clone());
            let ext = filename
                .rsplit_once('.')
                .map(|(_, e)| format!(".{e}"))
                .unwrap_or_default();
            ps.s(id::ATTACH_EXTENSION, &ext);
            ps.s(id::ATTACH_FILENAME, &short_name(filename));
            ps.i(id::ATTACH_METHOD, attach_method::BY_VALUE);
            ps.s(id::ATTACH_LONG_FILENAME, filename);
            ps.s(id::ATTACH_MIME_TAG, mime_type);
            if let Some(cid) = content_id {
                ps.s(id::ATTACH_CONTENT_ID, cid);
            }
            ps.i(
                id::ATTACH_FLAGS,
                if *inline {
                    tags::ATT_RENDERED_IN_BODY
                } else {
                    0
                },
            );
            ps.b(id::ATTACHMENT_HIDDEN, *inline);
            None
        }
        AttachmentSpec::Embedded(m) => {
            ps.s(id::DISPLAY_NAME, m.subject_str().unwrap_or(""));
            ps.i(id::ATTACH_METHOD, attach_method::EMBEDDED_MESSAGE);
            ps.i(id::ATTACH_FLAGS, 0);
            ps.b(id::ATTACHMENT_HIDDEN, false);
            Some(Box::new(m.build_with(ids, false)))
        }
    };
    let mut props = vec![
        build::i32(id::ATTACH_NUMBER, None, num),
        build::i32(id::ATTACH_SIZE, None, 0),
    ];
    props.extend(ps.tagged.into_values());
    let mut att = Attachment { props, embedded };
    let size = attachment_encoded_len(&att) as i32;
    att.props[1] = build::i32(id::ATTACH_SIZE, None, size);
    att
}

/// An IPM.Appointment.
#[derive(Clone, Debug, PartialEq)]
pub struct Appointment {
    pub subject: String,
    pub start: FileTime,
    pub end: FileTime,
    pub location: Option<String>,
    pub organizer: Mailbox,
    pub required: Vec<Mailbox>,
    pub optional: Vec<Mailbox>,
    pub body: Option<String>,
    pub created: FileTime,
    pub all_day: bool,
}

/// Builds an appointment or meeting: start/end/location as PSETID_Appointment
/// named properties, the organizer as sender and as the first recipient
/// (recipOrganizer), attendees as To (required) and Cc (optional) recipients.
pub fn calendar_item(a: &Appointment) -> MessageBuilder {
    let meeting = !a.required.is_empty() || !a.optional.is_empty();
    let minutes = ((a.end.0.saturating_sub(a.start.0)) / 600_000_000) as i32;
    let mut b = MessageBuilder::new("IPM.Appointment")
        .subject(a.subject.clone())
        .from(a.organizer.clone())
        .created(a.created)
        .read(true)
        .prop(build::time(id::START_DATE, None, a.start.0))
        .prop(build::time(id::END_DATE, None, a.end.0))
        .named_i32(&named::APPOINTMENT_SEQUENCE, 0)
        .named_i32(&named::BUSY_STATUS, 2)
        .named_string(&named::LOCATION, a.location.as_deref().unwrap_or(""))
        .named_time(&named::APPOINTMENT_START_WHOLE, a.start)
        .named_time(&named::APPOINTMENT_END_WHOLE, a.end)
        .named_i32(&named::APPOINTMENT_DURATION, minutes)
        .named_bool(&named::APPOINTMENT_SUB_TYPE, a.all_day)
        .named_i32(&named::APPOINTMENT_STATE_FLAGS, if meeting { 1 } else { 0 })
        .named_i32(&named::RESPONSE_STATUS, if meeting { 1 } else { 0 })
        .named_bool(&named::RECURRING, false)
        .named_bool(&named::REMINDER_SET, true)
        .named_i32(&named::REMINDER_DELTA, 15)
        .named_time(&named::REMINDER_TIME, a.start)
        .named_time(
            &named::REMINDER_SIGNAL_TIME,
            FileTime(a.start.0.saturating_sub(15 * 600_000_000)),
        )
        .named_time(&named::COMMON_START, a.start)
        .named_time(&named::COMMON_END, a.end);
    if let Some(body) = &a.body {
        b = b.text_body(body.clone());
    }
    if meeting {
        b = b.recipient(RecipientKind::To, a.organizer.clone(), 0x3);
        for m in &a.required {
            b = b.to(m.clone());
        }
        for m in &a.optional {
            b = b.cc(m.clone());
        }
    }
    b
}

/// An IPM.Contact.
#[derive(Clone, Debug, PartialEq)]
pub struct Contact {
    pub given_name: String,
    pub surname: String,
    pub email: String,
    pub company: Option<String>,
    pub job_title: Option<String>,
    pub business_phone: Option<String>,
    pub mobile_phone: Option<String>,
    pub home_phone: Option<String>,
    pub created: FileTime,
}

impl Contact {
    pub fn display_name(&self) -> String {
        format!("{} {}", self.given_name, self.surname)
    }
}

/// Builds a contact: PidTagDisplayName/GivenName/Surname/CompanyName and
/// phones, Email1 as PSETID_Address named properties, FileUnder "Surname, Given".
pub fn contact(c: &Contact) -> MessageBuilder {
    let display = c.display_name();
    let email1_display = format!("{display} ({})", c.email);
    let mut b = MessageBuilder::new("IPM.Contact")
        .subject(display.clone())
        .created(c.created)
        .read(true)
        .with_preview(false)
        .prop(build::string(id::DISPLAY_NAME, None, &display))
        .prop(build::string(id::GIVEN_NAME, None, &c.given_name))
        .prop(build::string(id::SURNAME, None, &c.surname))
        .named_string(
            &named::FILE_UNDER,
            &format!("{}, {}", c.surname, c.given_name),
        )
        .named_i32(&named::FILE_UNDER_ID, 0x8017)
        .named_string(&named::EMAIL1_DISPLAY_NAME, &email1_display)
        .named_string(&named::EMAIL1_ADDRESS_TYPE, "SMTP")
        .named_string(&named::EMAIL1_EMAIL_ADDRESS, &c.email)
        .named_string(&named::EMAIL1_ORIGINAL_DISPLAY_NAME, &c.email);
    let opt = [
        (id::COMPANY_NAME, &c.company),
        (id::TITLE, &c.job_title),
        (id::BUSINESS_TELEPHONE_NUMBER, &c.business_phone),
        (id::MOBILE_TELEPHONE_NUMBER, &c.mobile_phone),
        (id::HOME_TELEPHONE_NUMBER, &c.home_phone),
    ];
    for (pid, v) in opt {
        if let Some(v) = v {
            b = b.prop(build::string(pid, None, v));
        }
    }
    b
}

/// PidLidTaskStatus values.
pub mod task_status {
    pub const NOT_STARTED: i32 = 0;
    pub const IN_PROGRESS: i32 = 1;
    pub const COMPLETE: i32 = 2;
    pub const WAITING: i32 = 3;
    pub const DEFERRED: i32 = 4;
}

/// An IPM.Task.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub subject: String,
    pub start: Option<FileTime>,
    pub due: Option<FileTime>,
    /// See [`task_status`].
    pub status: i32,
    pub percent_complete: f64,
    pub body: Option<String>,
    pub owner: Option<String>,
    pub created: FileTime,
}

/// Builds a task: due/start dates, status and completion as PSETID_Task named properties.
pub fn task(t: &Task) -> MessageBuilder {
    let complete = t.status == task_status::COMPLETE;
    let mut b = MessageBuilder::new("IPM.Task")
        .subject(t.subject.clone())
        .created(t.created)
        .read(true)
        .named_i32(&named::TASK_STATUS, t.status)
        .named_f64(&named::PERCENT_COMPLETE, t.percent_complete)
        .named_bool(&named::TASK_COMPLETE, complete)
        .named_i32(&named::TASK_MODE, 0);
    if let Some(s) = t.start {
        b = b
            .named_time(&named::TASK_START_DATE, s)
            .named_time(&named::COMMON_START, s);
    }
    if let Some(d) = t.due {
        b = b
            .named_time(&named::TASK_DUE_DATE, d)
            .named_time(&named::COMMON_END, d);
    }
    if let Some(o) = &t.owner {
        b = b.named_string(&named::TASK_OWNER, o);
    }
    if let Some(body) = &t.body {
        b = b.text_body(body.clone());
    }
    b
}

/// PidLidNoteColor values.
pub mod note_color {
    pub const BLUE: i32 = 0;
    pub const GREEN: i32 = 1;
    pub const PINK: i32 = 2;
    pub const YELLOW: i32 = 3;
    pub const WHITE: i32 = 4;
}

/// Builds an IPM.StickyNote: the subject is the first line of the text.
pub fn note(text: &str, color: i32, created: FileTime) -> MessageBuilder {
    let subject = text.lines().next().unwrap_or("").to_owned();
    MessageBuilder::new("IPM.StickyNote")
        .subject(subject)
        .text_body(text.to_owned())
        .created(created)
        .read(true)
        .named_i32(&named::NOTE_COLOR, color)
        .named_i32(&named::NOTE_WIDTH, 200)
        .named_i32(&named::NOTE_HEIGHT, 166)
        .named_i32(&named::NOTE_X, 80)
        .named_i32(&named::NOTE_Y, 80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_split() {
        assert_eq!(split_subject("RE: Hello"), (Some("RE: "), "Hello"));
        assert_eq!(split_subject("Fwd: x"), (Some("Fwd: "), "x"));
        assert_eq!(split_subject("Note: about"), (None, "Note: about"));
        assert_eq!(split_subject("Hello"), (None, "Hello"));
    }

    #[test]
    fn short_names() {
        assert_eq!(short_name("a.txt"), "a.txt");
        assert_eq!(short_name("Quarterly report.pdf"), "QUARTE~1.PDF");
        assert_eq!(short_name("archive.tar.gz"), "ARCHIV~1.GZ");
        assert_eq!(short_name("noext"), "noext");
    }

    #[test]
    fn one_off_entry_id_layout() {
        let m = Mailbox::new("A", "a@b.c");
        let e = m.one_off_entry_id();
        assert_eq!(&e[..4], &[0, 0, 0, 0]);
        assert_eq!(e[4], 0x81);
        assert_eq!(&e[20..24], &[0, 0, 1, 0x90]);
        assert_eq!(e.len(), 24 + 4 + 10 + 12);
        assert_eq!(m.search_key(), b"SMTP:A@B.C\0");
    }
}
