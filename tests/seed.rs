//! `volley seed` against the throwaway PostgreSQL of scripts/test.sh: one
//! fresh database per test, the real binary, checks by SQL. The refusals
//! that need no database run offline (`--dry-run` without a URL).

mod common;

use common::{Dir, code, output_within, text, volley};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

fn base_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DATABASE_URL is not set: run the seeder tests with scripts/test.sh \
             (or scripts/with-postgres.sh cargo test --test seed), which start a throwaway PostgreSQL"
        )
    })
}

/// A database of its own for one test, dropped at the end.
struct Db {
    name: String,
    url: String,
    client: Client,
    rt: tokio::runtime::Runtime,
}

static N: AtomicU32 = AtomicU32::new(0);

fn with_db(base: &str, db: &str) -> String {
    let (head, _) = base.rsplit_once('/').expect("DATABASE_URL ends in /DBNAME");
    format!("{head}/{db}")
}

async fn connect(url: &str) -> Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(conn);
    c
}

impl Db {
    fn new(tag: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let name = format!(
            "seed_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let base = base_url();
        let url = with_db(&base, &name);
        let client = rt.block_on(async {
            let admin = connect(&base).await;
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            connect(&url).await
        });
        Self {
            name,
            url,
            client,
            rt,
        }
    }

    fn exec(&self, sql: &str) {
        self.rt
            .block_on(self.client.batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    /// Rows as text.
    fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let msgs = self
            .rt
            .block_on(self.client.simple_query(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        msgs.into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect()
    }

    fn one(&self, sql: &str) -> String {
        self.rows(sql)[0][0].clone().unwrap_or_default()
    }

    fn int(&self, sql: &str) -> i64 {
        self.one(sql)
            .parse()
            .unwrap_or_else(|_| panic!("{sql} is not a number"))
    }

    fn count(&self, table: &str) -> i64 {
        self.int(&format!("SELECT count(*) FROM {table}"))
    }

    /// A checksum of the whole table in a fixed order.
    fn checksum(&self, table: &str, order: &str) -> String {
        self.one(&format!(
            "SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY {order}), '')) FROM {table} t"
        ))
    }

    fn seed(&self, spec: &std::path::Path, args: &[&str]) -> Output {
        let mut cmd = volley();
        cmd.arg("seed")
            .arg(spec)
            .arg("--database-url")
            .arg(&self.url)
            .args(args);
        output_within(&mut cmd, 300)
    }
}

/// `volley seed SPEC ARGS` without a database (a dry run infers the types).
fn offline(spec: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd = volley();
    cmd.env_remove("DATABASE_URL")
        .arg("seed")
        .arg(spec)
        .args(args);
    output_within(&mut cmd, 120)
}

/// 1-based line and column of the `nth` (0-based) occurrence of `needle`.
fn position(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let at = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} not in {text}"))
        .0;
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap().chars().count() + 1;
    (line, col)
}

impl Drop for Db {
    fn drop(&mut self) {
        let base = base_url();
        let name = self.name.clone();
        self.rt.block_on(async {
            let admin = connect(&base).await;
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        });
    }
}

fn ok(out: &Output) -> String {
    let t = text(out);
    assert_eq!(code(out), 0, "volley seed failed:\n{t}");
    t
}

/// The row count volley printed for a table ("  order_items   3,759 rows ...").
fn printed_rows(out: &str, table: &str) -> i64 {
    out.lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(table))
                .then(|| w.next().map(|n| n.replace(',', "").parse().unwrap()))
                .flatten()
        })
        .unwrap_or_else(|| panic!("no line for {table} in:\n{out}"))
}

