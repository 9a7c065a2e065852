//! A read-only typed view over the FTS AST.
//!
//! The view reads the well-known properties of a message, its recipients
//! and its attachments, decoding lazily from the raw bytes kept in the AST.
//! Tagged properties are found by property id whatever their string form
//! (`0x001F`, `0x84B0`, `0x001E`); named properties are found by
//! (GUID, name/dispid) and never by their stream-local id.

use crate::filetime::FileTime;
use crate::named::{self, NamedDef};
use crate::tags::{self, id};
use bytes::Bytes;
use fts::value::{codepage_encoding, ptype};
use fts::{Attachment, MessageContent, Prop, PropName, Recipient, Root, Value};
use time::OffsetDateTime;

/// Finds the first tagged (non-named) property with that id.
fn find(props: &[Prop], pid: u16) -> Option<&Prop> {
    props
        .iter()
        .find(|p| p.id() == pid && p.id() < 0x8000 && p.named.is_none())
}

fn find_named<'p>(props: &'p [Prop], def: &NamedDef) -> Option<&'p Prop> {
    props.iter().find(|p| def.matches_prop(p))
}

/// The text of a string-typed property (any string form), decoding
/// PtypString8 in `cp`.
fn text(p: &Prop, cp: Option<u16>) -> Option<String> {
    match p.value_cp(cp).ok()? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn int(p: &Prop) -> Option<i32> {
    match p.value().ok()? {
        Value::I32(v) => Some(v),
        Value::I16(v) => Some(v as i32),
        Value::I64(v) => i32::try_from(v).ok(),
        _ => None,
    }
}

fn boolean(p: &Prop) -> Option<bool> {
    match p.value().ok()? {
        Value::Bool(v) => Some(v),
        Value::I32(v) => Some(v != 0),
        _ => None,
    }
}

fn filetime(p: &Prop) -> Option<FileTime> {
    p.as_filetime().map(FileTime)
}

fn binary(p: &Prop) -> Option<&Bytes> {
    if p.type_word() == ptype::BINARY {
        p.bytes()
    } else {
        None
    }
}

/// Shared property accessors over one property list.
#[derive(Clone, Copy, Debug)]
pub struct PropsView<'a> {
    props: &'a [Prop],
    /// Code page for PtypString8 values.
    codepage: Option<u16>,
}

impl<'a> PropsView<'a> {
    pub fn new(props: &'a [Prop], codepage: Option<u16>) -> Self {
        PropsView { props, codepage }
    }
    /// The raw property list.
    pub fn props(&self) -> &'a [Prop] {
        self.props
    }
    /// The tagged property with that id (never a named property).
    pub fn get(&self, pid: u16) -> Option<&'a Prop> {
        find(self.props, pid)
    }
    /// The named property matching `def` by GUID and name/dispid.
    pub fn named(&self, def: &NamedDef) -> Option<&'a Prop> {
        find_named(self.props, def)
    }
    pub fn string(&self, pid: u16) -> Option<String> {
        text(self.get(pid)?, self.codepage)
    }
    pub fn i32(&self, pid: u16) -> Option<i32> {
        int(self.get(pid)?)
    }
    pub fn bool(&self, pid: u16) -> Option<bool> {
        boolean(self.get(pid)?)
    }
    pub fn time(&self, pid: u16) -> Option<FileTime> {
        filetime(self.get(pid)?)
    }
    pub fn binary(&self, pid: u16) -> Option<&'a Bytes> {
        binary(self.get(pid)?)
    }
    pub fn named_string(&self, def: &NamedDef) -> Option<String> {
        text(self.named(def)?, self.codepage)
    }
    pub fn named_i32(&self, def: &NamedDef) -> Option<i32> {
        int(self.named(def)?)
    }
    pub fn named_bool(&self, def: &NamedDef) -> Option<bool> {
        boolean(self.named(def)?)
    }
    pub fn named_time(&self, def: &NamedDef) -> Option<FileTime> {
        filetime(self.named(def)?)
    }
    pub fn named_f64(&self, def: &NamedDef) -> Option<f64> {
        match self.named(def)?.value().ok()? {
            Value::F64(v) => Some(v),
            Value::F32(v) => Some(v as f64),
            _ => None,
        }
    }
    /// A multi-valued string named property (any MV string form).
    pub fn named_strings(&self, def: &NamedDef) -> Option<Vec<String>> {
        match self.named(def)?.value_cp(self.codepage).ok()? {
            Value::Multi(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
            Value::String(s) => Some(vec![s]),
            _ => None,
        }
    }
}

