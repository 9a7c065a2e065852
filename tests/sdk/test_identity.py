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
