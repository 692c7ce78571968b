//! The spec compiled: tables in dependency order with their row counts and
//! generators, ready to make any row on demand.

use crate::compile::{self, Ctx};
use crate::fakes::{LOCALES, Locale};
use crate::fit::{human_bytes, memory_limit, value_bytes};
use crate::generator::{Cell, Gen, RefReady};
use crate::progress::thousands;
use crate::rng::{Permutation, Rng, Zipf, column_key};
use crate::spec::{SpecError, SpecFile};
use crate::value::{Kind, Value};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

pub struct Column {
    pub name: String,
    pub span: Range<usize>,
    pub generator: Gen,
    pub gen_name: String,
    /// None only while a ref is unresolved.
    pub kind: Kind,
    pub null_ratio: f64,
    pub null_key: u64,
    pub key: u64,
    pub deps: Vec<usize>,
}

pub struct PerParent {
    pub column: usize,
    pub parent: usize,
    /// offsets[p]..offsets[p+1] are the rows of parent p's children. Empty
    /// in dry runs, which only count the rows.
    pub offsets: Vec<u64>,
    /// The parent's rows, and the most children one of them has.
    pub parents: u64,
    pub max_group: u64,
}

pub struct Table {
    pub name: String,
    pub span: Range<usize>,
    pub columns: Vec<Column>,
    /// Column evaluation order (same-row dependencies first).
    pub order: Vec<usize>,
    pub rows: u64,
    pub per_parent: Option<PerParent>,
    /// Tables this one references.
    pub parents: Vec<usize>,
}

pub enum ExportSource {
    /// Generated columns, with the header names to write.
    Columns {
        table: usize,
        columns: Vec<usize>,
        header: Vec<String>,
    },
    Query(String),
}

pub struct Export {
    pub name: String,
    pub file: PathBuf,
    pub source: ExportSource,
    pub limit: Option<u64>,
}

pub struct Model {
    pub spec: SpecFile,
    pub tables: Vec<Table>,
    /// Table indexes, parents before children.
    pub order: Vec<usize>,
    pub ddl: Option<PathBuf>,
    pub exports: Vec<Export>,
}

