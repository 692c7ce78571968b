//! Event templates: Stripe-shaped event objects whose values are templates.
//!
//! Ten built in (the files of `fixtures/webhooks/`, compiled into the binary
//! so `volley demo` and `volley webhook send` work from any folder); a
//! `templates` folder adds or replaces event types, one JSON file each, keyed
//! by the file's `type` field.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

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

/// One event template before compiling: where it came from and its JSON.
pub struct Source {
    pub origin: String,
    pub value: Value,
}

/// Event type -> template, built-ins first, then a user folder on top.
pub struct TemplateSet {
    pub by_type: BTreeMap<String, Source>,
}

impl TemplateSet {
    pub fn builtin() -> Self {
        let by_type = BUILTIN
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
        Self { by_type }
    }

    /// Add every `*.json` of `dir` (types it defines replace built-ins).
    pub fn add_folder(&mut self, dir: &Path) -> Result<Vec<String>, String> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            format!(
                "cannot read the templates folder {}: {e} (a relative path is looked up in the plan's folder, then in the current directory)",
                dir.display()
            )
        })?;
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!(
                "the templates folder {} has no .json files; add one per event type, e.g. invoice.paid.json",
                dir.display()
            ));
        }
        let mut added = Vec::new();
        for path in files {
            let (ty, value) = read_template(&path)?;
            if added.contains(&ty) {
                return Err(format!(
                    "{}: event type {ty:?} is defined by two files in {}; keep one",
                    path.display(),
                    dir.display()
                ));
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

fn read_template(path: &Path) -> Result<(String, Value), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}:{}:{}: not valid JSON: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    let ty = match value.get("type") {
        Some(Value::String(t)) if !t.is_empty() && !t.contains("{{") => t.clone(),
        _ => {
            return Err(format!(
                "{}: an event template needs a fixed \"type\", e.g. \"type\": \"invoice.paid\", as Stripe's event objects have",
                path.display()
            ));
        }
    };
    if !value.is_object() {
        return Err(format!(
            "{}: an event template is a JSON object",
            path.display()
        ));
    }
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
}
