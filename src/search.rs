//! Top-k retrieval of diagonal Gaussians by exact KL or by the Eq. 10 score
//! (seed 004), with a fused SIMD scoring micro-kernel (feature `std`).
//!
//! Build a [`DocIndex`] once from the documents: it stores their compact
//! representation (`2k + 1` numbers per document: `γ_D`, `−1/σ²_D…`,
//! `2μ_D/σ²_D…`) packed in SIMD panels. Then [`DocIndex::top_k`] scores any
//! number of queries against it, blockwise: a register-blocked micro-kernel
//! scores a block of queries against a panel of documents, and each score
//! goes straight into a bounded heap per query. The `nq × nd` score matrix is
//! never stored.
//!
//! ```
//! use gaussian_kl::diag::DiagBatch;
//! use gaussian_kl::search::{DocIndex, Metric};
//! // three documents and one query, k = 2
//! let (dm, dv) = ([0.0f32, 0.0, 1.0, 1.0, 5.0, 5.0], [1.0f32, 1.0, 1.0, 1.0, 2.0, 2.0]);
//! let index = DocIndex::new(DiagBatch::var(3, 2, &dm, &dv))?;
//! let hits = index.top_k(DiagBatch::var(1, 2, &[0.9, 1.1], &[1.0, 1.0]), 2, Metric::Kl)?;
//! let (docs, kl) = hits.row(0);
//! assert_eq!(docs, &[1, 0]); // nearest first
//! assert!(kl[0] < kl[1]);
//! # Ok::<(), gaussian_kl::Error>(())
//! ```
//!
//! # Ranking, ties and NaN
//! [`Metric::Eq10`] ranks by descending score, [`Metric::Kl`] by ascending
//! KL. Equal values rank by ascending document index, so results are
//! deterministic and equal to a full sort of [`DocIndex::scores`]. A NaN
//! value (from NaN inputs) ranks after every number, NaNs among themselves by
//! index.
//!
//! # Precision
//! Scores are `f32` or `f64` dot products of the compact representation,
//! accumulated with fused multiply-adds in the element type (`γ_D` is
//! accumulated in `f64` once, at indexing). As with any MIPS form of the score,
//! the error is absolute, about `ε · Σ |terms|` (see
//! [`diag::Rep`](crate::diag::Rep)); values are bit-identical across
//! [`Level`]s, blockings and thread counts.

use std::cmp::Ordering;
use std::vec;
use std::vec::Vec;

use pulp::Simd;

use crate::diag::kernel::{block_rows, pack_panel, pack_queries, packed_len, score_block};
use crate::diag::{DiagBatch, ScoreReal, log_var_of};
use crate::error::{Error, check_len};
use crate::simd::Level;

/// What to rank by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Metric {
    /// The Eq. 10 score (larger is better); values are the scores.
    #[default]
    Eq10,
    /// The exact `KL(Q‖D)` (smaller is better); values are the KLs,
    /// `−½ (score + Σ log σ²_Q + k)`.
    Kl,
}

/// Documents packed for scoring: the compact representation in panels of
/// [`ScoreReal::PANEL`] documents. Built once, searched many times.
#[derive(Clone, Debug)]
pub struct DocIndex<T> {
    k: usize,
    n: usize,
    panels: Vec<T>,
}

/// The result of a top-k search: for each query, `per_query` document indices
/// and their values (score or KL, see [`Metric`]), best first.
#[derive(Clone, Debug, PartialEq)]
pub struct Hits<T> {
    /// Hits per query: `min(top, number of documents)`.
    pub per_query: usize,
    /// `nq × per_query` document indices, row-major, best first.
    pub index: Vec<usize>,
    /// `nq × per_query` values matching `index`.
    pub value: Vec<T>,
}

impl<T> Hits<T> {
    /// Number of queries (`0` when `per_query` is `0`: no document).
    pub fn len(&self) -> usize {
        self.index.len().checked_div(self.per_query).unwrap_or(0)
    }

    /// `true` when there are no hits (no queries, or no documents).
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Query `i`'s hits: `(document indices, values)`, best first.
    /// Empty slices when `i` is out of range.
    pub fn row(&self, i: usize) -> (&[usize], &[T]) {
        let r =
            i.saturating_mul(self.per_query)..(i.saturating_add(1)).saturating_mul(self.per_query);
        match (self.index.get(r.clone()), self.value.get(r)) {
            (Some(a), Some(b)) => (a, b),
            _ => (&[], &[]),
        }
    }
}