impl Model {
    /// `full`: every row will be made (a seed or a cleanup); otherwise (a
    /// dry run) per_parent groups are only counted, not kept.
    pub fn build(spec: SpecFile, seed: u64, scale: f64, full: bool) -> Result<Self, SpecError> {
        let src = spec.src.clone();
        let e = |span: Option<Range<usize>>, m: String| src.error(span, m);
        if !(scale > 0.0 && scale.is_finite()) {
            return Err(e(None, format!("--scale {scale} must be above 0")));
        }
        let locale = match &spec.raw.locale {
            Some(l) => Locale::parse(l.get_ref()).ok_or_else(|| {
                e(
                    Some(l.span()),
                    format!("unknown locale {:?}; use one of: {LOCALES}", l.get_ref()),
                )
            })?,
            None => Locale::En,
        };
        let names: Vec<String> = spec
            .raw
            .tables
            .0
            .iter()
            .map(|(k, _)| k.get_ref().clone())
            .collect();
        let mut tables = Vec::new();
        let mut raw_rows = Vec::new();
        for (tname, traw) in &spec.raw.tables.0 {
            let t = traw.get_ref();
            let cols: Vec<String> = t
                .columns
                .0
                .iter()
                .map(|(k, _)| k.get_ref().clone())
                .collect();
            if cols.is_empty() {
                return Err(e(
                    Some(tname.span()),
                    format!(
                        "table {}: no columns; add [tables.{}.columns] with a generator per column",
                        tname.get_ref(),
                        tname.get_ref()
                    ),
                ));
            }
            let hint = t
                .rows
                .as_ref()
                .map_or(0, |r| scaled_rows(*r.get_ref(), scale).unwrap_or(MAX_ROWS));
            let mut columns = Vec::new();
            for (cname, craw) in &t.columns.0 {
                let cx = Ctx {
                    seed,
                    table: tname.get_ref(),
                    column: cname.get_ref(),
                    columns: &cols,
                    locale,
                    span: craw.span(),
                };
                let raw = craw.get_ref();
                let (g, kind) =
                    compile::compile(&cx, raw, hint).map_err(|ge| e(ge.span, ge.message))?;
                let null_ratio = raw.null_ratio.as_ref().map_or(0.0, |n| *n.get_ref());
                if !(0.0..=1.0).contains(&null_ratio) {
                    return Err(e(
                        raw.null_ratio.as_ref().map(|n| n.span()),
                        format!(
                            "{}.{}: null_ratio is between 0 and 1",
                            tname.get_ref(),
                            cname.get_ref()
                        ),
                    ));
                }
                let mut deps = Vec::new();
                g.deps(&mut deps);
                columns.push(Column {
                    name: cname.get_ref().clone(),
                    span: craw.span(),
                    gen_name: raw
                        .r#gen
                        .as_ref()
                        .map(|g| g.get_ref().clone())
                        .unwrap_or_default(),
                    generator: g,
                    kind: kind.unwrap_or(Kind::Int),
                    null_ratio,
                    null_key: column_key(
                        seed,
                        tname.get_ref(),
                        &format!("{}\0null", cname.get_ref()),
                    ),
                    key: column_key(seed, tname.get_ref(), cname.get_ref()),
                    deps,
                });
            }
            let order = column_order(&columns).map_err(|c| {
                e(
                    Some(columns[c].span.clone()),
                    format!(
                        "{}.{}: its columns depend on each other in a circle",
                        tname.get_ref(),
                        columns[c].name
                    ),
                )
            })?;
            raw_rows.push(t.rows.clone());
            tables.push(Table {
                name: tname.get_ref().clone(),
                span: tname.span(),
                columns,
                order,
                rows: 0,
                per_parent: None,
                parents: Vec::new(),
            });
        }

        // Resolve refs to (table, column).
        for ti in 0..tables.len() {
            for ci in 0..tables[ti].columns.len() {
                let (pt, pc, span, per_parent) = {
                    let col = &tables[ti].columns[ci];
                    let Gen::Ref(r) = &col.generator else {
                        continue;
                    };
                    let Some(pt) = names.iter().position(|n| *n == r.table) else {
                        return Err(e(
                            Some(col.span.clone()),
                            format!(
                                "{}.{}: ref to table {:?}, which this spec does not seed (it has: {})",
                                tables[ti].name,
                                col.name,
                                r.table,
                                names.join(", ")
                            ),
                        ));
                    };
                    if pt == ti {
                        return Err(e(
                            Some(col.span.clone()),
                            format!(
                                "{}.{}: a table cannot reference itself",
                                tables[ti].name, col.name
                            ),
                        ));
                    }
                    let Some(pc) = tables[pt].columns.iter().position(|c| c.name == r.column)
                    else {
                        return Err(e(
                            Some(col.span.clone()),
                            format!(
                                "{}.{}: ref to {}.{}, which has no generator in this spec",
                                tables[ti].name, col.name, r.table, r.column
                            ),
                        ));
                    };
                    (pt, pc, col.span.clone(), r.per_parent)
                };
                if let Gen::Ref(r) = &mut tables[ti].columns[ci].generator {
                    r.table_idx = pt;
                    r.column_idx = pc;
                }
                if !tables[ti].parents.contains(&pt) {
                    tables[ti].parents.push(pt);
                }
                if per_parent.is_some() {
                    if tables[ti].per_parent.is_some() {
                        return Err(e(
                            Some(span),
                            format!(
                                "table {}: only one column can set per_parent",
                                tables[ti].name
                            ),
                        ));
                    }
                    tables[ti].per_parent = Some(PerParent {
                        column: ci,
                        parent: pt,
                        offsets: Vec::new(),
                        parents: 0,
                        max_group: 0,
                    });
                }
            }
        }

        let order = table_order(&tables).map_err(|cycle| {
            e(
                Some(tables[cycle[0]].span.clone()),
                format!(
                    "tables reference each other in a circle: {}; one of them must not ref the others",
                    cycle
                        .iter()
                        .map(|&t| tables[t].name.as_str())
                        .collect::<Vec<_>>()
                        .join(" -> ")
                ),
            )
        })?;

        // Memory held while seeding, counted before any of it is allocated.
        let (limit, has) = memory_limit();
        let mut held: u128 = 0;

        // Kinds of refs, row counts and per-parent groups, parents first.
        for &ti in &order {
            for ci in 0..tables[ti].columns.len() {
                if let Gen::Ref(r) = &tables[ti].columns[ci].generator {
                    let k = tables[r.table_idx].columns[r.column_idx].kind;
                    tables[ti].columns[ci].kind = k;
                }
            }
            let rows_raw = &raw_rows[ti];
            if let Some(pp) = &tables[ti].per_parent {
                let col = &tables[ti].columns[pp.column];
                if let Some(r) = rows_raw {
                    return Err(e(
                        Some(r.span()),
                        format!(
                            "table {}: rows comes from per_parent on {}; remove rows",
                            tables[ti].name, col.name
                        ),
                    ));
                }
                let Gen::Ref(r) = &col.generator else {
                    unreachable!()
                };
                let (lo, hi) = r.per_parent.expect("per_parent ref");
                let key = column_key(seed, &tables[ti].name, &format!("{}\0per_parent", col.name));
                let parent = &tables[pp.parent];
                let parent_rows = parent.rows;
                // One offset per parent row, and (as any ref) a copy of the parent's values.
                let each = 8 + value_bytes(parent.columns[r.column_idx].kind);
                let need = (u128::from(parent_rows) + 1) * each;
                if held + need > limit {
                    return Err(e(
                        Some(col.span.clone()),
                        format!(
                            "{}.{}: per_parent keeps an offset and a value per row of {} (~{each} bytes): {} for its {} rows{}, and {has} {}; at most {} rows of {} fit: lower tables.{}.rows or --scale",
                            tables[ti].name,
                            col.name,
                            parent.name,
                            human_bytes(need),
                            thousands(parent_rows),
                            besides(held),
                            human_bytes(limit),
                            thousands((limit.saturating_sub(held) / each).saturating_sub(1)),
                            parent.name,
                            parent.name
                        ),
                    ));
                }
                held += need;
                let mut offsets =
                    Vec::with_capacity(if full { parent_rows as usize + 1 } else { 0 });
                let mut acc = 0u64;
                let mut max_group = 0;
                if full {
                    offsets.push(0);
                }
                for p in 0..parent_rows {
                    let n = Rng::cell(key, p).range_i64(lo as i64, hi as i64) as u64;
                    max_group = max_group.max(n);
                    acc = acc
                        .checked_add(n)
                        .filter(|&n| n <= MAX_ROWS)
                        .ok_or_else(|| {
                            e(
                                Some(col.span.clone()),
                                format!(
                                    "{}.{}: per_parent = \"{lo}..{hi}\" for {} rows of {} makes more rows than PostgreSQL counts (at most {MAX_ROWS}); lower per_parent",
                                    tables[ti].name,
                                    col.name,
                                    thousands(parent_rows),
                                    parent.name
                                ),
                            )
                        })?;
                    if full {
                        offsets.push(acc);
                    }
                }
                tables[ti].rows = acc;
                if let Some(pp) = &mut tables[ti].per_parent {
                    pp.offsets = offsets;
                    pp.parents = parent_rows;
                    pp.max_group = max_group;
                }
            } else {
                let Some(r) = rows_raw else {
                    return Err(e(
                        Some(tables[ti].span.clone()),
                        format!("table {}: missing key `rows`", tables[ti].name),
                    ));
                };
                tables[ti].rows = scaled_rows(*r.get_ref(), scale).ok_or_else(|| {
                    e(
                        Some(r.span()),
                        format!(
                            "table {}: rows = {} at --scale {scale} is more rows than PostgreSQL counts (at most {MAX_ROWS}); lower rows or --scale",
                            tables[ti].name,
                            r.get_ref()
                        ),
                    )
                })?;
            }
            // Each ref copies its parent column's values into memory.
            for c in &tables[ti].columns {
                if let Gen::Ref(r) = &c.generator
                    && r.per_parent.is_none()
                {
                    let parent = &tables[r.table_idx];
                    let each = value_bytes(parent.columns[r.column_idx].kind);
                    let need = u128::from(parent.rows) * each;
                    if held + need > limit {
                        return Err(e(
                            Some(c.span.clone()),
                            format!(
                                "{}.{}: a ref keeps every value of {}.{} in memory (~{each} bytes each): {} for its {} rows{}, and {has} {}; at most {} rows of {} fit: lower tables.{}.rows or --scale",
                                tables[ti].name,
                                c.name,
                                parent.name,
                                r.column,
                                human_bytes(need),
                                thousands(parent.rows),
                                besides(held),
                                human_bytes(limit),
                                thousands(limit.saturating_sub(held) / each),
                                parent.name,
                                parent.name
                            ),
                        ));
                    }
                    held += need;
                }
            }
            // Checks that need the parents' row counts.
            let max_group = tables[ti].per_parent.as_ref().map_or(1, |p| p.max_group);
            for c in &tables[ti].columns {
                if let Gen::Ref(r) = &c.generator {
                    let n = tables[r.table_idx].rows;
                    let msg = if n == 0 && tables[ti].rows > 0 {
                        Some(format!("{} has no rows to reference", r.table))
                    } else if r.unique && tables[ti].rows > n {
                        Some(format!(
                            "unique = true needs a parent per row, but {} rows > {n} rows of {}",
                            tables[ti].rows, r.table
                        ))
                    } else if r.distinct && max_group > n {
                        Some(format!(
                            "distinct = true needs up to {max_group} different {} rows per parent, there are {n}",
                            r.table
                        ))
                    } else {
                        None
                    };
                    if let Some(m) = msg {
                        return Err(e(
                            Some(c.span.clone()),
                            format!("{}.{}: {m}", tables[ti].name, c.name),
                        ));
                    }
                }
            }
        }

        // The ddl runs only when a table is missing: check it exists now.
        let ddl = match &spec.raw.ddl {
            Some(d) => {
                let path = spec.resolve(d.get_ref());
                let readable = std::fs::File::open(&path)
                    .and_then(|f| f.metadata())
                    .and_then(|m| {
                        if m.is_file() {
                            Ok(())
                        } else {
                            Err(std::io::Error::other("not a file"))
                        }
                    });
                if let Err(why) = readable {
                    return Err(e(
                        Some(d.span()),
                        format!(
                            "ddl {:?}: cannot read {}: {why}; write the path of the schema's SQL file, relative to the spec's folder",
                            d.get_ref(),
                            path.display()
                        ),
                    ));
                }
                Some(path)
            }
            None => None,
        };
        let mut exports = Vec::new();
        for (name, ex) in &spec.raw.export.0 {
            let x = ex.get_ref();
            let source = match (&x.query, &x.columns) {
                (Some(q), None) => {
                    if x.table.is_some() {
                        return Err(e(
                            x.table.as_ref().map(|t| t.span()),
                            format!(
                                "export.{}: table goes with columns, not with query",
                                name.get_ref()
                            ),
                        ));
                    }
                    ExportSource::Query(q.get_ref().clone())
                }
                (None, Some(cols)) => {
                    let tname = x
                        .table
                        .as_ref()
                        .map_or(name.get_ref().as_str(), |t| t.get_ref().as_str());
                    let Some(ti) = names.iter().position(|n| n == tname) else {
                        return Err(e(
                            Some(x.table.as_ref().map_or(name.span(), |t| t.span())),
                            format!(
                                "export.{}: table {tname:?} is not in this spec (set table = \"...\")",
                                name.get_ref()
                            ),
                        ));
                    };
                    let mut idx = Vec::new();
                    let mut header = Vec::new();
                    for entry in cols.get_ref() {
                        // "password_hash as password": the plaintext under the name plans use.
                        let (c, alias) = split_alias(entry);
                        header.push(alias.to_string());
                        let Some(ci) = tables[ti].columns.iter().position(|k| k.name == c) else {
                            return Err(e(
                                Some(cols.span()),
                                format!(
                                    "export.{}: {tname} has no generated column {c:?}",
                                    name.get_ref()
                                ),
                            ));
                        };
                        idx.push(ci);
                    }
                    if idx.is_empty() {
                        return Err(e(
                            Some(cols.span()),
                            format!("export.{}: columns is empty", name.get_ref()),
                        ));
                    }
                    ExportSource::Columns {
                        table: ti,
                        columns: idx,
                        header,
                    }
                }
                _ => {
                    return Err(e(
                        Some(ex.span()),
                        format!(
                            "export.{}: give either columns = [...] (with table) or query = \"SELECT ...\"",
                            name.get_ref()
                        ),
                    ));
                }
            };
            exports.push(Export {
                name: name.get_ref().clone(),
                file: spec.resolve(x.file.get_ref()),
                source,
                limit: x.limit.as_ref().map(|l| *l.get_ref()),
            });
        }

        Ok(Self {
            spec,
            tables,
            order,
            ddl,
            exports,
        })
    }

