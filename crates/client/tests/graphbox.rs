//! The client against a real graphbox server (in-process, behind the fault
//! proxy): tokens, discovery, delta, export, import, folders, errors.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use client::testing::FaultPlan;
use client::{Credential, Error, ExportOutcome, GraphClient, Profile};
use common::{Opts, start};
use futures::StreamExt;

#[tokio::test]
async fn discovery_with_secret_and_certificate() {
    let s = start(Opts::default()).await;
    let c = s.client();
    let m = c.mailbox_for_user("megan@contoso.test").await.unwrap();
    assert_eq!(m.id, s.mbx());
    assert_eq!(m.label, "megan@contoso.test");
    // An MBX: id is checked and used as is.
    let m2 = c.mailbox_for_user(&s.mbx()).await.unwrap();
    assert_eq!(m2.id, s.mbx());

    // Certificate credential: PS256 client assertion with x5t#S256.
    let mut p = s.profile();
    p.credential = Credential::Certificate {
        private_key_pem: s.key_file.clone(),
        certificate_pem: s.cert_file.clone(),
    };
    let cc = GraphClient::new(p).unwrap();
    let m3 = cc.mailbox_for_user("alex@contoso.test").await.unwrap();
    assert_eq!(m3.id, s.alex.id.to_string());
    // Every assertion is fresh (graphbox refuses a replayed jti).
    cc.forget_token().await;
    cc.get_mailbox(&s.mbx()).await.unwrap();
    assert_eq!(cc.stats().token_requests, 2);
}

#[tokio::test]
async fn bad_inputs_give_typed_errors() {
    let s = start(Opts::default()).await;
    let c = s.client();
    match c.mailbox_for_user("nobody@contoso.test").await.unwrap_err() {
        Error::NotFound { code, .. } => assert_eq!(code, "Request_ResourceNotFound"),
        e => panic!("expected NotFound, got {e:?}"),
    }
    let bogus = "MBX:00000000-0000-4000-8000-000000000000@00000000-0000-4000-8000-000000000000";
    let e = c.mailbox_for_user(bogus).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(e.code(), Some("ErrorNonExistentMailbox"));
    let e = c
        .items_delta(&s.mbx(), "no-such-folder", None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ErrorItemNotFound"), "{e}");
    let e = c.mailbox_for_user("  ").await.unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");

    // Wrong secret: the AADSTS code is named.
    let mut p = s.profile();
    p.credential = Credential::Secret {
        secret: "not-the-secret".into(),
    };
    let e = GraphClient::new(p)
        .unwrap()
        .mailbox_for_user("megan@contoso.test")
        .await
        .unwrap_err();
    match &e {
        Error::Auth {
            error,
            aadsts,
            status,
            ..
        } => {
            assert_eq!(error, "invalid_client");
            assert_eq!(*aadsts, Some(7000215));
            assert_eq!(*status, Some(401));
        }
        e => panic!("expected Auth, got {e:?}"),
    }
    assert!(e.to_string().contains("AADSTS7000215"), "{e}");

    // Unknown tenant.
    let mut p = s.profile();
    p.tenant = "fabrikam.test".into();
    let e = GraphClient::new(p)
        .unwrap()
        .access_token()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("AADSTS90002"), "{e}");

    // Malformed base URLs and other unusable profiles are refused up front.
    for bad in [
        "not a url",
        "ftp://graph.example",
        "https://",
        "https://h/?x=1",
    ] {
        let mut p = s.profile();
        p.graph_base = bad.into();
        let e = GraphClient::new(p).unwrap_err();
        assert!(
            matches!(&e, Error::Config(m) if m.contains("graph_base")),
            "{bad}: {e:?}"
        );
    }
    let mut p = s.profile();
    p.authority = "login".into();
    assert!(matches!(GraphClient::new(p), Err(Error::Config(m)) if m.contains("authority")));
    let mut p = s.profile();
    p.max_concurrency_per_mailbox = 0;
    assert!(GraphClient::new(p).is_err());
    let mut p = s.profile();
    p.credential = Credential::Certificate {
        private_key_pem: s.dir.path().join("missing.pem"),
        certificate_pem: s.cert_file.clone(),
    };
    assert!(matches!(GraphClient::new(p), Err(Error::Config(m)) if m.contains("missing.pem")));
    let mut p = s.profile();
    p.credential = Credential::Certificate {
        private_key_pem: s.cert_file.clone(),
        certificate_pem: s.cert_file.clone(),
    };
    assert!(matches!(GraphClient::new(p), Err(Error::Config(m)) if m.contains("private key")));
    let mut p = s.profile();
    p.ca_certificate = Some(s.key_file.clone());
    assert!(matches!(GraphClient::new(p), Err(Error::Config(_))));
}

