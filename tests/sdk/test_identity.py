"""The identity authority end to end: app registration, secrets and
certificates, admin consent, and tokens obtained by the unmodified MSAL Python
and azure-identity libraries from graphbox over HTTPS, then used with
msgraph-sdk. The clients differ from production only in their authority host
(plus instance discovery turned off, since Microsoft's instance-discovery host
does not know this one) and in trusting the server's self-signed certificate.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from urllib.parse import urlparse

import pytest

from conftest import Graphbox

GRAPH_DEFAULT = ["https://graph.microsoft.com/.default"]


@pytest.fixture(scope="module")
def idp():
    tmp = tempfile.mkdtemp(prefix="graphbox-identity-")
    gb = Graphbox(tmp)
    tenant = gb.json("admin", "tenant", "create", "--domain", "contoso.test", "--name", "Contoso")
    megan = gb.json("admin", "user", "create", "--tenant", "contoso.test",
                    "--upn", "megan@contoso.test", "--name", "Megan Bowen")
    gb.json("admin", "seed", "--mailbox", megan["primaryMailboxId"], "--items", "3")
    app = gb.json("admin", "app", "create", "--tenant", "contoso.test", "--name", "Exporter")
    for p in ["MailboxFolder.Read.All", "MailboxItem.Read.All"]:
        gb.json("admin", "app", "permission", "add", "--app", app["appId"], "--permission", p)
    secret = gb.json("admin", "app", "secret", "add", "--app", app["appId"])
    gb.json("admin", "consent", "grant", "--app", app["appId"])
    base = gb.start("--tls")
    cert = os.path.join(tmp, "tls", "cert.pem")
    old = {k: os.environ.get(k) for k in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")}
    os.environ["SSL_CERT_FILE"] = cert
    os.environ["REQUESTS_CA_BUNDLE"] = cert
    yield {"gb": gb, "base": base, "tenant": tenant, "megan": megan, "app": app,
           "secret": secret["secretText"], "ca": cert, "tmp": tmp}
    gb.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def graph_client(base: str, credential):
    from msgraph import GraphServiceClient
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph_core.authentication import AzureIdentityAuthenticationProvider

    auth = AzureIdentityAuthenticationProvider(
        credential, scopes=GRAPH_DEFAULT, allowed_hosts=[urlparse(base).hostname])
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = f"{base}/v1.0"
    return GraphServiceClient(request_adapter=adapter)


class MsalCredential:
    """An azure-core style credential backed by an MSAL confidential client."""

    def __init__(self, app):
        self.app = app

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken
        r = self.app.acquire_token_for_client(scopes=list(scopes))
        assert "access_token" in r, r
        return AccessToken(r["access_token"], int(r.get("expires_in", 3600)) + int(
            datetime.datetime.now().timestamp()))


def msal_app(idp, credential, client_id=None):
    import msal
    return msal.ConfidentialClientApplication(
        client_id or idp["app"]["appId"], client_credential=credential,
        authority=f"{idp['base']}/contoso.test", instance_discovery=False, verify=idp["ca"])


def claims(token: str) -> dict:
    import jwt
    return jwt.decode(token, options={"verify_signature": False})


async def list_folder_names(client, mailbox_id):
    page = await client.admin.exchange.mailboxes.by_mailbox_id(mailbox_id).folders.get()
    return [f.display_name for f in page.value]


async def test_msal_client_secret_then_graph_sdk(idp):
    app = msal_app(idp, idp["secret"])
    r = app.acquire_token_for_client(scopes=GRAPH_DEFAULT)
    assert "access_token" in r, r
    assert r["token_type"] == "Bearer"
    c = claims(r["access_token"])
    assert c["tid"] == idp["tenant"]["id"]
    assert c["appid"] == idp["app"]["appId"]
    assert c["idtyp"] == "app"
    assert sorted(c["roles"]) == ["MailboxFolder.Read.All", "MailboxItem.Read.All"]
    assert c["iss"] == f"{idp['base']}/{idp['tenant']['id']}/v2.0"
    client = graph_client(idp["base"], MsalCredential(app))
    names = await list_folder_names(client, idp["megan"]["primaryMailboxId"])
    assert "Inbox" in names


async def test_msal_certificate_then_graph_sdk(idp):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "exporter")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    path = os.path.join(idp["tmp"], "client-cert.pem")
    with open(path, "w") as f:
        f.write(cert_pem)
    gb = idp["gb"]
    added = gb.json("admin", "app", "cert", "add", "--app", idp["app"]["appId"], "--cert", path)
    assert added["thumbprint"] == cert.fingerprint(hashes.SHA1()).hex().upper()
    # Giving the private key instead of the certificate is refused.
    keyfile = os.path.join(idp["tmp"], "client-key.pem")
    with open(keyfile, "w") as f:
        f.write(key_pem)
    res = gb.run("admin", "app", "cert", "add", "--app", idp["app"]["appId"], "--cert", keyfile,
                 check=False)
    assert res.returncode != 0 and "certificate" in res.stderr

    # MSAL signs a PS256 assertion with x5t#S256 (public_certificate given) …
    app = msal_app(idp, {"private_key": key_pem, "public_certificate": cert_pem})
    r = app.acquire_token_for_client(scopes=GRAPH_DEFAULT)
    assert "access_token" in r, r
    client = graph_client(idp["base"], MsalCredential(app))
    assert "Inbox" in await list_folder_names(client, idp["megan"]["primaryMailboxId"])
    # … or RS256 with the SHA-1 thumbprint (x5t).
    app = msal_app(idp, {"private_key": key_pem,
                         "thumbprint": cert.fingerprint(hashes.SHA1()).hex()})
    r = app.acquire_token_for_client(scopes=GRAPH_DEFAULT)
    assert "access_token" in r, r

    # A key that is not registered is refused.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    app = msal_app(idp, {"private_key": other_pem, "public_certificate": cert_pem})
    r = app.acquire_token_for_client(scopes=GRAPH_DEFAULT)
    assert r.get("error") == "invalid_client", r
    assert 700027 in r["error_codes"]


async def test_azure_identity_client_secret_drives_graph_service_client(idp):
    from azure.identity import ClientSecretCredential

    host = urlparse(idp["base"]).netloc
    cred = ClientSecretCredential(
        idp["tenant"]["id"], idp["app"]["appId"], idp["secret"],
        authority=host, disable_instance_discovery=True)
    client = graph_client(idp["base"], cred)
    names = await list_folder_names(client, idp["megan"]["primaryMailboxId"])
    assert "Inbox" in names
    tok = cred.get_token(*GRAPH_DEFAULT)
    assert claims(tok.token)["tid"] == idp["tenant"]["id"]


async def test_client_credential_failures_are_worded_as_entra(idp):
    r = msal_app(idp, "not-the-secret").acquire_token_for_client(scopes=GRAPH_DEFAULT)
    assert r["error"] == "invalid_client" and r["error_codes"] == [7000215], r
    r = msal_app(idp, idp["secret"], client_id="00000000-0000-0000-0000-000000000001") \
        .acquire_token_for_client(scopes=GRAPH_DEFAULT)
    assert r["error"] == "unauthorized_client" and r["error_codes"] == [700016], r
    r = msal_app(idp, idp["secret"]).acquire_token_for_client(scopes=["User.Read"])
    assert r["error"] == "invalid_scope", r


async def test_revoked_consent_removes_roles_from_new_tokens(idp):
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    gb = idp["gb"]
    app = gb.json("admin", "app", "create", "--tenant", "contoso.test", "--name", "Revoked")
    gb.json("admin", "app", "permission", "add", "--app", app["appId"],
            "--permission", "MailboxFolder.Read.All")
    secret = gb.json("admin", "app", "secret", "add", "--app", app["appId"])["secretText"]
    shown = gb.run("admin", "app", "show", "--app", app["appId"], "--json").stdout
    assert secret not in shown
    gb.json("admin", "consent", "grant", "--app", app["appId"])
    r = msal_app(idp, secret, app["appId"]).acquire_token_for_client(scopes=GRAPH_DEFAULT)
    assert claims(r["access_token"])["roles"] == ["MailboxFolder.Read.All"]
    gb.json("admin", "consent", "revoke", "--app", app["appId"])
    # A new application object: MSAL would otherwise serve its cached token.
    r = msal_app(idp, secret, app["appId"]).acquire_token_for_client(scopes=GRAPH_DEFAULT)
    assert "roles" not in claims(r["access_token"]) or not claims(r["access_token"])["roles"]

    class Static:
        def get_token(self, *s, **k):
            from azure.core.credentials import AccessToken
            return AccessToken(r["access_token"], 2_000_000_000)

    client = graph_client(idp["base"], Static())
    with pytest.raises(ODataError) as e:
        await list_folder_names(client, idp["megan"]["primaryMailboxId"])
    assert e.value.response_status_code == 403


async def test_discovery_documents(idp):
    import requests
    base, tid = idp["base"], idp["tenant"]["id"]
    conf = requests.get(f"{base}/contoso.test/v2.0/.well-known/openid-configuration",
                        verify=idp["ca"]).json()
    assert conf["issuer"] == f"{base}/{tid}/v2.0"
    assert conf["token_endpoint"] == f"{base}/{tid}/oauth2/v2.0/token"
    keys = requests.get(conf["jwks_uri"], verify=idp["ca"]).json()["keys"]
    assert keys and all(k["kty"] == "RSA" and k["kid"] for k in keys)
    r = requests.get(f"{base}/nosuch.test/v2.0/.well-known/openid-configuration",
                     verify=idp["ca"])
    assert r.status_code == 400 and r.json()["error_codes"] == [90002]
    d = requests.get(f"{base}/common/discovery/instance",
                     params={"authorization_endpoint": f"{base}/contoso.test/oauth2/v2.0/authorize",
                             "api-version": "1.0"}, verify=idp["ca"]).json()
    assert d["tenant_discovery_endpoint"] == \
        f"{base}/contoso.test/v2.0/.well-known/openid-configuration"


# --- user flows: device code, authorization code + PKCE, refresh, admin consent ---

PASSWORD = "correct horse battery staple"
REDIRECT = "http://localhost:8765/cb"


@pytest.fixture(scope="module")
def people(idp):
    """A user with a seeded mailbox and an administrator, both with passwords."""
    gb = idp["gb"]
    adele = gb.json("admin", "user", "create", "--tenant", "contoso.test",
                    "--upn", "adele@contoso.test", "--name", "Adele Vance",
                    "--password", PASSWORD)
    gb.json("admin", "seed", "--mailbox", adele["primaryMailboxId"], "--items", "2")
    admin = gb.json("admin", "user", "create", "--tenant", "contoso.test",
                    "--upn", "admin@contoso.test", "--name", "Ada Admin",
                    "--password", PASSWORD)
    gb.json("admin", "user", "set-admin", "--user", "admin@contoso.test")
    return {"adele": adele, "admin": admin}


def public_app(idp, name, *permissions):
    """A public client (device code, auth code + PKCE) requesting delegated permissions."""
    gb = idp["gb"]
    app = gb.json("admin", "app", "create", "--tenant", "contoso.test", "--name", name,
                  "--public-client", "--redirect-uri", REDIRECT)
    for p in permissions:
        gb.json("admin", "app", "permission", "add", "--app", app["appId"], "--permission", p,
                "--type", "delegated")
    return app


def pca(idp, app, cache=None):
    import msal
    return msal.PublicClientApplication(
        app["appId"], authority=f"{idp['base']}/contoso.test", instance_discovery=False,
        verify=idp["ca"], token_cache=cache)


def browser(idp):
    import requests
    s = requests.Session()
    s.verify = idp["ca"]
    return s


def hidden(page, name):
    import html
    import re
    m = re.search(r'name="%s" value="([^"]*)"' % re.escape(name), page.text)
    return html.unescape(m.group(1)) if m else None


def form_action(page):
    import html
    import re
    m = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert m, page.text
    return html.unescape(m.group(1))


def sign_in(s, page, login, password=PASSWORD):
    assert page.status_code == 200, page.text
    return s.post(form_action(page), allow_redirects=False, data={
        "flow": hidden(page, "flow"), "csrf": hidden(page, "csrf"),
        "login": login, "passwd": password})


def press(s, page, action):
    assert page.status_code == 200, page.text
    return s.post(form_action(page), allow_redirects=False, data={
        "flow": hidden(page, "flow"), "csrf": hidden(page, "csrf"), "action": action})


def redirect_params(resp):
    from urllib.parse import parse_qsl
    assert resp.status_code == 302, resp.text
    loc = resp.headers["Location"]
    assert loc.startswith(REDIRECT + "?"), loc
    return dict(parse_qsl(urlparse(loc).query))


class MsalUserCredential:
    """An azure-core style credential backed by an MSAL public client's cache."""

    def __init__(self, app, account, scopes):
        self.app, self.account, self.scopes = app, account, scopes

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken
        r = self.app.acquire_token_silent(self.scopes, account=self.account)
        assert r and "access_token" in r, r
        return AccessToken(r["access_token"], int(r.get("expires_in", 3600)) + int(
            datetime.datetime.now().timestamp()))


