//! The seed spec (TOML): tables, their row counts and column generators,
//! the optional DDL and the CSV exports. Parsing keeps byte spans so every
//! error can point at file:line:col.

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use volley_protocols::span::{self, Spot};

/// A problem in the spec, located in its text when known.
#[derive(Debug, Clone)]
pub struct SpecError {
    pub file: String,
    /// 1-based line and column.
    pub at: Option<(usize, usize)>,
    pub message: String,
    /// The line, with carets under what is wrong.
    pub excerpt: Option<String>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        span::render(
            f,
            &self.file,
            self.at,
            &self.message,
            self.excerpt.as_deref(),
        )
    }
}

impl std::error::Error for SpecError {}

/// Locates errors in one spec file.
#[derive(Clone, Debug)]
pub struct Source {
    pub file: String,
    pub text: String,
}

impl Source {
    pub fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> SpecError {
        let spot = span.map(|s| Spot::of(&self.text, s));
        SpecError {
            file: self.file.clone(),
            at: spot.as_ref().map(|s| (s.line, s.col)),
            message: message.into(),
            excerpt: spot.map(|s| s.excerpt),
        }
    }
}

/// The key whose value starts at `offset`: `rows` in `rows = "ten"`, `min`
/// in `id = { gen = "int", min = "x" }`.
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let before = text.get(..offset)?;
    let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    let (key, _) = line.rsplit_once('=')?;
    let key = key.trim_end().rsplit([',', '{', ' ']).next()?.trim();
    (!key.is_empty()).then_some(key)
}

/// A map that keeps the file's order (tables and columns are listed in it).
#[derive(Debug, Clone)]
pub struct Ordered<T>(pub Vec<(Spanned<String>, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    pub ddl: Option<Spanned<String>>,
    pub locale: Option<Spanned<String>>,
    #[serde(default)]
    pub tables: Ordered<Spanned<RawTable>>,
    #[serde(default)]
    pub export: Ordered<Spanned<RawExport>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTable {
    pub rows: Option<Spanned<u64>>,
    #[serde(default)]
    pub columns: Ordered<Spanned<RawColumn>>,
}

/// Every key any generator takes; which ones apply is checked per generator
/// (`gen::ALLOWED`) so a misplaced key is named, not silently ignored.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawColumn {
    pub r#gen: Option<Spanned<String>>,
    pub null_ratio: Option<Spanned<f64>>,
    pub unique: Option<Spanned<bool>>,
    pub start: Option<Spanned<i64>>,
    pub step: Option<Spanned<i64>>,
    pub repeat: Option<Spanned<u64>>,
    pub value: Option<Spanned<toml::Value>>,
    pub min: Option<Spanned<toml::Value>>,
    pub max: Option<Spanned<toml::Value>>,
    pub dist: Option<Spanned<String>>,
    pub mean: Option<Spanned<f64>>,
    pub stddev: Option<Spanned<f64>>,
    pub exponent: Option<Spanned<f64>>,
    pub decimals: Option<Spanned<u32>>,
    pub probability: Option<Spanned<f64>>,
    pub values: Option<Spanned<Vec<toml::Value>>>,
    pub weights: Option<Spanned<Vec<f64>>>,
    pub locale: Option<Spanned<String>>,
    pub domain: Option<Spanned<String>>,
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
    pub at: Option<Spanned<String>>,
    pub table: Option<Spanned<String>>,
    pub column: Option<Spanned<String>>,
    pub per_parent: Option<Spanned<toml::Value>>,
    pub distinct: Option<Spanned<bool>>,
    pub template: Option<Spanned<toml::Value>>,
    pub scheme: Option<Spanned<String>>,
    pub cost: Option<Spanned<u32>>,
    pub pool: Option<Spanned<u64>>,
    pub length: Option<Spanned<u64>>,
    pub words: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExport {
    pub file: Spanned<String>,
    pub table: Option<Spanned<String>>,
    pub columns: Option<Spanned<Vec<String>>>,
    pub query: Option<Spanned<String>>,
    pub limit: Option<Spanned<u64>>,
}

/// A parsed spec, before it meets the database.
#[derive(Debug)]
pub struct SpecFile {
    pub path: PathBuf,
    pub src: Source,
    pub raw: RawSpec,
}

impl SpecFile {
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| SpecError {
            file: file.clone(),
            at: None,
            message: format!("cannot read the seed spec: {e}"),
            excerpt: None,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let bad = e.utf8_error().valid_up_to();
            let spot = Spot::not_utf8(e.as_bytes(), bad);
            SpecError {
                file: file.clone(),
                at: Some((spot.line, spot.col)),
                message: format!("invalid UTF-8 at byte offset {bad}; save the file as UTF-8"),
                excerpt: Some(spot.excerpt),
            }
        })?;
        Self::parse(path, text)
    }

    pub fn parse(path: &Path, text: String) -> Result<Self, SpecError> {
        let src = Source {
            file: path.display().to_string(),
            text,
        };
        let raw: RawSpec = toml::from_str(&src.text).map_err(|e| {
            let msg = e.message().trim_end();
            // Type errors point at the value; name the key it belongs to.
            let key = e
                .span()
                .filter(|_| msg.starts_with("invalid"))
                .and_then(|s| key_before(&src.text, s.start));
            match key {
                Some(k) => src.error(e.span(), format!("`{k}`: {msg}")),
                None => src.error(e.span(), msg),
            }
        })?;
        if raw.tables.0.is_empty() {
            // Point at the end, where tables can be added.
            let end = src.text.len();
            return Err(src.error(
                Some(end..end),
                "no tables: add [tables.NAME] with rows and [tables.NAME.columns]",
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            src,
            raw,
        })
    }

    /// Paths in the spec are relative to its folder.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        self.path
            .parent()
            .map(|d| d.join(p))
            .unwrap_or_else(|| p.to_path_buf())
    }
}

