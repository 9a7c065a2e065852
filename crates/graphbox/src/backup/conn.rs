//! Connecting to Graph: a profile from a TOML file, flags and environment.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use client::{ApiVersion, Credential, GraphClient, Profile};

/// How to reach Graph and sign in. A `--profile` TOML file (the fields of
/// `client::Profile`) gives the defaults; flags and environment variables
/// override it.
#[derive(Args, Debug, Clone, Default)]
pub struct ConnArgs {
    /// A connection profile (TOML): graph_base, authority, tenant,
    /// client_id, credential = { kind = "secret", secret = "…" }, …
    #[arg(long, env = "GRAPHBOX_PROFILE", value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Graph base URL (default https://graph.microsoft.com; a graphbox
    /// server's base URL for a local target).
    #[arg(long, env = "GRAPHBOX_GRAPH_URL", value_name = "URL")]
    pub graph: Option<String>,
    /// Graph API version: v1.0 or beta.
    #[arg(long, env = "GRAPHBOX_API_VERSION", value_parser = ["v1.0", "beta"])]
    pub api_version: Option<String>,
    /// Token authority base URL (default: Entra ID's
    /// https://login.microsoftonline.com, or --graph when that is not
    /// Microsoft's Graph).
    #[arg(long, env = "GRAPHBOX_AUTHORITY", value_name = "URL")]
    pub authority: Option<String>,
    /// Tenant id or domain.
    #[arg(long, env = "GRAPHBOX_TENANT")]
    pub tenant: Option<String>,
    /// Application (client) id.
    #[arg(long, env = "GRAPHBOX_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Client secret (prefer the environment variable).
    #[arg(long, env = "GRAPHBOX_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// PEM certificate registered on the app (with --private-key).
    #[arg(long, env = "GRAPHBOX_CLIENT_CERT", requires = "private_key")]
    pub certificate: Option<PathBuf>,
    /// PEM private key of --certificate.
    #[arg(long, env = "GRAPHBOX_CLIENT_KEY", requires = "certificate")]
    pub private_key: Option<PathBuf>,
    /// Sign in as a user with the device-code flow (delegated permissions).
    #[arg(long)]
    pub device_code: bool,
    /// Extra trusted CA certificate (PEM), e.g. a graphbox server's
    /// self-signed certificate.
    #[arg(long, env = "GRAPHBOX_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Concurrent requests per mailbox (Exchange Online allows 4).
    #[arg(long, env = "GRAPHBOX_CONCURRENCY")]
    pub concurrency: Option<usize>,
}

impl ConnArgs {
    pub fn profile(&self) -> Result<Profile> {
        let mut p: Option<Profile> = match &self.profile {
            Some(f) => {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("reading the profile {}", f.display()))?;
                Some(toml::from_str(&text).with_context(|| {
                    format!(
                        "the profile {} is not a valid connection profile",
                        f.display()
                    )
                })?)
            }
            None => None,
        };
        let credential = if self.device_code {
            Some(Credential::DeviceCode { prompt: None })
        } else if let (Some(cert), Some(key)) = (&self.certificate, &self.private_key) {
            Some(Credential::Certificate {
                private_key_pem: key.clone(),
                certificate_pem: cert.clone(),
            })
        } else {
            self.client_secret
                .as_ref()
                .map(|s| Credential::Secret { secret: s.clone() })
        };
        if p.is_none() {
            let (Some(tenant), Some(client_id)) = (&self.tenant, &self.client_id) else {
                bail!(
                    "no connection: give --tenant and --client-id with --client-secret, --certificate/--private-key or --device-code (or a --profile file)"
                );
            };
            let Some(credential) = credential.clone() else {
                bail!(
                    "no credential: give --client-secret (or GRAPHBOX_CLIENT_SECRET), --certificate with --private-key, or --device-code"
                );
            };
            p = Some(Profile::new(tenant.clone(), client_id.clone(), credential));
        }
        let mut p = p.expect("set above");
        if let Some(t) = &self.tenant {
            p.tenant = t.clone();
        }
        if let Some(c) = &self.client_id {
            p.client_id = c.clone();
        }
        if let Some(c) = credential {
            p.credential = c;
        }
        if let Some(g) = &self.graph {
            p.graph_base = g.trim_end_matches('/').to_string();
            if self.authority.is_none() && !p.graph_base.contains("graph.microsoft.com") {
                // A graphbox server is its own authority.
                p.authority = p.graph_base.clone();
            }
        }
        if let Some(a) = &self.authority {
            p.authority = a.trim_end_matches('/').to_string();
        }
        if let Some(v) = &self.api_version {
            p.api_version = if v == "beta" {
                ApiVersion::Beta
            } else {
                ApiVersion::V1
            };
        }
        if let Some(c) = &self.ca_cert {
            p.ca_certificate = Some(c.clone());
        }
        if let Some(n) = self.concurrency {
            if n == 0 {
                bail!("--concurrency must be at least 1");
            }
            p.max_concurrency_per_mailbox = n;
        }
        if let Credential::DeviceCode { prompt } = &mut p.credential
            && prompt.is_none()
        {
            *prompt = Some(Arc::new(|d: &client::DeviceCodePrompt| match &d.message {
                Some(m) => eprintln!("{m}"),
                None => eprintln!(
                    "To sign in, open {} and enter the code {}",
                    d.verification_uri, d.user_code
                ),
            }));
        }
        Ok(p)
    }

    pub fn client(&self) -> Result<GraphClient> {
        let p = self.profile()?;
        GraphClient::new(p).context("the connection profile is not usable")
    }
}

/// The mailboxes named on the command line and in `--mailboxes-file`.
pub fn mailbox_keys(args: &[String], file: Option<&PathBuf>) -> Result<Vec<String>> {
    let mut keys: Vec<String> = args.to_vec();
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading the mailbox list {}", f.display()))?;
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    if keys.is_empty() {
        bail!(
            "no mailbox: give --mailbox UPN or MBX:… (repeatable) or --mailboxes-file FILE (one per line)"
        );
    }
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(k.to_lowercase()));
    Ok(keys)
}
