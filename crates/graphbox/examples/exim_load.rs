//! Export/import load generator for a real `graphbox serve` (issue 4 benchmarks).
//!
//! Starts the given (release) binary on the embedded defaults in a fresh data
//! directory, creates a tenant, a user and an app token with the `graphbox`
//! CLI, and then drives the server over loopback HTTP/1.1 keep-alive:
//!
//! * `import-10k`: unique ~10 KB mail items, 16 concurrent uploads (items/s);
//! * `export-20`: exportItems in 20-item requests over those items (items/s);
//! * `export-1m`: exportItems of unique ~1 MB items (MB/s of decoded FTS);
//! * `import-100m`: one ~100 MB item; the server's peak resident memory above
//!   its resident memory before the upload (VmHWM after `clear_refs` 5);
//! * baselines in the same run: memcpy of 256 MiB and a 256 MiB sequential
//!   write + fsync in the data directory.
//!
//! Every throughput figure is the median of `--runs` runs (default 3). The
//! client runs on the same machine as the server, so figures are lower bounds.
//!
//! ```text
//! cargo build --release -p graphbox --bin graphbox --example exim_load
//! target/release/examples/exim_load --bin target/release/graphbox
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use mapi::builder::{Mailbox, MessageBuilder};
use serde::Deserialize;

#[derive(Parser, Debug)]
struct Args {
    /// The graphbox binary to benchmark (build it with --release).
    #[arg(long, default_value = "target/release/graphbox")]
    bin: String,
    /// Runs per measure; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Items imported per run of the 10 KB import measure.
    #[arg(long, default_value_t = 6000)]
    imports: usize,
    /// Size of the small items, bytes of FTS.
    #[arg(long, default_value_t = 10 * 1024)]
    small: usize,
    /// Concurrent uploads for the small-item import.
    #[arg(long, default_value_t = 16)]
    import_concurrency: usize,
    /// Concurrent exportItems requests.
    #[arg(long, default_value_t = 4)]
    export_concurrency: usize,
    /// Number of ~1 MB items for the large-item export.
    #[arg(long, default_value_t = 200)]
    large_items: usize,
    /// Size of the item of the memory measure, MiB.
    #[arg(long, default_value_t = 100)]
    huge_mib: usize,
    /// Metadata store URL for the server(s) (default: SQLite in the data directory).
    #[arg(long)]
    meta: Option<String>,
    /// Blob store URL for the server(s) (default: files in the data directory).
    #[arg(long)]
    blobs: Option<String>,
    /// Server instances on the same stores (requests alternate between them;
    /// more than one needs a shared --meta and --blobs).
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Only these measures (comma-separated: import-10k, export-20, export-1m, import-100m).
    #[arg(long)]
    only: Option<String>,
}

struct Server {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn store_args(a: &Args) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(m) = &a.meta {
        v.extend(["--meta".to_string(), m.clone()]);
    }
    if let Some(b) = &a.blobs {
        v.extend(["--blobs".to_string(), b.clone()]);
    }
    v
}

fn cli(a: &Args, dir: &std::path::Path, args: &[&str]) -> Result<String> {
    let bin = &a.bin;
    let out = Command::new(bin)
        .args(args)
        .args(store_args(a))
        .arg("--data-dir")
        .arg(dir)
        .output()
        .with_context(|| format!("running {bin}"))?;
    if !out.status.success() {
        bail!(
            "{bin} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

fn start(a: &Args, dir: tempfile::TempDir) -> Result<Server> {
    let bin = &a.bin;
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(store_args(a))
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {bin}"))?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(rest) = line.split("listening on ").nth(1) {
            let base = rest.split_whitespace().next().unwrap_or("").to_string();
            // Keep draining stdout so the server never blocks on it.
            std::thread::spawn(move || for _ in lines {});
            return Ok(Server { child, base, dir });
        }
    }
    bail!("the server exited before listening")
}

fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("{field} not in /proc/{pid}/status"))
}

