//! Command-line definitions (clap). Every flag of `serve` also has a
//! `GRAPHBOX_*` environment variable and a key in the optional TOML file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "graphbox",
    version,
    about = "A Microsoft Graph mailbox import/export server and its tools"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Where the embedded store keeps its data (SQLite metadata and blob files).
    #[arg(long, global = true, env = "GRAPHBOX_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Metadata store URL: sqlite://PATH (default: sqlite://<data-dir>/meta.sqlite)
    /// or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (shared by many instances).
    #[arg(long, global = true, env = "GRAPHBOX_META", value_name = "URL")]
    pub meta: Option<String>,
    /// Blob store URL: file:///PATH (default: file://<data-dir>/blobs),
    /// s3://BUCKET/PREFIX (AWS_* environment), az://CONTAINER/PREFIX (AZURE_*
    /// environment) or memory:// (lost at exit).
    #[arg(long, global = true, env = "GRAPHBOX_BLOBS", value_name = "URL")]
    pub blobs: Option<String>,
    /// Optional TOML configuration file (flags and environment variables win over it).
    #[arg(long, global = true, env = "GRAPHBOX_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true, env = "GRAPHBOX_LOG_FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the Graph server.
    Serve(ServeArgs),
    /// Mint an access token signed by this server's key (for tests and local use).
    Token(TokenArgs),
    /// Manage tenants, users, mailboxes and content.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Decode and encode FastTransfer streams.
    #[command(subcommand)]
    Fts(FtsCmd),
    #[command(flatten)]
    Client(crate::backup::ClientCmd),
}