/// `(key_a, a)` ranks strictly before `(key_b, b)`: larger key first, NaN last,
/// ties by smaller index.
#[inline(always)]
fn better<T: ScoreReal>(ka: T, a: usize, kb: T, b: usize) -> bool {
    match (ka.is_nan(), kb.is_nan()) {
        (false, false) => ka > kb || (ka == kb && a < b),
        (false, true) => true,
        (true, false) => false,
        (true, true) => a < b,
    }
}

/// A bounded heap of the best `cap` `(key, index)` seen; the root is the worst.
#[derive(Clone, Debug)]
struct TopK<T> {
    cap: usize,
    key: Vec<T>,
    idx: Vec<usize>,
}

impl<T: ScoreReal> TopK<T> {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            key: Vec::with_capacity(cap),
            idx: Vec::with_capacity(cap),
        }
    }

    /// `i` is worse than `j` (ranks after it).
    #[inline(always)]
    fn worse(&self, i: usize, j: usize) -> bool {
        better(self.key[j], self.idx[j], self.key[i], self.idx[i])
    }

    #[inline(always)]
    fn push(&mut self, key: T, idx: usize) {
        if self.key.len() < self.cap {
            self.key.push(key);
            self.idx.push(idx);
            let mut c = self.key.len() - 1;
            while c > 0 {
                let p = (c - 1) / 2;
                if self.worse(c, p) {
                    self.key.swap(c, p);
                    self.idx.swap(c, p);
                    c = p;
                } else {
                    break;
                }
            }
        } else if self.cap > 0 && better(key, idx, self.key[0], self.idx[0]) {
            self.key[0] = key;
            self.idx[0] = idx;
            let n = self.key.len();
            let mut p = 0;
            loop {
                let (l, r) = (2 * p + 1, 2 * p + 2);
                let mut w = p;
                if l < n && self.worse(l, w) {
                    w = l;
                }
                if r < n && self.worse(r, w) {
                    w = r;
                }
                if w == p {
                    break;
                }
                self.key.swap(p, w);
                self.idx.swap(p, w);
                p = w;
            }
        }
    }

    /// The key a new candidate must beat strictly to enter, when the heap is
    /// full and its worst key is a number; candidates come in increasing
    /// index order, so an equal key never enters.
    #[inline(always)]
    fn threshold(&self) -> Option<T> {
        if self.cap > 0 && self.key.len() == self.cap && !self.key[0].is_nan() {
            Some(self.key[0])
        } else {
            None
        }
    }

    /// `(key, index)` pairs, best first.
    fn into_sorted(self) -> Vec<(T, usize)> {
        let mut v: Vec<(T, usize)> = self.key.into_iter().zip(self.idx).collect();
        v.sort_by(|a, b| {
            if better(a.0, a.1, b.0, b.1) {
                Ordering::Less
            } else if better(b.0, b.1, a.0, a.1) {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        });
        v
    }
}

/// Per-query data the search needs besides the packed vectors: `γ_Q`, for
/// [`Metric::Kl`] only (`nq · k` logarithms otherwise wasted).
fn gamma_queries<T: ScoreReal>(q: &DiagBatch<'_, T>, metric: Metric) -> Vec<T> {
    if metric != Metric::Kl {
        return Vec::new();
    }
    (0..q.n)
        .map(|i| {
            let mut g = 0.0f64;
            for &s in q.row(i).1 {
                g += log_var_of(q.scale, s).to_f64();
            }
            T::from_f64(g)
        })
        .collect()
}

/// Where scored tiles go.
trait Sink<T> {
    /// Values for query `i` and documents `j0..j0 + vals.len()`.
    fn take(&mut self, i: usize, j0: usize, vals: &[T]);
    /// A key that a value must beat strictly to be taken, if any (see
    /// [`TopK::threshold`]); lets whole tiles be skipped with one compare.
    fn threshold(&self, _i: usize) -> Option<T> {
        None
    }
}

/// Keeps the top entries per query.
struct HeapSink<T> {
    metric: Metric,
    heaps: Vec<TopK<T>>,
}

impl<T: ScoreReal> Sink<T> for HeapSink<T> {
    #[inline(always)]
    fn threshold(&self, i: usize) -> Option<T> {
        self.heaps[i].threshold()
    }

    #[inline(always)]
    fn take(&mut self, i: usize, j0: usize, vals: &[T]) {
        let heap = &mut self.heaps[i];
        let neg = self.metric == Metric::Kl;
        let mut t = heap.threshold();
        for (l, &v) in vals.iter().enumerate() {
            let key = if neg { -v } else { v };
            if let Some(t) = t {
                if key.is_nan() || key <= t {
                    continue;
                }
            }
            heap.push(key, j0 + l);
            t = heap.threshold();
        }
    }
}

