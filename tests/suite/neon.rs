//! NEON, on an aarch64 CPU (`.ci/cross.sh` runs it under `qemu-aarch64`):
//! the level is detected, and every dispatched SIMD kernel runs at
//! `Level::Neon` and agrees with the scalar kernel and with an independent
//! f64 reference:
//!
//! - `batch::kl`: `Kernel::Lanes` and `Kernel::Blocked` forced, zip and all
//!   pairs, against `Kernel::Scalar` and the Gauss–Jordan reference of
//!   `tests/suite/common.rs` (f64 covariances, no triangular solve);
//! - `batch::kl_grad`: `Kernel::Lanes` against `Kernel::Scalar`, and in f64
//!   against central differences of that reference;
//! - `search::scores` and `search::top_k` (the fused diagonal scoring kernel)
//!   against `Level::Scalar` and an f64 loop over the Eq. 10 and KL formulas.
//!
//! Each test prints one line starting with `NEON`, which CI shows.
//!
//! Tolerances are in units of `eps · scale`, `scale` the sum of the
//! magnitudes of the terms (times `κ₂(L_q)` for the full-rank solves): the
//! crate's documented bounds have this form (README, Accuracy). Each constant
//! is about 100× the largest error measured under qemu-aarch64 (printed by the
//! test, recorded beside the constant), so a kernel that loses a few bits more
//! than it does today, or computes another quantity, fails.
#![cfg(target_arch = "aarch64")]

use crate::common;
use crate::common::{Case, rel_err, rng, widen};
use gaussian_kl::batch::{self, Pairs};
use gaussian_kl::search::{self, DocIndex, Metric};
use gaussian_kl::simd::Level;
use gaussian_kl::{DiagGaussians, Exec, Gaussians, GradMut, Grads, Kernel, Real};

/// Dimensions: below, at and above the lane counts (4 f32, 2 f64), the
/// lockstep/blocked switch at 16, and one odd larger size.
const DIMS: [usize; 9] = [1, 2, 3, 4, 5, 8, 16, 17, 33];

/// Pairs per batch: two full 4-lane chunks and a partial one (f32), five
/// full 2-lane chunks and a partial one (f64).
const N: usize = 11;

// Largest errors measured under qemu-aarch64 (QEMU 7.2, the printed lines):
// forward 2.2 eps·κ₂·scale (f32 Lanes vs Scalar; 1.3 f32 / 2.0 f64 vs the
// reference); gradient 4.0 eps·max|grad| (f64); central differences 3.2e-10;
// diagonal scores 3.0 eps·A. The bounds are 20–100× those.
const KL_TOL: f64 = 50.0;
const GRAD_TOL: f64 = 200.0;
const FD_TOL: f64 = 3e-8;
const DIAG_TOL: f64 = 50.0;

fn neon() -> Exec {
    Exec::new().level(Level::Neon)
}

#[test]
fn neon_is_detected_and_resolved() {
    assert_eq!(Level::detect(), Level::Neon);
    assert!(Level::Neon.is_available());
    assert_eq!(Exec::new().resolved_level(), Ok(Level::Neon));
    for kernel in [Kernel::Lanes, Kernel::Blocked] {
        assert_eq!(neon().kernel(kernel).resolved_level(), Ok(Level::Neon));
    }
    println!("NEON asserted: Level::detect() == Level::Neon on this aarch64 CPU");
}

/// `n` random pairs of dimension `d` rounded to `T`, as batch arrays, with
/// their f64 references `(kl, scale · κ₂(L_q))`.
struct Batch<T> {
    cases: Vec<Case>,
    mp: Vec<T>,
    lp: Vec<T>,
    mq: Vec<T>,
    lq: Vec<T>,
}

