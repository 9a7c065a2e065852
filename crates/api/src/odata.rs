//! OData query options as Graph's mailbox endpoints take them.
//!
//! The SDKs build query strings themselves (`%24filter=…&%24top=…`), hand-
//! written clients use `$Top=999` or `$deltaToken`, and real Exchange is
//! forgiving about case; so option names and property names are matched
//! case-insensitively, while anything graphbox cannot honour exactly is
//! refused with a 400 that names the problem (and, for `$filter`, the
//! position) instead of being silently ignored: a backup tool that believes
//! its filter was applied when it was not would lose data.
//!
//! `$filter` is a recursive-descent parser over a small lexer. Precedence is
//! `not` > `and` > `or`, with parentheses; operands are one property (from the
//! entity's documented property table) compared with one literal (strings
//! with `''` escapes, integers, booleans, `null`, dates and date-times), plus
//! the `categories/any(c:c eq '…')` lambda on items. The result is the
//! backend-neutral [`store::Filter`], type-checked here so the store never
//! sees a string compared with a number. A bare boolean property (`isHidden`)
//! is read as `isHidden eq true`, and `not` binds to the comparison after it
//! (`not type eq 'x'` is `not (type eq 'x')`), which is what people mean.
//!
//! Positions in error messages are 0-based character offsets into the
//! decoded `$filter` value.

use std::fmt::Write as _;

use mapi::extprop::ExtPropId;
use percent_encoding::percent_decode_str;
use store::{CmpOp, Field, Filter, Literal};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::error::ApiError;

/// Largest accepted `$top` (and `Prefer: odata.maxpagesize`).
pub const MAX_TOP: u64 = 1000;
/// Page size when neither `$top` nor `odata.maxpagesize` is given (Graph's
/// Outlook default, visible in the docs' `%24skip=10` links).
pub const DEFAULT_PAGE_SIZE: u64 = 10;
/// Deepest accepted nesting of parentheses / `not` in `$filter`.
pub const MAX_FILTER_DEPTH: usize = 64;

/// Which entity a query addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entity {
    /// `microsoft.graph.mailboxFolder`.
    Folder,
    /// `microsoft.graph.mailboxItem`.
    Item,
    /// `microsoft.graph.exchangeSettings`.
    ExchangeSettings,
    /// `microsoft.graph.mailbox`.
    Mailbox,
}

impl Entity {
    /// The OData type name.
    pub fn type_name(self) -> &'static str {
        match self {
            Entity::Folder => "microsoft.graph.mailboxFolder",
            Entity::Item => "microsoft.graph.mailboxItem",
            Entity::ExchangeSettings => "microsoft.graph.exchangeSettings",
            Entity::Mailbox => "microsoft.graph.mailbox",
        }
    }

    /// The entity's properties (Graph names, in the order Graph renders them).
    pub fn properties(self, beta: bool) -> &'static [Prop] {
        match (self, beta) {
            (Entity::Folder, true) => FOLDER_PROPS_BETA,
            (Entity::Folder, false) => FOLDER_PROPS,
            (Entity::Item, _) => ITEM_PROPS,
            (Entity::ExchangeSettings, true) => SETTINGS_PROPS_BETA,
            (Entity::ExchangeSettings, false) => SETTINGS_PROPS,
            (Entity::Mailbox, _) => MAILBOX_PROPS,
        }
    }

    fn find(self, beta: bool, name: &str) -> Option<&'static Prop> {
        self.properties(beta)
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    fn unknown_property(self, name: &str) -> ApiError {
        ApiError::bad_request(format!(
            "Could not find a property named '{name}' on type '{}'.",
            self.type_name()
        ))
    }
}

/// The value kind of a property, for `$filter` type checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Edm.String, never null.
    Str,
    /// Edm.String, may be null.
    NullableStr,
    /// Edm.Int32 / Edm.Int64.
    Int,
    /// Edm.Boolean.
    Bool,
    /// Edm.DateTimeOffset.
    DateTime,
    /// Collection(Edm.String): only through `any`.
    Strings,
}

impl Kind {
    fn edm(self) -> &'static str {
        match self {
            Kind::Str | Kind::NullableStr => "Edm.String",
            Kind::Int => "Edm.Int64",
            Kind::Bool => "Edm.Boolean",
            Kind::DateTime => "Edm.DateTimeOffset",
            Kind::Strings => "Collection(Edm.String)",
        }
    }
}

/// One property of an entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prop {
    /// Graph's camelCase name.
    pub name: &'static str,
    /// The store field for `$filter`/`$orderby`, when the property has one.
    pub field: Option<Field>,
    /// Value kind.
    pub kind: Kind,
}

const fn p(name: &'static str, field: Option<Field>, kind: Kind) -> Prop {
    Prop { name, field, kind }
}

const FOLDER_PROPS: &[Prop] = &[
    p("id", Some(Field::Id), Kind::Str),
    p("displayName", Some(Field::DisplayName), Kind::Str),
    p(
        "parentFolderId",
        Some(Field::ParentFolderId),
        Kind::NullableStr,
    ),
    p("childFolderCount", Some(Field::ChildFolderCount), Kind::Int),
    p("totalItemCount", Some(Field::TotalItemCount), Kind::Int),
    p(
        "wellKnownName",
        Some(Field::WellKnownName),
        Kind::NullableStr,
    ),
    p("type", Some(Field::Type), Kind::Str),
    p("isHidden", Some(Field::IsHidden), Kind::Bool),
];
const FOLDER_PROPS_BETA: &[Prop] = &[
    p("id", Some(Field::Id), Kind::Str),
    p("displayName", Some(Field::DisplayName), Kind::Str),
    p(
        "parentFolderId",
        Some(Field::ParentFolderId),
        Kind::NullableStr,
    ),
    p("parentMailboxUrl", None, Kind::Str),
    p("childFolderCount", Some(Field::ChildFolderCount), Kind::Int),
    p("totalItemCount", Some(Field::TotalItemCount), Kind::Int),
    p(
        "wellKnownName",
        Some(Field::WellKnownName),
        Kind::NullableStr,
    ),
    p("type", Some(Field::Type), Kind::Str),
    p("isHidden", Some(Field::IsHidden), Kind::Bool),
];
const ITEM_PROPS: &[Prop] = &[
    p("id", Some(Field::Id), Kind::Str),
    p(
        "createdDateTime",
        Some(Field::CreatedDateTime),
        Kind::DateTime,
    ),
    p(
        "lastModifiedDateTime",
        Some(Field::LastModifiedDateTime),
        Kind::DateTime,
    ),
    p("changeKey", Some(Field::ChangeKey), Kind::Str),
    p("categories", None, Kind::Strings),
    p("type", Some(Field::Type), Kind::Str),
    p("size", Some(Field::Size), Kind::Int),
];
const SETTINGS_PROPS: &[Prop] = &[p("primaryMailboxId", None, Kind::Str)];
const SETTINGS_PROPS_BETA: &[Prop] = &[
    p("primaryMailboxId", None, Kind::Str),
    p("inPlaceArchiveMailboxId", None, Kind::NullableStr),
];
const MAILBOX_PROPS: &[Prop] = &[
    p("id", None, Kind::Str),
    p("deletedDateTime", None, Kind::DateTime),
];

