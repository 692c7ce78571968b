//! Every generator against its column's type, before anything is written.

use crate::catalog::{TableInfo, ident};
use crate::encode::Enc;
use crate::generator::Gen;
use crate::model::{Model, Table};
use crate::spec::SpecError;
use crate::value::{Kind, Value};

/// One table as it will be loaded.
#[derive(Debug, Clone)]
pub struct Target {
    pub table: usize,
    pub sql_name: String,
    /// (model column, encoding) in COPY order.
    pub cols: Vec<(usize, Enc)>,
    pub copy_sql: String,
    /// Columns that identify a seeded row (primary key or a unique key), for --cleanup.
    pub key: Option<Vec<usize>>,
    /// Sequences behind generated columns, moved past the seeded values afterwards.
    pub sequences: Vec<(usize, String)>,
}

impl Target {
    /// Without a database (dry runs): types follow from the generators.
    pub fn inferred(model: &Model, ti: usize) -> Self {
        let t = &model.tables[ti];
        let cols: Vec<(usize, Enc)> = (0..t.columns.len())
            .map(|c| (c, Enc::default_for(t.columns[c].kind)))
            .collect();
        Self {
            table: ti,
            sql_name: ident(&t.name),
            copy_sql: copy_sql(&ident(&t.name), t, &cols),
            cols,
            key: None,
            sequences: Vec::new(),
        }
    }
}

fn copy_sql(sql_name: &str, t: &Table, cols: &[(usize, Enc)]) -> String {
    let names: Vec<String> = cols
        .iter()
        .map(|(c, _)| ident(&t.columns[*c].name))
        .collect();
    format!(
        "COPY {sql_name} ({}) FROM STDIN (FORMAT binary)",
        names.join(", ")
    )
}

fn what(g: &Gen, kind: Kind) -> String {
    match g {
        Gen::Ref(r) => format!("{} (copied from {}.{})", kind.name(), r.table, r.column),
        _ => kind.name().to_string(),
    }
}

/// The smallest and largest whole number a generator can make, when known.
fn int_bounds(g: &Gen, rows: u64) -> Option<(i64, i64)> {
    match g {
        Gen::Seq {
            start,
            step,
            repeat,
        } => {
            let steps = i64::try_from(rows.saturating_sub(1) / repeat).unwrap_or(i64::MAX);
            let last = start.saturating_add(steps.saturating_mul(*step));
            Some((*start.min(&last), *start.max(&last)))
        }
        Gen::Int { min, max, .. } => Some((*min, *max)),
        Gen::Const(Value::Int(i)) => Some((*i, *i)),
        Gen::Choice { values, .. } => {
            let ints: Vec<i64> = values
                .iter()
                .filter_map(|v| {
                    if let Value::Int(i) = v {
                        Some(*i)
                    } else {
                        None
                    }
                })
                .collect();
            Some((*ints.iter().min()?, *ints.iter().max()?))
        }
        _ => None,
    }
}

