//! The read-side handlers: exchange settings, mailbox, folders, items, delta.
//!
//! Every request goes through one entry point ([`dispatch`]) that performs
//! the checks in the order Graph does: the version segment, the bearer token
//! (401), the resource path (404), the method (405), the permission for the
//! operation (403), the mailbox and whether the caller may reach it
//! (404 / 403), and only then the query options and the resource itself.
//! Handlers stay thin: resolve, ask the store, render.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use store::{
    Change, DeltaScope, Folder, Item, ListQuery, Mailbox, MailboxId, MailboxKind, StoreError,
};

use crate::AppState;
use crate::auth::{Operation, Principal};
use crate::delta::{DeltaState, TokenScope, invalid_token, sync_state_gone};
use crate::error::ApiError;
use crate::odata::{
    DEFAULT_PAGE_SIZE, Entity, MAX_TOP, QueryOptions, Shape, form_encode, next_link_query,
};
use crate::path::{Resource, Tail, UserKey, Version, parse_resource, split_version};
use crate::render::{self, Collection, FolderView, Obj};

mod writes;

/// Characters escaped in key segments of `@odata.context` (`'megan%40contoso.com'`).
const KEY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The single entry point behind the router's fallback.
pub async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    match handle(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Everything a handler needs about the request.
struct Ctx<'a> {
    state: &'a AppState,
    version: Version,
    principal: Principal,
    raw_path: String,
    raw_query: Option<String>,
    headers: HeaderMap,
}

async fn handle(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let raw_path = req.uri().path().to_owned();
    if crate::exim::is_import_path(&raw_path) {
        if req.method() != Method::POST {
            return Err(ApiError::method_not_allowed(req.method().as_str(), "POST"));
        }
        let query = req.uri().query().map(str::to_owned);
        let (parts, body) = req.into_parts();
        return crate::exim::import_item(state, &raw_path, query.as_deref(), &parts.headers, body)
            .await;
    }
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let checked = async {
        let (version, rest) = split_version(&raw_path)?;
        let principal = state.authority.authenticate_async(&parts.headers).await?;
        let resource = parse_resource(rest)?;
        let allowed = allowed_methods(&resource);
        if !allowed.contains(&method) {
            let list: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            return Err(ApiError::method_not_allowed(
                method.as_str(),
                &list.join(", "),
            ));
        }
        Ok((version, principal, resource))
    }
    .await;
    let (version, principal, resource) = match checked {
        Ok(c) => c,
        Err(e) => {
            // Refused from the headers alone: see `drain`.
            let limit = crate::exim::largest_import_body(state.exim.settings.max_item_size);
            crate::drain::drain_unread(body, &parts.headers, limit).await;
            return Err(e);
        }
    };
    let ctx = Ctx {
        state,
        version,
        principal,
        raw_path: raw_path.clone(),
        raw_query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
    };
    match resource {
        Resource::ExchangeSettings(user) => ctx.exchange_settings(user).await,
        Resource::Mailbox(key) => ctx.mailbox(&key).await,
        Resource::ExportItems(key) => ctx.export_items(&key, body).await,
        Resource::CreateImportSession(key) => ctx.create_import_session(&key, body).await,
        Resource::Folders {
            mailbox,
            chain,
            tail,
        } if method != Method::GET => ctx.folder_write(&mailbox, chain, tail, method, body).await,
        Resource::Folders {
            mailbox,
            chain,
            tail,
        } => ctx.folders(&mailbox, chain, tail).await,
    }
}

/// The methods each resource answers.
fn allowed_methods(r: &Resource) -> &'static [Method] {
    match r {
        Resource::ExchangeSettings(_) | Resource::Mailbox(_) => &[Method::GET],
        Resource::ExportItems(_) | Resource::CreateImportSession(_) => &[Method::POST],
        Resource::Folders { tail, .. } => match tail {
            Tail::ChildList => &[Method::GET, Method::POST],
            Tail::Folder => &[Method::GET, Method::PATCH, Method::DELETE],
            Tail::FolderRef => &[Method::DELETE],
            Tail::Item(_) => &[Method::GET, Method::DELETE],
            _ => &[Method::GET],
        },
    }
}

fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).expect("response bodies serialize");
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"),
    );
    r
}