const SHOP_SCHEMA: &str = "
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    name text NOT NULL,
    tier text NOT NULL,
    created_at timestamptz NOT NULL,
    last_login timestamptz
);
CREATE TABLE products (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    price numeric(10, 2) NOT NULL,
    stock int NOT NULL,
    attrs jsonb
);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    status text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE order_items (
    order_id bigint NOT NULL REFERENCES orders (id),
    product_id uuid NOT NULL REFERENCES products (id),
    qty int NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
";

// Tables in no particular order: volley orders them by their refs.
const SHOP_SPEC: &str = r#"
ddl = "schema.sql"

[tables.order_items]
[tables.order_items.columns]
order_id = { gen = "ref", table = "orders", per_parent = "1..4" }
product_id = { gen = "ref", table = "products", distinct = true }
qty = { gen = "int", min = 1, max = 5 }

[tables.orders]
rows = 3000
[tables.orders.columns]
id = { gen = "seq" }
user_id = { gen = "ref", table = "users", dist = "zipf" }
status = { gen = "choice", values = ["paid", "shipped"] }
created_at = { gen = "timestamp", from = "2025-01-01", to = "2025-12-31" }

[tables.users]
rows = 1000
[tables.users.columns]
id = { gen = "seq" }
name = { gen = "name" }
email = { gen = "email", from = "name", unique = true }
password_hash = { gen = "password", pool = 50 }
tier = { gen = "choice", values = ["free", "starter", "pro"], weights = [70, 20, 10] }
created_at = { gen = "timestamp", from = "2025-01-01", to = "2025-06-30" }
last_login = { gen = "timestamp", at = "created_at + 0..30d", null_ratio = 0.25 }

[tables.products]
rows = 200
[tables.products.columns]
id = { gen = "uuid" }
name = { gen = "product" }
price = { gen = "decimal", min = "0.99", max = "99.99" }
stock = { gen = "int", min = 0, max = 100, dist = "normal" }
attrs = { gen = "json", template = { color = { gen = "choice", values = ["red", "blue"] } } }

[export.users]
file = "out/users.csv"
table = "users"
columns = ["email", "password_hash as password", "name"]

[export.products]
file = "out/products.csv"
query = "SELECT id FROM products ORDER BY id"
"#;

fn shop(dir: &Dir) -> std::path::PathBuf {
    dir.write("schema.sql", SHOP_SCHEMA);
    dir.write("shop.toml", SHOP_SPEC)
}

#[test]
fn seeds_row_counts_foreign_keys_uniques_and_feeders() {
    let dir = Dir::new();
    let spec = shop(&dir);
    let db = Db::new("shop");
    let out = ok(&db.seed(&spec, &["--scale", "0.5", "--seed", "7"]));

    // Row counts as asked (scaled), and per_parent children as printed.
    assert_eq!(db.count("users"), 500);
    assert_eq!(db.count("products"), 100);
    assert_eq!(db.count("orders"), 1500);
    let items = db.count("order_items");
    assert_eq!(items, printed_rows(&out, "order_items"), "{out}");
    assert_eq!(
        db.int("SELECT count(DISTINCT order_id) FROM order_items"),
        1500
    );
    let per_order = db.rows(
        "SELECT min(n), max(n) FROM (SELECT count(*) AS n FROM order_items GROUP BY order_id) s",
    );
    assert_eq!(per_order[0][0].as_deref(), Some("1"));
    assert_eq!(per_order[0][1].as_deref(), Some("4"));

    // Every foreign key resolves.
    for (child, fk, parent) in [
        ("orders", "user_id", "users"),
        ("order_items", "order_id", "orders"),
        ("order_items", "product_id", "products"),
    ] {
        let orphans = db.int(&format!(
            "SELECT count(*) FROM {child} c LEFT JOIN {parent} p ON p.id = c.{fk} WHERE p.id IS NULL"
        ));
        assert_eq!(orphans, 0, "{child}.{fk}");
    }
    // Unique columns are unique.
    assert_eq!(db.int("SELECT count(DISTINCT email) FROM users"), 500);
    assert_eq!(db.int("SELECT count(DISTINCT id) FROM products"), 100);

    // The generators' shapes show in the data.
    let free = db.int("SELECT count(*) FROM users WHERE tier = 'free'");
    assert!((300..400).contains(&free), "free tier {free} of 500");
    let nulls = db.int("SELECT count(*) FROM users WHERE last_login IS NULL");
    assert!(
        (75..175).contains(&nulls),
        "null_ratio 0.25 gave {nulls} of 500"
    );
    assert_eq!(
        db.int("SELECT count(*) FROM users WHERE last_login < created_at OR last_login > created_at + interval '30 days'"),
        0
    );
    // Zipf refs: the busiest customer has far more orders than the average (3).
    let top = db.int("SELECT max(n) FROM (SELECT count(*) AS n FROM orders GROUP BY user_id) s");
    assert!(top > 30, "busiest user has {top} orders");

    // The feeder holds the plaintext of the stored bcrypt hash.
    let csv = std::fs::read_to_string(dir.join("out/users.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("email,password,name"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 500);
    db.exec("CREATE EXTENSION IF NOT EXISTS pgcrypto");
    for line in rows.iter().take(5) {
        let f: Vec<&str> = line.split(',').collect();
        let verified = db.one(&format!(
            "SELECT crypt('{}', password_hash) = password_hash FROM users WHERE email = '{}'",
            f[1], f[0]
        ));
        assert_eq!(verified, "t", "bcrypt hash of {line}");
    }
    let products = std::fs::read_to_string(dir.join("out/products.csv")).unwrap();
    assert_eq!(products.lines().next(), Some("id"));
    assert_eq!(products.lines().count(), 101);

    // A plan reads the feeder as it is.
    let plan = dir.write(
        "plan.toml",
        r#"[data.users]
file = "out/users.csv"
pick = "unique"

[scenarios.login]
driver = "http"
executor = "shared-iterations"
vus = 2
iterations = 2

[[scenarios.login.requests]]
method = "POST"
url = "http://127.0.0.1:9/api/v1/auth/login"
json = { email = "{{ data.users.email }}", password = "{{ data.users.password }}" }
"#,
    );
    let mut cmd = volley();
    cmd.arg("validate").arg(&plan);
    let v = output_within(&mut cmd, 60);
    assert_eq!(code(&v), 0, "{}", text(&v));
    assert!(text(&v).contains("users: 500 rows"), "{}", text(&v));

    // The id sequence moved past the seeded ids: the app's next insert works.
    let next = db.int(
        "INSERT INTO users (email, password_hash, name, tier, created_at) \
         VALUES ('app@example.org', 'x', 'App User', 'free', now()) RETURNING id",
    );
    assert_eq!(next, 501);
}

const BIG_SPEC: &str = r#"
[tables.accounts]
rows = 1000
[tables.accounts.columns]
id = { gen = "seq" }
owner = { gen = "name", locale = "de_de" }
email = { gen = "email", unique = true }
company = { gen = "company" }
phone = { gen = "phone", null_ratio = 0.5 }
opened = { gen = "timestamp", from = "2020-01-01", to = "2025-12-31" }

[tables.ledger]
[tables.ledger.columns]
id = { gen = "seq", start = 1000, step = 3 }
account_id = { gen = "ref", table = "accounts", per_parent = "200..240" }
ref = { gen = "uuid" }
amount = { gen = "decimal", min = "-500", max = "500", decimals = 2, dist = "normal" }
rate = { gen = "float", min = 0, max = 1 }
kind = { gen = "choice", values = ["debit", "credit"], weights = [3, 1] }
flagged = { gen = "bool", probability = 0.01 }
at = { gen = "timestamp", from = "2025-01-01", to = "2025-12-31" }
memo = { gen = "words", words = "1..3", null_ratio = 0.7 }
"#;

const BIG_SCHEMA: &str = "
CREATE TABLE accounts (id int PRIMARY KEY, owner text, email text UNIQUE, company text, phone text, opened timestamp);
CREATE TABLE ledger (id bigint PRIMARY KEY, account_id int REFERENCES accounts (id), ref uuid, amount numeric(12, 2),
                     rate float8, kind text, flagged bool, at timestamptz, memo text);
";

#[test]
fn the_same_seed_gives_the_same_bytes_whatever_the_jobs() {
    let dir = Dir::new();
    let spec = dir.write("big.toml", BIG_SPEC);
    let dbs: Vec<(Db, &str, &str)> = vec![
        (Db::new("det_a"), "7", "1"),
        (Db::new("det_b"), "7", "3"),
        (Db::new("det_c"), "8", "2"),
    ];
    let mut sums = Vec::new();
    for (db, seed, jobs) in &dbs {
        db.exec(BIG_SCHEMA);
        // ~220k ledger rows: three COPY streams of it with --jobs 3.
        ok(&db.seed(
            &spec,
            &[
                "--seed",
                seed,
                "--jobs",
                jobs,
                "--stream-rows",
                "60000",
                "--quiet",
            ],
        ));
        assert!(db.count("ledger") > 200_000);
        sums.push((db.checksum("accounts", "id"), db.checksum("ledger", "id")));
    }
    assert_eq!(sums[0], sums[1], "seed 7 with --jobs 1 and --jobs 3");
    assert_ne!(sums[0].0, sums[2].0, "seed 8 makes other accounts");
    assert_ne!(sums[0].1, sums[2].1, "seed 8 makes another ledger");
}

/// Checksums of the tables a, b and c, ordered by id.
fn chain(db: &Db) -> Vec<String> {
    ["a", "b", "c"]
        .iter()
        .map(|t| db.checksum(t, "id"))
        .collect()
}

#[test]
fn a_failure_in_the_third_table_leaves_the_database_as_it_was() {
    let dir = Dir::new();
    let db = Db::new("fail");
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, label text NOT NULL);
         CREATE TABLE b (id int PRIMARY KEY, a_id int NOT NULL REFERENCES a (id));
         CREATE TABLE c (id int PRIMARY KEY, b_id int NOT NULL REFERENCES b (id), amount int NOT NULL CHECK (amount < 990));
         INSERT INTO a VALUES (1000000, 'made by a user');
         INSERT INTO b VALUES (1000000, 1000000);
         INSERT INTO c VALUES (1000000, 1000000, 5);",
    );
    let spec = dir.write(
        "chain.toml",
        r#"
[tables.c]
rows = 3000
[tables.c.columns]
id = { gen = "seq" }
b_id = { gen = "ref", table = "b" }
amount = { gen = "int", min = 1, max = 1000 }

[tables.a]
rows = 500
[tables.a.columns]
id = { gen = "seq" }
label = { gen = "word" }

[tables.b]
rows = 1000
[tables.b.columns]
id = { gen = "seq" }
a_id = { gen = "ref", table = "a" }
"#,
    );
    let before = chain(&db);
    let out = db.seed(&spec, &[]);
    let t = text(&out);
    assert_eq!(code(&out), 1, "{t}");
    assert!(t.contains("table c, row "), "names table and row: {t}");
    assert!(t.contains("c_amount_check"), "says what failed: {t}");
    let after = chain(&db);
    assert_eq!(before, after, "{t}");
    assert_eq!(db.count("a"), 1);
    assert_eq!(db.count("b"), 1);
    assert_eq!(db.count("c"), 1);

    // The same with c split into three COPY streams on three connections:
    // the streams that did not fail roll back too.
    let split = db.seed(&spec, &["--jobs", "3", "--stream-rows", "1000"]);
    let st = text(&split);
    assert_eq!(code(&split), 1, "{st}");
    assert!(st.contains("table c, row "), "{st}");
    let after_split = chain(&db);
    assert_eq!(before, after_split, "{st}");

    // The row it names is the first one that breaks the check: the same seed
    // into tables without it shows which that is (ids count rows from 1).
    let row: i64 = t
        .split("table c, row ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no row number in: {t}"));
    let free = Db::new("fail_free");
    free.exec(
        "CREATE TABLE a (id int PRIMARY KEY, label text NOT NULL);
         CREATE TABLE b (id int PRIMARY KEY, a_id int NOT NULL REFERENCES a (id));
         CREATE TABLE c (id int PRIMARY KEY, b_id int NOT NULL REFERENCES b (id), amount int NOT NULL);",
    );
    ok(&free.seed(&spec, &["--quiet"]));
    assert_eq!(
        free.int("SELECT min(id) FROM c WHERE amount >= 990"),
        row,
        "{t}"
    );
}

