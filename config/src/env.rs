//! `${NAME}` in plan strings, from the environment and `-e NAME=VALUE`.

use std::collections::HashMap;
use toml::Spanned;
use toml::de::DeValue;
use volley_protocols::ConfigError;

/// Replace `${NAME}` and `${NAME:-default}` in every string of the document.
/// `$${` writes a literal `${`.
pub fn substitute(
    v: &mut Spanned<DeValue<'_>>,
    env: &HashMap<String, String>,
) -> Result<(), ConfigError> {
    let span = v.span();
    match v.get_mut() {
        DeValue::String(s) if s.contains("${") => {
            let out = expand(s, env).map_err(|e| ConfigError::at(span, e))?;
            *s = out.into();
        }
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                substitute(item, env)?;
            }
        }
        DeValue::Table(t) => {
            for (_, item) in t.iter_mut() {
                substitute(item, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A `${...}` that cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("unclosed '${{' in {0:?}: write ${{NAME}}")]
    Unclosed(String),
    #[error("${{{0}}} is not a variable name; use letters, digits and _")]
    BadName(String),
    #[error("${{{0}}} is not set: export {0}=... or pass -e {0}=... (or write ${{{0}:-default}})")]
    Unset(String),
}

pub fn expand(s: &str, env: &HashMap<String, String>) -> Result<String, EnvError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| EnvError::Unclosed(s.to_string()))?;
            let inner = &tail[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n.trim(), Some(d)),
                None => (inner.trim(), None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(EnvError::BadName(inner.to_string()));
            }
            match (env.get(name), default) {
                (Some(v), _) => out.push_str(v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(EnvError::Unset(name.to_string()));
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands() {
        let env = HashMap::from([("A".to_string(), "x".to_string())]);
        assert_eq!(expand("${A}/y", &env).unwrap(), "x/y");
        assert_eq!(expand("${B:-d}", &env).unwrap(), "d");
        assert_eq!(expand("$${A} $5", &env).unwrap(), "${A} $5");
        assert_eq!(
            expand("${B}", &env).unwrap_err().to_string(),
            "${B} is not set: export B=... or pass -e B=... (or write ${B:-default})"
        );
        assert_eq!(
            expand("${A", &env).unwrap_err().to_string(),
            "unclosed '${' in \"${A\": write ${NAME}"
        );
        assert_eq!(
            expand("${A B}", &env).unwrap_err(),
            EnvError::BadName("A B".into())
        );
    }
}
