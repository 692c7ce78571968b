//! `${NAME}` in plan strings, from the environment and `-e NAME=VALUE`.

use std::collections::HashMap;
use toml::Spanned;
use toml::de::DeValue;
use volley_protocols::{ConfigError, ConfigErrorKind};

/// Keys whose value is a number wherever they appear in a plan. A string
/// written there with `${NAME}` (`vus = "${VUS:-5}"`) becomes the number it
/// expands to, so every number can come from the environment like a string.
pub const NUMBER_KEYS: &[&str] = &[
    "vus",
    "iterations",
    "start_vus",
    "target",
    "rate",
    "start_rate",
    "pre_allocated_vus",
    "max_vus",
    "weight",
    "pool_size",
    "rows",
    "min_rows",
    "max_rows",
    "max_redirects",
    "room_size",
    "messages_per_minute",
    "forged_ratio",
    "stale_ratio",
    "unsigned_ratio",
    "duplicate_ratio",
    "out_of_order_ratio",
    "pid",
    "scale",
];

/// Tables whose keys are the user's own (JSON bodies, headers, tags, vars,
/// metric names): a `rate` or `target` in them is data, not a plan number.
const FREE_FORM: &[&str] = &[
    "json",
    "query",
    "form",
    "multipart",
    "headers",
    "tags",
    "cookies",
    "captures",
    "params",
    "vars",
    "message",
    "join",
    "correlate",
    "record",
    "thresholds",
];

/// Replace `${NAME}` and `${NAME:-default}` in every string of the document.
/// `$${` writes a literal `${`.
pub fn substitute(
    v: &mut Spanned<DeValue<'_>>,
    env: &HashMap<String, String>,
) -> Result<(), ConfigError> {
    substitute_at(v, None, env)
}

/// `key`: the table key `v` (or the array holding it) is written under.
fn substitute_at(
    v: &mut Spanned<DeValue<'_>>,
    key: Option<&str>,
    env: &HashMap<String, String>,
) -> Result<(), ConfigError> {
    let span = v.span();
    match v.get_mut() {
        DeValue::String(s) if s.contains("${") => {
            let out = expand(s, env).map_err(|e| {
                let kind = match e {
                    EnvError::Unset(_) => ConfigErrorKind::UnsetVariable,
                    _ => ConfigErrorKind::Other,
                };
                ConfigError::at(span.clone(), e).with_kind(kind)
            })?;
            match key.filter(|k| NUMBER_KEYS.contains(k)) {
                Some(k) => {
                    let number = number(&out).ok_or_else(|| {
                        ConfigError::at(
                            span,
                            format!(
                                "`{k}` is a number, but {:?} gives {out:?}; set the variable to a number, e.g. 5 or 0.5",
                                s.as_ref()
                            ),
                        )
                    })?;
                    *v.get_mut() = number;
                }
                None => *s = out.into(),
            }
        }
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                substitute_at(item, key, env)?;
            }
        }
        DeValue::Table(t) => {
            // Inside a free-form table every key stays data, however deep.
            let free = key.filter(|k| FREE_FORM.contains(k));
            for (k, item) in t.iter_mut() {
                substitute_at(item, Some(free.unwrap_or(k.get_ref().as_ref())), env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `text` as a TOML integer or float.
fn number(text: &str) -> Option<DeValue<'static>> {
    let text = text.trim();
    if text.is_empty() || text.len() > 64 {
        return None;
    }
    // A TOML value borrows its text; a plan is read once per process, so
    // the few bytes of each substituted number are leaked rather than
    // threading an arena through the parser.
    let text: &'static str = Box::leak(text.to_string().into_boxed_str());
    let v = DeValue::parse(text).ok()?.into_inner();
    matches!(v, DeValue::Integer(_) | DeValue::Float(_)).then_some(v)
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

    fn substituted(text: &str, env: &HashMap<String, String>) -> Result<String, ConfigError> {
        let root = toml::de::DeTable::parse(text).unwrap();
        let mut v = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
        substitute(&mut v, env)?;
        let DeValue::Table(t) = v.into_inner() else {
            unreachable!()
        };
        Ok(t.iter()
            .map(|(k, v)| format!("{}={:?}", k.get_ref(), v.get_ref().type_str()))
            .collect::<Vec<_>>()
            .join(","))
    }

    #[test]
    fn keys_of_bodies_tags_and_thresholds_stay_strings() {
        let env = HashMap::from([("N".to_string(), "x".to_string())]);
        let text = "json = { rate = \"${N}\", a = [{ target = \"${N}\", b = { vus = \"${N}\" } }] }\ntags = { vus = \"${N}\" }\n[thresholds]\ntarget = [\"value<${N}\"]\n[x]\nqueries = [{ vars = { weight = \"${N}\" } }]";
        assert!(
            substituted(text, &env).is_ok(),
            "{:?}",
            substituted(text, &env)
        );
    }

    #[test]
    fn numbers_come_from_variables_on_number_keys_only() {
        let env = HashMap::from([("N".to_string(), "7".to_string())]);
        assert_eq!(
            substituted(
                "vus = \"${N}\"\nrate = \"${R:-2.5}\"\nname = \"${N}\"",
                &env
            )
            .unwrap(),
            "vus=\"integer\",rate=\"float\",name=\"string\""
        );
        let bad = HashMap::from([("N".to_string(), "many".to_string())]);
        let e = substituted("vus = \"${N}\"", &bad).unwrap_err().message;
        assert!(
            e.contains("`vus` is a number") && e.contains("\"many\""),
            "{e}"
        );
    }
}
