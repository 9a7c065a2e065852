//! MAPI property ids and canonical tags ([MS-OXPROPS]), FTS markers and
//! meta-properties, and a name table used by the JSON dump.
//!
//! Every tagged property has two constants with the same name: `id::X` (the
//! 16-bit property id) and `tag::X` (the full 32-bit tag with its canonical
//! type; strings use PtypString `0x001F`). Streams written by Exchange use the
//! code-page form `0x84B0` for the same strings, so look properties up by id
//! (see [`crate::view`]) and never compare whole string tags.

use fts::value::ptype;

/// One entry of the property-name table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PropDef {
    /// Canonical name, e.g. `PidTagSubject`.
    pub name: &'static str,
    /// Property id.
    pub id: u16,
    /// Canonical type word (`0x001F` for strings).
    pub ptype: u16,
}

impl PropDef {
    /// The canonical 32-bit tag.
    pub const fn tag(&self) -> u32 {
        ((self.id as u32) << 16) | self.ptype as u32
    }
}

macro_rules! props {
    ($( $konst:ident = ($id:literal, $ty:ident, $name:literal); )*) => {
        /// Property ids (high 16 bits of a tag).
        pub mod id {
            $( #[doc = $name] pub const $konst: u16 = $id; )*
        }
        /// Canonical 32-bit tags (strings as PtypString 0x001F).
        pub mod tag {
            use fts::value::ptype;
            $( #[doc = $name] pub const $konst: u32 = (($id as u32) << 16) | ptype::$ty as u32; )*
        }
        /// Every known tagged property, in declaration order.
        pub static PROPS: &[PropDef] = &[
            $( PropDef { name: $name, id: $id, ptype: ptype::$ty }, )*
        ];
    };
}

props! {
    // ---- message envelope ----
    AUTO_FORWARDED = (0x0005, BOOLEAN, "PidTagAutoForwarded");
    DEFERRED_DELIVERY_TIME = (0x000F, SYSTIME, "PidTagDeferredDeliveryTime");
    EXPIRY_TIME = (0x0015, SYSTIME, "PidTagExpiryTime");
    IMPORTANCE = (0x0017, I32, "PidTagImportance");
    MESSAGE_CLASS = (0x001A, UNICODE, "PidTagMessageClass");
    ORIGINATOR_DELIVERY_REPORT_REQUESTED = (0x0023, BOOLEAN, "PidTagOriginatorDeliveryReportRequested");
    PRIORITY = (0x0026, I32, "PidTagPriority");
    READ_RECEIPT_REQUESTED = (0x0029, BOOLEAN, "PidTagReadReceiptRequested");
    REPLY_TIME = (0x0030, SYSTIME, "PidTagReplyTime");
    SENSITIVITY = (0x0036, I32, "PidTagSensitivity");
    SUBJECT = (0x0037, UNICODE, "PidTagSubject");
    CLIENT_SUBMIT_TIME = (0x0039, SYSTIME, "PidTagClientSubmitTime");
    SENT_REPRESENTING_SEARCH_KEY = (0x003B, BINARY, "PidTagSentRepresentingSearchKey");
    SUBJECT_PREFIX = (0x003D, UNICODE, "PidTagSubjectPrefix");
    RECEIVED_BY_ENTRY_ID = (0x003F, BINARY, "PidTagReceivedByEntryId");
    RECEIVED_BY_NAME = (0x0040, UNICODE, "PidTagReceivedByName");
    SENT_REPRESENTING_ENTRY_ID = (0x0041, BINARY, "PidTagSentRepresentingEntryId");
    SENT_REPRESENTING_NAME = (0x0042, UNICODE, "PidTagSentRepresentingName");
    RECEIVED_REPRESENTING_ENTRY_ID = (0x0043, BINARY, "PidTagReceivedRepresentingEntryId");
    RECEIVED_REPRESENTING_NAME = (0x0044, UNICODE, "PidTagReceivedRepresentingName");
    ORIGINAL_SUBJECT = (0x0049, UNICODE, "PidTagOriginalSubject");
    REPLY_RECIPIENT_ENTRIES = (0x004F, BINARY, "PidTagReplyRecipientEntries");
    REPLY_RECIPIENT_NAMES = (0x0050, UNICODE, "PidTagReplyRecipientNames");
    RECEIVED_BY_SEARCH_KEY = (0x0051, BINARY, "PidTagReceivedBySearchKey");
    RECEIVED_REPRESENTING_SEARCH_KEY = (0x0052, BINARY, "PidTagReceivedRepresentingSearchKey");
    MESSAGE_TO_ME = (0x0057, BOOLEAN, "PidTagMessageToMe");
    MESSAGE_CC_ME = (0x0058, BOOLEAN, "PidTagMessageCcMe");
    START_DATE = (0x0060, SYSTIME, "PidTagStartDate");
    END_DATE = (0x0061, SYSTIME, "PidTagEndDate");
    SENT_REPRESENTING_ADDRESS_TYPE = (0x0064, UNICODE, "PidTagSentRepresentingAddressType");
    SENT_REPRESENTING_EMAIL_ADDRESS = (0x0065, UNICODE, "PidTagSentRepresentingEmailAddress");
    CONVERSATION_TOPIC = (0x0070, UNICODE, "PidTagConversationTopic");
    CONVERSATION_INDEX = (0x0071, BINARY, "PidTagConversationIndex");
    RECEIVED_BY_ADDRESS_TYPE = (0x0075, UNICODE, "PidTagReceivedByAddressType");
    RECEIVED_BY_EMAIL_ADDRESS = (0x0076, UNICODE, "PidTagReceivedByEmailAddress");
    RECEIVED_REPRESENTING_ADDRESS_TYPE = (0x0077, UNICODE, "PidTagReceivedRepresentingAddressType");
    RECEIVED_REPRESENTING_EMAIL_ADDRESS = (0x0078, UNICODE, "PidTagReceivedRepresentingEmailAddress");
    TRANSPORT_MESSAGE_HEADERS = (0x007D, UNICODE, "PidTagTransportMessageHeaders");
    NON_RECEIPT_NOTIFICATION_REQUESTED = (0x0C06, BOOLEAN, "PidTagNonReceiptNotificationRequested");
    RECIPIENT_TYPE = (0x0C15, I32, "PidTagRecipientType");
    SENDER_ENTRY_ID = (0x0C19, BINARY, "PidTagSenderEntryId");
    SENDER_NAME = (0x0C1A, UNICODE, "PidTagSenderName");
    SENDER_SEARCH_KEY = (0x0C1D, BINARY, "PidTagSenderSearchKey");
    SENDER_ADDRESS_TYPE = (0x0C1E, UNICODE, "PidTagSenderAddressType");
    SENDER_EMAIL_ADDRESS = (0x0C1F, UNICODE, "PidTagSenderEmailAddress");
    DELETE_AFTER_SUBMIT = (0x0E01, BOOLEAN, "PidTagDeleteAfterSubmit");
    DISPLAY_BCC = (0x0E02, UNICODE, "PidTagDisplayBcc");
    DISPLAY_CC = (0x0E03, UNICODE, "PidTagDisplayCc");
    DISPLAY_TO = (0x0E04, UNICODE, "PidTagDisplayTo");
    MESSAGE_DELIVERY_TIME = (0x0E06, SYSTIME, "PidTagMessageDeliveryTime");
    MESSAGE_FLAGS = (0x0E07, I32, "PidTagMessageFlags");
    MESSAGE_SIZE = (0x0E08, I32, "PidTagMessageSize");
    RESPONSIBILITY = (0x0E0F, BOOLEAN, "PidTagResponsibility");
    MESSAGE_RECIPIENTS = (0x0E12, OBJECT, "PidTagMessageRecipients");
    MESSAGE_ATTACHMENTS = (0x0E13, OBJECT, "PidTagMessageAttachments");
    HAS_ATTACHMENTS = (0x0E1B, BOOLEAN, "PidTagHasAttachments");
    NORMALIZED_SUBJECT = (0x0E1D, UNICODE, "PidTagNormalizedSubject");
    RTF_IN_SYNC = (0x0E1F, BOOLEAN, "PidTagRtfInSync");
    ATTACH_SIZE = (0x0E20, I32, "PidTagAttachSize");
    ATTACH_NUMBER = (0x0E21, I32, "PidTagAttachNumber");
    TODO_ITEM_FLAGS = (0x0E2B, I32, "PidTagToDoItemFlags");
    TRUST_SENDER = (0x0E79, I32, "PidTagTrustSender");
    ACCESS = (0x0FF4, I32, "PidTagAccess");
    INSTANCE_KEY = (0x0FF6, BINARY, "PidTagInstanceKey");
    ACCESS_LEVEL = (0x0FF7, I32, "PidTagAccessLevel");
    MAPPING_SIGNATURE = (0x0FF8, BINARY, "PidTagMappingSignature");
    RECORD_KEY = (0x0FF9, BINARY, "PidTagRecordKey");
    OBJECT_TYPE = (0x0FFE, I32, "PidTagObjectType");
    ENTRY_ID = (0x0FFF, BINARY, "PidTagEntryId");
    // ---- body ----
    BODY = (0x1000, UNICODE, "PidTagBody");
    RTF_COMPRESSED = (0x1009, BINARY, "PidTagRtfCompressed");
    HTML = (0x1013, BINARY, "PidTagHtml");
    BODY_CONTENT_LOCATION = (0x1014, UNICODE, "PidTagBodyContentLocation");
    BODY_CONTENT_ID = (0x1015, UNICODE, "PidTagBodyContentId");
    NATIVE_BODY = (0x1016, I32, "PidTagNativeBody");
    INTERNET_MESSAGE_ID = (0x1035, UNICODE, "PidTagInternetMessageId");
    INTERNET_REFERENCES = (0x1039, UNICODE, "PidTagInternetReferences");
    IN_REPLY_TO_ID = (0x1042, UNICODE, "PidTagInReplyToId");
    LIST_HELP = (0x1043, UNICODE, "PidTagListHelp");
    LIST_SUBSCRIBE = (0x1044, UNICODE, "PidTagListSubscribe");
    LIST_UNSUBSCRIBE = (0x1045, UNICODE, "PidTagListUnsubscribe");
    ICON_INDEX = (0x1080, I32, "PidTagIconIndex");
    LAST_VERB_EXECUTED = (0x1081, I32, "PidTagLastVerbExecuted");
    LAST_VERB_EXECUTION_TIME = (0x1082, SYSTIME, "PidTagLastVerbExecutionTime");
    FLAG_STATUS = (0x1090, I32, "PidTagFlagStatus");
    FLAG_COMPLETE_TIME = (0x1091, SYSTIME, "PidTagFlagCompleteTime");
    // ---- common object ----
    ROWID = (0x3000, I32, "PidTagRowid");
    DISPLAY_NAME = (0x3001, UNICODE, "PidTagDisplayName");
    ADDRESS_TYPE = (0x3002, UNICODE, "PidTagAddressType");
    EMAIL_ADDRESS = (0x3003, UNICODE, "PidTagEmailAddress");
    COMMENT = (0x3004, UNICODE, "PidTagComment");
    CREATION_TIME = (0x3007, SYSTIME, "PidTagCreationTime");
    LAST_MODIFICATION_TIME = (0x3008, SYSTIME, "PidTagLastModificationTime");
    SEARCH_KEY = (0x300B, BINARY, "PidTagSearchKey");
    STORE_SUPPORT_MASK = (0x340D, I32, "PidTagStoreSupportMask");
    // ---- folder ----
    FOLDER_TYPE = (0x3601, I32, "PidTagFolderType");
    CONTENT_COUNT = (0x3602, I32, "PidTagContentCount");
    CONTENT_UNREAD_COUNT = (0x3603, I32, "PidTagContentUnreadCount");
    SUBFOLDERS = (0x360A, BOOLEAN, "PidTagSubfolders");
    CONTAINER_HIERARCHY = (0x360E, OBJECT, "PidTagContainerHierarchy");
    CONTAINER_CONTENTS = (0x360F, OBJECT, "PidTagContainerContents");
    FOLDER_ASSOCIATED_CONTENTS = (0x3610, OBJECT, "PidTagFolderAssociatedContents");
    CONTAINER_CLASS = (0x3613, UNICODE, "PidTagContainerClass");
    // ---- attachment ----
    ATTACH_DATA_BINARY = (0x3701, BINARY, "PidTagAttachDataBinary");
    ATTACH_ENCODING = (0x3702, BINARY, "PidTagAttachEncoding");
    ATTACH_EXTENSION = (0x3703, UNICODE, "PidTagAttachExtension");
    ATTACH_FILENAME = (0x3704, UNICODE, "PidTagAttachFilename");
    ATTACH_METHOD = (0x3705, I32, "PidTagAttachMethod");
    ATTACH_LONG_FILENAME = (0x3707, UNICODE, "PidTagAttachLongFilename");
    ATTACH_PATHNAME = (0x3708, UNICODE, "PidTagAttachPathname");
    ATTACH_RENDERING = (0x3709, BINARY, "PidTagAttachRendering");
    ATTACH_TAG = (0x370A, BINARY, "PidTagAttachTag");
    RENDERING_POSITION = (0x370B, I32, "PidTagRenderingPosition");
    ATTACH_LONG_PATHNAME = (0x370D, UNICODE, "PidTagAttachLongPathname");
    ATTACH_MIME_TAG = (0x370E, UNICODE, "PidTagAttachMimeTag");
    ATTACH_ADDITIONAL_INFORMATION = (0x370F, BINARY, "PidTagAttachAdditionalInformation");
    ATTACH_CONTENT_BASE = (0x3711, UNICODE, "PidTagAttachContentBase");
    ATTACH_CONTENT_ID = (0x3712, UNICODE, "PidTagAttachContentId");
    ATTACH_CONTENT_LOCATION = (0x3713, UNICODE, "PidTagAttachContentLocation");
    ATTACH_FLAGS = (0x3714, I32, "PidTagAttachFlags");
    // ---- recipient / address book ----
    DISPLAY_TYPE = (0x3900, I32, "PidTagDisplayType");
    DISPLAY_TYPE_EX = (0x3905, I32, "PidTagDisplayTypeEx");
    SMTP_ADDRESS = (0x39FE, UNICODE, "PidTagSmtpAddress");
    GENERATION = (0x3A05, UNICODE, "PidTagGeneration");
    GIVEN_NAME = (0x3A06, UNICODE, "PidTagGivenName");
    BUSINESS_TELEPHONE_NUMBER = (0x3A08, UNICODE, "PidTagBusinessTelephoneNumber");
    HOME_TELEPHONE_NUMBER = (0x3A09, UNICODE, "PidTagHomeTelephoneNumber");
    INITIALS = (0x3A0A, UNICODE, "PidTagInitials");
    SURNAME = (0x3A11, UNICODE, "PidTagSurname");
    COMPANY_NAME = (0x3A16, UNICODE, "PidTagCompanyName");
    TITLE = (0x3A17, UNICODE, "PidTagTitle");
    DEPARTMENT_NAME = (0x3A18, UNICODE, "PidTagDepartmentName");
    MOBILE_TELEPHONE_NUMBER = (0x3A1C, UNICODE, "PidTagMobileTelephoneNumber");
    TRANSMITTABLE_DISPLAY_NAME = (0x3A20, UNICODE, "PidTagTransmittableDisplayName");
    SEND_RICH_INFO = (0x3A40, BOOLEAN, "PidTagSendRichInfo");
    BIRTHDAY = (0x3A42, SYSTIME, "PidTagBirthday");
    MIDDLE_NAME = (0x3A44, UNICODE, "PidTagMiddleName");
    DISPLAY_NAME_PREFIX = (0x3A45, UNICODE, "PidTagDisplayNamePrefix");
    NICKNAME = (0x3A4F, UNICODE, "PidTagNickname");
    SEND_INTERNET_ENCODING = (0x3A71, I32, "PidTagSendInternetEncoding");
    // ---- message store ----
    PREVIEW = (0x3FD9, UNICODE, "PidTagPreview");
    INTERNET_CODEPAGE = (0x3FDE, I32, "PidTagInternetCodepage");
    MESSAGE_LOCALE_ID = (0x3FF1, I32, "PidTagMessageLocaleId");
    CREATOR_NAME = (0x3FF8, UNICODE, "PidTagCreatorName");
    LAST_MODIFIER_NAME = (0x3FFA, UNICODE, "PidTagLastModifierName");
    MESSAGE_CODEPAGE = (0x3FFD, I32, "PidTagMessageCodepage");
    INTERNET_MAIL_OVERRIDE_FORMAT = (0x5902, I32, "PidTagInternetMailOverrideFormat");
    MESSAGE_EDITOR_FORMAT = (0x5909, I32, "PidTagMessageEditorFormat");
    SENDER_SMTP_ADDRESS = (0x5D01, UNICODE, "PidTagSenderSmtpAddress");
    SENT_REPRESENTING_SMTP_ADDRESS = (0x5D02, UNICODE, "PidTagSentRepresentingSmtpAddress");
    RECEIVED_BY_SMTP_ADDRESS = (0x5D07, UNICODE, "PidTagReceivedBySmtpAddress");
    RECEIVED_REPRESENTING_SMTP_ADDRESS = (0x5D08, UNICODE, "PidTagReceivedRepresentingSmtpAddress");
    RECIPIENT_ORDER = (0x5FDF, I32, "PidTagRecipientOrder");
    RECIPIENT_DISPLAY_NAME = (0x5FF6, UNICODE, "PidTagRecipientDisplayName");
    RECIPIENT_ENTRY_ID = (0x5FF7, BINARY, "PidTagRecipientEntryId");
    RECIPIENT_TRACK_STATUS_TIME = (0x5FFB, SYSTIME, "PidTagRecipientTrackStatusTime");
    RECIPIENT_FLAGS = (0x5FFD, I32, "PidTagRecipientFlags");
    RECIPIENT_TRACK_STATUS = (0x5FFF, I32, "PidTagRecipientTrackStatus");
    SOURCE_KEY = (0x65E0, BINARY, "PidTagSourceKey");
    PARENT_SOURCE_KEY = (0x65E1, BINARY, "PidTagParentSourceKey");
    CHANGE_KEY = (0x65E2, BINARY, "PidTagChangeKey");
    PREDECESSOR_CHANGE_LIST = (0x65E3, BINARY, "PidTagPredecessorChangeList");
    LOCAL_COMMIT_TIME = (0x6709, SYSTIME, "PidTagLocalCommitTime");
    ASSOCIATED = (0x67AA, BOOLEAN, "PidTagAssociated");
    ATTACHMENT_LINK_ID = (0x7FFA, I32, "PidTagAttachmentLinkId");
    EXCEPTION_START_TIME = (0x7FFB, SYSTIME, "PidTagExceptionStartTime");
    EXCEPTION_END_TIME = (0x7FFC, SYSTIME, "PidTagExceptionEndTime");
    ATTACHMENT_FLAGS = (0x7FFD, I32, "PidTagAttachmentFlags");
    ATTACHMENT_HIDDEN = (0x7FFE, BOOLEAN, "PidTagAttachmentHidden");
    ATTACHMENT_CONTACT_PHOTO = (0x7FFF, BOOLEAN, "PidTagAttachmentContactPhoto");
}

/// Alternative names for ids that carry another property under another type.
static ALIASES: &[PropDef] = &[PropDef {
    name: "PidTagBodyHtml",
    id: 0x1013,
    ptype: ptype::UNICODE,
}];

/// FTS markers and meta-property tags, as defined by the codec.
pub use fts::markers as marker;
pub use fts::markers::meta;

static META_NAMES: &[(u16, &str)] = &[
    (0x4016, "MetaTagFXDelProp"),
    (0x4008, "MetaTagDnPrefix"),
    (0x400F, "MetaTagEcWarning"),
    (0x4011, "MetaTagNewFXFolder"),
    (0x407C, "MetaTagIncrSyncGroupId"),
    (0x407A, "MetaTagIncrementalSyncMessagePartial"),
    (0x4017, "MetaTagIdsetGiven"),
];

/// The name of a marker (`StartRecip`, …), by its full 32-bit value.
pub fn marker_name(value: u32) -> Option<&'static str> {
    fts::markers::name(value)
}

/// The marker value for a marker name (exact spelling as in [`marker_name`]).
pub fn marker_by_name(name: &str) -> Option<u32> {
    fts::markers::ALL
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(v, _)| *v)
}

