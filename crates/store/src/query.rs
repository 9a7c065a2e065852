//! Backend-neutral list queries: the api parses OData (`$filter`,
//! `$orderby`, `$skip`, `$top`, `$count`) into these types and every backend
//! translates them into its own query language (SQL with bound parameters for
//! SQLite and PostgreSQL; values are never interpolated into query text).

use time::OffsetDateTime;

use crate::domain::StoreError;

/// A property that can be filtered and ordered on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Id,
    DisplayName,
    Type,
    WellKnownName,
    ParentFolderId,
    ChildFolderCount,
    TotalItemCount,
    IsHidden,
    ChangeKey,
    Size,
    CreatedDateTime,
    LastModifiedDateTime,
}

impl Field {
    /// The Graph (camelCase) property name, for error messages.
    pub fn graph_name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::DisplayName => "displayName",
            Field::Type => "type",
            Field::WellKnownName => "wellKnownName",
            Field::ParentFolderId => "parentFolderId",
            Field::ChildFolderCount => "childFolderCount",
            Field::TotalItemCount => "totalItemCount",
            Field::IsHidden => "isHidden",
            Field::ChangeKey => "changeKey",
            Field::Size => "size",
            Field::CreatedDateTime => "createdDateTime",
            Field::LastModifiedDateTime => "lastModifiedDateTime",
        }
    }

    /// Whether folders have this field.
    pub fn applies_to_folders(self) -> bool {
        !matches!(self, Field::Size)
    }

    /// Whether items have this field.
    pub fn applies_to_items(self) -> bool {
        matches!(
            self,
            Field::Id
                | Field::Type
                | Field::ParentFolderId
                | Field::ChangeKey
                | Field::Size
                | Field::CreatedDateTime
                | Field::LastModifiedDateTime
        )
    }

    /// The error for a field used on an entity that does not have it.
    pub fn not_applicable(self, entity: &str) -> StoreError {
        StoreError::Invalid(format!(
            "property '{}' is not supported on {entity}",
            self.graph_name()
        ))
    }
}

/// Comparison operators of `$filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A literal on the right of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    String(String),
    Int(i64),
    Bool(bool),
    DateTime(OffsetDateTime),
    Null,
}

/// A `$filter` expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Cmp {
        field: Field,
        op: CmpOp,
        value: Literal,
    },
    /// `categories/any(c:c eq 'x')` (items only; compared case-insensitively).
    AnyCategoryEq(String),
}

impl Filter {
    /// `field op value`.
    pub fn cmp(field: Field, op: CmpOp, value: Literal) -> Filter {
        Filter::Cmp { field, op, value }
    }
    /// `self and other`.
    pub fn and(self, other: Filter) -> Filter {
        Filter::And(Box::new(self), Box::new(other))
    }
    /// `self or other`.
    pub fn or(self, other: Filter) -> Filter {
        Filter::Or(Box::new(self), Box::new(other))
    }
    /// `not self`.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }
}

/// One list request. `Default` is: no filter, the default order, no skip,
/// no limit (`top = u64::MAX`), no count, hidden folders excluded.
///
/// Default order: folders by display name (case-insensitive) then id; items
/// by created descending then id descending. An explicit `order_by` is always
/// followed by id (ascending) as a tie-breaker so pages are stable.
#[derive(Clone, Debug, PartialEq)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    /// `(field, descending)`.
    pub order_by: Vec<(Field, bool)>,
    pub skip: u64,
    pub top: u64,
    /// Also return the total number of matches (ignoring skip/top).
    pub count: bool,
    /// Folders only: include hidden folders.
    pub include_hidden: bool,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            filter: None,
            order_by: Vec::new(),
            skip: 0,
            top: u64::MAX,
            count: false,
            include_hidden: false,
        }
    }
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The total number of matches, when the query asked for a count.
    pub total: Option<u64>,
}

/// Which folders a folder delta covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeltaScope {
    /// Every folder of the mailbox (root and hidden folders included).
    AllFolders,
    /// The immediate children of a folder (id or well-known name).
    ChildrenOf(String),
}

/// Why an object left a delta scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RemovedReason {
    Deleted,
    MovedOut,
}

/// One delta entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Change<T> {
    /// Created or changed: the object as it is now.
    Upsert(T),
    /// Gone from the scope.
    Removed { id: String, reason: RemovedReason },
}

/// One page of a delta.
///
/// Entries are the objects of the scope whose last change has
/// `cn > max(since_cn, after_cn)`, ordered by cn. To continue, ask again with
/// `after_cn = last_cn`; when `more` is false the sync is complete and the
/// next round starts with `since_cn = high_water`.
#[derive(Clone, Debug, PartialEq)]
pub struct DeltaPage<T> {
    pub changes: Vec<Change<T>>,
    /// cn of the last entry returned (`max(since_cn, after_cn)` when empty).
    pub last_cn: u64,
    /// More entries follow `last_cn`.
    pub more: bool,
    /// The mailbox change number in the snapshot the page was read from.
    pub high_water: u64,
    /// Tombstones with `cn < horizon` have been purged: a sync state with
    /// `0 < since_cn < horizon` cannot be continued (Graph: 410 syncStateNotFound).
    pub horizon: u64,
}