/// The `odata.maxpagesize` preference, if sent and usable (1..=MAX_TOP after
/// clamping; preferences that make no sense are ignored, as RFC 7240 asks).
fn max_page_size(headers: &HeaderMap) -> Option<u64> {
    for v in headers.get_all("prefer") {
        let Ok(v) = v.to_str() else { continue };
        for pref in v.split(',') {
            let Some((k, val)) = pref.trim().split_once('=') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("odata.maxpagesize")
                && let Ok(n) = val.trim().trim_matches('"').parse::<u64>()
                && n > 0
            {
                return Some(n.min(MAX_TOP));
            }
        }
    }
    None
}

fn prefer_applied(resp: &mut Response, size: u64) {
    if let Ok(v) = HeaderValue::from_str(&format!("odata.maxpagesize={size}")) {
        resp.headers_mut().insert("preference-applied", v);
    }
}

fn quoted_key(key: &str) -> String {
    utf8_percent_encode(&key.replace('\'', "''"), KEY_ESCAPE).to_string()
}

fn select_suffix(select: Option<&[String]>) -> String {
    match select {
        Some(s) => format!("({})", s.join(",")),
        None => String::new(),
    }
}

/// Folder rows a client never sees: the mailbox root and `msgfolderroot`
/// itself (`/folders` lists the latter's children, so the tree shown starts
/// below it).
fn is_internal_root(f: &Folder) -> bool {
    matches!(
        f.well_known.as_deref(),
        Some("root") | Some("msgfolderroot")
    )
}