#[tokio::test]
async fn profile_loads_from_toml() {
    let p: Profile = toml::from_str(
        r#"
        graph_base = "https://localhost:8443"
        api_version = "beta"
        authority = "https://localhost:8443"
        tenant = "contoso.test"
        client_id = "d3e00000-0000-4000-8000-000000000001"
        credential = { kind = "secret", secret = "s3cret" }
        max_concurrency_per_mailbox = 2
        "#,
    )
    .unwrap();
    assert_eq!(p.api_version, client::ApiVersion::Beta);
    assert_eq!(p.max_concurrency_per_mailbox, 2);
    assert_eq!(p.max_attempts, 8);
    assert_eq!(p.effective_scope(), "https://graph.microsoft.com/.default");
    let c = GraphClient::new(p).unwrap();
    assert_eq!(
        c.url(&[
            "admin",
            "exchange",
            "mailboxes",
            "MBX:a@b",
            "folders",
            "AAk/x+="
        ]),
        "https://localhost:8443/beta/admin/exchange/mailboxes/MBX:a@b/folders/AAk%2Fx+="
    );
    // Defaults: Graph and Entra ID.
    let p: Profile = toml::from_str(
        "tenant = \"t\"\nclient_id = \"c\"\ncredential = { kind = \"device_code\" }\n",
    )
    .unwrap();
    assert_eq!(p.graph_base, "https://graph.microsoft.com");
    assert_eq!(p.authority, "https://login.microsoftonline.com");
    assert!(p.effective_scope().ends_with(" offline_access"));
    let e = toml::from_str::<Profile>(
        "tenant = \"t\"\nclient_id = \"c\"\ncredential = { kind = \"password\" }\n",
    );
    assert!(e.is_err());
    let e = toml::from_str::<Profile>(
        "tenant = \"t\"\nclient_id = \"c\"\napi_version = \"v2\"\ncredential = { kind = \"device_code\" }\n",
    );
    assert!(e.is_err());
}

