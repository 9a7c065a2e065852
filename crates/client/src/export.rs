//! exportItems: batches of at most 20 ids under a byte budget, run in
//! parallel up to the mailbox's concurrency, ids missing from an answer
//! asked for again, `ErrorArchiveFolderMovedPermanently` followed.

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::Method;
use serde::Deserialize;

use crate::GraphClient;
use crate::error::{Error, Result};
use crate::model::ExportOutcome;
use crate::transport::Req;

/// Graph's limit of ids per exportItems request.
pub const MAX_IDS_PER_EXPORT: usize = 20;
/// The per-item code that redirects an id to another mailbox's exportItems.
pub const ARCHIVE_MOVED: &str = "ErrorArchiveFolderMovedPermanently";
/// How many redirects one id may take.
const MAX_ITEM_REDIRECTS: u32 = 3;

#[derive(Deserialize)]
struct ExportAnswer<'a> {
    #[serde(default, borrow)]
    value: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(rename = "itemId", alias = "ItemId", default)]
    item_id: Option<String>,
    #[serde(rename = "changeKey", alias = "ChangeKey", default)]
    change_key: Option<String>,
    /// Read in place from the answer body (base64 holds no JSON escapes
    /// unless a server writes `\/`; then it is unescaped into a copy).
    #[serde(rename = "data", alias = "Data", default, borrow)]
    data: Option<Data<'a>>,
    #[serde(rename = "error", alias = "Error", default)]
    error: Option<EntryError>,
}

/// An item's base64 data. serde_derive borrows a field whose type is
/// exactly `Cow<str>` (marked `borrow`) from the input; an `Option<Cow<str>>`
/// field is always copied, hence this wrapper.
#[derive(Deserialize)]
#[serde(transparent)]
struct Data<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
struct EntryError {
    #[serde(alias = "Code", default)]
    code: String,
    #[serde(alias = "Message", default)]
    message: String,
}

