//! What the database says about the target tables: column types,
//! nullability, defaults, keys and foreign keys.

use tokio_postgres::Client;

#[derive(Debug, Clone)]
pub struct ColInfo {
    pub name: String,
    /// As PostgreSQL prints it: "character varying(40)", "tier" (an enum)...
    pub type_name: String,
    /// The base type's oid (domains resolved) and name.
    pub base_oid: u32,
    pub base_name: String,
    pub is_enum: bool,
    pub not_null: bool,
    pub has_default: bool,
    pub generated: bool,
    pub max_len: Option<usize>,
    pub enum_labels: Vec<String>,
    pub serial_seq: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Fk {
    pub name: String,
    pub columns: Vec<String>,
    pub ref_oid: u32,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct TableInfo {
    pub oid: u32,
    /// Quoted, schema-qualified when needed: safe to paste into SQL.
    pub sql_name: String,
    pub columns: Vec<ColInfo>,
    pub primary_key: Vec<String>,
    pub uniques: Vec<Vec<String>>,
    pub fks: Vec<Fk>,
}

impl TableInfo {
    pub fn column(&self, name: &str) -> Option<&ColInfo> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// None when the table does not exist.
pub async fn read(
    client: &Client,
    table: &str,
) -> Result<Option<TableInfo>, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT c.oid, c.oid::regclass::text FROM pg_class c \
             WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p')",
            &[&table],
        )
        .await;
    let row = match row {
        Ok(r) => r,
        Err(e) if e.as_db_error().is_none() => return Ok(None), // no row
        Err(e) => return Err(e),
    };
    let oid: u32 = row.get(0);
    let sql_name: String = row.get(1);
    let cols = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), bt.oid, bt.typname::text, \
                    bt.typtype = 'e', a.attnotnull, a.atthasdef OR a.attidentity <> '', a.attgenerated <> '', \
                    CASE WHEN bt.typname IN ('varchar', 'bpchar') AND a.atttypmod > 4 THEN a.atttypmod - 4 END, \
                    ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = bt.oid ORDER BY e.enumsortorder), \
                    pg_get_serial_sequence(a.attrelid::regclass::text, a.attname) \
             FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid \
             JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await?;
    let columns = cols
        .iter()
        .map(|r| ColInfo {
            name: r.get(0),
            type_name: r.get(1),
            base_oid: r.get(2),
            base_name: r.get(3),
            is_enum: r.get(4),
            not_null: r.get(5),
            has_default: r.get(6),
            generated: r.get(7),
            max_len: r.get::<_, Option<i32>>(8).map(|n| n as usize),
            enum_labels: r.get(9),
            serial_seq: r.get(10),
        })
        .collect();
    let idx = client
        .query(
            "SELECT i.indisprimary, ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) \
                    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) \
             FROM pg_index i WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL",
            &[&oid],
        )
        .await?;
    let mut primary_key = Vec::new();
    let mut uniques = Vec::new();
    for r in idx {
        let cols: Vec<String> = r.get(1);
        if r.get::<_, bool>(0) {
            primary_key = cols.clone();
        }
        uniques.push(cols);
    }
    let fks = client
        .query(
            "SELECT c.conname::text, c.confrelid, c.confrelid::regclass::text, \
                    ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o) \
                          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o), \
                    ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o) \
                          JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o) \
             FROM pg_constraint c WHERE c.conrelid = $1 AND c.contype = 'f'",
            &[&oid],
        )
        .await?
        .iter()
        .map(|r| Fk {
            name: r.get(0),
            ref_oid: r.get(1),
            ref_table: r.get(2),
            columns: r.get(3),
            ref_columns: r.get(4),
        })
        .collect();
    Ok(Some(TableInfo {
        oid,
        sql_name,
        columns,
        primary_key,
        uniques,
        fks,
    }))
}

/// A column name quoted for SQL.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