#[tokio::test]
async fn folder_and_item_delta_incremental_and_410() {
    let s = start(Opts::default()).await;
    let c = s.client();
    let mbx = s.mbx();

    let f0 = c.folders_delta(&mbx, None).await.unwrap();
    let inbox = f0
        .changed
        .iter()
        .find(|f| f.well_known_name.as_deref() == Some("inbox"))
        .expect("inbox in folder delta")
        .clone();
    assert_eq!(inbox.folder_type, "IPF.Note");
    assert_eq!(inbox.total_item_count, Some(45));
    assert!(f0.removed.is_empty());
    assert!(f0.delta_link.contains("deltatoken"), "{}", f0.delta_link);
    // The tree listing agrees with delta.
    let tree = c.list_folders(&mbx).await.unwrap();
    let a: HashSet<_> = tree.iter().map(|f| f.id.clone()).collect();
    let b: HashSet<_> = f0.changed.iter().map(|f| f.id.clone()).collect();
    assert_eq!(a, b);

    let f1 = c.folders_delta(&mbx, Some(&f0.delta_link)).await.unwrap();
    assert!(f1.changed.is_empty() && f1.removed.is_empty(), "{f1:?}");

    let i0 = c.items_delta(&mbx, &inbox.id, None).await.unwrap();
    assert_eq!(i0.changed.len(), 45);
    assert!(i0.changed.iter().all(|i| i.folder_id == inbox.id
        && !i.change_key.is_empty()
        && i.item_type.starts_with("IPM.")
        && i.size.unwrap_or(0) > 0
        && i.created.is_some()
        && i.modified.is_some()));

    // Changes: a new folder, an imported item, a hard-deleted item.
    let nf = c
        .create_folder(&mbx, None, "Projects", "IPF.Note")
        .await
        .unwrap();
    let imported = c
        .import_item(
            &mbx,
            &inbox.id,
            &common::demo_item(7, mapi::demo::DemoKind::Mail),
        )
        .await
        .unwrap();
    let gone = i0.changed[3].id.clone();
    c.delete_item(&mbx, &inbox.id, &gone, true).await.unwrap();

    let f2 = c.folders_delta(&mbx, Some(&f1.delta_link)).await.unwrap();
    let names: Vec<_> = f2.changed.iter().map(|f| f.display_name.as_str()).collect();
    assert!(names.contains(&"Projects"), "{names:?}");
    assert!(f2.changed.iter().any(|f| f.id == nf.id));

    let i1 = c
        .items_delta(&mbx, &inbox.id, Some(&i0.delta_link))
        .await
        .unwrap();
    assert_eq!(
        i1.changed.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
        vec![imported.item_id.clone()]
    );
    assert_eq!(i1.changed[0].change_key, imported.change_key);
    assert_eq!(i1.removed, vec![gone]);

    // The sync state is forgotten (tombstones purged past the token): 410.
    s.meta_purge(&mbx).await;
    let e = c
        .items_delta(&mbx, &inbox.id, Some(&i1.delta_link))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::SyncStateNotFound { .. }), "{e:?}");
    // Restarting from scratch works.
    let again = c.items_delta(&mbx, &inbox.id, None).await.unwrap();
    assert_eq!(again.changed.len(), 45);

    // A link that is not a URL.
    let e = c
        .items_delta(&mbx, &inbox.id, Some("deltatoken=1"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
}

#[tokio::test]
async fn export_splits_batches_and_budget() {
    let s = start(Opts::default()).await;
    let c = s.client();
    let mbx = s.mbx();
    let items = c.list_items(&mbx, "inbox").await.unwrap();
    assert_eq!(items.len(), 45);
    let mut ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
    ids.push("AAMkAGnotanitem=".into());
    let out = c.export_items(&mbx, &ids).await.unwrap();
    assert_eq!(out.len(), 46);
    // In the order given, each decodable FTS of the listed size.
    for (o, id) in out.iter().zip(&ids) {
        assert_eq!(o.id(), id);
    }
    for (o, item) in out.iter().zip(&items) {
        let ExportOutcome::Ok {
            data, change_key, ..
        } = o
        else {
            panic!("{o:?}")
        };
        assert_eq!(change_key, &item.change_key);
        assert!(item.size.unwrap() > 0);
        fts::decode(data).unwrap();
    }
    match &out[45] {
        ExportOutcome::Failed { code, .. } => assert_eq!(code, "ErrorItemNotFound"),
        o => panic!("{o:?}"),
    }
    let batches = s.proxy().stats().export_batches;
    assert_eq!(batches.iter().sum::<usize>(), 46);
    assert!(batches.iter().all(|&n| n <= 20), "{batches:?}");
    assert_eq!(batches.len(), 3, "{batches:?}");

    // A byte budget of three of the smallest items: batches of at most three.
    s.proxy().reset_stats();
    let mut p = s.profile();
    let size = items.iter().map(|i| i.size.unwrap()).min().unwrap();
    p.export_batch_bytes = size * 3;
    let c2 = GraphClient::new(p).unwrap();
    let wanted: Vec<(String, u64)> = items
        .iter()
        .map(|i| (i.id.clone(), i.size.unwrap()))
        .collect();
    let got: Vec<_> = c2.export_stream(&mbx, wanted).collect().await;
    assert_eq!(got.len(), 45);
    assert!(
        got.iter()
            .all(|o| matches!(o, Ok(ExportOutcome::Ok { .. })))
    );
    let batches = s.proxy().stats().export_batches;
    assert!(batches.iter().all(|&n| n <= 3), "{batches:?}");
    assert!(batches.len() >= 15, "{batches:?}");
}

/// exportItems answers written with `\/` escapes decode to the same bytes
/// (the data is then unescaped into a copy instead of read in place), and an
/// entry whose data is not base64 fails alone, with a code that says so.
#[tokio::test]
async fn export_data_escaped_or_not_base64() {
    let s = start(Opts::default()).await;
    let c = s.client();
    let mbx = s.mbx();
    let ids: Vec<String> = c
        .list_items(&mbx, "inbox")
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    let plain = c.export_items(&mbx, &ids).await.unwrap();
    let data = |o: &ExportOutcome| match o {
        ExportOutcome::Ok { data, .. } => data.clone(),
        o => panic!("{o:?}"),
    };
    s.proxy().set_plan(FaultPlan {
        escape_slashes_every: 1,
        ..FaultPlan::default()
    });
    let escaped = c.export_items(&mbx, &ids).await.unwrap();
    assert_eq!(s.proxy().stats().escaped_answers, 3);
    assert_eq!(escaped.len(), plain.len());
    for (a, b) in plain.iter().zip(&escaped) {
        assert_eq!((a.id(), data(a)), (b.id(), data(b)));
    }

    s.proxy().set_plan(FaultPlan {
        corrupt_data_every: 1,
        ..FaultPlan::default()
    });
    s.proxy().reset_stats();
    let out = c.export_items(&mbx, &ids).await.unwrap();
    assert_eq!(s.proxy().stats().corrupted_items, 3);
    let failed: Vec<&ExportOutcome> = out
        .iter()
        .filter(|o| matches!(o, ExportOutcome::Failed { .. }))
        .collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    for f in failed {
        let ExportOutcome::Failed { code, message, .. } = f else {
            unreachable!()
        };
        assert_eq!(code, "InvalidBase64");
        assert!(message.contains("not base64"), "{message}");
    }
    for (a, b) in plain.iter().zip(&out) {
        if let ExportOutcome::Ok { data: got, .. } = b {
            assert_eq!(&data(a), got);
        }
    }
}

#[tokio::test]
async fn import_create_update_and_session_renewal() {
    let s = start(Opts::default()).await;
    let c = s.client();
    let mbx = s.alex.id.to_string();

    let parent = c
        .create_folder(&mbx, None, "Restored", "IPF.Note")
        .await
        .unwrap();
    assert_eq!(parent.display_name, "Restored");
    let child = c
        .create_folder(&mbx, Some(&parent.id), "2024", "IPF.Note")
        .await
        .unwrap();
    assert_eq!(child.parent_folder_id.as_deref(), Some(parent.id.as_str()));
    let found = c
        .find_child_folder(&mbx, None, "restored")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, parent.id);
    assert!(
        c.find_child_folder(&mbx, Some(&parent.id), "2025")
            .await
            .unwrap()
            .is_none()
    );
    // Same name again: the server's conflict, typed.
    let e = c
        .create_folder(&mbx, None, "Restored", "IPF.Note")
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(409), "{e:?}");

    let v1 = common::demo_item(11, mapi::demo::DemoKind::Mail);
    let v2 = common::demo_item(12, mapi::demo::DemoKind::Mail);
    let a = c.import_item(&mbx, &child.id, &v1).await.unwrap();
    let b = c.import_item(&mbx, &child.id, &v2).await.unwrap();
    assert_ne!(a.item_id, b.item_id);
    let exported = c
        .export_items(&mbx, std::slice::from_ref(&a.item_id))
        .await
        .unwrap();
    assert!(matches!(&exported[0], ExportOutcome::Ok { data, .. } if data == &v1));

    let u = c
        .update_item(&mbx, &child.id, &a.item_id, &a.change_key, &v2)
        .await
        .unwrap();
    assert_eq!(u.item_id, a.item_id);
    assert_ne!(u.change_key, a.change_key);
    let exported = c
        .export_items(&mbx, std::slice::from_ref(&a.item_id))
        .await
        .unwrap();
    assert!(
        matches!(&exported[0], ExportOutcome::Ok { data, change_key, .. } if data == &v2 && change_key == &u.change_key)
    );
    // Stale change key: 409 ErrorIrresolvableConflict, nothing changed.
    let e = c
        .update_item(&mbx, &child.id, &a.item_id, &a.change_key, &v1)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ErrorIrresolvableConflict"), "{e:?}");
    // Not an FTS stream.
    let e = c.import_item(&mbx, &child.id, b"hello").await.unwrap_err();
    assert_eq!(e.code(), Some("ErrorInvalidData"), "{e:?}");
    assert!(matches!(
        c.import_item(&mbx, &child.id, b"").await,
        Err(Error::Config(_))
    ));

    // One session for all of these, never an Authorization header on it.
    let st = s.proxy().stats();
    assert_eq!(st.import_sessions, 1, "{st:?}");
    assert_eq!(st.imports_with_authorization, 0);

    // The import URL refuses the session (expired): renewed once, retried.
    s.proxy().set_plan(FaultPlan {
        refuse_import_every: 1,
        ..FaultPlan::default()
    });
    let e = c.import_item(&mbx, &child.id, &v1).await.unwrap_err();
    assert_eq!(e.status(), Some(401), "{e:?}");
    assert_eq!(s.proxy().stats().import_sessions, 2);
    s.proxy().set_plan(FaultPlan {
        refuse_import_every: 2,
        ..FaultPlan::default()
    });
    s.proxy().reset_stats();
    // Import #1 passes, #2 is refused then retried on a new session (#3).
    c.import_item(&mbx, &child.id, &v1).await.unwrap();
    c.import_item(&mbx, &child.id, &v2).await.unwrap();
    let st = s.proxy().stats();
    assert_eq!(st.refused_imports, 1, "{st:?}");
    assert_eq!(st.import_sessions, 1, "{st:?}");
    assert_eq!(st.imports, 2, "{st:?}");
    let n = c.list_items(&mbx, &child.id).await.unwrap().len();
    assert_eq!(n, 4);

    // Deletes.
    c.delete_item(&mbx, &child.id, &b.item_id, false)
        .await
        .unwrap();
    c.delete_folder(&mbx, &parent.id).await.unwrap();
    let e = c.get_folder(&mbx, &child.id).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
}