/// Which options an endpoint takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A collection: every option.
    List,
    /// A `/$count` segment: `$filter` and `includeHiddenFolders`.
    Count,
    /// One entity: `$select`, `$expand`.
    Entity,
    /// A delta function: `$select`, `$top`, `$skiptoken`, `$deltatoken`,
    /// `includeHiddenFolders` (folders).
    Delta,
}

/// Which extended properties `$expand` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtSelection {
    /// Every one of that kind.
    All,
    /// Those whose id equals one of these.
    Ids(Vec<ExtPropId>),
}

impl ExtSelection {
    /// Whether a stored id (canonical Graph form) is selected.
    pub fn selects(&self, id: &str) -> bool {
        match self {
            ExtSelection::All => true,
            ExtSelection::Ids(ids) => match ExtPropId::parse(id) {
                Ok(parsed) => ids.contains(&parsed),
                Err(_) => false,
            },
        }
    }
}

/// `$expand`: the two extended-property navigations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expand {
    /// `singleValueExtendedProperties`.
    pub single: Option<ExtSelection>,
    /// `multiValueExtendedProperties`.
    pub multi: Option<ExtSelection>,
}

/// The parsed query options of one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryOptions {
    /// Every option as received (name as given, value decoded), in order; the
    /// source for `@odata.nextLink`.
    pub raw: Vec<(String, String)>,
    /// `$filter`.
    pub filter: Option<Filter>,
    /// `$select`: canonical property names, `None` when absent or `*`.
    pub select: Option<Vec<&'static str>>,
    /// `$orderby`: `(field, descending)`.
    pub order_by: Vec<(Field, bool)>,
    /// `$top`.
    pub top: Option<u64>,
    /// `$skip`.
    pub skip: u64,
    /// `$count=true`.
    pub count: bool,
    /// `$expand`.
    pub expand: Expand,
    /// `includeHiddenFolders=true`.
    pub include_hidden: bool,
    /// `$skiptoken`.
    pub skiptoken: Option<String>,
    /// `$deltatoken`.
    pub deltatoken: Option<String>,
}

/// Splits and form-decodes a raw query string (`+` is a space).
pub fn decode_query(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    let Some(raw) = raw else { return Ok(out) };
    for part in raw.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((form_decode(k)?, form_decode(v)?));
    }
    Ok(out)
}

fn form_decode(s: &str) -> Result<String, ApiError> {
    let plus = s.replace('+', " ");
    percent_decode_str(&plus)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| ApiError::bad_request("The query string is not valid percent-encoded UTF-8."))
}

/// Form-encodes a query component the way Graph writes its nextLinks:
/// unreserved characters as-is, spaces as `+`, everything else `%xx` with
/// lower-case hex (`%24skip`, `%2c`).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02x}");
            }
        }
    }
    out
}

/// The query string of a next page: every original option re-encoded (names
/// of `$` options in their lower-case canonical form), any old `$skip`
/// dropped, and `%24skip={skip}` appended.
pub fn next_link_query(raw: &[(String, String)], skip: u64) -> String {
    let mut parts = Vec::new();
    for (k, v) in raw {
        if k.eq_ignore_ascii_case("$skip") {
            continue;
        }
        let name = if k.starts_with('$') {
            form_encode(&k.to_ascii_lowercase())
        } else {
            form_encode(k)
        };
        parts.push(format!("{name}={}", form_encode(v)));
    }
    parts.push(format!("%24skip={skip}"));
    parts.join("&")
}

const KNOWN: &[&str] = &[
    "$filter",
    "$select",
    "$orderby",
    "$top",
    "$skip",
    "$count",
    "$expand",
    "$skiptoken",
    "$deltatoken",
    "includehiddenfolders",
];

fn allowed(shape: Shape, entity: Entity, name: &str) -> bool {
    let folders = entity == Entity::Folder;
    match shape {
        Shape::List => {
            name != "$skiptoken"
                && name != "$deltatoken"
                && (folders || name != "includehiddenfolders")
        }
        Shape::Count => name == "$filter" || (folders && name == "includehiddenfolders"),
        Shape::Entity => name == "$select" || name == "$expand",
        Shape::Delta => {
            matches!(name, "$select" | "$top" | "$skiptoken" | "$deltatoken")
                || (folders && name == "includehiddenfolders")
        }
    }
}

impl QueryOptions {
    /// Parses the options of a request to an endpoint of `shape` over
    /// `entity`. `beta` selects the beta property table.
    pub fn parse(
        raw_query: Option<&str>,
        entity: Entity,
        shape: Shape,
        beta: bool,
    ) -> Result<QueryOptions, ApiError> {
        let raw = decode_query(raw_query)?;
        let mut q = QueryOptions::default();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in &raw {
            let lname = name.to_ascii_lowercase();
            if !KNOWN.contains(&lname.as_str()) {
                if lname.starts_with('$') {
                    return Err(ApiError::bad_request(format!(
                        "The query parameter '{name}' is not supported on this request."
                    )));
                }
                // Custom query options are allowed by OData and ignored.
                continue;
            }
            if seen.contains(&lname) {
                return Err(ApiError::bad_request(format!(
                    "Query option '{name}' was specified more than once, but it must be specified at most once."
                )));
            }
            seen.push(lname.clone());
            if !allowed(shape, entity, &lname) {
                return Err(ApiError::bad_request(format!(
                    "The query parameter '{name}' is not supported on this request."
                )));
            }
            match lname.as_str() {
                "$filter" => q.filter = Some(parse_filter(value, entity, beta)?),
                "$select" => q.select = parse_select(value, entity, beta)?,
                "$orderby" => q.order_by = parse_orderby(value, entity, beta)?,
                "$top" => q.top = Some(parse_top(value)?),
                "$skip" => q.skip = parse_u64(name, value)?,
                "$count" => q.count = parse_bool(name, value)?,
                "$expand" => q.expand = parse_expand(value, entity)?,
                "$skiptoken" => q.skiptoken = Some(value.clone()),
                "$deltatoken" => q.deltatoken = Some(value.clone()),
                "includehiddenfolders" => q.include_hidden = parse_bool(name, value)?,
                _ => unreachable!("KNOWN lists every handled option"),
            }
        }
        if q.skiptoken.is_some() && q.deltatoken.is_some() {
            return Err(ApiError::bad_request(
                "Give either $skiptoken or $deltatoken, not both.",
            ));
        }
        q.raw = raw;
        Ok(q)
    }
}

