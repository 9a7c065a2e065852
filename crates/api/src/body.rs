//! JSON request bodies with member names matched case-insensitively.
//!
//! Graph's front end matches request member names without regard to case, and
//! clients rely on it: a Microsoft engineer's sample posts `ItemIds` to
//! `exportItems`, the import body is documented in PascalCase (`FolderId`,
//! `Mode`, `Data`) while responses are camelCase. A strict serde struct would
//! reject those, so bodies are read through [`GraphJson`], which renames each
//! object member to the struct field it equals case-insensitively before
//! serde sees it (exact matches win; nested structs, `Option`s, sequences and
//! maps are handled recursively). Unknown members stay unknown, so
//! `#[serde(deny_unknown_fields)]` still works; two members that differ only
//! in case become a duplicate-field error instead of one silently winning.
//! Enum payloads and `#[serde(flatten)]` structs are matched exactly.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::value::StringDeserializer;
use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Axum extractor: the request body as `T`, member names case-insensitive.
/// An empty body reads as `{}` (Graph actions such as `createImportSession`
/// take no body, and clients send nothing, `{}` or a stray member).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphJson<T>(pub T);

impl<S, T> FromRequest<S> for GraphJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("Could not read the request body: {e}.")))?;
        from_slice(&bytes).map(GraphJson)
    }
}

/// Parses a JSON body into `T`, member names case-insensitive; 400 with the
/// parser's explanation when it does not fit.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!("The request body is not valid JSON: {e}."))
        })?
    };
    from_value(value).map_err(|e| {
        ApiError::bad_request(format!("The request body does not fit this request: {e}."))
    })
}

/// Deserializes `T` from a JSON value, member names case-insensitive.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    T::deserialize(Ci(value))
}

/// A JSON value whose objects are read with case-insensitive member names.
struct Ci(Value);

impl<'de> Deserializer<'de> for Ci {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(m) => visitor.visit_map(CiMap::new(m, None)),
            Value::Array(a) => visitor.visit_seq(CiSeq(a.into_iter())),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(m) => visitor.visit_map(CiMap::new(m, Some(fields))),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Ci(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

struct CiMap {
    entries: std::vec::IntoIter<(String, Value)>,
    pending: Option<Value>,
}

impl CiMap {
    fn new(m: Map<String, Value>, fields: Option<&'static [&'static str]>) -> Self {
        let entries: Vec<(String, Value)> = m
            .into_iter()
            .map(|(k, v)| {
                let k = match fields {
                    Some(fields) if !fields.contains(&k.as_str()) => fields
                        .iter()
                        .find(|f| f.eq_ignore_ascii_case(&k))
                        .map_or(k, |f| (*f).to_owned()),
                    _ => k,
                };
                (k, v)
            })
            .collect();
        CiMap {
            entries: entries.into_iter(),
            pending: None,
        }
    }
}

impl<'de> MapAccess<'de> for CiMap {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.entries.next() {
            Some((k, v)) => {
                self.pending = Some(v);
                let de: StringDeserializer<serde_json::Error> = k.into_deserializer();
                seed.deserialize(de).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let v = self.pending.take().unwrap_or(Value::Null);
        seed.deserialize(Ci(v))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct CiSeq(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for CiSeq {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0.next().map(|v| seed.deserialize(Ci(v))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Export {
        item_ids: Vec<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Import {
        folder_id: String,
        mode: String,
        data: String,
        item_id: Option<String>,
        change_key: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Prop {
        id: String,
        value: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct NewFolder {
        display_name: String,
        #[serde(rename = "type")]
        class: Option<String>,
        #[serde(default)]
        single_value_extended_properties: Vec<Prop>,
    }

    #[test]
    fn member_names_are_case_insensitive() {
        let e: Export = from_slice(br#"{"ItemIds":["a","b"]}"#).unwrap();
        assert_eq!(e.item_ids, ["a", "b"]);
        let e: Export = from_slice(br#"{"itemids":[]}"#).unwrap();
        assert!(e.item_ids.is_empty());

        let i: Import = from_slice(br#"{"FolderId":"f","Mode":"create","Data":"AQ=="}"#).unwrap();
        assert_eq!(i.folder_id, "f");
        assert_eq!(i.item_id, None);
        let i: Import = from_slice(
            br#"{"folderId":"f","MODE":"update","data":"","ItemId":"i","CHANGEKEY":"k"}"#,
        )
        .unwrap();
        assert_eq!(
            (i.item_id.as_deref(), i.change_key.as_deref()),
            (Some("i"), Some("k"))
        );

        let f: NewFolder = from_slice(
            br#"{"DisplayName":"X","Type":"IPF.Note","SingleValueExtendedProperties":[{"Id":"String 0x3001","VALUE":"X"}]}"#,
        )
        .unwrap();
        assert_eq!(f.class.as_deref(), Some("IPF.Note"));
        assert_eq!(
            f.single_value_extended_properties,
            [Prop {
                id: "String 0x3001".into(),
                value: "X".into()
            }]
        );
    }

    #[test]
    fn bad_bodies_are_400() {
        // Unknown members are still refused where the struct says so.
        let e = from_slice::<Export>(br#"{"ItemIds":[],"extra":1}"#).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(e.message.contains("extra"), "{}", e.message);
        // Two spellings of one member are a duplicate, not a silent pick.
        let e = from_slice::<Export>(br#"{"ItemIds":["a"],"itemIds":["b"]}"#).unwrap_err();
        assert!(e.message.contains("duplicate"), "{}", e.message);
        let e = from_slice::<Export>(b"{not json").unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = from_slice::<Export>(br#"{"ItemIds":"a"}"#).unwrap_err();
        assert!(e.message.contains("does not fit"), "{}", e.message);
        // Missing required member.
        assert!(from_slice::<Export>(b"").is_err());
        // An empty body is {} for bodies with nothing required.
        #[derive(Debug, Deserialize)]
        struct Nothing {}
        assert!(from_slice::<Nothing>(b"  ").is_ok());
    }
}