/// Coarse class of a type word, so that `0x001F`, `0x84B0` and `0x001E` all
/// count as "string" when matching a table entry.
fn type_class(t: u16) -> u16 {
    match fts::TypeInfo::of(t) {
        Some(info) => {
            let base = if info.codepage.is_some() || info.base == ptype::STRING8 {
                ptype::UNICODE
            } else {
                info.base
            };
            if info.multi { base | ptype::MV } else { base }
        }
        None => t,
    }
}

/// The canonical name of a tagged property.
///
/// `tag_or_id` is either a full 32-bit tag (the type selects between entries
/// sharing an id, e.g. `PidTagHtml` 0x10130102 vs `PidTagBodyHtml`
/// 0x1013001F; string types match in any form: 0x001F, 0x001E, 0x84B0) or a
/// bare 16-bit property id. Meta-properties are named too
/// (`MetaTagFXDelProp`). Named-property ids (>= 0x8000) are stream-local and
/// have no fixed name: they return None.
pub fn name_of(tag_or_id: u32) -> Option<&'static str> {
    let (id, ty) = if tag_or_id > 0xFFFF {
        ((tag_or_id >> 16) as u16, Some(tag_or_id as u16))
    } else {
        (tag_or_id as u16, None)
    };
    if id >= 0x8000 {
        return None;
    }
    if (0x4000..0x4080).contains(&id)
        && let Some((_, n)) = META_NAMES.iter().find(|(i, _)| *i == id)
    {
        return Some(n);
    }
    let all = || PROPS.iter().chain(ALIASES.iter());
    if let Some(ty) = ty {
        let class = type_class(ty);
        if let Some(def) = all().find(|d| d.id == id && type_class(d.ptype) == class) {
            return Some(def.name);
        }
    }
    all().find(|d| d.id == id).map(|d| d.name)
}

