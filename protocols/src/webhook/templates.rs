//! Event templates: event bodies whose values are templates, per scheme.
//!
//! Built in: ten Stripe event objects (the files of `fixtures/webhooks/`) and
//! a few for each other scheme (`fixtures/webhooks/<scheme>/`), compiled into
//! the binary so `volley demo` and `volley webhook send` work from any folder.
//! A `templates` folder adds or replaces event types, one JSON file each,
//! keyed as the scheme names its events: the body's `type` (Stripe, Standard
//! Webhooks), the body's `event.type` (Slack), or the file's name (GitHub:
//! `push.json` is `push`; Shopify: `orders.create.json` is `orders/create`),
//! since those two say the type in a header only.

use super::scheme::Scheme;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Values the driver sets per delivery, usable in templates.
pub const LOCALS: &[&str] = &[
    "event.id",
    "event.type",
    "event.created",
    "amount",
    "period_end",
];
/// Those of `LOCALS` that are numbers (bare in JSON, like `rand_int`).
pub const NUMERIC_LOCALS: &[&str] = &["event.created", "amount", "period_end"];

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../fixtures/webhooks/", $name, ".json")))),*]
    };
}

macro_rules! builtin_in {
    ($dir:literal: $(($name:literal, $file:literal)),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../fixtures/webhooks/", $dir, "/", $file, ".json")))),*]
    };
}

/// (event type, JSON text) of the built-in templates.
pub const BUILTIN: &[(&str, &str)] = builtin!(
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.succeeded",
    "charge.refunded",
    "checkout.session.completed",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
);

const GITHUB: &[(&str, &str)] = builtin_in!("github":
    ("push", "push"),
    ("pull_request", "pull_request"),
    ("issues", "issues"),
);

const STANDARD: &[(&str, &str)] = builtin_in!("standard":
    ("user.created", "user.created"),
    ("invoice.paid", "invoice.paid"),
);

const SHOPIFY: &[(&str, &str)] = builtin_in!("shopify":
    ("orders/create", "orders.create"),
    ("products/update", "products.update"),
);

const SLACK: &[(&str, &str)] = builtin_in!("slack":
    ("app_mention", "app_mention"),
    ("message", "message"),
);

/// (event type, JSON text) of the built-in templates of `scheme`.
pub fn builtin_of(scheme: Scheme) -> &'static [(&'static str, &'static str)] {
    match scheme {
        Scheme::Stripe => BUILTIN,
        Scheme::Github => GITHUB,
        Scheme::Standard => STANDARD,
        Scheme::Shopify => SHOPIFY,
        Scheme::Slack => SLACK,
    }
}

/// Where a template file says which event type it is, for messages.
pub fn how_typed(scheme: Scheme, ty: &str) -> String {
    match scheme {
        Scheme::Stripe | Scheme::Standard => {
            format!("a JSON file with \"type\": \"{ty}\"")
        }
        Scheme::Slack => format!("a JSON file whose event.type is \"{ty}\""),
        Scheme::Github => format!("{ty}.json"),
        Scheme::Shopify => format!("{}.json", ty.replace('/', ".")),
    }
}

/// One event template before compiling: where it came from and its JSON.
pub struct Source {
    pub origin: String,
    pub value: Value,
}

/// Event type -> template, built-ins first, then a user folder on top.
pub struct TemplateSet {
    pub scheme: Scheme,
    pub by_type: BTreeMap<String, Source>,
}

impl TemplateSet {
    /// Stripe's built-in templates.
    pub fn builtin() -> Self {
        Self::builtin_for(Scheme::Stripe)
    }

    pub fn builtin_for(scheme: Scheme) -> Self {
        let by_type = builtin_of(scheme)
            .iter()
            .map(|(name, text)| {
                let value = serde_json::from_str(text).expect("built-in templates are valid JSON");
                (
                    name.to_string(),
                    Source {
                        origin: format!("built-in {name}.json"),
                        value,
                    },
                )
            })
            .collect();
        Self { scheme, by_type }
    }

    /// Add every `*.json` of `dir` (types it defines replace built-ins).
    pub fn add_folder(&mut self, dir: &Path) -> Result<Vec<String>, TemplatesError> {
        let entries = std::fs::read_dir(dir).map_err(|e| TemplatesError::Folder {
            dir: dir.to_path_buf(),
            e,
        })?;
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(TemplatesError::Empty {
                dir: dir.to_path_buf(),
                example: how_typed(self.scheme, builtin_of(self.scheme)[0].0),
            });
        }
        let mut added = Vec::new();
        for path in files {
            let (ty, value) = read_template(&path, self.scheme)?;
            if added.contains(&ty) {
                return Err(TemplatesError::Twice {
                    path,
                    ty,
                    dir: dir.to_path_buf(),
                });
            }
            added.push(ty.clone());
            self.by_type.insert(
                ty,
                Source {
                    origin: path.display().to_string(),
                    value,
                },
            );
        }
        Ok(added)
    }

    pub fn known(&self) -> String {
        self.by_type.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// A templates folder, or a template in it, volley cannot use.
#[derive(Debug, thiserror::Error)]
pub enum TemplatesError {
    #[error(
        "cannot read the templates folder {}: {e} (a relative path is looked up in the plan's folder, then in the current directory)",
        dir.display()
    )]
    Folder { dir: PathBuf, e: std::io::Error },
    #[error(
        "the templates folder {} has no .json files; add one per event type, e.g. {example}",
        dir.display()
    )]
    Empty { dir: PathBuf, example: String },
    #[error(
        "{}: event type {ty:?} is defined by two files in {}; keep one",
        path.display(),
        dir.display()
    )]
    Twice {
        path: PathBuf,
        ty: String,
        dir: PathBuf,
    },
    #[error("cannot read {}: {e}", path.display())]
    Read { path: PathBuf, e: std::io::Error },
    #[error("{}:{line}:{column}: not valid JSON: {e}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        e: serde_json::Error,
    },
    #[error("{}: an event template is a JSON object", .0.display())]
    NotObject(PathBuf),
    #[error("{}: an event template needs {want}", path.display())]
    Untyped { path: PathBuf, want: &'static str },
}