/// A unique mail item whose framed FTS is about `size` bytes: a text body for
/// small items, a file attachment of pseudo-random bytes for large ones.
fn item(seq: usize, size: usize) -> Vec<u8> {
    let base = MessageBuilder::mail()
        .subject(format!("exim load item {seq}"))
        .from(Mailbox::new("Load Sender", "sender@load.test"))
        .to(Mailbox::new("Load Receiver", "receiver@load.test"))
        .message_id(format!("<load-{seq}@load.test>"));
    let overhead = base.clone().text_body("").to_framed_bytes().len();
    let room = size.saturating_sub(overhead);
    let mut rng = mapi::demo::Rng::new(seq as u64 ^ 0x9e37_79b9_7f4a_7c15);
    if size <= 64 * 1024 {
        // Text bodies are UTF-16 on the wire: two bytes per character.
        const WORDS: &[&str] = &[
            "mailbox",
            "export",
            "import",
            "graph",
            "delta",
            "folder",
            "stream",
            "backup",
            "restore",
            "quarterly",
            "report",
            "meeting",
            "agenda",
            "budget",
            "review",
        ];
        let mut text = String::with_capacity(room / 2 + 16);
        while text.len() < room / 2 {
            let w: &&str = rng.pick(WORDS);
            text.push_str(w);
            text.push(' ');
        }
        text.truncate(room / 2);
        base.text_body(text).to_framed_bytes()
    } else {
        let mut data = vec![0u8; room.saturating_sub(600)];
        rng.fill(&mut data);
        base.text_body("see attachment")
            .attach("payload.bin", "application/octet-stream", data)
            .to_framed_bytes()
    }
}

fn import_body(data: &[u8]) -> Bytes {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    Bytes::from(format!(
        "{{\"FolderId\":\"inbox\",\"Mode\":\"create\",\"Data\":\"{b64}\"}}"
    ))
}

#[derive(Deserialize)]
struct Imported {
    #[serde(rename = "itemId")]
    item_id: String,
}

#[derive(Deserialize)]
struct ExportAnswer<'a> {
    #[serde(borrow)]
    value: Vec<ExportEntry<'a>>,
}

#[derive(Deserialize)]
struct ExportEntry<'a> {
    #[serde(borrow)]
    data: Option<&'a str>,
}

struct Ctx {
    http: reqwest::Client,
    /// One base URL per instance; request i goes to instance i mod n.
    bases: Vec<String>,
    mbx_path: String,
    token: String,
    import_urls: Vec<String>,
}

/// Uploads every body with `conc` concurrent requests; returns the item ids
/// and the elapsed time.
async fn import_all(
    ctx: &Arc<Ctx>,
    bodies: Arc<Vec<Bytes>>,
    conc: usize,
) -> Result<(Vec<String>, Duration)> {
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (ctx, bodies, next) = (ctx.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let r = ctx
                    .http
                    .post(&ctx.import_urls[i % ctx.import_urls.len()])
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                let status = r.status();
                let bytes = r.bytes().await?;
                if !status.is_success() {
                    bail!("import: {status} {}", String::from_utf8_lossy(&bytes));
                }
                ids.push(serde_json::from_slice::<Imported>(&bytes)?.item_id);
            }
            Ok::<_, anyhow::Error>(ids)
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await??);
    }
    Ok((ids, t0.elapsed()))
}