async def test_msal_device_code_flow_completed_over_http(idp, people):
    import threading

    app = public_app(idp, "Device Tool", "MailboxFolder.Read")
    client = pca(idp, app)
    flow = client.initiate_device_flow(scopes=["MailboxFolder.Read"])
    assert "user_code" in flow, flow
    tid = idp["tenant"]["id"]
    assert flow["verification_uri"] == f"{idp['base']}/{tid}/oauth2/deviceauth"
    assert flow["user_code"] in flow["message"]
    result = {}
    poller = threading.Thread(
        target=lambda: result.update(client.acquire_token_by_device_flow(flow)), daemon=True)
    poller.start()

    s = browser(idp)
    entry = s.get(flow["verification_uri"])
    assert entry.status_code == 200 and hidden(entry, "csrf")
    # The entry form without its anti-forgery token is refused.
    r = s.post(flow["verification_uri"], data={"otc": flow["user_code"]})
    assert r.status_code == 403
    page = s.post(flow["verification_uri"],
                  data={"otc": flow["user_code"].lower(), "csrf": hidden(entry, "csrf")})
    assert "Device Tool" in page.text and "another device" in page.text
    # A wrong password: the page again, with Entra's code.
    again = sign_in(s, page, "adele@contoso.test", "not the password")
    assert again.status_code == 200 and "AADSTS50126" in again.text
    consent = sign_in(s, again, "adele@contoso.test")
    assert consent.status_code == 200 and "MailboxFolder.Read" in consent.text
    done = press(s, consent, "accept")
    assert "You have signed in to the Device Tool application" in done.text
    poller.join(60)
    assert "access_token" in result, result
    c = claims(result["access_token"])
    assert c["scp"] == "MailboxFolder.Read"
    assert c["oid"] == people["adele"]["id"] and c["idtyp"] == "user"
    assert result["id_token_claims"]["preferred_username"] == "adele@contoso.test"
    assert result["id_token_claims"]["aud"] == app["appId"]
    assert client.get_accounts(username="adele@contoso.test")
    # The delegated token reads Adele's own mailbox through msgraph-sdk.
    account = client.get_accounts(username="adele@contoso.test")[0]
    gc = graph_client(idp["base"], MsalUserCredential(client, account, ["MailboxFolder.Read"]))
    assert "Inbox" in await list_folder_names(gc, people["adele"]["primaryMailboxId"])
    # Adele's own consent revoked: her refresh token stops working.
    out = idp["gb"].json("admin", "consent", "revoke", "--app", app["appId"],
                         "--user", "adele@contoso.test")
    assert [g["value"] for g in out["revoked"]] == ["MailboxFolder.Read"]
    r = client.acquire_token_silent_with_error(["MailboxFolder.Read"], account=account,
                                               force_refresh=True)
    assert r["error"] == "invalid_grant" and r["error_codes"] == [50173], r


