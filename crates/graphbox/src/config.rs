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
            "the configuration file {} is not valid (keys: data-dir, listen, public-url, tls, tls-cert, tls-key, demo, log-format)",
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

/// The embedded stores of a data directory: SQLite metadata and local blob files.
pub struct Stores {
    pub meta: Arc<dyn store::MetaStore>,
    pub blobs: Arc<store::BlobStore>,
}

pub async fn open_stores(data_dir: &Path) -> anyhow::Result<Stores> {
    std::fs::create_dir_all(data_dir).with_context(|| {
        format!(
            "cannot create the data directory {} (choose another with --data-dir)",
            data_dir.display()
        )
    })?;
    let db = data_dir.join("meta.sqlite");
    let meta = store::SqliteMetaStore::open(&db)
        .await
        .with_context(|| format!("cannot open the metadata store {}", db.display()))?;
    let blob_dir = data_dir.join("blobs");
    let blobs = store::BlobStore::local(&blob_dir)
        .with_context(|| format!("cannot open the blob store {}", blob_dir.display()))?;
    Ok(Stores {
        meta: Arc::new(meta),
        blobs: Arc::new(blobs),
    })
}
