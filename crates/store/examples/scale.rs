//! Scale check: seeds N items (default 1,000,000) into one folder of a fresh
//! SQLite store, then measures reopen time, full delta enumeration in pages
//! of 1,000, a one-change delta round and the first page of a default list.
//!
//! `cargo run --release -p store --example scale -- [N] [DIR]`
//!
//! With the `postgres` feature, `DIR` may instead be a `postgres://` URL of
//! an existing, empty database: the same figures on PostgreSQL.
//!
//! `cargo run --release -p store --features postgres --example scale -- [N] postgres://…`

use std::sync::Arc;
use std::time::Instant;

use store::{ListQuery, MailboxKind, MetaStore, NewItem, SqliteMetaStore};

async fn open(target: &str) -> store::Result<Arc<dyn MetaStore>> {
    if target.starts_with("postgres://") || target.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(Arc::new(store::PgMetaStore::open(target).await?));
        #[cfg(not(feature = "postgres"))]
        return Err(store::StoreError::Invalid(
            "build the example with --features postgres for a postgres:// target".into(),
        ));
    }
    let path = std::path::PathBuf::from(target).join("meta.db");
    Ok(Arc::new(SqliteMetaStore::open(&path).await?))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> store::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().map_or(1_000_000, |a| a.parse().expect("N"));
    let dir: String = args.next().unwrap_or_else(|| {
        std::env::temp_dir()
            .join(format!("graphbox-scale-{}", std::process::id()))
            .display()
            .to_string()
    });
    let is_dir = !dir.contains("://");
    if is_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let s = open(&dir).await?;
    let t = s.create_tenant("contoso.com", "Contoso").await?;
    let u = s.create_user(t.id, "adele@contoso.com", "Adele").await?;
    let mbx = s.create_mailbox(u.id, MailboxKind::Primary).await?.id;

    let start = Instant::now();
    let items = (0..n).map(|i| {
        let t = time::OffsetDateTime::UNIX_EPOCH
            + time::Duration::seconds(1_700_000_000 + i64::from(i));
        NewItem {
            class: "IPM.Note".into(),
            size: 4096,
            created: t,
            modified: t,
            categories: Vec::new(),
            blob: store::testsuite::test_blob(i),
            inline: None,
            ext_props: Vec::new(),
        }
    });
    s.bulk_insert_items(&mbx, "inbox", Box::new(items)).await?;
    let seed = start.elapsed();
    println!(
        "seed {n} items: {seed:?} ({:.0} items/s)",
        f64::from(n) / seed.as_secs_f64()
    );
    drop(s);

    let start = Instant::now();
    let s = open(&dir).await?;
    let inbox = s.resolve_folder(&mbx, "inbox").await?;
    println!(
        "reopen + resolve inbox: {:?} (count {})",
        start.elapsed(),
        inbox.total_item_count
    );

    let start = Instant::now();
    let mut after = 0;
    let mut seen = 0usize;
    let hw = loop {
        let p = s.item_delta(&mbx, &inbox.id, 0, after, 1000).await?;
        seen += p.changes.len();
        after = p.last_cn;
        if !p.more {
            break p.high_water;
        }
    };
    let full = start.elapsed();
    println!(
        "initial delta of {seen} items in pages of 1000: {full:?} ({:.0} items/s)",
        seen as f64 / full.as_secs_f64()
    );

    let first = s
        .list_items(
            &mbx,
            &inbox.id,
            &ListQuery {
                top: 10,
                ..ListQuery::default()
            },
        )
        .await?;
    let victim = first.items[0].clone();
    s.replace_item(
        &mbx,
        &victim.id,
        &victim.change_key,
        NewItem {
            class: victim.class.clone(),
            size: victim.size,
            created: victim.created,
            modified: victim.modified,
            categories: vec!["changed".into()],
            blob: victim.blob.clone(),
            inline: None,
            ext_props: Vec::new(),
        },
    )
    .await?;
    let start = Instant::now();
    let rounds = 100;
    for _ in 0..rounds {
        let p = s.item_delta(&mbx, &inbox.id, hw, 0, 1000).await?;
        assert_eq!(p.changes.len(), 1);
    }
    println!("one-change delta round: {:?}", start.elapsed() / rounds);

    let start = Instant::now();
    let page = s
        .list_items(
            &mbx,
            &inbox.id,
            &ListQuery {
                top: 100,
                ..ListQuery::default()
            },
        )
        .await?;
    println!("first list page (100, newest first): {:?}", start.elapsed());
    assert_eq!(page.items.len(), 100);
    let start = Instant::now();
    let c = s
        .list_items(
            &mbx,
            &inbox.id,
            &ListQuery {
                top: 1,
                count: true,
                ..ListQuery::default()
            },
        )
        .await?;
    println!(
        "$count over the folder: {:?} ({:?})",
        start.elapsed(),
        c.total
    );
    drop(s);
    if is_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
