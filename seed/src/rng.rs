//! Deterministic randomness: every cell draws from its own stream, keyed by
//! (seed, table, column, row). A cell's value never depends on which thread
//! made it or on what was generated before it, so any split of the rows
//! across --jobs gives the same bytes.

/// FNV-1a: a stable hash of names (std's hasher may change between releases).
pub fn name_hash(s: &str) -> u64 {
    let mut h = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut h, s.as_bytes());
    std::hash::Hasher::finish(&h)
}

/// SplitMix64's finalizer: a good 64-bit mixer.
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The key of one column's streams: mix it with a row number to get a cell's stream.
pub fn column_key(seed: u64, table: &str, column: &str) -> u64 {
    mix(mix(seed ^ name_hash(table)) ^ name_hash(column).rotate_left(17))
}

/// SplitMix64: tiny state, fast, and fine for test data.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// The stream of one cell: column key + row.
    #[inline]
    pub fn cell(key: u64, row: u64) -> Self {
        Self {
            state: mix(key ^ mix(row.wrapping_add(0x9e37_79b9_7f4a_7c15))),
        }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// Uniform in [0, n) without modulo bias worth speaking of (Lemire's multiply).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [lo, hi] (inclusive).
    #[inline]
    pub fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi as i128 - lo as i128 + 1) as u128;
        if span > u128::from(u64::MAX) {
            return self.next_u64() as i64;
        }
        lo.wrapping_add(self.below(span as u64) as i64)
    }

    /// Uniform in [0, 1).
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let b = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }
}

/// The `fake` crate draws through rand's traits.
impl fake::rand::TryRng for Rng {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((self.next_u64() >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.fill(dst);
        Ok(())
    }
}

/// Zipf over ranks 1..=n with exponent s > 0: rank k has weight 1/k^s.
/// Rejection-inversion sampling (Hörmann & Derflinger 1996), O(1) per draw
/// for any n, as in Apache Commons' RejectionInversionZipfSampler.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: f64,
    s: f64,
    h_x1: f64,
    h_n: f64,
    cut: f64,
}

impl Zipf {
    /// `s` must be finite and above 0 (the spec's checks make sure): with
    /// NaN or infinity `sample` would never return.
    pub fn new(n: u64, s: f64) -> Self {
        debug_assert!(s.is_finite() && s > 0.0, "zipf exponent {s}");
        let n = n.max(1) as f64;
        let mut z = Self {
            n,
            s,
            h_x1: 0.0,
            h_n: 0.0,
            cut: 0.0,
        };
        z.h_x1 = z.h_integral(1.5) - 1.0;
        z.h_n = z.h_integral(n + 0.5);
        z.cut = 2.0 - z.h_integral_inv(z.h_integral(2.5) - z.h(2.0));
        z
    }

    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    fn h_integral(&self, x: f64) -> f64 {
        let lx = x.ln();
        helper2((1.0 - self.s) * lx) * lx
    }

    fn h_integral_inv(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (helper1(t) * x).exp()
    }

    /// A rank in 1..=n.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_n + rng.unit() * (self.h_x1 - self.h_n);
            let x = self.h_integral_inv(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.cut || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }
}

fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

/// A bijection of [0, n): spreads ranks (zipf's "rank 1") over the rows and
/// gives unique picks (`unique = true`) without remembering what was taken.
#[derive(Clone, Copy, Debug)]
pub struct Permutation {
    n: u64,
    a: u64,
    b: u64,
}

impl Permutation {
    pub fn new(n: u64, key: u64) -> Self {
        let n = n.max(1);
        // A multiplier coprime with n, near the golden ratio of n so that
        // neighbours land far apart.
        let mut a = ((n as f64 * 0.618_033_988_75) as u64).max(1) | 1;
        if n > 2 {
            a %= n;
        }
        while gcd(a.max(1), n) != 1 {
            a += 1;
        }
        Self {
            n,
            a: a.max(1) % n.max(2),
            b: mix(key) % n,
        }
    }

    #[inline]
    pub fn apply(&self, i: u64) -> u64 {
        if self.n == 1 {
            return 0;
        }
        ((u128::from(i % self.n) * u128::from(self.a) + u128::from(self.b)) % u128::from(self.n))
            as u64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_hash_to_fnv_1a_so_seeded_data_stays_the_same() {
        // FNV-1a 64 vectors from the FNV authors' reference test suite.
        assert_eq!(name_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(name_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(name_hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn cells_are_independent_of_order() {
        let k = column_key(42, "users", "id");
        let a: Vec<u64> = (0..100).map(|r| Rng::cell(k, r).next_u64()).collect();
        let b: Vec<u64> = (0..100).rev().map(|r| Rng::cell(k, r).next_u64()).collect();
        let b: Vec<u64> = b.into_iter().rev().collect();
        assert_eq!(a, b);
        assert_ne!(
            Rng::cell(column_key(43, "users", "id"), 0).next_u64(),
            a[0],
            "another seed, other values"
        );
    }

    #[test]
    fn uniform_covers_the_range_evenly() {
        let mut r = Rng::cell(1, 1);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            let v = r.range_i64(1, 10);
            assert!((1..=10).contains(&v));
            counts[(v - 1) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn normal_has_its_mean_and_stddev() {
        let mut r = Rng::cell(2, 2);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var.sqrt() - 1.0).abs() < 0.01, "stddev {}", var.sqrt());
    }

    #[test]
    fn zipf_ranks_follow_the_power_law() {
        for s in [0.8, 1.0, 1.5] {
            let z = Zipf::new(1000, s);
            let mut r = Rng::cell(3, 3);
            let mut counts = vec![0u32; 1001];
            let draws = 300_000;
            for _ in 0..draws {
                let k = z.sample(&mut r);
                assert!((1..=1000).contains(&k));
                counts[k as usize] += 1;
            }
            // P(1)/P(2) = 2^s and P(1)/P(10) = 10^s.
            let r12 = f64::from(counts[1]) / f64::from(counts[2]);
            let r110 = f64::from(counts[1]) / f64::from(counts[10]);
            assert!((r12 / 2f64.powf(s) - 1.0).abs() < 0.08, "s={s} 1:2 {r12}");
            assert!(
                (r110 / 10f64.powf(s) - 1.0).abs() < 0.15,
                "s={s} 1:10 {r110}"
            );
            // And the exact share of rank 1: 1 / H(n, s).
            let h: f64 = (1..=1000).map(|k| 1.0 / (k as f64).powf(s)).sum();
            let share = f64::from(counts[1]) / draws as f64;
            assert!((share * h - 1.0).abs() < 0.05, "s={s} share {share}");
        }
    }

    #[test]
    fn permutation_is_a_bijection() {
        for n in [1u64, 2, 3, 10, 97, 1000, 1024] {
            let p = Permutation::new(n, 7);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let j = p.apply(i) as usize;
                assert!(!seen[j], "n={n}: {j} twice");
                seen[j] = true;
            }
        }
    }
}
