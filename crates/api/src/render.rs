//! JSON shapes of graph-api.md §1: mailboxFolder, mailboxItem, removed
//! entries, extended properties; and the ordered object they are built in.
//!
//! Clients do not care about member order, but people reading responses and
//! diffing them against Microsoft's documentation do, and streaming parsers
//! like `@odata.context` first and `@odata.nextLink` last; so objects are
//! built as ordered lists of members ([`Obj`]) in the order the docs show.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};
use store::{ExtProp, ExtValue, Folder, Item};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::odata::{Expand, ExtSelection};

/// A JSON object that keeps its members in insertion order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Obj(pub Vec<(String, Value)>);

impl Obj {
    /// An empty object.
    pub fn new() -> Self {
        Obj(Vec::new())
    }

    /// Appends a member.
    pub fn put(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.0.push((key.to_owned(), value.into()));
        self
    }

    /// Appends a nested ordered object (rendered through its JSON value).
    pub fn put_obj(&mut self, key: &str, value: Obj) -> &mut Self {
        self.0.push((key.to_owned(), value.into_value()));
        self
    }

    /// The value of a member.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Converts to a `serde_json::Value` (member order is lost there).
    pub fn into_value(self) -> Value {
        Value::Object(self.0.into_iter().collect())
    }

    /// Serializes to a JSON string, in order.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("JSON values serialize")
    }
}

impl Serialize for Obj {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A collection response body, members in Graph's order.
#[derive(Debug, Default)]
pub struct Collection {
    /// `@odata.context`.
    pub context: String,
    /// `@odata.count`, with `$count=true`.
    pub count: Option<u64>,
    /// `value`.
    pub value: Vec<Obj>,
    /// `@odata.nextLink`.
    pub next_link: Option<String>,
    /// `@odata.deltaLink`.
    pub delta_link: Option<String>,
}

impl Serialize for Collection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("@odata.context", &self.context)?;
        if let Some(c) = self.count {
            m.serialize_entry("@odata.count", &c)?;
        }
        m.serialize_entry("value", &self.value)?;
        if let Some(l) = &self.next_link {
            m.serialize_entry("@odata.nextLink", l)?;
        }
        if let Some(l) = &self.delta_link {
            m.serialize_entry("@odata.deltaLink", l)?;
        }
        m.end()
    }
}

/// Graph's timestamp form: whole seconds, UTC, `Z` (`2021-09-15T12:16:38Z`).
pub fn timestamp(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .expect("UTC timestamps format")
}

/// How one folder is rendered.
#[derive(Clone, Debug)]
pub struct FolderView<'a> {
    /// `$select` (canonical names), `None` = all default properties.
    pub select: Option<&'a [String]>,
    /// `parentMailboxUrl` value on beta, `None` on v1.0.
    pub parent_mailbox_url: Option<&'a str>,
    /// Render `isHidden` without `$select` (`includeHiddenFolders=true`).
    pub show_hidden: bool,
    /// `$expand`.
    pub expand: Option<&'a Expand>,
}

fn wants(select: Option<&[String]>, name: &str) -> bool {
    select.is_none_or(|s| s.iter().any(|x| x == name))
}

/// A `microsoft.graph.mailboxFolder`.
pub fn folder(f: &Folder, v: &FolderView<'_>) -> Obj {
    let mut o = Obj::new();
    o.put("@odata.type", "#microsoft.graph.mailboxFolder");
    o.put("id", f.id.as_str());
    let sel = v.select;
    if wants(sel, "displayName") {
        o.put("displayName", f.display_name.as_str());
    }
    if wants(sel, "parentFolderId") {
        o.put("parentFolderId", json!(f.parent_id));
    }
    if let Some(url) = v.parent_mailbox_url {
        o.put("parentMailboxUrl", url);
    }
    if wants(sel, "childFolderCount") {
        o.put("childFolderCount", f.child_folder_count);
    }
    if wants(sel, "totalItemCount") {
        o.put("totalItemCount", f.total_item_count);
    }
    if wants(sel, "wellKnownName") {
        o.put("wellKnownName", json!(f.well_known));
    }
    if wants(sel, "type") {
        o.put("type", f.class.as_str());
    }
    let hidden_selected = sel.is_some_and(|s| s.iter().any(|x| x == "isHidden"));
    if hidden_selected || (sel.is_none() && v.show_hidden) {
        o.put("isHidden", f.hidden);
    }
    if let Some(e) = v.expand {
        ext_props(&mut o, &f.ext_props, e);
    }
    o
}

/// A `microsoft.graph.mailboxItem`; `@odata.etag` is `W/"<changeKey>"`.
pub fn item(i: &Item, select: Option<&[String]>, expand: Option<&Expand>) -> Obj {
    let mut o = Obj::new();
    o.put("@odata.type", "#microsoft.graph.mailboxItem");
    o.put("@odata.etag", format!("W/\"{}\"", i.change_key));
    o.put("id", i.id.as_str());
    if wants(select, "createdDateTime") {
        o.put("createdDateTime", timestamp(i.created));
    }
    if wants(select, "lastModifiedDateTime") {
        o.put("lastModifiedDateTime", timestamp(i.modified));
    }
    if wants(select, "changeKey") {
        o.put("changeKey", i.change_key.as_str());
    }
    if wants(select, "categories") {
        o.put("categories", json!(i.categories));
    }
    if wants(select, "type") {
        o.put("type", i.class.as_str());
    }
    if wants(select, "size") {
        o.put("size", i.size);
    }
    if let Some(e) = expand {
        ext_props(&mut o, &i.ext_props, e);
    }
    o
}

/// A delta entry for an object that left the scope. Both store reasons
/// (deleted, moved out) are rendered as Graph's mail delta does: `deleted`.
pub fn removed(odata_type: &str, id: &str) -> Obj {
    let mut o = Obj::new();
    o.put("@odata.type", odata_type);
    o.put("id", id);
    o.put("@removed", json!({"reason": "deleted"}));
    o
}

/// Appends `singleValueExtendedProperties` / `multiValueExtendedProperties`
/// as `$expand` asked. A navigation with nothing to show is left out, as
/// Graph does for messages without the requested property.
fn ext_props(o: &mut Obj, props: &[ExtProp], e: &Expand) {
    let pick = |sel: &ExtSelection, multi: bool| -> Vec<Value> {
        props
            .iter()
            .filter(|p| matches!(p.value, ExtValue::Multi(_)) == multi && sel.selects(&p.id))
            .map(|p| json!({"id": p.id, "value": p.value}))
            .collect()
    };
    if let Some(sel) = &e.single {
        let v = pick(sel, false);
        if !v.is_empty() {
            o.put("singleValueExtendedProperties", Value::Array(v));
        }
    }
    if let Some(sel) = &e.multi {
        let v = pick(sel, true);
        if !v.is_empty() {
            o.put("multiValueExtendedProperties", Value::Array(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn timestamps_are_whole_seconds_utc() {
        assert_eq!(
            timestamp(datetime!(2021-09-15 14:16:38.999 +02:00)),
            "2021-09-15T12:16:38Z"
        );
    }

    #[test]
    fn obj_keeps_order() {
        let mut o = Obj::new();
        o.put("z", 1).put("a", 2);
        assert_eq!(o.to_json(), r#"{"z":1,"a":2}"#);
        let c = Collection {
            context: "c".into(),
            count: Some(1),
            value: vec![o],
            next_link: Some("n".into()),
            delta_link: None,
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"@odata.context":"c","@odata.count":1,"value":[{"z":1,"a":2}],"@odata.nextLink":"n"}"#
        );
    }
}
