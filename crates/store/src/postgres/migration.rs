//! [`RawTables`] on the PostgreSQL engine: lossless row export (a streamed
//! query in one snapshot) and import (binary `COPY`, which keeps the given
//! identity keys) for `graphbox admin migrate`.

use async_trait::async_trait;
use futures::StreamExt;
use tokio_postgres::Row as PgRow;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::PgMetaStore;
use crate::domain::{Result, StoreError};
use crate::migration::{ColumnType, KEY_COUNTERS, RawTables, Row, RowStream, Table, Value};

type Boxed = Box<dyn ToSql + Sync + Send>;

fn pg_type(t: ColumnType) -> Type {
    match t {
        ColumnType::Int => Type::INT8,
        ColumnType::SmallInt => Type::INT2,
        ColumnType::Bool => Type::BOOL,
        ColumnType::Text => Type::TEXT,
        ColumnType::Bytes => Type::BYTEA,
    }
}

fn read_value(t: &Table, r: &PgRow, i: usize) -> Result<Value> {
    Ok(match t.columns[i].ty {
        ColumnType::Int => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
        ColumnType::SmallInt => r
            .try_get::<_, Option<i16>>(i)?
            .map(|v| Value::Int(i64::from(v))),
        ColumnType::Bool => r
            .try_get::<_, Option<bool>>(i)?
            .map(|v| Value::Int(i64::from(v))),
        ColumnType::Text => r.try_get::<_, Option<String>>(i)?.map(Value::Text),
        ColumnType::Bytes => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Bytes),
    }
    .unwrap_or(Value::Null))
}

/// The value bound for a column of type `ty` (rows are checked beforehand).
fn bind(ty: ColumnType, v: &Value) -> Boxed {
    match (ty, v) {
        (ColumnType::Int, Value::Int(i)) => Box::new(*i),
        (ColumnType::Int, _) => Box::new(None::<i64>),
        (ColumnType::SmallInt, Value::Int(i)) => Box::new(*i as i16),
        (ColumnType::SmallInt, _) => Box::new(None::<i16>),
        (ColumnType::Bool, Value::Int(i)) => Box::new(*i != 0),
        (ColumnType::Bool, _) => Box::new(None::<bool>),
        (ColumnType::Text, Value::Text(s)) => Box::new(s.clone()),
        (ColumnType::Text, _) => Box::new(None::<String>),
        (ColumnType::Bytes, Value::Bytes(b)) => Box::new(b.clone()),
        (ColumnType::Bytes, _) => Box::new(None::<Vec<u8>>),
    }
}

/// PostgreSQL's derived `items.category_keys`: the categories, lower-cased.
fn category_keys(table: &Table, row: &Row) -> Result<Vec<String>> {
    let i = table
        .columns
        .iter()
        .position(|c| c.name == "categories")
        .ok_or_else(|| StoreError::Backend("items has no categories column".into()))?;
    let Value::Text(json) = &row[i] else {
        return Err(StoreError::Invalid("items.categories must be text".into()));
    };
    let cats: Vec<String> = serde_json::from_str(json).map_err(|e| {
        StoreError::Invalid(format!(
            "items.categories {json:?} is not a JSON list of strings: {e}"
        ))
    })?;
    Ok(cats.iter().map(|c| c.to_lowercase()).collect())
}

fn counter_sql(table: &str, column: &str) -> String {
    format!(
        "SELECT GREATEST( \
           COALESCE(pg_sequence_last_value(pg_get_serial_sequence('{table}', '{column}')), 0), \
           COALESCE((SELECT MAX({column}) FROM {table}), 0))::BIGINT"
    )
}

#[async_trait]
impl RawTables for PgMetaStore {
    async fn count_rows(&self, table: &'static Table) -> Result<u64> {
        let client = self.client().await?;
        let n: i64 = client
            .query_one(&format!("SELECT COUNT(*) FROM {}", table.name), &[])
            .await?
            .try_get(0)?;
        Ok(n.max(0) as u64)
    }

    fn export_rows(&self, table: &'static Table, batch: usize) -> RowStream {
        let (send, recv) = tokio::sync::mpsc::channel::<Result<Vec<Row>>>(2);
        let this = self.clone();
        let batch = batch.max(1);
        tokio::spawn(async move {
            let res: Result<()> = async {
                let mut client = this.client().await?;
                let tx = client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await?;
                let rows = tx
                    .query_raw(&table.select_sql(), Vec::<&(dyn ToSql + Sync)>::new())
                    .await?;
                let mut rows = std::pin::pin!(rows);
                let mut buf = Vec::with_capacity(batch);
                while let Some(r) = rows.next().await {
                    let r = r?;
                    let row = (0..table.columns.len())
                        .map(|i| read_value(table, &r, i))
                        .collect::<Result<Row>>()?;
                    buf.push(row);
                    if buf.len() == batch {
                        let full = std::mem::replace(&mut buf, Vec::with_capacity(batch));
                        send.send(Ok(full))
                            .await
                            .map_err(|_| StoreError::Backend("the export was cancelled".into()))?;
                    }
                }
                if !buf.is_empty() {
                    send.send(Ok(buf))
                        .await
                        .map_err(|_| StoreError::Backend("the export was cancelled".into()))?;
                }
                let _ = tx.rollback().await;
                Ok(())
            }
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
        let is_items = table.name == "items";
        let mut types: Vec<Type> = table.columns.iter().map(|c| pg_type(c.ty)).collect();
        let mut cols = table.column_list();
        if is_items {
            types.push(Type::TEXT_ARRAY);
            cols.push_str(", category_keys");
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // COPY keeps the given values of identity columns (like INSERT …
        // OVERRIDING SYSTEM VALUE), so internal keys survive.
        let sink = tx
            .copy_in(&format!(
                "COPY {} ({cols}) FROM STDIN (FORMAT binary)",
                table.name
            ))
            .await?;
        let writer = BinaryCopyInWriter::new(sink, &types);
        let mut writer = std::pin::pin!(writer);
        for r in &rows {
            let mut vals: Vec<Boxed> = table
                .columns
                .iter()
                .zip(r)
                .map(|(c, v)| bind(c.ty, v))
                .collect();
            if is_items {
                vals.push(Box::new(category_keys(table, r)?));
            }
            let refs: Vec<&(dyn ToSql + Sync)> = vals
                .iter()
                .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                .collect();
            writer.as_mut().write(&refs).await?;
        }
        let n = writer.as_mut().finish().await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn key_counters(&self) -> Result<Vec<(String, i64)>> {
        let client = self.client().await?;
        let mut out = Vec::new();
        for (t, c) in KEY_COUNTERS {
            let v: i64 = client
                .query_one(&counter_sql(t, c), &[])
                .await?
                .try_get(0)?;
            out.push((t.to_string(), v));
        }
        Ok(out)
    }

    async fn finish_import(&self, counters: &[(String, i64)]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for (t, c) in KEY_COUNTERS {
            let given = counters
                .iter()
                .find(|(n, _)| n == t)
                .map(|(_, v)| *v)
                .unwrap_or(0);
            let present: i64 = tx
                .query_one(
                    &format!("SELECT COALESCE(MAX({c}), 0)::BIGINT FROM {t}"),
                    &[],
                )
                .await?
                .try_get(0)?;
            let next = given.max(present);
            if next > 0 {
                tx.execute(
                    &format!("SELECT setval(pg_get_serial_sequence('{t}', '{c}'), $1)"),
                    &[&next],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
