//! Resource paths, parsed the way an OData service reads them.
//!
//! axum's router matches fixed patterns, but Graph paths are OData resource
//! paths: a key may be a path segment (`folders/AAMk…`) or part of the
//! navigation segment (`folders('AAMk…')`, `mailboxes('MBX:…')`), segments
//! are case-insensitive (the beta delta docs write `admin/Exchange/Mailboxes`),
//! ids arrive percent-encoded (`MBX%3A…%40…`), `$count` is a segment, and an
//! unknown path must be answered with the first segment that could not be
//! resolved. So the whole path after the version is parsed here into a
//! [`Resource`], segment by segment, from the raw (still encoded) path; each
//! segment is percent-decoded on its own so an encoded `/` inside an id can
//! never split it.

use percent_encoding::percent_decode_str;

use crate::error::ApiError;

/// `/v1.0` or `/beta`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `v1.0`.
    V1,
    /// `beta`.
    Beta,
}

impl Version {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "v1.0",
            Version::Beta => "beta",
        }
    }

    /// Whether this is beta.
    pub fn is_beta(self) -> bool {
        self == Version::Beta
    }
}

/// Who `/users/{key}` or `/me` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserKey {
    /// `/me`: the signed-in user.
    Me,
    /// An object id or user principal name.
    Key(String),
}

/// What comes after the folder chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tail {
    /// The last folder of the chain itself.
    Folder,
    /// Its children (`/folders` when the chain is empty).
    ChildList,
    /// `…/$count` of the children.
    ChildCount,
    /// `…/delta` of the children (`/folders/delta`: every folder).
    ChildDelta,
    /// `…/items`.
    ItemList,
    /// `…/items/$count`.
    ItemCount,
    /// `…/items/delta`.
    ItemDelta,
    /// `…/items/{id}`.
    Item(String),
    /// `…/$ref` of the last folder of the chain (DELETE only).
    FolderRef,
}

/// A parsed resource path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `/users/{key}/settings/exchange`, `/me/settings/exchange`.
    ExchangeSettings(UserKey),
    /// `/admin/exchange/mailboxes/{id}`.
    Mailbox(String),
    /// `/admin/exchange/mailboxes/{id}/exportItems` (also `microsoft.graph.exportItems`).
    ExportItems(String),
    /// `/admin/exchange/mailboxes/{id}/createImportSession`.
    CreateImportSession(String),
    /// Folders and items of a mailbox. `chain` is the folder path: the first
    /// element from `folders/{id}`, the rest from `childFolders/{id}`.
    Folders {
        /// Mailbox key as given (decoded).
        mailbox: String,
        /// Folder ids / well-known names as given (decoded).
        chain: Vec<String>,
        /// What is addressed below the chain.
        tail: Tail,
    },
}

/// One decoded segment: its name and, for `name('key')`, the key.
struct Seg {
    raw: String,
    name: String,
    key: Option<String>,
}

fn decode(s: &str) -> Result<String, ApiError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| ApiError::bad_request("The request path is not valid percent-encoded UTF-8."))
}

fn split_key(decoded: String) -> Seg {
    if let Some(open) = decoded.find('(')
        && decoded.ends_with(')')
        && open > 0
    {
        let name = decoded[..open].to_owned();
        let inner = &decoded[open + 1..decoded.len() - 1];
        let key = match inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
            Some(q) => q.replace("''", "'"),
            None => inner.to_owned(),
        };
        return Seg {
            raw: decoded.clone(),
            name,
            key: Some(key),
        };
    }
    Seg {
        name: decoded.clone(),
        raw: decoded,
        key: None,
    }
}

fn is(seg: &Seg, name: &str) -> bool {
    seg.name.eq_ignore_ascii_case(name)
}

fn is_delta(seg: &Seg) -> bool {
    let n = seg.raw.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "delta" | "delta()" | "microsoft.graph.delta" | "microsoft.graph.delta()"
    )
}

fn is_count(seg: &Seg) -> bool {
    seg.raw == "$count"
}