fn parse_u64(name: &str, value: &str) -> Result<u64, ApiError> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "Invalid value '{value}' for query option '{name}': expected a non-negative integer."
        )));
    }
    v.parse::<u64>()
        .ok()
        .filter(|n| *n <= i64::MAX as u64)
        .ok_or_else(|| ApiError::bad_request(format!("The value of '{name}' is too large.")))
}

fn parse_top(value: &str) -> Result<u64, ApiError> {
    let n = parse_u64("$top", value)?;
    if !(1..=MAX_TOP).contains(&n) {
        return Err(ApiError::bad_request(format!(
            "Invalid value '{value}' for query option '$top': it must be between 1 and {MAX_TOP}."
        )));
    }
    Ok(n)
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid value '{value}' for query option '{name}': expected true or false."
        )))
    }
}

/// `$select`: a comma list of properties; `*` means all. `None` = all.
pub fn parse_select(
    value: &str,
    entity: Entity,
    beta: bool,
) -> Result<Option<Vec<&'static str>>, ApiError> {
    let mut out = Vec::new();
    for part in value.split(',') {
        let name = part.trim();
        if name.is_empty() {
            return Err(ApiError::bad_request(
                "Invalid $select: empty property name. Give a comma-separated list of properties.",
            ));
        }
        if name == "*" {
            return Ok(None);
        }
        let prop = entity
            .find(beta, name)
            .ok_or_else(|| entity.unknown_property(name))?;
        if !out.contains(&prop.name) {
            out.push(prop.name);
        }
    }
    Ok(Some(out))
}

fn parse_orderby(value: &str, entity: Entity, beta: bool) -> Result<Vec<(Field, bool)>, ApiError> {
    let mut out = Vec::new();
    for part in value.split(',') {
        let mut words = part.split_whitespace();
        let Some(name) = words.next() else {
            return Err(ApiError::bad_request(
                "Invalid $orderby: empty clause. Use 'property [asc|desc]' separated by commas.",
            ));
        };
        let prop = entity
            .find(beta, name)
            .ok_or_else(|| entity.unknown_property(name))?;
        let field = prop.field.ok_or_else(|| {
            ApiError::bad_request(format!(
                "The property '{}' cannot be used in $orderby.",
                prop.name
            ))
        })?;
        let desc = match words.next() {
            None => false,
            Some(d) if d.eq_ignore_ascii_case("asc") => false,
            Some(d) if d.eq_ignore_ascii_case("desc") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid $orderby direction '{other}' for '{}': use asc or desc.",
                    prop.name
                )));
            }
        };
        if let Some(extra) = words.next() {
            return Err(ApiError::bad_request(format!(
                "Invalid $orderby: unexpected '{extra}' after '{}'. Separate clauses with commas.",
                prop.name
            )));
        }
        out.push((field, desc));
    }
    Ok(out)
}

/// `$expand=singleValueExtendedProperties($filter=id eq '…')` and the
/// multi-value form, comma separated.
fn parse_expand(value: &str, entity: Entity) -> Result<Expand, ApiError> {
    if !matches!(entity, Entity::Folder | Entity::Item) {
        return Err(ApiError::bad_request(
            "$expand is not supported on this resource.",
        ));
    }
    let mut out = Expand::default();
    for clause in split_top_level(value)? {
        let clause = clause.trim();
        let (name, inner) = match clause.find('(') {
            Some(i) => {
                let Some(inner) = clause[i + 1..].strip_suffix(')') else {
                    return Err(ApiError::bad_request(format!(
                        "Invalid $expand clause '{clause}': missing ')'."
                    )));
                };
                (clause[..i].trim(), Some(inner.trim()))
            }
            None => (clause, None),
        };
        let selection = match inner {
            None | Some("") => ExtSelection::All,
            Some(inner) => {
                let (opt, expr) = inner.split_once('=').ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Invalid $expand options '{inner}': only '$filter=id eq '…'' is supported."
                    ))
                })?;
                if !opt.trim().eq_ignore_ascii_case("$filter") {
                    return Err(ApiError::bad_request(format!(
                        "The query option '{}' is not supported inside $expand; only $filter is.",
                        opt.trim()
                    )));
                }
                ExtSelection::Ids(parse_id_filter(expr)?)
            }
        };
        let slot = if name.eq_ignore_ascii_case("singleValueExtendedProperties") {
            &mut out.single
        } else if name.eq_ignore_ascii_case("multiValueExtendedProperties") {
            &mut out.multi
        } else {
            return Err(ApiError::bad_request(format!(
                "Could not find a navigation property named '{name}' on type '{}'; $expand supports singleValueExtendedProperties and multiValueExtendedProperties.",
                entity.type_name()
            )));
        };
        if slot.is_some() {
            return Err(ApiError::bad_request(format!(
                "'{name}' is expanded more than once."
            )));
        }
        *slot = Some(selection);
    }
    Ok(out)
}