#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "GRAPHBOX_LISTEN")]
    pub listen: Option<String>,
    /// Serve HTTPS; without --tls-cert/--tls-key a self-signed certificate is
    /// generated into the data directory.
    #[arg(long, env = "GRAPHBOX_TLS")]
    pub tls: bool,
    #[arg(long, env = "GRAPHBOX_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, env = "GRAPHBOX_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The public base URL clients reach this server at (for links and import URLs),
    /// when it differs from the listen address (behind a proxy).
    #[arg(long, env = "GRAPHBOX_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// On first start, seed a demo tenant with users and realistic content.
    #[arg(long, env = "GRAPHBOX_DEMO")]
    pub demo: bool,
    /// Lifetime of import sessions (createImportSession), in seconds.
    #[arg(long, env = "GRAPHBOX_IMPORT_SESSION_SECS", default_value_t = 3600)]
    pub import_session_secs: u32,
    /// Largest item accepted by import, in bytes of FTS data (larger → 413).
    #[arg(long, env = "GRAPHBOX_MAX_IMPORT_BYTES", default_value_t = 150 * 1024 * 1024)]
    pub max_import_bytes: u64,
    /// Imported items up to this many bytes of FTS are kept in the metadata
    /// store with the item (one transaction, no blob-store write); larger
    /// ones go to the blob store. 0 keeps every item in the blob store; at
    /// most 1048576.
    #[arg(long, env = "GRAPHBOX_INLINE_MAX_BYTES", default_value_t = store::blob::DEFAULT_INLINE_MAX,
          value_parser = clap::value_parser!(u64).range(0..=1024 * 1024))]
    pub inline_max_bytes: u64,
    /// Base URL of import URLs, when imports reach this server at another
    /// address than the Graph API (default: the public URL).
    #[arg(long, env = "GRAPHBOX_IMPORT_URL")]
    pub import_url: Option<String>,
    /// Seconds between runs of the blob collector (0 disables the periodic run;
    /// deletes still trigger it).
    #[arg(long, env = "GRAPHBOX_COLLECT_SECS", default_value_t = 300)]
    pub collect_secs: u64,
    /// Lifetime of the access tokens the identity endpoints issue, in seconds
    /// (300 to 86400; default 3599, as Entra ID).
    #[arg(long, env = "GRAPHBOX_ACCESS_TOKEN_LIFETIME_SECS", value_name = "SECS")]
    pub access_token_lifetime_secs: Option<i64>,
    /// Clock skew tolerated when checking a token's exp and nbf, in seconds
    /// (0 to 600; default 60).
    #[arg(long, env = "GRAPHBOX_CLOCK_SKEW_SECS", value_name = "SECS")]
    pub clock_skew_secs: Option<u64>,
    /// Rotate the token signing key when the newest key is this many days
    /// old, checked at start and every minute (0 disables; default 30).
    #[arg(long, env = "GRAPHBOX_KEY_ROTATION_DAYS", value_name = "DAYS")]
    pub key_rotation_days: Option<u32>,
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// Tenant id or domain.
    #[arg(long)]
    pub tenant: String,
    /// A delegated token for this user (id or userPrincipalName).
    #[arg(long, conflicts_with_all = ["app", "roles"])]
    pub user: Option<String>,
    /// Delegated scopes, separated by spaces or commas.
    #[arg(long, requires = "user", default_value = "")]
    pub scopes: String,
    /// An application token for this client id.
    #[arg(long)]
    pub app: Option<String>,
    /// Application roles, separated by spaces or commas.
    #[arg(long, default_value = "")]
    pub roles: String,
    /// Lifetime in seconds, at most 86400 (a retired signing key is kept
    /// that long); negative values mint an already expired token, for tests.
    #[arg(long, default_value_t = 3600, allow_hyphen_values = true,
          value_parser = clap::value_parser!(i64).range(..=api::auth::MAX_TOKEN_LIFETIME_SECS))]
    pub lifetime: i64,
    /// Print the token's claims as JSON instead of the token.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum AdminCmd {
    /// Copy a whole deployment (metadata and blobs) into new, empty stores.
    Migrate(crate::migrate::MigrateArgs),
    /// Tenants.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Users (each gets a primary mailbox).
    #[command(subcommand)]
    User(UserCmd),
    /// App registrations: credentials and requested permissions.
    #[command(subcommand)]
    App(crate::identity_cmd::AppCmd),
    /// Admin consent for an app's permissions.
    #[command(subcommand)]
    Consent(crate::identity_cmd::ConsentCmd),
    /// Token signing keys: list them, rotate.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Mailboxes.
    #[command(subcommand)]
    Mailbox(MailboxCmd),
    /// Add N generated realistic items to a mailbox folder (tests, benchmarks).
    Seed(SeedArgs),
    /// Check the store's integrity: folder counters against rows, blob
    /// reference counts against items, every referenced blob present and
    /// matching its hash. Exits non-zero on any problem.
    Check,
    /// Items.
    #[command(subcommand)]
    Item(ItemCmd),
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Every signing key with its state (pending, current, previous, dropped).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a new signing key. It is published in the JWKS at once and signs
    /// from --activate-in-secs on; the key it replaces stays accepted until
    /// the tokens it signed have expired. Running servers pick it up within
    /// a minute.
    Rotate {
        /// Seconds until the new key signs (0 to 86400; the default lets
        /// every running instance load and publish it first).
        #[arg(long, default_value_t = 2 * api::auth::KEY_REFRESH_SECS)]
        activate_in_secs: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    Create {
        /// Default domain, e.g. contoso.com.
        #[arg(long)]
        domain: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    Create {
        /// Tenant id or domain.
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        upn: String,
        #[arg(long)]
        name: Option<String>,
        /// Also create an in-place archive mailbox.
        #[arg(long)]
        archive: bool,
        /// Sign-in password (stored argon2-hashed; at least 8 characters).
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Set a user's sign-in password (stored argon2-hashed).
    SetPassword {
        /// User id or userPrincipalName.
        #[arg(long)]
        user: String,
        #[arg(long)]
        password: String,
        #[arg(long)]
        json: bool,
    },
    /// Make a user an administrator (may grant admin consent), or not (--off).
    SetAdmin {
        /// User id or userPrincipalName.
        #[arg(long)]
        user: String,
        #[arg(long)]
        off: bool,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a user's sign-in sessions: every refresh token the user holds
    /// stops working (access tokens run out within their lifetime).
    RevokeSessions {
        /// User id or userPrincipalName.
        #[arg(long)]
        user: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum MailboxCmd {
    /// Create a mailbox for a user (primary if it has none, else --archive).
    Create {
        /// User id or userPrincipalName.
        #[arg(long)]
        user: String,
        #[arg(long)]
        archive: bool,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct SeedArgs {
    #[arg(long)]
    pub mailbox: String,
    #[arg(long)]
    pub items: u64,
    /// Folder id or well-known name.
    #[arg(long, default_value = "inbox")]
    pub folder: String,
    /// Seed for the generator (the same seed gives the same items).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Store one generated item's content once and add N item rows that share
    /// it (distinct ids and timestamps): fast metadata-scale seeding for
    /// benchmarks of listing and delta.
    #[arg(long)]
    pub shared_content: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ItemCmd {
    /// Delete an item (leaves a tombstone for delta).
    Delete {
        #[arg(long)]
        mailbox: String,
        #[arg(long)]
        id: String,
    },
    /// Move an item to another folder.
    Move {
        #[arg(long)]
        mailbox: String,
        #[arg(long)]
        id: String,
        /// Folder id or well-known name.
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum FtsCmd {
    /// Dump a FastTransfer stream as JSON (frame records, properties, recipients, attachments).
    Decode {
        /// Input file, or - for standard input.
        #[arg(default_value = "-")]
        file: String,
        /// The input is base64 (as in a Graph `data` field).
        #[arg(long)]
        base64: bool,
    },
    /// Turn the JSON of `fts decode` back into the exact bytes.
    Encode {
        /// Input JSON file, or - for standard input.
        #[arg(default_value = "-")]
        file: String,
        /// Write base64 instead of raw bytes.
        #[arg(long)]
        base64: bool,
    },
}
