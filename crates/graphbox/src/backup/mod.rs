//! The backup client: `graphbox init | backup | snapshots | verify | prune |
//! find | restore`. It speaks only the public Graph API (crates/client), so
//! the same commands protect a graphbox server and an Exchange Online tenant;
//! the repository format is crates/backup (docs/REPOSITORY.md).

mod carry;
mod conn;
mod deltas;
mod inspect;
mod prefetch;
mod restore;
mod reuse;
mod run;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

/// The backup client's subcommands (flattened into the top-level command).
#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// Create a new, empty backup repository.
    Init(InitArgs),
    /// Back mailboxes up into a repository (incremental after the first run).
    Backup(Box<run::BackupArgs>),
    /// List, show and compare snapshots.
    Snapshots(inspect::SnapshotsArgs),
    /// Check a repository's structure (and with --read-data every byte).
    Verify(inspect::VerifyArgs),
    /// Forget snapshots by a retention policy and reclaim unused data.
    Prune(inspect::PruneArgs),
    /// Search item metadata across snapshots (no server needed).
    Find(inspect::FindArgs),
    /// Restore a snapshot (or part of it) into a mailbox or into .fts files.
    Restore(Box<restore::RestoreArgs>),
}

/// Where the repository is and how to open it.
#[derive(Args, Debug, Clone)]
pub struct RepoArgs {
    /// Repository: a local path or file:///PATH, s3://BUCKET/PREFIX,
    /// az://CONTAINER/PREFIX.
    #[arg(long, short = 'r', env = "GRAPHBOX_REPO", value_name = "URL")]
    pub repo: String,
    /// File holding the repository password (first line). Or set
    /// GRAPHBOX_REPO_PASSWORD.
    #[arg(long, env = "GRAPHBOX_REPO_PASSWORD_FILE", value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// How long to wait for another process's lock on the repository (seconds).
    #[arg(long, default_value_t = 0)]
    pub lock_wait: u64,
}

impl RepoArgs {
    pub fn password(&self) -> Result<String> {
        if let Some(f) = &self.password_file {
            let s = std::fs::read_to_string(f)
                .with_context(|| format!("reading the password file {}", f.display()))?;
            let p = s.lines().next().unwrap_or("").to_string();
            if p.is_empty() {
                bail!(
                    "the password file {} is empty: put the repository password on its first line",
                    f.display()
                );
            }
            return Ok(p);
        }
        match std::env::var("GRAPHBOX_REPO_PASSWORD") {
            Ok(p) if !p.is_empty() => Ok(p),
            _ => bail!(
                "no repository password: give --password-file FILE or set GRAPHBOX_REPO_PASSWORD"
            ),
        }
    }

    pub fn lock_wait(&self) -> Duration {
        Duration::from_secs(self.lock_wait)
    }

    pub async fn open(&self) -> Result<backup::Repository> {
        let password = self.password()?;
        backup::Repository::open(&self.repo, &password)
            .await
            .map_err(|e| match e {
                backup::Error::WrongPassword { .. } => anyhow::anyhow!(
                    "wrong password for the repository {}: check --password-file / GRAPHBOX_REPO_PASSWORD",
                    self.repo
                ),
                other => anyhow::Error::new(other)
                    .context(format!("opening the repository {}", self.repo)),
            })
    }
}

#[derive(Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Repository format version: 2 (the default) stores item lists and
    /// index files in binary; 1 stores them in JSON, for a repository that
    /// graphbox builds older than format 2 must still read.
    #[arg(long, default_value_t = backup::FORMAT_VERSION,
          value_parser = clap::value_parser!(u32).range(i64::from(backup::OLDEST_FORMAT_VERSION)..=i64::from(backup::FORMAT_VERSION)))]
    pub format_version: u32,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: ClientCmd) -> Result<()> {
    let result = run_command(cmd).await;
    // A command's repository lock is dropped on its way out, success or
    // error; on an object store the lock file is removed by a task, which
    // must finish before the runtime shuts down (or other hosts would find
    // the lock and wait for it to go stale).
    if !backup::lock::finish_releases(Duration::from_secs(30)).await {
        eprintln!(
            "warning: the repository lock could not be removed in time; other hosts see it until it is {} minutes old",
            backup::lock::STALE_AFTER.as_secs() / 60
        );
    }
    result
}

async fn run_command(cmd: ClientCmd) -> Result<()> {
    match cmd {
        ClientCmd::Init(a) => {
            let password = a.repo.password()?;
            let opts = backup::InitOptions {
                format_version: a.format_version,
                ..backup::InitOptions::default()
            };
            let repo = backup::Repository::init_with(&a.repo.repo, &password, opts)
                .await
                .with_context(|| format!("creating the repository {}", a.repo.repo))?;
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"repository": repo.url(), "id": repo.id(),
                                       "format_version": repo.format_version()})
                );
            } else {
                println!(
                    "created repository {} at {} (format version {})",
                    repo.id(),
                    repo.url(),
                    repo.format_version()
                );
            }
            Ok(())
        }
        ClientCmd::Backup(a) => run::run(*a).await,
        ClientCmd::Snapshots(a) => inspect::snapshots(a).await,
        ClientCmd::Verify(a) => inspect::verify(a).await,
        ClientCmd::Prune(a) => inspect::prune(a).await,
        ClientCmd::Find(a) => inspect::find(a).await,
        ClientCmd::Restore(a) => restore::run(*a).await,
    }
}

/// A short, stable, file-name-safe key for repository state names.
pub(crate) fn state_key(parts: &[&str]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(&[0]);
    }
    h.finalize().to_hex()[..32].to_string()
}

/// Sizes for people: 1.5 MiB.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Progress bars on a terminal (hidden when stderr is not one or with --json).
pub(crate) fn progress_bar(len: u64, what: &str, quiet: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>12} [{bar:30}] {pos}/{len} items, {msg} ({per_sec}, ETA {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}
