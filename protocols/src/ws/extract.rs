//! Read a few JSON pointers out of a received frame in one pass, without
//! building a `serde_json::Value`: unwanted parts are skipped, wanted strings
//! are borrowed from the frame (copied only when they contain escapes).

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// A value found at a pointer.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Val<'a> {
    /// The pointer did not resolve.
    #[default]
    Missing,
    Str(Cow<'a, str>),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Null,
    /// An object or array.
    Nested,
}

impl Val<'_> {
    pub fn is_missing(&self) -> bool {
        matches!(self, Val::Missing)
    }

    /// Equal to `text` as the plan writes it: strings exactly, numbers by value.
    pub fn eq_text(&self, text: &str) -> bool {
        match self {
            Val::Str(s) => s == text,
            Val::U64(n) => text.parse::<u64>() == Ok(*n),
            Val::I64(n) => text.parse::<i64>() == Ok(*n),
            Val::F64(f) => text.parse::<f64>() == Ok(*f),
            Val::Bool(b) => text.parse::<bool>() == Ok(*b),
            _ => false,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::U64(n) => Some(*n as f64),
            Val::I64(n) => Some(*n as f64),
            Val::F64(f) => Some(*f),
            Val::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
struct Node {
    /// Index into the output slots when a pointer ends here.
    field: Option<usize>,
    children: Vec<(String, Node)>,
}

impl Node {
    fn child(&self, key: &str) -> Option<&Node> {
        self.children.iter().find(|(k, _)| k == key).map(|(_, n)| n)
    }

    fn child_index(&self, i: usize) -> Option<&Node> {
        // Array elements are addressed by decimal index tokens ("/items/0").
        self.children
            .iter()
            .find(|(k, _)| k.parse::<usize>() == Ok(i) && (k == "0" || !k.starts_with('0')))
            .map(|(_, n)| n)
    }
}

/// Text that is not an RFC 6901 JSON pointer.
#[derive(Debug, thiserror::Error)]
pub enum PointerError {
    #[error("{0:?} is not a JSON pointer: it must start with '/', e.g. \"/{0}\"")]
    Slash(String),
    #[error("{0:?}: '~' must be followed by 0 ('~') or 1 ('/') in a JSON pointer")]
    Tilde(String),
}

/// Parse an RFC 6901 JSON pointer ("" or "/a/b~1c") into its tokens.
pub fn parse_pointer(p: &str) -> Result<Vec<String>, PointerError> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = p.strip_prefix('/') else {
        return Err(PointerError::Slash(p.into()));
    };
    let mut tokens = Vec::new();
    for raw in rest.split('/') {
        let mut t = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '~' {
                match chars.next() {
                    Some('0') => t.push('~'),
                    Some('1') => t.push('/'),
                    _ => {
                        return Err(PointerError::Tilde(p.into()));
                    }
                }
            } else {
                t.push(c);
            }
        }
        tokens.push(t);
    }
    Ok(tokens)
}

/// The frame is not (one complete) JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not JSON")]
pub struct NotJson;

/// A set of pointers, compiled into a tree walked once per frame.
#[derive(Debug, Default)]
pub struct Extractor {
    root: Node,
    fields: usize,
}

