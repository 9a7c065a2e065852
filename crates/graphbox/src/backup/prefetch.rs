//! Asking for an incremental run's changes while the repository key is
//! derived.
//!
//! The delta requests of a run depend only on the previous snapshot's links
//! (a [`DeltaBase`]), and those are inside the encrypted repository: without
//! help they wait for the key derivation (Argon2id, tens of milliseconds of
//! both cores) and for the snapshot to be read. So each run leaves a hint in
//! a local cache directory, the way restic and borg keep local caches: for
//! the first mailbox it backed up, that mailbox's id and the new snapshot's
//! links. The next run sends the delta requests from the hint as soon as it
//! has a token, and exports the changed items they report (up to
//! [`MAX_ITEMS`] items and [`MAX_BYTES`] bytes, held in memory) while the
//! key is derived.
//!
//! The hint is never trusted: its answers are used only when the mailbox
//! resolves to the hint's id and the previous snapshot read from the
//! repository has exactly the hint's links, so the requests were the ones
//! the run would have sent. Otherwise the prefetch is dropped and the run
//! asks again. A missing, unreadable or foreign hint file is ignored.
//!
//! The file holds ids and delta links (opaque server state, useless without
//! an access token), no folder names and no content; it is written with
//! mode 0600. `--no-cache` keeps none.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use client::{ExportOutcome, GraphClient};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::deltas::{self, DeltaBase, RawDeltas};

/// At most this many changed items are exported ahead.
pub(super) const MAX_ITEMS: usize = 1_000;
/// At most this many bytes (the sizes the item deltas report) are exported
/// ahead; more changed than this, and nothing is.
pub(super) const MAX_BYTES: u64 = 32 << 20;

const HINT_VERSION: u32 = 1;

/// The hint a run leaves for the next one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(super) struct Hint {
    /// The mailbox as given (`--mailbox`): a user principal name or an id.
    pub key: String,
    /// What it resolved to.
    pub mailbox: String,
    pub base: DeltaBase,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HintFile {
    version: u32,
    repository: String,
    graph: String,
    #[serde(flatten)]
    hint: Hint,
}

/// The hint file of one repository and Graph endpoint.
pub(super) struct HintCache {
    path: PathBuf,
    repository: String,
    graph: String,
}