/// An e-mail address as MAPI stores it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Address {
    pub name: Option<String>,
    /// "SMTP", "EX", …
    pub address_type: Option<String>,
    /// For "EX", the legacyExchangeDN.
    pub email_address: Option<String>,
    /// PidTag*SmtpAddress when present.
    pub smtp_address: Option<String>,
}

impl Address {
    /// The best SMTP address: the explicit SMTP property, else the email
    /// address when the address type is SMTP (or unknown and it looks like one).
    pub fn smtp(&self) -> Option<&str> {
        if let Some(s) = self.smtp_address.as_deref().filter(|s| !s.is_empty()) {
            return Some(s);
        }
        let email = self.email_address.as_deref()?;
        match self.address_type.as_deref() {
            Some(t) if t.eq_ignore_ascii_case("SMTP") => Some(email),
            None if email.contains('@') => Some(email),
            _ => None,
        }
    }

    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.address_type.is_none()
            && self.email_address.is_none()
            && self.smtp_address.is_none()
    }
}

/// PidTagImportance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Importance {
    Low,
    Normal,
    High,
    Other(i32),
}

impl Importance {
    pub fn from_i32(v: i32) -> Importance {
        match v {
            0 => Importance::Low,
            1 => Importance::Normal,
            2 => Importance::High,
            v => Importance::Other(v),
        }
    }
    pub fn to_i32(self) -> i32 {
        match self {
            Importance::Low => 0,
            Importance::Normal => 1,
            Importance::High => 2,
            Importance::Other(v) => v,
        }
    }
}

/// PidTagSensitivity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sensitivity {
    Normal,
    Personal,
    Private,
    Confidential,
    Other(i32),
}

impl Sensitivity {
    pub fn from_i32(v: i32) -> Sensitivity {
        match v {
            0 => Sensitivity::Normal,
            1 => Sensitivity::Personal,
            2 => Sensitivity::Private,
            3 => Sensitivity::Confidential,
            v => Sensitivity::Other(v),
        }
    }
    pub fn to_i32(self) -> i32 {
        match self {
            Sensitivity::Normal => 0,
            Sensitivity::Personal => 1,
            Sensitivity::Private => 2,
            Sensitivity::Confidential => 3,
            Sensitivity::Other(v) => v,
        }
    }
}

/// A typed view of a message (top-level or embedded).
#[derive(Clone, Copy, Debug)]
pub struct MessageView<'a> {
    msg: &'a MessageContent,
    p: PropsView<'a>,
}

impl<'a> MessageView<'a> {
    pub fn new(msg: &'a MessageContent) -> Self {
        let bare = PropsView::new(&msg.props, None);
        let cp = bare
            .i32(id::MESSAGE_CODEPAGE)
            .or_else(|| bare.i32(id::INTERNET_CODEPAGE))
            .and_then(|v| u16::try_from(v).ok());
        MessageView {
            msg,
            p: PropsView::new(&msg.props, cp),
        }
    }

    /// The message of a `messageContent` or `message` root.
    pub fn from_root(root: &'a Root) -> Option<Self> {
        match root {
            Root::MessageContent(m) => Some(MessageView::new(m)),
            Root::Message(m) => Some(MessageView::new(&m.content)),
            _ => None,
        }
    }