#[tokio::test]
async fn token_single_flight_and_renewal() {
    let s = start(Opts {
        token_lifetime_secs: 8,
        ..Opts::default()
    })
    .await;
    let c = s.client();
    let mbx = s.mbx();
    let calls = (0..16).map(|_| {
        let c = c.clone();
        let mbx = mbx.clone();
        async move { c.get_mailbox(&mbx).await }
    });
    for r in futures::future::join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(s.proxy().stats().token_requests, 1);
    assert_eq!(c.stats().token_requests, 1);
    // Still valid: no new token.
    c.get_mailbox(&mbx).await.unwrap();
    assert_eq!(s.proxy().stats().token_requests, 1);
    // Past half its 8 s life (the renewal point of short tokens): renewed.
    tokio::time::sleep(std::time::Duration::from_millis(4300)).await;
    c.get_mailbox(&mbx).await.unwrap();
    assert_eq!(s.proxy().stats().token_requests, 2);
    c.forget_token().await;
    c.get_mailbox(&mbx).await.unwrap();
    assert_eq!(s.proxy().stats().token_requests, 3);
}

#[tokio::test]
async fn faults_are_survived_and_counted() {
    let s = start(Opts::default()).await;
    let mut p = s.profile();
    p.max_attempts = 6;
    let c = GraphClient::new(p).unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let seen2 = seen.clone();
    c.set_observer(Some(Arc::new(move |_ev: &client::RetryEvent| {
        seen2.fetch_add(1, Ordering::Relaxed);
    })));
    s.proxy().set_plan(FaultPlan {
        throttle_every: 7,
        retry_after: Some("1".into()),
        unavailable_every: 5,
        bad_gateway_every: 11,
        reset_every: 3,
        drop_export_every: 2,
        ..FaultPlan::default()
    });
    let mbx = s.mbx();
    let started = std::time::Instant::now();
    let m = c.mailbox_for_user("megan@contoso.test").await.unwrap();
    assert_eq!(m.id, mbx);
    let folders = c.folders_delta(&mbx, None).await.unwrap();
    let mut wanted = Vec::new();
    for f in &folders.changed {
        if f.total_item_count.unwrap_or(0) > 0 {
            let d = c.items_delta(&mbx, &f.id, None).await.unwrap();
            wanted.extend(d.changed.into_iter().map(|i| (i.id, i.size.unwrap_or(0))));
        }
    }
    assert_eq!(wanted.len(), 51);
    let outcomes: Vec<_> = c.export_stream(&mbx, wanted.clone()).collect().await;
    let mut got = HashSet::new();
    for o in outcomes {
        match o.unwrap() {
            ExportOutcome::Ok { id, data, .. } => {
                fts::decode(&data).unwrap();
                assert!(got.insert(id));
            }
            f => panic!("not exported: {f:?}"),
        }
    }
    let want: HashSet<_> = wanted.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(got, want);

    let ps = s.proxy().stats();
    let cs = c.stats();
    assert!(
        ps.throttled >= 1 && ps.unavailable >= 1 && ps.resets >= 1,
        "{ps:?}"
    );
    assert!(ps.dropped_items >= 1, "{ps:?}");
    assert_eq!(cs.throttled, ps.throttled + ps.unavailable, "{cs:?} {ps:?}");
    assert!(cs.network_errors >= ps.resets, "{cs:?} {ps:?}");
    let faults = ps.throttled + ps.unavailable + ps.resets + ps.bad_gateway;
    assert_eq!(cs.retries, faults, "{cs:?} {ps:?}");
    assert_eq!(seen.load(Ordering::Relaxed), cs.retries);
    // Retry-After: 1 was honoured (waits may overlap across parallel batches).
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn endless_throttling_and_missing_items_give_up_clearly() {
    let s = start(Opts::default()).await;
    let mut p = s.profile();
    p.max_attempts = 3;
    p.export_missing_attempts = 2;
    let c = GraphClient::new(p).unwrap();
    let mbx = s.mbx();
    let items = c.list_items(&mbx, "calendar").await.unwrap();
    assert_eq!(items.len(), 6);

    // Every exportItems answer loses its first entry: the first id asked is
    // missing from two answers in a row and reported NotReturned; the
    // others arrive.
    s.proxy().set_plan(FaultPlan {
        drop_export_every: 1,
        ..FaultPlan::default()
    });
    let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
    let out = c.export_items(&mbx, &ids).await.unwrap();
    assert_eq!(out.len(), 6);
    let failed: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            ExportOutcome::Failed { id, code, .. } => Some((id.clone(), code.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec![(ids[0].clone(), "NotReturned".to_owned())]);

    s.proxy().set_plan(FaultPlan {
        throttle_every: 1,
        retry_after: Some("0".into()),
        ..FaultPlan::default()
    });
    let e = c.get_mailbox(&mbx).await.unwrap_err();
    match e {
        Error::Throttled {
            status, attempts, ..
        } => {
            assert_eq!(status, 429);
            assert_eq!(attempts, 3);
        }
        e => panic!("{e:?}"),
    }
    // A batch that stays throttled: each id reported, the run goes on.
    let out = c.export_items(&mbx, &ids[..2]).await.unwrap();
    assert_eq!(out.len(), 2);
    for o in &out {
        match o {
            ExportOutcome::Failed { code, message, .. } => {
                assert_eq!(code, "TooManyRequests");
                assert!(message.contains("throttled"), "{message}");
            }
            o => panic!("{o:?}"),
        }
    }

    // Resets on every request: a network error after the attempts.
    s.proxy().set_plan(FaultPlan {
        reset_every: 1,
        ..FaultPlan::default()
    });
    let e = c.get_mailbox(&mbx).await.unwrap_err();
    assert!(matches!(e, Error::Network { attempts: 3, .. }), "{e:?}");
    // A reset POST that is not idempotent is not repeated blindly: the
    // folder was not created (the proxy reset it before forwarding), so
    // the error surfaces after one attempt.
    s.proxy().set_plan(FaultPlan {
        reset_every: 1,
        reset_posts: true,
        ..FaultPlan::default()
    });
    s.proxy().reset_stats();
    let e = c
        .create_folder(&mbx, None, "Lost", "IPF.Note")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Network { attempts: 1, .. }), "{e:?}");
    s.proxy().set_plan(FaultPlan::default());
    assert!(
        c.find_child_folder(&mbx, None, "Lost")
            .await
            .unwrap()
            .is_none()
    );
    // The same reset after the server created the folder: the client finds
    // the folder its lost request made instead of failing or duplicating.
    s.proxy().set_plan(FaultPlan {
        reset_every: 2,
        reset_posts: true,
        reset_after_forward: true,
        ..FaultPlan::default()
    });
    s.proxy().reset_stats();
    c.get_mailbox(&mbx).await.unwrap();
    let f = c
        .create_folder(&mbx, None, "Found", "IPF.Note")
        .await
        .unwrap();
    assert_eq!(s.proxy().stats().resets, 1);
    s.proxy().set_plan(FaultPlan::default());
    let all = c.list_child_folders(&mbx, None).await.unwrap();
    assert_eq!(all.iter().filter(|x| x.display_name == "Found").count(), 1);
    assert!(all.iter().any(|x| x.id == f.id));
}