#[test]
fn cleanup_removes_exactly_the_seeded_rows() {
    let dir = Dir::new();
    let spec = shop(&dir);
    let db = Db::new("cleanup");
    db.exec(SHOP_SCHEMA);
    // A user's own rows, made before the seed.
    db.exec(
        "INSERT INTO users VALUES (100000, 'mine@example.org', 'x', 'Mine', 'pro', now(), NULL);
         INSERT INTO orders VALUES (100000, 100000, 'paid', now());",
    );
    ok(&db.seed(&spec, &["--scale", "0.2", "--seed", "3"]));
    assert_eq!(db.count("users"), 201);
    // And one made after it, by the application (ids from the sequence).
    let app_user = db.int(
        "INSERT INTO users (email, password_hash, name, tier, created_at) \
         VALUES ('app@example.org', 'x', 'App', 'free', now()) RETURNING id",
    );
    assert_eq!(
        app_user, 100001,
        "the sequence moved past every existing id"
    );
    // An app order that points at a seeded user blocks the cleanup: nothing is deleted.
    db.exec(
        "INSERT INTO orders (id, user_id, status, created_at) VALUES (200000, 5, 'paid', now())",
    );
    let users_before = db.count("users");
    let out = db.seed(&spec, &["--scale", "0.2", "--seed", "3", "--cleanup"]);
    let t = text(&out);
    assert_eq!(code(&out), 1, "{t}");
    assert!(t.contains("orders_user_id_fkey"), "{t}");
    assert_eq!(db.count("users"), users_before, "nothing deleted: {t}");

    db.exec("DELETE FROM orders WHERE id = 200000");
    // Other flags would regenerate other keys (at scale 0.3, ids 201.. of the
    // users made since): refused, nothing deleted.
    let out = db.seed(&spec, &["--scale", "0.3", "--seed", "3", "--cleanup"]);
    let t = text(&out);
    assert_eq!(code(&out), 2, "{t}");
    assert!(
        t.contains("--seed 3 --scale 0.2"),
        "says the right flags: {t}"
    );
    assert_eq!(db.count("users"), users_before, "nothing deleted: {t}");

    let out = ok(&db.seed(&spec, &["--scale", "0.2", "--seed", "3", "--cleanup"]));
    assert!(out.contains("200 of 200 rows deleted"), "{out}");
    let users: Vec<String> = db
        .rows("SELECT id FROM users ORDER BY id")
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    assert_eq!(users, vec!["100000".to_string(), app_user.to_string()]);
    assert_eq!(db.int("SELECT id FROM orders"), 100000);
    assert_eq!(db.count("order_items"), 0);
    assert_eq!(db.count("products"), 0);
    assert_eq!(
        db.count("volley_seed_manifest"),
        0,
        "the manifest forgets cleaned tables"
    );
}