/// Writes the full matrix.
struct MatrixSink<'o, T> {
    nd: usize,
    out: &'o mut [T],
}

impl<T: ScoreReal> Sink<T> for MatrixSink<'_, T> {
    #[inline(always)]
    fn take(&mut self, i: usize, j0: usize, vals: &[T]) {
        let o = i * self.nd + j0;
        self.out[o..o + vals.len()].copy_from_slice(vals);
    }
}

/// One scoring pass over panels `panel_range` for all queries of a batch.
struct ScoreOp<'a, T, K> {
    index: &'a DocIndex<T>,
    queries: DiagBatch<'a, T>,
    gamma_q: &'a [T],
    metric: Metric,
    panel_range: core::ops::Range<usize>,
    sink: &'a mut K,
}

impl<T: ScoreReal, K: Sink<T>> pulp::WithSimd for ScoreOp<'_, T, K> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Self::Output {
        let Self {
            index,
            queries,
            gamma_q,
            metric,
            panel_range,
            sink,
        } = self;
        let (k, nq, nd, w) = (index.k, queries.n, index.n, T::PANEL);
        let mr = block_rows::<T, S>();
        let k2 = 2 * k;
        let plen = (k2 + 1) * w;
        // All queries packed once, block after block: they stay in cache
        // while the panels stream through.
        let mut qpack = vec![T::ZERO; k2 * nq];
        let mut start = 0;
        while start < nq {
            let r = mr.min(nq - start);
            pack_queries(
                k,
                queries.scale,
                queries.mean,
                queries.spread,
                start,
                r,
                &mut qpack[k2 * start..k2 * (start + r)],
            );
            start += r;
        }
        let kf = T::from_usize(k);
        let mut tile = vec![T::ZERO; mr * w];
        for pb in panel_range {
            let panel = &index.panels[pb * plen..(pb + 1) * plen];
            let j0 = pb * w;
            let live = w.min(nd - j0);
            let mut start = 0;
            while start < nq {
                let r = mr.min(nq - start);
                score_block(
                    simd,
                    r,
                    &qpack[k2 * start..k2 * (start + r)],
                    panel,
                    &mut tile,
                );
                for m in 0..r {
                    let i = start + m;
                    let row = &mut tile[m * w..(m + 1) * w];
                    if metric == Metric::Kl {
                        // −½((v + γ_Q) + k), lane by lane: the same roundings
                        // as the scalar expression.
                        let g = T::splat(simd, gamma_q[i]);
                        let kv = T::splat(simd, kf);
                        let h = T::splat(simd, -T::HALF);
                        for v in T::as_mut_simd::<S>(row) {
                            *v = T::vmul(simd, h, T::vadd(simd, T::vadd(simd, *v, g), kv));
                        }
                    }
                    if let Some(t) = sink.threshold(i) {
                        // Skip the row unless a lane beats the threshold:
                        // key = v (Eq10) or −v (Kl). NaN lanes never pass,
                        // as in `HeapSink::take`; padding lanes may, harmlessly.
                        let vs = T::as_simd::<S>(row);
                        let pass = if metric == Metric::Kl {
                            let t = T::splat(simd, -t);
                            vs.iter().any(|&v| T::any_lt(simd, v, t))
                        } else {
                            let t = T::splat(simd, t);
                            vs.iter().any(|&v| T::any_gt(simd, v, t))
                        };
                        if !pass {
                            continue;
                        }
                    }
                    sink.take(i, j0, &row[..live]);
                }
                start += r;
            }
        }
    }
}

impl<T: ScoreReal> DocIndex<T> {
    /// Packs the documents (validated: lengths, and positive variances for
    /// [`Scale::Var`](crate::diag::Scale::Var)).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`], [`Error::NonPositiveVariance`], or
    /// [`Error::DimensionTooLarge`] when the packed size overflows.
    pub fn new(docs: DiagBatch<'_, T>) -> Result<Self, Error> {
        docs.check(["document mean", "document spread"])?;
        let (k, n) = (docs.k, docs.n);
        let too_large = Error::DimensionTooLarge { d: k };
        // One panel's length must fit even without documents: the scoring
        // pass computes it for every index.
        let plen = k
            .checked_mul(2)
            .and_then(|x| x.checked_add(1))
            .and_then(|x| x.checked_mul(T::PANEL))
            .ok_or(too_large)?;
        let len = packed_len::<T>(k, n).ok_or(too_large)?;
        if !fits::<T>(len) {
            return Err(too_large);
        }
        let mut panels = vec![T::ZERO; len];
        if plen > 0 {
            for (pb, panel) in panels.chunks_exact_mut(plen).enumerate() {
                let first = pb * T::PANEL;
                let count = T::PANEL.min(n - first);
                pack_panel(k, docs.scale, docs.mean, docs.spread, first, count, panel);
            }
        }
        Ok(Self { k, n, panels })
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.n
    }