    pub fn error(&self, span: Option<Range<usize>>, m: impl Into<String>) -> SpecError {
        self.spec.src.error(span, m)
    }

    /// Materialize every referenced parent column, parents first; at most
    /// `sample` values of each, spread over the parent's rows (dry runs only
    /// size rows, and must not hold a copy of every parent).
    pub fn prepare_refs(&self, sample: Option<u64>) {
        for &ti in &self.order {
            for c in &self.tables[ti].columns {
                if let Gen::Ref(r) = &c.generator {
                    if r.ready.get().is_some() {
                        continue;
                    }
                    let rows = self.tables[r.table_idx].rows;
                    let take = sample.map_or(rows, |s| s.min(rows));
                    let values = Arc::new(self.materialize(r.table_idx, r.column_idx, take));
                    let _ = r.ready.set(RefReady {
                        zipf: r.dist_zipf.map(|s| Zipf::new(rows, s)),
                        perm: Permutation::new(rows, r.key),
                        rows,
                        values,
                    });
                }
            }
        }
    }

    /// One column of `take` rows of a table, spread evenly (all of them
    /// when `take` is the row count).
    pub fn materialize(&self, ti: usize, ci: usize, take: u64) -> Vec<Value> {
        let t = &self.tables[ti];
        let cols = t.needed(&[ci]);
        let mut vals = vec![Value::Null; t.columns.len()];
        let mut out = Vec::with_capacity(take as usize);
        for i in 0..take {
            let row = (u128::from(i) * u128::from(t.rows) / u128::from(take)) as u64;
            t.eval(row, &cols, &mut vals, false);
            out.push(std::mem::take(&mut vals[ci]));
        }
        out
    }
}

