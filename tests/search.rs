//! Top-k retrieval: the fused kernel against the direct formulas and a
//! scalar fused-multiply-add reference, top-k against a full sort, and every
//! SIMD level against the scalar one.

#![cfg(feature = "std")]

use gaussian_kl::Error;
use gaussian_kl::diag::{self, DiagBatch, Rep, ScoreReal};
use gaussian_kl::search::{DocIndex, Metric};
use gaussian_kl::simd::Level;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random_batch<T: ScoreReal>(rng: &mut StdRng, n: usize, k: usize) -> (Vec<T>, Vec<T>) {
    let m = (0..n * k)
        .map(|_| T::from_f64(rng.random_range(-2.0..2.0)))
        .collect();
    let v = (0..n * k)
        .map(|_| T::from_f64(rng.random_range(0.05..5.0)))
        .collect();
    (m, v)
}

/// The scalar reference of the kernel: the compact representations from
/// [`diag::query_rep`] / [`diag::doc_rep`], and the dot product as a chain of
/// fused multiply-adds starting at `γ_D`, in index order.
fn fma_reference<T: ScoreReal + FmaRef>(
    q: DiagBatch<'_, T>,
    d: DiagBatch<'_, T>,
    metric: Metric,
) -> Vec<T> {
    let k = q.k;
    let n = Rep::CompactFull.len(k);
    let mut qr = vec![T::ZERO; q.n * n];
    let mut dr = vec![T::ZERO; d.n * n];
    diag::query_rep(Rep::CompactFull, q, &mut qr).unwrap();
    diag::doc_rep(Rep::CompactFull, d, &mut dr).unwrap();
    let mut out = Vec::with_capacity(q.n * d.n);
    for i in 0..q.n {
        let a = &qr[i * n..][..n];
        for j in 0..d.n {
            let b = &dr[j * n..][..n];
            let mut acc = b[0];
            for p in 2..n {
                acc = T::fma_ref(a[p], b[p], acc);
            }
            out.push(match metric {
                Metric::Eq10 => acc,
                Metric::Kl => -T::HALF * ((acc + a[1]) + T::from_usize(k)),
            });
        }
    }
    out
}

