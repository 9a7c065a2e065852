//! [`RawTables`] on the SQLite engine: lossless row export and import for
//! `graphbox admin migrate`.

use async_trait::async_trait;
use futures::StreamExt;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{OptionalExtension, params_from_iter};

use super::SqliteMetaStore;
use crate::domain::{Result, StoreError};
use crate::migration::{ColumnType, KEY_COUNTERS, RawTables, Row, RowStream, Table, Value};

fn to_value(t: &Table, i: usize, v: ValueRef<'_>) -> Result<Value> {
    let c = &t.columns[i];
    let wrong = |got: &str| {
        StoreError::Backend(format!(
            "sqlite: column {}.{} holds {got}, expected {:?}",
            t.name, c.name, c.ty
        ))
    };
    Ok(match (c.ty, v) {
        (_, ValueRef::Null) => Value::Null,
        (ColumnType::Int | ColumnType::SmallInt | ColumnType::Bool, ValueRef::Integer(i)) => {
            Value::Int(i)
        }
        (ColumnType::Text, ValueRef::Text(b)) => {
            Value::Text(String::from_utf8(b.to_vec()).map_err(|_| wrong("text that is not UTF-8"))?)
        }
        (ColumnType::Bytes, ValueRef::Blob(b)) => Value::Bytes(b.to_vec()),
        (_, ValueRef::Integer(_)) => return Err(wrong("an integer")),
        (_, ValueRef::Real(_)) => return Err(wrong("a real")),
        (_, ValueRef::Text(_)) => return Err(wrong("text")),
        (_, ValueRef::Blob(_)) => return Err(wrong("a blob")),
    })
}

fn to_sql(v: Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Int(i) => SqlValue::Integer(i),
        Value::Text(s) => SqlValue::Text(s),
        Value::Bytes(b) => SqlValue::Blob(b),
    }
}

/// Only the folder key counter survives deletes on SQLite (`AUTOINCREMENT`);
/// the others are plain rowids (the highest key present plus one).
fn counter_sql(table: &str, column: &str) -> String {
    if table == "folders" {
        format!(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'folders'), 0), \
             COALESCE((SELECT MAX({column}) FROM {table}), 0))"
        )
    } else {
        format!("SELECT COALESCE(MAX({column}), 0) FROM {table}")
    }
}

#[async_trait]
impl RawTables for SqliteMetaStore {
    async fn count_rows(&self, table: &'static Table) -> Result<u64> {
        self.read(move |tx| {
            let n: i64 =
                tx.query_row(&format!("SELECT COUNT(*) FROM {}", table.name), [], |r| {
                    r.get(0)
                })?;
            Ok(n.max(0) as u64)
        })
        .await
    }

    fn export_rows(&self, table: &'static Table, batch: usize) -> RowStream {
        let (send, recv) = tokio::sync::mpsc::channel::<Result<Vec<Row>>>(2);
        let this = self.clone();
        let batch = batch.max(1);
        tokio::spawn(async move {
            let out = send.clone();
            let res = this
                .read(move |tx| {
                    let mut st = tx.prepare(&table.select_sql())?;
                    let mut rows = st.query([])?;
                    let mut buf = Vec::with_capacity(batch);
                    while let Some(r) = rows.next()? {
                        let row = (0..table.columns.len())
                            .map(|i| to_value(table, i, r.get_ref(i)?))
                            .collect::<Result<Row>>()?;
                        buf.push(row);
                        if buf.len() == batch {
                            let full = std::mem::replace(&mut buf, Vec::with_capacity(batch));
                            out.blocking_send(Ok(full)).map_err(|_| {
                                StoreError::Backend("the export was cancelled".into())
                            })?;
                        }
                    }
                    if !buf.is_empty() {
                        out.blocking_send(Ok(buf))
                            .map_err(|_| StoreError::Backend("the export was cancelled".into()))?;
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = res {
                let _ = send.send(Err(e)).await;
            }
        });
        futures::stream::unfold(recv, |mut r| async move { r.recv().await.map(|x| (x, r)) }).boxed()
    }

    async fn import_rows(&self, table: &'static Table, rows: Vec<Row>) -> Result<u64> {
        for r in &rows {
            table.check_row(r)?;
        }
        self.write(move |tx| {
            let placeholders = (1..=table.columns.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut st = tx.prepare_cached(&format!(
                "INSERT INTO {} ({}) VALUES ({placeholders})",
                table.name,
                table.column_list()
            ))?;
            let mut n = 0u64;
            for r in rows {
                n += st.execute(params_from_iter(r.into_iter().map(to_sql)))? as u64;
            }
            Ok(n)
        })
        .await
    }

    async fn key_counters(&self) -> Result<Vec<(String, i64)>> {
        self.read(|tx| {
            KEY_COUNTERS
                .iter()
                .map(|(t, c)| {
                    let v: i64 = tx.query_row(&counter_sql(t, c), [], |r| r.get(0))?;
                    Ok((t.to_string(), v))
                })
                .collect()
        })
        .await
    }

    async fn finish_import(&self, counters: &[(String, i64)]) -> Result<()> {
        let folders = counters
            .iter()
            .find(|(t, _)| t == "folders")
            .map(|(_, v)| *v)
            .unwrap_or(0);
        self.write(move |tx| {
            let present: i64 = tx.query_row(&counter_sql("folders", "fk"), [], |r| r.get(0))?;
            let next = present.max(folders);
            let has_row: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM sqlite_sequence WHERE name = 'folders'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            if has_row.is_some() {
                tx.execute(
                    "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'folders'",
                    [next],
                )?;
            } else if next > 0 {
                tx.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES ('folders', ?1)",
                    [next],
                )?;
            }
            Ok(())
        })
        .await
    }
}
