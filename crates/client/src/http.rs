//! The HTTP clients behind every request: one for `http://` URLs, built
//! without a trust store, and one for `https://` URLs, which trusts the
//! system's CA certificates and the profile's own.
//!
//! Building the TLS client reads and parses every certificate of the system
//! store (on Debian, `ca-certificates.crt` and each file of `/etc/ssl/certs`:
//! ~280 parses, 13 ms of CPU on the reference machine). A profile whose Graph
//! base URL and authority are both `http://` (a graphbox server on loopback
//! or in CI) never needs it unless an answer sends the client to an
//! `https://` URL (a redirect, an import URL); it is then built on that first
//! use. Otherwise it is built with the client, as before.

use std::time::Duration;

use reqwest::{Method, RequestBuilder};

use crate::error::{Error, Result};
use crate::profile::Profile;

pub(crate) struct Http {
    plain: reqwest::Client,
    tls: tokio::sync::OnceCell<reqwest::Client>,
    settings: Settings,
}

/// What both clients are built from.
#[derive(Clone)]
struct Settings {
    request_timeout: Duration,
    /// The profile's `ca_certificate`, read and parsed up front so that a
    /// bad file is reported when the client is built, not at the first
    /// `https://` request.
    extra_roots: Vec<reqwest::Certificate>,
}

impl Settings {
    fn builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .timeout(self.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("graphbox-client/", env!("CARGO_PKG_VERSION")))
    }

    fn build_plain(&self) -> Result<reqwest::Client> {
        finish(self.builder().tls_built_in_root_certs(false))
    }

    fn build_tls(&self) -> Result<reqwest::Client> {
        let mut builder = self.builder();
        for c in &self.extra_roots {
            builder = builder.add_root_certificate(c.clone());
        }
        finish(builder)
    }
}

fn finish(builder: reqwest::ClientBuilder) -> Result<reqwest::Client> {
    builder
        .build()
        .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))
}

/// Whether `url` is an `https://` URL (the scheme compared as URLs do,
/// ignoring case).
fn is_https(url: &str) -> bool {
    url.split_once(':')
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("https"))
}

impl Http {
    pub(crate) fn new(profile: &Profile) -> Result<Http> {
        let settings = Settings {
            request_timeout: Duration::from_secs(profile.request_timeout_secs.max(1)),
            extra_roots: read_ca_certificate(profile)?,
        };
        // A profile that talks https:// needs the TLS client for its first
        // request: built now, where the caller can overlap it with other work.
        let eager = is_https(&profile.graph_base) || is_https(&profile.authority);
        let tls = eager.then(|| settings.build_tls()).transpose()?;
        Ok(Http {
            plain: settings.build_plain()?,
            tls: tokio::sync::OnceCell::new_with(tls),
            settings,
        })
    }

    /// A request to `url` on the client its scheme needs.
    pub(crate) async fn request(&self, method: Method, url: &str) -> Result<RequestBuilder> {
        if !is_https(url) {
            return Ok(self.plain.request(method, url));
        }
        let client = self
            .tls
            .get_or_try_init(|| async {
                let settings = self.settings.clone();
                tokio::task::spawn_blocking(move || settings.build_tls())
                    .await
                    .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?
            })
            .await?;
        Ok(client.request(method, url))
    }

    /// Whether the TLS client has been built (for tests).
    #[cfg(test)]
    fn has_tls(&self) -> bool {
        self.tls.initialized()
    }
}

