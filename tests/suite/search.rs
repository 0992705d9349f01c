//! Top-k retrieval: the fused kernel against a plain f64 loop over the KL and
//! Eq. 10 formulas (independent of the crate) and against a scalar
//! fused-multiply-add chain (bit for bit), top-k against the reference
//! ranking and against a full sort, every SIMD level and thread count
//! against the scalar serial run, and the errors.

#![cfg(feature = "std")]
#![allow(clippy::needless_range_loop)] // index loops over (query, document) pairs

use gaussian_kl::diag::{self, Rep};
use gaussian_kl::search::{self, DocIndex, Hits, Metric};
use gaussian_kl::simd::Level;
use gaussian_kl::{DiagGaussians, Error, Exec, Kernel, Real};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The search functions take the crate-internal element trait (`f32`,
/// `f64`); generic test helpers reach them through this one.
trait Elem: Real {
    fn fma_ref(a: Self, b: Self, c: Self) -> Self;
    fn top_k(
        index: &DocIndex<Self>,
        q: &DiagGaussians<'_, Self>,
        k: usize,
        metric: Metric,
        exec: &Exec,
    ) -> Result<Hits<Self>, Error>;
    fn scores(
        index: &DocIndex<Self>,
        q: &DiagGaussians<'_, Self>,
        metric: Metric,
        out: &mut [Self],
        exec: &Exec,
    ) -> Result<(), Error>;
    fn index(docs: &DiagGaussians<'_, Self>) -> DocIndex<Self>;
}

macro_rules! elem {
    ($t:ty) => {
        impl Elem for $t {
            fn fma_ref(a: $t, b: $t, c: $t) -> $t {
                a.mul_add(b, c)
            }
            fn top_k(
                index: &DocIndex<$t>,
                q: &DiagGaussians<'_, $t>,
                k: usize,
                metric: Metric,
                exec: &Exec,
            ) -> Result<Hits<$t>, Error> {
                search::top_k(index, q, k, metric, exec)
            }
            fn scores(
                index: &DocIndex<$t>,
                q: &DiagGaussians<'_, $t>,
                metric: Metric,
                out: &mut [$t],
                exec: &Exec,
            ) -> Result<(), Error> {
                search::scores(index, q, metric, out, exec)
            }
            fn index(docs: &DiagGaussians<'_, $t>) -> DocIndex<$t> {
                DocIndex::new(docs).unwrap()
            }
        }
    };
}
elem!(f32);
elem!(f64);

const SEQ: Exec = Exec::new();

fn random_side<T: Real>(rng: &mut StdRng, n: usize, d: usize) -> (Vec<T>, Vec<T>) {
    let m = (0..n * d)
        .map(|_| T::from_f64(rng.random_range(-2.0..2.0)))
        .collect();
    let v = (0..n * d)
        .map(|_| T::from_f64(rng.random_range(0.05..5.0)))
        .collect();
    (m, v)
}

fn var<'a, T: Real>(n: usize, d: usize, m: &'a [T], v: &'a [T]) -> DiagGaussians<'a, T> {
    DiagGaussians::var(n, d, m, v).unwrap()
}

/// The levels the host has; the others are reported as skipped.
fn levels() -> Vec<Level> {
    Level::all()
        .iter()
        .copied()
        .filter(|l| {
            let ok = l.is_available();
            if !ok {
                eprintln!("skipping {l:?}: not available on this machine/build");
            }
            ok
        })
        .collect()
}

/// The independent reference, variances given: a plain f64 loop over the
/// formulas, `(value, scale)` per pair, where `scale` sums the magnitudes of
/// the terms of the compact dot product the kernel computes (those of
/// `γ_q = −Σ (log σ²_q + μ²_q/σ²_q)`, then `(σ²_p + μ²_p)/σ²_q` and
/// `|2 μ_p μ_q / σ²_q|`), plus those of `γ_p = Σ log σ²_p` and `d` for the
/// KL (the terms it adds).
fn reference(
    metric: Metric,
    (np, nq, d): (usize, usize, usize),
    p: (&[f64], &[f64]),
    q: (&[f64], &[f64]),
) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![vec![(0.0, 0.0); nq]; np];
    for i in 0..np {
        for j in 0..nq {
            let (mut kl, mut eq10, mut gq, mut terms, mut gp) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for c in 0..d {
                let (mp, vp) = (p.0[i * d + c], p.1[i * d + c]);
                let (mq, vq) = (q.0[j * d + c], q.1[j * d + c]);
                let r = (vp + (mp - mq) * (mp - mq)) / vq;
                kl += 0.5 * (vq.ln() - vp.ln() - 1.0 + r);
                eq10 -= vq.ln() + r;
                gq += vq.ln().abs() + mq * mq / vq;
                gp += vp.ln().abs();
                terms += (vp + mp * mp) / vq + (2.0 * mp * mq / vq).abs();
            }
            let scale = gq + terms;
            out[i][j] = match metric {
                Metric::Kl => (kl, scale + gp + d as f64),
                Metric::Eq10 => (eq10, scale),
            };
        }
    }
    out
}

fn widen<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

fn eps<T: Real>() -> f64 {
    T::EPSILON.to_f64()
}

/// Measured (`scores_match_the_reference`, printed with `--nocapture`): the
/// worst `|value − reference| / (ε · scale)` of the fused kernel is 6.9 in
/// f64 and 7.2 in f32, at d = 128 (one rounding per fused multiply-add over
/// `2d + 1` terms, and `γ_q` rounded once to the element type). The bound
/// `70` is 10× that. A wrong sign on any term is off by `O(scale)`, a ratio
/// of `O(1/ε)`.
const SCORE_TOL: f64 = 70.0;

/// Every value of `scores`, at every level, within `SCORE_TOL · ε · scale`
/// of the reference; returns the worst ratio.
fn check_scores<T: Elem>(rng: &mut StdRng, d: usize, np: usize, nq: usize) -> f64 {
    let (pm, pv) = random_side::<T>(rng, np, d);
    let (qm, qv) = random_side::<T>(rng, nq, d);
    let index = T::index(&var(nq, d, &qm, &qv));
    let p = var(np, d, &pm, &pv);
    let (pw, qw) = ((widen(&pm), widen(&pv)), (widen(&qm), widen(&qv)));
    let mut worst = 0.0f64;
    for metric in [Metric::Eq10, Metric::Kl] {
        let want = reference(metric, (np, nq, d), (&pw.0, &pw.1), (&qw.0, &qw.1));
        for level in levels() {
            let mut got = vec![T::NAN; np * nq];
            T::scores(&index, &p, metric, &mut got, &SEQ.level(level)).unwrap();
            for i in 0..np {
                for j in 0..nq {
                    let (w, scale) = want[i][j];
                    let r = (got[i * nq + j].to_f64() - w).abs() / (eps::<T>() * scale);
                    assert!(r <= SCORE_TOL, "{level:?} {metric:?} d={d} ({i},{j}): {r}");
                    worst = worst.max(r);
                }
            }
        }
    }
    worst
}

#[test]
fn scores_match_the_reference() {
    let mut rng = StdRng::seed_from_u64(3);
    let (mut w64, mut w32) = (0.0f64, 0.0f64);
    for d in [1, 3, 16, 37, 128] {
        for (np, nq) in [(1, 1), (5, 67), (9, 33)] {
            w64 = w64.max(check_scores::<f64>(&mut rng, d, np, nq));
            w32 = w32.max(check_scores::<f32>(&mut rng, d, np, nq));
        }
    }
    eprintln!("worst |err|/(eps*scale): f64 {w64:.3}, f32 {w32:.3}");
}

/// The scalar chain the kernel is documented to compute: the `CompactKl`
/// vectors from [`diag::query_vectors`] / [`diag::doc_vectors`], the dot
/// product as fused multiply-adds from `γ_q`, in index order.
fn fma_chain<T: Elem>(
    p: &DiagGaussians<'_, T>,
    q: &DiagGaussians<'_, T>,
    metric: Metric,
) -> Vec<T> {
    let d = p.dim();
    let n = Rep::CompactKl.len(d);
    let mut a = vec![T::ZERO; p.len() * n];
    let mut b = vec![T::ZERO; q.len() * n];
    diag::query_vectors(Rep::CompactKl, p, &mut a).unwrap();
    diag::doc_vectors(Rep::CompactKl, q, &mut b).unwrap();
    let mut out = Vec::new();
    for x in a.chunks_exact(n) {
        for y in b.chunks_exact(n) {
            let mut acc = y[0];
            for c in 2..n {
                acc = T::fma_ref(x[c], y[c], acc);
            }
            out.push(match metric {
                Metric::Eq10 => acc,
                Metric::Kl => -T::HALF * ((acc + x[1]) + T::from_usize(d)),
            });
        }
    }
    out
}

/// The kernel is bit-identical to the fma chain at every level (so every
/// level, blocking and thread count gives the same values).
fn check_kernel_exact<T: Elem>(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for d in [0, 1, 3, 16, 37] {
        for (np, nq) in [(1, 1), (3, 31), (9, 33), (13, 70)] {
            let (pm, pv) = random_side::<T>(&mut rng, np, d);
            let (qm, qv) = random_side::<T>(&mut rng, nq, d);
            let (p, q) = (var(np, d, &pm, &pv), var(nq, d, &qm, &qv));
            let index = T::index(&q);
            for metric in [Metric::Eq10, Metric::Kl] {
                let want = fma_chain(&p, &q, metric);
                for level in levels() {
                    let mut got = vec![T::NAN; np * nq];
                    T::scores(&index, &p, metric, &mut got, &SEQ.level(level)).unwrap();
                    for (ij, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            g.to_f64().to_bits() == w.to_f64().to_bits(),
                            "{level:?} {metric:?} d={d} entry {ij}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn kernel_is_the_fma_chain_bit_for_bit_f64() {
    check_kernel_exact::<f64>(1);
}

#[test]
fn kernel_is_the_fma_chain_bit_for_bit_f32() {
    check_kernel_exact::<f32>(2);
}

/// The best `top` of a full sort by (value, index): descending for Eq10,
/// ascending for KL, NaN last.
fn full_sort(vals: &[f64], metric: Metric, top: usize) -> Vec<usize> {
    let mut v: Vec<(usize, f64)> = vals.iter().copied().enumerate().collect();
    let key = |z: f64| if metric == Metric::Kl { -z } else { z };
    v.sort_by(|a, b| match (a.1.is_nan(), b.1.is_nan()) {
        (true, true) => a.0.cmp(&b.0),
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => key(b.1).partial_cmp(&key(a.1)).unwrap().then(a.0.cmp(&b.0)),
    });
    v.truncate(top);
    v.into_iter().map(|x| x.0).collect()
}

/// `top_k` against the reference: each hit's value is the reference value of
/// its document (within `SCORE_TOL · ε · scale`); the hits are the best
/// documents by the reference, up to that tolerance (a document left out is
/// not better than a hit by more than both tolerances); NaN last. Then, for
/// the exact tie order, against a full sort of `scores` (same kernel, so
/// this part checks the heap, not the values).
fn check_top_k<T: Elem>(
    index: &DocIndex<T>,
    nq: usize,
    q: (&[T], &[T]),
    docs: (&[T], &[T]),
    top: usize,
) {
    let (d, nd) = (index.dim(), index.len());
    let queries = var(nq, d, q.0, q.1);
    let (qw, dw) = ((widen(q.0), widen(q.1)), (widen(docs.0), widen(docs.1)));
    for metric in [Metric::Eq10, Metric::Kl] {
        let want = reference(metric, (nq, nd, d), (&qw.0, &qw.1), (&dw.0, &dw.1));
        let key = |v: f64| if metric == Metric::Kl { -v } else { v };
        let hits = T::top_k(index, &queries, top, metric, &SEQ).unwrap();
        assert_eq!(hits.per_query, top.min(nd));
        assert_eq!(hits.len(), if top.min(nd) == 0 { 0 } else { nq });
        let mut all = vec![T::ZERO; nq * nd];
        T::scores(index, &queries, metric, &mut all, &SEQ).unwrap();
        for i in 0..hits.len() {
            let (idx, val) = hits.row(i);
            let tol = |j: usize| SCORE_TOL * eps::<T>() * want[i][j].1;
            for (&j, v) in idx.iter().zip(val) {
                let (w, v) = (want[i][j].0, v.to_f64());
                assert!(
                    (v.is_nan() && w.is_nan()) || (v - w).abs() <= tol(j),
                    "{metric:?} query {i} doc {j}: {v} vs reference {w}"
                );
            }
            let worst = *idx.last().unwrap();
            for j in (0..nd).filter(|j| !idx.contains(j)) {
                let (w_out, w_in) = (want[i][j].0, want[i][worst].0);
                assert!(
                    w_out.is_nan() || key(w_out) <= key(w_in) + tol(j) + tol(worst),
                    "{metric:?} query {i}: doc {j} ({w_out}) left out, hit {worst} ({w_in})"
                );
            }
            let all_i: Vec<f64> = widen(&all[i * nd..][..nd]);
            assert_eq!(
                idx,
                &full_sort(&all_i, metric, top)[..],
                "{metric:?} query {i}"
            );
        }
    }
}

#[test]
fn top_k_matches_the_reference_random() {
    let mut rng = StdRng::seed_from_u64(5);
    for d in [0, 1, 5, 24] {
        for nd in [0, 1, 31, 32, 33, 200, 1000] {
            let (dm, dv) = random_side::<f32>(&mut rng, nd, d);
            let index = DocIndex::new(&var(nd, d, &dm, &dv)).unwrap();
            for nq in [1, 4, 17] {
                let (qm, qv) = random_side::<f32>(&mut rng, nq, d);
                for top in [0, 1, 10, nd + 3] {
                    check_top_k(&index, nq, (&qm, &qv), (&dm, &dv), top);
                }
            }
        }
    }
}

/// Many equal scores: a few distinct documents repeated (equal scores, so
/// ties decided by index), all documents equal, and NaN documents mixed in.
#[test]
fn top_k_adversarial_ties_and_nan() {
    let mut rng = StdRng::seed_from_u64(6);
    let d = 6;
    let (base_m, base_v) = random_side::<f64>(&mut rng, 3, d);
    let nd = 300;
    let mut dm = Vec::new();
    let mut dv = Vec::new();
    for j in 0..nd {
        let b = (j * 7 + j / 5) % 3;
        dm.extend_from_slice(&base_m[b * d..][..d]);
        dv.extend_from_slice(&base_v[b * d..][..d]);
    }
    let (qm, qv) = random_side::<f64>(&mut rng, 5, d);
    let q = var(5, d, &qm, &qv);
    let index = DocIndex::new(&var(nd, d, &dm, &dv)).unwrap();
    for top in [1, 10, 150, 299, 300] {
        check_top_k(&index, 5, (&qm, &qv), (&dm, &dv), top);
    }
    // all equal
    let same_m: Vec<f64> = (0..nd).flat_map(|_| base_m[..d].to_vec()).collect();
    let same_v: Vec<f64> = (0..nd).flat_map(|_| base_v[..d].to_vec()).collect();
    let index = DocIndex::new(&var(nd, d, &same_m, &same_v)).unwrap();
    check_top_k(&index, 5, (&qm, &qv), (&same_m, &same_v), 10);
    let hits = search::top_k(&index, &q, 10, Metric::Eq10, &SEQ).unwrap();
    assert_eq!(hits.row(0).0, &(0..10).collect::<Vec<_>>()[..]);
    // NaN documents rank last
    let mut nan_m = dm.clone();
    for j in [0, 5, 33, 100, 299] {
        nan_m[j * d] = f64::NAN;
    }
    let index = DocIndex::new(&var(nd, d, &nan_m, &dv)).unwrap();
    for top in [3, 296, 298, 300] {
        check_top_k(&index, 5, (&qm, &qv), (&nan_m, &dv), top);
    }
    let hits = search::top_k(&index, &q, 300, Metric::Kl, &SEQ).unwrap();
    assert_eq!(&hits.row(0).0[295..], &[0, 5, 33, 100, 299]);
}

/// Every SIMD level gives the hits of the scalar level.
#[test]
fn top_k_every_level_equals_scalar() {
    let mut rng = StdRng::seed_from_u64(8);
    for d in [3, 16, 50] {
        let nd = 517;
        let (dm, dv) = random_side::<f32>(&mut rng, nd, d);
        let (qm, qv) = random_side::<f32>(&mut rng, 11, d);
        let q = var(11, d, &qm, &qv);
        let index = DocIndex::new(&var(nd, d, &dm, &dv)).unwrap();
        for metric in [Metric::Eq10, Metric::Kl] {
            let scalar = SEQ.level(Level::Scalar);
            let want = search::top_k(&index, &q, 10, metric, &scalar).unwrap();
            for level in levels() {
                let got = search::top_k(&index, &q, 10, metric, &SEQ.level(level)).unwrap();
                assert_eq!(got, want, "{level:?}");
            }
        }
    }
}

/// Log-variance documents and queries index like their variances.
#[test]
fn log_var_inputs() {
    let mut rng = StdRng::seed_from_u64(12);
    let d = 9;
    let (dm, dv) = random_side::<f64>(&mut rng, 40, d);
    let (qm, qv) = random_side::<f64>(&mut rng, 3, d);
    let ln = |v: &[f64]| v.iter().map(|x| x.ln()).collect::<Vec<_>>();
    let (dl, ql) = (ln(&dv), ln(&qv));
    let a = DocIndex::new(&var(40, d, &dm, &dv)).unwrap();
    let b = DocIndex::new(&DiagGaussians::log_var(40, d, &dm, &dl).unwrap()).unwrap();
    let mut sa = vec![0.0; 120];
    let mut sb = vec![0.0; 120];
    search::scores(&a, &var(3, d, &qm, &qv), Metric::Kl, &mut sa, &SEQ).unwrap();
    let qlog = DiagGaussians::log_var(3, d, &qm, &ql).unwrap();
    search::scores(&b, &qlog, Metric::Kl, &mut sb, &SEQ).unwrap();
    for (x, y) in sa.iter().zip(&sb) {
        // exp(ln v) = v (1 + δ), |δ| ≲ 2ε·|ln v|: relative 1e-13 on O(10) terms
        assert!((x - y).abs() <= 1e-13 * (1.0 + x.abs()), "{x} vs {y}");
    }
}

#[test]
fn search_errors_name_the_argument_and_write_nothing() {
    let m = [0.0f32; 6];
    let v = [1.0f32; 6];
    let index = DocIndex::new(&var(2, 3, &m, &v)).unwrap();
    assert_eq!((index.len(), index.dim(), index.is_empty()), (2, 3, false));
    let wrong_dim = var(3, 2, &m, &v);
    let dim = Error::DimensionMismatch {
        what: "queries",
        expected: 3,
        found: 2,
    };
    assert_eq!(
        search::top_k(&index, &wrong_dim, 1, Metric::Kl, &SEQ),
        Err(dim)
    );
    let mut out = [7.5f32; 6];
    assert_eq!(
        search::scores(&index, &wrong_dim, Metric::Kl, &mut out, &SEQ),
        Err(dim)
    );
    assert_eq!(out, [7.5; 6]);
    let q = var(2, 3, &m, &v);
    assert_eq!(
        search::scores(&index, &q, Metric::Eq10, &mut out[..3], &SEQ),
        Err(Error::LengthMismatch {
            what: "out",
            expected: 4,
            found: 3
        })
    );
    assert_eq!(out, [7.5; 6]);
    // search has one kernel: every forced kernel but Auto is refused
    for kernel in [Kernel::Scalar, Kernel::Lanes, Kernel::Blocked] {
        let exec = SEQ.kernel(kernel);
        let r = search::scores(&index, &q, Metric::Eq10, &mut out[..4], &exec);
        assert!(
            matches!(r, Err(Error::Unsupported { what: "kernel", .. })),
            "{kernel:?}"
        );
        let r = search::top_k(&index, &q, 1, Metric::Eq10, &exec);
        assert!(
            matches!(r, Err(Error::Unsupported { what: "kernel", .. })),
            "{kernel:?}"
        );
    }
    assert_eq!(out, [7.5; 6]);
    // a forced level the host lacks
    match Level::all().iter().find(|l| !l.is_available()) {
        Some(&level) => {
            let exec = SEQ.level(level);
            let r = search::scores(&index, &q, Metric::Eq10, &mut out[..4], &exec);
            assert_eq!(r, Err(Error::LevelUnavailable { level }));
            let r = search::top_k(&index, &q, 1, Metric::Eq10, &exec);
            assert_eq!(r, Err(Error::LevelUnavailable { level }));
            assert_eq!(out, [7.5; 6]);
        }
        None => eprintln!("skipping the unavailable-level check: this host has every level"),
    }
    // out-of-range rows are empty, not a panic
    let hits = search::top_k(&index, &var(1, 3, &m[..3], &v[..3]), 5, Metric::Kl, &SEQ).unwrap();
    assert_eq!(hits.per_query, 2);
    assert_eq!(hits.row(7), (&[][..], &[][..]));
}

/// Multi-core search gives the serial hits and scores: many queries (split by
/// query) and few (split by documents, heaps merged), with many ties, for
/// several task counts (`0`: one per thread of the pool).
#[cfg(feature = "rayon")]
#[test]
fn parallel_equals_serial() {
    use gaussian_kl::Par;
    let mut rng = StdRng::seed_from_u64(13);
    let (d, nd) = (8, 3000);
    let (base_m, base_v) = random_side::<f32>(&mut rng, 50, d);
    let mut dm = Vec::new();
    let mut dv = Vec::new();
    for j in 0..nd {
        let b = (j * 31) % 50;
        dm.extend_from_slice(&base_m[b * d..][..d]);
        dv.extend_from_slice(&base_v[b * d..][..d]);
    }
    let index = DocIndex::new(&var(nd, d, &dm, &dv)).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    for nq in [1, 3, 8, 100] {
        let (qm, qv) = random_side::<f32>(&mut rng, nq, d);
        let q = var(nq, d, &qm, &qv);
        for metric in [Metric::Eq10, Metric::Kl] {
            let mut serial_scores = vec![0.0f32; nq * nd];
            search::scores(&index, &q, metric, &mut serial_scores, &SEQ).unwrap();
            for tasks in [0, 1, 2, 3, 7] {
                let exec = SEQ.par(Par::Rayon(tasks));
                for top in [1, 10, 200] {
                    let serial = search::top_k(&index, &q, top, metric, &SEQ).unwrap();
                    let par = pool.install(|| search::top_k(&index, &q, top, metric, &exec));
                    assert_eq!(
                        par.unwrap(),
                        serial,
                        "nq={nq} top={top} tasks={tasks} {metric:?}"
                    );
                }
                let mut par_scores = vec![f32::NAN; nq * nd];
                pool.install(|| search::scores(&index, &q, metric, &mut par_scores, &exec))
                    .unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&par_scores),
                    bits(&serial_scores),
                    "nq={nq} tasks={tasks}"
                );
            }
        }
    }
}

/// Found by fuzzing: an empty index with a huge `d` overflowed the panel
/// length `(2d + 1) · PANEL` (a panic with overflow checks on).
#[test]
fn empty_index_with_huge_dimension_is_an_error() {
    for d in [usize::MAX / 2, usize::MAX / 16, usize::MAX / 32 + 1] {
        let r = DocIndex::<f64>::new(&var(0, d, &[], &[]));
        assert!(matches!(r, Err(Error::DimensionTooLarge { .. })), "d = {d}");
        let r = DocIndex::<f32>::new(&DiagGaussians::log_var(0, d, &[], &[]).unwrap());
        assert!(matches!(r, Err(Error::DimensionTooLarge { .. })), "d = {d}");
    }
    // The largest d whose panel fits still builds an (empty) index.
    let d = (usize::MAX / 16 - 1) / 2;
    let index = DocIndex::<f64>::new(&var(0, d, &[], &[])).unwrap();
    let mut out: [f64; 0] = [];
    search::scores(&index, &var(0, d, &[], &[]), Metric::Kl, &mut out, &SEQ).unwrap();
}

/// Found by fuzzing: with `d = 0` the slices are empty whatever `n` is, and
/// an absurd `n` overflowed an allocation (capacity overflow) instead of
/// returning an error.
#[test]
fn zero_dimension_with_absurd_counts() {
    let r = DocIndex::<f64>::new(&var(usize::MAX / 4, 0, &[], &[]));
    assert!(matches!(r, Err(Error::DimensionTooLarge { .. })));
    let index = DocIndex::<f64>::new(&var(3, 0, &[], &[])).unwrap();
    let huge = var::<f64>(usize::MAX / 8, 0, &[], &[]);
    for metric in [Metric::Eq10, Metric::Kl] {
        let r = search::top_k(&index, &huge, 1, metric, &SEQ);
        assert!(matches!(r, Err(Error::DimensionTooLarge { .. })));
        // No hit asked for: nothing to allocate, an empty result.
        let hits = search::top_k(&index, &huge, 0, metric, &SEQ).unwrap();
        assert!(hits.is_empty() && hits.per_query == 0 && hits.row(0).0.is_empty());
    }
    let empty = DocIndex::<f64>::new(&var(0, 0, &[], &[])).unwrap();
    let mut out: [f64; 0] = [];
    search::scores(&empty, &huge, Metric::Kl, &mut out, &SEQ).unwrap();
    // d = 0: every KL is 0.
    let hits = search::top_k(&index, &var(2, 0, &[], &[]), 2, Metric::Kl, &SEQ).unwrap();
    assert_eq!(hits.index, [0, 1, 0, 1]);
    assert_eq!(hits.value, [0.0; 4]);
}
