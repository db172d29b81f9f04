//! Diversity of a dataset (seed 001's KPI): the mean pairwise cosine distance of its records' embeddings,
//! updated as records arrive.
//!
//! Exact while the set is small: each new vector adds its distance to every earlier one. Past `exact_up_to`
//! vectors, the earlier ones are represented by a uniform reservoir sample of that size (Vitter's algorithm
//! R), and a new vector's distances to all `n` earlier ones are estimated as `n / |sample|` times its
//! distances to the sample: an unbiased estimate of the sum (every earlier vector is in the sample with the
//! same probability), at a bounded cost per record and in bounded memory. Vectors are unit length, so the
//! cosine is a dot product.

use crate::embed::dot;

/// The running mean pairwise cosine distance of a set of unit vectors.
#[derive(Debug, Clone)]
pub struct Diversity {
    exact_up_to: usize,
    sample: Vec<Vec<f32>>,
    /// Vectors added.
    n: u64,
    /// Sum (or its estimate) of the distances over every unordered pair.
    sum: f64,
    rng: u64,
}

impl Diversity {
    /// Exact up to `exact_up_to` vectors, sampled beyond (at least 2).
    pub fn new(exact_up_to: usize) -> Diversity {
        Diversity { exact_up_to: exact_up_to.max(2), sample: Vec::new(), n: 0, sum: 0.0, rng: 0x9E37_79B9_7F4A_7C15 }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, so a rerun on the same records reports the same figure.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Adds a unit vector.
    pub fn add(&mut self, v: &[f32]) {
        if !self.sample.is_empty() {
            let to_sample: f64 = self.sample.iter().map(|u| f64::from(1.0 - dot(v, u))).sum();
            // Exact while every earlier vector is in the sample; scaled to all n earlier ones beyond.
            self.sum += to_sample * self.n as f64 / self.sample.len() as f64;
        }
        self.n += 1;
        if self.sample.len() < self.exact_up_to {
            self.sample.push(v.to_vec());
        } else {
            let j = (self.next() % self.n) as usize;
            if j < self.exact_up_to {
                self.sample[j] = v.to_vec();
            }
        }
    }

    /// Vectors added.
    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Whether the figure is exact (no vector left out of the sample yet).
    pub fn exact(&self) -> bool {
        self.n as usize <= self.exact_up_to
    }

    /// The mean pairwise cosine distance (0: all alike; 1: orthogonal on average), once there are two.
    pub fn mean(&self) -> Option<f64> {
        (self.n >= 2).then(|| self.sum / (self.n as f64 * (self.n as f64 - 1.0) / 2.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::normalize;

    fn exact_mean(vs: &[Vec<f32>]) -> f64 {
        let mut s = 0.0;
        let mut pairs = 0.0;
        for i in 0..vs.len() {
            for j in i + 1..vs.len() {
                s += f64::from(1.0 - dot(&vs[i], &vs[j]));
                pairs += 1.0;
            }
        }
        s / pairs
    }

    fn vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                normalize(
                    (0..dim)
                        .map(|_| {
                            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                            // Positive-leaning components: a mean distance well inside (0, 1).
                            ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.2
                        })
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn small_sets_are_exact() {
        let vs = vectors(40, 8, 7);
        let mut d = Diversity::new(64);
        assert_eq!(d.mean(), None);
        for v in &vs {
            d.add(v);
        }
        assert!(d.exact());
        assert!((d.mean().unwrap() - exact_mean(&vs)).abs() < 1e-5, "{:?} vs {}", d.mean(), exact_mean(&vs));
    }

    #[test]
    fn identical_records_have_no_diversity_and_opposite_ones_the_most() {
        let mut d = Diversity::new(8);
        for _ in 0..5 {
            d.add(&[1.0, 0.0]);
        }
        assert!(d.mean().unwrap().abs() < 1e-9);
        let mut d = Diversity::new(8);
        d.add(&[1.0, 0.0]);
        d.add(&[0.0, 1.0]);
        assert!((d.mean().unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_sampled_estimate_tracks_the_exact_figure() {
        let vs = vectors(1500, 16, 11);
        let exact = exact_mean(&vs);
        let mut d = Diversity::new(100);
        for v in &vs {
            d.add(v);
        }
        assert!(!d.exact());
        let est = d.mean().unwrap();
        assert!((est - exact).abs() / exact < 0.05, "sampled {est} vs exact {exact}");
    }
}