impl<T: Real> Batch<T> {
    fn new(seed: u64, d: usize, n: usize) -> Self {
        let mut r = rng(seed);
        let cases: Vec<Case> = (0..n).map(|_| Case::random(&mut r, d)).collect();
        let mut b = Batch {
            cases: Vec::new(),
            mp: Vec::new(),
            lp: Vec::new(),
            mq: Vec::new(),
            lq: Vec::new(),
        };
        for c in &cases {
            let t = c.round::<T>();
            b.mp.extend(&t.mean_p);
            b.lp.extend(&t.raw_p);
            b.mq.extend(&t.mean_q);
            b.lq.extend(&t.raw_q);
            // The reference sees exactly the rounded inputs.
            b.cases.push(Case {
                d,
                mean_p: widen(&t.mean_p),
                raw_p: widen(&t.raw_p),
                mean_q: widen(&t.mean_q),
                raw_q: widen(&t.raw_q),
            });
        }
        b
    }

    fn p(&self) -> Gaussians<'_, T> {
        let n = self.cases.len();
        Gaussians::new(n, self.cases[0].d, &self.mp, &self.lp).expect("well-formed batch")
    }

    fn q(&self) -> Gaussians<'_, T> {
        let n = self.cases.len();
        Gaussians::new(n, self.cases[0].d, &self.mq, &self.lq).expect("well-formed batch")
    }
}

/// `(kl, scale · κ₂)` of `p` = case `i`'s p against `q` = case `j`'s q.
fn reference(b: &[Case], i: usize, j: usize) -> (f64, f64) {
    let mix = Case {
        d: b[i].d,
        mean_p: b[i].mean_p.clone(),
        raw_p: b[i].raw_p.clone(),
        mean_q: b[j].mean_q.clone(),
        raw_q: b[j].raw_q.clone(),
    };
    let r = mix.round::<f64>().reference();
    (r.kl, r.scale * r.kappa)
}

fn run_kl<T: Real>(p: &Gaussians<'_, T>, q: Pairs<'_, T>, n_out: usize, exec: Exec) -> Vec<T> {
    let d = p.dim();
    let mut work = vec![T::ZERO; batch::kl_scratch::<T>(d, &exec).expect("kernel exists")];
    let mut out = vec![T::NAN; n_out];
    batch::kl(p, q, &mut out, &exec, &mut work).expect("well-formed batch");
    out
}

/// Largest error of the Lanes and Blocked kernels at Level::Neon, in units of
/// eps · κ₂ · scale, against the f64 reference and against the scalar kernel.
fn forward<T: Real>(seed: u64) -> (f64, f64) {
    let eps = T::EPSILON.to_f64();
    let (mut vs_ref, mut vs_scalar) = (0.0f64, 0.0f64);
    for (k, &d) in DIMS.iter().enumerate() {
        let b = Batch::<T>::new(seed + k as u64, d, N);
        let (p, q) = (b.p(), b.q());
        // Zip: p[k] vs q[k]; All: every p against the first 3 q.
        let q3 = Gaussians::new(3, d, &b.mq[..3 * d], &b.lq[..3 * d * (d + 1) / 2]).unwrap();
        for all in [false, true] {
            let (pairs, n_out) = if all {
                (Pairs::All(&q3), 3 * N)
            } else {
                (Pairs::Zip(&q), N)
            };
            let index = |o: usize| if all { (o / 3, o % 3) } else { (o, o) };
            let scalar = run_kl(&p, pairs, n_out, Exec::new().kernel(Kernel::Scalar));
            for kernel in [Kernel::Lanes, Kernel::Blocked] {
                let got = run_kl(&p, pairs, n_out, neon().kernel(kernel));
                for o in 0..n_out {
                    let (i, j) = index(o);
                    let (kl, scale) = reference(&b.cases, i, j);
                    let (g, s) = (got[o].to_f64(), scalar[o].to_f64());
                    let e_ref = rel_err(g, kl, scale) / eps;
                    let e_scalar = rel_err(g, s, scale) / eps;
                    assert!(
                        e_ref <= KL_TOL
                            && e_scalar <= KL_TOL
                            && rel_err(s, kl, scale) / eps <= KL_TOL,
                        "{kernel:?} d = {d} pair {o}: {g:e}, scalar {s:e}, reference {kl:e} \
                         (errors {e_ref:.1} / {e_scalar:.1} eps·κ·scale)"
                    );
                    vs_ref = vs_ref.max(e_ref);
                    vs_scalar = vs_scalar.max(e_scalar);
                }
            }
        }
    }
    (vs_ref, vs_scalar)
}

