//! `graphbox admin migrate`: copy a whole deployment (metadata and blobs)
//! from one pair of stores to another, e.g. the embedded SQLite + local
//! files to PostgreSQL + S3, preserving every id, change key, change number
//! and setting, so delta links, import URLs and tokens issued before keep
//! working against the target. See docs/SCALE-OUT.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use store::migration::{self, RawTables};
use store::{BlobStore, PgMetaStore, SqliteMetaStore};

use crate::config::{self, MetaUrl, redact};

#[derive(Args, Debug, Clone)]
pub struct MigrateArgs {
    /// Metadata store to copy from: sqlite://PATH or postgres://… (stop the
    /// servers using it first).
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Metadata store to copy into; must be empty (a new SQLite file or a
    /// freshly created PostgreSQL database).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Blob store of the source (default for a sqlite:// source: the `blobs`
    /// directory beside the database file, as in a data directory).
    #[arg(long, value_name = "URL")]
    pub from_blobs: Option<String>,
    /// Blob store of the target: file:///PATH, s3://BUCKET/PREFIX,
    /// az://CONTAINER/PREFIX (default for a sqlite:// target: the `blobs`
    /// directory beside the database file).
    #[arg(long, value_name = "URL")]
    pub to_blobs: Option<String>,
    /// Rows per batch (memory is bounded by a few batches).
    #[arg(long, default_value_t = 2000)]
    pub batch_size: usize,
    /// Blobs copied / verified at a time.
    #[arg(long, default_value_t = 8)]
    pub blob_concurrency: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where a store is, for comparing source and target.
#[derive(Debug, PartialEq)]
enum Location {
    File(PathBuf),
    Postgres(String),
}

/// An absolute, normalised path for `p`, which may not exist yet.
fn absolute(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => dir
            .canonicalize()
            .map(|d| d.join(name))
            .unwrap_or(abs.clone()),
        _ => abs,
    }
}

fn location(url: &MetaUrl) -> Location {
    match url {
        MetaUrl::Sqlite(p) => Location::File(absolute(p)),
        MetaUrl::Postgres(u) => match url::Url::parse(u) {
            Ok(p) => Location::Postgres(format!(
                "{}:{}{}",
                p.host_str().unwrap_or("localhost"),
                p.port().unwrap_or(5432),
                p.path()
            )),
            Err(_) => Location::Postgres(u.clone()),
        },
    }
}

/// The default blob store of a sqlite:// metadata store: `blobs/` beside it.
fn default_blobs(meta: &MetaUrl, flag: &str) -> anyhow::Result<String> {
    match meta {
        MetaUrl::Sqlite(p) => {
            let dir = absolute(p)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/"));
            let url = url::Url::from_directory_path(dir.join("blobs"))
                .map_err(|()| anyhow::anyhow!("cannot make a file:// URL of {}", dir.display()))?;
            Ok(url.to_string().trim_end_matches('/').to_string())
        }
        MetaUrl::Postgres(_) => bail!(
            "{flag} is required when the metadata store is PostgreSQL (e.g. s3://bucket/prefix)"
        ),
    }
}

async fn open(url: &MetaUrl, source: bool) -> anyhow::Result<Arc<dyn RawTables>> {
    Ok(match url {
        MetaUrl::Sqlite(p) => {
            if source && !p.is_file() {
                bail!(
                    "the source database {} does not exist (check --from)",
                    p.display()
                );
            }
            if !source && let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            Arc::new(
                SqliteMetaStore::open(p)
                    .await
                    .with_context(|| format!("cannot open the SQLite database {}", p.display()))?,
            )
        }
        MetaUrl::Postgres(u) => Arc::new(
            PgMetaStore::open(u)
                .await
                .with_context(|| format!("cannot open the PostgreSQL database {}", redact(u)))?,
        ),
    })
}

/// Opens the source blob store without writing to it (a local directory
/// must exist).
fn open_source_blobs(url: &str) -> anyhow::Result<BlobStore> {
    if let Ok(u) = url::Url::parse(url)
        && u.scheme() == "file"
    {
        let path = u
            .to_file_path()
            .map_err(|()| anyhow::anyhow!("{url} is not an absolute local path"))?;
        if !path.is_dir() {
            bail!(
                "the source blob directory {} does not exist (check --from-blobs)",
                path.display()
            );
        }
    }
    BlobStore::open(url)
        .with_context(|| format!("cannot open the source blob store {}", redact(url)))
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let from_url = config::parse_meta_url(&args.from).context("--from")?;
    let to_url = config::parse_meta_url(&args.to).context("--to")?;
    if location(&from_url) == location(&to_url) {
        bail!(
            "--from and --to name the same metadata store ({}); migrate into a different, empty one",
            redact(&args.from)
        );
    }
    let from_blobs_url = match &args.from_blobs {
        Some(u) => u.clone(),
        None => default_blobs(&from_url, "--from-blobs")?,
    };
    let to_blobs_url = match &args.to_blobs {
        Some(u) => u.clone(),
        None => default_blobs(&to_url, "--to-blobs")?,
    };

    let from = open(&from_url, true).await?;
    let to = open(&to_url, false).await?;
    // Refuse a non-empty target before anything is written anywhere.
    migration::ensure_empty(to.as_ref())
        .await
        .with_context(|| format!("refusing to migrate into {}", redact(&args.to)))?;
    let from_blobs = open_source_blobs(&from_blobs_url)?;
    let to_blobs = BlobStore::connect(&to_blobs_url).await.with_context(|| {
        format!(
            "cannot open the target blob store {}",
            redact(&to_blobs_url)
        )
    })?;

    // Blobs first: copying content is idempotent (content-addressed), so a
    // failure here leaves the target metadata empty and the command can
    // simply be run again.
    let quiet = args.json;
    let mut last = Instant::now();
    let blobs = migration::copy_blobs(
        from.as_ref(),
        &from_blobs,
        &to_blobs,
        args.blob_concurrency,
        &mut |n| {
            if !quiet && last.elapsed().as_secs() >= 5 {
                eprintln!("  blobs: {n}");
                last = Instant::now();
            }
        },
    )
    .await
    .context("copying blobs")?;

    let mut last = Instant::now();
    let tables = migration::copy_tables(
        from.as_ref(),
        to.as_ref(),
        args.batch_size,
        &mut |table, n| {
            if !quiet && last.elapsed().as_secs() >= 5 {
                eprintln!("  {table}: {n} rows");
                last = Instant::now();
            }
        },
    )
    .await
    .context("copying the metadata")?;

    let verified = migration::verify_blobs(to.as_ref(), &to_blobs, args.blob_concurrency)
        .await
        .context("verifying the blobs in the target")?;
    if verified.copied + verified.skipped_unreferenced + verified.inline != blobs.blobs {
        bail!(
            "the target blob store holds {} of the {} blobs the source registers",
            verified.copied,
            blobs.blobs
        );
    }

    let elapsed_ms = started.elapsed().as_millis() as u64;
    if args.json {
        let v = json!({
            "from": redact(&args.from),
            "to": redact(&args.to),
            "fromBlobs": redact(&from_blobs_url),
            "toBlobs": redact(&to_blobs_url),
            "tables": tables,
            "blobs": blobs,
            "verifiedBlobs": verified,
            "elapsedMs": elapsed_ms,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("migrated {} -> {}", redact(&args.from), redact(&args.to));
        for t in &tables {
            println!("  {:<22} {:>10} rows (verified)", t.table, t.target);
        }
        println!(
            "  blobs: {} ({} bytes): {} copied, {} already present, {} unreferenced skipped, \
             {} kept in the metadata; {} + {} verified by BLAKE3 hash in {} and the metadata",
            blobs.blobs,
            blobs.bytes,
            blobs.copied,
            blobs.present,
            blobs.skipped_unreferenced,
            blobs.inline,
            verified.copied,
            verified.inline,
            redact(&to_blobs_url)
        );
        println!("  done in {:.1} s", elapsed_ms as f64 / 1000.0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_store_is_detected() {
        let a = config::parse_meta_url("postgres://u:p@db:5432/graphbox").unwrap();
        let b = config::parse_meta_url("postgres://other@db/graphbox").unwrap();
        let c = config::parse_meta_url("postgres://u@db/graphbox2").unwrap();
        assert_eq!(location(&a), location(&b));
        assert_ne!(location(&a), location(&c));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta.sqlite");
        let x = MetaUrl::Sqlite(p.clone());
        let y = MetaUrl::Sqlite(dir.path().join(".").join("meta.sqlite"));
        assert_eq!(location(&x), location(&y));
        assert_ne!(
            location(&x),
            location(&MetaUrl::Sqlite(dir.path().join("b.sqlite")))
        );
    }

    #[test]
    fn default_blobs_sit_beside_a_sqlite_file() {
        let dir = tempfile::tempdir().unwrap();
        let u = default_blobs(&MetaUrl::Sqlite(dir.path().join("meta.sqlite")), "--x").unwrap();
        assert!(u.starts_with("file:///") && u.ends_with("/blobs"), "{u}");
        let err =
            default_blobs(&MetaUrl::Postgres("postgres://h/db".into()), "--to-blobs").unwrap_err();
        assert!(err.to_string().contains("--to-blobs is required"));
    }
}
