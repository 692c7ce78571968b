//! `--segment I/N`: one instance's share of a plan split across machines.

use std::fmt;

/// `--segment I/N`: this instance runs the I-th of N interleaved shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// 0-based.
    pub index: u64,
    pub count: u64,
}

/// A `--segment` that is not `I/N` with 1 <= I <= N.
#[derive(Debug, thiserror::Error)]
#[error("--segment {text:?}: {why}")]
pub struct SegmentError {
    text: String,
    why: Why,
}

#[derive(Debug, thiserror::Error)]
enum Why {
    #[error("write I/N, e.g. 2/3")]
    Shape,
    #[error("I is not a number")]
    Index,
    #[error("N is not a number")]
    Count,
    #[error("I must be between 1 and N")]
    Range,
}

impl Default for Segment {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Segment {
    pub fn parse(s: &str) -> Result<Self, SegmentError> {
        let bad = |why| SegmentError {
            text: s.to_string(),
            why,
        };
        let (i, n) = s.split_once('/').ok_or_else(|| bad(Why::Shape))?;
        let (i, n): (u64, u64) = (
            i.trim().parse().map_err(|_| bad(Why::Index))?,
            n.trim().parse().map_err(|_| bad(Why::Count))?,
        );
        if n == 0 || i == 0 || i > n {
            return Err(bad(Why::Range));
        }
        Ok(Self {
            index: i - 1,
            count: n,
        })
    }

    /// How many of `total` equal, interleaved items (0..total) fall in this segment.
    pub fn share(&self, total: u64) -> u64 {
        total / self.count + u64::from(total % self.count > self.index)
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_share_evenly() {
        let shares: Vec<u64> = (1..=3)
            .map(|i| Segment::parse(&format!("{i}/3")).unwrap().share(10))
            .collect();
        assert_eq!(shares, vec![4, 3, 3]);
        assert!(Segment::parse("0/3").is_err());
        assert!(Segment::parse("4/3").is_err());
        assert!(Segment::parse("x").is_err());
    }
}
