//! `graphbox serve`: open the stores, build the Graph router, listen (HTTP or
//! HTTPS), and shut down gracefully on SIGINT/SIGTERM, finishing in-flight
//! requests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::serve::ListenerExt;
use store::MetaStore;

use crate::cli::{Global, ServeArgs};
use crate::config::{self, ServeConfig};

/// The setting that holds the token issuer base URL. The first server start
/// (or the first `graphbox token`) fixes it, so tokens stay valid across
/// restarts, port changes and instances.
pub const ISSUER_SETTING: &str = "issuer_base";
const DEFAULT_ISSUER: &str = "http://127.0.0.1:8080";

/// The issuer base URL of this deployment (see [`ISSUER_SETTING`]).
pub async fn issuer_base(meta: &dyn MetaStore, first: Option<&str>) -> anyhow::Result<String> {
    if let Some(v) = meta.get_setting(ISSUER_SETTING).await? {
        return Ok(v);
    }
    Ok(meta
        .put_setting_if_absent(ISSUER_SETTING, first.unwrap_or(DEFAULT_ISSUER))
        .await?)
}

fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("GRAPHBOX_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Where the self-signed certificate and key live, generating them on first use.
fn self_signed(data_dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = data_dir.join("tls");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let generated = rcgen::generate_simple_self_signed(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])
    .context("cannot generate a self-signed certificate")?;
    std::fs::write(&key, generated.signing_key.serialize_pem())
        .with_context(|| format!("cannot write {}", key.display()))?;
    std::fs::write(&cert, generated.cert.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    Ok((cert, key))
}

async fn shutdown_signal() {
    crate::interrupt_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
}

/// The token authority of this server: the key set from the store (rotated
/// now if `--key-rotation-days` says it is due), the clock skew and the
/// external issuers of the configuration; then a background task reloads the
/// key set every minute (keys rotated by other instances or `graphbox admin
/// keys rotate`, retired keys dropped) and rotates when due.
async fn authority(
    cfg: &ServeConfig,
    stores: &config::Stores,
    issuer: &str,
) -> anyhow::Result<Arc<api::Authority>> {
    let settings = api::AuthSettings {
        clock_skew: cfg.clock_skew,
        external: config::external_issuers(&cfg.external_issuers, stores.meta.as_ref()).await?,
        ..api::AuthSettings::default()
    };
    let authority = Arc::new(
        api::Authority::open(stores.meta.clone(), issuer, settings)
            .await
            .context("cannot load the token signing keys from the store")?,
    );
    let rotation = cfg.key_rotation;
    if let Some(every) = rotation
        && let Some(k) = authority
            .rotate_if_due(every)
            .await
            .context("cannot rotate the token signing key")?
    {
        tracing::info!(kid = %k.kid, slot = k.slot, activates = %k.activates, "rotated the token signing key");
    }
    let a = authority.clone();
    tokio::spawn(async move {
        let every = std::time::Duration::from_secs(api::auth::KEY_REFRESH_SECS as u64);
        loop {
            tokio::time::sleep(every).await;
            let done = match rotation {
                Some(r) => a.rotate_if_due(r).await.map(|k| {
                    if let Some(k) = k {
                        tracing::info!(kid = %k.kid, slot = k.slot, activates = %k.activates, "rotated the token signing key");
                    }
                }),
                None => a.refresh().await,
            };
            if let Err(e) = done {
                tracing::warn!(error = %e, "reloading the token signing keys failed; retrying in a minute");
            }
        }
    });
    Ok(authority)
}

pub async fn run(global: Global, args: ServeArgs) -> anyhow::Result<()> {
    let cfg: ServeConfig = config::resolve_serve(&global, &args)?;
    init_logging(&cfg.log_format);
    let started = std::time::Instant::now();
    let stores = config::open_configured_stores(&global).await?;

    let addr: SocketAddr = cfg.listen.parse().with_context(|| {
        format!(
            "--listen must be an address like 127.0.0.1:8080 or [::]:443, not {:?}",
            cfg.listen
        )
    })?;
    let std_listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} (is another server using it?)"))?;
    std_listener.set_nonblocking(true)?;
    let local = std_listener.local_addr()?;
    let scheme = if cfg.tls { "https" } else { "http" };
    let shown_host = if local.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else if local.is_ipv6() {
        format!("[{}]", local.ip())
    } else {
        local.ip().to_string()
    };
    let base = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{shown_host}:{}", local.port()))
        .trim_end_matches('/')
        .to_owned();

    let issuer = issuer_base(stores.meta.as_ref(), Some(&base)).await?;
    let authority = authority(&cfg, &stores, &issuer).await?;
    let mut state = api::AppState::load(stores.meta.clone(), base.clone(), issuer)
        .await
        .context("cannot load the server's keys from the store")?
        .with_blobs(stores.blobs.clone())
        .with_import_settings(api::exim::ImportSettings {
            session_lifetime: time::Duration::seconds(i64::from(args.import_session_secs)),
            max_item_size: args.max_import_bytes,
            inline_max: args.inline_max_bytes,
            import_base_url: args
                .import_url
                .clone()
                .unwrap_or_else(|| base.clone())
                .trim_end_matches('/')
                .to_owned(),
        });
    state.authority = authority.clone();
    if args.collect_secs > 0 {
        let (meta, blobs, gate) = (
            state.meta.clone(),
            state.blobs.clone(),
            state.exim.gate.clone(),
        );
        let every = std::time::Duration::from_secs(args.collect_secs);
        tokio::spawn(async move {
            loop {
                match api::exim::collect_garbage(meta.as_ref(), &blobs, &gate).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(reclaimed = n, "blob collector"),
                    Err(e) => tracing::warn!(error = %e, "blob collector failed; retrying later"),
                }
                tokio::time::sleep(every).await;
            }
        });
    }

    let tls_files = if cfg.tls {
        Some(match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => self_signed(&cfg.data_dir)?,
        })
    } else {
        None
    };

    if cfg.demo {
        crate::demo::ensure(
            &stores,
            &state,
            &base,
            tls_files.as_ref().map(|(c, _)| c.as_path()),
        )
        .await?;
    }

    // The identity authority (OAuth 2.0 / OpenID Connect under /{tenant}/),
    // signing with the same authority the Graph side validates with.
    // Its directory lives in the metadata database (SQLite or PostgreSQL).
    let mut identity_state = identity::IdentityState::new(
        stores.meta.clone(),
        stores.directory.clone(),
        state.authority.clone(),
        base.clone(),
    );
    identity_state.token_lifetime = cfg.access_token_lifetime;
    let identity_router = identity::router(identity_state);
    let app = api::router(state).merge(identity_router);
    tracing::info!(
        data_dir = %cfg.data_dir.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "graphbox ready"
    );
    // The machine-readable line tests and scripts wait for.
    println!("listening on {base}");
    use std::io::Write;
    std::io::stdout().flush().ok();

    match tls_files {
        None => {
            axum::serve(plain_listener(std_listener)?, app)
                .with_graceful_shutdown(shutdown_signal())
                .await
                .context("the server failed")?;
        }
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .with_context(|| {
                    format!(
                        "cannot load the TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                h.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
            });
            tls_server(std_listener, tls)?
                .handle(handle)
                .serve(app.into_make_service())
                .await
                .context("the server failed")?;
        }
    }
    drop(stores);
    Ok(())
}