trait FmaRef {
    fn fma_ref(a: Self, b: Self, c: Self) -> Self;
}
impl FmaRef for f32 {
    fn fma_ref(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}
impl FmaRef for f64 {
    fn fma_ref(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
}

fn check_kernel_exact<T: ScoreReal + FmaRef>(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for k in [0, 1, 3, 16, 37] {
        for (nq, nd) in [(1, 1), (3, 31), (9, 33), (13, 70)] {
            let (qm, qv) = random_batch::<T>(&mut rng, nq, k);
            let (dm, dv) = random_batch::<T>(&mut rng, nd, k);
            let (q, d) = (
                DiagBatch::var(nq, k, &qm, &qv),
                DiagBatch::var(nd, k, &dm, &dv),
            );
            let index = DocIndex::new(d).unwrap();
            for metric in [Metric::Eq10, Metric::Kl] {
                let want = fma_reference(q, d, metric);
                for level in Level::all().iter().copied() {
                    if !level.is_available() {
                        eprintln!("skipping {level:?}: not available on this machine/build");
                        continue;
                    }
                    let mut got = vec![T::NAN; nq * nd];
                    index.scores_at(level, q, metric, &mut got).unwrap();
                    for (ij, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            g.to_f64().to_bits() == w.to_f64().to_bits(),
                            "{level:?} {metric:?} k={k} nq={nq} nd={nd} entry {ij}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}

/// The kernel is bit-identical to the scalar fma chain, at every level.
#[test]
fn kernel_is_the_fma_chain_bit_for_bit_f64() {
    check_kernel_exact::<f64>(1);
}

#[test]
fn kernel_is_the_fma_chain_bit_for_bit_f32() {
    check_kernel_exact::<f32>(2);
}

/// Against the direct f64 formulas: the dot product is a difference of large
/// terms, so the bound is absolute, `4 (2k + 2) ε Σ |qᵢ dᵢ|`, with `ε` of the
/// element type (f32 inputs are first rounded, and the reference uses them).
#[test]
fn scores_match_direct_formulas() {
    let mut rng = StdRng::seed_from_u64(3);
    for k in [1, 16, 128] {
        let (nq, nd) = (5, 67);
        let (qm, qv) = random_batch::<f32>(&mut rng, nq, k);
        let (dm, dv) = random_batch::<f32>(&mut rng, nd, k);
        let up = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let (qm64, qv64, dm64, dv64) = (up(&qm), up(&qv), up(&dm), up(&dv));
        let (q64, d64) = (
            DiagBatch::var(nq, k, &qm64, &qv64),
            DiagBatch::var(nd, k, &dm64, &dv64),
        );
        let mut kl = vec![0.0; nq * nd];
        let mut eq10 = vec![0.0; nq * nd];
        diag::pairwise_kl(q64, d64, &mut kl).unwrap();
        diag::pairwise_eq10(q64, d64, &mut eq10).unwrap();
        // magnitude Σ|qᵢ dᵢ| from the f64 representation
        let n = Rep::CompactFull.len(k);
        let mut qr = vec![0.0; nq * n];
        let mut dr = vec![0.0; nd * n];
        diag::query_rep(Rep::CompactFull, q64, &mut qr).unwrap();
        diag::doc_rep(Rep::CompactFull, d64, &mut dr).unwrap();
        let mag = |i: usize, j: usize| -> f64 {
            qr[i * n..][..n]
                .iter()
                .zip(&dr[j * n..][..n])
                .map(|(a, b)| (a * b).abs())
                .sum()
        };
        let i64 = DocIndex::new(d64).unwrap();
        let i32 = DocIndex::new(DiagBatch::var(nd, k, &dm, &dv)).unwrap();
        let q32 = DiagBatch::var(nq, k, &qm, &qv);
        for (metric, want) in [(Metric::Eq10, &eq10), (Metric::Kl, &kl)] {
            let mut g64 = vec![0.0; nq * nd];
            let mut g32 = vec![0.0f32; nq * nd];
            i64.scores(q64, metric, &mut g64).unwrap();
            i32.scores(q32, metric, &mut g32).unwrap();
            for i in 0..nq {
                for j in 0..nd {
                    let ij = i * nd + j;
                    let m = mag(i, j);
                    let t64 = 4.0 * (2 * k + 2) as f64 * f64::EPSILON * m;
                    let t32 = 4.0 * (2 * k + 2) as f64 * f32::EPSILON as f64 * m;
                    assert!((g64[ij] - want[ij]).abs() <= t64, "{metric:?} f64 k={k}");
                    assert!(
                        (g32[ij] as f64 - want[ij]).abs() <= t32,
                        "{metric:?} f32 k={k}"
                    );
                }
            }
        }
    }
}

/// The best `top` of a full sort by (value, index): descending for Eq10,
/// ascending for KL, NaN last.
fn full_sort<T: ScoreReal>(vals: &[T], metric: Metric, top: usize) -> Vec<(usize, T)> {
    let mut v: Vec<(usize, T)> = vals.iter().copied().enumerate().collect();
    v.sort_by(|a, b| {
        let (x, y) = (a.1.to_f64(), b.1.to_f64());
        let key = |z: f64| if metric == Metric::Kl { -z } else { z };
        match (x.is_nan(), y.is_nan()) {
            (true, true) => a.0.cmp(&b.0),
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => key(y).partial_cmp(&key(x)).unwrap().then(a.0.cmp(&b.0)),
        }
    });
    v.truncate(top);
    v
}

fn check_top_k<T: ScoreReal>(index: &DocIndex<T>, q: DiagBatch<'_, T>, top: usize) {
    let nd = index.len();
    for metric in [Metric::Eq10, Metric::Kl] {
        let mut all = vec![T::ZERO; q.n * nd];
        index.scores(q, metric, &mut all).unwrap();
        let hits = index.top_k(q, top, metric).unwrap();
        assert_eq!(hits.per_query, top.min(nd));
        assert_eq!(hits.len(), if top.min(nd) == 0 { 0 } else { q.n });
        for i in 0..q.n {
            let want = full_sort(&all[i * nd..][..nd], metric, top);
            let (idx, val) = hits.row(i);
            let got: Vec<(usize, T)> = idx.iter().copied().zip(val.iter().copied()).collect();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.0, w.0, "{metric:?} query {i}: {got:?} vs {want:?}");
                assert_eq!(g.1.to_f64().to_bits(), w.1.to_f64().to_bits());
            }
        }
    }
}

#[test]
fn top_k_equals_full_sort_random() {
    let mut rng = StdRng::seed_from_u64(5);
    for k in [0, 1, 5, 24] {
        for nd in [0, 1, 31, 32, 33, 200, 1000] {
            let (dm, dv) = random_batch::<f32>(&mut rng, nd, k);
            let index = DocIndex::new(DiagBatch::var(nd, k, &dm, &dv)).unwrap();
            for nq in [1, 4, 17] {
                let (qm, qv) = random_batch::<f32>(&mut rng, nq, k);
                for top in [0, 1, 10, nd + 3] {
                    check_top_k(&index, DiagBatch::var(nq, k, &qm, &qv), top);
                }
            }
        }
    }
}

/// Many equal scores: a few distinct documents repeated (equal scores, so
/// ties decided by index), all documents equal, and NaN documents mixed in.
#[test]
fn top_k_equals_full_sort_adversarial() {
    let mut rng = StdRng::seed_from_u64(6);
    let k = 6;
    let (base_m, base_v) = random_batch::<f64>(&mut rng, 3, k);
    let nd = 300;
    let mut dm = Vec::new();
    let mut dv = Vec::new();
    for j in 0..nd {
        let b = (j * 7 + j / 5) % 3;
        dm.extend_from_slice(&base_m[b * k..][..k]);
        dv.extend_from_slice(&base_v[b * k..][..k]);
    }
    let (qm, qv) = random_batch::<f64>(&mut rng, 5, k);
    let q = DiagBatch::var(5, k, &qm, &qv);
    let index = DocIndex::new(DiagBatch::var(nd, k, &dm, &dv)).unwrap();
    for top in [1, 10, 150, 299, 300] {
        check_top_k(&index, q, top);
    }
    // all equal
    let same_m: Vec<f64> = (0..nd).flat_map(|_| base_m[..k].to_vec()).collect();
    let same_v: Vec<f64> = (0..nd).flat_map(|_| base_v[..k].to_vec()).collect();
    let index = DocIndex::new(DiagBatch::var(nd, k, &same_m, &same_v)).unwrap();
    check_top_k(&index, q, 10);
    let hits = index.top_k(q, 10, Metric::Eq10).unwrap();
    assert_eq!(hits.row(0).0, &(0..10).collect::<Vec<_>>()[..]);
    // NaN documents rank last
    let mut nan_m = dm.clone();
    for j in [0, 5, 33, 100, 299] {
        nan_m[j * k] = f64::NAN;
    }
    let index = DocIndex::new(DiagBatch::var(nd, k, &nan_m, &dv)).unwrap();
    for top in [3, 296, 298, 300] {
        check_top_k(&index, q, top);
    }
    let hits = index.top_k(q, 300, Metric::Kl).unwrap();
    assert_eq!(&hits.row(0).0[295..], &[0, 5, 33, 100, 299]);
}

/// Every SIMD level gives the same hits as the scalar level.
#[test]
fn top_k_every_level_equals_scalar() {
    let mut rng = StdRng::seed_from_u64(8);
    for k in [3, 16, 50] {
        let nd = 517;
        let (dm, dv) = random_batch::<f32>(&mut rng, nd, k);
        let (qm, qv) = random_batch::<f32>(&mut rng, 11, k);
        let q = DiagBatch::var(11, k, &qm, &qv);
        let index = DocIndex::new(DiagBatch::var(nd, k, &dm, &dv)).unwrap();
        for metric in [Metric::Eq10, Metric::Kl] {
            let want = index.top_k_at(Level::Scalar, q, 10, metric).unwrap();
            for level in Level::all().iter().copied() {
                if !level.is_available() {
                    eprintln!("skipping {level:?}: not available on this machine/build");
                    continue;
                }
                assert_eq!(
                    index.top_k_at(level, q, 10, metric).unwrap(),
                    want,
                    "{level:?}"
                );
            }
        }
    }
}

/// Log-variance documents and queries index like their variances.
#[test]
fn log_var_inputs() {
    let mut rng = StdRng::seed_from_u64(12);
    let k = 9;
    let (dm, dv) = random_batch::<f64>(&mut rng, 40, k);
    let (qm, qv) = random_batch::<f64>(&mut rng, 3, k);
    let ln = |v: &[f64]| v.iter().map(|x| x.ln()).collect::<Vec<_>>();
    let (dl, ql) = (ln(&dv), ln(&qv));
    let a = DocIndex::new(DiagBatch::var(40, k, &dm, &dv)).unwrap();
    let b = DocIndex::new(DiagBatch::log_var(40, k, &dm, &dl)).unwrap();
    let mut sa = vec![0.0; 120];
    let mut sb = vec![0.0; 120];
    a.scores(DiagBatch::var(3, k, &qm, &qv), Metric::Kl, &mut sa)
        .unwrap();
    b.scores(DiagBatch::log_var(3, k, &qm, &ql), Metric::Kl, &mut sb)
        .unwrap();
    for (x, y) in sa.iter().zip(&sb) {
        // exp(ln v) = v (1 + δ), |δ| ≲ 2ε·|ln v|: relative 1e-13 on O(10) terms
        assert!((x - y).abs() <= 1e-13 * (1.0 + x.abs()), "{x} vs {y}");
    }
}

#[test]
fn search_errors() {
    let m = [0.0f32; 6];
    let v = [1.0f32; 6];
    assert_eq!(
        DocIndex::new(DiagBatch::var(2, 3, &m, &[1.0, 1.0, 1.0, 1.0, -2.0, 1.0])).unwrap_err(),
        Error::NonPositiveVariance {
            what: "document spread",
            index: 4
        }
    );
    assert_eq!(
        DocIndex::new(DiagBatch::var(2, 3, &m[..5], &v)).unwrap_err(),
        Error::LengthMismatch {
            what: "document mean",
            expected: 6,
            found: 5
        }
    );
    let index = DocIndex::new(DiagBatch::var(2, 3, &m, &v)).unwrap();
    assert_eq!((index.len(), index.dim(), index.is_empty()), (2, 3, false));
    assert_eq!(
        index
            .top_k(DiagBatch::var(3, 2, &m, &v), 1, Metric::Kl)
            .unwrap_err(),
        Error::DimensionMismatch {
            what: "queries",
            expected: 3,
            found: 2
        }
    );
    assert_eq!(
        index
            .top_k(
                DiagBatch::var(1, 3, &m[..3], &[0.0, 1.0, 1.0]),
                1,
                Metric::Kl
            )
            .unwrap_err(),
        Error::NonPositiveVariance {
            what: "query spread",
            index: 0
        }
    );
    let mut out = [0.0f32; 3];
    assert_eq!(
        index
            .scores(DiagBatch::var(2, 3, &m, &v), Metric::Eq10, &mut out)
            .unwrap_err(),
        Error::LengthMismatch {
            what: "out",
            expected: 4,
            found: 3
        }
    );
    // out-of-range rows are empty, not a panic
    let hits = index
        .top_k(DiagBatch::var(1, 3, &m[..3], &v[..3]), 5, Metric::Kl)
        .unwrap();
    assert_eq!(hits.per_query, 2);
    assert_eq!(hits.row(7), (&[][..], &[][..]));
}

/// Multi-core search gives the serial hits: many queries (split by query)
/// and few (split by documents, heaps merged), with many ties.
#[cfg(feature = "rayon")]
#[test]
fn parallel_equals_serial() {
    let mut rng = StdRng::seed_from_u64(13);
    let (k, nd) = (8, 3000);
    let (base_m, base_v) = random_batch::<f32>(&mut rng, 50, k);
    let mut dm = Vec::new();
    let mut dv = Vec::new();
    for j in 0..nd {
        let b = (j * 31) % 50;
        dm.extend_from_slice(&base_m[b * k..][..k]);
        dv.extend_from_slice(&base_v[b * k..][..k]);
    }
    let index = DocIndex::new(DiagBatch::var(nd, k, &dm, &dv)).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    for nq in [1, 3, 8, 100] {
        let (qm, qv) = random_batch::<f32>(&mut rng, nq, k);
        let q = DiagBatch::var(nq, k, &qm, &qv);
        for metric in [Metric::Eq10, Metric::Kl] {
            for top in [1, 10, 200] {
                let serial = index.top_k(q, top, metric).unwrap();
                let par = pool.install(|| index.par_top_k(q, top, metric)).unwrap();
                assert_eq!(par, serial, "nq={nq} top={top} {metric:?}");
            }
        }
    }
}

/// Found by fuzzing: an empty index with a huge `k` overflowed the panel
/// length `(2k + 1) · PANEL` (a panic with overflow checks on).
#[test]
fn empty_index_with_huge_dimension_is_an_error() {
    for k in [usize::MAX / 2, usize::MAX / 16, usize::MAX / 32 + 1] {
        let r = DocIndex::<f64>::new(DiagBatch::var(0, k, &[], &[]));
        assert!(matches!(r, Err(Error::DimensionTooLarge { .. })), "k = {k}");
        let r = DocIndex::<f32>::new(DiagBatch::log_var(0, k, &[], &[]));
        assert!(matches!(r, Err(Error::DimensionTooLarge { .. })), "k = {k}");
    }
    // The largest k whose panel fits still builds an (empty) index.
    let k = (usize::MAX / 16 - 1) / 2;
    let index = DocIndex::<f64>::new(DiagBatch::var(0, k, &[], &[])).unwrap();
    let mut out: [f64; 0] = [];
    index
        .scores(DiagBatch::var(0, k, &[], &[]), Metric::Kl, &mut out)
        .unwrap();
}

/// Found by fuzzing: with `k = 0` the slices are empty whatever `n` is, and
/// an absurd `n` overflowed an allocation (capacity overflow) instead of
/// returning an error.
#[test]
fn zero_dimension_with_absurd_counts() {
    let r = DocIndex::<f64>::new(DiagBatch::var(usize::MAX / 4, 0, &[], &[]));
    assert!(matches!(r, Err(Error::DimensionTooLarge { .. })));
    let index = DocIndex::<f64>::new(DiagBatch::var(3, 0, &[], &[])).unwrap();
    let huge = DiagBatch::var(usize::MAX / 8, 0, &[], &[]);
    for metric in [Metric::Eq10, Metric::Kl] {
        let r = index.top_k(huge, 1, metric);
        assert!(matches!(r, Err(Error::DimensionTooLarge { .. })));
        // No hit asked for: nothing to allocate, an empty result.
        let hits = index.top_k(huge, 0, metric).unwrap();
        assert!(hits.is_empty() && hits.per_query == 0 && hits.row(0).0.is_empty());
    }
    let empty = DocIndex::<f64>::new(DiagBatch::var(0, 0, &[], &[])).unwrap();
    let mut out: [f64; 0] = [];
    empty.scores(huge, Metric::Kl, &mut out).unwrap();
    // k = 0: every KL is 0.
    let hits = index
        .top_k(DiagBatch::var(2, 0, &[], &[]), 2, Metric::Kl)
        .unwrap();
    assert_eq!(hits.index, [0, 1, 0, 1]);
    assert_eq!(hits.value, [0.0; 4]);
}