#[test]
fn a_generator_that_does_not_fit_its_column_is_refused_before_writing() {
    let dir = Dir::new();
    let db = Db::new("types");
    db.exec(
        "CREATE TABLE tags (id int PRIMARY KEY, label text NOT NULL);
         CREATE TABLE people (id int PRIMARY KEY, tier integer, age smallint);",
    );
    let spec = dir.write(
        "types.toml",
        r#"[tables.tags]
rows = 10
[tables.tags.columns]
id = { gen = "seq" }
label = { gen = "word" }

[tables.people]
rows = 10
[tables.people.columns]
id = { gen = "seq" }
tier = { gen = "choice", values = ["free", "pro"] }
age = { gen = "int", min = 0, max = 100000 }
"#,
    );
    let out = db.seed(&spec, &[]);
    let t = text(&out);
    assert_eq!(code(&out), 2, "{t}");
    let line = t
        .lines()
        .find(|l| l.contains("people.tier"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        line.contains("types.toml:11:8"),
        "points into the spec: {line}"
    );
    assert!(line.contains("integer"), "names the type: {line}");
    assert!(line.contains("\"choice\""), "names the generator: {line}");
    assert!(t.contains("people.age") && t.contains("smallint"), "{t}");
    assert_eq!(db.count("tags"), 0, "nothing written");
    assert_eq!(db.count("people"), 0, "nothing written");

    // A value of the wrong TOML type names its key, in words users know.
    let typo = dir.write("typo.toml", "[tables.tags]\nrows = \"ten\"\n");
    let out = db.seed(&typo, &[]);
    let t = text(&out);
    assert_eq!(code(&out), 2, "{t}");
    assert!(
        t.contains("typo.toml:2:8: `rows`: invalid type: string \"ten\", expected a whole number"),
        "{t}"
    );

    // A URL that does not parse says which flag and what to write.
    let mut cmd = volley();
    cmd.args(["seed", "--database-url", "postgres://h:notaport/db"])
        .arg(&spec);
    let out = output_within(&mut cmd, 60);
    let t = text(&out);
    assert_eq!(code(&out), 2, "{t}");
    assert!(
        t.contains("--database-url: not a valid PostgreSQL URL")
            && t.contains("postgres://user:password@"),
        "{t}"
    );
}

// DESIGN.md's example spec, exactly as written there.
const DESIGN_SPEC: &str = r#"[tables.users]
rows = 1000
[tables.users.columns]
id = { gen = "seq" }
email = { gen = "email", unique = true }
tier = { gen = "choice", values = ["free", "starter", "pro"], weights = [70, 20, 10] }
created_at = { gen = "timestamp", from = "2025-01-01", to = "2025-12-31" }

[tables.orders]
rows = 5000
[tables.orders.columns]
id = { gen = "seq" }
user_id = { gen = "ref", table = "users", column = "id" }
amount_cents = { gen = "int", min = 100, max = 100000 }
"#;

#[test]
fn dry_run_truncate_and_the_handbook_example() {
    let dir = Dir::new();
    let spec = dir.write("design.toml", DESIGN_SPEC);
    let db = Db::new("design");
    db.exec(
        "CREATE TABLE users (id bigint PRIMARY KEY, email text UNIQUE NOT NULL, tier text NOT NULL, created_at timestamptz NOT NULL);
         CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id), amount_cents int NOT NULL);",
    );

    // Without a database, a dry run infers the column types from the generators.
    let inferred = ok(&offline(&spec, &["--dry-run", "--scale", "2"]));
    assert_eq!(printed_rows(&inferred, "orders"), 10_000, "{inferred}");
    assert!(inferred.contains("inferred"), "{inferred}");

    let out = ok(&db.seed(&spec, &["--dry-run"]));
    assert_eq!(printed_rows(&out, "users"), 1000, "{out}");
    assert_eq!(printed_rows(&out, "orders"), 5000, "{out}");
    assert!(out.contains("KiB"), "estimated size: {out}");
    assert_eq!(db.count("users"), 0, "a dry run writes nothing");

    ok(&db.seed(&spec, &[]));
    assert_eq!((db.count("users"), db.count("orders")), (1000, 5000));
    let sum = db.checksum("orders", "id");

    // Seeding again over the same rows fails on the keys and changes nothing...
    let again = db.seed(&spec, &[]);
    assert_eq!(code(&again), 1, "{}", text(&again));
    assert!(text(&again).contains("users_pkey"), "{}", text(&again));
    assert_eq!((db.count("users"), db.count("orders")), (1000, 5000));

    // ...and --truncate replaces them (here without per-row foreign-key
    // checks: the refs point at seeded users all the same).
    db.exec("INSERT INTO users VALUES (5000, 'extra@example.org', 'pro', now())");
    ok(&db.seed(&spec, &["--truncate", "--disable-triggers"]));
    assert_eq!((db.count("users"), db.count("orders")), (1000, 5000));
    assert_eq!(db.checksum("orders", "id"), sum);
    assert_eq!(
        db.int(
            "SELECT count(*) FROM orders o LEFT JOIN users u ON u.id = o.user_id WHERE u.id IS NULL"
        ),
        0
    );
}

