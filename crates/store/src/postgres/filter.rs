//! Translation of [`ListQuery`] filters and orders into PostgreSQL.
//!
//! Every value becomes a bound parameter (`$n`); the SQL text is built only
//! from fixed column expressions and operators chosen by `match`, so no user
//! input ever reaches the query text. Text columns are `COLLATE "C"`, so
//! comparisons and orders are by code point exactly as on SQLite, and
//! `lower()` folds ASCII only, exactly like SQLite's `NOCASE`.

use tokio_postgres::types::ToSql;

use crate::domain::{Result, StoreError};
use crate::query::{CmpOp, Field, Filter, ListQuery, Literal};
use crate::sqlite::ticks;

/// A bound parameter.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// Which table a query runs on (`f` = folders, `i` = items).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entity {
    Folders,
    Items,
}

impl Entity {
    fn name(self) -> &'static str {
        match self {
            Entity::Folders => "folders",
            Entity::Items => "items",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// Compared against a column holding a Unicode-lower-cased copy.
    TextFolded,
    /// ASCII-case-insensitive (message/container classes).
    TextNoCase,
    Int,
    Bool,
    DateTime,
}

fn column(entity: Entity, field: Field) -> Result<(&'static str, Kind)> {
    use Entity::*;
    use Field::*;
    let applies = match entity {
        Folders => field.applies_to_folders(),
        Items => field.applies_to_items(),
    };
    if !applies {
        return Err(field.not_applicable(entity.name()));
    }
    Ok(match (entity, field) {
        (Folders, Id) => ("f.id", Kind::Text),
        (Folders, DisplayName) => ("f.name_key", Kind::TextFolded),
        (Folders, Type) => ("f.class", Kind::TextNoCase),
        (Folders, WellKnownName) => ("f.well_known", Kind::TextFolded),
        (Folders, ParentFolderId) => (
            "(SELECT p.id FROM folders p WHERE p.fk = f.parent_fk)",
            Kind::Text,
        ),
        (Folders, ChildFolderCount) => ("f.child_count", Kind::Int),
        (Folders, TotalItemCount) => ("f.item_count", Kind::Int),
        (Folders, IsHidden) => ("f.hidden", Kind::Bool),
        (Folders, ChangeKey) => ("f.change_key", Kind::Text),
        (Folders, CreatedDateTime) => ("f.created", Kind::DateTime),
        (Folders, LastModifiedDateTime) => ("f.modified", Kind::DateTime),
        (Items, Id) => ("i.id", Kind::Text),
        (Items, Type) => ("i.class", Kind::TextNoCase),
        (Items, ParentFolderId) => (
            "(SELECT p.id FROM folders p WHERE p.fk = i.folder_fk)",
            Kind::Text,
        ),
        (Items, ChangeKey) => ("i.change_key", Kind::Text),
        (Items, Size) => ("i.size", Kind::Int),
        (Items, CreatedDateTime) => ("i.created", Kind::DateTime),
        (Items, LastModifiedDateTime) => ("i.modified", Kind::DateTime),
        (_, f) => return Err(f.not_applicable(entity.name())),
    })
}

fn op_sql(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "IS NOT DISTINCT FROM",
        CmpOp::Ne => "IS DISTINCT FROM",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
    }
}

fn literal_value(field: Field, kind: Kind, lit: &Literal) -> Result<Param> {
    let mismatch = |expected: &str| {
        StoreError::Invalid(format!(
            "property '{}' is compared with {expected}, not {lit:?}",
            field.graph_name()
        ))
    };
    Ok(match (kind, lit) {
        (Kind::Text | Kind::TextNoCase, Literal::String(s)) => Box::new(s.clone()),
        (Kind::TextFolded, Literal::String(s)) => Box::new(s.to_lowercase()),
        (Kind::Int, Literal::Int(n)) => Box::new(*n),
        (Kind::Bool, Literal::Bool(b)) => Box::new(*b),
        (Kind::DateTime, Literal::DateTime(t)) => Box::new(ticks(*t)),
        (Kind::Text | Kind::TextNoCase | Kind::TextFolded, _) => return Err(mismatch("a string")),
        (Kind::Int, _) => return Err(mismatch("an integer")),
        (Kind::Bool, _) => return Err(mismatch("true or false")),
        (Kind::DateTime, _) => return Err(mismatch("a date and time")),
    })
}