/// "1..5" or 3: an inclusive whole-number range.
pub fn parse_int_range(v: &toml::Value) -> Option<(i64, i64)> {
    match v {
        toml::Value::Integer(i) => Some((*i, *i)),
        toml::Value::String(s) => {
            let (a, b) = s.split_once("..")?;
            let a: i64 = a.trim().parse().ok()?;
            let b: i64 = b.trim().trim_start_matches('=').parse().ok()?;
            (a <= b).then_some((a, b))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_point_at_line_and_column() {
        let text = "[tables.users]\nrows = 10\n[tables.users.columns]\nid = { gen = \"seq\", bogus = 1 }\n";
        let e = SpecFile::parse(Path::new("s.toml"), text.into()).unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with("s.toml:4:"), "{m}");
        assert!(m.contains("unknown field `bogus`"), "{m}");
    }

    #[test]
    fn type_errors_name_their_key() {
        let text = "[tables.users]\nrows = \"ten\"\n";
        let m = SpecFile::parse(Path::new("s.toml"), text.into())
            .unwrap_err()
            .to_string();
        assert!(m.starts_with("s.toml:2:8: `rows`: invalid type"), "{m}");
        let text = "[tables.users]\nrows = 1\n[tables.users.columns]\nid = { gen = \"int\", null_ratio = \"x\" }\n";
        let m = SpecFile::parse(Path::new("s.toml"), text.into())
            .unwrap_err()
            .to_string();
        assert!(m.contains("`null_ratio`: invalid type"), "{m}");
    }

    #[test]
    fn keeps_the_file_order() {
        let text = "[tables.b]\nrows = 1\n[tables.a]\nrows = 2\n";
        let s = SpecFile::parse(Path::new("s.toml"), text.into()).unwrap();
        let names: Vec<&str> = s
            .raw
            .tables
            .0
            .iter()
            .map(|(k, _)| k.get_ref().as_str())
            .collect();
        assert_eq!(names, ["b", "a"]);
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse_int_range(&toml::Value::String("1..5".into())),
            Some((1, 5))
        );
        assert_eq!(parse_int_range(&toml::Value::Integer(3)), Some((3, 3)));
        assert_eq!(parse_int_range(&toml::Value::String("5..1".into())), None);
    }
}
