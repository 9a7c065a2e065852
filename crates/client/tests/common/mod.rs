//! A real graphbox server in-process (SQLite + file blobs in a temp dir,
//! the Graph router and the identity router as `graphbox serve` composes
//! them), an app registered and consented through the directory admin API,
//! demo items made by the mapi builder, and the fault proxy in front.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use client::testing::{FaultPlan, FaultProxy};
use client::{Credential, GraphClient, Profile};
use store::directory::PermissionKind;
use store::{BlobStore, Mailbox, MailboxKind, MetaStore, SqliteMetaStore, Tenant};

pub const DOMAIN: &str = "contoso.test";
pub const ROLES: &[&str] = &[
    "User.Read.All",
    "MailboxFolder.ReadWrite.All",
    "MailboxItem.Read.All",
    "MailboxItem.ReadWrite.All",
    "MailboxItem.ImportExport.All",
];

/// One RSA key for the whole test binary (generation is slow): the
/// server's signing key.
fn server_key() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| api::auth::generate_signing_key_pem().unwrap())
}

/// The app's certificate credential: (PKCS#8 key PEM, certificate PEM).
pub fn app_certificate() -> &'static (String, String) {
    static CERT: OnceLock<(String, String)> = OnceLock::new();
    CERT.get_or_init(|| {
        let key_pem = api::auth::generate_signing_key_pem().unwrap();
        let kp = rcgen::KeyPair::from_pem(&key_pem).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["graphbox-backup".to_owned()])
            .unwrap()
            .self_signed(&kp)
            .unwrap();
        (key_pem, cert.pem())
    })
}

#[derive(Clone)]
pub struct Opts {
    /// Access token lifetime of the token endpoint.
    pub token_lifetime_secs: i64,
    /// Import session lifetime.
    pub import_session_secs: i64,
    /// Serve HTTPS with a self-signed certificate (no proxy then).
    pub tls: bool,
    /// (well-known folder, item count) seeded into megan's primary mailbox.
    pub seed: Vec<(&'static str, u64)>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            token_lifetime_secs: 3599,
            import_session_secs: 3600,
            tls: false,
            seed: vec![("inbox", 45), ("calendar", 6)],
        }
    }
}

pub struct Server {
    pub dir: tempfile::TempDir,
    pub meta: Arc<SqliteMetaStore>,
    pub blobs: Arc<BlobStore>,
    /// The fault proxy (the server's public URL); `None` with TLS.
    pub proxy: Option<FaultProxy>,
    /// What clients use (the proxy, or the HTTPS server).
    pub url: String,
    /// The server itself, behind the proxy.
    pub direct_url: String,
    pub tenant: Tenant,
    pub client_id: String,
    pub secret: String,
    pub megan: Mailbox,
    pub alex: Mailbox,
    /// PEM file of the self-signed server certificate (TLS only).
    pub server_cert: Option<PathBuf>,
    pub key_file: PathBuf,
    pub cert_file: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn demo_item(seed: u64, kind: mapi::demo::DemoKind) -> Bytes {
    let item = mapi::demo::stream(seed, mapi::demo::DEFAULT_BASE, Some(kind))
        .next()
        .unwrap();
    let root = fts::Root::MessageContent(item.builder.build());
    Bytes::from(fts::write_frames(
        &fts::FrameHeader::default(),
        &fts::encode_fts(&root),
        fts::frame::DEFAULT_CHUNK,
    ))
}

async fn seed_folder(
    meta: &SqliteMetaStore,
    blobs: &BlobStore,
    mbx: &Mailbox,
    folder: &str,
    n: u64,
    seed: u64,
) {
    let f = meta.resolve_folder(&mbx.id, folder).await.unwrap();
    let kind = if f.class.to_ascii_lowercase().starts_with("ipf.appointment") {
        mapi::demo::DemoKind::Appointment
    } else {
        mapi::demo::DemoKind::Mail
    };
    let mut rows = Vec::new();
    for item in mapi::demo::stream(seed, mapi::demo::DEFAULT_BASE, Some(kind)).take(n as usize) {
        let root = fts::Root::MessageContent(item.builder.build());
        let bytes = Bytes::from(fts::write_frames(
            &fts::FrameHeader::default(),
            &fts::encode_fts(&root),
            fts::frame::DEFAULT_CHUNK,
        ));
        let blob = blobs.put(bytes.clone()).await.unwrap();
        let fts::Root::MessageContent(content) = &root else {
            unreachable!()
        };
        rows.push(api::ingest::metadata(content, bytes.len(), blob));
    }
    meta.bulk_insert_items(&mbx.id, &f.id, Box::new(rows.into_iter()))
        .await
        .unwrap();
}

pub async fn start(opts: Opts) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(
        SqliteMetaStore::open(dir.path().join("meta.db"))
            .await
            .unwrap(),
    );
    let blobs = Arc::new(BlobStore::local(dir.path().join("blobs")).unwrap());
    meta.put_setting_if_absent(api::auth::SIGNING_KEY_SETTING, server_key())
        .await
        .unwrap();