#[test]
fn the_staging_spec_creates_its_schema_and_feeders() {
    let dir = Dir::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["staging.toml", "schema.sql"] {
        let text = std::fs::read_to_string(root.join("fixtures/seed").join(f)).unwrap();
        dir.write(&format!("seed/{f}"), &text);
    }
    let db = Db::new("staging");
    let out = ok(&db.seed(&dir.join("seed/staging.toml"), &["--scale", "0.01"]));
    for t in [
        "users",
        "products",
        "orders",
        "order_items",
        "events",
        "rsvps",
        "subscriptions",
    ] {
        assert_eq!(db.count(t), printed_rows(&out, t), "{t}: {out}");
        assert!(db.count(t) > 0, "{t}");
    }
    assert_eq!(db.count("users"), 1000);
    let users = std::fs::read_to_string(dir.join("data/seeded/users.csv")).unwrap();
    assert_eq!(users.lines().next(), Some("email,password,name"));
    assert_eq!(users.lines().count(), 1001);
    for f in ["products", "events", "orders"] {
        let csv = std::fs::read_to_string(dir.join(&format!("data/seeded/{f}.csv"))).unwrap();
        assert!(csv.lines().count() > 1, "{f}.csv");
    }
}

/// A parent and a child whose column `x` is `col`, on line 9.
fn child_spec(col: &str) -> String {
    format!(
        "[tables.p]\nrows = 10\n[tables.p.columns]\nid = {{ gen = \"seq\" }}\n\n[tables.c]\nrows = 10\n[tables.c.columns]\nx = {col}\n"
    )
}

