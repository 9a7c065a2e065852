//! The error type of the repository library.

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with enough context to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The password does not decrypt any key file of the repository.
    #[error(
        "wrong password: it does not open any key of the repository at {url}; check the password \
         (GRAPHBOX_REPO_PASSWORD / --password-file) and that this is the intended repository"
    )]
    WrongPassword { url: String },

    /// Another process holds a conflicting lock.
    #[error(
        "repository is locked by {holder}; wait for it to finish, or, if that process is gone, \
         remove the stale lock (locks older than 30 minutes or of a dead process on the same \
         host are removed automatically)"
    )]
    Locked { holder: String },

    /// `init` found a repository already there.
    #[error("a repository already exists at {url}: open it instead, or choose another location")]
    AlreadyExists { url: String },

    /// `open` found no repository.
    #[error("no repository at {url} ({detail}): create one with `graphbox init`, or check the URL")]
    NotARepository { url: String, detail: String },

    /// The repository was written by a newer format version.
    #[error(
        "the repository at {url} has format version {found}, this program reads version {supported}: \
         upgrade graphbox"
    )]
    UnsupportedVersion {
        url: String,
        found: u32,
        supported: u32,
    },

    /// A named thing (blob, snapshot, pack) does not exist.
    #[error("{what} {id} not found{hint}")]
    NotFound {
        what: &'static str,
        id: String,
        hint: String,
    },

    /// A snapshot id prefix matches more than one snapshot.
    #[error(
        "snapshot prefix '{prefix}' is ambiguous: it matches {candidates}; give more characters"
    )]
    AmbiguousPrefix { prefix: String, candidates: String },

    /// Stored data failed its integrity check.
    #[error("{what} is corrupt: {detail}")]
    Corrupt { what: String, detail: String },

    /// A caller-supplied value is unusable.
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },

    /// The storage backend failed.
    #[error("storage error while {action}: {detail}")]
    Backend { action: String, detail: String },

    /// An earlier background write (pack or index upload) failed, so blobs
    /// reported as stored may be missing: the run must not save a snapshot.
    #[error(
        "an earlier repository write failed ({0}); blobs added since the last successful flush may \
         be missing, so nothing more is committed: fix the storage problem and run the backup again"
    )]
    WriteFailed(String),
}

impl Error {
    pub(crate) fn backend(action: impl Into<String>, e: impl std::fmt::Display) -> Error {
        Error::Backend {
            action: action.into(),
            detail: e.to_string(),
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Error {
        Error::Invalid {
            what,
            detail: detail.into(),
        }
    }

    pub(crate) fn not_found(what: &'static str, id: impl Into<String>) -> Error {
        Error::NotFound {
            what,
            id: id.into(),
            hint: String::new(),
        }
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}