#[test]
fn neon_forward_lanes_and_blocked_agree() {
    assert_eq!(Level::detect(), Level::Neon);
    let (r32, s32) = forward::<f32>(100);
    let (r64, s64) = forward::<f64>(200);
    println!(
        "NEON batch::kl Lanes + Blocked at Level::Neon, d in {DIMS:?}, zip and all pairs: \
         largest error vs the f64 reference {r32:.2} (f32) / {r64:.2} (f64), \
         vs Kernel::Scalar {s32:.2} / {s64:.2} eps·κ₂·scale (bound {KL_TOL})"
    );
}

/// The gradient outputs of `batch::kl_grad` (zip, upstream 1): p mean,
/// p factor, q mean, q factor.
fn run_grad<T: Real>(b: &Batch<T>, exec: Exec) -> [Vec<T>; 4] {
    let (p, q) = (b.p(), b.q());
    let d = p.dim();
    let mut work = vec![T::ZERO; batch::kl_grad_scratch::<T>(d, &exec).expect("kernel exists")];
    let mut out = vec![T::NAN; N];
    let mut g = [
        vec![T::NAN; b.mp.len()],
        vec![T::NAN; b.lp.len()],
        vec![T::NAN; b.mq.len()],
        vec![T::NAN; b.lq.len()],
    ];
    let [gmp, glp, gmq, glq] = &mut g;
    let grads = Grads::new(GradMut::new(gmp, glp), GradMut::new(gmq, glq));
    let upstream = vec![T::ONE; N];
    batch::kl_grad(
        &p,
        Pairs::Zip(&q),
        &upstream,
        &mut out,
        grads,
        &exec,
        &mut work,
    )
    .expect("well-formed batch");
    g
}

/// Largest |Lanes − Scalar| of every gradient array, in units of
/// eps · max|Scalar| of that array.
fn gradient<T: Real>(seed: u64) -> f64 {
    let eps = T::EPSILON.to_f64();
    let mut worst = 0.0f64;
    for (k, &d) in DIMS.iter().enumerate() {
        let b = Batch::<T>::new(seed + k as u64, d, N);
        let scalar = run_grad(&b, Exec::new().kernel(Kernel::Scalar));
        let lanes = run_grad(&b, neon().kernel(Kernel::Lanes));
        for (a, (s, l)) in scalar.iter().zip(&lanes).enumerate() {
            let norm = s
                .iter()
                .map(|x| x.to_f64().abs())
                .fold(0.0, f64::max)
                .max(1.0);
            for (x, (s, l)) in s.iter().zip(l).enumerate() {
                let e = rel_err(l.to_f64(), s.to_f64(), norm) / eps;
                assert!(
                    e <= GRAD_TOL,
                    "d = {d}, gradient array {a} entry {x}: lanes {l:?}, scalar {s:?} ({e:.1} eps·norm)"
                );
                worst = worst.max(e);
            }
        }
    }
    worst
}

