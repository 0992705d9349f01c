//! The blocked top-k scoring kernel of `search` at every edge of its
//! blocking: documents around the panel width (32 `f32`, 16 `f64`), queries
//! around the register block (14 rows on AVX-512, 6 on AVX2) and the group
//! of 64 queries, dimensions around the chunk of 64 rows (`2d` = 64, 66,
//! 130), every level the host has plus pulp's emulated widths. Values are
//! checked against an independent f64 loop over the KL and Eq. 10 formulas,
//! bit for bit across levels, and `top_k` against a full sort of `scores`
//! (ties by index, NaN last).

#![cfg(feature = "std")]

use gaussian_kl::search::{self, DocIndex, Hits, Metric};
use gaussian_kl::simd::Level;
use gaussian_kl::{DiagGaussians, Error, Exec, Real};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Ordering;

/// The search functions take the crate-internal element trait; generic
/// helpers reach them through this one.
trait Elem: Real {
    /// Documents per panel of the index (128 bytes).
    const DOCS_PER_PANEL: usize;
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
    ($t:ty, $panel:expr) => {
        impl Elem for $t {
            const DOCS_PER_PANEL: usize = $panel;
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
elem!(f32, 32);
elem!(f64, 16);

const SEQ: Exec = Exec::new();

/// The levels the host has (with `emulated-levels`, pulp's 128/256/512-bit
/// emulations too); the others are printed as skipped.
fn levels() -> Vec<Level> {
    Level::all()
        .iter()
        .copied()
        .filter(|l| {
            let ok = l.is_available();
            if !ok {
                eprintln!("SKIPPED {l:?}: not available on this machine/build");
            }
            ok
        })
        .collect()
}

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

/// The independent reference, a plain f64 loop over the formulas:
/// `(value, scale)` per (query, document), `scale` the sum of the magnitudes
/// of the terms of the compact dot product the kernel computes (plus
/// `Σ |log σ²_Q|` and `d` for the KL, the terms it adds).
fn reference(
    metric: Metric,
    (nq, nd, d): (usize, usize, usize),
    q: (&[f64], &[f64]),
    doc: (&[f64], &[f64]),
) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(nq * nd);
    for i in 0..nq {
        for j in 0..nd {
            let (mut kl, mut eq10, mut scale, mut gp) = (0.0, 0.0, 0.0, 0.0);
            for c in 0..d {
                let (mp, vp) = (q.0[i * d + c], q.1[i * d + c]);
                let (mq, vq) = (doc.0[j * d + c], doc.1[j * d + c]);
                let r = (vp + (mp - mq) * (mp - mq)) / vq;
                kl += 0.5 * (vq.ln() - vp.ln() - 1.0 + r);
                eq10 -= vq.ln() + r;
                scale += vq.ln().abs() + mq * mq / vq;
                scale += (vp + mp * mp) / vq + (2.0 * mp * mq / vq).abs();
                gp += vp.ln().abs();
            }
            out.push(match metric {
                Metric::Kl => (kl, scale + gp + d as f64),
                Metric::Eq10 => (eq10, scale),
            });
        }
    }
    out
}

fn widen<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

/// `tests/suite/search.rs` measured the worst `|value − reference| / (ε · scale)`
/// of this kernel at 6.9 (f64) and 7.2 (f32), at d = 128; the chunked
/// blocking changes no rounding (bit-identical values). 10× that, as there.
/// A wrong or missing term (a row skipped at a chunk edge, a lane of the
/// wrong document) is off by `O(scale)`, a ratio of `O(1/ε)`.
const SCORE_TOL: f64 = 70.0;

/// The best `top` of `vals` by a full sort: descending score (Eq10) or
/// ascending KL, ties by index, NaN last.
fn full_sort(vals: &[f64], metric: Metric, top: usize) -> Vec<usize> {
    let key = |z: f64| if metric == Metric::Kl { -z } else { z };
    let mut v: Vec<(usize, f64)> = vals.iter().copied().enumerate().collect();
    v.sort_by(|a, b| match (a.1.is_nan(), b.1.is_nan()) {
        (true, true) => a.0.cmp(&b.0),
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => key(b.1).partial_cmp(&key(a.1)).unwrap().then(a.0.cmp(&b.0)),
    });
    v.truncate(top);
    v.into_iter().map(|x| x.0).collect()
}

fn bits<T: Real>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}

/// Every check of one case: `scores` at every level bit-identical to the
/// first level's and within `SCORE_TOL · ε · scale` of the reference
/// (NaN where the reference is); `top_k` for k = 1, 10, `nd + 3` at every
/// level identical to the first level's, equal to a full sort of `scores`,
/// with the values of `scores`.
fn check_case<T: Elem>((nq, nd, d): (usize, usize, usize), q: (&[T], &[T]), doc: (&[T], &[T])) {
    let index = T::index(&var(nd, d, doc.0, doc.1));
    let queries = var(nq, d, q.0, q.1);
    let (qw, dw) = ((widen(q.0), widen(q.1)), (widen(doc.0), widen(doc.1)));
    let eps = T::EPSILON.to_f64();
    for metric in [Metric::Eq10, Metric::Kl] {
        let want = reference(metric, (nq, nd, d), (&qw.0, &qw.1), (&dw.0, &dw.1));
        let mut first: Option<(Vec<T>, Vec<Hits<T>>)> = None;
        for level in levels() {
            let exec = SEQ.level(level);
            let mut got = vec![T::NAN; nq * nd];
            T::scores(&index, &queries, metric, &mut got, &exec).unwrap();
            let case = format!("{level:?} {metric:?} nq={nq} nd={nd} d={d}");
            for (ij, (g, &(w, scale))) in got.iter().zip(&want).enumerate() {
                let g = g.to_f64();
                let ok = if w.is_nan() {
                    g.is_nan()
                } else {
                    (g - w).abs() <= SCORE_TOL * eps * scale
                };
                assert!(ok, "{case} entry {ij}: {g} vs reference {w}");
            }
            let hits: Vec<Hits<T>> = [1, 10, nd + 3]
                .iter()
                .map(|&k| T::top_k(&index, &queries, k, metric, &exec).unwrap())
                .collect();
            for (h, k) in hits.iter().zip([1, 10, nd + 3]) {
                assert_eq!(h.per_query, k.min(nd), "{case} k={k}");
                for i in 0..h.len() {
                    let row = &got[i * nd..(i + 1) * nd];
                    let (idx, val) = h.row(i);
                    assert_eq!(
                        idx,
                        &full_sort(&widen(row), metric, k)[..],
                        "{case} k={k} q={i}"
                    );
                    let from_scores: Vec<T> = idx.iter().map(|&j| row[j]).collect();
                    assert_eq!(bits(val), bits(&from_scores), "{case} k={k} q={i}");
                }
            }
            match &first {
                None => first = Some((got, hits)),
                Some((g0, h0)) => {
                    assert_eq!(bits(&got), bits(g0), "{case}: scores differ across levels");
                    for (a, b) in hits.iter().zip(h0) {
                        assert_eq!(a.index, b.index, "{case}: hits differ across levels");
                        assert_eq!(bits(&a.value), bits(&b.value), "{case}");
                    }
                }
            }
        }
    }
}

fn edges<T: Elem>(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let p = T::DOCS_PER_PANEL;
    // 2d = 2, 64 (one chunk), 66 (a chunk and 2 rows), 130 (two and 2).
    for d in [1, 32, 33, 65] {
        for nd in [0, 1, p - 1, p, p + 1, 3 * p + 5] {
            // Register blocks of 14 (AVX-512) and 6 (AVX2), the group of 64
            // (the largest sizes only at the smaller d: debug builds).
            for nq in [1, 6, 7, 14, 15, 29, 64, 65] {
                if d > 32 && nq > 29 {
                    continue;
                }
                let (qm, qv) = random_side::<T>(&mut rng, nq, d);
                let (dm, dv) = random_side::<T>(&mut rng, nd, d);
                check_case((nq, nd, d), (&qm, &qv), (&dm, &dv));
            }
        }
    }
}

#[test]
fn every_edge_f32() {
    edges::<f32>(11);
}

#[test]
fn every_edge_f64() {
    edges::<f64>(12);
}

/// d = 0: no rows to score, every value is `γ` alone (0): all documents tie,
/// ranked by index.
#[test]
fn zero_dimension() {
    for nd in [0, 1, 33, 70] {
        check_case::<f32>((15, nd, 0), (&[], &[]), (&[], &[]));
        check_case::<f64>((15, nd, 0), (&[], &[]), (&[], &[]));
    }
}

/// Copies of one document at indices spread over several panels, better than
/// every other document: they take the first places in index order, at
/// every level, for every k that cuts the run of ties.
fn ties<T: Elem>() {
    let mut rng = StdRng::seed_from_u64(21);
    let (nq, d, nd) = (17, 5, 3 * T::DOCS_PER_PANEL + 7);
    let (qm, qv) = random_side::<T>(&mut rng, nq, d);
    let (mut dm, mut dv) = random_side::<T>(&mut rng, nd, d);
    let copies = [
        2,
        T::DOCS_PER_PANEL - 1,
        T::DOCS_PER_PANEL,
        2 * T::DOCS_PER_PANEL + 3,
        nd - 1,
    ];
    for &j in &copies {
        for c in 0..d {
            // Queries' means are in ±2 and variances up to 5: a document
            // at the origin with variance 3 beats the random ones for most.
            dm[j * d + c] = T::ZERO;
            dv[j * d + c] = T::from_f64(3.0);
        }
    }
    check_case((nq, nd, d), (&qm, &qv), (&dm, &dv));
    let index = T::index(&var(nd, d, &dm, &dv));
    let queries = var(nq, d, &qm, &qv);
    for level in levels() {
        for k in [2, 4, 5] {
            let hits = T::top_k(&index, &queries, k, Metric::Kl, &SEQ.level(level)).unwrap();
            for i in 0..nq {
                let (idx, val) = hits.row(i);
                let tied: Vec<usize> = idx
                    .iter()
                    .zip(val)
                    .filter(|&(_, v)| v.to_f64().to_bits() == val[0].to_f64().to_bits())
                    .map(|(&j, _)| j)
                    .collect();
                let mut sorted = tied.clone();
                sorted.sort_unstable();
                assert_eq!(tied, sorted, "{level:?} k={k} query {i}: ties not by index");
            }
        }
    }
}

#[test]
fn ties_rank_by_index_f32() {
    ties::<f32>();
}

#[test]
fn ties_rank_by_index_f64() {
    ties::<f64>();
}

/// Nearly equal documents (means a few ulps apart) against queries with a
/// large `Σ log σ²_Q`: many raw scores differ while their KLs round equal,
/// the case where skipping a tile row on the raw score could go wrong.
fn near_ties<T: Elem>() {
    let mut rng = StdRng::seed_from_u64(31);
    let (nq, d, nd) = (9, 3, 2 * T::DOCS_PER_PANEL + 9);
    let qm: Vec<T> = (0..nq * d)
        .map(|_| T::from_f64(rng.random_range(-0.1..0.1)))
        .collect();
    let qv: Vec<T> = (0..nq * d)
        .map(|_| T::from_f64(rng.random_range(1e3..1e4)))
        .collect();
    let dm: Vec<T> = (0..nd * d)
        .map(|x| T::from_f64(1.0 + (x % 7) as f64 * 4.0 * T::EPSILON.to_f64()))
        .collect();
    let dv = vec![T::ONE; nd * d];
    check_case((nq, nd, d), (&qm, &qv), (&dm, &dv));
}

#[test]
fn near_ties_f32() {
    near_ties::<f32>();
}

#[test]
fn near_ties_f64() {
    near_ties::<f64>();
}

/// NaN means: a NaN document scores NaN for every query and ranks after
/// every number; a NaN query scores NaN everywhere, its hits are the first
/// documents by index.
fn nan<T: Elem>() {
    let mut rng = StdRng::seed_from_u64(41);
    let (nq, d, nd) = (16, 4, 2 * T::DOCS_PER_PANEL + 3);
    let (mut qm, qv) = random_side::<T>(&mut rng, nq, d);
    let (mut dm, dv) = random_side::<T>(&mut rng, nd, d);
    for j in [0, 5, T::DOCS_PER_PANEL, nd - 1] {
        dm[j * d + 1] = T::NAN;
    }
    qm[3 * d] = T::NAN;
    check_case((nq, nd, d), (&qm, &qv), (&dm, &dv));
    let index = T::index(&var(nd, d, &dm, &dv));
    let queries = var(nq, d, &qm, &qv);
    for level in levels() {
        let hits = T::top_k(&index, &queries, nd, Metric::Eq10, &SEQ.level(level)).unwrap();
        let (idx, _) = hits.row(0);
        assert_eq!(
            &idx[nd - 4..],
            &[0, 5, T::DOCS_PER_PANEL, nd - 1],
            "{level:?}"
        );
        let (idx, val) = hits.row(3);
        assert!(val.iter().all(|v| v.is_nan()), "{level:?}");
        assert_eq!(idx, &(0..nd).collect::<Vec<_>>()[..], "{level:?}");
    }
}

#[test]
fn nan_ranks_last_f32() {
    nan::<f32>();
}

#[test]
fn nan_ranks_last_f64() {
    nan::<f64>();
}

/// Task counts split queries (or document panels, for few queries) across
/// threads: the same hits and values as the serial run.
#[cfg(feature = "rayon")]
#[test]
fn task_counts_agree() {
    use gaussian_kl::Par;
    let mut rng = StdRng::seed_from_u64(51);
    let d = 33;
    for (nq, nd) in [(3, 200), (70, 101), (130, 40)] {
        let (qm, qv) = random_side::<f32>(&mut rng, nq, d);
        let (dm, dv) = random_side::<f32>(&mut rng, nd, d);
        let index = f32::index(&var(nd, d, &dm, &dv));
        let queries = var(nq, d, &qm, &qv);
        let want = search::top_k(&index, &queries, 10, Metric::Kl, &SEQ).unwrap();
        for tasks in 1..=3 {
            let exec = SEQ.par(Par::Rayon(tasks));
            let got = search::top_k(&index, &queries, 10, Metric::Kl, &exec).unwrap();
            assert_eq!(got.index, want.index, "nq={nq} nd={nd} tasks={tasks}");
            assert_eq!(bits(&got.value), bits(&want.value));
        }
    }
}
