//! Marker values and meta-property tags ([MS-OXCFXICS] §2.2.4.1.4 and §2.2.4.1.5).
//!
//! A marker is recognised by its **full 32-bit value**, never by its type word:
//! `IncrSyncProgressMode` (0x4074000B), `IncrSyncProgressPerMsg` (0x4075000B) and
//! `IncrSyncGroupInfo` (0x407B0102) carry boolean/binary type words yet stand
//! alone without a value. Every other word is a property tag, including the
//! meta-properties below, which are ordinary propValues on the wire.

// ---- message markers ----
pub const START_MESSAGE: u32 = 0x400C_0003;
pub const START_FAI_MSG: u32 = 0x4010_0003;
pub const END_MESSAGE: u32 = 0x400D_0003;
pub const START_RECIP: u32 = 0x4003_0003;
pub const END_TO_RECIP: u32 = 0x4004_0003;
pub const NEW_ATTACH: u32 = 0x4000_0003;
pub const END_ATTACH: u32 = 0x400E_0003;
pub const START_EMBED: u32 = 0x4001_0003;
pub const END_EMBED: u32 = 0x4002_0003;

// ---- folder markers ----
pub const START_TOP_FLD: u32 = 0x4009_0003;
pub const START_SUB_FLD: u32 = 0x400A_0003;
pub const END_FOLDER: u32 = 0x400B_0003;

// ---- ICS markers ----
pub const INCR_SYNC_CHG: u32 = 0x4012_0003;
pub const INCR_SYNC_CHG_PARTIAL: u32 = 0x407D_0003;
pub const INCR_SYNC_DEL: u32 = 0x4013_0003;
pub const INCR_SYNC_END: u32 = 0x4014_0003;
pub const INCR_SYNC_READ: u32 = 0x402F_0003;
pub const INCR_SYNC_STATE_BEGIN: u32 = 0x403A_0003;
pub const INCR_SYNC_STATE_END: u32 = 0x403B_0003;
pub const INCR_SYNC_PROGRESS_MODE: u32 = 0x4074_000B;
pub const INCR_SYNC_PROGRESS_PER_MSG: u32 = 0x4075_000B;
pub const INCR_SYNC_MESSAGE: u32 = 0x4015_0003;
pub const INCR_SYNC_GROUP_INFO: u32 = 0x407B_0102;

// ---- errorInfo ----
pub const FX_ERROR_INFO: u32 = 0x4018_0003;

/// Every marker with its specification name.
pub const ALL: [(u32, &str); 24] = [
    (START_TOP_FLD, "StartTopFld"),
    (START_SUB_FLD, "StartSubFld"),
    (END_FOLDER, "EndFolder"),
    (START_MESSAGE, "StartMessage"),
    (START_FAI_MSG, "StartFAIMsg"),
    (END_MESSAGE, "EndMessage"),
    (START_RECIP, "StartRecip"),
    (END_TO_RECIP, "EndToRecip"),
    (NEW_ATTACH, "NewAttach"),
    (END_ATTACH, "EndAttach"),
    (START_EMBED, "StartEmbed"),
    (END_EMBED, "EndEmbed"),
    (INCR_SYNC_CHG, "IncrSyncChg"),
    (INCR_SYNC_CHG_PARTIAL, "IncrSyncChgPartial"),
    (INCR_SYNC_DEL, "IncrSyncDel"),
    (INCR_SYNC_END, "IncrSyncEnd"),
    (INCR_SYNC_READ, "IncrSyncRead"),
    (INCR_SYNC_STATE_BEGIN, "IncrSyncStateBegin"),
    (INCR_SYNC_STATE_END, "IncrSyncStateEnd"),
    (INCR_SYNC_PROGRESS_MODE, "IncrSyncProgressMode"),
    (INCR_SYNC_PROGRESS_PER_MSG, "IncrSyncProgressPerMsg"),
    (INCR_SYNC_MESSAGE, "IncrSyncMessage"),
    (INCR_SYNC_GROUP_INFO, "IncrSyncGroupInfo"),
    (FX_ERROR_INFO, "FXErrorInfo"),
];

