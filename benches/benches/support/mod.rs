//! Shared by `benches/full.rs` and `examples/bench_table.rs`: random inputs,
//! the peers (nalgebra, faer) written as a user would write them, and an FMA
//! peak probe.
#![allow(dead_code)]

use gaussian_kl::batch::{self, Pairs};
use gaussian_kl::{Exec, Gaussians, Real};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `n` random Gaussians of dimension `d`: PyTorch layout, raw log diagonal.
pub fn batch<T: Real>(seed: u64, d: usize, n: usize) -> (Vec<T>, Vec<T>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let t = d * (d + 1) / 2;
    let means = (0..n * d)
        .map(|_| T::from_f64(rng.random_range(-1.0..1.0)))
        .collect();
    let s = 0.5 / (d as f64).sqrt();
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

/// `KL(p[k]‖q[k])` of two batches of `out.len()` Gaussians by the crate's
/// batch layer under `exec`, with a workspace of exactly the scratch size.
pub fn kl_zip<T: Real>(exec: &Exec, d: usize, p: (&[T], &[T]), q: (&[T], &[T]), out: &mut [T]) {
    let n = out.len();
    let p = Gaussians::new(n, d, p.0, p.1).unwrap();
    let q = Gaussians::new(n, d, q.0, q.1).unwrap();
    let mut work = vec![T::ZERO; batch::kl_scratch::<T>(d, exec).unwrap()];
    batch::kl(&p, Pairs::Zip(&q), out, exec, &mut work).unwrap();
}

/// Multiply-adds per pair (the forward solves for `M` and `y`), as flops.
pub fn flops_per_pair(d: usize) -> f64 {
    let d = d as f64;
    // M: Σ_i Σ_{j≤i} (i − j) multiply-adds ≈ d³/6; y: d²/2; squares: d²/2 + d.
    2.0 * (d * (d * d - 1.0) / 6.0 + d * d / 2.0 + d * (d + 1.0) / 2.0 + d)
}

macro_rules! peers {
    ($t:ty, $nalgebra:ident, $faer:ident) => {
        /// nalgebra, per pair: build the two factors, `solve_lower_triangular`
        /// for `M` and `y`, squared norms.
        pub fn $nalgebra(d: usize, mp: &[$t], tp: &[$t], mq: &[$t], tq: &[$t], out: &mut [$t]) {
            use nalgebra::{DMatrix, DVector};
            let t = d * (d + 1) / 2;
            for (k, o) in out.iter_mut().enumerate() {
                let (tp, tq) = (&tp[k * t..][..t], &tq[k * t..][..t]);
                let build = |raw: &[$t]| {
                    DMatrix::<$t>::from_fn(d, d, |i, j| {
                        if j < i {
                            raw[i * (i + 1) / 2 + j]
                        } else if i == j {
                            raw[i * (i + 1) / 2 + i].exp()
                        } else {
                            0.0
                        }
                    })
                };
                let (l1, l2) = (build(tp), build(tq));
                let diff = DVector::<$t>::from_fn(d, |i, _| mq[k * d + i] - mp[k * d + i]);
                let m = l2.solve_lower_triangular(&l1).unwrap();
                let y = l2.solve_lower_triangular(&diff).unwrap();
                let mut ld = 0.0;
                for i in 0..d {
                    ld += tp[i * (i + 1) / 2 + i] - tq[i * (i + 1) / 2 + i];
                }
                *o = 0.5 * (y.norm_squared() + m.norm_squared() - 2.0 * ld - d as $t);
            }
        }

        /// faer, per pair, single thread: build the factor and the right-hand
        /// side `[L_p | μ_q − μ_p]`, triangular solve in place, squared norm.
        pub fn $faer(d: usize, mp: &[$t], tp: &[$t], mq: &[$t], tq: &[$t], out: &mut [$t]) {
            use faer::{Mat, Par};
            let t = d * (d + 1) / 2;
            for (k, o) in out.iter_mut().enumerate() {
                let (tp, tq) = (&tp[k * t..][..t], &tq[k * t..][..t]);
                let l2 = Mat::<$t>::from_fn(d, d, |i, j| {
                    if j < i {
                        tq[i * (i + 1) / 2 + j]
                    } else if i == j {
                        tq[i * (i + 1) / 2 + i].exp()
                    } else {
                        0.0
                    }
                });
                let mut rhs = Mat::<$t>::from_fn(d, d + 1, |i, j| {
                    if j == d {
                        mq[k * d + i] - mp[k * d + i]
                    } else if j < i {
                        tp[i * (i + 1) / 2 + j]
                    } else if i == j {
                        tp[i * (i + 1) / 2 + i].exp()
                    } else {
                        0.0
                    }
                });
                faer::linalg::triangular_solve::solve_lower_triangular_in_place(
                    l2.as_ref(),
                    rhs.as_mut(),
                    Par::Seq,
                );
                let mut ld = 0.0;
                for i in 0..d {
                    ld += tp[i * (i + 1) / 2 + i] - tq[i * (i + 1) / 2 + i];
                }
                *o = 0.5 * (rhs.squared_norm_l2() - 2.0 * ld - d as $t);
            }
        }
    };
}

peers!(f32, nalgebra_f32, faer_f32);
peers!(f64, nalgebra_f64, faer_f64);

/// The f32 FMA peak of one core at the best level the host has, in GFLOP/s:
/// the benchmark package's one probe (`gaussian_kl_bench::probe`, whose
/// accumulator count and spill-free inner loop are checked per level), a
/// median of 5 runs of 0.1 s each. NaN on a host without AVX2.
pub fn peak_gflops_f32() -> f64 {
    use gaussian_kl_bench::probe::{self, Dtype, ProbeLevel};
    let best = ProbeLevel::all_available().into_iter().last();
    best.and_then(|l| probe::fma_peak_gflops(l, Dtype::F32, 1, 5, 0.1))
        .unwrap_or(f64::NAN)
}