    /// `true` when the index holds no document.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Dimension of the Gaussians.
    pub fn dim(&self) -> usize {
        self.k
    }

    fn check_queries(&self, q: &DiagBatch<'_, T>) -> Result<(), Error> {
        q.check(["query mean", "query spread"])?;
        if q.k != self.k {
            return Err(Error::DimensionMismatch {
                what: "queries",
                expected: self.k,
                found: q.k,
            });
        }
        Ok(())
    }

    /// Checks the queries of a top-k search and returns the hits per query.
    /// `Error::DimensionTooLarge` when one heap per query or the
    /// `nq · per_query` hits could not be allocated (`n` is unbounded for
    /// `k = 0`, where the slices are empty).
    fn check_top(&self, q: &DiagBatch<'_, T>, top: usize) -> Result<usize, Error> {
        self.check_queries(q)?;
        let per_query = top.min(self.n);
        let too_large = Error::DimensionTooLarge { d: q.k };
        let total = q.n.checked_mul(per_query).ok_or(too_large)?;
        if per_query > 0 && !(fits::<TopK<T>>(q.n) && fits::<(T, usize)>(total)) {
            return Err(too_large);
        }
        Ok(per_query)
    }

    fn panels(&self) -> usize {
        self.n.div_ceil(T::PANEL)
    }

    fn run<K: Sink<T>>(
        &self,
        level: Level,
        queries: DiagBatch<'_, T>,
        gamma_q: &[T],
        metric: Metric,
        panel_range: core::ops::Range<usize>,
        sink: &mut K,
    ) {
        level.dispatch_or_scalar(ScoreOp {
            index: self,
            queries,
            gamma_q,
            metric,
            panel_range,
            sink,
        });
    }

    /// The best `top` documents for each query, best first (see [`Metric`];
    /// ties by document index; NaN last). Runs at the best level the CPU has ([`Level::detect`]).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] if the queries' `k` differs from the
    /// index's; [`Error::LengthMismatch`]; [`Error::NonPositiveVariance`];
    /// [`Error::DimensionTooLarge`] if the hits could not be allocated.
    pub fn top_k(
        &self,
        queries: DiagBatch<'_, T>,
        top: usize,
        metric: Metric,
    ) -> Result<Hits<T>, Error> {
        self.top_k_at(Level::detect(), queries, top, metric)
    }

    /// [`top_k`](Self::top_k) at a given SIMD [`Level`] (bit-identical results).
    ///
    /// # Errors
    /// As [`top_k`](Self::top_k).
    pub fn top_k_at(
        &self,
        level: Level,
        queries: DiagBatch<'_, T>,
        top: usize,
        metric: Metric,
    ) -> Result<Hits<T>, Error> {
        let per_query = self.check_top(&queries, top)?;
        if per_query == 0 {
            return Ok(finish(metric, 0, Vec::new()));
        }
        let gamma_q = gamma_queries(&queries, metric);
        let mut sink = HeapSink {
            metric,
            heaps: (0..queries.n).map(|_| TopK::new(per_query)).collect(),
        };
        self.run(
            level,
            queries,
            &gamma_q,
            metric,
            0..self.panels(),
            &mut sink,
        );
        Ok(finish(metric, per_query, sink.heaps))
    }

    /// The full `nq × nd` matrix of values (Eq. 10 scores or KLs), row-major,
    /// from the same kernel as [`top_k`](Self::top_k) (bit-identical values).
    ///
    /// # Errors
    /// As [`top_k`](Self::top_k), and [`Error::LengthMismatch`] for an `out`
    /// that is not `nq · nd` long.
    pub fn scores(
        &self,
        queries: DiagBatch<'_, T>,
        metric: Metric,
        out: &mut [T],
    ) -> Result<(), Error> {
        self.scores_at(Level::detect(), queries, metric, out)
    }