    let server_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = server_listener.local_addr().unwrap();
    let scheme = if opts.tls { "https" } else { "http" };
    let direct_url = format!("{scheme}://{server_addr}");
    let (proxy_listener, public) = if opts.tls {
        (None, direct_url.clone())
    } else {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let u = format!("http://{}", l.local_addr().unwrap());
        (Some(l), u)
    };

    let tenant = meta.create_tenant(DOMAIN, "Contoso").await.unwrap();
    let mu = meta
        .create_user(tenant.id, "megan@contoso.test", "Megan Bowen")
        .await
        .unwrap();
    let au = meta
        .create_user(tenant.id, "alex@contoso.test", "Alex Wilber")
        .await
        .unwrap();
    let megan = meta
        .create_mailbox(mu.id, MailboxKind::Primary)
        .await
        .unwrap();
    let alex = meta
        .create_mailbox(au.id, MailboxKind::Primary)
        .await
        .unwrap();
    for (i, (folder, n)) in opts.seed.iter().enumerate() {
        seed_folder(&meta, &blobs, &megan, folder, *n, 100 + i as u64).await;
    }

    let state = api::AppState::load(meta.clone(), public.clone(), public.clone())
        .await
        .unwrap()
        .with_blobs(blobs.clone())
        .with_import_settings(api::exim::ImportSettings {
            session_lifetime: time::Duration::seconds(opts.import_session_secs),
            max_item_size: 150 * 1024 * 1024,
            inline_max: store::blob::DEFAULT_INLINE_MAX,
            import_base_url: public.clone(),
        });
    let mut identity = identity::IdentityState::new(
        meta.clone(),
        meta.clone(),
        state.authority.clone(),
        public.clone(),
    );
    identity.token_lifetime = time::Duration::seconds(opts.token_lifetime_secs);
    let dirx = &identity.directory;
    let app = dirx
        .create_app(tenant.id, "Backup", vec![], false)
        .await
        .unwrap();
    for r in ROLES {
        dirx.add_permission(app.client_id, PermissionKind::Application, r)
            .await
            .unwrap();
    }
    dirx.grant_admin_consent(app.client_id).await.unwrap();
    let secret = dirx
        .add_secret(app.client_id, time::Duration::days(1))
        .await
        .unwrap();
    let (key_pem, cert_pem) = app_certificate();
    dirx.add_certificate(app.client_id, cert_pem).await.unwrap();
    let key_file = dir.path().join("app-key.pem");
    let cert_file = dir.path().join("app-cert.pem");
    std::fs::write(&key_file, key_pem).unwrap();
    std::fs::write(&cert_file, cert_pem).unwrap();

    let router = api::router(state).merge(identity::router(identity));
    let mut server_cert = None;
    let task = if opts.tls {
        let generated = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .unwrap();
        let cert_path = dir.path().join("server-cert.pem");
        std::fs::write(&cert_path, generated.cert.pem()).unwrap();
        server_cert = Some(cert_path);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
            generated.cert.pem().into_bytes(),
            generated.signing_key.serialize_pem().into_bytes(),
        )
        .await
        .unwrap();
        let std_listener = server_listener.into_std().unwrap();
        tokio::spawn(async move {
            axum_server::from_tcp_rustls(std_listener, tls)
                .unwrap()
                .serve(router.into_make_service())
                .await
                .unwrap();
        })
    } else {
        tokio::spawn(async move {
            axum::serve(server_listener, router).await.unwrap();
        })
    };
    let proxy = proxy_listener.map(|l| FaultProxy::serve(l, &direct_url, FaultPlan::default()));
    Server {
        dir,
        meta,
        blobs,
        proxy,
        url: public,
        direct_url,
        tenant,
        client_id: app.client_id.to_string(),
        secret: secret.value,
        megan,
        alex,
        server_cert,
        key_file,
        cert_file,
        task,
    }
}

impl Server {
    pub fn proxy(&self) -> &FaultProxy {
        self.proxy
            .as_ref()
            .expect("a plain-HTTP server has a proxy")
    }

    /// A profile with the client secret, retries fast (tests).
    pub fn profile(&self) -> Profile {
        let mut p = Profile::new(
            DOMAIN,
            self.client_id.clone(),
            Credential::Secret {
                secret: self.secret.clone(),
            },
        );
        p.graph_base = self.url.clone();
        p.authority = self.url.clone();
        p.retry_base_delay_ms = 10;
        p.max_backoff_secs = 2;
        p.request_timeout_secs = 60;
        p
    }

    pub fn client(&self) -> GraphClient {
        GraphClient::new(self.profile()).unwrap()
    }

    /// Forgets every tombstone of `mbx`, so older delta tokens expire (410).
    pub async fn meta_purge(&self, mbx: &str) {
        let id = [&self.megan, &self.alex]
            .into_iter()
            .find(|m| m.id.to_string() == mbx)
            .unwrap()
            .id;
        self.meta.purge_tombstones(&id, 1 << 40).await.unwrap();
    }

    pub fn mbx(&self) -> String {
        self.megan.id.to_string()
    }
}
