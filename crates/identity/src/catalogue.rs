//! The permission catalogue of the API graphbox serves: the Microsoft Graph
//! permissions its operations accept (reference/graph-api.md §2), with
//! Microsoft's permission ids where Microsoft publishes them, and whether a
//! delegated permission needs an administrator's consent.

use store::directory::PermissionKind;

/// One catalogue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatalogueEntry {
    pub value: &'static str,
    pub kind: PermissionKind,
    /// Microsoft's id (oauth2PermissionScope / appRole id) where published.
    pub id: Option<&'static str>,
    /// Whether only an administrator may consent (always for application roles).
    pub admin_consent_required: bool,
}

const fn d(value: &'static str, id: Option<&'static str>, admin: bool) -> CatalogueEntry {
    CatalogueEntry {
        value,
        kind: PermissionKind::Delegated,
        id,
        admin_consent_required: admin,
    }
}

const fn a(value: &'static str, id: Option<&'static str>) -> CatalogueEntry {
    CatalogueEntry {
        value,
        kind: PermissionKind::Application,
        id,
        admin_consent_required: true,
    }
}

/// Every permission graphbox knows. Mailbox permissions other than the
/// delegated `MailboxItem.ImportExport` have no published id (None).
pub const CATALOGUE: &[CatalogueEntry] = &[
    d(
        "User.Read",
        Some("e1fe6dd8-ba31-4d61-89e7-88639da4683d"),
        false,
    ),
    d(
        "User.Read.All",
        Some("a154be20-db9c-4678-8ab7-66f6cc099a59"),
        true,
    ),
    d(
        "User.ReadWrite.All",
        Some("204e0828-b5ca-4ad8-b9f3-f32a958e7cc4"),
        true,
    ),
    d("MailboxFolder.Read", None, false),
    d("MailboxFolder.ReadWrite", None, false),
    d("MailboxItem.Read", None, false),
    d("MailboxItem.ReadWrite", None, false),
    d("MailboxItem.Export", None, true),
    d(
        "MailboxItem.ImportExport",
        Some("df96e8a0-f4e1-4ecf-8d83-a429f822cbd6"),
        true,
    ),
    d(
        "offline_access",
        Some("7427e0e9-2fba-42fe-b0c0-848c9e6a8182"),
        false,
    ),
    d(
        "openid",
        Some("37f7f235-527c-4136-accd-4a02d197296e"),
        false,
    ),
    d(
        "profile",
        Some("14dad69e-099b-42c9-810b-d002981feec1"),
        false,
    ),
    d("email", Some("64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0"), false),
    a(
        "User.Read.All",
        Some("df021288-bdef-4463-88db-98f22de89214"),
    ),
    a(
        "User.ReadWrite.All",
        Some("741f803b-c850-494e-b5df-cde7c675a1ca"),
    ),
    a("MailboxFolder.Read.All", None),
    a("MailboxFolder.ReadWrite.All", None),
    a("MailboxItem.Read.All", None),
    a("MailboxItem.ReadWrite.All", None),
    a("MailboxItem.Export.All", None),
    a("MailboxItem.ImportExport.All", None),
];

/// The catalogue entry for `value` of `kind` (case-insensitive, as Entra).
pub fn find(kind: PermissionKind, value: &str) -> Option<&'static CatalogueEntry> {
    CATALOGUE
        .iter()
        .find(|e| e.kind == kind && e.value.eq_ignore_ascii_case(value))
}

/// The OpenID Connect scopes that are not Graph permissions.
pub fn is_oidc_scope(value: &str) -> bool {
    ["openid", "profile", "email", "offline_access"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_covers_the_permission_table() {
        for op in api::Operation::ALL {
            let row = op.permissions();
            for p in row.delegated {
                assert!(find(PermissionKind::Delegated, p).is_some(), "{p}");
            }
            for p in row.application {
                assert!(find(PermissionKind::Application, p).is_some(), "{p}");
            }
        }
        let ie = find(PermissionKind::Delegated, "mailboxitem.importexport").unwrap();
        assert_eq!(ie.id, Some("df96e8a0-f4e1-4ecf-8d83-a429f822cbd6"));
        assert!(ie.admin_consent_required);
        assert!(
            CATALOGUE
                .iter()
                .filter(|e| e.kind == PermissionKind::Application)
                .all(|e| e.admin_consent_required && e.value.ends_with(".All"))
        );
    }
}