    pub fn content(&self) -> &'a MessageContent {
        self.msg
    }
    /// Accessors over the message-level property list.
    pub fn props(&self) -> PropsView<'a> {
        self.p
    }

    pub fn message_class(&self) -> Option<String> {
        self.p.string(id::MESSAGE_CLASS)
    }
    pub fn subject(&self) -> Option<String> {
        self.p.string(id::SUBJECT)
    }
    pub fn subject_prefix(&self) -> Option<String> {
        self.p.string(id::SUBJECT_PREFIX)
    }
    pub fn normalized_subject(&self) -> Option<String> {
        self.p.string(id::NORMALIZED_SUBJECT)
    }
    pub fn conversation_topic(&self) -> Option<String> {
        self.p.string(id::CONVERSATION_TOPIC)
    }
    pub fn conversation_index(&self) -> Option<&'a Bytes> {
        self.p.binary(id::CONVERSATION_INDEX)
    }
    /// PidTagBody.
    pub fn body_text(&self) -> Option<String> {
        self.p.string(id::BODY)
    }
    /// The raw HTML bytes when PidTagHtml is binary.
    pub fn html_bytes(&self) -> Option<&'a Bytes> {
        self.p.binary(id::HTML)
    }
    /// PidTagInternetCodepage.
    pub fn internet_codepage(&self) -> Option<i32> {
        self.p.i32(id::INTERNET_CODEPAGE)
    }
    /// PidTagMessageCodepage.
    pub fn message_codepage(&self) -> Option<i32> {
        self.p.i32(id::MESSAGE_CODEPAGE)
    }
    /// The HTML body: PidTagHtml (binary, decoded with PidTagInternetCodepage;
    /// UTF-8 when the code page is absent or unknown) or PidTagBodyHtml (string).
    pub fn html(&self) -> Option<String> {
        let p = self.p.get(id::HTML)?;
        if let Some(bytes) = binary(p) {
            let enc = self
                .internet_codepage()
                .and_then(|cp| u16::try_from(cp).ok())
                .and_then(codepage_encoding)
                .unwrap_or(encoding_rs::UTF_8);
            let (s, _, _) = enc.decode(bytes);
            return Some(s.into_owned());
        }
        text(p, self.p.codepage)
    }
    /// PidTagRtfCompressed, still compressed.
    pub fn rtf_compressed(&self) -> Option<&'a Bytes> {
        self.p.binary(id::RTF_COMPRESSED)
    }
    pub fn native_body(&self) -> Option<i32> {
        self.p.i32(id::NATIVE_BODY)
    }
    pub fn preview(&self) -> Option<String> {
        self.p.string(id::PREVIEW)
    }

    /// PidTagSender*.
    pub fn sender(&self) -> Option<Address> {
        let a = Address {
            name: self.p.string(id::SENDER_NAME),
            address_type: self.p.string(id::SENDER_ADDRESS_TYPE),
            email_address: self.p.string(id::SENDER_EMAIL_ADDRESS),
            smtp_address: self.p.string(id::SENDER_SMTP_ADDRESS),
        };
        (!a.is_empty()).then_some(a)
    }
    /// PidTagSentRepresenting* (the "From" of the message).
    pub fn sent_representing(&self) -> Option<Address> {
        let a = Address {
            name: self.p.string(id::SENT_REPRESENTING_NAME),
            address_type: self.p.string(id::SENT_REPRESENTING_ADDRESS_TYPE),
            email_address: self.p.string(id::SENT_REPRESENTING_EMAIL_ADDRESS),
            smtp_address: self.p.string(id::SENT_REPRESENTING_SMTP_ADDRESS),
        };
        (!a.is_empty()).then_some(a)
    }
    /// PidTagReceivedBy*.
    pub fn received_by(&self) -> Option<Address> {
        let a = Address {
            name: self.p.string(id::RECEIVED_BY_NAME),
            address_type: self.p.string(id::RECEIVED_BY_ADDRESS_TYPE),
            email_address: self.p.string(id::RECEIVED_BY_EMAIL_ADDRESS),
            smtp_address: self.p.string(id::RECEIVED_BY_SMTP_ADDRESS),
        };
        (!a.is_empty()).then_some(a)
    }

    pub fn display_to(&self) -> Option<String> {
        self.p.string(id::DISPLAY_TO)
    }
    pub fn display_cc(&self) -> Option<String> {
        self.p.string(id::DISPLAY_CC)
    }
    pub fn display_bcc(&self) -> Option<String> {
        self.p.string(id::DISPLAY_BCC)
    }

    pub fn recipients(&self) -> Vec<RecipientView<'a>> {
        self.msg
            .recipients
            .iter()
            .map(|r| RecipientView::new(r, self.p.codepage))
            .collect()
    }
    /// Recipients of one kind, in stream order.
    pub fn recipients_of(&self, kind: RecipientKind) -> Vec<RecipientView<'a>> {
        self.recipients()
            .into_iter()
            .filter(|r| r.kind() == Some(kind))
            .collect()
    }

    pub fn creation_time(&self) -> Option<FileTime> {
        self.p.time(id::CREATION_TIME)
    }
    pub fn last_modification_time(&self) -> Option<FileTime> {
        self.p.time(id::LAST_MODIFICATION_TIME)
    }
    pub fn delivery_time(&self) -> Option<FileTime> {
        self.p.time(id::MESSAGE_DELIVERY_TIME)
    }
    pub fn client_submit_time(&self) -> Option<FileTime> {
        self.p.time(id::CLIENT_SUBMIT_TIME)
    }
    pub fn creation_datetime(&self) -> Option<OffsetDateTime> {
        self.creation_time()?.to_datetime()
    }
    pub fn last_modification_datetime(&self) -> Option<OffsetDateTime> {
        self.last_modification_time()?.to_datetime()
    }
    pub fn delivery_datetime(&self) -> Option<OffsetDateTime> {
        self.delivery_time()?.to_datetime()
    }
    pub fn client_submit_datetime(&self) -> Option<OffsetDateTime> {
        self.client_submit_time()?.to_datetime()
    }

    /// PidTagMessageSize.
    pub fn message_size(&self) -> Option<i32> {
        self.p.i32(id::MESSAGE_SIZE)
    }
    pub fn importance(&self) -> Option<Importance> {
        self.p.i32(id::IMPORTANCE).map(Importance::from_i32)
    }
    pub fn sensitivity(&self) -> Option<Sensitivity> {
        self.p.i32(id::SENSITIVITY).map(Sensitivity::from_i32)
    }
    pub fn priority(&self) -> Option<i32> {
        self.p.i32(id::PRIORITY)
    }
    /// PidTagMessageFlags (see [`crate::tags::message_flags`]).
    pub fn message_flags(&self) -> Option<u32> {
        self.p.i32(id::MESSAGE_FLAGS).map(|v| v as u32)
    }
    /// mfRead.
    pub fn is_read(&self) -> bool {
        self.message_flags()
            .is_some_and(|f| f & tags::message_flags::READ != 0)
    }
    /// PidTagHasAttachments, else mfHasAttach, else whether attachments are present.
    pub fn has_attachments(&self) -> bool {
        if let Some(b) = self.p.bool(id::HAS_ATTACHMENTS) {
            return b;
        }
        if let Some(f) = self.message_flags() {
            return f & tags::message_flags::HAS_ATTACH != 0;
        }
        !self.msg.attachments.is_empty()
    }
    /// Outlook categories: the `Keywords` named property (PS_PUBLIC_STRINGS).
    pub fn categories(&self) -> Vec<String> {
        self.p.named_strings(&named::KEYWORDS).unwrap_or_default()
    }
    pub fn internet_message_id(&self) -> Option<String> {
        self.p.string(id::INTERNET_MESSAGE_ID)
    }
    pub fn in_reply_to(&self) -> Option<String> {
        self.p.string(id::IN_REPLY_TO_ID)
    }
    pub fn references(&self) -> Option<String> {
        self.p.string(id::INTERNET_REFERENCES)
    }
    pub fn transport_message_headers(&self) -> Option<String> {
        self.p.string(id::TRANSPORT_MESSAGE_HEADERS)
    }
    /// String-named PS_INTERNET_HEADERS properties as (header name, value), in stream order.
    pub fn internet_headers(&self) -> Vec<(String, String)> {
        self.msg
            .props
            .iter()
            .filter_map(|p| {
                let n = p.named.as_ref()?;
                if n.guid != named::PS_INTERNET_HEADERS {
                    return None;
                }
                let PropName::Name(units) = &n.name else {
                    return None;
                };
                Some((String::from_utf16_lossy(units), text(p, self.p.codepage)?))
            })
            .collect()
    }
    /// One PS_INTERNET_HEADERS header, matched case-insensitively.
    pub fn internet_header(&self, name: &str) -> Option<String> {
        self.internet_headers()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
    /// PidTagDisplayName (folders, contacts).
    pub fn display_name(&self) -> Option<String> {
        self.p.string(id::DISPLAY_NAME)
    }
    pub fn container_class(&self) -> Option<String> {
        self.p.string(id::CONTAINER_CLASS)
    }

    pub fn attachments(&self) -> Vec<AttachmentView<'a>> {
        self.msg
            .attachments
            .iter()
            .map(|a| AttachmentView::new(a, self.p.codepage))
            .collect()
    }

    // ---- calendar / task / contact / note helpers (named properties) ----
    pub fn appointment_start(&self) -> Option<FileTime> {
        self.p.named_time(&named::APPOINTMENT_START_WHOLE)
    }
    pub fn appointment_end(&self) -> Option<FileTime> {
        self.p.named_time(&named::APPOINTMENT_END_WHOLE)
    }
    pub fn location(&self) -> Option<String> {
        self.p.named_string(&named::LOCATION)
    }
    pub fn task_due_date(&self) -> Option<FileTime> {
        self.p.named_time(&named::TASK_DUE_DATE)
    }
    pub fn task_status(&self) -> Option<i32> {
        self.p.named_i32(&named::TASK_STATUS)
    }
    pub fn email1_address(&self) -> Option<String> {
        self.p.named_string(&named::EMAIL1_EMAIL_ADDRESS)
    }
    pub fn email1_display_name(&self) -> Option<String> {
        self.p.named_string(&named::EMAIL1_DISPLAY_NAME)
    }
    pub fn file_under(&self) -> Option<String> {
        self.p.named_string(&named::FILE_UNDER)
    }
}