fn split_top_level(value: &str) -> Result<Vec<&str>, ApiError> {
    let mut out = Vec::new();
    let (mut depth, mut start, mut in_str) = (0i32, 0usize, false);
    for (i, c) in value.char_indices() {
        match c {
            '\'' => in_str = !in_str,
            '(' if !in_str => depth += 1,
            ')' if !in_str => {
                depth -= 1;
                if depth < 0 {
                    return Err(ApiError::bad_request("Invalid $expand: unbalanced ')'."));
                }
            }
            ',' if !in_str && depth == 0 => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 || in_str {
        return Err(ApiError::bad_request(
            "Invalid $expand: unbalanced parentheses or quotes.",
        ));
    }
    out.push(&value[start..]);
    if out.iter().any(|c| c.trim().is_empty()) {
        return Err(ApiError::bad_request("Invalid $expand: empty clause."));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// $filter: lexer
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    /// A number, date or date-time: classified when used.
    Lit(String),
    LParen,
    RParen,
    Slash,
    Colon,
    Comma,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    pos: usize,
}

fn syntax(input: &str, pos: usize, what: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid filter clause: syntax error at position {pos} in '{input}': {what}."
    ))
}

fn lex(input: &str) -> Result<Vec<Token>, ApiError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token {
                    tok: Tok::LParen,
                    pos,
                });
                i += 1;
            }
            ')' => {
                out.push(Token {
                    tok: Tok::RParen,
                    pos,
                });
                i += 1;
            }
            '/' => {
                out.push(Token {
                    tok: Tok::Slash,
                    pos,
                });
                i += 1;
            }
            ':' => {
                out.push(Token {
                    tok: Tok::Colon,
                    pos,
                });
                i += 1;
            }
            ',' => {
                out.push(Token {
                    tok: Tok::Comma,
                    pos,
                });
                i += 1;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(syntax(input, pos, "unterminated string literal")),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            s.push(c);
                            i += 1;
                        }
                    }
                }
                out.push(Token {
                    tok: Tok::Str(s),
                    pos,
                });
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let mut s = String::from(c);
                i += 1;
                while let Some(&d) = chars.get(i) {
                    if d.is_ascii_alphanumeric() || matches!(d, ':' | '.' | '+' | '-') {
                        s.push(d);
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push(Token {
                    tok: Tok::Lit(s),
                    pos,
                });
            }
            c if c.is_alphabetic() || c == '_' || c == '$' => {
                let mut s = String::new();
                while let Some(&d) = chars.get(i) {
                    if d.is_alphanumeric() || d == '_' || d == '.' || d == '$' {
                        s.push(d);
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push(Token {
                    tok: Tok::Ident(s),
                    pos,
                });
            }
            other => {
                return Err(syntax(
                    input,
                    pos,
                    &format!("unexpected character '{other}'"),
                ));
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// $filter: parser
// ---------------------------------------------------------------------------

struct Parser<'a> {
    input: &'a str,
    toks: Vec<Token>,
    i: usize,
    entity: Entity,
    beta: bool,
    depth: usize,
}

enum Operand {
    Prop(&'static Prop, usize),
    Lit(Literal, String, usize),
}

fn is_kw(t: &Tok, kw: &str) -> bool {
    matches!(t, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
}

fn cmp_op(t: &Tok) -> Option<CmpOp> {
    let Tok::Ident(s) = t else { return None };
    Some(match s.to_ascii_lowercase().as_str() {
        "eq" => CmpOp::Eq,
        "ne" => CmpOp::Ne,
        "gt" => CmpOp::Gt,
        "ge" => CmpOp::Ge,
        "lt" => CmpOp::Lt,
        "le" => CmpOp::Le,
        _ => return None,
    })
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        o => o,
    }
}

fn op_name(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "eq",
        CmpOp::Ne => "ne",
        CmpOp::Gt => "gt",
        CmpOp::Ge => "ge",
        CmpOp::Lt => "lt",
        CmpOp::Le => "le",
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.i)
    }

    fn end_pos(&self) -> usize {
        self.input.chars().count()
    }

    fn pos(&self) -> usize {
        self.peek().map_or_else(|| self.end_pos(), |t| t.pos)
    }

    fn err(&self, pos: usize, what: &str) -> ApiError {
        syntax(self.input, pos, what)
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<usize, ApiError> {
        match self.peek() {
            Some(t) if t.tok == tok => {
                let p = t.pos;
                self.i += 1;
                Ok(p)
            }
            _ => Err(self.err(self.pos(), &format!("expected {what}"))),
        }
    }

    fn or_expr(&mut self) -> Result<Filter, ApiError> {
        let mut left = self.and_expr()?;
        while self.peek().is_some_and(|t| is_kw(&t.tok, "or")) {
            self.i += 1;
            let right = self.and_expr()?;
            left = left.or(right);
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Filter, ApiError> {
        let mut left = self.unary()?;
        while self.peek().is_some_and(|t| is_kw(&t.tok, "and")) {
            self.i += 1;
            let right = self.unary()?;
            left = left.and(right);
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, ApiError> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(self.err(self.pos(), "expression nested too deeply"));
        }
        let r = if self.peek().is_some_and(|t| is_kw(&t.tok, "not")) {
            self.i += 1;
            self.unary().map(Filter::not)
        } else {
            self.primary()
        };
        self.depth -= 1;
        r
    }

    fn primary(&mut self) -> Result<Filter, ApiError> {
        let Some(t) = self.peek().cloned() else {
            return Err(self.err(self.end_pos(), "expected an expression"));
        };
        if t.tok == Tok::LParen {
            self.i += 1;
            let inner = self.or_expr()?;
            self.expect(Tok::RParen, "')'")?;
            return Ok(inner);
        }
        let left = self.operand()?;
        // Lambda on a collection property.
        if let Operand::Prop(prop, ppos) = &left
            && self.peek().is_some_and(|t| t.tok == Tok::Slash)
        {
            return self.lambda(prop, *ppos);
        }
        let op_tok = self.peek().cloned();
        let op = op_tok.as_ref().and_then(|t| cmp_op(&t.tok));
        let Some(op) = op else {
            // A bare boolean property is a predicate on its own.
            if let Operand::Prop(prop, ppos) = left {
                if prop.kind == Kind::Bool {
                    let field = prop.field.ok_or_else(|| self.not_filterable(prop, ppos))?;
                    return Ok(Filter::cmp(field, CmpOp::Eq, Literal::Bool(true)));
                }
                if prop.kind == Kind::Strings {
                    return Err(self.err(
                        ppos,
                        &format!(
                            "'{}' is a collection; use {}/any(c:c eq '…')",
                            prop.name, prop.name
                        ),
                    ));
                }
            }
            return Err(self.err(
                self.pos(),
                "expected a comparison operator (eq, ne, gt, ge, lt, le)",
            ));
        };
        let op_pos = op_tok.map_or(0, |t| t.pos);
        self.i += 1;
        let right = self.operand()?;
        match (left, right) {
            (Operand::Prop(prop, ppos), Operand::Lit(lit, text, lpos)) => {
                self.comparison(prop, ppos, op, op_pos, lit, &text, lpos)
            }
            (Operand::Lit(lit, text, lpos), Operand::Prop(prop, ppos)) => {
                self.comparison(prop, ppos, flip(op), op_pos, lit, &text, lpos)
            }
            (Operand::Prop(_, _), Operand::Prop(_, p2)) => Err(ApiError::bad_request(format!(
                "Invalid filter clause: comparing two properties (position {p2}) is not supported; compare a property with a literal."
            ))),
            (Operand::Lit(_, _, p1), Operand::Lit(..)) => Err(ApiError::bad_request(format!(
                "Invalid filter clause: comparing two literals (position {p1}) is not supported; compare a property with a literal."
            ))),
        }
    }

    fn not_filterable(&self, prop: &Prop, pos: usize) -> ApiError {
        ApiError::bad_request(format!(
            "Invalid filter clause: the property '{}' (position {pos}) cannot be used in $filter.",
            prop.name
        ))
    }

    fn operand(&mut self) -> Result<Operand, ApiError> {
        let Some(t) = self.peek().cloned() else {
            return Err(self.err(self.end_pos(), "expected a property or a literal"));
        };
        self.i += 1;
        match t.tok {
            Tok::Str(s) => Ok(Operand::Lit(
                Literal::String(s.clone()),
                format!("'{s}'"),
                t.pos,
            )),
            Tok::Lit(s) => {
                let lit = classify_literal(&s).ok_or_else(|| {
                    self.err(
                        t.pos,
                        &format!("'{s}' is not a valid number, date or date-time literal"),
                    )
                })?;
                Ok(Operand::Lit(lit, s, t.pos))
            }
            Tok::Ident(s) => {
                if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") {
                    return Ok(Operand::Lit(
                        Literal::Bool(s.eq_ignore_ascii_case("true")),
                        s,
                        t.pos,
                    ));
                }
                if s.eq_ignore_ascii_case("null") {
                    return Ok(Operand::Lit(Literal::Null, s, t.pos));
                }
                if self.peek().is_some_and(|n| n.tok == Tok::LParen) {
                    return Err(ApiError::bad_request(format!(
                        "Invalid filter clause: the function '{s}' (position {}) is not supported; use comparisons (eq, ne, gt, ge, lt, le) combined with and, or, not.",
                        t.pos
                    )));
                }
                if cmp_op(&Tok::Ident(s.clone())).is_some()
                    || ["and", "or", "not"]
                        .iter()
                        .any(|k| s.eq_ignore_ascii_case(k))
                {
                    return Err(self.err(
                        t.pos,
                        &format!("expected a property or a literal, found '{s}'"),
                    ));
                }
                let prop = self.entity.find(self.beta, &s).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Invalid filter clause: could not find a property named '{s}' (position {}) on type '{}'.",
                        t.pos,
                        self.entity.type_name()
                    ))
                })?;
                Ok(Operand::Prop(prop, t.pos))
            }
            _ => Err(self.err(t.pos, "expected a property or a literal")),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn comparison(
        &self,
        prop: &'static Prop,
        ppos: usize,
        op: CmpOp,
        op_pos: usize,
        lit: Literal,
        text: &str,
        lpos: usize,
    ) -> Result<Filter, ApiError> {
        if prop.kind == Kind::Strings {
            return Err(self.err(
                ppos,
                &format!(
                    "'{}' is a collection; use {}/any(c:c eq '…')",
                    prop.name, prop.name
                ),
            ));
        }
        let field = prop.field.ok_or_else(|| self.not_filterable(prop, ppos))?;
        let lit_edm = match &lit {
            Literal::String(_) => "Edm.String",
            Literal::Int(_) => "Edm.Int64",
            Literal::Bool(_) => "Edm.Boolean",
            Literal::DateTime(_) => "Edm.DateTimeOffset",
            Literal::Null => "null",
        };
        let ok = match (prop.kind, &lit) {
            (Kind::Str | Kind::NullableStr, Literal::String(_)) => true,
            (Kind::NullableStr, Literal::Null) => matches!(op, CmpOp::Eq | CmpOp::Ne),
            (Kind::Int, Literal::Int(_)) => true,
            (Kind::Bool, Literal::Bool(_)) => matches!(op, CmpOp::Eq | CmpOp::Ne),
            (Kind::DateTime, Literal::DateTime(_)) => true,
            _ => false,
        };
        if !ok {
            return Err(ApiError::bad_request(format!(
                "Invalid filter clause: incompatible types at position {op_pos}: '{}' is {} and {text} (position {lpos}) is {lit_edm}; operator '{}' cannot compare them.",
                prop.name,
                prop.kind.edm(),
                op_name(op)
            )));
        }
        Ok(Filter::cmp(field, op, lit))
    }

    /// `categories/any(c:c eq 'Red')`.
    fn lambda(&mut self, prop: &'static Prop, ppos: usize) -> Result<Filter, ApiError> {
        self.i += 1; // '/'
        if prop.kind != Kind::Strings {
            return Err(self.err(
                ppos,
                &format!(
                    "'{}' is not a collection; lambda operators need one",
                    prop.name
                ),
            ));
        }
        match self.peek().cloned() {
            Some(Token {
                tok: Tok::Ident(s), ..
            }) if s.eq_ignore_ascii_case("any") => self.i += 1,
            Some(Token {
                tok: Tok::Ident(s),
                pos,
            }) if s.eq_ignore_ascii_case("all") => {
                return Err(ApiError::bad_request(format!(
                    "Invalid filter clause: the lambda operator 'all' (position {pos}) is not supported; use any."
                )));
            }
            _ => return Err(self.err(self.pos(), "expected 'any' after '/'")),
        }
        self.expect(Tok::LParen, "'('")?;
        let var = match self.peek().cloned() {
            Some(Token {
                tok: Tok::Ident(v), ..
            }) => {
                self.i += 1;
                v
            }
            _ => {
                return Err(self.err(
                    self.pos(),
                    "expected a range variable, as in any(c:c eq 'Red')",
                ));
            }
        };
        self.expect(Tok::Colon, "':'")?;
        match self.peek().cloned() {
            Some(Token {
                tok: Tok::Ident(v), ..
            }) if v == var => self.i += 1,
            _ => return Err(self.err(self.pos(), &format!("expected the range variable '{var}'"))),
        }
        match self.peek().cloned() {
            Some(Token { tok, .. }) if cmp_op(&tok) == Some(CmpOp::Eq) => self.i += 1,
            Some(Token { pos, .. }) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid filter clause: only 'eq' is supported inside any() (position {pos})."
                )));
            }
            None => return Err(self.err(self.end_pos(), "expected 'eq'")),
        }
        let value = match self.peek().cloned() {
            Some(Token {
                tok: Tok::Str(s), ..
            }) => {
                self.i += 1;
                s
            }
            _ => return Err(self.err(self.pos(), "expected a string literal")),
        };
        self.expect(Tok::RParen, "')'")?;
        Ok(Filter::AnyCategoryEq(value))
    }
}

