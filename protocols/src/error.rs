//! Configuration errors that point at the plan text.

use std::ops::Range;

/// A problem in the plan, located by byte span in the plan's source when known.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    pub span: Option<Range<usize>>,
    pub message: String,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            span: None,
            message: message.into(),
        }
    }

    pub fn at(span: Range<usize>, message: impl Into<String>) -> Self {
        Self {
            span: Some(span),
            message: message.into(),
        }
    }

    /// Attach a span when the error does not carry one yet.
    pub fn or_at(mut self, span: Range<usize>) -> Self {
        if self.span.is_none() {
            self.span = Some(span);
        }
        self
    }
}

impl From<toml::de::Error> for ConfigError {
    fn from(e: toml::de::Error) -> Self {
        Self {
            span: e.span(),
            message: plain(e.message().trim_end()),
        }
    }
}

/// serde speaks Rust ("expected u64", "unknown field"); users write TOML.
pub fn plain(msg: &str) -> String {
    let mut m = msg
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing key")
        .replace("unknown variant", "unknown value");
    for (rust, user) in [
        ("expected u64", "expected a whole number such as 10"),
        ("expected u32", "expected a whole number such as 10"),
        ("expected u16", "expected a whole number such as 10"),
        ("expected usize", "expected a whole number such as 10"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ] {
        m = m.replace(rust, user);
    }
    m
}