    /// [`scores`](Self::scores) at a given SIMD [`Level`].
    ///
    /// # Errors
    /// As [`scores`](Self::scores).
    pub fn scores_at(
        &self,
        level: Level,
        queries: DiagBatch<'_, T>,
        metric: Metric,
        out: &mut [T],
    ) -> Result<(), Error> {
        self.check_queries(&queries)?;
        let len = queries
            .n
            .checked_mul(self.n)
            .ok_or(Error::DimensionTooLarge { d: self.n })?;
        check_len("out", len, out.len())?;
        if len == 0 {
            return Ok(());
        }
        let gamma_q = gamma_queries(&queries, metric);
        let mut sink = MatrixSink { nd: self.n, out };
        self.run(
            level,
            queries,
            &gamma_q,
            metric,
            0..self.panels(),
            &mut sink,
        );
        Ok(())
    }
}

#[cfg(feature = "rayon")]
impl<T: ScoreReal> DocIndex<T> {
    /// [`top_k`](Self::top_k) across the cores of rayon's pool (feature
    /// `rayon`): many queries are split into blocks of queries, few queries
    /// into ranges of document panels whose heaps are then merged. The hits
    /// are identical to the serial ones (same values, same total order).
    ///
    /// # Errors
    /// As [`top_k`](Self::top_k).
    pub fn par_top_k(
        &self,
        queries: DiagBatch<'_, T>,
        top: usize,
        metric: Metric,
    ) -> Result<Hits<T>, Error> {
        use rayon::prelude::*;
        let per_query = self.check_top(&queries, top)?;
        let threads = rayon::current_num_threads().max(1);
        let (nq, k) = (queries.n, self.k);
        if per_query == 0 || threads == 1 {
            return self.top_k(queries, top, metric);
        }
        if nq >= 2 * threads {
            // Blocks of queries, a multiple of every register block height.
            let chunk = nq.div_ceil(4 * threads).div_ceil(24) * 24;
            let parts: Vec<Result<Hits<T>, Error>> = (0..nq.div_ceil(chunk))
                .into_par_iter()
                .map(|c| {
                    let r = c * chunk..nq.min((c + 1) * chunk);
                    let sub = DiagBatch {
                        n: r.len(),
                        k,
                        mean: &queries.mean[r.start * k..r.end * k],
                        spread: &queries.spread[r.start * k..r.end * k],
                        scale: queries.scale,
                    };
                    self.top_k(sub, top, metric)
                })
                .collect();
            let mut hits = Hits {
                per_query,
                index: Vec::with_capacity(nq * per_query),
                value: Vec::with_capacity(nq * per_query),
            };
            for p in parts {
                let p = p?;
                hits.index.extend_from_slice(&p.index);
                hits.value.extend_from_slice(&p.value);
            }
            return Ok(hits);
        }
        // Few queries: ranges of panels, one heap set each, merged.
        let gamma_q = gamma_queries(&queries, metric);
        let panels = self.panels();
        let chunk = panels.div_ceil(4 * threads).max(1);
        let parts: Vec<Vec<TopK<T>>> = (0..panels.div_ceil(chunk))
            .into_par_iter()
            .map(|c| {
                let mut sink = HeapSink {
                    metric,
                    heaps: (0..nq).map(|_| TopK::new(per_query)).collect(),
                };
                let range = c * chunk..panels.min((c + 1) * chunk);
                self.run(Level::detect(), queries, &gamma_q, metric, range, &mut sink);
                sink.heaps
            })
            .collect();
        let mut parts = parts.into_iter();
        let mut heaps = parts.next().unwrap_or_default();
        for part in parts {
            for (h, other) in heaps.iter_mut().zip(part) {
                // `push` compares (key, index) fully, so the merge order
                // does not matter.
                for (key, idx) in other.key.into_iter().zip(other.idx) {
                    h.push(key, idx);
                }
            }
        }
        Ok(finish(metric, per_query, heaps))
    }
}

/// Whether `count` values of `V` fit one allocation (`isize::MAX` bytes).
fn fits<V>(count: usize) -> bool {
    count
        .checked_mul(core::mem::size_of::<V>())
        .is_some_and(|bytes| bytes <= isize::MAX as usize)
}

/// Sorts each heap and lays the hits out row-major.
fn finish<T: ScoreReal>(metric: Metric, per_query: usize, heaps: Vec<TopK<T>>) -> Hits<T> {
    let nq = heaps.len();
    let mut index = Vec::with_capacity(nq * per_query);
    let mut value = Vec::with_capacity(nq * per_query);
    for h in heaps {
        for (key, j) in h.into_sorted() {
            index.push(j);
            value.push(if metric == Metric::Kl { -key } else { key });
        }
    }
    Hits {
        per_query,
        index,
        value,
    }
}
