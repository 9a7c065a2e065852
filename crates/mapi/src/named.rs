//! Named-property sets and well-known named properties ([MS-OXPROPS]).
//!
//! A named property is identified by its property set (a GUID) and either a
//! numeric dispid (LID) or a string name. The id >= 0x8000 in a stream's tag
//! is local to the sender's mailbox, so lookups here always compare
//! (GUID, name/dispid) and never the local id.

use fts::{Guid, NamedProp, Prop, PropName};

const fn ole(d1: u32) -> Guid {
    Guid::from_fields(d1, 0, 0, [0xC0, 0, 0, 0, 0, 0, 0, 0x46])
}

pub const PS_MAPI: Guid = ole(0x0002_0328);
pub const PS_PUBLIC_STRINGS: Guid = ole(0x0002_0329);
pub const PS_INTERNET_HEADERS: Guid = ole(0x0002_0386);
pub const PSETID_APPOINTMENT: Guid = ole(0x0006_2002);
pub const PSETID_TASK: Guid = ole(0x0006_2003);
pub const PSETID_ADDRESS: Guid = ole(0x0006_2004);
pub const PSETID_COMMON: Guid = ole(0x0006_2008);
pub const PSETID_LOG: Guid = ole(0x0006_200A);
pub const PSETID_NOTE: Guid = ole(0x0006_200E);
pub const PSETID_REPORT: Guid = ole(0x0006_2013);
pub const PSETID_REMOTE: Guid = ole(0x0006_2014);
pub const PSETID_SHARING: Guid = ole(0x0006_2040);
pub const PSETID_MEETING: Guid = Guid::from_fields(
    0x6ED8_DA90,
    0x450B,
    0x101B,
    [0x98, 0xDA, 0x00, 0xAA, 0x00, 0x3F, 0x13, 0x05],
);
pub const PSETID_MESSAGING: Guid = Guid::from_fields(
    0x41F2_8F13,
    0x83F4,
    0x4114,
    [0xA5, 0x84, 0xEE, 0xDB, 0x5A, 0x6B, 0x0B, 0xFF],
);
pub const PSETID_UNIFIED_MESSAGING: Guid = Guid::from_fields(
    0x4442_858E,
    0xA9E3,
    0x4E80,
    [0xB9, 0x00, 0x31, 0x7A, 0x21, 0x0C, 0xC1, 0x5B],
);
pub const PSETID_CALENDAR_ASSISTANT: Guid = Guid::from_fields(
    0x1100_0E07,
    0xB51B,
    0x40D6,
    [0xAF, 0x21, 0xCA, 0xA8, 0x5E, 0xDA, 0xB1, 0xD0],
);

/// Every property set we can name.
pub static SETS: &[(Guid, &str)] = &[
    (PS_MAPI, "PS_MAPI"),
    (PS_PUBLIC_STRINGS, "PS_PUBLIC_STRINGS"),
    (PS_INTERNET_HEADERS, "PS_INTERNET_HEADERS"),
    (PSETID_APPOINTMENT, "PSETID_Appointment"),
    (PSETID_TASK, "PSETID_Task"),
    (PSETID_ADDRESS, "PSETID_Address"),
    (PSETID_COMMON, "PSETID_Common"),
    (PSETID_LOG, "PSETID_Log"),
    (PSETID_NOTE, "PSETID_Note"),
    (PSETID_REPORT, "PSETID_Report"),
    (PSETID_REMOTE, "PSETID_Remote"),
    (PSETID_SHARING, "PSETID_Sharing"),
    (PSETID_MEETING, "PSETID_Meeting"),
    (PSETID_MESSAGING, "PSETID_Messaging"),
    (PSETID_UNIFIED_MESSAGING, "PSETID_UnifiedMessaging"),
    (PSETID_CALENDAR_ASSISTANT, "PSETID_CalendarAssistant"),
];

/// The conventional name of a property set (`PSETID_Common`).
pub fn set_name(guid: &Guid) -> Option<&'static str> {
    SETS.iter().find(|(g, _)| g == guid).map(|(_, n)| *n)
}

/// The property set with that conventional name (exact spelling).
pub fn set_by_name(name: &str) -> Option<Guid> {
    SETS.iter().find(|(_, n)| *n == name).map(|(g, _)| *g)
}

