//! Translation of [`ListQuery`] filters and orders into SQL.
//!
//! Every value becomes a bound parameter (`?`); the SQL text is built only
//! from fixed column expressions and operators chosen by `match`, so no user
//! input ever reaches the query text.

use rusqlite::types::Value;

use super::ticks;
use crate::domain::{Result, StoreError};
use crate::query::{CmpOp, Field, Filter, ListQuery, Literal};

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
    /// Compared exactly.
    Text,
    /// Compared case-insensitively against a lower-cased column or with NOCASE.
    TextFolded,
    /// ASCII-case-insensitive (`COLLATE NOCASE`): message/container classes.
    TextNoCase,
    Int,
    Bool,
    DateTime,
}

/// The SQL expression and value kind of a field on an entity.
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
        CmpOp::Eq => "IS",
        CmpOp::Ne => "IS NOT",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
    }
}

fn literal_value(field: Field, kind: Kind, lit: &Literal) -> Result<Value> {
    let mismatch = |expected: &str| {
        StoreError::Invalid(format!(
            "property '{}' is compared with {expected}, not {lit:?}",
            field.graph_name()
        ))
    };
    Ok(match (kind, lit) {
        (Kind::Text | Kind::TextNoCase, Literal::String(s)) => Value::Text(s.clone()),
        (Kind::TextFolded, Literal::String(s)) => Value::Text(s.to_lowercase()),
        (Kind::Int, Literal::Int(n)) => Value::Integer(*n),
        (Kind::Bool, Literal::Bool(b)) => Value::Integer(i64::from(*b)),
        (Kind::DateTime, Literal::DateTime(t)) => Value::Integer(ticks(*t)),
        (Kind::Text | Kind::TextNoCase | Kind::TextFolded, _) => return Err(mismatch("a string")),
        (Kind::Int, _) => return Err(mismatch("an integer")),
        (Kind::Bool, _) => return Err(mismatch("true or false")),
        (Kind::DateTime, _) => return Err(mismatch("a date and time")),
    })
}

/// Appends the SQL of `filter` to `sql` and its values to `params`.
pub(crate) fn filter_sql(
    entity: Entity,
    filter: &Filter,
    sql: &mut String,
    params: &mut Vec<Value>,
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
            let collate = if kind == Kind::TextNoCase {
                " COLLATE NOCASE"
            } else {
                ""
            };
            // IS / IS NOT give OData's null semantics for eq/ne; range
            // comparisons with a null column are false (never null, so NOT works).
            match op {
                CmpOp::Eq | CmpOp::Ne => {
                    sql.push_str(&format!("({col}{collate} {} ?)", op_sql(*op)))
                }
                _ => sql.push_str(&format!("COALESCE({col}{collate} {} ?, 0)", op_sql(*op))),
            }
        }
        Filter::AnyCategoryEq(cat) => {
            if entity != Entity::Items {
                return Err(StoreError::Invalid(format!(
                    "property 'categories' is not supported on {}",
                    entity.name()
                )));
            }
            params.push(Value::Text(cat.to_lowercase()));
            sql.push_str(
                "EXISTS (SELECT 1 FROM json_each(i.categories) c WHERE casefold(c.value) = ?)",
            );
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
        let collate = if kind == Kind::TextNoCase {
            " COLLATE NOCASE"
        } else {
            ""
        };
        parts.push(format!(
            "{col}{collate}{}",
            if *desc { " DESC" } else { "" }
        ));
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
        .or(Filter::cmp(Field::Id, CmpOp::Ne, Literal::Null));
        let mut sql = String::new();
        let mut params = Vec::new();
        filter_sql(Entity::Folders, &f, &mut sql, &mut params).unwrap();
        assert!(!sql.contains("OR 1=1"), "{sql}");
        assert_eq!(params, vec![Value::Text("x' or 1=1 --".into())]);
    }

    #[test]
    fn wrong_entity_and_type_are_invalid() {
        let mut sql = String::new();
        let mut params = Vec::new();
        let e = filter_sql(
            Entity::Folders,
            &Filter::cmp(Field::Size, CmpOp::Gt, Literal::Int(1)),
            &mut sql,
            &mut params,
        )
        .unwrap_err();
        assert!(
            matches!(e, StoreError::Invalid(ref m) if m.contains("size")),
            "{e}"
        );
        let e = filter_sql(
            Entity::Items,
            &Filter::cmp(Field::Size, CmpOp::Gt, Literal::String("1".into())),
            &mut sql,
            &mut params,
        )
        .unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)));
    }
}