/// Splits the version off a raw request path: `/v1.0/...` → (V1, rest).
pub fn split_version(raw_path: &str) -> Result<(Version, &str), ApiError> {
    let trimmed = raw_path.trim_start_matches('/');
    let (first, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let version = if first.eq_ignore_ascii_case("v1.0") {
        Version::V1
    } else if first.eq_ignore_ascii_case("beta") {
        Version::Beta
    } else {
        let shown = decode(first).unwrap_or_else(|_| first.to_owned());
        return Err(ApiError::unknown_segment(&shown));
    };
    Ok((version, rest))
}

/// Parses the path after the version into a [`Resource`].
pub fn parse_resource(rest: &str) -> Result<Resource, ApiError> {
    let rest = rest.trim_end_matches('/');
    let mut segs = Vec::new();
    for s in rest.split('/') {
        if s.is_empty() {
            return Err(ApiError::unknown_segment(""));
        }
        segs.push(split_key(decode(s)?));
    }
    let mut it = segs.into_iter().peekable();
    let unknown = |s: &Seg| ApiError::unknown_segment(&s.raw);

    let Some(first) = it.next() else {
        return Err(ApiError::unknown_segment(""));
    };
    // /me/settings/exchange, /users/{key}/settings/exchange
    if (is(&first, "me") && first.key.is_none()) || is(&first, "users") {
        let user = if is(&first, "me") {
            UserKey::Me
        } else if let Some(k) = first.key.clone() {
            UserKey::Key(k)
        } else {
            match it.next() {
                Some(s) => UserKey::Key(s.raw),
                None => return Err(ApiError::unknown_segment(&first.raw)),
            }
        };
        match it.next() {
            Some(s) if is(&s, "settings") && s.key.is_none() => {}
            Some(s) => return Err(unknown(&s)),
            None => return Err(ApiError::unknown_segment(&first.raw)),
        }
        match it.next() {
            Some(s) if is(&s, "exchange") && s.key.is_none() => {}
            Some(s) => return Err(unknown(&s)),
            None => return Err(ApiError::unknown_segment("settings")),
        }
        if let Some(s) = it.next() {
            return Err(unknown(&s));
        }
        return Ok(Resource::ExchangeSettings(user));
    }
    if !is(&first, "admin") || first.key.is_some() {
        return Err(unknown(&first));
    }
    match it.next() {
        Some(s) if is(&s, "exchange") && s.key.is_none() => {}
        Some(s) => return Err(unknown(&s)),
        None => return Err(unknown(&first)),
    }
    let mailbox = match it.next() {
        Some(s) if is(&s, "mailboxes") => match s.key {
            Some(k) => k,
            None => match it.next() {
                Some(k) => k.raw,
                None => return Err(unknown(&s)),
            },
        },
        Some(s) => return Err(unknown(&s)),
        None => return Err(ApiError::unknown_segment("exchange")),
    };
    let Some(next) = it.next() else {
        return Ok(Resource::Mailbox(mailbox));
    };
    if next.key.is_none() {
        let action = next.raw.to_ascii_lowercase();
        let action = action.strip_prefix("microsoft.graph.").unwrap_or(&action);
        match action {
            "exportitems" => return finish(it, Resource::ExportItems(mailbox)),
            "createimportsession" => return finish(it, Resource::CreateImportSession(mailbox)),
            _ => {}
        }
    }
    if !is(&next, "folders") {
        return Err(unknown(&next));
    }
    let mut chain = Vec::new();
    // `current` is the navigation segment being resolved: folders or childFolders.
    let mut nav = next;
    loop {
        // A key inside the navigation segment: folders('x').
        let key = match nav.key.take() {
            Some(k) => Some(k),
            None => match it.next() {
                None => {
                    let tail = Tail::ChildList;
                    return Ok(Resource::Folders {
                        mailbox,
                        chain,
                        tail,
                    });
                }
                Some(s) if is_count(&s) => {
                    return finish(
                        it,
                        Resource::Folders {
                            mailbox,
                            chain,
                            tail: Tail::ChildCount,
                        },
                    );
                }
                Some(s) if is_delta(&s) => {
                    return finish(
                        it,
                        Resource::Folders {
                            mailbox,
                            chain,
                            tail: Tail::ChildDelta,
                        },
                    );
                }
                Some(s) if s.key.is_none() => Some(s.raw),
                Some(s) => return Err(unknown(&s)),
            },
        };
        chain.extend(key);
        // After a folder: end, childFolders, items.
        match it.next() {
            None => {
                return Ok(Resource::Folders {
                    mailbox,
                    chain,
                    tail: Tail::Folder,
                });
            }
            Some(s) if is(&s, "childFolders") => nav = s,
            Some(s) if s.raw == "$ref" => {
                return finish(
                    it,
                    Resource::Folders {
                        mailbox,
                        chain,
                        tail: Tail::FolderRef,
                    },
                );
            }
            Some(mut s) if is(&s, "items") => {
                let tail = match s.key.take() {
                    Some(k) => Tail::Item(k),
                    None => match it.next() {
                        None => Tail::ItemList,
                        Some(x) if is_count(&x) => Tail::ItemCount,
                        Some(x) if is_delta(&x) => Tail::ItemDelta,
                        Some(x) if x.key.is_none() => Tail::Item(x.raw),
                        Some(x) => return Err(unknown(&x)),
                    },
                };
                return finish(
                    it,
                    Resource::Folders {
                        mailbox,
                        chain,
                        tail,
                    },
                );
            }
            Some(s) => return Err(unknown(&s)),
        }
    }
}

fn finish(mut it: impl Iterator<Item = Seg>, r: Resource) -> Result<Resource, ApiError> {
    match it.next() {
        Some(s) => Err(ApiError::unknown_segment(&s.raw)),
        None => Ok(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: &str) -> Resource {
        parse_resource(p).unwrap_or_else(|e| panic!("{p}: {}", e.message))
    }
    fn folders(mailbox: &str, chain: &[&str], tail: Tail) -> Resource {
        Resource::Folders {
            mailbox: mailbox.into(),
            chain: chain.iter().map(|s| s.to_string()).collect(),
            tail,
        }
    }

    #[test]
    fn parses_every_documented_shape() {
        let m = "MBX:a@b";
        assert_eq!(
            r("users/megan%40contoso.com/settings/exchange"),
            Resource::ExchangeSettings(UserKey::Key("megan@contoso.com".into()))
        );
        assert_eq!(
            r("users('megan@contoso.com')/settings/exchange"),
            Resource::ExchangeSettings(UserKey::Key("megan@contoso.com".into()))
        );
        assert_eq!(
            r("me/settings/exchange"),
            Resource::ExchangeSettings(UserKey::Me)
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX%3Aa%40b"),
            Resource::Mailbox(m.into())
        );
        assert_eq!(
            r("admin/Exchange/Mailboxes('MBX:a@b')"),
            Resource::Mailbox(m.into())
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders"),
            folders(m, &[], Tail::ChildList)
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders/$count"),
            folders(m, &[], Tail::ChildCount)
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders/%24count"),
            folders(m, &[], Tail::ChildCount)
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders/delta"),
            folders(m, &[], Tail::ChildDelta)
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders/microsoft.graph.delta()"),
            folders(m, &[], Tail::ChildDelta)
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders/Inbox"),
            folders(m, &["Inbox"], Tail::Folder)
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders('NJW%3D%3D')"),
            folders(m, &["NJW=="], Tail::Folder)
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders/x/childFolders"),
            folders(m, &["x"], Tail::ChildList)
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders/x/childFolders/$count"),
            folders(m, &["x"], Tail::ChildCount)
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders/x/childFolders/delta"),
            folders(m, &["x"], Tail::ChildDelta)
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders/x/childFolders/y"),
            folders(m, &["x", "y"], Tail::Folder)
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders('x')/childFolders('y')/items"),
            folders(m, &["x", "y"], Tail::ItemList)
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders/x/items/$count"),
            folders(m, &["x"], Tail::ItemCount)
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders/x/items/delta"),
            folders(m, &["x"], Tail::ItemDelta)
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders/x/items/i1"),
            folders(m, &["x"], Tail::Item("i1".into()))
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders/x/items('i1')"),
            folders(m, &["x"], Tail::Item("i1".into()))
        );
        assert_eq!(
            r("admin/exchange/mailboxes/MBX:a@b/folders/x/childFolders/y/items/i1/"),
            folders(m, &["x", "y"], Tail::Item("i1".into()))
        );
    }

    #[test]
    fn unknown_segments_are_named() {
        let seg = |p: &str| parse_resource(p).unwrap_err().message;
        assert!(seg("foo").contains("'foo'"));
        assert!(seg("admin/exchange/mailboxes/m/foo").contains("'foo'"));
        assert!(seg("admin/exchange/mailboxes/m/folders/x/messages").contains("'messages'"));
        assert!(
            seg("admin/exchange/mailboxes/m/folders/x/items/i/attachments")
                .contains("'attachments'")
        );
        assert!(seg("admin/exchange/mailboxes/m/folders/$count/x").contains("'x'"));
        assert!(seg("users/u/settings/mail").contains("'mail'"));
        assert!(seg("admin/tracing").contains("'tracing'"));
        assert_eq!(
            parse_resource("foo").unwrap_err().status,
            axum::http::StatusCode::NOT_FOUND
        );
        assert!(split_version("/v2.0/me").is_err());
        assert_eq!(split_version("/BETA/me").unwrap(), (Version::Beta, "me"));
        assert!(parse_resource("admin/exchange/mailboxes/%ff").is_err());
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn path_parser_never_panics(s in "[a-zA-Z0-9$%'()/:@.=_-]{0,60}") {
                let _ = parse_resource(&s);
                let _ = split_version(&s);
            }

            #[test]
            fn path_parser_never_panics_on_unicode(s in "\\PC{0,40}") {
                let _ = parse_resource(&s);
            }
        }
    }
}
