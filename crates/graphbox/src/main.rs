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

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Fts(cmd) => fts_cmd::run(cmd),
        other => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
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

async fn run(command: cli::Command, global: cli::Global) -> anyhow::Result<()> {
    match command {
        cli::Command::Serve(args) => serve::run(global, args).await,
        cli::Command::Token(args) => token::run(global, args).await,
        cli::Command::Admin(cmd) => admin::run(global, cmd).await,
        cli::Command::Client(cmd) => backup::run(cmd).await,
        cli::Command::Fts(_) => unreachable!("handled without a runtime"),
    }
}