impl Extractor {
    /// Add a pointer; returns its slot in the output of [`Extractor::extract`].
    pub fn add(&mut self, pointer: &str) -> Result<usize, PointerError> {
        let tokens = parse_pointer(pointer)?;
        let mut node = &mut self.root;
        for t in tokens {
            let pos = match node.children.iter().position(|(k, _)| *k == t) {
                Some(p) => p,
                None => {
                    node.children.push((t, Node::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[pos].1;
        }
        let slot = *node.field.get_or_insert(self.fields);
        if slot == self.fields {
            self.fields += 1;
        }
        Ok(slot)
    }

    pub fn fields(&self) -> usize {
        self.fields
    }

    /// Fill `out` (one slot per added pointer) from the JSON text in `bytes`.
    pub fn extract<'a>(&self, bytes: &'a [u8], out: &mut [Val<'a>]) -> Result<(), NotJson> {
        for v in out.iter_mut() {
            *v = Val::Missing;
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        Walk {
            node: &self.root,
            out,
        }
        .deserialize(&mut de)
        .map_err(|_| NotJson)?;
        de.end().map_err(|_| NotJson)
    }
}

struct Walk<'n, 'o, 'a> {
    node: &'n Node,
    out: &'o mut [Val<'a>],
}

impl Walk<'_, '_, '_> {
    fn set<'a>(node: &Node, out: &mut [Val<'a>], v: Val<'a>) {
        if let Some(i) = node.field
            && let Some(slot) = out.get_mut(i)
        {
            *slot = v;
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.node.field.is_none() && self.node.children.is_empty() {
            d.deserialize_ignored_any(IgnoredAny).map(|_| ())
        } else {
            d.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        Self::set(self.node, self.out, Val::Str(Cow::Borrowed(v)));
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        Self::set(self.node, self.out, Val::Str(Cow::Owned(v.to_string())));
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        Self::set(self.node, self.out, Val::U64(v));
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        Self::set(self.node, self.out, Val::I64(v));
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        Self::set(self.node, self.out, Val::F64(v));
        Ok(())
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        Self::set(self.node, self.out, Val::Bool(v));
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Self::set(self.node, self.out, Val::Null);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        Self::set(self.node, self.out, Val::Nested);
        while let Some(child) = map.next_key_seed(KeySeed(self.node))? {
            match child {
                Some(node) => map.next_value_seed(Walk {
                    node,
                    out: &mut *self.out,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        Self::set(self.node, self.out, Val::Nested);
        let mut i = 0usize;
        loop {
            let more = match self.node.child_index(i) {
                Some(node) => seq
                    .next_element_seed(Walk {
                        node,
                        out: &mut *self.out,
                    })?
                    .is_some(),
                None => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }
}

/// Matches an object key against a node's children without allocating.
struct KeySeed<'n>(&'n Node);

impl<'de, 'n> DeserializeSeed<'de> for KeySeed<'n> {
    type Value = Option<&'n Node>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'n> Visitor<'de> for KeySeed<'n> {
    type Value = Option<&'n Node>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.child(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<'a>(ptrs: &[&str], json: &'a str) -> Result<Vec<Val<'a>>, NotJson> {
        let mut e = Extractor::default();
        let slots: Vec<usize> = ptrs.iter().map(|p| e.add(p).unwrap()).collect();
        let mut out = vec![Val::Missing; e.fields()];
        e.extract(json.as_bytes(), &mut out)?;
        Ok(slots.iter().map(|&i| out[i].clone()).collect())
    }

    #[test]
    fn reads_nested_values_and_skips_the_rest() {
        let v = run(
            &[
                "/type",
                "/msg/id",
                "/msg/meta/at",
                "/items/1/n",
                "/nope",
                "/a~1b",
            ],
            r#"{"x":[1,{"y":2}],"type":"message","msg":{"id":"k-1","meta":{"at":1700000000123456}},
                "items":[{"n":1},{"n":-2}],"a/b":true}"#,
        )
        .unwrap();
        assert_eq!(v[0], Val::Str("message".into()));
        assert_eq!(v[1], Val::Str("k-1".into()));
        assert_eq!(v[2], Val::U64(1_700_000_000_123_456));
        assert_eq!(v[3], Val::I64(-2));
        assert_eq!(v[4], Val::Missing);
        assert_eq!(v[5], Val::Bool(true));
        assert!(matches!(&v[0], Val::Str(Cow::Borrowed(_))), "borrowed");
    }

    #[test]
    fn escaped_strings_and_bad_input() {
        let v = run(&["/t"], r#"{"t":"a\"b"}"#).unwrap();
        assert_eq!(v[0], Val::Str("a\"b".into()));
        assert!(run(&["/t"], "hello").is_err());
        assert!(run(&["/t"], r#"{"t":1} trailing"#).is_err());
        assert_eq!(run(&["/t"], "[1,2]").unwrap()[0], Val::Missing);
    }

    #[test]
    fn pointers_are_checked() {
        assert!(
            parse_pointer("type")
                .unwrap_err()
                .to_string()
                .contains("\"/type\"")
        );
        assert!(parse_pointer("/a~2").is_err());
        assert_eq!(parse_pointer("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_pointer("/a~0~1").unwrap(), vec!["a~/".to_string()]);
    }

    #[test]
    fn compares_like_the_plan_writes() {
        assert!(Val::U64(17).eq_text("17"));
        assert!(Val::Str("u1".into()).eq_text("u1"));
        assert!(!Val::Missing.eq_text(""));
    }
}