/// Exports `ids` in 20-item requests with `conc` concurrent requests;
/// returns (items, decoded bytes, elapsed).
async fn export_all(ctx: &Arc<Ctx>, ids: &[String], conc: usize) -> Result<(usize, u64, Duration)> {
    let batches: Arc<Vec<Bytes>> = Arc::new(
        ids.chunks(20)
            .map(|c| Bytes::from(serde_json::to_vec(&serde_json::json!({ "itemIds": c })).unwrap()))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (ctx, batches, next) = (ctx.clone(), batches.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut items, mut bytes) = (0usize, 0u64);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = batches.get(i) else { break };
                let url = format!(
                    "{}{}/exportItems",
                    ctx.bases[i % ctx.bases.len()],
                    ctx.mbx_path
                );
                let r = ctx
                    .http
                    .post(&url)
                    .bearer_auth(&ctx.token)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                let status = r.status();
                let raw = r.bytes().await?;
                if !status.is_success() {
                    bail!(
                        "export: {status} {}",
                        String::from_utf8_lossy(&raw[..raw.len().min(300)])
                    );
                }
                let answer: ExportAnswer = serde_json::from_slice(&raw)?;
                for e in answer.value {
                    let data = e
                        .data
                        .ok_or_else(|| anyhow!("an item came back without data"))?;
                    // Decoded size without decoding: 3 bytes per 4 characters minus padding.
                    let pad = data.bytes().rev().take_while(|&c| c == b'=').count();
                    bytes += (data.len() / 4 * 3 - pad) as u64;
                    items += 1;
                }
            }
            Ok::<_, anyhow::Error>((items, bytes))
        }));
    }
    let (mut items, mut bytes) = (0, 0);
    for t in tasks {
        let (i, b) = t.await??;
        items += i;
        bytes += b;
    }
    Ok((items, bytes, t0.elapsed()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn memcpy_baseline() -> f64 {
    let src = vec![7u8; 256 << 20];
    let mut dst = vec![0u8; 256 << 20];
    let mut best = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        dst.copy_from_slice(&src);
        std::hint::black_box(&dst);
        best.push(256.0 / t.elapsed().as_secs_f64());
    }
    median(best)
}

fn disk_baseline(dir: &std::path::Path) -> Result<f64> {
    let path = dir.join("dd.bin");
    let mut block = vec![0u8; 1 << 20];
    mapi::demo::Rng::new(1).fill(&mut block);
    let t = Instant::now();
    let mut f = std::fs::File::create(&path)?;
    for _ in 0..256 {
        f.write_all(&block)?;
    }
    f.sync_all()?;
    let mb_s = 256.0 / t.elapsed().as_secs_f64();
    std::fs::remove_file(path)?;
    Ok(mb_s)
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = Args::parse();
    let only: Option<Vec<String>> = a
        .only
        .as_ref()
        .map(|s| s.split(',').map(str::to_string).collect());
    let want = |m: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == m));

    let dir = tempfile::Builder::new()
        .prefix("graphbox-exim-load-")
        .tempdir()?;
    let d = dir.path().to_path_buf();
    cli(
        &a,
        &d,
        &[
            "admin",
            "tenant",
            "create",
            "--domain",
            "load.test",
            "--name",
            "Load",
        ],
    )?;
    let user: serde_json::Value = serde_json::from_str(&cli(
        &a,
        &d,
        &[
            "admin",
            "user",
            "create",
            "--tenant",
            "load.test",
            "--upn",
            "u@load.test",
            "--name",
            "U",
            "--json",
        ],
    )?)?;
    let mbx = user["primaryMailboxId"]
        .as_str()
        .ok_or_else(|| anyhow!("no primaryMailboxId"))?
        .to_string();
    let token = cli(
        &a,
        &d,
        &[
            "token",
            "--tenant",
            "load.test",
            "--app",
            "11111111-2222-3333-4444-555555555555",
            "--roles",
            "MailboxItem.ImportExport.All,MailboxItem.Read.All,MailboxFolder.ReadWrite.All",
        ],
    )?;
    if a.instances == 0 || (a.instances > 1 && (a.meta.is_none() || a.blobs.is_none())) {
        bail!("--instances must be 1, or more with a shared --meta and --blobs");
    }
    let server = start(&a, dir)?;
    let mut others = Vec::new();
    for _ in 1..a.instances {
        others.push(start(
            &a,
            tempfile::Builder::new()
                .prefix("graphbox-exim-load-")
                .tempdir()?,
        )?);
    }
    let pid = server.child.id();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let mbx_path = format!("/v1.0/admin/exchange/mailboxes/{mbx}");
    let session: serde_json::Value = http
        .post(format!("{}{mbx_path}/createImportSession", server.base))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let import_url = session["importUrl"]
        .as_str()
        .ok_or_else(|| anyhow!("no importUrl"))?
        .to_string();
    // Every instance accepts the session: the same URL on each instance's base.
    let mut bases = vec![server.base.clone()];
    bases.extend(others.iter().map(|o| o.base.clone()));
    let import_urls: Vec<String> = bases
        .iter()
        .map(|b| import_url.replacen(&server.base, b, 1))
        .collect();
    let ctx = Arc::new(Ctx {
        http,
        bases,
        mbx_path,
        token,
        import_urls,
    });
    let mut report = serde_json::Map::new();
    report.insert("memcpy_mb_s".into(), (memcpy_baseline().round()).into());
    report.insert(
        "disk_write_fsync_mb_s".into(),
        disk_baseline(server.dir.path())?.round().into(),
    );

    {
        let url = a
            .blobs
            .clone()
            .unwrap_or_else(|| format!("file://{}", d.display()));
        // Baseline: the blob store alone, 10 KB objects, 16 concurrent puts
        // then 16 concurrent gets (what each import / export item needs at least).
        let store = store::BlobStore::connect(&format!(
            "{}/baseline-{}",
            url.trim_end_matches('/'),
            std::process::id()
        ))
        .await?;
        let objs: Vec<Bytes> = (0..2000)
            .map(|i| {
                let mut v = vec![0u8; a.small];
                mapi::demo::Rng::new(i as u64 + 77).fill(&mut v);
                Bytes::from(v)
            })
            .collect();
        let t = Instant::now();
        let refs: Vec<store::BlobRef> = futures::stream::iter(objs.into_iter().map(|o| {
            let store = store.clone();
            async move { store.put(o).await }
        }))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
        let put_s = refs.len() as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let n = futures::stream::iter(refs.iter().map(|r| {
            let store = store.clone();
            async move { store.get(&r.hash).await }
        }))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .len();
        let get_s = n as f64 / t.elapsed().as_secs_f64();
        eprintln!(
            "blob store baseline: {put_s:.0} puts/s, {get_s:.0} gets/s of {} B objects",
            a.small
        );
        report.insert("blob_store_puts_s".into(), put_s.round().into());
        report.insert("blob_store_gets_s".into(), get_s.round().into());
    }
    let mut seq = 0usize;
    let mut small_ids = Vec::new();
    if want("import-10k") || want("export-20") {
        let mut rates = Vec::new();
        let mut sizes = 0usize;
        for run in 0..a.runs {
            let datas: Vec<Vec<u8>> = (0..a.imports).map(|i| item(seq + i, a.small)).collect();
            seq += a.imports;
            sizes += datas.iter().map(Vec::len).sum::<usize>();
            let bodies: Arc<Vec<Bytes>> = Arc::new(datas.iter().map(|d| import_body(d)).collect());
            drop(datas);
            let (ids, dt) = import_all(&ctx, bodies, a.import_concurrency).await?;
            let rate = ids.len() as f64 / dt.as_secs_f64();
            eprintln!(
                "import-10k run {run}: {} items in {:.2} s = {rate:.0} items/s",
                ids.len(),
                dt.as_secs_f64()
            );
            rates.push(rate);
            small_ids.extend(ids);
        }
        report.insert(
            "small_item_bytes_mean".into(),
            (sizes / (a.runs * a.imports)).into(),
        );
        report.insert(
            "import_10k_items_s_runs".into(),
            rates.iter().map(|r| r.round()).collect::<Vec<_>>().into(),
        );
        report.insert(
            "import_10k_items_s_median".into(),
            median(rates).round().into(),
        );
    }
    if want("export-20") {
        let mut rates = Vec::new();
        let mut mb = Vec::new();
        for run in 0..a.runs {
            let (n, bytes, dt) = export_all(&ctx, &small_ids, a.export_concurrency).await?;
            if n != small_ids.len() {
                bail!("export-20 returned {n} of {} items", small_ids.len());
            }
            let rate = n as f64 / dt.as_secs_f64();
            eprintln!(
                "export-20 run {run}: {n} items in {:.2} s = {rate:.0} items/s",
                dt.as_secs_f64()
            );
            rates.push(rate);
            mb.push(bytes as f64 / 1e6 / dt.as_secs_f64());
        }
        report.insert(
            "export_20_items_s_runs".into(),
            rates.iter().map(|r| r.round()).collect::<Vec<_>>().into(),
        );
        report.insert(
            "export_20_items_s_median".into(),
            median(rates).round().into(),
        );
        report.insert("export_20_mb_s_median".into(), median(mb).round().into());
    }
    if want("export-1m") {
        let datas: Vec<Vec<u8>> = (0..a.large_items).map(|i| item(seq + i, 1 << 20)).collect();
        seq += a.large_items;
        let bodies: Arc<Vec<Bytes>> = Arc::new(datas.iter().map(|d| import_body(d)).collect());
        drop(datas);
        let (ids, dt) = import_all(&ctx, bodies, 4).await?;
        let import_mb_s = ids.len() as f64 * (1 << 20) as f64 / 1e6 / dt.as_secs_f64();
        report.insert("import_1m_mb_s".into(), import_mb_s.round().into());
        let mut rates = Vec::new();
        for run in 0..a.runs {
            let (n, bytes, dt) = export_all(&ctx, &ids, a.export_concurrency).await?;
            if n != ids.len() {
                bail!("export-1m returned {n} of {} items", ids.len());
            }
            let rate = bytes as f64 / 1e6 / dt.as_secs_f64();
            eprintln!(
                "export-1m run {run}: {n} items, {:.0} MB in {:.2} s = {rate:.0} MB/s",
                bytes as f64 / 1e6,
                dt.as_secs_f64()
            );
            rates.push(rate);
        }
        report.insert(
            "export_1m_mb_s_runs".into(),
            rates.iter().map(|r| r.round()).collect::<Vec<_>>().into(),
        );
        report.insert("export_1m_mb_s_median".into(), median(rates).round().into());
    }
    if want("import-100m") {
        let data = item(seq, a.huge_mib << 20);
        let body = import_body(&data);
        let item_mb = data.len() as f64 / (1 << 20) as f64;
        drop(data);
        // Let the allocator settle, then reset the peak (VmHWM) to the current RSS.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = status_kib(pid, "VmRSS:")?;
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").context("resetting VmHWM")?;
        let t = Instant::now();
        let (ids, _) = import_all(&ctx, Arc::new(vec![body]), 1).await?;
        let dt = t.elapsed();
        let peak = status_kib(pid, "VmHWM:")?;
        let raised_mb = peak.saturating_sub(before) as f64 / 1024.0;
        eprintln!(
            "import-100m: {item_mb:.1} MiB item, RSS {} -> peak {} MiB (+{raised_mb:.0} MiB) in {:.2} s",
            before / 1024,
            peak / 1024,
            dt.as_secs_f64()
        );
        // And it exports back whole.
        let (n, bytes, _) = export_all(&ctx, &ids, 1).await?;
        if n != 1 || bytes as f64 / (1 << 20) as f64 - item_mb > 0.01 {
            bail!("the 100 MB item did not export back whole ({n} items, {bytes} bytes)");
        }
        report.insert(
            "huge_item_mib".into(),
            ((item_mb * 10.0).round() / 10.0).into(),
        );
        report.insert("huge_rss_before_mib".into(), (before / 1024).into());
        report.insert("huge_rss_raise_mib".into(), raised_mb.round().into());
        report.insert(
            "huge_rss_raise_ratio".into(),
            ((raised_mb / item_mb * 100.0).round() / 100.0).into(),
        );
        report.insert(
            "huge_import_s".into(),
            ((dt.as_secs_f64() * 100.0).round() / 100.0).into(),
        );
    }
    report.insert(
        "server_vmhwm_mib".into(),
        (status_kib(pid, "VmHWM:")? / 1024).into(),
    );
    report.insert("instances".into(), a.instances.into());
    println!("{}", serde_json::to_string_pretty(&report)?);
    drop(others);
    drop(server);
    Ok(())
}
