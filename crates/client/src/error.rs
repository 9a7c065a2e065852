//! The client's error type.

use std::time::Duration;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to Graph or to the token endpoint.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Graph error envelope (`{"error":{"code","message","innerError"}}`) or
    /// another non-success answer that is not one of the more specific cases.
    #[error(
        "{method} {url} failed: HTTP {status} {code}: {message}{}",
        fmt_request_id(request_id)
    )]
    Http {
        method: String,
        /// The URL without its query string (import URLs carry a token there).
        url: String,
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// The mailbox, user, folder or item does not exist (HTTP 404).
    #[error("not found: {code}: {message} ({what}){}", fmt_request_id(request_id))]
    NotFound {
        /// What was asked for (the URL path without the query).
        what: String,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// The token endpoint refused to issue a token, or Graph refused the
    /// token (401/403 with an authentication code).
    #[error("authentication failed: {error}{}: {description}", fmt_aadsts(aadsts))]
    Auth {
        /// The OAuth `error` (`invalid_client`, …) or the Graph error code.
        error: String,
        /// `error_description` (starts with `AADSTSnnn:` on Entra ID).
        description: String,
        /// The first of `error_codes` (`7000215` = wrong secret, …).
        aadsts: Option<u64>,
        status: Option<u16>,
    },
    /// The delta token is no longer valid (HTTP 410 `syncStateNotFound` or a
    /// `resyncRequired` / `syncStateNotFound` code): start delta again from
    /// scratch (call without a link).
    #[error(
        "the delta sync state is gone (HTTP 410 syncStateNotFound): restart delta without a token{}",
        location.as_deref().map(|l| format!(" (server suggests {l})")).unwrap_or_default()
    )]
    SyncStateNotFound { location: Option<String> },
    /// Still throttled (429/503) after every allowed attempt.
    #[error(
        "{method} {url} still throttled (HTTP {status}) after {attempts} attempts; last Retry-After {retry_after:?}: lower the concurrency or retry later"
    )]
    Throttled {
        method: String,
        url: String,
        status: u16,
        attempts: u32,
        retry_after: Option<Duration>,
    },
    /// Transport failure (connect, TLS, reset, timeout) after every allowed attempt.
    #[error("{method} {url}: network error after {attempts} attempts: {message}")]
    Network {
        method: String,
        url: String,
        attempts: u32,
        message: String,
    },
    /// The answer was not what the API documents (bad JSON, bad base64, …).
    #[error("cannot decode the answer of {what}: {message}")]
    Decode { what: String, message: String },
    /// The profile or an argument is unusable.
    #[error("configuration error: {0}")]
    Config(String),
    /// The device-code sign-in did not complete.
    #[error("device code sign-in failed: {0}")]
    DeviceCode(String),
}

fn fmt_request_id(id: &Option<String>) -> String {
    id.as_deref()
        .map(|r| format!(" [request-id {r}]"))
        .unwrap_or_default()
}

fn fmt_aadsts(code: &Option<u64>) -> String {
    code.map(|c| format!(" (AADSTS{c})")).unwrap_or_default()
}

impl Error {
    /// The Graph / OAuth error code, when there is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Http { code, .. } | Error::NotFound { code, .. } => Some(code),
            Error::Auth { error, .. } => Some(error),
            Error::SyncStateNotFound { .. } => Some("syncStateNotFound"),
            Error::Throttled { .. } => Some("TooManyRequests"),
            _ => None,
        }
    }

    /// The HTTP status, when the error came from an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Http { status, .. } | Error::Throttled { status, .. } => Some(*status),
            Error::NotFound { .. } => Some(404),
            Error::Auth { status, .. } => *status,
            Error::SyncStateNotFound { .. } => Some(410),
            _ => None,
        }
    }

    /// Whether this is a per-item problem a backup should record and skip
    /// (the item is gone or its content is unreadable), as opposed to a
    /// failure of the whole run.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}
