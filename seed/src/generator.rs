//! Column generators (compiled once from the spec by `compile`), asked for one cell
//! at a time. A cell is a pure function of (seed, table, column, row).

use crate::fakes::{self, Faker, Locale};
use crate::rng::{Permutation, Rng, Zipf};
use crate::value::Value;
use std::sync::{Arc, OnceLock};

#[derive(Clone, Debug)]
pub enum IntDist {
    Uniform,
    Normal { mean: f64, sd: f64 },
    Zipf(Zipf),
}

#[derive(Debug)]
pub enum Gen {
    Seq {
        start: i64,
        step: i64,
        repeat: u64,
    },
    Uuid,
    Const(Value),
    Int {
        min: i64,
        max: i64,
        dist: IntDist,
        unique: Option<Permutation>,
    },
    Float {
        min: f64,
        max: f64,
        dist: IntDist,
    },
    Decimal {
        min: i64,
        max: i64,
        decimals: u32,
        dist: IntDist,
    },
    Bool {
        p: f64,
    },
    Choice {
        values: Vec<Value>,
        cumulative: Vec<f64>,
    },
    Fake {
        what: Faker,
        locale: Locale,
        unique: bool,
    },
    Email {
        locale: Locale,
        domain: String,
        from: Option<usize>,
        unique: bool,
    },
    Product,
    Words {
        min: usize,
        max: usize,
        sentence: bool,
    },
    Paragraph {
        min: usize,
        max: usize,
    },
    Timestamp {
        from: i64,
        to: i64,
    },
    After {
        column: usize,
        min: i64,
        max: i64,
    },
    Ref(Box<RefGen>),
    Json(Vec<JsonPart>),
    Password(Box<PasswordGen>),
}

/// A foreign key: the parent's column values are materialized once.
#[derive(Debug)]
pub struct RefGen {
    pub table: String,
    pub column: String,
    pub table_idx: usize,
    pub column_idx: usize,
    pub dist_zipf: Option<f64>,
    pub per_parent: Option<(u64, u64)>,
    pub distinct: bool,
    pub unique: bool,
    pub key: u64,
    /// Filled before generation (parent values, zipf sampler, permutation).
    pub ready: OnceLock<RefReady>,
}

#[derive(Debug)]
pub struct RefReady {
    /// The parent's row count: indexes are drawn in 0..rows.
    pub rows: u64,
    /// Every parent value, or (dry runs) an even sample of them.
    pub values: Arc<Vec<Value>>,
    pub zipf: Option<Zipf>,
    pub perm: Permutation,
}

/// JSON templates render literal text around nested generators.
#[derive(Debug)]
pub enum JsonPart {
    Lit(String),
    Gen(Box<Gen>, u64),
}

/// Passwords: a pool of plaintexts, each hashed once (hashing dominates otherwise).
#[derive(Debug)]
pub struct PasswordGen {
    pub cost: u32,
    pub pool: u64,
    pub length: usize,
    pub key: u64,
    pub hashed: OnceLock<Arc<Vec<(String, String)>>>,
}

/// Words in one value of word, words or sentence (a row is made in memory).
pub const MAX_WORDS: i64 = 10_000;
/// Sentences in one paragraph (4 to 12 words each).
pub const MAX_SENTENCES: i64 = 1_000;

/// Distinct passwords a column can have: a million hashes take ~17 core-minutes at cost 4.
pub const MAX_POOL: u64 = 1_000_000;

pub const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

impl PasswordGen {
    pub fn plaintext(&self, i: u64) -> String {
        let mut r = Rng::cell(self.key, i);
        (0..self.length)
            .map(|_| PASSWORD_ALPHABET[r.below(PASSWORD_ALPHABET.len() as u64) as usize] as char)
            .collect()
    }

    /// bcrypt with a salt drawn from the seed, so the hashes are deterministic too.
    /// Written as `$2a$`: every bcrypt verifier reads it (some older ones
    /// refuse `$2b$`), and for passwords under 72 bytes the hash is the same.
    pub fn hash(&self, i: u64, plain: &str) -> String {
        let mut salt = [0u8; 16];
        Rng::cell(self.key ^ 0x5a17, i).fill(&mut salt);
        bcrypt::hash_with_salt(plain, self.cost, salt)
            .map(|h| h.format_for_version(bcrypt::Version::TwoA))
            .unwrap_or_default()
    }