/// Groups `(id, expected size)` into batches of at most 20 ids and at most
/// `budget` expected bytes (an item larger than the budget goes alone).
pub fn plan_batches(items: Vec<(String, u64)>, budget: u64) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut bytes = 0u64;
    for (id, size) in items {
        if !cur.is_empty()
            && (cur.len() >= MAX_IDS_PER_EXPORT || bytes.saturating_add(size) > budget)
        {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        bytes = bytes.saturating_add(size);
        cur.push(id);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

struct Pending {
    id: String,
    /// exportItems URL to ask (changes on an archive redirect).
    url: String,
    missing: u32,
    redirects: u32,
}

impl GraphClient {
    /// Exports `items` (id, expected size in bytes — `0` if unknown): one
    /// outcome per id, in no particular order, at most the mailbox's
    /// concurrency of requests in flight. A request that fails as a whole
    /// (after retries) yields `Failed` outcomes for its ids, except
    /// authentication and configuration errors, which are yielded as `Err`.
    pub fn export_stream(
        &self,
        mbx: &str,
        items: Vec<(String, u64)>,
    ) -> impl Stream<Item = Result<ExportOutcome>> + Send + 'static {
        let client = self.clone();
        let url = self.mailbox_url(mbx, &["exportItems"]);
        let mbx = mbx.to_owned();
        let batches = plan_batches(items, self.inner.profile.export_batch_bytes.max(1));
        let parallel = self.inner.profile.max_concurrency_per_mailbox;
        futures::stream::iter(batches)
            .map(move |ids| {
                let client = client.clone();
                let url = url.clone();
                let mbx = mbx.clone();
                async move { futures::stream::iter(client.export_batch(&mbx, &url, ids).await) }
            })
            .buffer_unordered(parallel)
            .flatten()
    }

    /// Exports `ids` (any number; split into requests of 20) and returns one
    /// outcome per distinct id, in the order given.
    pub async fn export_items(&self, mbx: &str, ids: &[String]) -> Result<Vec<ExportOutcome>> {
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<(String, u64)> = ids
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .map(|id| (id.clone(), 0))
            .collect();
        let order: HashMap<String, usize> = unique
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (id.clone(), i))
            .collect();
        let mut out: Vec<ExportOutcome> = self
            .export_stream(mbx, unique)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        out.sort_by_key(|o| order.get(o.id()).copied().unwrap_or(usize::MAX));
        Ok(out)
    }

    /// One planned batch until every id has an outcome.
    async fn export_batch(
        &self,
        mbx: &str,
        url: &str,
        ids: Vec<String>,
    ) -> Vec<Result<ExportOutcome>> {
        let max_missing = self.inner.profile.export_missing_attempts;
        let mut out = Vec::with_capacity(ids.len());
        let mut pending: Vec<Pending> = ids
            .into_iter()
            .map(|id| Pending {
                id,
                url: url.to_owned(),
                missing: 0,
                redirects: 0,
            })
            .collect();
        while !pending.is_empty() {
            // Ask each target URL for its ids (one URL unless redirected).
            let target = pending[0].url.clone();
            let (now, later): (Vec<Pending>, Vec<Pending>) =
                pending.into_iter().partition(|p| p.url == target);
            pending = later;
            for chunk in now.chunks(MAX_IDS_PER_EXPORT) {
                let ids: Vec<&str> = chunk.iter().map(|p| p.id.as_str()).collect();
                let body = serde_json::json!({ "itemIds": ids });
                let raw = self
                    .send(Req::json(
                        Method::POST,
                        target.clone(),
                        Some(mbx),
                        &body,
                        true,
                    ))
                    .await;
                let answer = match raw {
                    Ok(ref a) => a.json::<ExportAnswer<'_>>(),
                    Err(e) => Err(e),
                };
                let answer = match answer {
                    Ok(a) => a,
                    Err(e @ (Error::Auth { .. } | Error::Config(_))) => {
                        out.push(Err(e));
                        // The remaining ids of this batch are not reported:
                        // the whole run cannot continue anyway.
                        return out;
                    }
                    Err(e) => {
                        let code = e.code().unwrap_or("RequestFailed").to_owned();
                        let message = e.to_string();
                        for p in chunk {
                            out.push(Ok(ExportOutcome::Failed {
                                id: p.id.clone(),
                                code: code.clone(),
                                message: message.clone(),
                            }));
                        }
                        continue;
                    }
                };
                let mut by_id: HashMap<String, Entry<'_>> = HashMap::new();
                for e in answer.value {
                    if let Some(id) = e.item_id.clone() {
                        by_id.entry(id).or_insert(e);
                    }
                }
                for p in chunk {
                    let Some(e) = by_id.remove(&p.id) else {
                        let missing = p.missing + 1;
                        if missing >= max_missing {
                            out.push(Ok(ExportOutcome::Failed {
                                id: p.id.clone(),
                                code: "NotReturned".into(),
                                message: format!(
                                    "exportItems left this id out of {missing} answers in a row"
                                ),
                            }));
                        } else {
                            tracing::debug!(id = %p.id, missing, "id missing from an exportItems answer; asking again");
                            pending.push(Pending {
                                id: p.id.clone(),
                                url: p.url.clone(),
                                missing,
                                redirects: p.redirects,
                            });
                        }
                        continue;
                    };
                    if let Some(o) = self.entry_outcome(p, e, &mut pending) {
                        out.push(Ok(o));
                    }
                }
            }
        }
        out
    }

    /// Turns one answer entry into an outcome, or `None` when the id was
    /// redirected (queued again in `pending` with its new URL).
    fn entry_outcome(
        &self,
        p: &Pending,
        e: Entry<'_>,
        pending: &mut Vec<Pending>,
    ) -> Option<ExportOutcome> {
        if let Some(err) = e.error {
            if err.code == ARCHIVE_MOVED && p.redirects < MAX_ITEM_REDIRECTS {
                let valid = url::Url::parse(&err.message)
                    .map(|u| matches!(u.scheme(), "http" | "https"))
                    .unwrap_or(false);
                if valid {
                    self.inner
                        .transport
                        .counters
                        .redirects
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    pending.push(Pending {
                        id: p.id.clone(),
                        url: err.message,
                        missing: 0,
                        redirects: p.redirects + 1,
                    });
                    return None;
                }
            }
            return Some(ExportOutcome::Failed {
                id: p.id.clone(),
                code: err.code,
                message: err.message,
            });
        }
        let Some(Data(data)) = e.data else {
            return Some(ExportOutcome::Failed {
                id: p.id.clone(),
                code: "NoData".into(),
                message: "the exportItems entry has neither data nor error".into(),
            });
        };
        match base64_simd::STANDARD.decode_to_vec(data.as_bytes()) {
            Ok(bytes) => Some(ExportOutcome::Ok {
                id: p.id.clone(),
                change_key: e.change_key.unwrap_or_default(),
                data: Bytes::from(bytes),
            }),
            Err(err) => Some(ExportOutcome::Failed {
                id: p.id.clone(),
                code: "InvalidBase64".into(),
                message: format!("the exported data is not base64: {err}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Cow, ExportAnswer, plan_batches};

    #[test]
    fn item_data_is_read_in_place_unless_escaped() {
        let body = br#"{"value": [{"itemId": "a", "data": "AAEC"},
                               {"itemId": "b", "data": "AA\/C"},
                               {"itemId": "c", "error": {"code": "E", "message": "m"}}]}"#;
        let answer: ExportAnswer<'_> = serde_json::from_slice(body).unwrap();
        let data: Vec<Option<&Cow<'_, str>>> = answer
            .value
            .iter()
            .map(|e| e.data.as_ref().map(|d| &d.0))
            .collect();
        assert!(matches!(data[0], Some(Cow::Borrowed("AAEC"))), "{data:?}");
        assert!(
            matches!(data[1], Some(Cow::Owned(s)) if s == "AA/C"),
            "{data:?}"
        );
        assert!(data[2].is_none());
    }

    fn items(sizes: &[u64]) -> Vec<(String, u64)> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("id{i}"), *s))
            .collect()
    }

    #[test]
    fn batches_hold_at_most_20_ids() {
        let b = plan_batches(items(&[0; 45]), 64 << 20);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![20, 20, 5]);
        assert_eq!(b[2][4], "id44");
        assert!(plan_batches(vec![], 10).is_empty());
    }

    #[test]
    fn batches_respect_the_byte_budget() {
        // Budget 100: 40+40 | 40+50 | 150 alone (larger than the budget) | 10.
        let b = plan_batches(items(&[40, 40, 40, 50, 150, 10]), 100);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1, 1]);
        assert_eq!(b[2], vec!["id4".to_owned()]);
    }
}