#[tokio::test]
async fn https_with_a_trusted_self_signed_certificate() {
    let s = start(Opts {
        tls: true,
        ..Opts::default()
    })
    .await;
    let mut p = s.profile();
    p.ca_certificate = s.server_cert.clone();
    let c = GraphClient::new(p).unwrap();
    let m = c.mailbox_for_user("megan@contoso.test").await.unwrap();
    assert_eq!(m.id, s.mbx());

    // Without the CA the server is not trusted.
    let mut p = s.profile();
    p.max_attempts = 1;
    let e = GraphClient::new(p)
        .unwrap()
        .access_token()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Network { message, .. } if message.to_lowercase().contains("certificate")),
        "{e:?}"
    );
}

#[tokio::test]
async fn redirects_and_archive_moves_are_followed() {
    let s = start(Opts::default()).await;
    let mut p = s.profile();
    // One request at a time, one item per exportItems: deterministic faults.
    p.max_concurrency_per_mailbox = 1;
    p.export_batch_bytes = 1;
    let c = GraphClient::new(p).unwrap();
    let mbx = s.mbx();
    let items = c.list_items(&mbx, "calendar").await.unwrap();

    // 308 on every second request: GETs and POSTs (body re-sent) follow it.
    s.proxy().set_plan(FaultPlan {
        redirect_every: 2,
        ..FaultPlan::default()
    });
    s.proxy().reset_stats();
    let a = c
        .create_folder(&mbx, None, "Alpha", "IPF.Note")
        .await
        .unwrap();
    let b = c
        .create_folder(&mbx, None, "Beta", "IPF.Task")
        .await
        .unwrap();
    assert_eq!(
        (a.display_name.as_str(), b.folder_type.as_str()),
        ("Alpha", "IPF.Task")
    );
    let got = c.get_folder(&mbx, &b.id).await.unwrap();
    assert_eq!(got.display_name, "Beta");
    let ps = s.proxy().stats();
    assert!(ps.redirects >= 2, "{ps:?}");
    assert_eq!(c.stats().redirects, ps.redirects);
    assert_eq!(
        c.find_child_folder(&mbx, None, "alpha")
            .await
            .unwrap()
            .unwrap()
            .id,
        a.id
    );

    // Every second exportItems answer sends its item elsewhere.
    s.proxy().set_plan(FaultPlan {
        archive_moved_every: 2,
        ..FaultPlan::default()
    });
    s.proxy().reset_stats();
    let before = c.stats().redirects;
    let wanted: Vec<(String, u64)> = items
        .iter()
        .map(|i| (i.id.clone(), i.size.unwrap()))
        .collect();
    let out: Vec<_> = c.export_stream(&mbx, wanted).collect().await;
    assert_eq!(out.len(), 6);
    assert!(
        out.iter()
            .all(|o| matches!(o, Ok(ExportOutcome::Ok { .. }))),
        "{out:?}"
    );
    let ps = s.proxy().stats();
    assert_eq!(ps.archive_moved, 5, "{ps:?}");
    assert_eq!(ps.export_batches, vec![1; 11]);
    assert_eq!(c.stats().redirects - before, 5);
}