#[test]
fn zipf_exponents_without_a_distribution_are_refused_where_written() {
    let dir = Dir::new();
    let cols = [
        r#"{ gen = "ref", table = "p", dist = "zipf", exponent = nan }"#,
        r#"{ gen = "ref", table = "p", dist = "zipf", exponent = inf }"#,
        r#"{ gen = "ref", table = "p", dist = "zipf", exponent = -inf }"#,
        r#"{ gen = "ref", table = "p", dist = "zipf", exponent = 0.0 }"#,
        r#"{ gen = "ref", table = "p", dist = "zipf", exponent = -1.5 }"#,
        r#"{ gen = "int", min = 1, max = 100, dist = "zipf", exponent = inf }"#,
        r#"{ gen = "int", min = 1, max = 100, dist = "zipf", exponent = nan }"#,
        r#"{ gen = "int", min = 1, max = 100, dist = "zipf", exponent = 0.0 }"#,
        r#"{ gen = "decimal", min = 1, max = 100, dist = "zipf", exponent = inf }"#,
    ];
    for (i, col) in cols.iter().enumerate() {
        let body = child_spec(col);
        let spec = dir.write(&format!("z{i}.toml"), &body);
        let out = offline(&spec, &["--dry-run"]);
        let t = text(&out);
        assert_eq!(code(&out), 2, "{col}: {t}");
        let (l, c) = position(&body, "exponent = ", 0);
        let at = format!("z{i}.toml:{l}:{}: ", c + "exponent = ".len());
        assert!(t.contains(&at), "{col}: wants {at}: {t}");
        assert!(
            t.contains("c.x (gen = ") && t.contains("exponent must be a finite number above 0"),
            "{col}: {t}"
        );
        // Zero is the uniform distribution: say how to ask for it.
        assert!(t.contains("dist = \"uniform\""), "{col}: {t}");
    }
    // Any finite exponent above 0 is a distribution, however steep or flat.
    for col in [
        r#"{ gen = "ref", table = "p", dist = "zipf", exponent = 1e300 }"#,
        r#"{ gen = "ref", table = "p", dist = "zipf", exponent = 1e-300 }"#,
        r#"{ gen = "int", min = 1, max = 100, dist = "zipf", exponent = 1e300 }"#,
        r#"{ gen = "int", min = -9223372036854775808, max = 9223372036854775807, dist = "zipf" }"#,
    ] {
        let spec = dir.write("fine.toml", &child_spec(col));
        let out = offline(&spec, &["--dry-run"]);
        assert_eq!(code(&out), 0, "{col}: {}", text(&out));
    }
}

