//! Metrics volley records itself, beside the drivers' own.

use std::sync::Arc;
use volley_protocols::metrics::{MetricDef, MetricId, MetricKind, Registry, Unit};

/// Metrics the engine itself records, registered before the drivers' own.
pub fn register_engine(r: &Registry) {
    r.metric("iterations", MetricKind::Counter, Unit::Default);
    r.metric("iteration_duration", MetricKind::Trend, Unit::Time);
    r.metric("dropped_iterations", MetricKind::Counter, Unit::Default);
    r.metric("interrupted_iterations", MetricKind::Counter, Unit::Default);
    r.metric("vus", MetricKind::Gauge, Unit::Default);
    r.metric("vus_max", MetricKind::Gauge, Unit::Default);
}

/// Metrics whose values exist only once the run is over (capacity answers).
pub const POST_RUN_METRICS: &[&str] = &["recovery_time", "capacity_held", "capacity_broke"];

/// Gauges that count each part's own share, so parts add up.
pub const ADDITIVE_GAUGES: &[&str] = &["vus", "vus_max"];

/// The metrics a plan records, as they stood when it was loaded and its
/// thresholds, capacity signals and monitors were checked against them:
/// name, kind and unit under the ids its drivers were built with. A plan
/// carries this table; the series of a run live in a [`Registry`] the
/// runtime owns, made from it by [`MetricTable::registry`].
#[derive(Clone, Debug, Default)]
pub struct MetricTable {
    defs: Arc<[MetricDef]>,
}

impl MetricTable {
    /// The metrics registered in `registry` so far (not its series).
    pub fn of(registry: &Registry) -> Self {
        Self {
            defs: registry.metrics().into(),
        }
    }

    pub fn id(&self, name: &str) -> Option<MetricId> {
        self.defs
            .iter()
            .position(|d| &*d.name == name)
            .map(|i| i as MetricId)
    }

    pub fn get(&self, name: &str) -> Option<&MetricDef> {
        self.defs.iter().find(|d| &*d.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &MetricDef> {
        self.defs.iter()
    }

    /// A registry for one run: these metrics under the same ids, no series
    /// yet. Series are added as VUs, the aggregator and monitors meet them.
    pub fn registry(&self) -> Arc<Registry> {
        let registry = Registry::new();
        for (i, d) in self.defs.iter().enumerate() {
            let id = registry.metric(&d.name, d.kind, d.unit);
            debug_assert_eq!(id as usize, i, "metric ids are assigned in order");
        }
        registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use volley_protocols::metrics::Tags;

    #[test]
    fn a_run_registry_keeps_the_plan_ids_and_none_of_its_series() {
        let plan = Registry::new();
        register_engine(&plan);
        let reqs = plan.metric("http_reqs", MetricKind::Counter, Unit::Default);
        let table = MetricTable::of(&plan);
        assert_eq!(table.id("http_reqs"), Some(reqs));
        assert_eq!(table.get("vus").map(|d| d.kind), Some(MetricKind::Gauge));
        assert_eq!(table.id("nope"), None);
        let one = table.registry();
        let s = one.series(reqs, &Tags::new([("scenario", "a")]));
        assert_eq!(one.metric_id("http_reqs"), Some(reqs));
        // Each run's series are its own.
        let two = table.registry();
        assert_eq!(one.all_series().len(), 1);
        assert!(two.all_series().is_empty());
        assert_eq!(two.series(reqs, &Tags::new([("scenario", "b")])), s);
    }
}