// Every accepted connection gets TCP_NODELAY (neither axum::serve nor
// axum-server set it by default). Without it, Nagle's algorithm holds back
// the last small segment of an answer until the client acknowledges the
// ones before, and a client's delayed acknowledgement can take 40 ms: in
// incremental backups (5 exportItems answers of ~1.3 MB) 7 of 20 runs
// stalled that way, their export taking 48–58 ms instead of 12–20 ms
// (docs/BENCHMARKS.md).

/// The plain-HTTP listener: accepted streams with TCP_NODELAY.
fn plain_listener(
    listener: std::net::TcpListener,
) -> std::io::Result<impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = SocketAddr>> {
    Ok(tokio::net::TcpListener::from_std(listener)?.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
    }))
}

/// The HTTPS server: TLS over accepted streams with TCP_NODELAY.
fn tls_server(
    listener: std::net::TcpListener,
    tls: axum_server::tls_rustls::RustlsConfig,
) -> std::io::Result<
    axum_server::Server<
        SocketAddr,
        axum_server::tls_rustls::RustlsAcceptor<axum_server::accept::NoDelayAcceptor>,
    >,
> {
    Ok(axum_server::from_tcp_rustls(listener, tls)?
        .map(|a| a.acceptor(axum_server::accept::NoDelayAcceptor::new())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;

    #[tokio::test]
    async fn accepted_plain_connections_have_nodelay() {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let mut listener = plain_listener(std_listener).unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, peer) = listener.accept().await;
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(
            accepted.nodelay().unwrap(),
            "the server side must have TCP_NODELAY"
        );
        // A socket starts without it: the flag above is the listener's doing.
        assert!(!client.nodelay().unwrap());
    }
}