/// PidTagRecipientType (low bits; 0x10000000 = MAPI_P1 is masked off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientKind {
    Orig,
    To,
    Cc,
    Bcc,
}

impl RecipientKind {
    pub fn from_i32(v: i32) -> Option<RecipientKind> {
        match v & 0x0FFF_FFFF {
            0 => Some(RecipientKind::Orig),
            1 => Some(RecipientKind::To),
            2 => Some(RecipientKind::Cc),
            3 => Some(RecipientKind::Bcc),
            _ => None,
        }
    }
    pub fn to_i32(self) -> i32 {
        match self {
            RecipientKind::Orig => 0,
            RecipientKind::To => 1,
            RecipientKind::Cc => 2,
            RecipientKind::Bcc => 3,
        }
    }
}

/// A typed view of one recipient.
#[derive(Clone, Copy, Debug)]
pub struct RecipientView<'a> {
    recip: &'a Recipient,
    p: PropsView<'a>,
}

impl<'a> RecipientView<'a> {
    pub fn new(recip: &'a Recipient, codepage: Option<u16>) -> Self {
        RecipientView {
            recip,
            p: PropsView::new(&recip.props, codepage),
        }
    }
    pub fn recipient(&self) -> &'a Recipient {
        self.recip
    }
    pub fn props(&self) -> PropsView<'a> {
        self.p
    }
    /// PidTagRecipientType as a kind (None when absent or unknown).
    pub fn kind(&self) -> Option<RecipientKind> {
        RecipientKind::from_i32(self.p.i32(id::RECIPIENT_TYPE)?)
    }
    pub fn row_id(&self) -> Option<i32> {
        self.p.i32(id::ROWID)
    }
    pub fn display_name(&self) -> Option<String> {
        self.p
            .string(id::DISPLAY_NAME)
            .or_else(|| self.p.string(id::RECIPIENT_DISPLAY_NAME))
            .or_else(|| self.p.string(id::TRANSMITTABLE_DISPLAY_NAME))
    }
    pub fn address_type(&self) -> Option<String> {
        self.p.string(id::ADDRESS_TYPE)
    }
    pub fn email_address(&self) -> Option<String> {
        self.p.string(id::EMAIL_ADDRESS)
    }
    /// PidTagSmtpAddress, else the email address when the type is SMTP
    /// (for "EX" recipients only PidTagSmtpAddress is an SMTP address).
    pub fn smtp_address(&self) -> Option<String> {
        self.address().smtp().map(str::to_owned)
    }
    pub fn recipient_flags(&self) -> Option<i32> {
        self.p.i32(id::RECIPIENT_FLAGS)
    }
    /// recipOrganizer (0x2) in PidTagRecipientFlags.
    pub fn is_organizer(&self) -> bool {
        self.recipient_flags().is_some_and(|f| f & 0x2 != 0)
    }
    pub fn address(&self) -> Address {
        Address {
            name: self.display_name(),
            address_type: self.address_type(),
            email_address: self.email_address(),
            smtp_address: self.p.string(id::SMTP_ADDRESS),
        }
    }
}

