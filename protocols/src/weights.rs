//! One of several by weight: requests, queries, event types.

use crate::error::ConfigError;
use std::ops::Range;
use toml::Spanned;

/// Running totals of the weights; `pick` is a binary search over them.
#[derive(Debug, Default, Clone)]
pub struct Weighted {
    cumulative: Vec<f64>,
}

impl Weighted {
    pub fn push(&mut self, weight: f64) {
        let total = self.total() + weight;
        self.cumulative.push(total);
    }

    pub fn total(&self) -> f64 {
        self.cumulative.last().copied().unwrap_or(0.0)
    }

    /// An index, each with a chance of its weight over the total.
    pub fn pick(&self, rng: &mut fastrand::Rng) -> usize {
        let x = rng.f64() * self.total();
        self.cumulative
            .partition_point(|&c| c <= x)
            .min(self.cumulative.len().saturating_sub(1))
    }
}

/// A spec's `weight`: a number >= 0, 1 when not given. `weighted` is false
/// where weights do not apply (flow = "sequence"), and then one is refused.
pub fn weight(w: Option<&Spanned<f64>>, weighted: bool) -> Result<f64, ConfigError> {
    let Some(w) = w else { return Ok(1.0) };
    let v = *w.get_ref();
    if !(v.is_finite() && v >= 0.0) {
        return Err(ConfigError::at(w.span(), "weight must be a number >= 0"));
    }
    if !weighted {
        return Err(ConfigError::at(
            w.span(),
            "weight only applies to flow = \"weighted\"; set flow = \"weighted\" on the scenario or remove the weight",
        ));
    }
    Ok(v)
}

/// Refuse a mix nothing can be picked from: every weight 0 (`first` is the
/// first weight written, where the error points), or weights whose sum does
/// not fit a number. `what`: "request", "query", "event".
pub fn check_mix(
    w: &Weighted,
    first: Option<Range<usize>>,
    what: &str,
    scenario: &str,
) -> Result<(), ConfigError> {
    let at = |msg: String| match &first {
        Some(span) => ConfigError::at(span.clone(), msg),
        None => ConfigError::new(msg),
    };
    if w.total() <= 0.0 {
        return Err(at(format!(
            "scenario {scenario:?}: all {what} weights are 0, so none can be picked; give at least one a positive weight, e.g. weight = 1"
        )));
    }
    if !w.total().is_finite() {
        return Err(at(format!(
            "scenario {scenario:?}: the {what} weights add up to more than a number can hold; only their ratios matter, so write smaller ones, e.g. weight = 3 and weight = 1"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Weighted;

    #[test]
    fn picks_follow_the_weights_and_skip_zero() {
        let mut w = Weighted::default();
        for x in [3.0, 0.0, 1.0] {
            w.push(x);
        }
        let mut rng = fastrand::Rng::with_seed(7);
        let mut n = [0u32; 3];
        for _ in 0..40_000 {
            n[w.pick(&mut rng)] += 1;
        }
        assert_eq!(n[1], 0, "a zero weight is never picked");
        assert!((29_000..31_000).contains(&n[0]), "{n:?}");
        assert!((9_000..11_000).contains(&n[2]), "{n:?}");
    }
}