    /// Hash the pool on every core, once.
    pub fn pool(&self) -> &Arc<Vec<(String, String)>> {
        self.hashed.get_or_init(|| {
            let n = self.pool;
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
            let per = n.div_ceil(threads).max(1);
            let mut out = Vec::with_capacity(n as usize);
            std::thread::scope(|s| {
                let hs: Vec<_> = (0..threads)
                    .map(|t| {
                        s.spawn(move || {
                            (t * per..((t + 1) * per).min(n))
                                .map(|i| {
                                    let p = self.plaintext(i);
                                    let h = self.hash(i, &p);
                                    (p, h)
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                for h in hs {
                    out.extend(h.join().expect("hashing thread"));
                }
            });
            Arc::new(out)
        })
    }
}

/// What a generator needs from its row.
pub struct Cell<'a> {
    pub row: u64,
    pub key: u64,
    /// The row's other columns (those this one depends on are already made).
    pub row_values: &'a [Value],
    /// For per_parent tables: (parent index, index within the parent's children).
    pub group: Option<(u64, u64)>,
    /// Exports want the plaintext password, the table wants the hash.
    pub plaintext: bool,
}

impl Gen {
    /// Columns of the same row this generator reads.
    pub fn deps(&self, out: &mut Vec<usize>) {
        match self {
            Gen::Email { from: Some(c), .. } => out.push(*c),
            Gen::After { column, .. } => out.push(*column),
            Gen::Json(parts) => {
                for p in parts {
                    if let JsonPart::Gen(g, _) = p {
                        g.deps(out);
                    }
                }
            }
            _ => {}
        }
    }

    #[inline]
    pub fn make(&self, c: &Cell, out: &mut Value) {
        // The two generators without randomness skip the cell's stream.
        match self {
            Gen::Seq {
                start,
                step,
                repeat,
            } => {
                let k = if *repeat == 1 { c.row } else { c.row / repeat };
                *out = Value::Int(start.wrapping_add((k as i64).wrapping_mul(*step)));
            }
            Gen::Const(v) => {
                if out != v {
                    out.clone_from(v);
                }
            }
            _ => self.make_random(c, out),
        }
    }

    /// Everything else: kept out of line, so the cheap generators above do
    /// not pay for this function's large stack frame on every cell.
    #[inline(never)]
    fn make_random(&self, c: &Cell, out: &mut Value) {
        let mut rng = Rng::cell(c.key, c.row);
        match self {
            Gen::Seq { .. } | Gen::Const(_) => {}
            Gen::Uuid => {
                let mut b = [0u8; 16];
                rng.fill(&mut b);
                *out = Value::Uuid(*uuid::Builder::from_random_bytes(b).as_uuid().as_bytes());
            }
            Gen::Int {
                min,
                max,
                dist,
                unique,
            } => {
                *out = Value::Int(match unique {
                    Some(p) => min + p.apply(c.row) as i64,
                    None => draw_int(&mut rng, *min, *max, dist),
                })
            }
            Gen::Float { min, max, dist } => {
                let x = match dist {
                    IntDist::Normal { mean, sd } => clamp_normal(&mut rng, *mean, *sd, *min, *max),
                    _ => min + rng.unit() * (max - min),
                };
                *out = Value::Float(x);
            }
            Gen::Decimal {
                min,
                max,
                decimals,
                dist,
            } => *out = Value::Dec(draw_int(&mut rng, *min, *max, dist), *decimals),
            Gen::Bool { p } => *out = Value::Bool(rng.unit() < *p),
            Gen::Choice { values, cumulative } => {
                let x = rng.unit() * cumulative.last().copied().unwrap_or(1.0);
                let i = cumulative
                    .partition_point(|&w| w <= x)
                    .min(values.len() - 1);
                out.clone_from(&values[i]);
            }
            Gen::Fake {
                what,
                locale,
                unique,
            } => {
                let s = out.text_buf();
                what.make(*locale, &mut rng, s);
                if *unique {
                    use std::fmt::Write as _;
                    let _ = write!(s, "{}", c.row);
                }
            }
            Gen::Email {
                locale,
                domain,
                from,
                unique,
            } => {
                let name = match from.and_then(|i| c.row_values[i].as_str()) {
                    Some(n) => n.to_string(),
                    None => {
                        let mut n = String::new();
                        Faker::Name.make(*locale, &mut rng, &mut n);
                        n
                    }
                };
                let s = out.text_buf();
                fakes::email_local(&name, s);
                if *unique {
                    use std::fmt::Write as _;
                    let _ = write!(s, "{}", c.row);
                }
                s.push('@');
                s.push_str(domain);
            }
            Gen::Product => fakes::product(&mut rng, out.text_buf()),
            Gen::Words { min, max, sentence } => {
                let n = rng.range_i64(*min as i64, *max as i64) as usize;
                let s = out.text_buf();
                if *sentence {
                    fakes::sentence(&mut rng, n, s)
                } else {
                    fakes::words(&mut rng, n, s)
                }
            }
            Gen::Paragraph { min, max } => {
                let n = rng.range_i64(*min as i64, *max as i64) as usize;
                let s = out.text_buf();
                for i in 0..n {
                    if i > 0 {
                        s.push(' ');
                    }
                    let w = rng.range_i64(4, 12) as usize;
                    fakes::sentence(&mut rng, w, s);
                }
            }
            Gen::Timestamp { from, to } => *out = Value::Time(rng.range_i64(*from, *to)),
            Gen::After { column, min, max } => {
                *out = match c.row_values[*column] {
                    Value::Time(t) => Value::Time(t.saturating_add(rng.range_i64(*min, *max))),
                    _ => Value::Null,
                }
            }
            Gen::Ref(r) => {
                let ready = r.ready.get().expect("refs are prepared before generation");
                let n = ready.rows;
                let idx = if r.per_parent.is_some() {
                    c.group.map_or(0, |g| g.0)
                } else if r.unique {
                    ready.perm.apply(c.row)
                } else if r.distinct {
                    let (p, j) = c.group.unwrap_or((c.row, 0));
                    Permutation::new(n, r.key ^ p).apply(j)
                } else if let Some(z) = &ready.zipf {
                    ready.perm.apply(z.sample(&mut rng) - 1)
                } else {
                    rng.below(n)
                };
                let len = ready.values.len() as u64;
                let slot = if len == n {
                    idx
                } else {
                    // A dry run's sample: the value nearest the drawn row.
                    (u128::from(idx) * u128::from(len) / u128::from(n)) as u64
                };
                out.clone_from(&ready.values[slot as usize]);
            }
            Gen::Json(parts) => {
                let mut s = std::mem::take(out.json_buf());
                let mut v = Value::Null;
                for p in parts {
                    match p {
                        JsonPart::Lit(l) => s.push_str(l),
                        JsonPart::Gen(g, k) => {
                            let sub = Cell {
                                row: c.row,
                                key: *k,
                                row_values: c.row_values,
                                group: c.group,
                                plaintext: c.plaintext,
                            };
                            g.make(&sub, &mut v);
                            v.write_json(&mut s);
                        }
                    }
                }
                *out = Value::Json(s);
            }
            Gen::Password(p) => {
                let i = rng.below(p.pool);
                let pool = p.pool();
                // A dry run's stand-ins are fewer than `pool`.
                let (plain, hash) = &pool[(i % pool.len() as u64) as usize];
                let s = out.text_buf();
                s.push_str(if c.plaintext { plain } else { hash });
            }
        }
    }

    /// Dry runs size rows without hashing passwords: a bcrypt hash is
    /// always 60 bytes, and a pool at a high cost would take hours.
    pub fn stand_in_hashes(&self) {
        match self {
            Gen::Password(p) => {
                let _ = p.hashed.set(Arc::new(
                    (0..p.pool.min(64))
                        .map(|i| {
                            (
                                p.plaintext(i),
                                format!("$2a${:02}${}", p.cost, "x".repeat(53)),
                            )
                        })
                        .collect(),
                ));
            }
            Gen::Json(parts) => {
                for part in parts {
                    if let JsonPart::Gen(g, _) = part {
                        g.stand_in_hashes();
                    }
                }
            }
            _ => {}
        }
    }

    /// Can two rows get the same value?
    pub fn is_unique(&self) -> bool {
        match self {
            Gen::Seq { repeat, step, .. } => *repeat == 1 && *step != 0,
            Gen::Uuid => true,
            Gen::Int { unique, .. } => unique.is_some(),
            Gen::Fake { unique, .. } | Gen::Email { unique, .. } => *unique,
            Gen::Ref(r) => r.unique,
            _ => false,
        }
    }
}

fn draw_int(rng: &mut Rng, min: i64, max: i64, dist: &IntDist) -> i64 {
    match dist {
        IntDist::Uniform => rng.range_i64(min, max),
        IntDist::Normal { mean, sd } => {
            clamp_normal(rng, *mean, *sd, min as f64, max as f64).round() as i64
        }
        IntDist::Zipf(z) => {
            // Rank k is min + k - 1, computed without overflow for any range.
            let span = (i128::from(max) - i128::from(min)) as u64;
            min.wrapping_add((z.sample(rng) - 1).min(span) as i64)
        }
    }
}

/// A normal draw kept inside [min, max]: redraw a few times, then clamp.
fn clamp_normal(rng: &mut Rng, mean: f64, sd: f64, min: f64, max: f64) -> f64 {
    for _ in 0..8 {
        let x = mean + sd * rng.normal();
        if (min..=max).contains(&x) {
            return x;
        }
    }
    (mean + sd * rng.normal()).clamp(min, max)
}