fn read_template(path: &Path, scheme: Scheme) -> Result<(String, Value), TemplatesError> {
    let text = std::fs::read_to_string(path).map_err(|e| TemplatesError::Read {
        path: path.to_path_buf(),
        e,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| TemplatesError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        e,
    })?;
    if !value.is_object() {
        return Err(TemplatesError::NotObject(path.to_path_buf()));
    }
    let fixed = |v: Option<&Value>| match v {
        Some(Value::String(t)) if !t.is_empty() && !t.contains("{{") => Some(t.clone()),
        _ => None,
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty() && !s.contains("{{"));
    let ty = match scheme {
        Scheme::Stripe | Scheme::Standard => fixed(value.get("type")),
        Scheme::Slack => fixed(value.get("event").and_then(|e| e.get("type"))),
        Scheme::Github => stem.map(str::to_string),
        Scheme::Shopify => stem.map(|s| s.replace('.', "/")),
    };
    let Some(ty) = ty else {
        let want = match scheme {
            Scheme::Stripe => {
                "a fixed \"type\", e.g. \"type\": \"invoice.paid\", as Stripe's event objects have"
            }
            Scheme::Standard => {
                "a fixed \"type\", e.g. \"type\": \"user.created\", as Standard Webhooks payloads have"
            }
            Scheme::Slack => {
                "a fixed event.type, e.g. \"event\": { \"type\": \"app_mention\", ... }, as Slack's event_callback bodies have"
            }
            Scheme::Github | Scheme::Shopify => "a file name that is its event type",
        };
        return Err(TemplatesError::Untyped {
            path: path.to_path_buf(),
            want,
        });
    };
    Ok((ty, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_stripe_shaped() {
        let set = TemplateSet::builtin();
        assert_eq!(set.by_type.len(), 10);
        for (ty, src) in &set.by_type {
            let v = &src.value;
            assert_eq!(v["type"], *ty);
            assert_eq!(v["object"], "event");
            assert_eq!(v["id"], "{{ event.id }}");
            assert_eq!(v["livemode"], false);
            assert!(v["api_version"].is_string());
            assert!(v["pending_webhooks"].is_number());
            assert!(v["request"].is_object());
            assert!(v["data"]["object"]["id"].is_string(), "{ty}");
            assert!(v["data"]["object"]["object"].is_string(), "{ty}");
        }
    }

    #[test]
    fn every_scheme_has_templates_typed_its_way() {
        for scheme in crate::webhook::scheme::SCHEMES {
            let set = TemplateSet::builtin_for(scheme);
            assert!(!set.by_type.is_empty(), "{scheme:?}");
            for (ty, src) in &set.by_type {
                let v = &src.value;
                match scheme {
                    Scheme::Stripe | Scheme::Standard => assert_eq!(v["type"], *ty),
                    Scheme::Slack => {
                        assert_eq!(v["event"]["type"], *ty);
                        assert_eq!(v["type"], "event_callback");
                        assert_eq!(v["event_id"], "{{ event.id }}", "the duplicate key");
                    }
                    Scheme::Github => assert!(v["sender"].is_object(), "{ty}"),
                    Scheme::Shopify => assert!(ty.contains('/') && v["id"].is_string(), "{ty}"),
                }
            }
        }
    }

    #[test]
    fn a_folder_is_keyed_as_its_scheme_names_events() {
        let dir = std::env::temp_dir().join(format!("volley-templates-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("orders.paid.json"), r#"{"id": 1}"#).unwrap();
        let mut shopify = TemplateSet::builtin_for(Scheme::Shopify);
        assert_eq!(shopify.add_folder(&dir).unwrap(), ["orders/paid"]);
        let mut github = TemplateSet::builtin_for(Scheme::Github);
        assert_eq!(github.add_folder(&dir).unwrap(), ["orders.paid"]);
        let mut slack = TemplateSet::builtin_for(Scheme::Slack);
        let e = slack.add_folder(&dir).unwrap_err().to_string();
        assert!(e.contains("event.type"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
