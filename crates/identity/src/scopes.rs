//! Scope strings of the user-facing flows, and what a user has consented to.
//!
//! A `scope` parameter mixes OpenID Connect scopes (`openid`, `profile`,
//! `email`, `offline_access`) with Graph delegated permissions, named bare
//! (`MailboxItem.Read`, Graph being the default resource as in Entra), with
//! the resource URI (`https://graph.microsoft.com/MailboxItem.Read`) or with
//! Graph's app id; `https://graph.microsoft.com/.default` stands for every
//! delegated permission the app registration requests.

use std::collections::BTreeSet;

use store::directory::{ConsentGrant, Permission, PermissionKind};
use uuid::Uuid;

use crate::catalogue;
use crate::oauth::OAuthError;

const GRAPH_PREFIXES: [&str; 3] = [
    "https://graph.microsoft.com//",
    "https://graph.microsoft.com/",
    "00000003-0000-0000-c000-000000000000/",
];

/// A parsed `scope` parameter.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Scopes {
    /// Graph delegated permissions, catalogue spelling, sorted, no duplicates.
    pub graph: Vec<String>,
    /// OpenID Connect scopes, lower case, sorted.
    pub oidc: Vec<String>,
    /// Whether the client named Graph scopes with the resource URI (the
    /// `scope` of the token response then does too).
    pub prefixed: bool,
}

impl Scopes {
    pub fn has(&self, oidc: &str) -> bool {
        self.oidc.iter().any(|s| s == oidc)
    }

    /// The `scope` of a token response: the granted Graph permissions
    /// (spelled as the client spelled them) and the OpenID Connect scopes.
    pub fn response(&self, granted: &[String]) -> String {
        let mut out: Vec<String> = granted
            .iter()
            .map(|g| {
                if self.prefixed {
                    format!("https://graph.microsoft.com/{g}")
                } else {
                    g.clone()
                }
            })
            .collect();
        out.extend(self.oidc.iter().cloned());
        out.join(" ")
    }
}

/// Parses a `scope` parameter; `registered` is the app's requested
/// permissions (what `.default` expands to).
pub(crate) fn parse(scope: &str, registered: &[Permission]) -> Result<Scopes, OAuthError> {
    let mut graph = BTreeSet::new();
    let mut oidc = BTreeSet::new();
    let mut prefixed = false;
    for raw in scope.split_whitespace() {
        if catalogue::is_oidc_scope(raw) {
            oidc.insert(raw.to_ascii_lowercase());
            continue;
        }
        let mut name = raw;
        for p in GRAPH_PREFIXES {
            if raw.len() > p.len() && raw[..p.len()].eq_ignore_ascii_case(p) {
                name = &raw[p.len()..];
                prefixed = true;
                break;
            }
        }
        if name == raw && raw.contains('/') {
            let resource = raw.rsplit_once('/').map_or(raw, |(r, _)| r);
            return Err(OAuthError::new(
                "invalid_resource",
                500011,
                format!(
                    "The resource principal named {resource} was not found in the tenant. This server only issues tokens for Microsoft Graph (https://graph.microsoft.com)."
                ),
            ));
        }
        if name.eq_ignore_ascii_case(".default") {
            graph.extend(
                registered
                    .iter()
                    .filter(|p| p.kind == PermissionKind::Delegated)
                    .filter(|p| !catalogue::is_oidc_scope(&p.value))
                    .map(|p| p.value.clone()),
            );
            continue;
        }
        match catalogue::find(PermissionKind::Delegated, name) {
            Some(e) => {
                graph.insert(e.value.to_owned());
            }
            None => {
                return Err(OAuthError::new(
                    "invalid_scope",
                    70011,
                    format!(
                        "The provided value for the input parameter 'scope' is not valid. The scope '{raw}' is not a delegated permission of this API."
                    ),
                ));
            }
        }
    }
    if graph.is_empty() && oidc.is_empty() {
        return Err(OAuthError::new(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        ));
    }
    Ok(Scopes {
        graph: graph.into_iter().collect(),
        oidc: oidc.into_iter().collect(),
        prefixed,
    })
}

/// The delegated permissions `user` holds for the app: admin grants (for
/// all users) and the user's own consents, sorted.
pub(crate) fn consented(grants: &[ConsentGrant], user: Uuid) -> Vec<String> {
    let set: BTreeSet<String> = grants
        .iter()
        .filter(|g| g.kind == PermissionKind::Delegated)
        .filter(|g| g.user_id.is_none() || g.user_id == Some(user))
        .map(|g| g.value.clone())
        .collect();
    set.into_iter().collect()
}

/// Of `wanted`, the permissions not in `held`.
pub(crate) fn missing(wanted: &[String], held: &[String]) -> Vec<String> {
    wanted
        .iter()
        .filter(|w| !held.iter().any(|h| h.eq_ignore_ascii_case(w)))
        .cloned()
        .collect()
}

/// Whether a delegated permission may only be consented by an administrator.
pub(crate) fn needs_admin(value: &str) -> bool {
    catalogue::find(PermissionKind::Delegated, value).is_none_or(|e| e.admin_consent_required)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bare_prefixed_default_and_oidc_scopes() {
        let reg = vec![
            Permission {
                kind: PermissionKind::Delegated,
                value: "MailboxItem.Read".into(),
            },
            Permission {
                kind: PermissionKind::Application,
                value: "MailboxItem.Read.All".into(),
            },
        ];
        let s = parse(
            "openid Profile offline_access https://graph.microsoft.com/mailboxfolder.read",
            &reg,
        )
        .unwrap();
        assert_eq!(s.graph, vec!["MailboxFolder.Read"]);
        assert_eq!(s.oidc, vec!["offline_access", "openid", "profile"]);
        assert!(s.prefixed);
        let s = parse("https://graph.microsoft.com/.default", &reg).unwrap();
        assert_eq!(s.graph, vec!["MailboxItem.Read"]);
        let s = parse("MailboxItem.ImportExport", &reg).unwrap();
        assert!(!s.prefixed && needs_admin(&s.graph[0]));
        assert_eq!(parse("MailboxItem.Read.All", &reg).unwrap_err().code, 70011);
        assert_eq!(parse("api://other/x", &reg).unwrap_err().code, 500011);
        assert_eq!(parse("  ", &reg).unwrap_err().code, 900144);
    }
}
