//! What the demo target served, by route and status: atomics only, so the
//! counting never becomes the bottleneck of a benchmark.

use super::{Body, State, json_response};
use hyper::{Method, Response};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Stats {
    /// API requests that reached a handler, answered or not (a client may
    /// go away while it waits out --latency).
    arrived: AtomicU64,
    total: AtomicU64,
    routes: Vec<AtomicU64>,
    statuses: Vec<AtomicU64>,
    injected_errors: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            arrived: AtomicU64::new(0),
            total: AtomicU64::new(0),
            routes: super::api::ROUTES
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect(),
            statuses: (0..600).map(|_| AtomicU64::new(0)).collect(),
            injected_errors: AtomicU64::new(0),
        }
    }
}

impl Stats {
    /// Count one answered request; `route` indexes `api::ROUTES`.
    pub fn record(&self, route: usize, status: u16) {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.routes[route].fetch_add(1, Ordering::Relaxed);
        if let Some(s) = self.statuses.get(status as usize) {
            s.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count one answered request outside the API's routes (e.g. webhooks).
    pub fn record_other(&self, status: u16) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = self.statuses.get(status as usize) {
            s.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count one API request as it arrives, before it is answered.
    pub fn arrive(&self) {
        self.arrived.fetch_add(1, Ordering::Relaxed);
    }

    pub fn arrived(&self) -> u64 {
        self.arrived.load(Ordering::Relaxed)
    }

    pub fn injected_error(&self) {
        self.injected_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn route(&self, label: &str) -> u64 {
        super::api::ROUTES
            .iter()
            .position(|r| *r == label)
            .map(|i| self.routes[i].load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let routes: BTreeMap<&str, u64> = super::api::ROUTES
            .iter()
            .zip(&self.routes)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
            .filter(|(_, c)| *c > 0)
            .collect();
        let statuses: BTreeMap<String, u64> = self
            .statuses
            .iter()
            .enumerate()
            .map(|(s, c)| (s.to_string(), c.load(Ordering::Relaxed)))
            .filter(|(_, c)| *c > 0)
            .collect();
        serde_json::json!({
            "arrived": self.arrived(),
            "total": self.total(),
            "routes": routes,
            "statuses": statuses,
            "injected_errors": self.injected_errors.load(Ordering::Relaxed),
        })
    }

    pub fn reset(&self) {
        for c in [&self.arrived, &self.total]
            .into_iter()
            .chain(&self.routes)
            .chain(&self.statuses)
            .chain(std::iter::once(&self.injected_errors))
        {
            c.store(0, Ordering::Relaxed);
        }
    }
}

pub fn handle(state: &State, method: &Method, rest: &str) -> Response<Body> {
    match (method, rest) {
        (&Method::GET, "stats") => {
            let mut v = state.stats.to_json();
            v["webhooks"] = state.webhooks.to_json();
            v["chat"] = super::chat::stats_json(state);
            v["load"] = state.load.to_json();
            v["flows"] = state.flows.to_json();
            v["llm"] = state.llm.to_json();
            json_response(200, &v)
        }
        (&Method::POST, "reset") => {
            state.stats.reset();
            state.chat.reset();
            state.api.reset();
            state.webhooks.reset();
            state.flows.reset();
            state.llm.reset();
            json_response(200, &serde_json::json!({"reset": true}))
        }
        _ => json_response(
            404,
            &serde_json::json!({"error": "unknown /__volley endpoint; try GET /__volley/stats"}),
        ),
    }
}