impl HintCache {
    /// The hint file for `repository` against `graph` under `dir` (default:
    /// `$XDG_CACHE_HOME/graphbox`, else `~/.cache/graphbox`; `None` when
    /// neither is known).
    pub fn new(dir: Option<&Path>, repository: &str, graph: &str) -> Option<HintCache> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => default_dir()?,
        };
        let mut h = blake3::Hasher::new_derive_key("graphbox 2026-11-28 backup hint file name");
        h.update(repository.as_bytes());
        h.update(&[0]);
        h.update(graph.as_bytes());
        let name = &h.finalize().to_hex()[..32];
        Some(HintCache {
            path: dir.join("backup-hints").join(format!("{name}.json")),
            repository: repository.to_string(),
            graph: graph.to_string(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored hint, if there is a readable one for this repository and
    /// endpoint.
    pub fn load(&self) -> Option<Hint> {
        let raw = std::fs::read(&self.path).ok()?;
        let f: HintFile = serde_json::from_slice(&raw).ok()?;
        (f.version == HINT_VERSION && f.repository == self.repository && f.graph == self.graph)
            .then_some(f.hint)
    }

    /// Replaces the stored hint (a temporary file renamed into place; no
    /// fsync: a hint lost in a crash costs one run its head start).
    pub fn store(&self, hint: &Hint) -> std::io::Result<()> {
        let dir = self.path.parent().expect("the hint file has a directory");
        create_private_dir(dir)?;
        let file = HintFile {
            version: HINT_VERSION,
            repository: self.repository.clone(),
            graph: self.graph.clone(),
            hint: hint.clone(),
        };
        let data = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
        let written = write_private(&tmp, &data).and_then(|()| std::fs::rename(&tmp, &self.path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

fn default_dir() -> Option<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(x) = nonempty("XDG_CACHE_HOME") {
        return Some(PathBuf::from(x).join("graphbox"));
    }
    nonempty("HOME").map(|h| PathBuf::from(h).join(".cache").join("graphbox"))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)?.write_all(data)
}

/// The delta requests of a hint, and then the export of what they report
/// changed, running on a task of their own. Dropping it stops the task.
pub(super) struct Prefetch {
    pub mailbox: String,
    pub base: DeltaBase,
    deltas: Option<oneshot::Receiver<anyhow::Result<RawDeltas>>>,
    task: JoinHandle<Vec<ExportOutcome>>,
}

impl Prefetch {
    pub fn start(client: GraphClient, hint: Hint) -> Prefetch {
        let (tx, rx) = oneshot::channel();
        let Hint { mailbox, base, .. } = hint;
        let (mbx, b) = (mailbox.clone(), base.clone());
        let task = tokio::spawn(async move {
            let raw = deltas::fetch(&client, &mbx, &b).await;
            let ahead = raw.as_ref().ok().and_then(export_plan);
            if tx.send(raw).is_err() {
                return Vec::new(); // not wanted any more
            }
            let Some(items) = ahead else {
                return Vec::new();
            };
            let mut out = Vec::with_capacity(items.len());
            let mut stream = std::pin::pin!(client.export_stream(&mbx, items));
            while let Some(outcome) = stream.next().await {
                match outcome {
                    Ok(o) => out.push(o),
                    // The run asks for the rest again and reports the error.
                    Err(_) => break,
                }
            }
            out
        });
        Prefetch {
            mailbox,
            base,
            deltas: Some(rx),
            task,
        }
    }

    /// The answers of the delta requests; `None` when they failed (the run
    /// asks again, and reports what fails then).
    pub async fn deltas(&mut self) -> Option<RawDeltas> {
        self.deltas.take()?.await.ok()?.ok()
    }

    /// The items exported ahead (after [`Prefetch::deltas`]), each once.
    pub async fn exported(mut self) -> Vec<ExportOutcome> {
        (&mut self.task).await.unwrap_or_default()
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The changed items to export ahead: all of them, when they are at most
/// [`MAX_ITEMS`] of known sizes adding up to at most [`MAX_BYTES`].
fn export_plan(raw: &RawDeltas) -> Option<Vec<(String, u64)>> {
    let mut seen = HashSet::new();
    let mut plan = Vec::new();
    let mut bytes = 0u64;
    for item in raw.changed_items() {
        if !seen.insert(item.id.as_str()) {
            continue;
        }
        let size = item.size?;
        bytes += size;
        if plan.len() == MAX_ITEMS || bytes > MAX_BYTES {
            return None;
        }
        plan.push((item.id.clone(), size));
    }
    (!plan.is_empty()).then_some(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint() -> Hint {
        Hint {
            key: "u@contoso.test".into(),
            mailbox: "MBX:1".into(),
            base: DeltaBase {
                folder_link: Some("https://g/f?$deltatoken=1".into()),
                folders: vec!["a".into(), "b".into()],
                item_links: [("a".to_string(), "https://g/a?$deltatoken=2".to_string())]
                    .into_iter()
                    .collect(),
            },
        }
    }

    #[test]
    fn a_stored_hint_is_loaded_only_for_its_repository_and_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let c = HintCache::new(Some(dir.path()), "/repo", "http://g").unwrap();
        assert_eq!(c.load(), None);
        c.store(&hint()).unwrap();
        assert_eq!(c.load(), Some(hint()));
        let mut newer = hint();
        newer.base.folder_link = Some("https://g/f?$deltatoken=3".into());
        c.store(&newer).unwrap();
        assert_eq!(c.load(), Some(newer));
        // Another repository or endpoint has a file of its own.
        for (r, g) in [("/other", "http://g"), ("/repo", "http://h")] {
            let o = HintCache::new(Some(dir.path()), r, g).unwrap();
            assert_ne!(o.path(), c.path());
            assert_eq!(o.load(), None);
        }
        // Nothing but the hint file is left in its directory.
        let names: Vec<_> = std::fs::read_dir(c.path().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(c.path()), 0o600);
            assert_eq!(mode(c.path().parent().unwrap()), 0o700);
        }
    }

    #[test]
    fn a_damaged_or_foreign_hint_file_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let c = HintCache::new(Some(dir.path()), "/repo", "http://g").unwrap();
        std::fs::create_dir_all(c.path().parent().unwrap()).unwrap();
        for bad in [
            &b"{not json"[..],
            br#"{"version":99,"repository":"/repo","graph":"http://g","key":"k","mailbox":"m","base":{"folderLink":null,"folders":[],"itemLinks":{}}}"#,
            br#"{"version":1,"repository":"/elsewhere","graph":"http://g","key":"k","mailbox":"m","base":{"folderLink":null,"folders":[],"itemLinks":{}}}"#,
        ] {
            std::fs::write(c.path(), bad).unwrap();
            assert_eq!(c.load(), None, "{}", String::from_utf8_lossy(bad));
        }
        c.store(&hint()).unwrap();
        assert_eq!(c.load(), Some(hint()));
    }

    #[test]
    fn an_explicit_directory_holds_the_hint_files() {
        let c = HintCache::new(Some(Path::new("/x")), "/repo", "http://g").unwrap();
        assert!(c.path().starts_with("/x/backup-hints"));
    }

    /// Item ids with their reported sizes.
    type Changed<'a> = &'a [(&'a str, Option<u64>)];

    fn raw(folders: &[(&str, Changed)]) -> RawDeltas {
        let items = folders
            .iter()
            .map(|(f, items)| {
                let changed = items
                    .iter()
                    .map(|(id, size)| {
                        let mut s: client::ItemSummary =
                            serde_json::from_value(serde_json::json!({"id": id})).unwrap();
                        s.folder_id = f.to_string();
                        s.size = *size;
                        s
                    })
                    .collect();
                let d = client::DeltaResult {
                    changed,
                    removed: Vec::new(),
                    delta_link: String::new(),
                    pages: 1,
                };
                (f.to_string(), Ok((d, false)))
            })
            .collect();
        RawDeltas {
            folders: client::DeltaResult {
                changed: Vec::new(),
                removed: Vec::new(),
                delta_link: String::new(),
                pages: 1,
            },
            full_folders: false,
            items,
        }
    }

    #[test]
    fn what_is_exported_ahead_is_bounded_in_items_and_bytes() {
        let mut plan = export_plan(&raw(&[
            ("a", &[("1", Some(10)), ("2", Some(20))]),
            ("b", &[("1", Some(10)), ("3", Some(5))]),
        ]))
        .unwrap();
        plan.sort();
        // An id reported in two folders (moved between their deltas) once.
        assert_eq!(
            plan,
            [("1".to_string(), 10), ("2".into(), 20), ("3".into(), 5)]
        );
        assert_eq!(export_plan(&raw(&[("a", &[])])), None);
        // An unknown size, too many bytes or too many items: nothing ahead.
        assert_eq!(
            export_plan(&raw(&[("a", &[("1", Some(1)), ("2", None)])])),
            None
        );
        assert_eq!(
            export_plan(&raw(&[("a", &[("1", Some(MAX_BYTES)), ("2", Some(1))])])),
            None
        );
        assert!(export_plan(&raw(&[("a", &[("1", Some(MAX_BYTES))])])).is_some());
        let ids: Vec<String> = (0..=MAX_ITEMS).map(|i| i.to_string()).collect();
        let many: Vec<(&str, Option<u64>)> = ids.iter().map(|i| (i.as_str(), Some(1))).collect();
        assert_eq!(export_plan(&raw(&[("a", &many)])), None);
        assert_eq!(
            export_plan(&raw(&[("a", &many[..MAX_ITEMS])])).map(|p| p.len()),
            Some(MAX_ITEMS)
        );
    }
}