async def test_msal_auth_code_pkce_refresh_and_graph_sdk(idp, people):
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    import requests

    app = public_app(idp, "Web Tool", "MailboxFolder.Read", "MailboxItem.Read")
    client = pca(idp, app)
    scopes = ["https://graph.microsoft.com/MailboxFolder.Read",
              "https://graph.microsoft.com/MailboxItem.Read"]
    flow = client.initiate_auth_code_flow(scopes, redirect_uri=REDIRECT)
    s = browser(idp)
    page = s.get(flow["auth_uri"], allow_redirects=False)
    assert page.status_code == 200 and "Web Tool" in page.text
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    # A forged anti-forgery token is refused; the real one works.
    forged = s.post(form_action(page), allow_redirects=False, data={
        "flow": hidden(page, "flow"), "csrf": "forged", "login": "adele@contoso.test",
        "passwd": PASSWORD})
    assert forged.status_code == 403
    consent = sign_in(s, page, "adele@contoso.test")
    assert consent.status_code == 200
    assert 'data-permission="MailboxItem.Read"' in consent.text
    params = redirect_params(press(s, consent, "accept"))
    assert params["state"] == flow["state"]
    result = client.acquire_token_by_auth_code_flow(flow, params)
    assert "access_token" in result, result
    c = claims(result["access_token"])
    assert c["scp"] == "MailboxFolder.Read MailboxItem.Read"
    assert c["azp"] == app["appId"] and c["tid"] == idp["tenant"]["id"]
    first_rt = result["refresh_token"]

    account = client.get_accounts(username="adele@contoso.test")[0]
    silent = client.acquire_token_silent(scopes, account=account, force_refresh=True)
    assert silent and "access_token" in silent, silent
    assert silent["access_token"] != result["access_token"]
    assert claims(silent["access_token"])["scp"] == "MailboxFolder.Read MailboxItem.Read"

    gc = graph_client(idp["base"], MsalUserCredential(client, account, scopes))
    assert "Inbox" in await list_folder_names(gc, people["adele"]["primaryMailboxId"])
    # A delegated token never reaches another user's mailbox.
    with pytest.raises(ODataError) as e:
        await list_folder_names(gc, idp["megan"]["primaryMailboxId"])
    assert e.value.response_status_code == 403

    # The refresh token MSAL redeemed was rotated away: presenting it again
    # is refused, and revokes the sign-in (MSAL's current one dies too).
    token_endpoint = f"{idp['base']}/{idp['tenant']['id']}/oauth2/v2.0/token"
    r = requests.post(token_endpoint, verify=idp["ca"], data={
        "grant_type": "refresh_token", "client_id": app["appId"], "refresh_token": first_rt})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    assert r.json()["error_codes"] == [70008]
    after = client.acquire_token_silent_with_error(scopes, account=account, force_refresh=True)
    assert after["error"] == "invalid_grant" and after["error_codes"] == [50173], after
    # The code was one-time.
    again = client.acquire_token_by_auth_code_flow(flow, params)
    assert again.get("error") == "invalid_grant" and again["error_codes"] == [54005], again


