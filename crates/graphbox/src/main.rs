//! The `graphbox` command: the server, its administration, tokens, and the FTS tools.

mod admin;
mod backup;
mod check;
mod cli;
mod config;
mod demo;
mod fts_cmd;
mod identity_cmd;
mod ingest;
mod migrate;
mod serve;
mod token;

use clap::Parser;

/// mimalloc: the server allocates many small, short-lived objects per request
/// (JSON rendering), and glibc malloc took a quarter of its CPU time in a
/// profile of delta enumeration.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// No transparent huge pages for the allocator's memory. mimalloc is built
/// with `no_thp` (it never advises huge pages on its arenas), and the
/// process opts out of THP except where a region asks for it
/// (`PR_THP_DISABLE_EXCEPT_ADVISED`, Linux 6.18; before that, entirely):
/// for systems whose THP mode is `always`. With huge pages, mimalloc's
/// returning freed spans to the kernel made every later touch of such a span
/// zero a whole 2 MiB page: with the multi-MiB buffers a backup (exportItems
/// answers, pack buffers) and the server (export answers, import bodies) go
/// through, that zeroing (`clear_page_erms`) was 10–16% of the backup
/// client's CPU samples and 11% of the server's in `perf` profiles; without
/// it, under 2% (docs/BENCHMARKS.md).
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and only sets a flag on
    // this process's memory map; a failure leaves THP as it was.
    unsafe {
        const PR_THP_DISABLE_EXCEPT_ADVISED: libc::c_ulong = 1 << 1;
        if libc::prctl(
            libc::PR_SET_THP_DISABLE,
            1,
            PR_THP_DISABLE_EXCEPT_ADVISED,
            0,
            0,
        ) != 0
        {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

/// Returns at the next Ctrl-C (SIGINT) or, on Unix, SIGTERM.
pub(crate) async fn interrupt_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Fts(cmd) => fts_cmd::run(cmd),
        other => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if matches!(other, cli::Command::Client(_)) {
                builder.max_blocking_threads(client_blocking_threads());
            }
            let runtime = match builder.enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            runtime.block_on(run(other, cli.global))
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Blocking threads for the backup client's runtime: twice the cores, at
/// least 4. Its blocking work is compressing, encrypting, hashing and
/// parsing, and local file I/O; tokio's default (up to 512) let an
/// incremental backup start ~20 threads, each with an allocator heap of its
/// own in fresh memory. With 4 on two cores: 13% fewer page faults and 7%
/// less CPU per incremental run, and full runs no slower
/// (docs/BENCHMARKS.md). The server keeps the default: its blocking threads
/// wait on the metadata store.
fn client_blocking_threads() -> usize {
    std::thread::available_parallelism().map_or(4, |n| (2 * n.get()).max(4))
}

async fn run(command: cli::Command, global: cli::Global) -> anyhow::Result<()> {
    match command {
        cli::Command::Serve(args) => serve::run(global, args).await,
        cli::Command::Token(args) => token::run(global, args).await,
        cli::Command::Admin(cmd) => admin::run(global, cmd).await,
        cli::Command::Client(cmd) => backup::run(cmd).await,
        cli::Command::Fts(_) => unreachable!("handled without a runtime"),
    }
}