/// Appends the SQL of `filter` to `sql` and its values to `params`
/// (placeholders are numbered after the parameters already present).
pub(crate) fn filter_sql(
    entity: Entity,
    filter: &Filter,
    sql: &mut String,
    params: &mut Vec<Param>,
) -> Result<()> {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            let joiner = if matches!(filter, Filter::And(..)) {
                " AND "
            } else {
                " OR "
            };
            sql.push('(');
            filter_sql(entity, a, sql, params)?;
            sql.push_str(joiner);
            filter_sql(entity, b, sql, params)?;
            sql.push(')');
        }
        Filter::Not(a) => {
            sql.push_str("(NOT ");
            filter_sql(entity, a, sql, params)?;
            sql.push(')');
        }
        Filter::Cmp { field, op, value } => {
            let (col, kind) = column(entity, *field)?;
            if *value == Literal::Null {
                match op {
                    CmpOp::Eq => sql.push_str(&format!("({col} IS NULL)")),
                    CmpOp::Ne => sql.push_str(&format!("({col} IS NOT NULL)")),
                    _ => {
                        return Err(StoreError::Invalid(format!(
                            "null can only be compared with eq or ne (property '{}')",
                            field.graph_name()
                        )));
                    }
                }
                return Ok(());
            }
            params.push(literal_value(*field, kind, value)?);
            let n = params.len();
            let (lhs, rhs) = if kind == Kind::TextNoCase {
                (format!("lower({col})"), format!("lower(${n}::text)"))
            } else {
                (col.to_string(), format!("${n}"))
            };
            // IS [NOT] DISTINCT FROM gives OData's null semantics for eq/ne;
            // range comparisons with a null column are false (never null).
            match op {
                CmpOp::Eq | CmpOp::Ne => sql.push_str(&format!("({lhs} {} {rhs})", op_sql(*op))),
                _ => sql.push_str(&format!("COALESCE({lhs} {} {rhs}, false)", op_sql(*op))),
            }
        }
        Filter::AnyCategoryEq(cat) => {
            if entity != Entity::Items {
                return Err(StoreError::Invalid(format!(
                    "property 'categories' is not supported on {}",
                    entity.name()
                )));
            }
            params.push(Box::new(cat.to_lowercase()));
            sql.push_str(&format!("(${}::text = ANY(i.category_keys))", params.len()));
        }
    }
    Ok(())
}

/// The `ORDER BY` clause (without the keywords) for a query.
pub(crate) fn order_sql(entity: Entity, query: &ListQuery) -> Result<String> {
    let (alias, default) = match entity {
        Entity::Folders => ("f", "f.name_key, f.id"),
        Entity::Items => ("i", "i.created DESC, i.id DESC"),
    };
    if query.order_by.is_empty() {
        return Ok(default.to_string());
    }
    let mut parts = Vec::with_capacity(query.order_by.len() + 1);
    for (field, desc) in &query.order_by {
        let (col, kind) = column(entity, *field)?;
        let expr = if kind == Kind::TextNoCase {
            format!("lower({col})")
        } else {
            col.to_string()
        };
        // SQLite sorts NULL first ascending and last descending; say so.
        let dir = if *desc {
            " DESC NULLS LAST"
        } else {
            " ASC NULLS FIRST"
        };
        parts.push(format!("{expr}{dir}"));
    }
    parts.push(format!("{alias}.id"));
    Ok(parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bound_not_interpolated() {
        let f = Filter::cmp(
            Field::DisplayName,
            CmpOp::Eq,
            Literal::String("x' OR 1=1 --".into()),
        )
        .or(Filter::cmp(Field::Id, CmpOp::Ne, Literal::Null))
        .and(Filter::AnyCategoryEq("Röd".into()).not());
        let mut sql = String::new();
        let mut params = Vec::new();
        let e = filter_sql(Entity::Folders, &f, &mut sql, &mut params).unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)));
        let f = Filter::cmp(
            Field::Type,
            CmpOp::Eq,
            Literal::String("x' OR 1=1 --".into()),
        )
        .and(Filter::AnyCategoryEq("Röd".into()));
        let mut sql = String::from("i.folder_fk = $1");
        let mut params: Vec<Param> = vec![Box::new(1i64)];
        filter_sql(Entity::Items, &f, &mut sql, &mut params).unwrap();
        assert!(!sql.contains("OR 1=1"), "{sql}");
        assert!(sql.contains("$2") && sql.contains("$3"), "{sql}");
        assert_eq!(params.len(), 3);
    }
}