#[tokio::test]
async fn import_session_renewed_before_expiry() {
    let s = start(Opts {
        import_session_secs: 4,
        seed: vec![],
        ..Opts::default()
    })
    .await;
    let c = s.client();
    let mbx = s.mbx();
    let item = common::demo_item(21, mapi::demo::DemoKind::Mail);
    c.import_item(&mbx, "inbox", &item).await.unwrap();
    c.import_item(&mbx, "inbox", &item).await.unwrap();
    assert_eq!(s.proxy().stats().import_sessions, 1);
    // A 4 s session is renewed a quarter of its life (1 s) before expiry.
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    c.import_item(&mbx, "inbox", &item).await.unwrap();
    let st = s.proxy().stats();
    assert_eq!(st.import_sessions, 2, "{st:?}");
    assert_eq!(st.imports, 3);
    assert_eq!(c.list_items(&mbx, "inbox").await.unwrap().len(), 3);
    // A second mailbox gets its own session.
    c.import_item(&s.alex.id.to_string(), "inbox", &item)
        .await
        .unwrap();
    assert_eq!(s.proxy().stats().import_sessions, 3);
}

#[tokio::test]
async fn at_most_n_requests_per_mailbox_in_flight() {
    let s = start(Opts::default()).await;
    let mbx = s.mbx();
    let ids: Vec<(String, u64)> = s
        .client()
        .list_items(&mbx, "inbox")
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.id, i.size.unwrap()))
        .collect();
    s.proxy().set_plan(FaultPlan {
        delay_ms: 150,
        ..FaultPlan::default()
    });
    for limit in [2usize, 4] {
        let mut p = s.profile();
        p.max_concurrency_per_mailbox = limit;
        p.export_batch_bytes = 1; // one item per request: many requests
        let c = GraphClient::new(p).unwrap();
        c.access_token().await.unwrap();
        s.proxy().reset_stats();
        // Exports and reads of the same mailbox share the limit.
        let reads = futures::future::join_all((0..6).map(|_| c.get_mailbox(&mbx)));
        let exports = c
            .export_stream(&mbx, ids[..12].to_vec())
            .collect::<Vec<_>>();
        let (r, e) = futures::join!(reads, exports);
        assert!(r.iter().all(Result::is_ok));
        assert_eq!(e.len(), 12);
        assert_eq!(s.proxy().stats().max_in_flight, limit as u64);
    }
    // Another mailbox has its own slots.
    let mut p = s.profile();
    p.max_concurrency_per_mailbox = 1;
    let c = GraphClient::new(p).unwrap();
    c.access_token().await.unwrap();
    s.proxy().reset_stats();
    let alex = s.alex.id.to_string();
    let (a, b) = futures::join!(c.get_mailbox(&mbx), c.get_mailbox(&alex));
    a.unwrap();
    b.unwrap();
    assert_eq!(s.proxy().stats().max_in_flight, 2);
}