/// How a well-known named property is identified in its set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRef {
    Lid(u32),
    Str(&'static str),
}

/// A well-known named property: set, dispid or name, canonical type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamedDef {
    /// Canonical name, e.g. `PidLidLocation`.
    pub canonical: &'static str,
    pub set: Guid,
    pub name: NameRef,
    /// Canonical type word (strings as 0x001F, MV strings as 0x101F).
    pub ptype: u16,
}

impl NamedDef {
    /// The inline definition a stream carries for this property.
    pub fn to_named_prop(&self) -> NamedProp {
        NamedProp {
            guid: self.set,
            name: match self.name {
                NameRef::Lid(l) => PropName::Id(l),
                NameRef::Str(s) => PropName::Name(s.encode_utf16().collect()),
            },
        }
    }

    /// Whether a stream's named-property definition denotes this property.
    pub fn matches(&self, named: &NamedProp) -> bool {
        if named.guid != self.set {
            return false;
        }
        match (&named.name, self.name) {
            (PropName::Id(a), NameRef::Lid(b)) => *a == b,
            (PropName::Name(units), NameRef::Str(s)) => units.iter().copied().eq(s.encode_utf16()),
            _ => false,
        }
    }

    /// Whether `prop` is this named property (by GUID and name, whatever its local id).
    pub fn matches_prop(&self, prop: &Prop) -> bool {
        prop.named.as_ref().is_some_and(|n| self.matches(n))
    }
}

macro_rules! named {
    ($( $konst:ident = ($set:ident, $name:expr, $ty:expr, $canon:literal); )*) => {
        $( #[doc = $canon] pub const $konst: NamedDef = NamedDef {
            canonical: $canon, set: $set, name: $name, ptype: $ty,
        }; )*
        /// Every well-known named property defined here.
        pub static NAMED: &[NamedDef] = &[ $( $konst, )* ];
    };
}

use NameRef::{Lid, Str};
use fts::value::ptype::{BINARY, BOOLEAN, F64, I32, MV, SYSTIME, UNICODE};

