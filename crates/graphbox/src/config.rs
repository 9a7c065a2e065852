//! Configuration: flags, then `GRAPHBOX_*` environment variables (both via clap),
//! then the optional TOML file, then the embedded defaults.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;

use crate::cli::{Global, ServeArgs};

/// Keys of the TOML file (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub meta: Option<String>,
    pub blobs: Option<String>,
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub tls: Option<bool>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub demo: Option<bool>,
    pub log_format: Option<String>,
    pub access_token_lifetime_secs: Option<i64>,
    pub clock_skew_secs: Option<u64>,
    pub key_rotation_days: Option<u32>,
    /// `[[external-issuer]]` tables (also spelled `[[external_issuer]]`).
    #[serde(default, alias = "external_issuer")]
    pub external_issuer: Vec<ExternalIssuerFile>,
}

/// One `[[external-issuer]]` table: a token issuer (e.g. a real Entra ID
/// tenant) whose access tokens the Graph side accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExternalIssuerFile {
    /// The `iss` of its tokens; `{tenantid}` stands for the token's `tid`.
    pub issuer: String,
    /// URL of its JSON Web Key Set.
    pub jwks_url: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// External tenant id (`tid`) -> graphbox tenant (id or domain).
    pub tenants: BTreeMap<String, String>,
    /// How delegated tokens find their graphbox user: "upn" (default) or "oid".
    pub user_match: Option<String>,
    /// Application role name -> graphbox permission (only mapped roles count).
    pub role_map: Option<BTreeMap<String, String>>,
    /// Delegated scope name -> graphbox permission (only mapped scopes count).
    pub scope_map: Option<BTreeMap<String, String>>,
    /// Refetch the JWKS when older than this many seconds (60 to 604800; default 3600).
    pub refresh_secs: Option<u64>,
    /// Extra PEM CA certificate(s) to trust for the JWKS URL.
    pub ca_cert: Option<PathBuf>,
}

pub const DEFAULT_DATA_DIR: &str = "graphbox-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

pub fn load_file(global: &Global) -> anyhow::Result<FileConfig> {
    let Some(path) = &global.config else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    toml::from_str(&text).with_context(|| {
        format!(
            "the configuration file {} is not valid (keys: data-dir, meta, blobs, listen, public-url, tls, tls-cert, tls-key, demo, log-format, access-token-lifetime-secs, clock-skew-secs, key-rotation-days, [[external-issuer]])",
            path.display()
        )
    })
}

/// The settings `serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub listen: String,
    pub public_url: Option<String>,
    pub tls: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub demo: bool,
    pub log_format: String,
    /// Lifetime of the access tokens the identity endpoints issue.
    pub access_token_lifetime: time::Duration,
    /// Clock skew tolerated on `exp` / `nbf`.
    pub clock_skew: time::Duration,
    /// Rotate the signing key when the newest is this old (`None`: never).
    pub key_rotation: Option<time::Duration>,
    /// Trusted external issuers, as configured (tenants resolved at start).
    pub external_issuers: Vec<ExternalIssuerFile>,
}

/// Default of `--key-rotation-days`.
pub const DEFAULT_KEY_ROTATION_DAYS: u32 = 30;

pub fn resolve_serve(global: &Global, args: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let file = load_file(global)?;
    let log_format = global
        .log_format
        .clone()
        .or(file.log_format)
        .unwrap_or_else(|| "text".into());
    if log_format != "text" && log_format != "json" {
        anyhow::bail!("log-format must be \"text\" or \"json\", not {log_format:?}");
    }
    let tls_cert = args.tls_cert.clone().or(file.tls_cert);
    let tls_key = args.tls_key.clone().or(file.tls_key);
    if tls_cert.is_some() != tls_key.is_some() {
        anyhow::bail!("give both a TLS certificate and its key, or neither");
    }
    let lifetime = args
        .access_token_lifetime_secs
        .or(file.access_token_lifetime_secs)
        .unwrap_or(api::auth::DEFAULT_TOKEN_LIFETIME_SECS);
    let (lo, hi) = (
        api::auth::MIN_TOKEN_LIFETIME_SECS,
        api::auth::MAX_TOKEN_LIFETIME_SECS,
    );
    if !(lo..=hi).contains(&lifetime) {
        anyhow::bail!(
            "access-token-lifetime-secs must be between {lo} (5 minutes) and {hi} (24 hours), not {lifetime}"
        );
    }
    let skew = args
        .clock_skew_secs
        .or(file.clock_skew_secs)
        .unwrap_or(api::auth::CLOCK_SKEW_SECS);
    if skew > api::auth::MAX_CLOCK_SKEW_SECS {
        anyhow::bail!(
            "clock-skew-secs must be between 0 and {}, not {skew}",
            api::auth::MAX_CLOCK_SKEW_SECS
        );
    }
    let rotation_days = args
        .key_rotation_days
        .or(file.key_rotation_days)
        .unwrap_or(DEFAULT_KEY_ROTATION_DAYS);
    if rotation_days > 3650 {
        anyhow::bail!("key-rotation-days must be between 0 (never) and 3650, not {rotation_days}");
    }
    Ok(ServeConfig {
        access_token_lifetime: time::Duration::seconds(lifetime),
        clock_skew: time::Duration::seconds(skew as i64),
        key_rotation: (rotation_days > 0).then(|| time::Duration::days(i64::from(rotation_days))),
        external_issuers: file.external_issuer,
        data_dir: global
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        listen: args
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into()),
        public_url: args.public_url.clone().or(file.public_url),
        tls: args.tls || file.tls.unwrap_or(false) || tls_cert.is_some(),
        tls_cert,
        tls_key,
        demo: args.demo || file.demo.unwrap_or(false),
        log_format,
    })
}