/// f64, d ≤ 5: the Lanes gradient at Level::Neon against central
/// differences of the f64 reference KL (h = 1e-5: truncation ~h² and the
/// reference's rounding amplified by 1/h, both ≈ 1e-10 relative).
fn finite_differences() -> f64 {
    let mut worst = 0.0f64;
    for &d in &DIMS[..5] {
        let b = Batch::<f64>::new(300 + d as u64, d, N);
        let lanes = run_grad(&b, neon().kernel(Kernel::Lanes));
        for (i, c) in b.cases.iter().enumerate() {
            let t = d * (d + 1) / 2;
            for (a, len) in [(0, d), (1, t), (2, d), (3, t)] {
                for x in 0..len {
                    let kl_at = |h: f64| {
                        let mut m = c.clone();
                        let v = match a {
                            0 => &mut m.mean_p,
                            1 => &mut m.raw_p,
                            2 => &mut m.mean_q,
                            _ => &mut m.raw_q,
                        };
                        v[x] += h;
                        m.round::<f64>().reference().kl
                    };
                    let h = 1e-5;
                    let fd = (kl_at(h) - kl_at(-h)) / (2.0 * h);
                    let g = lanes[a][i * len + x];
                    let e = (g - fd).abs() / (1.0 + fd.abs());
                    assert!(
                        e <= FD_TOL,
                        "d = {d}, pair {i}, array {a}[{x}]: {g:e} vs {fd:e}"
                    );
                    worst = worst.max(e);
                }
            }
        }
    }
    worst
}

#[test]
fn neon_gradient_lanes_agrees() {
    assert_eq!(Level::detect(), Level::Neon);
    let g32 = gradient::<f32>(400);
    let g64 = gradient::<f64>(500);
    let fd = finite_differences();
    println!(
        "NEON batch::kl_grad Lanes at Level::Neon, d in {DIMS:?}: largest |Lanes − Scalar| \
         {g32:.2} (f32) / {g64:.2} (f64) eps·max|grad| (bound {GRAD_TOL}); \
         f64 vs central differences of the reference {fd:.1e} (bound {FD_TOL:e})"
    );
}

/// `n` diagonal Gaussians of dimension `k` (means N(0, 1), variances
/// e^{N(0, 1)/2}), f64.
fn diag_batch(seed: u64, n: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut r = rng(seed);
    let mean = (0..n * k).map(|_| common::normal(&mut r)).collect();
    let var = (0..n * k)
        .map(|_| (0.5 * common::normal(&mut r)).exp())
        .collect();
    (mean, var)
}

/// f64 reference `(eq10, kl, A)` of query `i` against document `j`, with
/// `A = Σ|ln σ²_d| + Σ|ln σ²_q| + Σ(σ²_q + δ²)/σ²_d + k`, the scale of the
/// crate's documented diagonal bound.
fn diag_reference(
    k: usize,
    q: &(Vec<f64>, Vec<f64>),
    i: usize,
    d: &(Vec<f64>, Vec<f64>),
    j: usize,
) -> (f64, f64, f64) {
    let (mut eq10, mut kl, mut a) = (0.0, 0.0, k as f64);
    for x in 0..k {
        let (mq, vq) = (q.0[i * k + x], q.1[i * k + x]);
        let (md, vd) = (d.0[j * k + x], d.1[j * k + x]);
        let ratio = (vq + (mq - md) * (mq - md)) / vd;
        eq10 -= vd.ln() + ratio;
        kl += 0.5 * (vd.ln() - vq.ln() + ratio - 1.0);
        a += vd.ln().abs() + vq.ln().abs() + ratio;
    }
    (eq10, kl, a)
}