#[test]
fn what_cannot_fit_in_memory_is_refused_before_allocating() {
    let dir = Dir::new();
    let big = |col: &str| child_spec(col).replacen("rows = 10", "rows = 100000000000", 1);

    // Children per parent: an offset and a value per parent row (3.64 TiB here).
    let body =
        big(r#"{ gen = "ref", table = "p", per_parent = "1..3" }"#).replacen("rows = 10\n", "", 1);
    let spec = dir.write("groups.toml", &body);
    for args in [&["--dry-run"][..], &["--dry-run", "--scale", "0.5"]] {
        let out = offline(&spec, args);
        let t = text(&out);
        assert_eq!(code(&out), 2, "{t}");
        let (l, c) = position(&body, "{ gen = \"ref\"", 0);
        assert!(t.contains(&format!("groups.toml:{l}:{c}: c.x")), "{t}");
        assert!(t.contains("per_parent") && t.contains("TiB"), "{t}");
        assert!(t.contains("this machine has"), "{t}");
        assert!(t.contains("at most"), "says what would fit: {t}");
    }

    // A plain ref holds every parent value in memory (TiB here).
    let body = big(r#"{ gen = "ref", table = "p" }"#);
    let spec = dir.write("refs.toml", &body);
    let out = offline(&spec, &["--dry-run"]);
    let t = text(&out);
    assert_eq!(code(&out), 2, "{t}");
    let (l, c) = position(&body, "{ gen = \"ref\"", 0);
    assert!(t.contains(&format!("refs.toml:{l}:{c}: c.x")), "{t}");
    assert!(t.contains("TiB") && t.contains("at most"), "{t}");

    // More rows than PostgreSQL counts (bigint).
    let body =
        child_spec(r#"{ gen = "seq" }"#).replacen("rows = 10", "rows = 18446744073709551615", 1);
    let spec = dir.write("count.toml", &body);
    for args in [&["--dry-run"][..], &["--dry-run", "--scale", "1e6"]] {
        let out = offline(&spec, args);
        let t = text(&out);
        assert_eq!(code(&out), 2, "{t}");
        let (l, c) = position(&body, "18446744073709551615", 0);
        assert!(t.contains(&format!("count.toml:{l}:{c}: table p")), "{t}");
        assert!(t.contains("9223372036854775807"), "{t}");
    }
}

#[test]
fn dry_runs_print_honest_sizes_for_huge_tables() {
    let dir = Dir::new();
    let spec = dir.write(
        "huge.toml",
        "[tables.a]\nrows = 9000000000000000000\n[tables.a.columns]\nid = { gen = \"seq\" }\n\n\
         [tables.b]\nrows = 9000000000000000000\n[tables.b.columns]\nid = { gen = \"seq\" }\n",
    );
    let out = offline(&spec, &["--dry-run"]);
    let t = ok(&out);
    // A binary COPY row of one bigint: 2 + 4 + 8 bytes.
    assert_eq!(
        t.lines().filter(|l| l.contains("~109 EiB")).count(),
        2,
        "{t}"
    );
    assert!(
        t.contains("18,000,000,000,000,000,000 rows  ~219 EiB"),
        "{t}"
    );
    assert!(!t.contains("18446744073.71"), "{t}");
}

#[test]
fn a_missing_ddl_file_is_refused_before_any_database() {
    let dir = Dir::new();
    let body =
        "ddl = \"nope.sql\"\n\n[tables.t]\nrows = 1\n[tables.t.columns]\nid = { gen = \"seq\" }\n";
    let spec = dir.write("ddl.toml", body);
    let out = offline(&spec, &["--dry-run"]);
    let t = text(&out);
    assert_eq!(code(&out), 2, "{t}");
    assert!(t.contains("ddl.toml:1:7: ddl \"nope.sql\""), "{t}");
    assert!(
        t.contains(&dir.join("nope.sql").display().to_string()),
        "{t}"
    );
}

#[test]
fn refusals_of_the_whole_spec_point_into_the_file() {
    let dir = Dir::new();
    let circle = "[tables.a]\nrows = 1\n[tables.a.columns]\nid = { gen = \"seq\" }\nb = { gen = \"ref\", table = \"b\" }\n\
                  [tables.b]\nrows = 1\n[tables.b.columns]\nid = { gen = \"seq\" }\na = { gen = \"ref\", table = \"a\" }\n";
    for (name, body, at) in [
        ("empty.toml", "", "empty.toml:1:1: no tables"),
        (
            "locale.toml",
            "locale = \"en\"\n",
            "locale.toml:2:1: no tables",
        ),
        (
            "circle.toml",
            circle,
            "circle.toml:1:9: tables reference each other in a circle: a -> b",
        ),
    ] {
        let spec = dir.write(name, body);
        let out = offline(&spec, &["--dry-run"]);
        let t = text(&out);
        assert_eq!(code(&out), 2, "{t}");
        assert!(t.contains(at), "{t}");
    }
    let spec = dir.join("latin1.toml");
    std::fs::write(&spec, b"[tables.t]\n# caf\xe9\nrows = 1\n").unwrap();
    let out = offline(&spec, &["--dry-run"]);
    let t = text(&out);
    assert_eq!(code(&out), 2, "{t}");
    assert!(
        t.contains("latin1.toml:2:6: invalid UTF-8 at byte offset 16"),
        "{t}"
    );
    assert!(t.contains("save the file as UTF-8"), "{t}");
    // The line, with a caret under the byte, as plan errors show it.
    assert!(t.contains("2 | # caf\u{fffd}\n  |      ^"), "{t}");
    // Every located error shows its line.
    let spec = dir.write("excerpt.toml", "[tables.t]\nrows = -1\n");
    let out = offline(&spec, &["--dry-run"]);
    let t = text(&out);
    assert_eq!(code(&out), 2, "{t}");
    assert!(t.contains("excerpt.toml:2:8: "), "{t}");
    assert!(t.contains("2 | rows = -1\n  |        ^^"), "{t}");
}

/// Numbers past what a generator can use, found by the fuzz test
/// (seed/tests/fuzz.rs) or next to what it found: each was a panic, an
/// abort, a hang or silently wrong values; each is now a refusal that points
/// at the number (or, where the number is fine, a dry run that finishes).
#[test]
fn numbers_past_what_a_generator_can_use_are_refused_where_written() {
    let dir = Dir::new();
    // (column x, the text the refusal points at (None: the spec is fine), what it says)
    let cases: &[(&str, Option<&str>, &str)] = &[
        // A year past i64 days: "attempt to multiply with overflow".
        (
            r#"{ gen = "timestamp", from = "9223372036854775807-01-01", to = "2025-01-01" }"#,
            Some("\"9223372036854775807-01-01\""),
            "is not a time",
        ),
        (
            r#"{ gen = "timestamp", from = "2025-01-01T00:00:00+9223372036854775807", to = "2026-01-01" }"#,
            Some("\"2025-01-01T00:00:00+"),
            "is not a time",
        ),
        // A hundred billion words in one value: a hang, then an abort.
        (
            r#"{ gen = "sentence", words = "8..100000000000" }"#,
            Some("\"8..100000000000\""),
            "from 1 to 10000 words",
        ),
        (
            r#"{ gen = "paragraph", words = "1..9223372036854775807" }"#,
            Some("\"1..9223372036854775807\""),
            "up to 1000 sentences",
        ),
        // f64::clamp panics on a NaN bound.
        (
            r#"{ gen = "float", min = nan, max = 2.1, dist = "normal" }"#,
            Some("nan"),
            "min = NaN: write a finite number",
        ),
        // NaN values, silently.
        (
            r#"{ gen = "float", min = 0.0, max = inf }"#,
            Some("inf"),
            "max = inf: write a finite number",
        ),
        (
            r#"{ gen = "float", min = -1e308, max = 1e308 }"#,
            Some("-1e308"),
            "wider than a float holds",
        ),
        // A NaN mean made 0, outside min..max.
        (
            r#"{ gen = "int", min = 5, max = 10, dist = "normal", mean = nan }"#,
            Some("nan"),
            "mean = NaN: write a finite number",
        ),
        (
            r#"{ gen = "decimal", min = 5, max = 10, dist = "normal", stddev = -1.0 }"#,
            Some("-1.0"),
            "stddev = -1: write a finite number, 0 or above",
        ),
        (
            r#"{ gen = "int", min = 5, max = 10, dist = "normal", stddev = inf }"#,
            Some("inf"),
            "stddev = inf",
        ),
        // An infinite weight took every row.
        (
            r#"{ gen = "choice", values = ["a", "b"], weights = [inf, 1] }"#,
            Some("[inf, 1]"),
            "weights must be finite numbers",
        ),
        (
            r#"{ gen = "choice", values = ["a", "b"], weights = [1e308, 1e308] }"#,
            Some("[1e308"),
            "weights must be finite numbers",
        ),
        // A trillion passwords to hash: an abort allocating the pool.
        (
            r#"{ gen = "password", pool = 1000000000000 }"#,
            Some("1000000000000 }"),
            "write pool = 1000000 or less",
        ),
        // A dry run hashed the pool: at cost 31, hours per password.
        (r#"{ gen = "password", cost = 31 }"#, None, ""),
        // An hour offset and a saturating window stay in range.
        (
            r#"{ gen = "timestamp", from = "2025-01-01T00:00:00+05:30", to = "200000-12-31" }"#,
            None,
            "",
        ),
    ];
    for (i, (col, at, says)) in cases.iter().enumerate() {
        // Many rows: a dry run samples a few, whatever the count.
        let body = format!("[tables.t]\nrows = 1000000000000\n[tables.t.columns]\nx = {col}\n");
        let spec = dir.write(&format!("n{i}.toml"), &body);
        let out = offline(&spec, &["--dry-run"]);
        let t = text(&out);
        match at {
            None => assert_eq!(code(&out), 0, "{col}: {t}"),
            Some(needle) => {
                assert_eq!(code(&out), 2, "{col}: {t}");
                let (l, c) = position(&body, needle, 0);
                let want = format!("n{i}.toml:{l}:{c}: t.x (gen = ");
                assert!(t.contains(&want), "{col}: wants {want}: {t}");
                assert!(t.contains(says), "{col}: wants {says:?}: {t}");
            }
        }
    }
}