/// Parses a `$filter` value over `entity`'s properties.
pub fn parse_filter(input: &str, entity: Entity, beta: bool) -> Result<Filter, ApiError> {
    if !matches!(entity, Entity::Folder | Entity::Item) {
        return Err(ApiError::bad_request(
            "$filter is not supported on this resource.",
        ));
    }
    let toks = lex(input)?;
    let mut p = Parser {
        input,
        toks,
        i: 0,
        entity,
        beta,
        depth: 0,
    };
    let f = p.or_expr()?;
    if let Some(t) = p.peek() {
        return Err(p.err(t.pos, "unexpected text after the end of the expression"));
    }
    Ok(f)
}

/// The inner filter of an extended-property `$expand`: `id eq '…'` terms
/// joined with `or`, optionally parenthesised. Each id is parsed with mapi's
/// extended-property id parser, so `String 0x0037` and `String 0x37` match.
fn parse_id_filter(input: &str) -> Result<Vec<ExtPropId>, ApiError> {
    let toks = lex(input)?;
    let mut ids = Vec::new();
    let mut i = 0;
    let mut depth = 0usize;
    let mut expect_term = true;
    while i < toks.len() {
        let t = &toks[i];
        if expect_term {
            match &t.tok {
                Tok::LParen => {
                    depth += 1;
                    i += 1;
                    continue;
                }
                Tok::Ident(s) if s.eq_ignore_ascii_case("id") => {}
                _ => {
                    return Err(syntax(
                        input,
                        t.pos,
                        "expected id eq '<extended property id>'",
                    ));
                }
            }
            if !toks
                .get(i + 1)
                .is_some_and(|t| cmp_op(&t.tok) == Some(CmpOp::Eq))
            {
                return Err(syntax(
                    input,
                    toks.get(i + 1).map_or(input.len(), |t| t.pos),
                    "expected 'eq'",
                ));
            }
            let Some(Token {
                tok: Tok::Str(id),
                pos,
            }) = toks.get(i + 2)
            else {
                return Err(syntax(
                    input,
                    toks.get(i + 2).map_or(input.len(), |t| t.pos),
                    "expected a quoted extended property id",
                ));
            };
            let parsed = ExtPropId::parse(id).map_err(|e| {
                ApiError::bad_request(format!(
                    "Invalid extended property id '{id}' (position {pos}): {e}."
                ))
            })?;
            ids.push(parsed);
            i += 3;
            expect_term = false;
        } else {
            match &t.tok {
                Tok::RParen if depth > 0 => {
                    depth -= 1;
                    i += 1;
                }
                Tok::Ident(s) if s.eq_ignore_ascii_case("or") => {
                    expect_term = true;
                    i += 1;
                }
                _ => {
                    return Err(syntax(
                        input,
                        t.pos,
                        "only 'id eq …' terms joined with 'or' are supported here",
                    ));
                }
            }
        }
    }
    if expect_term || depth != 0 {
        return Err(syntax(
            input,
            input.chars().count(),
            "incomplete expression",
        ));
    }
    Ok(ids)
}

