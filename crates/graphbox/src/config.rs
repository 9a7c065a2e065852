//! Configuration: flags, then `GRAPHBOX_*` environment variables (both via clap),
//! then the optional TOML file, then the embedded defaults.

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
            "the configuration file {} is not valid (keys: data-dir, meta, blobs, listen, public-url, tls, tls-cert, tls-key, demo, log-format)",
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
}

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
    Ok(ServeConfig {
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
