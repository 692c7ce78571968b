//! Feeder CSVs for the load plans: a header row, then rows. Written to a
//! temporary file beside the target and renamed, so a plan never reads half a file.

use crate::Error;
use crate::model::{Export, ExportSource, Model};
use crate::value::Value;
use std::path::Path;
use tokio_postgres::{Client, SimpleQueryMessage};
use volley_protocols::pg::describe;

pub async fn write(model: &Model, ex: &Export, client: Option<&Client>) -> Result<u64, Error> {
    match &ex.source {
        ExportSource::Columns {
            table,
            columns,
            header,
        } => {
            let t = &model.tables[*table];
            let rows = ex.limit.map_or(t.rows, |l| l.min(t.rows));
            let order = t.needed(columns);
            atomic_csv(&ex.file, |w| {
                w.write_record(header)?;
                let mut vals = vec![Value::Null; t.columns.len()];
                let mut fields: Vec<String> = vec![String::new(); columns.len()];
                for row in 0..rows {
                    t.eval(row, &order, &mut vals, true);
                    for (f, c) in fields.iter_mut().zip(columns) {
                        f.clear();
                        vals[*c].write_text(f);
                    }
                    w.write_record(&fields)?;
                }
                Ok(rows)
            })
        }
        ExportSource::Query(q) => {
            let Some(c) = client else {
                return Err(Error::Db(format!(
                    "export.{}: a query needs the database",
                    ex.name
                )));
            };
            let msgs = c
                .simple_query(q)
                .await
                .map_err(|e| Error::Db(format!("export.{}: {}", ex.name, describe(&e))))?;
            let mut header: Option<Vec<String>> = None;
            let mut rows: Vec<Vec<String>> = Vec::new();
            for m in msgs {
                match m {
                    SimpleQueryMessage::RowDescription(cols) => {
                        header.get_or_insert_with(|| {
                            cols.iter().map(|c| c.name().to_string()).collect()
                        });
                    }
                    SimpleQueryMessage::Row(r) => {
                        if header.is_none() {
                            header =
                                Some(r.columns().iter().map(|c| c.name().to_string()).collect());
                        }
                        if ex.limit.is_some_and(|l| rows.len() as u64 >= l) {
                            continue;
                        }
                        rows.push(
                            (0..r.len())
                                .map(|i| r.get(i).unwrap_or("").to_string())
                                .collect(),
                        );
                    }
                    _ => {}
                }
            }
            let Some(header) = header else {
                return Err(Error::Db(format!(
                    "export.{}: the query returned no columns",
                    ex.name
                )));
            };
            atomic_csv(&ex.file, |w| {
                w.write_record(&header)?;
                for r in &rows {
                    w.write_record(r)?;
                }
                Ok(rows.len() as u64)
            })
        }
    }
}

fn atomic_csv(
    path: &Path,
    f: impl FnOnce(&mut csv::Writer<std::fs::File>) -> Result<u64, csv::Error>,
) -> Result<u64, Error> {
    let io = |e: &dyn std::fmt::Display| Error::Io(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(&e))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(|e| io(&e))?;
        let mut w = csv::Writer::from_writer(file);
        let n = f(&mut w).map_err(|e| io(&e))?;
        let file = w.into_inner().map_err(|e| io(&e))?;
        file.sync_all().map_err(|e| io(&e))?;
        std::fs::rename(&tmp, path).map_err(|e| io(&e))?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