fn split_alias(entry: &str) -> (&str, &str) {
    let lower = entry.to_ascii_lowercase();
    match lower.find(" as ") {
        Some(i) => (entry[..i].trim(), entry[i + 4..].trim()),
        None => (entry.trim(), entry.trim()),
    }
}

/// What the spec's other refs and per_parent groups already hold, if any.
fn besides(held: u128) -> String {
    if held == 0 {
        String::new()
    } else {
        format!(" (besides {} for other refs)", human_bytes(held))
    }
}

/// PostgreSQL counts rows in a bigint.
pub const MAX_ROWS: u64 = i64::MAX as u64;

/// `rows` times --scale, at least 1 unless 0; None past `MAX_ROWS`.
fn scaled_rows(rows: u64, scale: f64) -> Option<u64> {
    if rows == 0 || scale == 1.0 {
        return (rows <= MAX_ROWS).then_some(rows);
    }
    let n = (rows as f64 * scale).round();
    // i64::MAX as f64 rounds up to 2^63: compare below it.
    (n < MAX_ROWS as f64).then(|| (n as u64).max(1))
}

impl Table {
    /// The evaluation order of `want` and what they depend on.
    pub fn needed(&self, want: &[usize]) -> Vec<usize> {
        let mut need = vec![false; self.columns.len()];
        let mut stack: Vec<usize> = want.to_vec();
        while let Some(c) = stack.pop() {
            if !need[c] {
                need[c] = true;
                stack.extend(&self.columns[c].deps);
            }
        }
        self.order.iter().copied().filter(|c| need[*c]).collect()
    }

