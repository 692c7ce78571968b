//! Configuration errors that point at the plan text, and the checks a
//! driver makes against its target before any load.

use std::ops::Range;

/// Why a scenario cannot run against its target, found before any load
/// (`Driver::prepare`): a bad plan for this target, nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    /// The target cannot be reached or refuses the session (refused,
    /// timed out, authentication, TLS, no such database).
    #[error("{0}")]
    Connect(String),
    /// The target refuses what the plan asks of it (a statement that does
    /// not prepare, a parameter that does not fit its type).
    #[error("{0}")]
    Refused(String),
}

/// A problem in the plan, located by byte span in the plan's source when known.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    pub span: Option<Range<usize>>,
    pub message: String,
    pub kind: ConfigErrorKind,
}

/// What kind of problem, for callers that add advice to some kinds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// A table has a key its section does not know (serde's unknown field).
    UnknownKey,
    /// A `${NAME}` names a variable that is not set.
    UnsetVariable,
    #[default]
    Other,
}

impl ConfigError {
    /// `message` is text or any error that words itself.
    pub fn new(message: impl std::fmt::Display) -> Self {
        Self {
            span: None,
            message: message.to_string(),
            kind: ConfigErrorKind::Other,
        }
    }

    pub fn at(span: Range<usize>, message: impl std::fmt::Display) -> Self {
        Self {
            span: Some(span),
            message: message.to_string(),
            kind: ConfigErrorKind::Other,
        }
    }

    pub fn with_kind(mut self, kind: ConfigErrorKind) -> Self {
        self.kind = kind;
        self
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
        // toml's error is text only; serde words an unknown field as
        // `unknown field `x`, expected ...` (`de::Error::unknown_field`).
        // Read the kind here, where serde's words become the user's, once.
        let kind = if e.message().starts_with("unknown field") {
            ConfigErrorKind::UnknownKey
        } else {
            ConfigErrorKind::Other
        };
        Self {
            span: e.span(),
            message: plain(e.message().trim_end()),
            kind,
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