/// The data directory for the non-serve commands.
pub fn data_dir(global: &Global) -> anyhow::Result<PathBuf> {
    let file = load_file(global)?;
    Ok(global
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)))
}

/// The stores of a deployment: metadata (SQLite or PostgreSQL), the identity
/// directory (in the same database, through the same handle) and blobs.
pub struct Stores {
    pub meta: Arc<dyn store::MetaStore>,
    pub directory: Arc<dyn store::DirectoryStore>,
    pub blobs: Arc<store::BlobStore>,
}

/// The stores selected by `--meta` / `--blobs` (or `GRAPHBOX_META` /
/// `GRAPHBOX_BLOBS`, or the `meta` / `blobs` keys of the file), defaulting to
/// the embedded ones in the data directory. Both are connected and checked
/// here: a wrong URL, an unreachable database or a missing bucket fails at
/// start, not at the first request.
pub async fn open_configured_stores(global: &Global) -> anyhow::Result<Stores> {
    let file = load_file(global)?;
    let data_dir = global
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let meta = global.meta.clone().or(file.meta);
    let blobs = global.blobs.clone().or(file.blobs);
    open_store_urls(&data_dir, meta.as_deref(), blobs.as_deref()).await
}

/// What a metadata store URL selects.
#[derive(Debug, PartialEq)]
pub enum MetaUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

/// Parses `--meta`: `sqlite://PATH` (`sqlite:///abs/path` or
/// `sqlite://relative/path`) or `postgres://…` / `postgresql://…`.
pub fn parse_meta_url(url: &str) -> anyhow::Result<MetaUrl> {
    let url = url.trim();
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            anyhow::bail!(
                "the metadata store URL {url:?} has no file path (e.g. sqlite:///var/lib/graphbox/meta.sqlite)"
            );
        }
        return Ok(MetaUrl::Sqlite(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(MetaUrl::Postgres(url.to_string()));
    }
    anyhow::bail!(
        "unsupported metadata store URL {:?}: use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE",
        redact(url)
    )
}

/// `url` without its password (URLs end up in error messages and logs).
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => url.split('@').next_back().unwrap_or_default().to_string(),
    }
}

pub async fn open_store_urls(
    data_dir: &Path,
    meta_url: Option<&str>,
    blob_url: Option<&str>,
) -> anyhow::Result<Stores> {
    let meta_url = meta_url.map(parse_meta_url).transpose()?;
    let uses_data_dir = meta_url.is_none() || blob_url.is_none();
    if uses_data_dir {
        std::fs::create_dir_all(data_dir).with_context(|| {
            format!(
                "cannot create the data directory {} (choose another with --data-dir)",
                data_dir.display()
            )
        })?;
    }
    let (meta, directory) = open_meta(data_dir, meta_url).await?;
    let blobs = match blob_url {
        None => {
            let blob_dir = data_dir.join("blobs");
            store::BlobStore::local(&blob_dir)
                .with_context(|| format!("cannot open the blob store {}", blob_dir.display()))?
        }
        Some(url) => store::BlobStore::connect(url)
            .await
            .with_context(|| format!("cannot open the blob store {}", redact(url)))?,
    };
    Ok(Stores {
        meta,
        directory,
        blobs: Arc::new(blobs),
    })
}