named! {
    // PS_PUBLIC_STRINGS
    KEYWORDS = (PS_PUBLIC_STRINGS, Str("Keywords"), MV | UNICODE, "PidNameKeywords");
    // PSETID_Common
    REMINDER_DELTA = (PSETID_COMMON, Lid(0x8501), I32, "PidLidReminderDelta");
    REMINDER_TIME = (PSETID_COMMON, Lid(0x8502), SYSTIME, "PidLidReminderTime");
    REMINDER_SET = (PSETID_COMMON, Lid(0x8503), BOOLEAN, "PidLidReminderSet");
    PRIVATE = (PSETID_COMMON, Lid(0x8506), BOOLEAN, "PidLidPrivate");
    AGING_DONT_AGE_ME = (PSETID_COMMON, Lid(0x850E), BOOLEAN, "PidLidAgingDontAgeMe");
    SIDE_EFFECTS = (PSETID_COMMON, Lid(0x8510), I32, "PidLidSideEffects");
    COMMON_START = (PSETID_COMMON, Lid(0x8516), SYSTIME, "PidLidCommonStart");
    COMMON_END = (PSETID_COMMON, Lid(0x8517), SYSTIME, "PidLidCommonEnd");
    TASK_MODE = (PSETID_COMMON, Lid(0x8518), I32, "PidLidTaskMode");
    CURRENT_VERSION = (PSETID_COMMON, Lid(0x8552), I32, "PidLidCurrentVersion");
    CURRENT_VERSION_NAME = (PSETID_COMMON, Lid(0x8554), UNICODE, "PidLidCurrentVersionName");
    REMINDER_SIGNAL_TIME = (PSETID_COMMON, Lid(0x8560), SYSTIME, "PidLidReminderSignalTime");
    INTERNET_ACCOUNT_NAME = (PSETID_COMMON, Lid(0x8580), UNICODE, "PidLidInternetAccountName");
    // PSETID_Appointment
    APPOINTMENT_SEQUENCE = (PSETID_APPOINTMENT, Lid(0x8201), I32, "PidLidAppointmentSequence");
    BUSY_STATUS = (PSETID_APPOINTMENT, Lid(0x8205), I32, "PidLidBusyStatus");
    LOCATION = (PSETID_APPOINTMENT, Lid(0x8208), UNICODE, "PidLidLocation");
    APPOINTMENT_START_WHOLE = (PSETID_APPOINTMENT, Lid(0x820D), SYSTIME, "PidLidAppointmentStartWhole");
    APPOINTMENT_END_WHOLE = (PSETID_APPOINTMENT, Lid(0x820E), SYSTIME, "PidLidAppointmentEndWhole");
    APPOINTMENT_DURATION = (PSETID_APPOINTMENT, Lid(0x8213), I32, "PidLidAppointmentDuration");
    APPOINTMENT_COLOR = (PSETID_APPOINTMENT, Lid(0x8214), I32, "PidLidAppointmentColor");
    APPOINTMENT_SUB_TYPE = (PSETID_APPOINTMENT, Lid(0x8215), BOOLEAN, "PidLidAppointmentSubType");
    APPOINTMENT_RECUR = (PSETID_APPOINTMENT, Lid(0x8216), BINARY, "PidLidAppointmentRecur");
    APPOINTMENT_STATE_FLAGS = (PSETID_APPOINTMENT, Lid(0x8217), I32, "PidLidAppointmentStateFlags");
    RESPONSE_STATUS = (PSETID_APPOINTMENT, Lid(0x8218), I32, "PidLidResponseStatus");
    RECURRING = (PSETID_APPOINTMENT, Lid(0x8223), BOOLEAN, "PidLidRecurring");
    INTENDED_BUSY_STATUS = (PSETID_APPOINTMENT, Lid(0x8224), I32, "PidLidIntendedBusyStatus");
    TIME_ZONE_DESCRIPTION = (PSETID_APPOINTMENT, Lid(0x8234), UNICODE, "PidLidTimeZoneDescription");
    // PSETID_Task
    TASK_STATUS = (PSETID_TASK, Lid(0x8101), I32, "PidLidTaskStatus");
    PERCENT_COMPLETE = (PSETID_TASK, Lid(0x8102), F64, "PidLidPercentComplete");
    TASK_START_DATE = (PSETID_TASK, Lid(0x8104), SYSTIME, "PidLidTaskStartDate");
    TASK_DUE_DATE = (PSETID_TASK, Lid(0x8105), SYSTIME, "PidLidTaskDueDate");
    TASK_DATE_COMPLETED = (PSETID_TASK, Lid(0x810F), SYSTIME, "PidLidTaskDateCompleted");
    TASK_COMPLETE = (PSETID_TASK, Lid(0x811C), BOOLEAN, "PidLidTaskComplete");
    TASK_OWNER = (PSETID_TASK, Lid(0x811F), UNICODE, "PidLidTaskOwner");
    // PSETID_Address
    FILE_UNDER = (PSETID_ADDRESS, Lid(0x8005), UNICODE, "PidLidFileUnder");
    FILE_UNDER_ID = (PSETID_ADDRESS, Lid(0x8006), I32, "PidLidFileUnderId");
    WORK_ADDRESS = (PSETID_ADDRESS, Lid(0x801B), UNICODE, "PidLidWorkAddress");
    INSTANT_MESSAGING_ADDRESS = (PSETID_ADDRESS, Lid(0x8062), UNICODE, "PidLidInstantMessagingAddress");
    EMAIL1_DISPLAY_NAME = (PSETID_ADDRESS, Lid(0x8080), UNICODE, "PidLidEmail1DisplayName");
    EMAIL1_ADDRESS_TYPE = (PSETID_ADDRESS, Lid(0x8082), UNICODE, "PidLidEmail1AddressType");
    EMAIL1_EMAIL_ADDRESS = (PSETID_ADDRESS, Lid(0x8083), UNICODE, "PidLidEmail1EmailAddress");
    EMAIL1_ORIGINAL_DISPLAY_NAME = (PSETID_ADDRESS, Lid(0x8084), UNICODE, "PidLidEmail1OriginalDisplayName");
    EMAIL2_DISPLAY_NAME = (PSETID_ADDRESS, Lid(0x8090), UNICODE, "PidLidEmail2DisplayName");
    EMAIL2_EMAIL_ADDRESS = (PSETID_ADDRESS, Lid(0x8093), UNICODE, "PidLidEmail2EmailAddress");
    // PSETID_Note
    NOTE_COLOR = (PSETID_NOTE, Lid(0x8B00), I32, "PidLidNoteColor");
    NOTE_WIDTH = (PSETID_NOTE, Lid(0x8B02), I32, "PidLidNoteWidth");
    NOTE_HEIGHT = (PSETID_NOTE, Lid(0x8B03), I32, "PidLidNoteHeight");
    NOTE_X = (PSETID_NOTE, Lid(0x8B04), I32, "PidLidNoteX");
    NOTE_Y = (PSETID_NOTE, Lid(0x8B05), I32, "PidLidNoteY");
    // PSETID_Log
    LOG_TYPE = (PSETID_LOG, Lid(0x8700), UNICODE, "PidLidLogType");
    LOG_START = (PSETID_LOG, Lid(0x8706), SYSTIME, "PidLidLogStart");
    LOG_DURATION = (PSETID_LOG, Lid(0x8707), I32, "PidLidLogDuration");
    LOG_END = (PSETID_LOG, Lid(0x8708), SYSTIME, "PidLidLogEnd");
    // PSETID_Meeting
    GLOBAL_OBJECT_ID = (PSETID_MEETING, Lid(0x0003), BINARY, "PidLidGlobalObjectId");
    CLEAN_GLOBAL_OBJECT_ID = (PSETID_MEETING, Lid(0x0023), BINARY, "PidLidCleanGlobalObjectId");
}

