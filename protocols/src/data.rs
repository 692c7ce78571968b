//! CSV feeders: `[data.users] file = "users.csv", pick = "round-robin"`.

use serde::Deserialize;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pick {
    /// Each iteration takes the next row, wrapping around (shared by all VUs).
    #[default]
    RoundRobin,
    /// Each iteration takes a random row.
    Random,
    /// Each VU owns one row for its whole life, no two VUs share one.
    Unique,
}

pub struct Feeder {
    pub name: String,
    pub file: String,
    pub pick: Pick,
    pub columns: Vec<String>,
    rows: Vec<Vec<String>>,
    cursor: AtomicUsize,
    /// Round-robin stride and start, so that instances of a segmented run
    /// take interleaved rows instead of the same ones.
    stride: usize,
    offset: usize,
}

/// A CSV file a feeder cannot be made of.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("cannot read CSV file {file}: {e}")]
    Read { file: String, e: csv::Error },
    #[error("{file}: bad header row: {e}")]
    Header { file: String, e: csv::Error },
    #[error("{0}: the first line must name the columns (e.g. email,password)")]
    NoColumns(String),
    #[error("{file}: row {row}: {e}")]
    Row {
        file: String,
        row: usize,
        e: csv::Error,
    },
    #[error("{0} has a header but no rows")]
    NoRows(String),
}

impl Feeder {
    pub fn load(name: &str, path: &Path, pick: Pick) -> Result<Self, FeedError> {
        let file = path.display().to_string();
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(|e| FeedError::Read {
                file: file.clone(),
                e,
            })?;
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| FeedError::Header {
                file: file.clone(),
                e,
            })?
            .iter()
            .map(str::to_string)
            .collect();
        if columns.is_empty() || columns.iter().all(String::is_empty) {
            return Err(FeedError::NoColumns(file));
        }
        let mut rows = Vec::new();
        for (i, rec) in reader.records().enumerate() {
            let rec = rec.map_err(|e| FeedError::Row {
                file: file.clone(),
                row: i + 2,
                e,
            })?;
            rows.push(rec.iter().map(str::to_string).collect());
        }
        if rows.is_empty() {
            return Err(FeedError::NoRows(file));
        }
        Ok(Self::from_rows(name, &file, pick, columns, rows))
    }

    pub fn from_rows(
        name: &str,
        file: &str,
        pick: Pick,
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
    ) -> Self {
        Self {
            name: name.to_string(),
            file: file.to_string(),
            pick,
            columns,
            rows,
            cursor: AtomicUsize::new(0),
            stride: 1,
            offset: 0,
        }
    }

    /// Interleave round-robin rows with other instances of a segmented run.
    pub fn set_segment(&mut self, index: usize, count: usize) {
        self.offset = index;
        self.stride = count.max(1);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The row for the next iteration of VU `vu_index` (0-based, plan-wide).
    pub fn pick_row(&self, vu_index: u64, rng: &mut fastrand::Rng) -> usize {
        let n = self.rows.len();
        match self.pick {
            Pick::RoundRobin => {
                let k = self.cursor.fetch_add(1, Ordering::Relaxed);
                (self.offset + k * self.stride) % n
            }
            Pick::Random => rng.usize(0..n),
            Pick::Unique => vu_index as usize % n,
        }
    }

    pub fn value(&self, row: usize, column: usize) -> &str {
        self.rows[row].get(column).map(String::as_str).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feeder(pick: Pick) -> Feeder {
        Feeder::from_rows(
            "u",
            "u.csv",
            pick,
            vec!["email".into()],
            (0..4).map(|i| vec![format!("u{i}@x")]).collect(),
        )
    }

    #[test]
    fn round_robin_wraps() {
        let f = feeder(Pick::RoundRobin);
        let mut rng = fastrand::Rng::with_seed(1);
        let rows: Vec<usize> = (0..6).map(|_| f.pick_row(0, &mut rng)).collect();
        assert_eq!(rows, vec![0, 1, 2, 3, 0, 1]);
    }

    #[test]
    fn segments_interleave() {
        let mut a = feeder(Pick::RoundRobin);
        let mut b = feeder(Pick::RoundRobin);
        a.set_segment(0, 2);
        b.set_segment(1, 2);
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(a.pick_row(0, &mut rng), 0);
        assert_eq!(b.pick_row(0, &mut rng), 1);
        assert_eq!(a.pick_row(0, &mut rng), 2);
        assert_eq!(b.pick_row(0, &mut rng), 3);
    }

    #[test]
    fn unique_is_per_vu() {
        let f = feeder(Pick::Unique);
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(f.pick_row(2, &mut rng), 2);
        assert_eq!(f.pick_row(2, &mut rng), 2);
        assert_eq!(f.value(3, 0), "u3@x");
    }
}