/// The table entry for a canonical name (`"PidTagSubject"`).
pub fn by_name(name: &str) -> Option<&'static PropDef> {
    PROPS.iter().chain(ALIASES.iter()).find(|d| d.name == name)
}

/// PidTagMessageFlags bits.
pub mod message_flags {
    pub const READ: u32 = 0x0001;
    pub const UNMODIFIED: u32 = 0x0002;
    pub const SUBMITTED: u32 = 0x0004;
    pub const UNSENT: u32 = 0x0008;
    pub const HAS_ATTACH: u32 = 0x0010;
    pub const FROM_ME: u32 = 0x0020;
    pub const FAI: u32 = 0x0040;
    pub const RESEND: u32 = 0x0080;
    pub const EVER_READ: u32 = 0x0400;
}

/// PidTagAttachMethod values.
pub mod attach_method {
    pub const NONE: i32 = 0;
    pub const BY_VALUE: i32 = 1;
    pub const BY_REFERENCE: i32 = 2;
    pub const BY_REFERENCE_ONLY: i32 = 4;
    pub const EMBEDDED_MESSAGE: i32 = 5;
    pub const STORAGE: i32 = 6;
    pub const BY_WEB_REFERENCE: i32 = 7;
}

/// PidTagAttachFlags bit: the attachment is rendered in the body.
pub const ATT_RENDERED_IN_BODY: i32 = 0x4;

