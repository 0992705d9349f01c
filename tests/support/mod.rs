//! Shared helpers of the SIMD and batch tests: seeded random batches and the
//! per-pair scalar reference.
#![allow(dead_code)]

use gaussian_kl::{Gaussian, Real, full};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A random batch of `n` Gaussians of dimension `d` in PyTorch's layout
/// (row-major packed, raw log diagonal). Log diagonals uniform in
/// `[−0.5, 0.5]`, off-diagonals uniform in `±0.5/√d` (well conditioned at every
/// `d`), means uniform in `[−1, 1]`.
pub fn batch<T: Real>(seed: u64, d: usize, n: usize) -> (Vec<T>, Vec<T>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let t = d * (d + 1) / 2;
    let means = (0..n * d)
        .map(|_| T::from_f64(rng.random_range(-1.0..1.0)))
        .collect();
    let s = 0.5 / (d.max(1) as f64).sqrt();
    let mut tril = Vec::with_capacity(n * t);
    for _ in 0..n {
        for i in 0..d {
            for j in 0..=i {
                let v = if i == j {
                    rng.random_range(-0.5..0.5)
                } else {
                    rng.random_range(-s..s)
                };
                tril.push(T::from_f64(v));
            }
        }
    }
    (means, tril)
}

/// KL of one pair by the scalar reference, plus the magnitude
/// `S = ½(‖y‖² + ‖M‖² + 2|Δ log det| + d)` of the terms it sums (what a
/// rounding error is relative to), both from `full::kl`.
pub fn reference<T: Real>(d: usize, mp: &[T], tp: &[T], mq: &[T], tq: &[T]) -> (T, f64) {
    let mut work = vec![T::ZERO; full::kl_scratch(d)];
    let (p, q) = (
        Gaussian::packed(mp, tp).unwrap(),
        Gaussian::packed(mq, tq).unwrap(),
    );
    assert_eq!((p.dim(), q.dim()), (d, d));
    let kl = full::kl(&p, &q, &mut work).unwrap();
    let mut ld = 0.0;
    for i in 0..d {
        let ii = i * (i + 1) / 2 + i;
        ld += tp[ii].to_f64() - tq[ii].to_f64();
    }
    // Y + M = 2 KL + 2 ld + d.
    let s = kl.to_f64() + ld + ld.abs() + d as f64;
    (kl, s)
}

/// Tolerance for a SIMD result against the scalar reference of the same
/// precision: both round `O(d)` operations per entry of `M` and `O(d²)`
/// terms into the sums; with well-conditioned factors each is within
/// `c·d·ε·S` of the exact value (`c = 8` covers both sides and the
/// reassociated sums).
pub fn tol<T: Real>(d: usize, s: f64) -> f64 {
    8.0 * (d.max(1) as f64) * T::EPSILON.to_f64() * s
}
