//! The server-rendered pages of the interactive flows (sign-in, consent,
//! device code entry, errors) and the ways a result goes back to the app
//! (`query`, `fragment` and `form_post` response modes).
//!
//! Every page is sent with `Cache-Control: no-store`, a restrictive
//! Content-Security-Policy (no scripts except the `form_post` page's own
//! nonce'd one, forms only to this server or to the app's redirect URI) and
//! `X-Frame-Options: DENY` (no clickjacking of the consent button).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// HTML-escapes text for element content and quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:Segoe UI,Helvetica,Arial,sans-serif;background:#f2f2f2;margin:0}\
main{max-width:440px;margin:8vh auto;background:#fff;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}\
h1{font-size:24px;font-weight:600;margin:0 0 16px}label{display:block;margin:12px 0 4px}\
input[type=text],input[type=password],input[type=email]{width:100%;box-sizing:border-box;padding:6px;font-size:15px}\
button{margin:20px 8px 0 0;padding:6px 20px;font-size:15px}.primary{background:#0067b8;color:#fff;border:0}\
.error{color:#e81123}.code{font-family:monospace}ul{padding-left:20px}small{color:#555}";

/// A complete page with the security headers; `form_action` is the extra
/// CSP `form-action` source (the app's redirect URI origin) if any.
pub(crate) fn page(
    status: StatusCode,
    title: &str,
    body: &str,
    form_action: Option<&str>,
    script_nonce: Option<&str>,
) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\"><title>{}</title><style>{STYLE}</style></head>\
<body><main>{body}</main></body></html>\n",
        esc(title)
    );
    let mut csp = String::from("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
    if let Some(origin) = form_action {
        csp.push(' ');
        csp.push_str(origin);
    }
    if let Some(n) = script_nonce {
        csp.push_str(&format!("; script-src 'nonce-{n}'"));
    }
    csp.push_str("; frame-ancestors 'none'; base-uri 'none'");
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// The error page Entra shows when it must not redirect (unknown app, bad
/// redirect URI, expired or forged form).
pub(crate) fn error_page(status: StatusCode, code: u32, message: &str) -> Response {
    let body = format!(
        "<h1>Sorry, but we're having trouble signing you in.</h1>\
<p class=\"error\" id=\"error\">AADSTS{code}: {}</p>\
<p><small>Nothing was sent to the application.</small></p>",
        esc(message)
    );
    page(status, "Sign in error", &body, None, None)
}

/// Hidden form fields.
pub(crate) fn hidden(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                esc(k),
                esc(v)
            )
        })
        .collect()
}

/// The scheme://host[:port] of a URL (the CSP source for it).
pub(crate) fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    if host.is_empty() {
        return None;
    }
    Some(format!("{scheme}://{host}"))
}

/// How the result goes back to the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ResponseMode {
    Query,
    Fragment,
    FormPost,
}

impl ResponseMode {
    pub fn parse(s: Option<&str>) -> Option<ResponseMode> {
        match s {
            None | Some("query") => Some(ResponseMode::Query),
            Some("fragment") => Some(ResponseMode::Fragment),
            Some("form_post") => Some(ResponseMode::FormPost),
            Some(_) => None,
        }
    }
}

/// Sends `params` to `redirect_uri` the way `mode` says: a 302 with the
/// parameters in the query (appended to any query the URI has) or the
/// fragment, or an auto-submitting form posting them.
pub(crate) fn respond_to_app(
    redirect_uri: &str,
    mode: ResponseMode,
    params: &[(&str, &str)],
) -> Response {
    let encoded = serde_urlencoded::to_string(params).unwrap_or_default();
    match mode {
        ResponseMode::Query | ResponseMode::Fragment => {
            let sep = match mode {
                ResponseMode::Fragment => '#',
                _ if redirect_uri.contains('?') => '&',
                _ => '?',
            };
            let location = format!("{redirect_uri}{sep}{encoded}");
            let mut res = StatusCode::FOUND.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        ResponseMode::FormPost => {
            let nonce = crate::grants::random_token(16);
            let body = format!(
                "<h1>Working…</h1><form method=\"post\" id=\"response\" action=\"{}\">{}\
<noscript><p>Script is disabled. Click Continue to go back to the application.</p>\
<button class=\"primary\" type=\"submit\">Continue</button></noscript></form>\
<script nonce=\"{nonce}\">document.getElementById('response').submit();</script>",
                esc(redirect_uri),
                hidden(params)
            );
            let o = origin(redirect_uri);
            page(
                StatusCode::OK,
                "Working…",
                &body,
                o.as_deref(),
                Some(&nonce),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_builds_redirects() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            origin("http://localhost:8400/cb?x=1").as_deref(),
            Some("http://localhost:8400")
        );
        let r = respond_to_app(
            "https://app.example/cb?k=v",
            ResponseMode::Query,
            &[("code", "a b"), ("state", "s&t")],
        );
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(
            r.headers()[header::LOCATION],
            "https://app.example/cb?k=v&code=a+b&state=s%26t"
        );
        let r = respond_to_app(
            "https://app.example/cb",
            ResponseMode::Fragment,
            &[("code", "c")],
        );
        assert_eq!(
            r.headers()[header::LOCATION],
            "https://app.example/cb#code=c"
        );
    }
}