fn read_ca_certificate(profile: &Profile) -> Result<Vec<reqwest::Certificate>> {
    let Some(ca) = &profile.ca_certificate else {
        return Ok(Vec::new());
    };
    let pem = std::fs::read(ca).map_err(|e| {
        Error::Config(format!(
            "cannot read the CA certificate {}: {e}",
            ca.display()
        ))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| Error::Config(format!("{} holds no PEM certificate: {e}", ca.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)",
            ca.display()
        )));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Credential;

    fn profile(graph: &str, authority: &str) -> Profile {
        let mut p = Profile::new(
            "contoso.test",
            "d3e00000-0000-4000-8000-000000000001",
            Credential::Secret { secret: "s".into() },
        );
        p.graph_base = graph.into();
        p.authority = authority.into();
        p
    }

    #[test]
    fn scheme_is_compared_without_case() {
        assert!(is_https("https://graph.microsoft.com/v1.0"));
        assert!(is_https("HTTPS://graph.microsoft.com"));
        assert!(!is_https("http://127.0.0.1:8080"));
        assert!(!is_https("httpsx://a"));
        assert!(!is_https("no scheme"));
    }

    #[test]
    fn tls_client_is_built_up_front_when_the_profile_uses_https() {
        for (g, a) in [
            (
                "https://graph.microsoft.com",
                "https://login.microsoftonline.com",
            ),
            ("http://127.0.0.1:1", "https://login.microsoftonline.com"),
            ("https://localhost:8443", "http://127.0.0.1:1"),
        ] {
            assert!(Http::new(&profile(g, a)).unwrap().has_tls(), "{g} {a}");
        }
        let plain = Http::new(&profile("http://127.0.0.1:1", "http://127.0.0.1:1")).unwrap();
        assert!(!plain.has_tls());
    }

    #[tokio::test]
    async fn an_https_url_on_a_plain_profile_builds_the_tls_client_once() {
        let h = Http::new(&profile("http://127.0.0.1:1", "http://127.0.0.1:1")).unwrap();
        let rb = h
            .request(Method::GET, "http://127.0.0.1:1/x")
            .await
            .unwrap();
        assert_eq!(rb.build().unwrap().url().scheme(), "http");
        assert!(!h.has_tls(), "a plain URL must not build the TLS client");
        let first = h
            .request(Method::GET, "https://example.test/a")
            .await
            .unwrap();
        assert_eq!(
            first.build().unwrap().url().as_str(),
            "https://example.test/a"
        );
        assert!(h.has_tls());
        let before = h.tls.get().map(|c| c as *const reqwest::Client);
        let second = h
            .request(Method::POST, "https://example.test/b")
            .await
            .unwrap();
        assert_eq!(second.build().unwrap().method(), Method::POST);
        assert_eq!(before, h.tls.get().map(|c| c as *const reqwest::Client));
    }

    /// An HTTPS server with a fresh self-signed certificate; its address
    /// and the certificate's PEM file.
    async fn tls_server(dir: &std::path::Path) -> (std::net::SocketAddr, std::path::PathBuf) {
        let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let cert = dir.join("server.pem");
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = axum_server::tls_rustls::RustlsConfig::from_pem(
            generated.cert.pem().into_bytes(),
            generated.signing_key.serialize_pem().into_bytes(),
        )
        .await
        .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/hello", axum::routing::get(|| async { "tls ok" }));
        tokio::spawn(async move {
            axum_server::from_tcp_rustls(listener, config)
                .unwrap()
                .serve(app.into_make_service())
                .await
                .unwrap();
        });
        (addr, cert)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lazily_built_tls_client_trusts_the_profile_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, cert) = tls_server(dir.path()).await;
        let url = format!("https://{addr}/hello");

        let mut p = profile("http://127.0.0.1:1", "http://127.0.0.1:1");
        p.ca_certificate = Some(cert);
        let h = Http::new(&p).unwrap();
        assert!(!h.has_tls());
        let resp = h
            .request(Method::GET, &url)
            .await
            .unwrap()
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "tls ok");

        // Without the profile's CA the server is not trusted.
        let h = Http::new(&profile("http://127.0.0.1:1", "http://127.0.0.1:1")).unwrap();
        let err = h
            .request(Method::GET, &url)
            .await
            .unwrap()
            .send()
            .await
            .unwrap_err();
        let chain = format!("{:?}", err).to_lowercase();
        assert!(chain.contains("certificate"), "{chain}");
    }

    #[test]
    fn a_bad_ca_file_is_reported_when_the_client_is_built() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let f = dir.join("not-a-cert.pem");
        std::fs::write(&f, "hello").unwrap();
        // Also for a plain profile, which would only use it after a redirect.
        let mut p = profile("http://127.0.0.1:1", "http://127.0.0.1:1");
        p.ca_certificate = Some(f.clone());
        let err = Http::new(&p).err().expect("refused").to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        p.ca_certificate = Some(dir.join("missing.pem"));
        let err = Http::new(&p).err().expect("refused").to_string();
        assert!(err.contains("cannot read the CA certificate"), "{err}");
    }
}