/// The metadata store selected by a parsed `--meta` (the data directory's
/// `meta.sqlite` when `None`), and the identity directory on the same handle.
pub async fn open_meta(
    data_dir: &Path,
    meta_url: Option<MetaUrl>,
) -> anyhow::Result<(Arc<dyn store::MetaStore>, Arc<dyn store::DirectoryStore>)> {
    async fn sqlite(db: PathBuf) -> anyhow::Result<store::SqliteMetaStore> {
        store::SqliteMetaStore::open(&db)
            .await
            .with_context(|| format!("cannot open the metadata store {}", db.display()))
    }
    Ok(match meta_url {
        None => {
            let s = sqlite(data_dir.join("meta.sqlite")).await?;
            (Arc::new(s.clone()), Arc::new(s))
        }
        Some(MetaUrl::Sqlite(db)) => {
            let s = sqlite(db).await?;
            (Arc::new(s.clone()), Arc::new(s))
        }
        Some(MetaUrl::Postgres(url)) => {
            let s = store::PgMetaStore::open(&url)
                .await
                .with_context(|| format!("cannot open the metadata store {}", redact(&url)))?;
            (Arc::new(s.clone()), Arc::new(s))
        }
    })
}

/// The configured external issuers with their tenant mappings resolved
/// against the store (each graphbox tenant must exist) and CA files read.
pub async fn external_issuers(
    files: &[ExternalIssuerFile],
    meta: &dyn store::MetaStore,
) -> anyhow::Result<Vec<api::auth::ExternalIssuer>> {
    let mut out = Vec::new();
    for f in files {
        let name = &f.issuer;
        let mut tenants = HashMap::new();
        for (tid, local) in &f.tenants {
            let t = meta.find_tenant(local).await.with_context(|| {
                format!(
                    "external issuer {name:?}: tenant {tid:?} maps to {local:?}, which is no graphbox tenant (see `graphbox admin tenant list`)"
                )
            })?;
            tenants.insert(tid.clone(), t.id);
        }
        let mut e = api::auth::ExternalIssuer::new(
            f.issuer.clone(),
            f.jwks_url.clone(),
            f.audiences.clone(),
            tenants,
        );
        e.user_match = match f.user_match.as_deref() {
            None | Some("upn") => api::auth::UserMatch::Upn,
            Some("oid") => api::auth::UserMatch::Oid,
            Some(other) => anyhow::bail!(
                "external issuer {name:?}: user-match must be \"upn\" or \"oid\", not {other:?}"
            ),
        };
        let map = |m: &Option<BTreeMap<String, String>>| {
            m.as_ref()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        };
        e.role_map = map(&f.role_map);
        e.scope_map = map(&f.scope_map);
        if let Some(secs) = f.refresh_secs {
            if !(60..=604_800).contains(&secs) {
                anyhow::bail!(
                    "external issuer {name:?}: refresh-secs must be between 60 and 604800, not {secs}"
                );
            }
            e.refresh = std::time::Duration::from_secs(secs);
        }
        if let Some(path) = &f.ca_cert {
            e.ca_pem = Some(std::fs::read(path).with_context(|| {
                format!(
                    "external issuer {name:?}: cannot read the CA certificate {}",
                    path.display()
                )
            })?);
        }
        e.check()
            .map_err(|m| anyhow::anyhow!("external issuer {name:?}: {m}"))?;
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;
    use store::MetaStore;

    fn serve_config(toml: &str, flags: &[&str]) -> anyhow::Result<ServeConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("graphbox.toml");
        std::fs::write(&path, toml).unwrap();
        let mut argv = vec!["graphbox", "--config", path.to_str().unwrap(), "serve"];
        argv.extend_from_slice(flags);
        let cli = Cli::try_parse_from(argv).unwrap();
        let crate::cli::Command::Serve(args) = cli.command else {
            unreachable!("parsed serve")
        };
        resolve_serve(&cli.global, &args)
    }

    #[test]
    fn token_settings_default_then_file_then_flags() {
        let c = serve_config("", &[]).unwrap();
        assert_eq!(c.access_token_lifetime, time::Duration::seconds(3599));
        assert_eq!(c.clock_skew, time::Duration::seconds(60));
        assert_eq!(c.key_rotation, Some(time::Duration::days(30)));
        assert!(c.external_issuers.is_empty());

        let file =
            "access-token-lifetime-secs = 600\nclock-skew-secs = 300\nkey-rotation-days = 0\n";
        let c = serve_config(file, &[]).unwrap();
        assert_eq!(c.access_token_lifetime, time::Duration::seconds(600));
        assert_eq!(c.clock_skew, time::Duration::seconds(300));
        assert_eq!(c.key_rotation, None);

        let c = serve_config(
            file,
            &[
                "--access-token-lifetime-secs",
                "7200",
                "--key-rotation-days",
                "7",
            ],
        )
        .unwrap();
        assert_eq!(c.access_token_lifetime, time::Duration::seconds(7200));
        assert_eq!(c.key_rotation, Some(time::Duration::days(7)));
    }

    #[test]
    fn token_settings_out_of_range_are_refused() {
        for (flags, word) in [
            (
                &["--access-token-lifetime-secs", "60"][..],
                "access-token-lifetime-secs",
            ),
            (
                &["--access-token-lifetime-secs", "86401"][..],
                "access-token-lifetime-secs",
            ),
            (&["--clock-skew-secs", "601"][..], "clock-skew-secs"),
            (&["--key-rotation-days", "4000"][..], "key-rotation-days"),
        ] {
            let e = serve_config("", flags).unwrap_err().to_string();
            assert!(e.contains(word), "{flags:?}: {e}");
        }
    }

    #[test]
    fn external_issuer_tables_parse_in_both_spellings() {
        let t = r#"
[[external-issuer]]
issuer = "https://login.microsoftonline.com/{tenantid}/v2.0"
jwks-url = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
audiences = ["api://graphbox"]
tenants = { "72f988bf-86f1-41af-91ab-2d7cd011db47" = "contoso.test" }
user-match = "upn"
role-map = { "Export.All" = "MailboxItem.Export.All" }

[[external_issuer]]
issuer = "https://sts.windows.net/abc/"
jwks-url = "https://example.test/keys"
audiences = ["https://graph.microsoft.com"]
tenants = { "abc" = "fabrikam.test" }
"#;
        // One spelling per file (mixing them is a duplicate key).
        let e = serve_config(t, &[]).unwrap_err();
        assert!(format!("{e:#}").contains("duplicate"), "{e:#}");
        let (kebab, snake) = t.split_at(t.find("[[external_issuer]]").unwrap());
        let c = serve_config(
            &snake.replace("[[external_issuer]]", "[[external-issuer]]"),
            &[],
        )
        .unwrap();
        assert_eq!(c.external_issuers.len(), 1);
        assert_eq!(c.external_issuers[0].tenants["abc"], "fabrikam.test");
        let c = serve_config(snake, &[]).unwrap();
        assert_eq!(c.external_issuers[0].issuer, "https://sts.windows.net/abc/");
        let c = serve_config(&format!("{kebab}{}", kebab.replace("fabrikam", "x")), &[]).unwrap();
        assert_eq!(c.external_issuers.len(), 2);
        assert_eq!(c.external_issuers[0].audiences, ["api://graphbox"]);
        assert_eq!(
            c.external_issuers[0].role_map.as_ref().unwrap()["Export.All"],
            "MailboxItem.Export.All"
        );
        let e = serve_config(
            "[[external-issuer]]\nissuer = \"x\"\njwks-uri = \"y\"\n",
            &[],
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("jwks-uri"), "{e:#}");
    }

    #[tokio::test]
    async fn external_issuer_tenants_must_exist() {
        let meta = store::SqliteMetaStore::open_in_memory().await.unwrap();
        let t = meta.create_tenant("contoso.test", "Contoso").await.unwrap();
        let file = |tenant: &str, user_match: &str| ExternalIssuerFile {
            issuer: "https://login.example/{tenantid}/v2.0".into(),
            jwks_url: "https://login.example/keys".into(),
            audiences: vec!["api://graphbox".into()],
            tenants: BTreeMap::from([("EXT".to_owned(), tenant.to_owned())]),
            user_match: Some(user_match.into()),
            role_map: None,
            scope_map: None,
            refresh_secs: None,
            ca_cert: None,
        };
        let ok = external_issuers(&[file("contoso.test", "oid")], &meta)
            .await
            .unwrap();
        assert_eq!(ok[0].tenants["ext"], t.id);
        assert_eq!(ok[0].user_match, api::auth::UserMatch::Oid);
        let e = external_issuers(&[file("nowhere.test", "upn")], &meta)
            .await
            .unwrap_err();
        assert!(format!("{e:#}").contains("nowhere.test"), "{e:#}");
        let e = external_issuers(&[file("contoso.test", "email")], &meta)
            .await
            .unwrap_err();
        assert!(format!("{e:#}").contains("user-match"), "{e:#}");
    }
}
