//! `volley seed` against the throwaway PostgreSQL of scripts/test.sh: one
//! fresh database per test, the real binary, checks by SQL.

mod common;

use common::{Dir, RUN_LIMIT, Within, code, text, volley};
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
        volley()
            .arg("seed")
            .arg(spec)
            .arg("--database-url")
            .arg(&self.url)
            .args(args)
            .output_within(RUN_LIMIT)
    }
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
    let v = volley().arg("validate").arg(&plan).output_within(RUN_LIMIT);
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
    let out = volley()
        .args(["seed", "--database-url", "postgres://h:notaport/db"])
        .arg(&spec)
        .output_within(RUN_LIMIT);
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
    let offline = volley()
        .env_remove("DATABASE_URL")
        .args(["seed", "--dry-run", "--scale", "2"])
        .arg(&spec)
        .output_within(RUN_LIMIT);
    let offline = ok(&offline);
    assert_eq!(printed_rows(&offline, "orders"), 10_000, "{offline}");
    assert!(offline.contains("inferred"), "{offline}");

    let out = ok(&db.seed(&spec, &["--dry-run"]));
    assert_eq!(printed_rows(&out, "users"), 1000, "{out}");
    assert_eq!(printed_rows(&out, "orders"), 5000, "{out}");
    assert!(out.contains("kB"), "estimated size: {out}");
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