    /// Fill `vals[c]` for each column c of `cols` (in evaluation order) for one row.
    #[inline]
    pub fn eval(&self, row: u64, cols: &[usize], vals: &mut [Value], plaintext: bool) {
        let group = self.per_parent.as_ref().map(|pp| {
            if pp.offsets.is_empty() {
                // A dry run: the parent in proportion, near enough to size the row.
                let p = u128::from(row) * u128::from(pp.parents) / u128::from(self.rows);
                return (p as u64, 0);
            }
            let p = pp.offsets.partition_point(|&o| o <= row) as u64 - 1;
            (p, row - pp.offsets[p as usize])
        });
        for &c in cols {
            let col = &self.columns[c];
            if col.null_ratio > 0.0 && Rng::cell(col.null_key, row).unit() < col.null_ratio {
                vals[c] = Value::Null;
                continue;
            }
            if col.deps.is_empty() {
                // Most columns read nothing else of the row: fill the slot in place.
                col.generator.make(
                    &Cell {
                        row,
                        key: col.key,
                        row_values: &[],
                        group,
                        plaintext,
                    },
                    &mut vals[c],
                );
                continue;
            }
            let mut v = std::mem::take(&mut vals[c]);
            col.generator.make(
                &Cell {
                    row,
                    key: col.key,
                    row_values: vals,
                    group,
                    plaintext,
                },
                &mut v,
            );
            vals[c] = v;
        }
    }
}

