//! Just enough of the Prometheus text exposition format to read one metric:
//! `name{label="value",...} 123.4 [timestamp]` lines, `#` comments skipped.

/// A metric selector that cannot be read; each holds the selector as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error(
        "{0:?} is not a Prometheus metric name; write e.g. process_resident_memory_bytes or http_requests_total{{code=\"200\"}}"
    )]
    BadName(String),
    #[error("{0:?}: labels are written {{name=\"value\",...}}")]
    BadLabels(String),
    #[error("{0:?}: unexpected {1:?} after the labels")]
    AfterLabels(String, String),
}

/// Parse `name{a="b",c="d"}` (the braces optional) into the name and labels.
pub fn parse_selector(s: &str) -> Result<(String, Vec<(String, String)>), SelectorError> {
    let s = s.trim();
    let name_end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    let name = &s[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(SelectorError::BadName(s.to_string()));
    }
    let rest = s[name_end..].trim();
    if rest.is_empty() {
        return Ok((name.to_string(), Vec::new()));
    }
    let (labels, after) =
        parse_labels(rest).ok_or_else(|| SelectorError::BadLabels(s.to_string()))?;
    if !after.trim().is_empty() {
        return Err(SelectorError::AfterLabels(
            s.to_string(),
            after.trim().to_string(),
        ));
    }
    Ok((name.to_string(), labels))
}

/// `{a="b",...}` at the start of `s`: the labels and what follows.
fn parse_labels(s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut rest = s.strip_prefix('{')?;
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', ',', '\t']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((out, after));
        }
        let key_end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
        let key = &rest[..key_end];
        rest = rest[key_end..].trim_start().strip_prefix('=')?;
        rest = rest.trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        out.push((key.to_string(), value));
        rest = &rest[end + 1..];
    }
}

/// The sum of the samples of `name` whose labels include `labels`; `None`
/// when no sample matches.
pub fn find(text: &str, name: &str, labels: &[(String, String)]) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (found, rest) = if rest.starts_with('{') {
            match parse_labels(rest) {
                Some(x) => x,
                None => continue,
            }
        } else if rest.starts_with([' ', '\t']) {
            (Vec::new(), rest)
        } else {
            // A longer name with this one as a prefix.
            continue;
        };
        let wanted = labels
            .iter()
            .all(|(k, v)| found.iter().any(|(fk, fv)| fk == k && fv == v));
        if !wanted {
            continue;
        }
        let Some(v) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        sum = Some(sum.unwrap_or(0.0) + v);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 4.5e+07
process_resident_memory_bytes_peak 9e7
http_requests_total{code="200",path="/a"} 10
http_requests_total{code="200",path="/b\"q\""} 5 1700000000000
http_requests_total{code="503",path="/a"} 2
"#;

    #[test]
    fn finds_samples_by_name_and_labels() {
        assert_eq!(
            find(TEXT, "process_resident_memory_bytes", &[]),
            Some(4.5e7)
        );
        let ok = vec![("code".to_string(), "200".to_string())];
        assert_eq!(find(TEXT, "http_requests_total", &ok), Some(15.0));
        assert_eq!(find(TEXT, "http_requests_total", &[]), Some(17.0));
        let quoted = vec![("path".to_string(), "/b\"q\"".to_string())];
        assert_eq!(find(TEXT, "http_requests_total", &quoted), Some(5.0));
        assert_eq!(find(TEXT, "nope", &[]), None);
    }

    #[test]
    fn parses_selectors() {
        let (n, l) = parse_selector(r#"http_requests_total{code="503", path="/a"}"#).unwrap();
        assert_eq!(n, "http_requests_total");
        assert_eq!(l.len(), 2);
        assert_eq!(l[1], ("path".into(), "/a".into()));
        assert_eq!(
            parse_selector("9bad"),
            Err(SelectorError::BadName("9bad".into()))
        );
        assert_eq!(
            parse_selector("x{code=200}").unwrap_err().to_string(),
            r#""x{code=200}": labels are written {name="value",...}"#
        );
        assert!(matches!(
            parse_selector("x{a=\"b\"} y"),
            Err(SelectorError::AfterLabels(_, after)) if after == "y"
        ));
    }
}
