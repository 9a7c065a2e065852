//! Signing key rotation: new keys published and used by kid, old ones kept
//! while their tokens can be valid and dropped after, upgrade from a single
//! key, and several instances over one store agreeing on the key set.

mod common;

use std::sync::Arc;

use api::auth::KeyState;
use api::{AuthSettings, Authority, Grant, TokenRequest};
use common::{Env, ISSUER, env, pem};
use time::Duration;

fn jwks_kids(a: &Authority) -> Vec<String> {
    a.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn header_kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

fn app_token(env: &Env, a: &Authority, lifetime: Duration) -> String {
    a.mint(&TokenRequest {
        tenant_id: env.tenant.id,
        app_id: env.app_id,
        grant: Grant::Application {
            roles: vec!["MailboxFolder.Read.All".into()],
        },
        lifetime,
        issued_at: None,
    })
}

async fn instance(env: &Env, settings: AuthSettings) -> Arc<Authority> {
    Arc::new(
        Authority::open(env.meta.clone(), ISSUER, settings)
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn rotation_publishes_the_new_key_and_keeps_old_tokens_valid() {
    let env = env().await;
    let folders = env.mp(&env.mbx, "/folders");
    let old_kid = env.authority().kid();
    let old_token = env.app_token(&["MailboxFolder.Read.All"]);
    // The pre-rotation deployment's key, used the old way (one PEM), is slot 0.
    let legacy = Authority::from_pem(pem(), ISSUER).unwrap();
    assert_eq!(legacy.kid(), old_kid);
    let legacy_token = app_token(&env, &legacy, Duration::hours(1));

    // A rotation with a lead: published at once, not yet signing.
    let pending = env.authority().rotate(Duration::minutes(2)).await.unwrap();
    assert_eq!(pending.slot, 1);
    assert_eq!(pending.state, KeyState::Pending);
    assert_ne!(pending.kid, old_kid);
    assert_eq!(env.authority().kid(), old_kid);
    assert_eq!(
        jwks_kids(env.authority()),
        vec![pending.kid.clone(), old_kid.clone()]
    );

    // Another, activating now: it signs; both older keys stay published.
    let current = env.authority().rotate(Duration::ZERO).await.unwrap();
    assert_eq!(current.slot, 2);
    // Never before the pending key it follows.
    assert!(current.activates >= pending.activates);
    let keys = env.authority().keys();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0].state, KeyState::Current, "{keys:?}");
    assert_eq!(keys[1].state, KeyState::Pending, "{keys:?}");
    assert_eq!(keys[2].state, KeyState::Pending, "{keys:?}");

    // Tokens of every published key are accepted, by kid.
    env.get(&folders, &old_token).await.ok();
    env.get(&folders, &legacy_token).await.ok();
    let restarted = instance(&env, AuthSettings::default()).await;
    assert_eq!(
        restarted.keys(),
        env.authority().keys(),
        "a new instance loads every slot"
    );
}

#[tokio::test]
async fn a_rotation_without_lead_signs_at_once() {
    let env = env().await;
    let folders = env.mp(&env.mbx, "/folders");
    let before = env.app_token(&["MailboxFolder.Read.All"]);
    let k = env.authority().rotate(Duration::ZERO).await.unwrap();
    assert_eq!(k.state, KeyState::Current);
    assert_eq!(env.authority().kid(), k.kid);
    let keys = env.authority().keys();
    assert_eq!(keys[0].state, KeyState::Previous);
    // Kept for the longest token lifetime plus skew and refresh margin.
    let s = AuthSettings::default();
    assert_eq!(
        keys[0].drop_after.unwrap() - k.activates,
        s.max_token_lifetime + s.clock_skew + s.key_refresh
    );
    let after = env.app_token(&["MailboxFolder.Read.All"]);
    assert_eq!(header_kid(&after), k.kid);
    env.get(&folders, &after).await.ok();
    env.get(&folders, &before).await.ok();
    assert_eq!(
        jwks_kids(env.authority()),
        vec![k.kid.clone(), keys[0].kid.clone()]
    );
}

#[tokio::test]
async fn retired_keys_are_dropped_once_their_tokens_have_expired() {
    let env = env().await;
    let short = AuthSettings {
        clock_skew: Duration::ZERO,
        max_token_lifetime: Duration::seconds(2),
        key_refresh: Duration::ZERO,
        ..AuthSettings::default()
    };
    let a = instance(&env, short).await;
    let old_kid = a.kid();
    let old_token = app_token(&env, &a, Duration::seconds(2));
    assert!(a.validate(&old_token).is_ok());
    let k = a.rotate(Duration::ZERO).await.unwrap();
    assert_eq!(jwks_kids(&a), vec![k.kid.clone(), old_kid.clone()]);
    assert!(
        a.validate(&old_token).is_ok(),
        "still valid after the rotation"
    );
    let keys = a.keys();
    assert_eq!(keys[0].state, KeyState::Previous);

    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(
        jwks_kids(&a),
        vec![k.kid.clone()],
        "the old key left the JWKS"
    );
    assert_eq!(a.keys()[0].state, KeyState::Dropped);
    // A token of the dropped key, even one claiming a long life, is refused
    // as signed by an unknown key.
    let e = a.validate(&old_token).unwrap_err();
    assert_eq!(e.status.as_u16(), 401);
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    h.kid = Some(old_kid.clone());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let forged_long = jsonwebtoken::encode(
        &h,
        &serde_json::json!({
            "aud": "https://graph.microsoft.com", "iss": a.issuer_for(env.tenant.id),
            "iat": now, "nbf": now, "exp": now + 3600, "tid": env.tenant.id.to_string(),
            "azp": "x", "roles": ["MailboxFolder.Read.All"],
        }),
        &jsonwebtoken::EncodingKey::from_rsa_pem(pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let e = a.validate_async(&forged_long).await.unwrap_err();
    assert!(e.message.contains("unknown key"), "{}", e.message);
    // A reload from the store does not bring it back, nor does a restart.
    a.refresh().await.unwrap();
    assert_eq!(jwks_kids(&a), vec![k.kid.clone()]);
    let short = AuthSettings {
        clock_skew: Duration::ZERO,
        max_token_lifetime: Duration::seconds(2),
        key_refresh: Duration::ZERO,
        ..AuthSettings::default()
    };
    let restarted = instance(&env, short).await;
    assert_eq!(jwks_kids(&restarted), vec![k.kid.clone()]);
    assert_eq!(restarted.keys().len(), 2);
}

#[tokio::test]
async fn another_instance_picks_up_a_rotation_by_kid_with_rate_limited_reloads() {
    let env = env().await;
    let folders = env.mp(&env.mbx, "/folders");
    // Instance B: reloads for unknown kids at most once an hour.
    let b = instance(
        &env,
        AuthSettings {
            unknown_kid_reload: std::time::Duration::from_secs(3600),
            ..AuthSettings::default()
        },
    )
    .await;
    let a = env.state.authority.clone();
    let a = a.as_ref();

    // A rotates and signs with the new key; B has never reloaded for an
    // unknown kid, so the first such token makes it reload and accept.
    let k1 = a.rotate(Duration::ZERO).await.unwrap();
    let t1 = app_token(&env, a, Duration::hours(1));
    assert_eq!(header_kid(&t1), k1.kid);
    assert!(b.validate(&t1).is_err(), "the sync path never reloads");
    b.validate_async(&t1).await.unwrap();
    assert_eq!(b.kid(), k1.kid, "B signs with the rotated key too");

    // A rotates again at once: B's next unknown kid is within the hour, so
    // B does not reload and refuses...
    let k2 = a.rotate(Duration::ZERO).await.unwrap();
    let t2 = app_token(&env, a, Duration::hours(1));
    assert_eq!(header_kid(&t2), k2.kid);
    let e = b.validate_async(&t2).await.unwrap_err();
    assert!(e.message.contains("unknown key"), "{}", e.message);
    // ...until its periodic refresh.
    b.refresh().await.unwrap();
    b.validate_async(&t2).await.unwrap();

    // Through the router of an instance with the default (10 s) limit.
    let mut env = env;
    env.state.authority = instance(&env, AuthSettings::default()).await;
    env.app = api::router(env.state.clone());
    let k3 = a.rotate(Duration::ZERO).await.unwrap();
    let t3 = app_token(&env, a, Duration::hours(1));
    assert_eq!(header_kid(&t3), k3.kid);
    env.get(&folders, &t3).await.ok();
}

#[tokio::test]
async fn concurrent_rotations_agree_on_one_key_per_slot() {
    let env = env().await;
    let a = instance(&env, AuthSettings::default()).await;
    let b = instance(&env, AuthSettings::default()).await;
    let (ka, kb) = tokio::join!(a.rotate(Duration::ZERO), b.rotate(Duration::ZERO));
    let (ka, kb) = (ka.unwrap(), kb.unwrap());
    assert_eq!(ka.slot, kb.slot);
    assert_eq!(ka.kid, kb.kid, "one key won the slot");
    a.refresh().await.unwrap();
    b.refresh().await.unwrap();
    assert_eq!(a.keys(), b.keys());
    assert_eq!(a.kid(), b.kid());
    // Each validates the other's tokens.
    let ta = app_token(&env, &a, Duration::hours(1));
    let tb = app_token(&env, &b, Duration::hours(1));
    b.validate(&ta).unwrap();
    a.validate(&tb).unwrap();
}

#[tokio::test]
async fn rotation_is_due_by_the_age_of_the_newest_key() {
    let env = env().await;
    let a = env.authority();
    // The seeded key was created just now (its creation time is recorded at
    // the first start that knows about rotation).
    assert!(a.rotate_if_due(Duration::days(30)).await.unwrap().is_none());
    let k = a.rotate_if_due(Duration::ZERO).await.unwrap().unwrap();
    assert_eq!(k.slot, 1);
    // The automatic rotation lets every instance load the key first.
    assert_eq!(k.state, KeyState::Pending);
    assert_eq!(
        k.activates - k.created,
        AuthSettings::default().key_refresh * 2
    );
    // The newest key is the pending one: not due again.
    assert!(a.rotate_if_due(Duration::days(1)).await.unwrap().is_none());
    assert_eq!(a.keys().len(), 2);
}

#[tokio::test]
async fn an_authority_without_a_store_cannot_rotate() {
    let a = Authority::from_pem(pem(), ISSUER).unwrap();
    let e = a.rotate(Duration::ZERO).await.unwrap_err();
    assert!(e.to_string().contains("store"), "{e}");
    // Refresh is a no-op, the key stays.
    let kid = a.kid();
    a.refresh().await.unwrap();
    assert_eq!(a.kid(), kid);
}
