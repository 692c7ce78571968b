//! Request bodies: inline text or JSON, a file (templated or sent as is), a
//! urlencoded form, a multipart form. Files are read once, at load.

use crate::error::ConfigError;
use crate::template::{Scope, Template, TemplateEnv};
use bytes::Bytes;
use serde_json::Value;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// What a request sends.
pub enum Body {
    None,
    /// Rendered per request (json, body, a templated body_file, form).
    Text(Template),
    /// The same bytes every time (body_file_raw, multipart without templates).
    Raw(Bytes),
    /// Fixed bytes and templates in turn (multipart with templated fields).
    Pieces(Vec<Piece>),
}

pub enum Piece {
    Bytes(Bytes),
    Text(Template),
}

impl Body {
    /// The bytes of one request; only templated bodies allocate.
    pub fn render(&self, scope: &mut Scope<'_>) -> Bytes {
        match self {
            Body::None => Bytes::new(),
            Body::Raw(b) => b.clone(),
            Body::Text(t) => {
                let mut s = String::new();
                t.render(scope, &mut s);
                Bytes::from(s)
            }
            Body::Pieces(pieces) => {
                let mut out = Vec::new();
                let mut s = String::new();
                for p in pieces {
                    match p {
                        Piece::Bytes(b) => out.extend_from_slice(b),
                        Piece::Text(t) => {
                            s.clear();
                            t.render(scope, &mut s);
                            out.extend_from_slice(s.as_bytes());
                        }
                    }
                }
                Bytes::from(out)
            }
        }
    }
}

/// A file named in the plan: in the plan's folder, else in the current
/// directory (as `[data]` files are found).
pub fn find_file(base_dir: &Path, rel: &str) -> PathBuf {
    let rel = Path::new(rel);
    [base_dir.join(rel), rel.to_path_buf()]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| base_dir.join(rel))
}

/// Read a file the plan names, or say where it was looked for.
pub fn read_file(
    base_dir: &Path,
    key: &str,
    path: &Spanned<String>,
) -> Result<(PathBuf, Vec<u8>), ConfigError> {
    let p = find_file(base_dir, path.get_ref());
    let bytes = std::fs::read(&p).map_err(|e| {
        ConfigError::at(
            path.span(),
            format!(
                "{key} {:?}: cannot read {}: {e} (a relative path is looked up in the plan's folder, then in the current directory)",
                path.get_ref(),
                p.display()
            ),
        )
    })?;
    Ok((p, bytes))
}

/// The Content-Type a file's extension suggests.
pub fn content_type_of(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "json" => "application/json",
        "xml" => "application/xml",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// `form = { a = "x", b = "{{ vu.id }}" }`: application/x-www-form-urlencoded.
pub fn form(env: &mut TemplateEnv<'_>, spec: &Spanned<Value>) -> Result<Template, ConfigError> {
    let Value::Object(map) = spec.get_ref() else {
        return Err(ConfigError::at(
            spec.span(),
            "form is a table of field = \"value\", e.g. form = { user = \"ann\", page = \"2\" }",
        ));
    };
    let mut pairs = Vec::new();
    for (k, v) in map {
        pairs.push((k.clone(), scalar(v, spec.span(), "form", k)?));
    }
    env.compile_query(&pairs)
        .map_err(|e| ConfigError::at(spec.span(), e))
}

fn scalar(v: &Value, span: Range<usize>, what: &str, key: &str) -> Result<String, ConfigError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(ConfigError::at(
            span,
            format!("{what} field {key:?} must be a string, number or boolean"),
        )),
    }
}