/// The well-known definition a stream's named-property definition denotes, if any.
pub fn lookup(named: &NamedProp) -> Option<&'static NamedDef> {
    NAMED.iter().find(|d| d.matches(named))
}

/// A string-named property of PS_INTERNET_HEADERS for a header (name lower-cased,
/// as Exchange stores them).
pub fn internet_header(name: &str) -> NamedProp {
    NamedProp {
        guid: PS_INTERNET_HEADERS,
        name: PropName::Name(name.to_ascii_lowercase().encode_utf16().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_bytes_and_text() {
        assert_eq!(
            PSETID_COMMON.0,
            [
                0x08, 0x20, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x46
            ]
        );
        assert_eq!(
            PS_PUBLIC_STRINGS.to_string(),
            "00020329-0000-0000-c000-000000000046"
        );
        assert_eq!(
            PSETID_MEETING.to_string(),
            "6ed8da90-450b-101b-98da-00aa003f1305"
        );
        assert_eq!(
            Guid::parse("{41F28F13-83F4-4114-A584-EEDB5A6B0BFF}"),
            Some(PSETID_MESSAGING)
        );
        assert_eq!(set_name(&PSETID_TASK), Some("PSETID_Task"));
        assert_eq!(set_by_name("PSETID_Address"), Some(PSETID_ADDRESS));
    }

    #[test]
    fn matching_is_by_set_and_name() {
        let kw = KEYWORDS.to_named_prop();
        assert!(KEYWORDS.matches(&kw));
        assert_eq!(lookup(&kw), Some(&KEYWORDS));
        let other_set = NamedProp {
            guid: PSETID_COMMON,
            name: kw.name.clone(),
        };
        assert!(!KEYWORDS.matches(&other_set));
        let lower = NamedProp {
            guid: PS_PUBLIC_STRINGS,
            name: PropName::Name("keywords".encode_utf16().collect()),
        };
        assert!(!KEYWORDS.matches(&lower));
        let loc = LOCATION.to_named_prop();
        assert_eq!(loc.name, PropName::Id(0x8208));
        assert!(!TASK_DUE_DATE.matches(&loc));
        assert_eq!(lookup(&loc).map(|d| d.canonical), Some("PidLidLocation"));
    }

    #[test]
    fn named_table_is_unique() {
        for (i, a) in NAMED.iter().enumerate() {
            for b in &NAMED[i + 1..] {
                assert!(
                    !(a.set == b.set && a.name == b.name),
                    "{} duplicates {}",
                    a.canonical,
                    b.canonical
                );
            }
        }
    }
}
