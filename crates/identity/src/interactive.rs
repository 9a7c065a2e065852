//! The browser side: `oauth2/v2.0/authorize`, the device code verification
//! page, `adminconsent`, and the sign-in, consent and admin-approval pages
//! they lead through.
//!
//! A pending browser flow is an [`AuthRecord`] (kind `flow`) keyed by the
//! SHA-256 of a random flow id that the pages carry in a hidden field. The
//! flow is bound to the browser that started it (the SHA-256 of its
//! `gbx_browser` cookie) and every page carries a fresh anti-forgery token
//! whose hash the flow holds: a form posted from elsewhere, from another
//! browser, or a stale page is refused. Sign-in failures are slowed down per
//! user name. There is no single sign-on session: every flow signs in.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use store::Tenant;
use store::directory::{App, AuthRecord, ConsentGrant, PermissionKind};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::IdentityState;
use crate::admin::{hash_password, hash_secret, verify_password};
use crate::grants::{
    self, DeviceData, DeviceStatus, Session, ct_eq, kind, now_ms, password_stamp, random_token,
    record_key,
};
use crate::html::{self, ResponseMode, esc, hidden};
use crate::oauth::OAuthError;
use crate::scopes::{self, Scopes};

/// The cookie that binds a flow to a browser.
pub const BROWSER_COOKIE: &str = "gbx_browser";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "purpose", rename_all = "snake_case")]
enum Purpose {
    Authorize {
        redirect_uri: String,
        mode: ResponseMode,
        state: Option<String>,
        nonce: Option<String>,
        challenge: Option<String>,
        prompt_consent: bool,
    },
    Device {
        device_key: String,
    },
    AdminConsent {
        redirect_uri: String,
        state: Option<String>,
        /// The v2 endpoint's `scope`, echoed back.
        scope: Option<String>,
        permissions: Vec<(PermissionKind, String)>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Stage {
    SignIn,
    Consent,
    AdminApproval,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Flow {
    purpose: Purpose,
    tenant: Uuid,
    /// SHA-256 of the browser cookie.
    browser: String,
    /// SHA-256 of the current page's anti-forgery token.
    csrf: String,
    stage: Stage,
    scopes: Scopes,
    login_hint: Option<String>,
    session: Option<Session>,
    /// UPN of the signed-in user (for the pages).
    upn: Option<String>,
    is_admin: bool,
}

impl Flow {
    /// A new flow at its sign-in stage (browser and CSRF are bound when its
    /// first page is served).
    fn signing_in(
        purpose: Purpose,
        tenant: Uuid,
        scopes: Scopes,
        login_hint: Option<String>,
    ) -> Flow {
        Flow {
            purpose,
            tenant,
            browser: String::new(),
            csrf: String::new(),
            stage: Stage::SignIn,
            scopes,
            login_hint,
            session: None,
            upn: None,
            is_admin: false,
        }
    }
}

// ---------------------------------------------------------------- helpers --

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// The browser cookie, and the `Set-Cookie` to send when it is new.
fn browser(st: &IdentityState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    if let Some(v) = cookie(headers, BROWSER_COOKIE) {
        return (v, None);
    }
    let v = random_token(32);
    let secure = if st.base.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let set = HeaderValue::from_str(&format!(
        "{BROWSER_COOKIE}={v}; Path=/; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok();
    (v, set)
}

fn with_cookie(mut res: Response, set: Option<HeaderValue>) -> Response {
    if let Some(c) = set {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

fn bad_request(code: u32, m: &str) -> Response {
    html::error_page(StatusCode::BAD_REQUEST, code, m)
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    html::error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        90033,
        &format!("A transient error has occurred ({e}). Please try again."),
    )
}

fn forged() -> Response {
    html::error_page(
        StatusCode::FORBIDDEN,
        90023,
        "The form was not submitted from the page this server sent to this browser (missing or wrong anti-forgery token or cookie). Start the sign-in again.",
    )
}

/// The anti-forgery token of the device code entry page: derived from the
/// browser cookie, which a cross-site form cannot read.
fn entry_csrf(browser: &str) -> String {
    hash_secret(&format!("device-entry:{browser}"))
}

fn login_url(st: &IdentityState, t: Uuid) -> String {
    format!("{}/{}/login", st.base, t.as_hyphenated())
}

async fn find_tenant(st: &IdentityState, segment: &str) -> Result<Tenant, Response> {
    crate::oauth::tenant(st, segment)
        .await
        .map_err(|e| bad_request(e.code, &e.description))
}

/// Resolves the client and checks the redirect URI against the registered
/// ones, exactly: any failure is an error page, never a redirect.
async fn client_and_redirect(
    st: &IdentityState,
    t: &Tenant,
    params: &HashMap<String, String>,
) -> Result<(App, String), Response> {
    let get = |k: &str| params.get(k).map(String::as_str).filter(|s| !s.is_empty());
    let Some(client_id) = get("client_id") else {
        return Err(bad_request(
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        ));
    };
    let app = crate::oauth::tenant_app(st, t, client_id)
        .await
        .map_err(|e| bad_request(e.code, &e.description))?;
    let Some(redirect_uri) = get("redirect_uri") else {
        return Err(bad_request(
            900971,
            "No reply address provided: the request must contain 'redirect_uri'.",
        ));
    };
    if !app.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(bad_request(
            50011,
            &format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{}'. Make sure the redirect URI sent in the request matches one added to your application (`graphbox admin app create --redirect-uri`).",
                app.client_id
            ),
        ));
    }
    Ok((app, redirect_uri.to_owned()))
}

fn error_params<'a>(
    e: &OAuthError,
    desc: &'a str,
    state: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![("error", e.error), ("error_description", desc)];
    if let Some(s) = state {
        p.push(("state", s));
    }
    p
}

fn redirect_error(
    redirect_uri: &str,
    mode: ResponseMode,
    e: OAuthError,
    state: Option<&str>,
) -> Response {
    let desc = e.short_description();
    html::respond_to_app(redirect_uri, mode, &error_params(&e, &desc, state))
}

fn describe(value: &str) -> &'static str {
    match value {
        "openid" => "Sign you in",
        "profile" => "View your basic profile",
        "email" => "View your email address",
        "offline_access" => "Maintain access to data you have given it access to",
        "User.Read" => "Sign you in and read your profile",
        "User.Read.All" => "Read all users' full profiles",
        "User.ReadWrite.All" => "Read and write all users' full profiles",
        "MailboxFolder.Read" => "Read your mailbox folders",
        "MailboxFolder.ReadWrite" => "Read and write your mailbox folders",
        "MailboxItem.Read" => "Read your mailbox items",
        "MailboxItem.ReadWrite" => "Read and write your mailbox items",
        "MailboxItem.Export" => "Export your mailbox items",
        "MailboxItem.ImportExport" => "Import and export your mailbox items",
        "User.Read.All (application)" => "Read all users' full profiles (as the app)",
        _ if value.ends_with(".All") => {
            "Access every mailbox of the organization (as the app itself)"
        }
        _ => "Access your data",
    }
}

// ------------------------------------------------------------------ pages --

fn sign_in_page(
    st: &IdentityState,
    flow: &Flow,
    app: &App,
    flow_id: &str,
    csrf: &str,
    error: Option<&str>,
) -> Response {
    let context = match &flow.purpose {
        Purpose::Device { .. } => format!(
            "You're signing in to <b>{}</b> on another device located near you. Only continue if you started this sign-in yourself.",
            esc(&app.display_name)
        ),
        Purpose::AdminConsent { .. } => format!(
            "An administrator's sign-in is needed to grant <b>{}</b> access for the whole organization.",
            esc(&app.display_name)
        ),
        Purpose::Authorize { .. } => format!("to continue to <b>{}</b>", esc(&app.display_name)),
    };
    let err = error
        .map(|e| {
            format!(
                "<p class=\"error\" id=\"error\" role=\"alert\">{}</p>",
                esc(e)
            )
        })
        .unwrap_or_default();
    let hint = flow.login_hint.as_deref().unwrap_or("");
    let body = format!(
        "<h1>Sign in</h1><p>{context}</p>{err}\
<form method=\"post\" action=\"{}\" id=\"signin\">{}\
<label for=\"login\">Email, phone, or Skype</label>\
<input type=\"email\" id=\"login\" name=\"login\" value=\"{}\" autocomplete=\"username\" required>\
<label for=\"passwd\">Password</label>\
<input type=\"password\" id=\"passwd\" name=\"passwd\" autocomplete=\"current-password\" required>\
<button class=\"primary\" type=\"submit\">Sign in</button></form>",
        esc(&login_url(st, flow.tenant)),
        hidden(&[("flow", flow_id), ("csrf", csrf)]),
        esc(hint)
    );
    html::page(StatusCode::OK, "Sign in to your account", &body, None, None)
}

fn permission_list(items: &[(String, &'static str, bool)]) -> String {
    let mut out = String::from("<ul id=\"permissions\">");
    for (value, text, admin) in items {
        out.push_str(&format!(
            "<li data-permission=\"{}\"><b>{}</b> <small>({})</small>{}</li>",
            esc(value),
            esc(text),
            esc(value),
            if *admin {
                " <small>· admin consent</small>"
            } else {
                ""
            }
        ));
    }
    out.push_str("</ul>");
    out
}

fn consent_page(st: &IdentityState, flow: &Flow, app: &App, flow_id: &str, csrf: &str) -> Response {
    let upn = flow.upn.as_deref().unwrap_or("");
    let (title, items, note) = match &flow.purpose {
        Purpose::AdminConsent { permissions, .. } => (
            "Permissions requested — accept for your organization",
            permissions
                .iter()
                .map(|(k, v)| {
                    let text = if *k == PermissionKind::Application {
                        describe(&format!(
                            "{v}{}",
                            if v.ends_with(".All") { "" } else { ".All" }
                        ))
                    } else {
                        describe(v)
                    };
                    (format!("{v} ({})", crate::admin::kind_name(*k)), text, true)
                })
                .collect::<Vec<_>>(),
            "If you accept, this app gets these permissions for every user of your organization. Nobody else will be prompted.",
        ),
        _ => {
            let mut items: Vec<(String, &'static str, bool)> = flow
                .scopes
                .graph
                .iter()
                .map(|v| (v.clone(), describe(v), scopes::needs_admin(v)))
                .collect();
            items.extend(
                flow.scopes
                    .oidc
                    .iter()
                    .map(|v| (v.clone(), describe(v), false)),
            );
            let note = if flow.is_admin && flow.scopes.graph.iter().any(|v| scopes::needs_admin(v))
            {
                "Permissions marked admin consent are granted for your whole organization when you accept."
            } else {
                "Accepting allows this app to use your data as described."
            };
            ("Permissions requested", items, note)
        }
    };
    let body = format!(
        "<h1>{}</h1><p><b>{}</b> ({})</p><p>Signed in as {}. This app would like to:</p>{}\
<p><small>{}</small></p><form method=\"post\" action=\"{}\" id=\"consent\">{}\
<button type=\"submit\" name=\"action\" value=\"cancel\">Cancel</button>\
<button class=\"primary\" type=\"submit\" name=\"action\" value=\"accept\">Accept</button></form>",
        esc(title),
        esc(&app.display_name),
        app.client_id,
        esc(upn),
        permission_list(&items),
        esc(note),
        esc(&login_url(st, flow.tenant)),
        hidden(&[("flow", flow_id), ("csrf", csrf)])
    );
    html::page(StatusCode::OK, "Permissions requested", &body, None, None)
}

fn admin_approval_page(
    st: &IdentityState,
    flow: &Flow,
    app: &App,
    missing: &[String],
    flow_id: &str,
    csrf: &str,
) -> Response {
    let items: Vec<(String, &'static str, bool)> = missing
        .iter()
        .map(|v| (v.clone(), describe(v), true))
        .collect();
    let body = format!(
        "<h1>Need admin approval</h1><p><b>{}</b> needs permission to access resources in your organization that only an admin can grant. Ask an admin to grant permission to this app before you can use it.</p>\
<p class=\"error\" id=\"error\">AADSTS90094: The grant requires admin permission.</p>{}\
<p><small>An administrator can grant it with <span class=\"code\">graphbox admin consent grant --app {}</span> or at {}/{}/adminconsent?client_id={}.</small></p>\
<form method=\"post\" action=\"{}\" id=\"back\">{}\
<button type=\"submit\" name=\"action\" value=\"back\">Return to the application without granting consent</button></form>",
        esc(&app.display_name),
        permission_list(&items),
        app.client_id,
        esc(&st.base),
        flow.tenant,
        app.client_id,
        esc(&login_url(st, flow.tenant)),
        hidden(&[("flow", flow_id), ("csrf", csrf)])
    );
    html::page(StatusCode::OK, "Need admin approval", &body, None, None)
}

fn message_page(title: &str, text: &str) -> Response {
    let body = format!("<h1>{}</h1><p id=\"message\">{}</p>", esc(title), esc(text));
    html::page(StatusCode::OK, title, &body, None, None)
}

fn device_entry_page(
    st: &IdentityState,
    t: &Tenant,
    csrf: &str,
    prefill: &str,
    error: Option<&str>,
) -> Response {
    let err = error
        .map(|e| {
            format!(
                "<p class=\"error\" id=\"error\" role=\"alert\">{}</p>",
                esc(e)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>Enter code</h1><p>Enter the code displayed on your app or device.</p>{err}\
<form method=\"post\" action=\"{}/{}/oauth2/deviceauth\" id=\"devicecode\">{}\
<label for=\"otc\">Code</label><input type=\"text\" id=\"otc\" name=\"otc\" value=\"{}\" autocomplete=\"off\" required>\
<button class=\"primary\" type=\"submit\">Next</button></form>",
        esc(&st.base),
        t.id.as_hyphenated(),
        hidden(&[("csrf", csrf)]),
        esc(prefill)
    );
    html::page(StatusCode::OK, "Enter code", &body, None, None)
}

// ------------------------------------------------------------ flow record --

/// Stores a new flow and shows its sign-in page.
async fn start_flow(
    st: &IdentityState,
    headers: &HeaderMap,
    app: &App,
    mut flow: Flow,
) -> Response {
    let (browser, set) = browser(st, headers);
    flow.browser = hash_secret(&browser);
    let flow_id = random_token(32);
    let csrf = random_token(32);
    flow.csrf = hash_secret(&csrf);
    let rec = AuthRecord {
        key: record_key(&flow_id),
        kind: kind::FLOW.into(),
        client_id: app.client_id,
        data: match serde_json::to_string(&flow) {
            Ok(d) => d,
            Err(e) => return unavailable(e),
        },
        expires: OffsetDateTime::now_utc() + st.flows.sign_in_lifetime,
    };
    if let Err(e) = st.directory.store.put_record(rec).await {
        return unavailable(e);
    }
    with_cookie(sign_in_page(st, &flow, app, &flow_id, &csrf, None), set)
}

/// Saves the flow with a fresh anti-forgery token; returns the token.
async fn save(st: &IdentityState, key: &str, flow: &mut Flow) -> Result<String, Response> {
    let csrf = random_token(32);
    flow.csrf = hash_secret(&csrf);
    let data = serde_json::to_string(flow).map_err(unavailable)?;
    st.directory
        .store
        .update_record(kind::FLOW, key, &data)
        .await
        .map_err(|_| expired_flow())?;
    Ok(csrf)
}

fn expired_flow() -> Response {
    bad_request(
        50089,
        "Flow token expired: this sign-in page is no longer valid (it expired or was already completed). Start the sign-in again from the application.",
    )
}

/// Ends the flow (one-time): `false` if it was already ended.
async fn finish(st: &IdentityState, key: &str) -> bool {
    matches!(
        st.directory.store.take_record(kind::FLOW, key).await,
        Ok(Some(_))
    )
}

// ------------------------------------------------------------- authorize --

/// `GET /{tenant}/oauth2/v2.0/authorize`.
pub(crate) async fn authorize_get(
    State(st): State<IdentityState>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    authorize(&st, &segment, &headers, &params).await
}

/// `POST /{tenant}/oauth2/v2.0/authorize` (the same parameters as a form).
pub(crate) async fn authorize_post(
    State(st): State<IdentityState>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    Form(params): Form<HashMap<String, String>>,
) -> Response {
    authorize(&st, &segment, &headers, &params).await
}

async fn authorize(
    st: &IdentityState,
    segment: &str,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Response {
    let t = match find_tenant(st, segment).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (app, redirect_uri) = match client_and_redirect(st, &t, params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let get = |k: &str| params.get(k).map(String::as_str).filter(|s| !s.is_empty());
    let state = get("state");
    let Some(mode) = ResponseMode::parse(get("response_mode")) else {
        let e = OAuthError::new(
            "invalid_request",
            90014,
            "The response_mode must be 'query', 'fragment' or 'form_post'.",
        );
        return redirect_error(&redirect_uri, ResponseMode::Query, e, state);
    };
    let fail = |e: OAuthError| redirect_error(&redirect_uri, mode, e, state);
    match get("response_type") {
        Some("code") => {}
        None => {
            return fail(OAuthError::new(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'response_type'.",
            ));
        }
        Some(other) => {
            return fail(OAuthError::new(
                "unsupported_response_type",
                700051,
                format!(
                    "response_type '{other}' is not enabled for the application: this server supports the authorization code flow (response_type=code) only."
                ),
            ));
        }
    }
    let registered = match st.directory.store.list_permissions(app.client_id).await {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    let scopes = match get("scope") {
        Some(s) => match scopes::parse(s, &registered) {
            Ok(s) => s,
            Err(e) => return fail(e),
        },
        None => {
            return fail(OAuthError::new(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            ));
        }
    };
    let challenge = get("code_challenge");
    match (challenge, get("code_challenge_method")) {
        (None, Some(_)) => {
            return fail(OAuthError::new(
                "invalid_request",
                50149,
                "Invalid Code_Challenge_method parameter: code_challenge_method was sent without code_challenge.",
            ));
        }
        (Some(_), None | Some("plain")) => {
            return fail(OAuthError::new(
                "invalid_request",
                50149,
                "Invalid Code_Challenge_method parameter: only 'S256' is accepted ('plain' would expose the verifier).",
            ));
        }
        (Some(c), Some("S256")) => {
            let ok = c.len() == 43
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return fail(OAuthError::new(
                    "invalid_request",
                    501491,
                    "Invalid size of Code_Challenge parameter: an S256 challenge is 43 base64url characters.",
                ));
            }
        }
        (Some(_), Some(other)) => {
            return fail(OAuthError::new(
                "invalid_request",
                50149,
                format!(
                    "Invalid Code_Challenge_method parameter '{other}': only 'S256' is accepted."
                ),
            ));
        }
        (None, None) if app.public_client => {
            return fail(OAuthError::new(
                "invalid_request",
                9002325,
                "Proof Key for Code Exchange is required for public clients: send code_challenge with code_challenge_method=S256.",
            ));
        }
        (None, None) => {}
    }
    let prompt_consent = match get("prompt") {
        None | Some("login") | Some("select_account") => false,
        Some("consent") => true,
        Some("none") => {
            return fail(OAuthError::new(
                "login_required",
                50058,
                "A silent sign-in request was sent but no user is signed in (this server keeps no single sign-on session).",
            ));
        }
        Some(other) => {
            return fail(OAuthError::new(
                "invalid_request",
                90014,
                format!(
                    "The prompt value '{other}' is not supported (none, login, select_account, consent)."
                ),
            ));
        }
    };
    let flow = Flow::signing_in(
        Purpose::Authorize {
            redirect_uri,
            mode,
            state: state.map(str::to_owned),
            nonce: get("nonce").map(str::to_owned),
            challenge: challenge.map(str::to_owned),
            prompt_consent,
        },
        t.id,
        scopes,
        get("login_hint").map(str::to_owned),
    );
    start_flow(st, headers, &app, flow).await
}

// ----------------------------------------------------------- admin consent --

/// `GET /{tenant}/adminconsent` (every permission the app requests).
pub(crate) async fn adminconsent_v1(
    State(st): State<IdentityState>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    adminconsent(&st, &segment, &headers, &params, false).await
}

/// `GET /{tenant}/v2.0/adminconsent` (the permissions named in `scope`).
pub(crate) async fn adminconsent_v2(
    State(st): State<IdentityState>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    adminconsent(&st, &segment, &headers, &params, true).await
}

async fn adminconsent(
    st: &IdentityState,
    segment: &str,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    v2: bool,
) -> Response {
    let t = match find_tenant(st, segment).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (app, redirect_uri) = match client_and_redirect(st, &t, params).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let get = |k: &str| params.get(k).map(String::as_str).filter(|s| !s.is_empty());
    let state = get("state");
    let fail = |e: OAuthError| redirect_error(&redirect_uri, ResponseMode::Query, e, state);
    let registered = match st.directory.store.list_permissions(app.client_id).await {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    if registered.is_empty() {
        return fail(OAuthError::new(
            "invalid_request",
            90009,
            "The application requests no permissions: add them with `graphbox admin app permission add` first.",
        ));
    }
    let scope = get("scope");
    let mut permissions: Vec<(PermissionKind, String)> = Vec::new();
    match (v2, scope) {
        (true, None) => {
            return fail(OAuthError::new(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            ));
        }
        (true, Some(s)) => {
            for raw in s.split_whitespace() {
                let name = raw
                    .strip_prefix("https://graph.microsoft.com/")
                    .or_else(|| raw.strip_prefix("00000003-0000-0000-c000-000000000000/"))
                    .unwrap_or(raw);
                if name.eq_ignore_ascii_case(".default") {
                    permissions.extend(registered.iter().map(|p| (p.kind, p.value.clone())));
                    continue;
                }
                let found: Vec<_> = registered
                    .iter()
                    .filter(|p| p.value.eq_ignore_ascii_case(name))
                    .map(|p| (p.kind, p.value.clone()))
                    .collect();
                if found.is_empty() {
                    return fail(OAuthError::new(
                        "invalid_scope",
                        70011,
                        format!(
                            "The provided value for the input parameter 'scope' is not valid: '{raw}' is not among the permissions the application requests."
                        ),
                    ));
                }
                permissions.extend(found);
            }
        }
        (false, _) => permissions.extend(registered.iter().map(|p| (p.kind, p.value.clone()))),
    }
    permissions.sort_by(|a, b| {
        (crate::admin::kind_name(a.0), &a.1).cmp(&(crate::admin::kind_name(b.0), &b.1))
    });
    permissions.dedup();
    let flow = Flow::signing_in(
        Purpose::AdminConsent {
            redirect_uri,
            state: state.map(str::to_owned),
            scope: if v2 { scope.map(str::to_owned) } else { None },
            permissions,
        },
        t.id,
        Scopes::default(),
        get("login_hint").map(str::to_owned),
    );
    start_flow(st, headers, &app, flow).await
}

// ------------------------------------------------------------ device code --

/// `GET /{tenant}/oauth2/deviceauth[?otc=CODE]`: the code entry page.
pub(crate) async fn deviceauth_get(
    State(st): State<IdentityState>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let t = match find_tenant(&st, &segment).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (browser, set) = browser(&st, &headers);
    let prefill = params.get("otc").map(String::as_str).unwrap_or("");
    with_cookie(
        device_entry_page(&st, &t, &entry_csrf(&browser), prefill, None),
        set,
    )
}

/// `POST /{tenant}/oauth2/deviceauth`: the entered code starts the sign-in.
pub(crate) async fn deviceauth_post(
    State(st): State<IdentityState>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let t = match find_tenant(&st, &segment).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let Some(browser) = cookie(&headers, BROWSER_COOKIE) else {
        return forged();
    };
    let csrf = entry_csrf(&browser);
    if !ct_eq(form.get("csrf").map(String::as_str).unwrap_or(""), &csrf) {
        return forged();
    }
    let typed = form.get("otc").map(String::as_str).unwrap_or("");
    let throttle_key = format!("usercode:{}", hash_secret(&browser));
    throttle(&st, &throttle_key).await;
    let wrong = |st: &IdentityState| {
        note_failure(st, &throttle_key, true);
        device_entry_page(
            st,
            &t,
            &csrf,
            typed,
            Some(
                "That code didn't work. Check the code and try again: it may be mistyped, already used or expired.",
            ),
        )
    };
    let code = grants::normalize_user_code(typed);
    let store = &st.directory.store;
    let Ok(Some(uc)) = store.take_record(kind::USER_CODE, &record_key(&code)).await else {
        return wrong(&st);
    };
    let device_key = serde_json::from_str::<serde_json::Value>(&uc.data)
        .ok()
        .and_then(|v| v.get("device")?.as_str().map(str::to_owned));
    let Some(device_key) = device_key else {
        return wrong(&st);
    };
    let Ok(Some(rec)) = store.get_record(kind::DEVICE, &device_key).await else {
        return wrong(&st);
    };
    let Ok(data) = serde_json::from_str::<DeviceData>(&rec.data) else {
        return wrong(&st);
    };
    if data.tenant != t.id
        || now_ms() >= data.expires_at
        || !matches!(data.state, DeviceStatus::Pending)
    {
        return wrong(&st);
    }
    note_failure(&st, &throttle_key, false);
    let Ok(app) = store.get_app(rec.client_id).await else {
        return wrong(&st);
    };
    let flow = Flow::signing_in(Purpose::Device { device_key }, t.id, data.scopes, None);
    start_flow(&st, &headers, &app, flow).await
}

// -------------------------------------------------------- sign-in / forms --

/// Waits before answering a key with recent failures (doubling, capped at
/// three seconds).
async fn throttle(st: &IdentityState, key: &str) {
    let n = st
        .failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(key)
        .copied()
        .unwrap_or(0);
    if n > 0 {
        let ms = (100u64 << n.min(5)).min(3000);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

fn note_failure(st: &IdentityState, key: &str, failed: bool) {
    let mut f = st.failures.lock().unwrap_or_else(|p| p.into_inner());
    if failed {
        if f.len() > 10_000 {
            f.clear();
        }
        *f.entry(key.to_owned()).or_insert(0) += 1;
    } else {
        f.remove(key);
    }
}

/// Failed sign-ins recorded for a user name (for tests and diagnostics).
pub fn sign_in_failures(st: &IdentityState, tenant: Uuid, login: &str) -> u32 {
    st.failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&sign_in_key(tenant, login))
        .copied()
        .unwrap_or(0)
}

fn sign_in_key(tenant: Uuid, login: &str) -> String {
    format!("signin:{tenant}:{}", login.trim().to_lowercase())
}

/// A hash to verify against when the user has none, so an unknown user
/// costs the same time as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_token(24)).unwrap_or_default())
}

/// `POST /{tenant}/login`: every form of the sign-in pages posts here.
pub(crate) async fn login_post(
    State(st): State<IdentityState>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let t = match find_tenant(&st, &segment).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("flow").is_empty() {
        return bad_request(
            900144,
            "The request body must contain the following parameter: 'flow'.",
        );
    }
    let key = record_key(field("flow"));
    let rec = match st.directory.store.get_record(kind::FLOW, &key).await {
        Ok(Some(r)) => r,
        Ok(None) => return expired_flow(),
        Err(e) => return unavailable(e),
    };
    let Ok(mut flow) = serde_json::from_str::<Flow>(&rec.data) else {
        return expired_flow();
    };
    if flow.tenant != t.id {
        return expired_flow();
    }
    let browser_ok =
        cookie(&headers, BROWSER_COOKIE).is_some_and(|b| ct_eq(&hash_secret(&b), &flow.browser));
    if !browser_ok || !ct_eq(&hash_secret(field("csrf")), &flow.csrf) {
        return forged();
    }
    let app = match st.directory.store.get_app(rec.client_id).await {
        Ok(a) => a,
        Err(_) => return expired_flow(),
    };
    match flow.stage {
        Stage::SignIn => {
            let ids = Ids {
                flow_id: field("flow"),
                key: &key,
            };
            sign_in(&st, &t, &app, ids, flow, field("login"), field("passwd")).await
        }
        Stage::Consent => match field("action") {
            "accept" => accept(&st, &app, &key, flow).await,
            "cancel" => decline(&st, &app, &key, &flow, false).await,
            _ => {
                let csrf = match save(&st, &key, &mut flow).await {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                consent_page(&st, &flow, &app, field("flow"), &csrf)
            }
        },
        Stage::AdminApproval => decline(&st, &app, &key, &flow, true).await,
    }
}

/// A flow's id (as the browser posted it) and record key.
#[derive(Clone, Copy)]
struct Ids<'a> {
    flow_id: &'a str,
    key: &'a str,
}

async fn sign_in(
    st: &IdentityState,
    t: &Tenant,
    app: &App,
    ids: Ids<'_>,
    mut flow: Flow,
    login: &str,
    password: &str,
) -> Response {
    let throttle_key = sign_in_key(t.id, login);
    throttle(st, &throttle_key).await;
    let user = if login.trim().is_empty() {
        None
    } else {
        st.meta.find_user(Some(t.id), login.trim()).await.ok()
    };
    let cred = match &user {
        Some(u) => st.directory.store.user_credential(u.id).await.ok(),
        None => None,
    };
    let hash = cred
        .as_ref()
        .and_then(|c| c.password_hash.clone())
        .unwrap_or_else(|| dummy_hash().to_owned());
    let pw = password.to_owned();
    let verified = tokio::task::spawn_blocking(move || verify_password(&pw, &hash))
        .await
        .unwrap_or(false);
    let (Some(user), Some(cred), true) = (user, cred, verified) else {
        note_failure(st, &throttle_key, true);
        flow.login_hint = Some(login.to_owned());
        let csrf = match save(st, ids.key, &mut flow).await {
            Ok(c) => c,
            Err(r) => return r,
        };
        return sign_in_page(
            st,
            &flow,
            app,
            ids.flow_id,
            &csrf,
            Some("AADSTS50126: Error validating credentials due to invalid username or password."),
        );
    };
    note_failure(st, &throttle_key, false);
    flow.session = Some(Session {
        tenant: t.id,
        user: user.id,
        auth_time: now_ms(),
        stamp: password_stamp(cred.password_hash.as_deref()),
        family: random_token(16),
    });
    flow.upn = Some(user.upn.clone());
    flow.is_admin = cred.is_admin;
    after_sign_in(st, app, ids, flow).await
}

/// After the password checked out: the consent page, the admin-approval
/// page, or straight to the result when everything is consented.
async fn after_sign_in(st: &IdentityState, app: &App, ids: Ids<'_>, mut flow: Flow) -> Response {
    let Some(session) = flow.session.clone() else {
        return expired_flow();
    };
    if let Purpose::AdminConsent {
        redirect_uri,
        state,
        ..
    } = &flow.purpose
    {
        if !flow.is_admin {
            finish(st, ids.key).await;
            let e = OAuthError::new(
                "access_denied",
                90094,
                format!(
                    "The grant requires admin permission: {} is not an administrator of the organization, so cannot grant admin consent.",
                    flow.upn.as_deref().unwrap_or("the user")
                ),
            );
            return redirect_error(redirect_uri, ResponseMode::Query, e, state.as_deref());
        }
        flow.stage = Stage::Consent;
        let csrf = match save(st, ids.key, &mut flow).await {
            Ok(c) => c,
            Err(r) => return r,
        };
        return consent_page(st, &flow, app, ids.flow_id, &csrf);
    }
    let grants = match st.directory.store.list_grants(app.client_id).await {
        Ok(g) => g,
        Err(e) => return unavailable(e),
    };
    let held = scopes::consented(&grants, session.user);
    let missing = scopes::missing(&flow.scopes.graph, &held);
    let admin_missing: Vec<String> = missing
        .iter()
        .filter(|m| scopes::needs_admin(m))
        .cloned()
        .collect();
    let prompt_consent = matches!(
        flow.purpose,
        Purpose::Authorize {
            prompt_consent: true,
            ..
        }
    );
    if !admin_missing.is_empty() && !flow.is_admin {
        flow.stage = Stage::AdminApproval;
        let csrf = match save(st, ids.key, &mut flow).await {
            Ok(c) => c,
            Err(r) => return r,
        };
        return admin_approval_page(st, &flow, app, &admin_missing, ids.flow_id, &csrf);
    }
    if !missing.is_empty() || prompt_consent {
        flow.stage = Stage::Consent;
        let csrf = match save(st, ids.key, &mut flow).await {
            Ok(c) => c,
            Err(r) => return r,
        };
        return consent_page(st, &flow, app, ids.flow_id, &csrf);
    }
    complete(st, app, ids.key, flow).await
}

/// "Accept" on the consent page.
async fn accept(st: &IdentityState, app: &App, key: &str, flow: Flow) -> Response {
    let Some(session) = flow.session.clone() else {
        return expired_flow();
    };
    let store = &st.directory.store;
    if let Purpose::AdminConsent {
        redirect_uri,
        state,
        scope,
        permissions,
    } = &flow.purpose
    {
        if !flow.is_admin {
            return forged();
        }
        if !finish(st, key).await {
            return expired_flow();
        }
        for (kind, value) in permissions {
            let g = ConsentGrant {
                client_id: app.client_id,
                kind: *kind,
                value: value.clone(),
                user_id: None,
            };
            if let Err(e) = store.grant(g).await {
                return unavailable(e);
            }
        }
        tracing::info!(
            client_id = %app.client_id,
            admin = %session.user,
            "admin consent granted for {} permission(s)",
            permissions.len()
        );
        let tid = flow.tenant.as_hyphenated().to_string();
        let mut params = vec![("admin_consent", "True"), ("tenant", tid.as_str())];
        if let Some(s) = scope {
            params.push(("scope", s.as_str()));
        }
        if let Some(s) = state {
            params.push(("state", s.as_str()));
        }
        return html::respond_to_app(redirect_uri, ResponseMode::Query, &params);
    }
    let grants = match store.list_grants(app.client_id).await {
        Ok(g) => g,
        Err(e) => return unavailable(e),
    };
    let held = scopes::consented(&grants, session.user);
    for value in scopes::missing(&flow.scopes.graph, &held) {
        let admin = scopes::needs_admin(&value);
        if admin && !flow.is_admin {
            return forged();
        }
        let g = ConsentGrant {
            client_id: app.client_id,
            kind: PermissionKind::Delegated,
            value,
            user_id: if admin { None } else { Some(session.user) },
        };
        if let Err(e) = store.grant(g).await {
            return unavailable(e);
        }
    }
    complete(st, app, key, flow).await
}

/// "Cancel" on the consent page (`admin_needed` false) or "Return to the
/// application" on the admin-approval page (true).
async fn decline(
    st: &IdentityState,
    app: &App,
    key: &str,
    flow: &Flow,
    admin_needed: bool,
) -> Response {
    if !finish(st, key).await {
        return expired_flow();
    }
    let e = if admin_needed {
        let admin_only: Vec<String> = flow
            .scopes
            .graph
            .iter()
            .filter(|v| scopes::needs_admin(v))
            .cloned()
            .collect();
        let mut m = grants::consent_required(app, &admin_only);
        m.error = "consent_required";
        m.suberror = None;
        m
    } else {
        OAuthError::new(
            "access_denied",
            65004,
            "User declined to consent to access the app.",
        )
    };
    match &flow.purpose {
        Purpose::Authorize {
            redirect_uri,
            mode,
            state,
            ..
        } => {
            let desc = e.short_description();
            let mut params = error_params(&e, &desc, state.as_deref());
            if !admin_needed {
                params.insert(1, ("error_subcode", "cancel"));
            }
            html::respond_to_app(redirect_uri, *mode, &params)
        }
        Purpose::AdminConsent {
            redirect_uri,
            state,
            ..
        } => redirect_error(redirect_uri, ResponseMode::Query, e, state.as_deref()),
        Purpose::Device { device_key } => {
            let store = &st.directory.store;
            if let Ok(Some(rec)) = store.get_record(kind::DEVICE, device_key).await
                && let Ok(mut data) = serde_json::from_str::<DeviceData>(&rec.data)
                && matches!(data.state, DeviceStatus::Pending)
            {
                data.state = DeviceStatus::Denied {
                    consent_required: admin_needed,
                };
                if let Ok(d) = serde_json::to_string(&data) {
                    let _ = store.update_record(kind::DEVICE, device_key, &d).await;
                }
            }
            if admin_needed {
                message_page(
                    "Need admin approval",
                    &format!(
                        "{} needs permissions only an administrator can grant. Ask an administrator to grant admin consent, then sign in again on your device.",
                        app.display_name
                    ),
                )
            } else {
                message_page(
                    "Sign-in canceled",
                    "You declined to sign in to the application on your device. You may now close this window.",
                )
            }
        }
    }
}

/// Signed in and consented: the code goes to the app, or the device code
/// is approved.
async fn complete(st: &IdentityState, app: &App, key: &str, flow: Flow) -> Response {
    let Some(session) = flow.session.clone() else {
        return expired_flow();
    };
    if !finish(st, key).await {
        return expired_flow();
    }
    match flow.purpose {
        Purpose::Authorize {
            redirect_uri,
            mode,
            state,
            nonce,
            challenge,
            ..
        } => {
            let code = match grants::issue_code(
                st,
                app,
                session,
                flow.scopes,
                &redirect_uri,
                challenge,
                nonce,
            )
            .await
            {
                Ok(c) => c,
                Err(e) => return redirect_error(&redirect_uri, mode, e, state.as_deref()),
            };
            let mut params = vec![("code", code.as_str())];
            if let Some(s) = &state {
                params.push(("state", s.as_str()));
            }
            html::respond_to_app(&redirect_uri, mode, &params)
        }
        Purpose::Device { device_key } => {
            let store = &st.directory.store;
            let rec = match store.get_record(kind::DEVICE, &device_key).await {
                Ok(Some(r)) => r,
                Ok(None) => return expired_flow(),
                Err(e) => return unavailable(e),
            };
            let Ok(mut data) = serde_json::from_str::<DeviceData>(&rec.data) else {
                return expired_flow();
            };
            if now_ms() >= data.expires_at || !matches!(data.state, DeviceStatus::Pending) {
                return bad_request(
                    70020,
                    "The code has expired or was already used: start the sign-in again on your device.",
                );
            }
            data.state = DeviceStatus::Approved { session };
            let d = match serde_json::to_string(&data) {
                Ok(d) => d,
                Err(e) => return unavailable(e),
            };
            if let Err(e) = store.update_record(kind::DEVICE, &device_key, &d).await {
                return unavailable(e);
            }
            message_page(
                "You're signed in",
                &format!(
                    "You have signed in to the {} application on your device. You may now close this window.",
                    app.display_name
                ),
            )
        }
        Purpose::AdminConsent { .. } => expired_flow(),
    }
}