/// PidTagRecipientType values.
pub mod recipient_type {
    pub const ORIG: i32 = 0;
    pub const TO: i32 = 1;
    pub const CC: i32 = 2;
    pub const BCC: i32 = 3;
}

/// PidTagNativeBody values.
pub mod native_body {
    pub const UNDEFINED: i32 = 0;
    pub const PLAIN_TEXT: i32 = 1;
    pub const RTF: i32 = 2;
    pub const HTML: i32 = 3;
    pub const CLEAR_SIGNED: i32 = 4;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_ids_agree() {
        assert_eq!(tag::SUBJECT, 0x0037_001F);
        assert_eq!(id::SUBJECT, 0x0037);
        assert_eq!(tag::HTML, 0x1013_0102);
        assert_eq!(tag::MESSAGE_DELIVERY_TIME, 0x0E06_0040);
        assert_eq!(tag::CONTAINER_CLASS, 0x3613_001F);
        assert_eq!(tag::MESSAGE_RECIPIENTS, 0x0E12_000D);
        assert_eq!(tag::MESSAGE_ATTACHMENTS, 0x0E13_000D);
        assert_eq!(tag::ROWID, 0x3000_0003);
        assert_eq!(tag::ATTACHMENT_HIDDEN, 0x7FFE_000B);
        for d in PROPS {
            assert_eq!(d.tag() >> 16, d.id as u32);
        }
    }

