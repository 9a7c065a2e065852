//! `graphbox admin check`: the store's integrity check, through the
//! `MetaStore` contract (so it runs against any engine) and the blob store.
//!
//! Checked: every folder's `childFolderCount` / `totalItemCount` against its
//! rows; every blob's reference count against the items that reference it;
//! every referenced blob present (in the blob store, or for small imported
//! items in the meta store), of its recorded size, and hashing to its key. Unreferenced blobs (count 0) waiting for the collector are reported
//! but are not an error.

use std::collections::HashMap;

use futures::StreamExt;
use store::{Folder, ListQuery, MailboxId};

use crate::config::Stores;

const PAGE: u64 = 1000;

async fn children(stores: &Stores, mbx: &MailboxId, parent: &str) -> anyhow::Result<Vec<Folder>> {
    let mut out = Vec::new();
    loop {
        let q = ListQuery {
            skip: out.len() as u64,
            top: PAGE,
            include_hidden: true,
            ..ListQuery::default()
        };
        let page = stores.meta.list_folders(mbx, parent, &q).await?;
        let n = page.items.len() as u64;
        out.extend(page.items);
        if n < PAGE {
            return Ok(out);
        }
    }
}

pub async fn run(stores: &Stores) -> anyhow::Result<()> {
    let mut problems: Vec<String> = Vec::new();
    // hash -> (items referencing it, size recorded on the items)
    let mut refs: HashMap<String, (u64, u64)> = HashMap::new();
    let (mut folders, mut items) = (0u64, 0u64);
    for tenant in stores.meta.list_tenants().await? {
        for mbx in stores.meta.list_mailboxes(tenant.id).await? {
            let root = stores.meta.resolve_folder(&mbx.id, "root").await?;
            let mut stack = vec![root];
            while let Some(f) = stack.pop() {
                folders += 1;
                let kids = children(stores, &mbx.id, &f.id).await?;
                if kids.len() as i64 != f.child_folder_count {
                    problems.push(format!(
                        "mailbox {} folder {} ({}): childFolderCount is {} but it has {} child folders",
                        mbx.id,
                        f.id,
                        f.display_name,
                        f.child_folder_count,
                        kids.len()
                    ));
                }
                let mut n = 0u64;
                loop {
                    let q = ListQuery {
                        skip: n,
                        top: PAGE,
                        ..ListQuery::default()
                    };
                    let page = stores.meta.list_items(&mbx.id, &f.id, &q).await?;
                    let got = page.items.len() as u64;
                    for i in page.items {
                        let e = refs.entry(i.blob.hash.clone()).or_insert((0, i.blob.size));
                        e.0 += 1;
                        if e.1 != i.blob.size {
                            problems.push(format!(
                                "blob {}: items disagree on its size ({} vs {})",
                                i.blob.hash, e.1, i.blob.size
                            ));
                        }
                    }
                    n += got;
                    if got < PAGE {
                        break;
                    }
                }
                items += n;
                if n as i64 != f.total_item_count {
                    problems.push(format!(
                        "mailbox {} folder {} ({}): totalItemCount is {} but it has {} items",
                        mbx.id, f.id, f.display_name, f.total_item_count, n
                    ));
                }
                stack.extend(kids);
            }
        }
    }

    // Registered blobs against the references counted above.
    let mut registered: HashMap<String, (u64, u64)> = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = stores.meta.blob_refs(after.as_deref(), 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.0.clone());
        for (hash, size, count) in page {
            registered.insert(hash, (size, count));
        }
    }
    let mut unreferenced = 0u64;
    for (hash, (size, count)) in &registered {
        let counted = refs.get(hash).map_or(0, |r| r.0);
        if *count != counted {
            problems.push(format!(
                "blob {hash}: reference count is {count} but {counted} items reference it"
            ));
        }
        if *count == 0 {
            unreferenced += 1;
        }
        if let Some((_, item_size)) = refs.get(hash)
            && item_size != size
        {
            problems.push(format!(
                "blob {hash}: registered as {size} bytes, items say {item_size}"
            ));
        }
    }
    let mut inline_count = 0u64;
    let referenced: Vec<(&String, &(u64, u64))> = refs.iter().collect();
    for batch in referenced.chunks(256) {
        let hashes: Vec<String> = batch.iter().map(|(h, _)| (*h).clone()).collect();
        // Content kept in the meta store (small imported items).
        let inline = stores.meta.inline_content(&hashes).await?;
        for (hash, (n, size)) in batch {
            if !registered.contains_key(*hash) {
                problems.push(format!(
                    "blob {hash}: referenced by {n} items but not registered"
                ));
            }
            if let Some(data) = inline.get(*hash) {
                inline_count += 1;
                let actual = blake3::hash(data).to_hex();
                if actual.as_str() != hash.as_str() {
                    problems.push(format!(
                        "blob {hash}: the content kept in the metadata hashes to {actual}"
                    ));
                } else if data.len() as u64 != *size {
                    problems.push(format!(
                        "blob {hash}: {} bytes kept in the metadata, {size} expected",
                        data.len()
                    ));
                }
                continue;
            }
            // Present, complete and hashing right (get_stream verifies the
            // hash at the end of the stream).
            match stores.blobs.get_stream(hash).await {
                Err(e) => problems.push(format!("blob {hash}: cannot be read: {e}")),
                Ok(mut s) => {
                    let mut len = 0u64;
                    let mut failed = None;
                    while let Some(chunk) = s.next().await {
                        match chunk {
                            Ok(c) => len += c.len() as u64,
                            Err(e) => {
                                failed = Some(e.to_string());
                                break;
                            }
                        }
                    }
                    if let Some(e) = failed {
                        problems.push(format!("blob {hash}: {e}"));
                    } else if len != *size {
                        problems.push(format!("blob {hash}: {len} bytes stored, {size} expected"));
                    }
                }
            }
        }
    }

    println!(
        "checked {folders} folders, {items} items, {} referenced blobs ({inline_count} kept in the metadata, {unreferenced} unreferenced awaiting collection)",
        refs.len()
    );
    if problems.is_empty() {
        println!("store OK");
        Ok(())
    } else {
        for p in &problems {
            println!("PROBLEM: {p}");
        }
        anyhow::bail!(
            "the store has {} integrity problems (listed above)",
            problems.len()
        )
    }
}