// The search functions are bound by a sealed trait that a test cannot name:
// one function per precision.
macro_rules! diag_scoring {
    ($name:ident, $t:ty) => {
        /// Largest error of `search::scores` at Level::Neon in units of
        /// eps · A against the f64 loop; checks that they are bit-identical
        /// to Level::Scalar's and that `top_k` returns the best of them.
        fn $name(seed: u64) -> f64 {
            let eps = f64::from(<$t>::EPSILON);
            let (nq, nd) = (5, 37);
            let mut vs_ref = 0.0f64;
            for k in [1, 3, 8, 17] {
                let q64 = diag_batch(seed + k as u64, nq, k);
                let d64 = diag_batch(seed + 100 + k as u64, nd, k);
                let r = |v: &[f64]| v.iter().map(|&x| x as $t).collect::<Vec<$t>>();
                let (qm, qv, dm, dv) = (r(&q64.0), r(&q64.1), r(&d64.0), r(&d64.1));
                // The reference sees the rounded inputs.
                let w = |v: &[$t]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
                let (q64, d64) = ((w(&qm), w(&qv)), (w(&dm), w(&dv)));
                let queries = DiagGaussians::var(nq, k, &qm, &qv).unwrap();
                let docs = DiagGaussians::var(nd, k, &dm, &dv).unwrap();
                let index = DocIndex::new(&docs).unwrap();
                for metric in [Metric::Eq10, Metric::Kl] {
                    let mut at_neon = vec![<$t>::NAN; nq * nd];
                    let mut at_scalar = vec![<$t>::NAN; nq * nd];
                    search::scores(&index, &queries, metric, &mut at_neon, &neon()).unwrap();
                    let scalar = Exec::new().level(Level::Scalar);
                    search::scores(&index, &queries, metric, &mut at_scalar, &scalar).unwrap();
                    for o in 0..nq * nd {
                        let (eq10, kl, a) = diag_reference(k, &q64, o / nd, &d64, o % nd);
                        let want = if metric == Metric::Eq10 { eq10 } else { kl };
                        let (g, s) = (f64::from(at_neon[o]), f64::from(at_scalar[o]));
                        // The scoring kernel is one fma chain per score at
                        // every level (README, Retrieval): bit-identical.
                        assert_eq!(
                            g.to_bits(),
                            s.to_bits(),
                            "{metric:?} k = {k}, pair {o}: Neon {g:e} vs Scalar {s:e}"
                        );
                        let e_ref = rel_err(g, want, a) / eps;
                        assert!(
                            e_ref <= DIAG_TOL,
                            "{metric:?} k = {k}, pair {o}: {g:e}, reference {want:e} ({e_ref:.1} eps·A)"
                        );
                        vs_ref = vs_ref.max(e_ref);
                    }
                    // top_k at Level::Neon: the 4 best of those scores (larger
                    // Eq. 10 is better, smaller KL), values equal to them.
                    let hits = search::top_k(&index, &queries, 4, metric, &neon()).unwrap();
                    for i in 0..nq {
                        let row = &at_neon[i * nd..][..nd];
                        let (idx, val) = hits.row(i);
                        let worst_kept = if metric == Metric::Eq10 {
                            val.iter().copied().fold(<$t>::INFINITY, <$t>::min)
                        } else {
                            val.iter().copied().fold(<$t>::NEG_INFINITY, <$t>::max)
                        };
                        for (&j, &v) in idx.iter().zip(val) {
                            assert_eq!(v, row[j], "{metric:?} k = {k}: top_k value of doc {j}");
                        }
                        let beaten = row.iter().enumerate().filter(|&(j, &s)| {
                            !idx.contains(&j)
                                && if metric == Metric::Eq10 { s > worst_kept } else { s < worst_kept }
                        });
                        assert_eq!(beaten.count(), 0, "{metric:?} k = {k}: top_k missed a better doc");
                    }
                }
            }
            vs_ref
        }
    };
}

diag_scoring!(diag_scoring_f32, f32);
diag_scoring!(diag_scoring_f64, f64);

#[test]
fn neon_diagonal_scoring_agrees() {
    assert_eq!(Level::detect(), Level::Neon);
    let r32 = diag_scoring_f32(600);
    let r64 = diag_scoring_f64(700);
    println!(
        "NEON search::scores + top_k at Level::Neon, k in [1, 3, 8, 17], Eq. 10 and KL: \
         bit-identical to Level::Scalar; largest error vs the f64 loop {r32:.2} (f32) / \
         {r64:.2} (f64) eps·A (bound {DIAG_TOL})"
    );
}