    #[test]
    fn ids_are_unique() {
        let mut ids: Vec<u16> = PROPS.iter().map(|d| d.id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "duplicate id in PROPS");
    }

    #[test]
    fn names() {
        assert_eq!(name_of(0x0037_001F), Some("PidTagSubject"));
        assert_eq!(name_of(0x0037_84B0), Some("PidTagSubject"));
        assert_eq!(name_of(0x0037_001E), Some("PidTagSubject"));
        assert_eq!(name_of(0x0037), Some("PidTagSubject"));
        assert_eq!(name_of(0x1013_0102), Some("PidTagHtml"));
        assert_eq!(name_of(0x1013_84B0), Some("PidTagBodyHtml"));
        assert_eq!(name_of(0x1013_001F), Some("PidTagBodyHtml"));
        assert_eq!(name_of(0x4016_0003), Some("MetaTagFXDelProp"));
        assert_eq!(name_of(0x4008_84E4), Some("MetaTagDnPrefix"));
        assert_eq!(name_of(0x8001_0003), None);
        assert_eq!(name_of(0x1234_0003), None);
        // A known id under an unexpected type still gets its name.
        assert_eq!(name_of(0x0037_0102), Some("PidTagSubject"));
        assert_eq!(by_name("PidTagSubject").map(|d| d.tag()), Some(0x0037_001F));
        assert_eq!(marker_name(0x4003_0003), Some("StartRecip"));
        assert_eq!(marker_by_name("EndEmbed"), Some(0x4002_0003));
        assert_eq!(marker_name(0x4016_0003), None);
    }
}