async def test_admin_consent_turns_consent_required_into_success(idp, people):
    app = public_app(idp, "Migrator", "MailboxFolder.Read", "MailboxItem.ImportExport")
    client = pca(idp, app)
    # Adele signs in for what she may consent to herself …
    flow = client.initiate_auth_code_flow(["MailboxFolder.Read"], redirect_uri=REDIRECT)
    s = browser(idp)
    consent = sign_in(s, s.get(flow["auth_uri"]), "adele@contoso.test")
    result = client.acquire_token_by_auth_code_flow(
        flow, redirect_params(press(s, consent, "accept")))
    assert "access_token" in result, result
    account = client.get_accounts(username="adele@contoso.test")[0]
    # … but MailboxItem.ImportExport needs an administrator's consent.
    r = client.acquire_token_silent_with_error(["MailboxItem.ImportExport"], account=account,
                                               force_refresh=True)
    assert r["error"] == "invalid_grant" and r["error_codes"] == [65001], r
    assert r.get("suberror") == "consent_required"
    # Asking interactively shows "Need admin approval" (AADSTS90094).
    flow = client.initiate_auth_code_flow(["MailboxItem.ImportExport"], redirect_uri=REDIRECT)
    s = browser(idp)
    approval = sign_in(s, s.get(flow["auth_uri"]), "adele@contoso.test")
    assert "AADSTS90094" in approval.text
    back = redirect_params(press(s, approval, "back"))
    assert back["error"] == "consent_required" and back["state"] == flow["state"]

    # The admin-consent URL: a non-admin gets an error, an admin grants.
    q = {"client_id": app["appId"], "redirect_uri": REDIRECT, "state": "12345"}
    s = browser(idp)
    denied = redirect_params(sign_in(s, s.get(f"{idp['base']}/contoso.test/adminconsent",
                                              params=q), "adele@contoso.test"))
    assert denied["error"] == "access_denied" and denied["state"] == "12345"
    assert denied["error_description"].startswith("AADSTS90094")
    s = browser(idp)
    page = s.get(f"{idp['base']}/contoso.test/adminconsent", params=q)
    consent = sign_in(s, page, "admin@contoso.test")
    assert consent.status_code == 200 and "MailboxItem.ImportExport" in consent.text
    granted = redirect_params(press(s, consent, "accept"))
    assert granted == {"admin_consent": "True", "tenant": idp["tenant"]["id"], "state": "12345"}
    shown = idp["gb"].json("admin", "app", "show", "--app", app["appId"])
    assert any(g["value"] == "MailboxItem.ImportExport" and g["user_id"] is None
               for g in shown["grants"]), shown["grants"]

    # The same refresh token now yields the permission. (A new application
    # object over the same token cache: MSAL replays an identical request's
    # HTTP 400 answer for 60 s without asking the server.)
    client = pca(idp, app, cache=client.token_cache)
    r = client.acquire_token_silent_with_error(["MailboxItem.ImportExport"], account=account,
                                               force_refresh=True)
    assert r and "access_token" in r, r
    assert "MailboxItem.ImportExport" in claims(r["access_token"])["scp"].split()

    # Revoking the user's sessions ends the refresh tokens.
    out = idp["gb"].json("admin", "user", "revoke-sessions", "--user", "adele@contoso.test")
    assert out["sessionsRevoked"] is True
    r = client.acquire_token_silent_with_error(["MailboxFolder.Read"], account=account,
                                               force_refresh=True)
    assert r["error"] == "invalid_grant" and r["error_codes"] == [50173], r


