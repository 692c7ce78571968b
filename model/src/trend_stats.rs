//! `summary_trend_stats`: which statistics of a trend the summary and the
//! report show (k6's `--summary-trend-stats avg,p(50),p(99.9)`).

use crate::stats::Stats;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TrendStat {
    Avg,
    Min,
    Med,
    Max,
    Count,
    P(f64),
}

/// What the summary shows when the plan and the command line say nothing.
pub const DEFAULT: &[TrendStat] = &[
    TrendStat::Avg,
    TrendStat::Min,
    TrendStat::Med,
    TrendStat::Max,
    TrendStat::P(90.0),
    TrendStat::P(95.0),
    TrendStat::P(99.0),
];

const VALID: &str = "avg, min, med, max, count and p(N) with N from 0 to 100 (e.g. p(99.9))";

/// A summary statistic volley does not compute.
#[derive(Debug, thiserror::Error)]
pub enum TrendStatError {
    #[error("{0:?} is not a statistic; the statistics are {VALID}")]
    Unknown(String),
    #[error("{0:?}: a percentile is between 0 and 100; the statistics are {VALID}")]
    Percentile(String),
    #[error("no statistic given; list some of {VALID}")]
    None,
}

impl TrendStat {
    pub fn parse(s: &str) -> Result<Self, TrendStatError> {
        let t = s.trim();
        Ok(match t {
            "avg" => Self::Avg,
            "min" => Self::Min,
            "med" => Self::Med,
            "max" => Self::Max,
            "count" => Self::Count,
            p if p.starts_with("p(") && p.ends_with(')') => {
                let n: f64 = p[2..p.len() - 1]
                    .trim()
                    .parse()
                    .map_err(|_| TrendStatError::Unknown(t.into()))?;
                if !(0.0..=100.0).contains(&n) {
                    return Err(TrendStatError::Percentile(t.into()));
                }
                Self::P(n)
            }
            _ => {
                return Err(TrendStatError::Unknown(t.into()));
            }
        })
    }

    /// A comma-separated list, as `--summary-trend-stats` takes it.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, TrendStatError> {
        let list = split_list(s)
            .into_iter()
            .map(Self::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            return Err(TrendStatError::None);
        }
        Ok(list)
    }

    /// Its name in a metric's `values` (`p(99.9)`, `med`).
    pub fn key(self) -> String {
        match self {
            Self::Avg => "avg".into(),
            Self::Min => "min".into(),
            Self::Med => "med".into(),
            Self::Max => "max".into(),
            Self::Count => "count".into(),
            Self::P(p) => format!("p({p})"),
        }
    }

    pub fn of(self, s: &Stats) -> f64 {
        match self {
            Self::Avg => s.avg,
            Self::Min => s.min,
            Self::Med => s.quantile(50.0),
            Self::Max => s.max,
            Self::Count => s.count as f64,
            Self::P(p) => s.quantile(p),
        }
    }
}

/// `a,p(9,5)` cannot occur, but `p(99.9)` must not be split at its dot:
/// split at commas outside parentheses.
fn split_list(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth <= 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// The columns of the per-name breakdown tables (beside count, rate and
/// failures): p50, p95, p99 and max, or the summary's own statistics.
pub fn breakdown_columns(names: &[String]) -> Vec<TrendStat> {
    if names.is_empty() {
        return vec![
            TrendStat::P(50.0),
            TrendStat::P(95.0),
            TrendStat::P(99.0),
            TrendStat::Max,
        ];
    }
    of_names(names)
        .into_iter()
        .filter(|t| *t != TrendStat::Count)
        .collect()
}

impl TrendStat {
    /// A column heading: `p50`, `p99.9`, `avg`.
    pub fn heading(self) -> String {
        match self {
            Self::P(p) => format!("p{p}"),
            other => other.key(),
        }
    }
}

/// The statistics a summary names (`RunInfo::summary_trend_stats`), or the
/// default when it names none (or a name this build does not know).
pub fn of_names(names: &[String]) -> Vec<TrendStat> {
    let list: Vec<TrendStat> = names
        .iter()
        .filter_map(|n| TrendStat::parse(n).ok())
        .collect();
    if list.is_empty() {
        DEFAULT.to_vec()
    } else {
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_refuses_unknown_names_listing_the_valid_ones() {
        let l = TrendStat::parse_list("avg,p(50), p(99.9),count").unwrap();
        assert_eq!(
            l,
            [
                TrendStat::Avg,
                TrendStat::P(50.0),
                TrendStat::P(99.9),
                TrendStat::Count
            ]
        );
        assert_eq!(TrendStat::P(99.9).key(), "p(99.9)");
        assert_eq!(TrendStat::P(95.0).key(), "p(95)");
        let e = TrendStat::parse_list("avg,p95").unwrap_err().to_string();
        assert!(e.contains("\"p95\"") && e.contains("p(N)"), "{e}");
        assert!(TrendStat::parse_list("p(101)").is_err());
        assert!(TrendStat::parse_list(" , ").is_err());
    }
}