/// The specification name of a marker, or None if `word` is not a marker.
#[inline]
pub fn name(word: u32) -> Option<&'static str> {
    // All markers have an id in 0x4000..=0x407F; reject everything else cheaply.
    if word >> 23 != 0x4000 >> 7 {
        return None;
    }
    ALL.iter().find(|(w, _)| *w == word).map(|(_, n)| *n)
}

/// True iff `word` is one of the 24 marker values.
#[inline]
pub fn is_marker(word: u32) -> bool {
    name(word).is_some()
}

/// True for the markers of the message grammar (message, recipient, attachment,
/// embedded message); false for folder, ICS and errorInfo markers.
pub fn is_message_marker(word: u32) -> bool {
    matches!(
        word,
        START_MESSAGE
            | START_FAI_MSG
            | END_MESSAGE
            | START_RECIP
            | END_TO_RECIP
            | NEW_ATTACH
            | END_ATTACH
            | START_EMBED
            | END_EMBED
    )
}

/// Meta-property tags. These are propValues (tag + value), not markers.
pub mod meta {
    /// Value: a u32 property tag naming the sub-object list to clear.
    pub const FX_DEL_PROP: u32 = 0x4016_0003;
    /// Declared PtypString8; seen as 0x400884E4 (cp 1252) in practice.
    pub const DN_PREFIX: u32 = 0x4008_001E;
    pub const EC_WARNING: u32 = 0x400F_0003;
    pub const NEW_FX_FOLDER: u32 = 0x4011_0102;
    pub const INCR_SYNC_GROUP_ID: u32 = 0x407C_0003;
    pub const INCREMENTAL_SYNC_MESSAGE_PARTIAL: u32 = 0x407A_0003;
    /// Declared PtypInteger32 but serialized as binary (u32 length + IDSET bytes).
    pub const IDSET_GIVEN: u32 = 0x4017_0003;
    pub const CNSET_SEEN: u32 = 0x6796_0102;
    pub const CNSET_SEEN_FAI: u32 = 0x67DA_0102;
    pub const CNSET_READ: u32 = 0x67D2_0102;
    pub const IDSET_DELETED: u32 = 0x67E5_0102;
    pub const IDSET_NO_LONGER_IN_SCOPE: u32 = 0x4021_0102;
    pub const IDSET_EXPIRED: u32 = 0x6793_0102;
    pub const IDSET_READ: u32 = 0x402D_0102;
    pub const IDSET_UNREAD: u32 = 0x402E_0102;
}

/// Property tags that appear as the value of MetaTagFXDelProp.
pub mod delprop {
    /// PidTagMessageRecipients.
    pub const RECIPIENTS: u32 = 0x0E12_000D;
    /// PidTagMessageAttachments.
    pub const ATTACHMENTS: u32 = 0x0E13_000D;
    /// PidTagContainerContents (folder).
    pub const CONTAINER_CONTENTS: u32 = 0x360F_000D;
    /// PidTagFolderAssociatedContents (folder).
    pub const FOLDER_ASSOCIATED_CONTENTS: u32 = 0x3610_000D;
    /// PidTagContainerHierarchy (folder).
    pub const CONTAINER_HIERARCHY: u32 = 0x360E_000D;
}

/// PidTagAttachNumber: the grammar wants it first after NewAttach.
pub const PID_TAG_ATTACH_NUMBER: u32 = 0x0E21_0003;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_marker_is_recognised_and_nothing_near_them() {
        for (w, n) in ALL {
            assert_eq!(name(w), Some(n));
        }
        assert!(!is_marker(meta::FX_DEL_PROP));
        assert!(!is_marker(meta::IDSET_GIVEN));
        assert!(!is_marker(0x4074_0003));
        assert!(!is_marker(0x0000_0003));
        assert!(!is_marker(0xC00C_0003));
    }
}