/// A typed view of one attachment.
#[derive(Clone, Copy, Debug)]
pub struct AttachmentView<'a> {
    att: &'a Attachment,
    p: PropsView<'a>,
}

impl<'a> AttachmentView<'a> {
    pub fn new(att: &'a Attachment, codepage: Option<u16>) -> Self {
        AttachmentView {
            att,
            p: PropsView::new(&att.props, codepage),
        }
    }
    pub fn attachment(&self) -> &'a Attachment {
        self.att
    }
    pub fn props(&self) -> PropsView<'a> {
        self.p
    }
    pub fn number(&self) -> Option<i32> {
        self.p.i32(id::ATTACH_NUMBER)
    }
    /// PidTagAttachMethod (see [`crate::tags::attach_method`]).
    pub fn method(&self) -> Option<i32> {
        self.p.i32(id::ATTACH_METHOD)
    }
    pub fn filename(&self) -> Option<String> {
        self.p.string(id::ATTACH_FILENAME)
    }
    pub fn long_filename(&self) -> Option<String> {
        self.p.string(id::ATTACH_LONG_FILENAME)
    }
    pub fn display_name(&self) -> Option<String> {
        self.p.string(id::DISPLAY_NAME)
    }
    /// The long filename, else the 8.3 filename, else the display name.
    pub fn best_name(&self) -> Option<String> {
        self.long_filename()
            .or_else(|| self.filename())
            .or_else(|| self.display_name())
    }
    pub fn extension(&self) -> Option<String> {
        self.p.string(id::ATTACH_EXTENSION)
    }
    pub fn mime_tag(&self) -> Option<String> {
        self.p.string(id::ATTACH_MIME_TAG)
    }
    pub fn content_id(&self) -> Option<String> {
        self.p.string(id::ATTACH_CONTENT_ID)
    }
    pub fn content_location(&self) -> Option<String> {
        self.p.string(id::ATTACH_CONTENT_LOCATION)
    }
    /// PidTagAttachSize.
    pub fn size(&self) -> Option<i32> {
        self.p.i32(id::ATTACH_SIZE)
    }
    /// PidTagAttachDataBinary.
    pub fn data(&self) -> Option<&'a Bytes> {
        self.p.binary(id::ATTACH_DATA_BINARY)
    }
    pub fn attach_flags(&self) -> Option<i32> {
        self.p.i32(id::ATTACH_FLAGS)
    }
    pub fn hidden(&self) -> bool {
        self.p.bool(id::ATTACHMENT_HIDDEN).unwrap_or(false)
    }
    pub fn rendering_position(&self) -> Option<i32> {
        self.p.i32(id::RENDERING_POSITION)
    }
    /// attRenderedInBody in PidTagAttachFlags, or PidTagAttachmentHidden.
    pub fn is_inline(&self) -> bool {
        self.attach_flags()
            .is_some_and(|f| f & tags::ATT_RENDERED_IN_BODY != 0)
            || self.hidden()
    }
    pub fn creation_time(&self) -> Option<FileTime> {
        self.p.time(id::CREATION_TIME)
    }
    pub fn last_modification_time(&self) -> Option<FileTime> {
        self.p.time(id::LAST_MODIFICATION_TIME)
    }
    /// The embedded message (afEmbeddedMessage), as a nested view.
    pub fn embedded(&self) -> Option<MessageView<'a>> {
        self.att.embedded.as_deref().map(MessageView::new)
    }
}