impl Ctx<'_> {
    fn base(&self) -> &str {
        self.state.public_base_url.trim_end_matches('/')
    }

    fn metadata(&self) -> String {
        format!("{}/{}/$metadata#", self.base(), self.version.as_str())
    }

    fn self_url(&self) -> String {
        format!("{}{}", self.base(), self.raw_path)
    }

    fn options(&self, entity: Entity, shape: Shape) -> Result<QueryOptions, ApiError> {
        QueryOptions::parse(
            self.raw_query.as_deref(),
            entity,
            shape,
            self.version.is_beta(),
        )
    }

    fn parent_mailbox_url(&self, mbx: &MailboxId) -> Option<String> {
        self.version
            .is_beta()
            .then(|| format!("{}/beta/admin/exchange/mailboxes/{mbx}", self.base()))
    }

    // ---- exchange settings ---------------------------------------------------

    async fn exchange_settings(&self, user: UserKey) -> Result<Response, ApiError> {
        self.principal.require(Operation::ReadExchangeSettings)?;
        let opts = self.options(Entity::ExchangeSettings, Shape::Entity)?;
        let meta = &self.state.meta;
        let is_me = user == UserKey::Me;
        let (key_text, user) = match &user {
            UserKey::Me => {
                let Some(id) = self.principal.user_id() else {
                    return Err(ApiError::bad_request(
                        "/me request is only valid with delegated authentication flow.",
                    ));
                };
                ("me".to_owned(), meta.get_user(id).await)
            }
            UserKey::Key(k) => (
                k.clone(),
                meta.find_user(Some(self.principal.tenant_id), k).await,
            ),
        };
        let user = match user {
            Ok(u) if u.tenant_id == self.principal.tenant_id => u,
            Ok(_) | Err(StoreError::NotFound { .. }) => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "Request_ResourceNotFound",
                    format!(
                        "Resource '{key_text}' does not exist or one of its queried reference-property objects are not present."
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let boxes = meta.user_mailboxes(user.id).await?;
        let primary = boxes.iter().find(|m| m.kind == MailboxKind::Primary);
        let archive = boxes.iter().find(|m| m.kind == MailboxKind::Archive);
        let Some(primary) = primary else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            ));
        };
        let context = if is_me {
            format!("{}me/settings/exchange/$entity", self.metadata())
        } else {
            format!(
                "{}users('{}')/settings/exchange/$entity",
                self.metadata(),
                quoted_key(&key_text)
            )
        };
        let wants = |n: &str| opts.select.as_ref().is_none_or(|s| s.contains(&n));
        let mut o = Obj::new();
        o.put("@odata.context", context);
        o.put("@odata.type", "#microsoft.graph.exchangeSettings");
        if wants("primaryMailboxId") {
            o.put("primaryMailboxId", primary.id.to_string());
        }
        if self.version.is_beta()
            && wants("inPlaceArchiveMailboxId")
            && let Some(a) = archive
        {
            o.put("inPlaceArchiveMailboxId", a.id.to_string());
        }
        Ok(json_response(StatusCode::OK, &o))
    }

    // ---- mailbox -------------------------------------------------------------

    /// Resolves a mailbox key and checks that the caller may reach it.
    async fn resolve_mailbox(&self, key: &str) -> Result<Mailbox, ApiError> {
        let not_found = || {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "ErrorNonExistentMailbox",
                format!(
                    "No mailbox with such guid: '{key}'. Mailbox ids look like MBX:<guid>@<tenant guid>; get them from GET /users/{{id}}/settings/exchange."
                ),
            )
        };
        let id = MailboxId::parse(key).map_err(|_| not_found())?;
        let mbx = match self.state.meta.get_mailbox(&id).await {
            Ok(m) => m,
            Err(StoreError::NotFound { .. }) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        self.principal.require_mailbox(&mbx)?;
        Ok(mbx)
    }

    async fn mailbox(&self, key: &str) -> Result<Response, ApiError> {
        self.principal.require(Operation::ReadMailbox)?;
        let mbx = self.resolve_mailbox(key).await?;
        let opts = self.options(Entity::Mailbox, Shape::Entity)?;
        let wants = |n: &str| opts.select.as_ref().is_none_or(|s| s.contains(&n));
        let mut o = Obj::new();
        o.put(
            "@odata.context",
            format!("{}admin/exchange/mailboxes/$entity", self.metadata()),
        );
        o.put("@odata.type", "#microsoft.graph.mailbox");
        o.put("id", mbx.id.to_string());
        if wants("deletedDateTime") {
            o.put("deletedDateTime", serde_json::Value::Null);
        }
        Ok(json_response(StatusCode::OK, &o))
    }

    // ---- folders and items ---------------------------------------------------

    async fn folders(
        &self,
        mailbox: &str,
        chain: Vec<String>,
        tail: Tail,
    ) -> Result<Response, ApiError> {
        let op = match tail {
            Tail::Folder | Tail::ChildList | Tail::ChildCount | Tail::ChildDelta => {
                Operation::ReadFolders
            }
            Tail::ItemList | Tail::ItemCount | Tail::ItemDelta | Tail::Item(_) => {
                Operation::ReadItems
            }
            Tail::FolderRef => Operation::WriteFolders,
        };
        self.principal.require(op)?;
        let mbx = self.resolve_mailbox(mailbox).await?;
        // Resolve the chain: the first folder by id or well-known name, every
        // further one must be a child of the one before.
        let mut folder: Option<Folder> = None;
        for key in &chain {
            let f = self.state.meta.resolve_folder(&mbx.id, key).await?;
            if let Some(parent) = &folder
                && f.parent_id.as_deref() != Some(parent.id.as_str())
            {
                return Err(ApiError::item_not_found());
            }
            folder = Some(f);
        }
        // Context path: admin/exchange/mailboxes/{mbx}/folders('a')/childFolders('b')
        let mut ctx_path = format!("admin/exchange/mailboxes/{}", mbx.id);
        for (i, key) in chain.iter().enumerate() {
            let nav = if i == 0 { "folders" } else { "childFolders" };
            ctx_path.push_str(&format!("/{nav}('{}')", quoted_key(key)));
        }
        match tail {
            Tail::Folder => {
                let f = folder.expect("a folder tail has a chain");
                let nav = if chain.len() == 1 {
                    format!("admin/exchange/mailboxes/{}/folders", mbx.id)
                } else {
                    let parent_path = ctx_path
                        .rsplit_once('/')
                        .map_or(ctx_path.clone(), |(a, _)| a.to_owned());
                    format!("{parent_path}/childFolders")
                };
                self.get_folder(&mbx, &f, &nav).await
            }
            Tail::ChildList | Tail::ChildCount => {
                let parent = match folder {
                    Some(f) => f,
                    None => {
                        self.state
                            .meta
                            .resolve_folder(&mbx.id, "msgfolderroot")
                            .await?
                    }
                };
                let nav = if chain.is_empty() {
                    format!("{ctx_path}/folders")
                } else {
                    format!("{ctx_path}/childFolders")
                };
                if tail == Tail::ChildCount {
                    self.count_folders(&mbx, &parent).await
                } else {
                    self.list_folders(&mbx, &parent, &nav).await
                }
            }
            Tail::ChildDelta => {
                let scope = match &folder {
                    Some(f) => TokenScope::ChildFolders(f.id.clone()),
                    None => TokenScope::Folders,
                };
                self.delta(&mbx, scope).await
            }
            Tail::ItemList | Tail::ItemCount => {
                let f = folder.expect("an item tail has a chain");
                if tail == Tail::ItemCount {
                    self.count_items(&mbx, &f).await
                } else {
                    self.list_items(&mbx, &f, &format!("{ctx_path}/items"))
                        .await
                }
            }
            Tail::ItemDelta => {
                let f = folder.expect("an item tail has a chain");
                self.delta(&mbx, TokenScope::Items(f.id)).await
            }
            Tail::Item(id) => {
                let f = folder.expect("an item tail has a chain");
                self.get_item(&mbx, &f, &id, &format!("{ctx_path}/items"))
                    .await
            }
            Tail::FolderRef => Err(ApiError::method_not_allowed("GET", "DELETE")),
        }
    }

    fn folder_view<'a>(
        &self,
        opts: &'a QueryOptions,
        url: Option<&'a str>,
        select: Option<&'a [String]>,
    ) -> FolderView<'a> {
        FolderView {
            select,
            parent_mailbox_url: url,
            show_hidden: opts.include_hidden,
            expand: Some(&opts.expand),
        }
    }

    async fn get_folder(&self, mbx: &Mailbox, f: &Folder, nav: &str) -> Result<Response, ApiError> {
        let opts = self.options(Entity::Folder, Shape::Entity)?;
        let select = owned_select(&opts);
        let url = self.parent_mailbox_url(&mbx.id);
        let mut o = Obj::new();
        o.put(
            "@odata.context",
            format!(
                "{}{nav}{}/$entity",
                self.metadata(),
                select_suffix(select.as_deref())
            ),
        );
        let body = render::folder(
            f,
            &self.folder_view(&opts, url.as_deref(), select.as_deref()),
        );
        o.0.extend(body.0);
        Ok(json_response(StatusCode::OK, &o))
    }

    fn page_size(&self, opts: &QueryOptions) -> (u64, bool) {
        match (opts.top, max_page_size(&self.headers)) {
            (Some(top), _) => (top, false),
            (None, Some(m)) => (m, true),
            (None, None) => (DEFAULT_PAGE_SIZE, false),
        }
    }

    fn list_query(&self, opts: &QueryOptions, page: u64) -> ListQuery {
        ListQuery {
            filter: opts.filter.clone(),
            order_by: opts.order_by.clone(),
            skip: opts.skip,
            // One more than the page tells whether a next page exists.
            top: page + 1,
            count: opts.count,
            include_hidden: opts.include_hidden,
        }
    }

    fn next_link(&self, opts: &QueryOptions, page: u64) -> String {
        format!(
            "{}?{}",
            self.self_url(),
            next_link_query(&opts.raw, opts.skip + page)
        )
    }

    async fn list_folders(
        &self,
        mbx: &Mailbox,
        parent: &Folder,
        nav: &str,
    ) -> Result<Response, ApiError> {
        let opts = self.options(Entity::Folder, Shape::List)?;
        let (page, applied) = self.page_size(&opts);
        let mut result = self
            .state
            .meta
            .list_folders(&mbx.id, &parent.id, &self.list_query(&opts, page))
            .await?;
        let more = result.items.len() as u64 > page;
        result.items.truncate(page as usize);
        let select = owned_select(&opts);
        let url = self.parent_mailbox_url(&mbx.id);
        let view = self.folder_view(&opts, url.as_deref(), select.as_deref());
        let body = Collection {
            context: format!(
                "{}{nav}{}",
                self.metadata(),
                select_suffix(select.as_deref())
            ),
            count: result.total.filter(|_| opts.count),
            value: result
                .items
                .iter()
                .map(|f| render::folder(f, &view))
                .collect(),
            next_link: more.then(|| self.next_link(&opts, page)),
            delta_link: None,
        };
        let mut resp = json_response(StatusCode::OK, &body);
        if applied {
            prefer_applied(&mut resp, page);
        }
        Ok(resp)
    }

    async fn count_folders(&self, mbx: &Mailbox, parent: &Folder) -> Result<Response, ApiError> {
        let opts = self.options(Entity::Folder, Shape::Count)?;
        let q = ListQuery {
            top: 0,
            count: true,
            ..self.list_query(&opts, 0)
        };
        let page = self
            .state
            .meta
            .list_folders(&mbx.id, &parent.id, &q)
            .await?;
        Ok(count_response(page.total.unwrap_or(0)))
    }

    async fn list_items(
        &self,
        mbx: &Mailbox,
        folder: &Folder,
        nav: &str,
    ) -> Result<Response, ApiError> {
        let opts = self.options(Entity::Item, Shape::List)?;
        let (page, applied) = self.page_size(&opts);
        let mut result = self
            .state
            .meta
            .list_items(&mbx.id, &folder.id, &self.list_query(&opts, page))
            .await?;
        let more = result.items.len() as u64 > page;
        result.items.truncate(page as usize);
        self.expand_from_content(&mut result.items, &opts.expand)
            .await?;
        let select = owned_select(&opts);
        let body = Collection {
            context: format!(
                "{}{nav}{}",
                self.metadata(),
                select_suffix(select.as_deref())
            ),
            count: result.total.filter(|_| opts.count),
            value: result
                .items
                .iter()
                .map(|i| render::item(i, select.as_deref(), Some(&opts.expand)))
                .collect(),
            next_link: more.then(|| self.next_link(&opts, page)),
            delta_link: None,
        };
        let mut resp = json_response(StatusCode::OK, &body);
        if applied {
            prefer_applied(&mut resp, page);
        }
        Ok(resp)
    }

    /// Fills `ext_props` of items from their content when `$expand` asks for
    /// extended properties (the FTS is their source of truth; the meta store
    /// does not index them).
    async fn expand_from_content(
        &self,
        items: &mut [Item],
        expand: &crate::odata::Expand,
    ) -> Result<(), ApiError> {
        if expand.single.is_none() && expand.multi.is_none() {
            return Ok(());
        }
        for item in items.iter_mut() {
            let bytes = self.state.content(&item.blob).await?;
            let decoded = fts::decode(&bytes).map_err(|e| {
                ApiError::internal(format!(
                    "stored content of item {} is unreadable: {e}",
                    item.id
                ))
            })?;
            item.ext_props = match decoded.root.message_content() {
                Some(content) => crate::ingest::extended_properties(content),
                None => Vec::new(),
            };
        }
        Ok(())
    }

    async fn count_items(&self, mbx: &Mailbox, folder: &Folder) -> Result<Response, ApiError> {
        let opts = self.options(Entity::Item, Shape::Count)?;
        let q = ListQuery {
            top: 0,
            count: true,
            ..self.list_query(&opts, 0)
        };
        let page = self.state.meta.list_items(&mbx.id, &folder.id, &q).await?;
        Ok(count_response(page.total.unwrap_or(0)))
    }

    async fn get_item(
        &self,
        mbx: &Mailbox,
        folder: &Folder,
        id: &str,
        nav: &str,
    ) -> Result<Response, ApiError> {
        let opts = self.options(Entity::Item, Shape::Entity)?;
        let item = self.state.meta.get_item(&mbx.id, id).await?;
        if item.folder_id != folder.id {
            return Err(ApiError::item_not_found());
        }
        let mut item = [item];
        self.expand_from_content(&mut item, &opts.expand).await?;
        let [item] = item;
        let select = owned_select(&opts);
        let mut o = Obj::new();
        o.put(
            "@odata.context",
            format!(
                "{}{nav}{}/$entity",
                self.metadata(),
                select_suffix(select.as_deref())
            ),
        );
        o.0.extend(render::item(&item, select.as_deref(), Some(&opts.expand)).0);
        Ok(json_response(StatusCode::OK, &o))
    }

    // ---- delta ---------------------------------------------------------------

    async fn delta(&self, mbx: &Mailbox, scope: TokenScope) -> Result<Response, ApiError> {
        let entity = match scope {
            TokenScope::Items(_) => Entity::Item,
            _ => Entity::Folder,
        };
        let opts = self.options(entity, Shape::Delta)?;
        let codec = &self.state.delta;
        let token = opts.skiptoken.as_deref().or(opts.deltatoken.as_deref());
        let prefer = max_page_size(&self.headers);
        let mut state = match token {
            Some(t) => {
                let extra = opts.raw.iter().find(|(k, _)| {
                    !k.eq_ignore_ascii_case("$skiptoken")
                        && !k.eq_ignore_ascii_case("$deltatoken")
                        && k.starts_with('$')
                });
                if let Some((k, _)) = extra {
                    return Err(ApiError::bad_request(format!(
                        "'{k}' can only be given on the first delta request; later requests carry it inside the token."
                    )));
                }
                let s = codec.decode(t)?;
                if s.mbx != mbx.id.to_string() || s.scope != scope {
                    return Err(invalid_token("it was issued for another mailbox or folder"));
                }
                s
            }
            None => DeltaState {
                mbx: mbx.id.to_string(),
                scope: scope.clone(),
                since: 0,
                after: 0,
                high_water: 0,
                select: opts
                    .select
                    .as_ref()
                    .map(|s| s.iter().map(|p| p.to_string()).collect()),
                page: opts.top.or(prefer).unwrap_or(DEFAULT_PAGE_SIZE),
                hidden: opts.include_hidden,
            },
        };
        // The Prefer header may change the page size on any request.
        let applied = opts.top.is_none() && prefer.is_some();
        if let Some(p) = prefer.filter(|_| opts.top.is_none()) {
            state.page = p;
        }
        let limit = state.page.clamp(1, MAX_TOP) as usize;
        let meta = &self.state.meta;
        let select = state.select.clone();
        let url = self.parent_mailbox_url(&mbx.id);
        let (values, last_cn, more, high_water, horizon, odata_type) = match &scope {
            TokenScope::Items(fid) => {
                let page = meta
                    .item_delta(&mbx.id, fid, state.since, state.after, limit)
                    .await?;
                let values = page
                    .changes
                    .iter()
                    .map(|c| match c {
                        Change::Upsert(i) => render::item(i, select.as_deref(), None),
                        Change::Removed { id, .. } => {
                            render::removed("#microsoft.graph.mailboxItem", id)
                        }
                    })
                    .collect::<Vec<_>>();
                (
                    values,
                    page.last_cn,
                    page.more,
                    page.high_water,
                    page.horizon,
                    "mailboxItem",
                )
            }
            TokenScope::Folders | TokenScope::ChildFolders(_) => {
                let ds = match &scope {
                    TokenScope::ChildFolders(id) => DeltaScope::ChildrenOf(id.clone()),
                    _ => DeltaScope::AllFolders,
                };
                let page = meta
                    .folder_delta(&mbx.id, ds, state.since, state.after, limit)
                    .await?;
                let view = FolderView {
                    select: select.as_deref(),
                    parent_mailbox_url: url.as_deref(),
                    show_hidden: false,
                    expand: None,
                };
                let values = page
                    .changes
                    .iter()
                    .filter_map(|c| match c {
                        Change::Upsert(f) if is_internal_root(f) || (f.hidden && !state.hidden) => {
                            None
                        }
                        Change::Upsert(f) => Some(render::folder(f, &view)),
                        Change::Removed { id, .. } => {
                            Some(render::removed("#microsoft.graph.mailboxFolder", id))
                        }
                    })
                    .collect::<Vec<_>>();
                (
                    values,
                    page.last_cn,
                    page.more,
                    page.high_water,
                    page.horizon,
                    "mailboxFolder",
                )
            }
        };
        if state.since > 0 && state.since < horizon {
            return Err(sync_state_gone(&self.fresh_delta_url(&state)));
        }
        let (next_link, delta_link) = if more {
            let next = DeltaState {
                after: last_cn,
                high_water,
                ..state.clone()
            };
            (
                Some(format!(
                    "{}?$skiptoken={}",
                    self.self_url(),
                    codec.encode(&next)
                )),
                None,
            )
        } else {
            let next = DeltaState {
                since: high_water,
                after: 0,
                high_water,
                ..state.clone()
            };
            (
                None,
                Some(format!(
                    "{}?$deltatoken={}",
                    self.self_url(),
                    codec.encode(&next)
                )),
            )
        };
        let body = Collection {
            context: format!("{}Collection({odata_type})", self.metadata()),
            count: None,
            value: values,
            next_link,
            delta_link,
        };
        let mut resp = json_response(StatusCode::OK, &body);
        if applied {
            prefer_applied(&mut resp, limit as u64);
        }
        Ok(resp)
    }

    /// A fresh initial delta request with the options of the original one.
    fn fresh_delta_url(&self, state: &DeltaState) -> String {
        let mut raw = Vec::new();
        if let Some(s) = &state.select {
            raw.push(("$select".to_owned(), s.join(",")));
        }
        if state.hidden {
            raw.push(("includeHiddenFolders".to_owned(), "true".to_owned()));
        }
        if raw.is_empty() {
            return self.self_url();
        }
        let q: Vec<String> = raw
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect();
        format!("{}?{}", self.self_url(), q.join("&"))
    }
}

fn owned_select(opts: &QueryOptions) -> Option<Vec<String>> {
    opts.select
        .as_ref()
        .map(|s| s.iter().map(|p| p.to_string()).collect())
}

fn count_response(n: u64) -> Response {
    let mut r = Response::new(Body::from(n.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