/// Classifies a number/date token: `42`, `-3`, `2021-08-21` (midnight UTC),
/// `2021-09-15T12:16:38Z`, with fractions and `±hh:mm` offsets.
fn classify_literal(s: &str) -> Option<Literal> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok().map(Literal::Int);
    }
    parse_datetime(s).map(Literal::DateTime)
}

fn num(s: &str, len: usize) -> Option<u32> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Parses an OData date or date-time literal into UTC.
pub fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    let (date_s, rest) = match s.find(['T', 't']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut dp = date_s.split('-');
    let year = num(dp.next()?, 4)? as i32;
    let month = Month::try_from(num(dp.next()?, 2)? as u8).ok()?;
    let day = num(dp.next()?, 2)? as u8;
    if dp.next().is_some() {
        return None;
    }
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let Some(rest) = rest else {
        return Some(PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc());
    };
    // Split the zone: Z, or the last '+'/'-'.
    let (clock, offset) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, UtcOffset::UTC)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let z = &rest[i + 1..];
        let (h, m) = z.split_once(':')?;
        let (h, m) = (num(h, 2)? as i8, num(m, 2)? as i8);
        let sign = if rest.as_bytes()[i] == b'-' { -1 } else { 1 };
        (&rest[..i], UtcOffset::from_hms(sign * h, sign * m, 0).ok()?)
    } else {
        (rest, UtcOffset::UTC)
    };
    let mut tp = clock.split(':');
    let hour = num(tp.next()?, 2)? as u8;
    let minute = num(tp.next()?, 2)? as u8;
    let (second, nanos) = match tp.next() {
        None => (0, 0),
        Some(sec) => {
            let (whole, frac) = match sec.split_once('.') {
                Some((w, f)) => (w, Some(f)),
                None => (sec, None),
            };
            let second = num(whole, 2)? as u8;
            let nanos = match frac {
                None => 0,
                Some(f)
                    if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    let padded = format!("{f:0<9}");
                    padded.parse::<u32>().ok()?
                }
                Some(_) => return None,
            };
            (second, nanos)
        }
    };
    if tp.next().is_some() {
        return None;
    }
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_offset(offset)
            .to_offset(UtcOffset::UTC),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn f(s: &str) -> Filter {
        parse_filter(s, Entity::Item, false).unwrap_or_else(|e| panic!("{s}: {}", e.message))
    }
    fn ff(s: &str) -> Filter {
        parse_filter(s, Entity::Folder, true).unwrap_or_else(|e| panic!("{s}: {}", e.message))
    }
    fn bad(s: &str, entity: Entity) -> String {
        parse_filter(s, entity, false).expect_err(s).message
    }

    #[test]
    fn comparisons_and_literals() {
        assert_eq!(
            ff("type eq 'IPF.Appointment'"),
            Filter::cmp(
                Field::Type,
                CmpOp::Eq,
                Literal::String("IPF.Appointment".into())
            )
        );
        assert_eq!(
            f("createdDateTime ge 2021-08-21"),
            Filter::cmp(
                Field::CreatedDateTime,
                CmpOp::Ge,
                Literal::DateTime(datetime!(2021-08-21 0:00 UTC))
            )
        );
        assert_eq!(
            f("lastModifiedDateTime gt 2021-09-15T12:16:38Z"),
            Filter::cmp(
                Field::LastModifiedDateTime,
                CmpOp::Gt,
                Literal::DateTime(datetime!(2021-09-15 12:16:38 UTC))
            )
        );
        assert_eq!(
            f("lastModifiedDateTime lt 2021-09-15T12:16:38.25+02:00"),
            Filter::cmp(
                Field::LastModifiedDateTime,
                CmpOp::Lt,
                Literal::DateTime(datetime!(2021-09-15 10:16:38.25 UTC))
            )
        );
        assert_eq!(
            f("SIZE LE -5"),
            Filter::cmp(Field::Size, CmpOp::Le, Literal::Int(-5))
        );
        assert_eq!(
            ff("displayName eq 'O''Brien'"),
            Filter::cmp(
                Field::DisplayName,
                CmpOp::Eq,
                Literal::String("O'Brien".into())
            )
        );
        assert_eq!(
            ff("wellKnownName eq null"),
            Filter::cmp(Field::WellKnownName, CmpOp::Eq, Literal::Null)
        );
        assert_eq!(
            ff("isHidden eq true"),
            Filter::cmp(Field::IsHidden, CmpOp::Eq, Literal::Bool(true))
        );
        assert_eq!(
            ff("isHidden"),
            Filter::cmp(Field::IsHidden, CmpOp::Eq, Literal::Bool(true))
        );
        // Literal on the left flips the operator.
        assert_eq!(
            f("100 lt size"),
            Filter::cmp(Field::Size, CmpOp::Gt, Literal::Int(100))
        );
    }

    #[test]
    fn precedence_not_and_or() {
        let a = || Filter::cmp(Field::Size, CmpOp::Eq, Literal::Int(1));
        let b = || Filter::cmp(Field::Size, CmpOp::Eq, Literal::Int(2));
        let c = || Filter::cmp(Field::Size, CmpOp::Eq, Literal::Int(3));
        assert_eq!(
            f("size eq 1 or size eq 2 and size eq 3"),
            a().or(b().and(c()))
        );
        assert_eq!(
            f("(size eq 1 or size eq 2) and size eq 3"),
            a().or(b()).and(c())
        );
        assert_eq!(f("not size eq 1 and size eq 2"), a().not().and(b()));
        assert_eq!(f("not (size eq 1 and size eq 2)"), a().and(b()).not());
        assert_eq!(
            f("size eq 1 or size eq 2 or size eq 3"),
            a().or(b()).or(c())
        );
        assert_eq!(
            f("categories/any(c:c eq 'Red') and size gt 3"),
            Filter::AnyCategoryEq("Red".into()).and(Filter::cmp(
                Field::Size,
                CmpOp::Gt,
                Literal::Int(3)
            ))
        );
        assert_eq!(
            f("Categories/any(x: x eq 'It''s')"),
            Filter::AnyCategoryEq("It's".into())
        );
    }

    #[test]
    fn errors_name_problem_and_position() {
        let m = bad("type eq", Entity::Item);
        assert!(m.contains("position 7"), "{m}");
        let m = bad("type eq 'x' and", Entity::Item);
        assert!(m.contains("position 15"), "{m}");
        let m = bad("type eq 'x", Entity::Item);
        assert!(m.contains("unterminated"), "{m}");
        let m = bad("subject eq 'x'", Entity::Item);
        assert!(m.contains("subject"), "{m}");
        let m = bad("size eq 'big'", Entity::Item);
        assert!(m.contains("incompatible"), "{m}");
        let m = bad("createdDateTime ge 2021-13-01", Entity::Item);
        assert!(m.contains("2021-13-01"), "{m}");
        let m = bad("contains(type,'x')", Entity::Item);
        assert!(m.contains("function 'contains'"), "{m}");
        let m = bad("categories/all(c:c eq 'x')", Entity::Item);
        assert!(m.contains("'all'"), "{m}");
        let m = bad("categories/any(c:c ne 'x')", Entity::Item);
        assert!(m.contains("only 'eq'"), "{m}");
        let m = bad("categories eq 'x'", Entity::Item);
        assert!(m.contains("collection"), "{m}");
        let m = bad("(size eq 1", Entity::Item);
        assert!(m.contains("')'"), "{m}");
        let m = bad("size eq 1)", Entity::Item);
        assert!(m.contains("position 9"), "{m}");
        let m = bad("size gt null", Entity::Item);
        assert!(m.contains("incompatible"), "{m}");
        let m = bad("wellKnownName gt null", Entity::Folder);
        assert!(m.contains("incompatible"), "{m}");
        let m = bad("size eq size", Entity::Item);
        assert!(m.contains("two properties"), "{m}");
        let m = bad("displayName eq 'x'", Entity::Item);
        assert!(m.contains("displayName"), "{m}");
        let m = bad("size # 1", Entity::Item);
        assert!(m.contains("'#'"), "{m}");
        let deep = format!("{}size eq 1{}", "(".repeat(200), ")".repeat(200));
        assert!(bad(&deep, Entity::Item).contains("too deeply"));
        let m = bad("", Entity::Item);
        assert!(m.contains("expected an expression"), "{m}");
    }

    #[test]
    fn datetimes() {
        assert_eq!(
            parse_datetime("2021-08-21"),
            Some(datetime!(2021-08-21 0:00 UTC))
        );
        assert_eq!(
            parse_datetime("2021-08-21T10:11"),
            Some(datetime!(2021-08-21 10:11 UTC))
        );
        assert_eq!(
            parse_datetime("2021-08-21T10:11:12.123456789Z"),
            Some(datetime!(2021-08-21 10:11:12.123456789 UTC))
        );
        assert_eq!(
            parse_datetime("2021-08-21T10:11:12-01:30"),
            Some(datetime!(2021-08-21 11:41:12 UTC))
        );
        for bad in [
            "2021-02-30",
            "2021-8-21",
            "21-08-21",
            "2021-08-21T25:00Z",
            "2021-08-21T10:11:12.Z",
            "2021-08-21T10:11:12+0200",
            "2021-08-21T",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn options_parse_and_validate() {
        let q = QueryOptions::parse(
            Some("%24filter=type+eq+%27IPM.Note%27&$Select=Type,SIZE&$TOP=5&$skip=10&$count=true&$orderby=size desc,createdDateTime"),
            Entity::Item,
            Shape::List,
            false,
        )
        .unwrap();
        assert_eq!(q.select, Some(vec!["type", "size"]));
        assert_eq!(q.top, Some(5));
        assert_eq!(q.skip, 10);
        assert!(q.count);
        assert_eq!(
            q.order_by,
            vec![(Field::Size, true), (Field::CreatedDateTime, false)]
        );
        assert!(q.filter.is_some());

        let e = |qs: &str, shape: Shape| {
            QueryOptions::parse(Some(qs), Entity::Item, shape, false)
                .unwrap_err()
                .message
        };
        assert!(e("$top=0", Shape::List).contains("between 1 and 1000"));
        assert!(e("$top=1001", Shape::List).contains("between 1 and 1000"));
        assert!(e("$top=abc", Shape::List).contains("non-negative"));
        assert!(e("$skip=-1", Shape::List).contains("non-negative"));
        assert!(e("$count=yes", Shape::List).contains("true or false"));
        assert!(e("$search=foo", Shape::List).contains("$search"));
        assert!(e("$select=subject", Shape::List).contains("subject"));
        assert!(e("$select=", Shape::List).contains("empty"));
        assert!(e("$orderby=size sideways", Shape::List).contains("sideways"));
        assert!(e("$orderby=categories", Shape::List).contains("categories"));
        assert!(e("$top=1&$TOP=2", Shape::List).contains("more than once"));
        assert!(e("$top=5", Shape::Entity).contains("$top"));
        assert!(e("$filter=size eq 1", Shape::Delta).contains("$filter"));
        assert!(e("$skiptoken=a&$deltatoken=b", Shape::Delta).contains("not both"));
        assert!(e("includeHiddenFolders=true", Shape::List).contains("includeHiddenFolders"));
        // Custom options are ignored.
        assert!(QueryOptions::parse(Some("foo=bar"), Entity::Item, Shape::List, false).is_ok());

        let q = QueryOptions::parse(
            Some("includeHiddenFolders=TRUE&$select=isHidden,parentMailboxUrl"),
            Entity::Folder,
            Shape::List,
            true,
        )
        .unwrap();
        assert!(q.include_hidden);
        assert_eq!(q.select, Some(vec!["isHidden", "parentMailboxUrl"]));
        // parentMailboxUrl is a beta property.
        assert!(
            QueryOptions::parse(
                Some("$select=parentMailboxUrl"),
                Entity::Folder,
                Shape::List,
                false
            )
            .is_err()
        );
    }

    #[test]
    fn expand_forms() {
        let q = QueryOptions::parse(
            Some("$expand=singleValueExtendedProperties($filter=(id eq 'String 0x0037') or (id eq 'SystemTime 0x0E06')),MultiValueExtendedProperties"),
            Entity::Item,
            Shape::List,
            false,
        )
        .unwrap();
        let single = q.expand.single.unwrap();
        assert!(single.selects("String 0x37"));
        assert!(single.selects("SystemTime 0xe06"));
        assert!(!single.selects("String 0x3001"));
        assert_eq!(q.expand.multi, Some(ExtSelection::All));

        let q = QueryOptions::parse(Some("$expand=singleValueExtendedProperties($filter=id eq 'String {00020329-0000-0000-C000-000000000046} Name Keywords')"), Entity::Folder, Shape::Entity, false).unwrap();
        assert!(
            q.expand
                .single
                .unwrap()
                .selects("String {00020329-0000-0000-c000-000000000046} Name Keywords")
        );

        let e = |qs: &str| {
            QueryOptions::parse(Some(qs), Entity::Item, Shape::List, false)
                .unwrap_err()
                .message
        };
        assert!(e("$expand=attachments").contains("attachments"));
        assert!(e("$expand=singleValueExtendedProperties($select=id)").contains("$select"));
        assert!(
            e("$expand=singleValueExtendedProperties($filter=id eq 'Bogus 0x37')")
                .contains("Bogus")
        );
        assert!(
            e("$expand=singleValueExtendedProperties($filter=value eq 'x')").contains("position 0")
        );
        assert!(e("$expand=singleValueExtendedProperties($filter=id eq 'String 0x37' and id eq 'String 0x38')").contains("'or'"));
        assert!(e("$expand=singleValueExtendedProperties(").contains("unbalanced"));
        assert!(
            e("$expand=singleValueExtendedProperties,singleValueExtendedProperties")
                .contains("more than once")
        );
    }

    #[test]
    fn next_link_reencodes_like_graph() {
        let raw = decode_query(Some(
            "$filter=createdDateTime ge 2021-08-21 and createdDateTime lt 2021-09-16&$select=type,size&$top=1",
        ))
        .unwrap();
        assert_eq!(
            next_link_query(&raw, 1),
            "%24filter=createdDateTime+ge+2021-08-21+and+createdDateTime+lt+2021-09-16&%24select=type%2csize&%24top=1&%24skip=1"
        );
        let raw = decode_query(Some("%24skip=3&includeHiddenFolders=true&%24Top=2")).unwrap();
        assert_eq!(
            next_link_query(&raw, 5),
            "includeHiddenFolders=true&%24top=2&%24skip=5"
        );
        // Round trip.
        let round = decode_query(Some(&next_link_query(&raw, 5))).unwrap();
        assert_eq!(round[0], ("includeHiddenFolders".into(), "true".into()));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn filter_parser_never_panics(s in "\\PC{0,80}") {
                let _ = parse_filter(&s, Entity::Item, false);
                let _ = parse_filter(&s, Entity::Folder, true);
            }

            #[test]
            fn filter_parser_never_panics_on_filterish(s in "(\\(|\\)| |not|and|or|eq|gt|size|type|isHidden|categories/any\\(c:c|'x'|''|-?[0-9]{1,20}|2021-08-2[0-9](T1[0-9]:00(:0[0-9](\\.[0-9]{1,12})?)?(Z|[+-]0[0-9]:[0-9]{2})?)?|null|true|,|:|/){0,24}") {
                let _ = parse_filter(&s, Entity::Item, false);
                let _ = parse_filter(&s, Entity::Folder, false);
            }

            #[test]
            fn options_never_panic(s in "[$a-zA-Z%0-9=&+,'() ]{0,80}") {
                let _ = QueryOptions::parse(Some(&s), Entity::Item, Shape::List, false);
                let _ = QueryOptions::parse(Some(&s), Entity::Folder, Shape::Delta, true);
            }

            #[test]
            fn string_literals_round_trip(v in "\\PC{0,30}") {
                let quoted = v.replace('\'', "''");
                let parsed = parse_filter(&format!("type eq '{quoted}'"), Entity::Item, false).unwrap();
                prop_assert_eq!(parsed, Filter::cmp(Field::Type, CmpOp::Eq, Literal::String(v)));
            }
        }
    }
}