/// `multipart = { note = "text", file = { path = "a.png", content_type = "image/png" } }`:
/// multipart/form-data with a random boundary. Returns the body and the
/// Content-Type header value.
pub fn multipart(
    env: &mut TemplateEnv<'_>,
    spec: &Spanned<Value>,
    base_dir: &Path,
) -> Result<(Body, String), ConfigError> {
    let hint = "multipart is a table of field = \"text\" or field = { path = \"file\", content_type = \"...\", filename = \"...\" }";
    let Value::Object(map) = spec.get_ref() else {
        return Err(ConfigError::at(spec.span(), hint));
    };
    if map.is_empty() {
        return Err(ConfigError::at(
            spec.span(),
            "multipart has no fields: add e.g. file = { path = \"a.png\" }",
        ));
    }
    enum Field {
        Text(Template),
        File {
            filename: String,
            content_type: String,
            bytes: Vec<u8>,
        },
    }
    let mut fields = Vec::new();
    for (name, v) in map {
        let field = match v {
            Value::Object(f) => {
                let get = |k: &str| f.get(k).and_then(Value::as_str);
                if let Some(unknown) = f
                    .keys()
                    .find(|k| !["path", "content_type", "filename"].contains(&k.as_str()))
                {
                    return Err(ConfigError::at(
                        spec.span(),
                        format!(
                            "multipart field {name:?}: unknown key `{unknown}`; a file part has path, content_type and filename"
                        ),
                    ));
                }
                let path = get("path").ok_or_else(|| {
                    ConfigError::at(
                        spec.span(),
                        format!("multipart field {name:?} needs path = \"file\""),
                    )
                })?;
                let (p, bytes) = read_file(
                    base_dir,
                    &format!("multipart field {name:?}:"),
                    &Spanned::new(spec.span(), path.to_string()),
                )?;
                let filename = get("filename").map(str::to_string).unwrap_or_else(|| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "file".into())
                });
                let content_type = get("content_type")
                    .map(str::to_string)
                    .unwrap_or_else(|| content_type_of(&p).to_string());
                if content_type.contains(['\r', '\n']) {
                    return Err(ConfigError::at(
                        spec.span(),
                        format!("multipart field {name:?}: content_type has a line break"),
                    ));
                }
                Field::File {
                    filename,
                    content_type,
                    bytes,
                }
            }
            v => Field::Text(
                env.compile(&scalar(v, spec.span(), "multipart", name)?)
                    .map_err(|e| e.at(spec.span()))?,
            ),
        };
        fields.push((name.clone(), field));
    }
    // Random, and checked to appear in no file: a part's bytes can never
    // end it early.
    let mut rng = fastrand::Rng::new();
    let boundary = loop {
        let b: String = std::iter::repeat_with(|| rng.alphanumeric())
            .take(32)
            .collect();
        let b = format!("volley-{b}");
        let clash = fields.iter().any(|(_, f)| match f {
            Field::File { bytes, .. } => contains(bytes, b.as_bytes()),
            Field::Text(_) => false,
        });
        if !clash {
            break b;
        }
    };
    let mut pieces = Vec::new();
    let mut fixed = Vec::new();
    for (name, field) in fields {
        fixed.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match field {
            Field::Text(t) => {
                fixed.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                        quote(&name)
                    )
                    .as_bytes(),
                );
                match t.as_static() {
                    Some(text) => fixed.extend_from_slice(text.as_bytes()),
                    None => {
                        pieces.push(Piece::Bytes(Bytes::from(std::mem::take(&mut fixed))));
                        pieces.push(Piece::Text(t));
                    }
                }
            }
            Field::File {
                filename,
                content_type,
                bytes,
            } => {
                fixed.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {content_type}\r\n\r\n",
                        quote(&name),
                        quote(&filename)
                    )
                    .as_bytes(),
                );
                fixed.extend_from_slice(&bytes);
            }
        }
        fixed.extend_from_slice(b"\r\n");
    }
    fixed.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let body = if pieces.is_empty() {
        Body::Raw(Bytes::from(fixed))
    } else {
        pieces.push(Piece::Bytes(Bytes::from(fixed)));
        Body::Pieces(pieces)
    };
    Ok((body, format!("multipart/form-data; boundary={boundary}")))
}

/// A name or filename inside a quoted Content-Disposition parameter, as
/// browsers write it (WHATWG: `"` as %22, line breaks as %0D and %0A).
fn quote(s: &str) -> String {
    s.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn multipart_parts_are_framed_by_a_random_boundary() {
        let dir = std::env::temp_dir().join(format!("volley-body-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.png"), [0u8, 1, 2, 255, b'\r', b'\n']).unwrap();
        let envs = HashMap::new();
        let mut env = TemplateEnv::new(&envs, &[], "api");
        let spec = Spanned::new(
            0..1,
            serde_json::json!({"note": "hi \"you\"", "file": {"path": "a.png"}}),
        );
        let (body, ct) = multipart(&mut env, &spec, &dir).unwrap();
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
        assert!(boundary.len() > 30);
        let Body::Raw(bytes) = body else {
            panic!("static parts make one fixed body")
        };
        let mut want = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi \"you\"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
        )
        .into_bytes();
        want.extend_from_slice(&[0u8, 1, 2, 255, b'\r', b'\n']);
        want.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        assert_eq!(&bytes[..], &want[..]);
        let missing = Spanned::new(0..1, serde_json::json!({"f": {"path": "nope.bin"}}));
        let e = multipart(&mut env, &missing, &dir).err().unwrap();
        assert!(e.message.contains("cannot read"), "{}", e.message);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