fn column_order(cols: &[Column]) -> Result<Vec<usize>, usize> {
    let n = cols.len();
    let mut state = vec![0u8; n]; // 0 new, 1 visiting, 2 done
    let mut out = Vec::with_capacity(n);
    fn visit(
        c: usize,
        cols: &[Column],
        state: &mut [u8],
        out: &mut Vec<usize>,
    ) -> Result<(), usize> {
        match state[c] {
            2 => return Ok(()),
            1 => return Err(c),
            _ => {}
        }
        state[c] = 1;
        for &d in &cols[c].deps {
            visit(d, cols, state, out)?;
        }
        state[c] = 2;
        out.push(c);
        Ok(())
    }
    for c in 0..n {
        visit(c, cols, &mut state, &mut out)?;
    }
    Ok(out)
}

/// Parents before children; ties keep the file's order. Err: the tables
/// left in a circle.
fn table_order(tables: &[Table]) -> Result<Vec<usize>, Vec<usize>> {
    let n = tables.len();
    let mut done = vec![false; n];
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = (0..n).find(|&i| !done[i] && tables[i].parents.iter().all(|&p| done[p]));
        match next {
            Some(i) => {
                done[i] = true;
                out.push(i);
            }
            None => {
                return Err((0..n).filter(|&i| !done[i]).collect());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SpecFile;

    fn model(text: &str, full: bool) -> Model {
        let spec = SpecFile::parse(std::path::Path::new("m.toml"), text.into()).unwrap();
        Model::build(spec, 7, 1.0, full).unwrap_or_else(|e| panic!("{e}"))
    }

    const BIG_PARENT: &str = r#"
[tables.p]
rows = 3000000
[tables.p.columns]
id = { gen = "seq" }

[tables.kids]
[tables.kids.columns]
p_id = { gen = "ref", table = "p", per_parent = "0..3" }

[tables.picks]
rows = 10
[tables.picks.columns]
p_id = { gen = "ref", table = "p", dist = "zipf" }
"#;

    #[test]
    fn dry_runs_hold_nothing_in_proportion_to_the_rows() {
        let dry = model(BIG_PARENT, false);
        let full = model(BIG_PARENT, true);
        let (d, f) = (&dry.tables[1], &full.tables[1]);
        assert_eq!(d.rows, f.rows, "the same count either way");
        let (dp, fp) = (
            d.per_parent.as_ref().unwrap(),
            f.per_parent.as_ref().unwrap(),
        );
        assert_eq!((dp.parents, dp.max_group), (fp.parents, fp.max_group));
        assert_eq!(fp.offsets.len(), 3_000_001);
        assert!(dp.offsets.is_empty(), "a dry run keeps no offsets");

        // A dry run's refs hold a sample of the parent's values, drawn over all of them.
        dry.prepare_refs(Some(2000));
        let Gen::Ref(r) = &dry.tables[2].columns[0].generator else {
            unreachable!()
        };
        let ready = r.ready.get().unwrap();
        assert_eq!((ready.rows, ready.values.len()), (3_000_000, 2000));
        assert_eq!(ready.values[1999], Value::Int(2_998_501));
        let t = &dry.tables[1];
        let mut vals = vec![Value::Null; 1];
        for row in [0, t.rows / 2, t.rows - 1] {
            t.eval(row, &[0], &mut vals, false);
            let Value::Int(id) = vals[0] else {
                unreachable!()
            };
            assert!((1..=3_000_000).contains(&id), "{id}");
        }
    }
}