/// Fixed texts a generator can make (choice values, constants).
fn fixed_texts(g: &Gen) -> Vec<&str> {
    match g {
        Gen::Const(Value::Text(s)) => vec![s],
        Gen::Choice { values, .. } => values.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

pub fn check(model: &Model, infos: &[Option<TableInfo>]) -> Result<Vec<Target>, Vec<SpecError>> {
    let mut errors = Vec::new();
    let mut targets = Vec::new();
    for (ti, t) in model.tables.iter().enumerate() {
        let Some(info) = &infos[ti] else {
            let hint = if model.ddl.is_some() {
                "the ddl file did not create it"
            } else {
                "create it first or set ddl = \"schema.sql\" at the top of the spec"
            };
            errors.push(model.error(
                Some(t.span.clone()),
                format!("table {} does not exist in the database; {hint}", t.name),
            ));
            continue;
        };
        let mut cols = Vec::new();
        for (ci, col) in t.columns.iter().enumerate() {
            let at = Some(col.span.clone());
            let here = format!("{}.{} (gen = {:?})", t.name, col.name, col.gen_name);
            let Some(ci_db) = info.column(&col.name) else {
                let have: Vec<&str> = info.columns.iter().map(|c| c.name.as_str()).collect();
                errors.push(model.error(
                    at,
                    format!(
                        "{}.{}: no such column in {} (it has: {})",
                        t.name,
                        col.name,
                        info.sql_name,
                        have.join(", ")
                    ),
                ));
                continue;
            };
            if ci_db.generated {
                errors.push(model.error(
                    at,
                    format!("{here}: the column is GENERATED ALWAYS AS (...) by PostgreSQL; remove it from the spec"),
                ));
                continue;
            }
            let ty = &ci_db.type_name;
            let Some(enc) = Enc::for_type(ci_db.base_oid, &ci_db.base_name, ci_db.is_enum) else {
                errors.push(model.error(
                    at,
                    format!("{here}: column type {ty} is not one the seeder writes (integers, numeric, float, bool, text, varchar, char, enums, uuid, timestamp, date, json, jsonb)"),
                ));
                continue;
            };
            if !enc.accepts(col.kind) {
                errors.push(model.error(
                    at,
                    format!(
                        "{here}: column type {ty} does not fit this generator, which makes {}",
                        what(&col.generator, col.kind)
                    ),
                ));
                continue;
            }
            if let (Some((lo, hi)), Some((a, b))) =
                (enc.int_range(), int_bounds(&col.generator, t.rows))
                && (a < lo || b > hi)
            {
                errors.push(model.error(
                    at.clone(),
                    format!("{here}: values {a}..{b} do not fit column type {ty} ({lo}..{hi})"),
                ));
            }
            if ci_db.is_enum && !matches!(col.generator, Gen::Ref(_)) {
                let texts = fixed_texts(&col.generator);
                if texts.is_empty() {
                    errors.push(model.error(
                        at.clone(),
                        format!(
                            "{here}: column type {ty} is an enum ({}); use gen = \"choice\" or \"const\" with its labels",
                            ci_db.enum_labels.join(", ")
                        ),
                    ));
                }
                for s in texts {
                    if !ci_db.enum_labels.iter().any(|l| l == s) {
                        errors.push(model.error(
                            at.clone(),
                            format!(
                                "{here}: {s:?} is not a label of enum {ty} ({})",
                                ci_db.enum_labels.join(", ")
                            ),
                        ));
                    }
                }
            }
            if let Some(n) = ci_db.max_len {
                for s in fixed_texts(&col.generator) {
                    if s.chars().count() > n {
                        errors.push(model.error(
                            at.clone(),
                            format!("{here}: {s:?} is longer than column type {ty} allows"),
                        ));
                    }
                }
            }
            if col.null_ratio > 0.0 && ci_db.not_null {
                errors.push(model.error(
                    at.clone(),
                    format!(
                        "{here}: null_ratio = {} but the column is NOT NULL",
                        col.null_ratio
                    ),
                ));
            }
            cols.push((ci, enc));
        }
        // Columns the spec leaves out must be able to fill themselves.
        for c in &info.columns {
            if c.not_null
                && !c.has_default
                && !c.generated
                && !t.columns.iter().any(|k| k.name == c.name)
            {
                errors.push(model.error(
                    Some(t.span.clone()),
                    format!(
                        "{}.{} ({}) is NOT NULL and has no default: add a generator for it to [tables.{}.columns]",
                        t.name, c.name, c.type_name, t.name
                    ),
                ));
            }
        }
        // Unique keys of one column need a generator that cannot repeat.
        if t.rows > 1 {
            for u in info.uniques.iter().filter(|u| u.len() == 1) {
                if let Some(col) = t.columns.iter().find(|c| c.name == u[0])
                    && !col.generator.is_unique()
                    && col.null_ratio < 1.0
                {
                    errors.push(model.error(
                        Some(col.span.clone()),
                        format!(
                            "{}.{} (gen = {:?}) has a unique index in the database but its generator can repeat values; use seq or uuid, or add unique = true (int, email, username, name, ref)",
                            t.name, col.name, col.gen_name
                        ),
                    ));
                }
            }
        }
        // Foreign keys must point where the spec's refs point.
        for fk in info.fks.iter().filter(|f| f.columns.len() == 1) {
            let Some(col) = t.columns.iter().find(|c| c.name == fk.columns[0]) else {
                continue;
            };
            let parent = infos
                .iter()
                .position(|i| i.as_ref().is_some_and(|i| i.oid == fk.ref_oid));
            let ok = match (&col.generator, parent) {
                (Gen::Ref(r), Some(p)) => r.table_idx == p && r.column == fk.ref_columns[0],
                (Gen::Const(_), None) => true,
                _ => col.null_ratio >= 1.0,
            };
            if !ok {
                let fix = match parent {
                    Some(p) => format!(
                        "use gen = \"ref\", table = {:?}, column = {:?}",
                        model.tables[p].name, fk.ref_columns[0]
                    ),
                    None => format!("add {} to the spec and use gen = \"ref\"", fk.ref_table),
                };
                errors.push(model.error(
                    Some(col.span.clone()),
                    format!(
                        "{}.{} (gen = {:?}) has foreign key {} to {}({}): {fix}",
                        t.name,
                        col.name,
                        col.gen_name,
                        fk.name,
                        fk.ref_table,
                        fk.ref_columns.join(", ")
                    ),
                ));
            }
        }
        let pos = |names: &[String]| -> Option<Vec<usize>> {
            names
                .iter()
                .map(|n| t.columns.iter().position(|c| c.name == *n))
                .collect()
        };
        let key = if info.primary_key.is_empty() {
            None
        } else {
            pos(&info.primary_key)
        }
        .or_else(|| info.uniques.iter().find_map(|u| pos(u)));
        let sequences = cols
            .iter()
            .filter_map(|(c, _)| {
                let db = info.column(&t.columns[*c].name)?;
                Some((*c, db.serial_seq.clone()?))
            })
            .filter(|(c, _)| t.columns[*c].kind == Kind::Int)
            .collect();
        targets.push(Target {
            table: ti,
            sql_name: info.sql_name.clone(),
            copy_sql: copy_sql(&info.sql_name, t, &cols),
            cols,
            key,
            sequences,
        });
    }
    if errors.is_empty() {
        Ok(targets)
    } else {
        Err(errors)
    }
}