def test_admin_cli_refuses_bad_input(idp):
    gb, app = idp["gb"], idp["app"]["appId"]
    cases = [
        (["admin", "app", "permission", "add", "--app", app, "--permission", "Mail.Send.All"],
         "not a application permission"),
        (["admin", "app", "permission", "add", "--app", app, "--permission", "User.Read.All"],
         "--type"),
        (["admin", "app", "show", "--app", "nope"], "client id"),
        (["admin", "app", "show", "--app", "00000000-0000-0000-0000-000000000009"],
         "no application"),
        (["admin", "app", "create", "--tenant", "contoso.test", "--name", "W",
          "--redirect-uri", "http://evil.example/cb"], "redirect URI"),
        (["admin", "app", "secret", "add", "--app", app, "--days", "0"], "lifetime"),
        (["admin", "user", "set-password", "--user", "megan@contoso.test", "--password", "short"],
         "8 characters"),
        (["admin", "user", "create", "--tenant", "contoso.test", "--upn", "x@contoso.test",
          "--password", "short"], "8 characters"),
    ]
    for args, needle in cases:
        res = gb.run(*args, check=False)
        assert res.returncode != 0, args
        assert needle in res.stderr, (args, res.stderr)
    # The refused user create created nothing.
    users = gb.json("admin", "user", "list", "--tenant", "contoso.test")
    assert all(u["userPrincipalName"] != "x@contoso.test" for u in users)
    ok = gb.json("admin", "user", "set-password", "--user", "megan@contoso.test",
                 "--password", "correct horse battery")
    assert ok["passwordSet"] is True
    assert gb.json("admin", "user", "set-admin", "--user", "megan@contoso.test")["isAdmin"] is True
