//! Top-k retrieval of diagonal Gaussians by exact KL or by the Eq. 10 score,
//! with a fused SIMD scoring micro-kernel (feature `std`).
//!
//! Build a [`DocIndex`] once from the documents: it stores their compact
//! representation ([`Rep::Compact`](crate::diag::Rep::Compact), `2d + 1`
//! numbers per document: `γ_q`, `−1/σ²_q…`, `2μ_q/σ²_q…`) packed in SIMD
//! panels. Then [`top_k`] scores any number of queries against it,
//! blockwise: a register-blocked micro-kernel scores a block of queries
//! against a panel of documents (groups of 64 queries, the dimensions in
//! chunks that stay in L1, the next chunk read ahead: see the kernel's
//! notes in `src/diag/kernel.rs`), and each tile row of scores is compared,
//! as one vector, with the worst score its query's bounded heap holds; only
//! rows that can enter are turned into KLs and pushed. The
//! `n_queries × n_docs` score matrix is never stored ([`scores`] writes it,
//! when it is wanted).
//!
//! ```
//! use gaussian_kl::{DiagGaussians, Exec};
//! use gaussian_kl::search::{self, DocIndex, Metric};
//! // three documents and one query, d = 2
//! let (dm, dv) = ([0.0f32, 0.0, 1.0, 1.0, 5.0, 5.0], [1.0f32, 1.0, 1.0, 1.0, 2.0, 2.0]);
//! let index = DocIndex::new(&DiagGaussians::var(3, 2, &dm, &dv)?)?;
//! let queries = DiagGaussians::var(1, 2, &[0.9, 1.1], &[1.0, 1.0])?;
//! let hits = search::top_k(&index, &queries, 2, Metric::Kl, &Exec::new())?;
//! let (docs, kl) = hits.row(0);
//! assert_eq!(docs, &[1, 0]); // nearest first
//! assert!(kl[0] < kl[1]);
//! # Ok::<(), gaussian_kl::Error>(())
//! ```
//!
//! # Element types
//! The search functions take `T: Real`, a crate-internal sealed trait
//! implemented for `f32` and `f64` only (the kernel's vector operations);
//! it cannot be named or implemented outside the crate.
//!
//! # Execution
//! The policy is an [`Exec`]: [`Par::Seq`] runs on the calling thread;
//! `Par::Rayon(t)` (feature `rayon`) splits the queries into `t` blocks (or,
//! for fewer queries than `2t`, the documents into `t` ranges of panels whose
//! heaps are merged). A forced SIMD level runs the same kernel at that width.
//! The hits and scores are bit-identical across levels, blockings and task
//! counts. Search has one kernel: any [`Kernel`] but
//! [`Kernel::Auto`] is [`Error::Unsupported`].
//!
//! # Ranking, ties and NaN
//! [`Metric::Eq10`] ranks by descending score, [`Metric::Kl`] by ascending
//! KL. Equal values rank by ascending document index, so results are
//! deterministic and equal to a full sort of [`scores`]. A NaN value (from
//! NaN inputs) ranks after every number, NaNs among themselves by index.
//!
//! # Precision
//! Scores are `f32` or `f64` dot products of the compact representation,
//! accumulated with fused multiply-adds in the element type (`γ_q` is
//! accumulated in `f64` once, at indexing). As with any dot-product form of
//! the score, the error is absolute, about `ε · Σ |terms|` (see
//! [`diag::Rep`](crate::diag::Rep)).

use std::cmp::Ordering;
use std::vec;
use std::vec::Vec;

use pulp::Simd;

use crate::diag::kernel::{
    GROUP, Prefetch, block_rows, pack_group, pack_panel, packed_len, score_group,
};
use crate::diag::log_var_of;
use crate::error::{Error, check_len};
use crate::exec::{Exec, Kernel, Par};
use crate::real::Real;
use crate::simd::Level;
use crate::view::DiagGaussians;

/// What to rank by, and what the values of [`top_k`] and [`scores`] are.
///
/// ```
/// use gaussian_kl::{DiagGaussians, Exec};
/// use gaussian_kl::search::{self, DocIndex, Metric};
/// let docs = DiagGaussians::var(1, 1, &[0.0f64], &[1.0])?;
/// let queries = DiagGaussians::var(1, 1, &[0.0], &[1.0])?;
/// let index = DocIndex::new(&docs)?;
/// let (mut kl, mut eq10) = ([f64::NAN], [f64::NAN]);
/// search::scores(&index, &queries, Metric::Kl, &mut kl, &Exec::new())?;
/// search::scores(&index, &queries, Metric::Eq10, &mut eq10, &Exec::new())?;
/// assert_eq!((kl[0], eq10[0]), (0.0, -1.0)); // eq10 = −(2 KL + d + Σ log σ²_p)
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
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
/// 128 bytes (32 `f32` or 16 `f64` documents). Built once, searched many
/// times by [`top_k`] and [`scores`].
///
/// ```
/// use gaussian_kl::DiagGaussians;
/// use gaussian_kl::search::DocIndex;
/// let docs = DiagGaussians::var(2, 3, &[0.0f32; 6], &[1.0; 6])?;
/// let index = DocIndex::new(&docs)?;
/// assert_eq!((index.len(), index.dim()), (2, 3));
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct DocIndex<T> {
    d: usize,
    n: usize,
    panels: Vec<T>,
}

/// The result of a top-k search: for each query, `per_query` document indices
/// and their values (score or KL, see [`Metric`]), best first.
///
/// ```
/// use gaussian_kl::{DiagGaussians, Exec};
/// use gaussian_kl::search::{self, DocIndex, Metric};
/// let docs = DiagGaussians::var(2, 1, &[0.0f32, 3.0], &[1.0; 2])?;
/// let queries = DiagGaussians::var(2, 1, &[2.5, 0.1], &[1.0; 2])?;
/// let hits = search::top_k(&DocIndex::new(&docs)?, &queries, 5, Metric::Kl, &Exec::new())?;
/// assert_eq!((hits.len(), hits.per_query), (2, 2)); // at most the 2 documents
/// assert_eq!(hits.row(0).0, &[1, 0]);
/// assert_eq!(hits.index, [1, 0, 0, 1]);
/// assert!(hits.row(9).0.is_empty()); // past the end: empty, not a panic
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
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
    ///
    /// ```
    /// use gaussian_kl::{DiagGaussians, Exec};
    /// use gaussian_kl::search::{self, DocIndex, Metric};
    /// let docs = DiagGaussians::var(2, 1, &[0.0f64, 3.0], &[1.0; 2])?;
    /// let queries = DiagGaussians::var(1, 1, &[2.5], &[1.0])?;
    /// let hits = search::top_k(&DocIndex::new(&docs)?, &queries, 1, Metric::Kl, &Exec::new())?;
    /// assert_eq!(hits.len(), 1);
    /// # Ok::<(), gaussian_kl::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.index.len().checked_div(self.per_query).unwrap_or(0)
    }

    /// `true` when there are no hits (no queries, or no documents).
    ///
    /// ```
    /// use gaussian_kl::{DiagGaussians, Exec};
    /// use gaussian_kl::search::{self, DocIndex, Metric};
    /// let docs = DiagGaussians::var(2, 1, &[0.0f64, 3.0], &[1.0; 2])?;
    /// let queries = DiagGaussians::var(1, 1, &[2.5], &[1.0])?;
    /// let hits = search::top_k(&DocIndex::new(&docs)?, &queries, 1, Metric::Kl, &Exec::new())?;
    /// assert!(!hits.is_empty());
    /// # Ok::<(), gaussian_kl::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Query `i`'s hits: `(document indices, values)`, best first.
    /// Empty slices when `i` is out of range.
    ///
    /// ```
    /// use gaussian_kl::{DiagGaussians, Exec};
    /// use gaussian_kl::search::{self, DocIndex, Metric};
    /// let docs = DiagGaussians::var(2, 1, &[0.0f64, 3.0], &[1.0; 2])?;
    /// let queries = DiagGaussians::var(1, 1, &[2.5], &[1.0])?;
    /// let hits = search::top_k(&DocIndex::new(&docs)?, &queries, 1, Metric::Kl, &Exec::new())?;
    /// let (ids, kls) = hits.row(0);
    /// assert_eq!((ids, kls.len()), (&[1][..], 1));
    /// assert!(hits.row(1).0.is_empty());
    /// # Ok::<(), gaussian_kl::Error>(())
    /// ```
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
fn better<T: Real>(ka: T, a: usize, kb: T, b: usize) -> bool {
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

impl<T: Real> TopK<T> {
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

    /// Replaces the root (the worst entry) of a full heap by `(key, idx)`
    /// and sifts it down, moving a hole rather than swapping. Only when the
    /// root's key is a number (then every key is: NaN ranks last) and `key`
    /// is a number above it ([`TopK::threshold`]): the comparisons need no
    /// NaN case. The entries kept are those of [`TopK::push`].
    #[inline(always)]
    fn replace_worst(&mut self, key: T, idx: usize) {
        // `a` ranks after `b` (numbers; ties by larger index).
        let worse = |ka: T, ia: usize, kb: T, ib: usize| ka < kb || (ka == kb && ia > ib);
        let n = self.key.len().min(self.idx.len());
        let (keys, idxs) = (&mut self.key[..n], &mut self.idx[..n]);
        let mut p = 0;
        loop {
            let l = 2 * p + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            let c = if r < n && worse(keys[r], idxs[r], keys[l], idxs[l]) {
                r
            } else {
                l
            };
            if !worse(keys[c], idxs[c], key, idx) {
                break;
            }
            keys[p] = keys[c];
            idxs[p] = idxs[c];
            p = c;
        }
        if p < n {
            keys[p] = key;
            idxs[p] = idx;
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

/// Queries `r` of a batch (a range inside `0..n`).
#[cfg(feature = "rayon")]
fn sub_batch<'a, T>(q: &DiagGaussians<'a, T>, r: core::ops::Range<usize>) -> DiagGaussians<'a, T> {
    let d = q.d;
    DiagGaussians {
        n: r.len(),
        d,
        means: &q.means[r.start * d..r.end * d],
        spread: &q.spread[r.start * d..r.end * d],
        scale: q.scale,
    }
}

/// Per-query data the search needs besides the packed vectors: `γ_p`, for
/// [`Metric::Kl`] only (`n · d` logarithms otherwise wasted).
fn gamma_queries<T: Real>(q: &DiagGaussians<'_, T>, metric: Metric) -> Vec<T> {
    if metric != Metric::Kl {
        return Vec::new();
    }
    (0..q.n)
        .map(|i| {
            let mut g = 0.0f64;
            for &s in &q.spread[i * q.d..(i + 1) * q.d] {
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

impl<T: Real> Sink<T> for HeapSink<T> {
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
            if let Some(t) = t
                && (key.is_nan() || key <= t)
            {
                continue;
            }
            if t.is_some() {
                heap.replace_worst(key, j0 + l);
            } else {
                heap.push(key, j0 + l);
            }
            t = heap.threshold();
        }
    }
}

/// Writes the full matrix.
struct MatrixSink<'o, T> {
    nd: usize,
    out: &'o mut [T],
}

impl<T: Real> Sink<T> for MatrixSink<'_, T> {
    #[inline(always)]
    fn take(&mut self, i: usize, j0: usize, vals: &[T]) {
        let o = i * self.nd + j0;
        self.out[o..o + vals.len()].copy_from_slice(vals);
    }
}

/// One scoring pass over panels `panel_range` for all queries of a batch.
struct ScoreOp<'a, T, K> {
    index: &'a DocIndex<T>,
    queries: DiagGaussians<'a, T>,
    gamma_q: &'a [T],
    metric: Metric,
    panel_range: core::ops::Range<usize>,
    sink: &'a mut K,
}

/// All queries packed once, group after group (see [`pack_group`]): a
/// group stays in cache while the panels stream through.
fn pack_all<T: Real>(queries: &DiagGaussians<'_, T>, mr: usize) -> Vec<T> {
    let (d, nq) = (queries.d, queries.n);
    let d2 = 2 * d;
    let mut qpack = vec![T::ZERO; d2 * nq];
    let mut start = 0;
    while start < nq {
        let n = GROUP.min(nq - start);
        pack_group(
            d,
            queries.scale,
            (queries.means, queries.spread),
            (start, n, mr),
            &mut qpack[d2 * start..d2 * (start + n)],
        );
        start += n;
    }
    qpack
}

/// The key of a raw score (the heap's order, larger is better): the score
/// for [`Metric::Eq10`], `−KL` for [`Metric::Kl`] with the roundings of
/// [`to_values`] (`−(−½((v + γ_p) + d))`).
#[inline(always)]
fn key_of<T: Real>(metric: Metric, (g, kf): (T, T), v: T) -> T {
    if metric == Metric::Kl {
        -(-T::HALF * ((v + g) + kf))
    } else {
        v
    }
}

/// A raw score `u` such that no raw score `v ≤ u` has a key above the sink's
/// threshold `t` (the key is non-decreasing in `v`: each rounding is), so
/// that a tile row can be skipped with one vector compare before any
/// transform; `None` (no skipping) when there is no threshold or no such
/// `u` was found near the inverse of the key.
fn raw_threshold<T: Real>(metric: Metric, gk: (T, T), t: Option<T>) -> Option<T> {
    let t = t?;
    if metric != Metric::Kl {
        return Some(t);
    }
    let mut u = ((t + t) - gk.1) - gk.0;
    for _ in 0..4 {
        if key_of(metric, gk, u) <= t {
            return Some(u);
        }
        u = u - (u.abs() + T::ONE) * T::EPSILON * T::from_usize(4);
    }
    None
}

/// Whether a lane of `row` is above the raw threshold `u` (always, without
/// one). NaN lanes never pass: a NaN never enters a full heap whose worst
/// key is a number; padding lanes may, harmlessly.
#[inline(always)]
fn passes<S: Simd, T: Real>(simd: S, row: &[T], u: Option<T>) -> bool {
    let Some(u) = u else {
        return true;
    };
    let u = T::vsplat(simd, u);
    T::as_simd::<S>(row).iter().any(|&v| T::any_gt(simd, v, u))
}

/// Turns one tile row of scores into the metric's values: for
/// [`Metric::Kl`], `−½((v + γ_p) + d)` lane by lane (the same roundings as
/// the scalar expression).
#[inline(always)]
fn to_values<S: Simd, T: Real>(simd: S, metric: Metric, (g, kf): (T, T), row: &mut [T]) {
    if metric == Metric::Kl {
        let g = T::vsplat(simd, g);
        let kv = T::vsplat(simd, kf);
        let h = T::vsplat(simd, -T::HALF);
        for v in T::as_mut_simd::<S>(row) {
            *v = T::vmul(simd, h, T::vadd(simd, T::vadd(simd, *v, g), kv));
        }
    }
}

impl<T: Real, K: Sink<T>> pulp::WithSimd for ScoreOp<'_, T, K> {
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
        let (d, nq, nd, w) = (index.d, queries.n, index.n, T::PANEL);
        let mr = block_rows::<T, S>();
        let d2 = 2 * d;
        let plen = (d2 + 1) * w;
        let qpack = pack_all(&queries, mr);
        let df = T::from_usize(d);
        let mut tiles = vec![T::ZERO; GROUP * w];
        let pf = Prefetch::new();
        let gk = |i: usize| (gamma_q.get(i).copied().unwrap_or(T::ZERO), df);
        let mut raw: Vec<Option<T>> = (0..nq)
            .map(|i| raw_threshold(metric, gk(i), sink.threshold(i)))
            .collect();
        let mut g0 = 0;
        while g0 < nq {
            let gn = GROUP.min(nq - g0);
            let qgroup = &qpack[d2 * g0..d2 * (g0 + gn)];
            for pb in panel_range.clone() {
                let panel = &index.panels[pb * plen..(pb + 1) * plen];
                let j0 = pb * w;
                let live = w.min(nd - j0);
                let next = if pb + 1 < panel_range.end {
                    &index.panels[(pb + 1) * plen..(pb + 2) * plen]
                } else {
                    &[]
                };
                score_group(simd, (d2, mr, gn), qgroup, (panel, next, pf), &mut tiles);
                for ((m, row), u) in tiles
                    .chunks_exact_mut(w)
                    .enumerate()
                    .zip(&mut raw[g0..g0 + gn])
                {
                    if passes(simd, row, *u) {
                        let i = g0 + m;
                        to_values(simd, metric, gk(i), row);
                        sink.take(i, j0, &row[..live]);
                        *u = raw_threshold(metric, gk(i), sink.threshold(i));
                    }
                }
            }
            g0 += gn;
        }
    }
}

/// The level of `exec` for a search: [`Error::Unsupported`] for a forced
/// kernel, [`Error::LevelUnavailable`] for a level the host lacks.
fn search_level(exec: &Exec) -> Result<Level, Error> {
    if exec.get_kernel() != Kernel::Auto {
        return Err(Error::Unsupported {
            what: "kernel",
            why: "search has one scoring kernel: use Kernel::Auto",
        });
    }
    exec.resolved_level()
}

impl<T> DocIndex<T> {
    /// Number of documents.
    ///
    /// ```
    /// use gaussian_kl::DiagGaussians;
    /// use gaussian_kl::search::DocIndex;
    /// let docs = DiagGaussians::log_var(3, 2, &[0.0f32; 6], &[0.0; 6])?;
    /// assert_eq!(DocIndex::new(&docs)?.len(), 3);
    /// # Ok::<(), gaussian_kl::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.n
    }

    /// `true` when the index holds no document.
    ///
    /// ```
    /// use gaussian_kl::DiagGaussians;
    /// use gaussian_kl::search::DocIndex;
    /// let none = DiagGaussians::<f32>::log_var(0, 2, &[], &[])?;
    /// assert!(DocIndex::new(&none)?.is_empty());
    /// # Ok::<(), gaussian_kl::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Dimension `d` of the Gaussians.
    ///
    /// ```
    /// use gaussian_kl::DiagGaussians;
    /// use gaussian_kl::search::DocIndex;
    /// let docs = DiagGaussians::log_var(3, 2, &[0.0f64; 6], &[0.0; 6])?;
    /// assert_eq!(DocIndex::new(&docs)?.dim(), 2);
    /// # Ok::<(), gaussian_kl::Error>(())
    /// ```
    pub fn dim(&self) -> usize {
        self.d
    }
}

impl<T: Real> DocIndex<T> {
    /// Packs the documents `docs` (a validated view: lengths and positive
    /// variances are checked when it is built).
    ///
    /// # Errors
    /// [`Error::DimensionTooLarge`] when the packed size overflows or could
    /// not be allocated.
    ///
    /// ```
    /// use gaussian_kl::DiagGaussians;
    /// use gaussian_kl::search::DocIndex;
    /// let docs = DiagGaussians::log_var(2, 3, &[0.0f64; 6], &[0.0; 6])?;
    /// let index = DocIndex::new(&docs)?;
    /// assert_eq!((index.len(), index.dim(), index.is_empty()), (2, 3, false));
    /// # Ok::<(), gaussian_kl::Error>(())
    /// ```
    pub fn new(docs: &DiagGaussians<'_, T>) -> Result<Self, Error> {
        let (d, n) = (docs.d, docs.n);
        let too_large = Error::DimensionTooLarge { d };
        // One panel's length must fit even without documents: the scoring
        // pass computes it for every index.
        let plen = d
            .checked_mul(2)
            .and_then(|x| x.checked_add(1))
            .and_then(|x| x.checked_mul(T::PANEL))
            .ok_or(too_large)?;
        let len = packed_len::<T>(d, n).ok_or(too_large)?;
        if !fits::<T>(len) {
            return Err(too_large);
        }
        let mut panels = vec![T::ZERO; len];
        if plen > 0 {
            for (pb, panel) in panels.chunks_exact_mut(plen).enumerate() {
                let first = pb * T::PANEL;
                let count = T::PANEL.min(n - first);
                pack_panel(d, docs.scale, docs.means, docs.spread, first, count, panel);
            }
        }
        Ok(Self { d, n, panels })
    }

    fn check_queries(&self, q: &DiagGaussians<'_, T>) -> Result<(), Error> {
        if q.d != self.d {
            return Err(Error::DimensionMismatch {
                what: "queries",
                expected: self.d,
                found: q.d,
            });
        }
        Ok(())
    }

    /// Checks the queries of a top-k search and returns the hits per query.
    /// `Error::DimensionTooLarge` when one heap per query or the
    /// `n · per_query` hits could not be allocated (`n` is unbounded for
    /// `d = 0`, where the slices are empty).
    fn check_top(&self, q: &DiagGaussians<'_, T>, top: usize) -> Result<usize, Error> {
        self.check_queries(q)?;
        let per_query = top.min(self.n);
        let too_large = Error::DimensionTooLarge { d: q.d };
        let total = q.n.checked_mul(per_query).ok_or(too_large)?;
        if per_query > 0 && !(fits::<TopK<T>>(q.n) && fits::<(T, usize)>(total)) {
            return Err(too_large);
        }
        Ok(per_query)
    }

    fn panels(&self) -> usize {
        self.n.div_ceil(T::PANEL)
    }

    /// Scores `queries` against panels `panel_range` into `sink`.
    fn run<K: Sink<T>>(
        &self,
        level: Level,
        queries: DiagGaussians<'_, T>,
        metric: Metric,
        panel_range: core::ops::Range<usize>,
        sink: &mut K,
    ) {
        let gamma_q = gamma_queries(&queries, metric);
        level.dispatch_or_scalar(ScoreOp {
            index: self,
            queries,
            gamma_q: &gamma_q,
            metric,
            panel_range,
            sink,
        });
    }

    /// The serial top-k of checked queries, `per_query > 0`.
    fn top_k_seq(
        &self,
        level: Level,
        queries: DiagGaussians<'_, T>,
        per_query: usize,
        metric: Metric,
    ) -> Vec<TopK<T>> {
        let mut sink = HeapSink {
            metric,
            heaps: (0..queries.n).map(|_| TopK::new(per_query)).collect(),
        };
        self.run(level, queries, metric, 0..self.panels(), &mut sink);
        sink.heaps
    }
}

/// The best `k` documents of `index` for each query, best first (see
/// [`Metric`]; ties by document index; NaN last), at the level and with the
/// threads of `exec` (bit-identical hits for every setting).
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"queries"`, expected `index.dim()`);
/// [`Error::Unsupported`] (`"kernel"`) for any kernel but [`Kernel::Auto`];
/// [`Error::LevelUnavailable`] for a forced level the host lacks;
/// [`Error::DimensionTooLarge`] if the hits could not be allocated.
///
/// ```
/// use gaussian_kl::{DiagGaussians, Error, Exec, Kernel};
/// use gaussian_kl::search::{self, DocIndex, Metric};
/// use gaussian_kl::simd::Level;
/// let docs = DiagGaussians::var(3, 1, &[0.0f64, 1.0, 2.0], &[1.0; 3])?;
/// let index = DocIndex::new(&docs)?;
/// let queries = DiagGaussians::var(2, 1, &[1.9, 0.2], &[1.0; 2])?;
/// let exec = Exec::new().level(Level::Scalar);
/// let hits = search::top_k(&index, &queries, 2, Metric::Eq10, &exec)?;
/// assert_eq!((hits.row(0).0, hits.row(1).0), (&[2, 1][..], &[0, 1][..]));
/// let forced = Exec::new().kernel(Kernel::Lanes);
/// assert!(matches!(
///     search::top_k(&index, &queries, 2, Metric::Eq10, &forced),
///     Err(Error::Unsupported { what: "kernel", .. })
/// ));
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn top_k<T: Real>(
    index: &DocIndex<T>,
    queries: &DiagGaussians<'_, T>,
    k: usize,
    metric: Metric,
    exec: &Exec,
) -> Result<Hits<T>, Error> {
    let per_query = index.check_top(queries, k)?;
    let level = search_level(exec)?;
    if per_query == 0 {
        return Ok(finish(metric, 0, Vec::new()));
    }
    let heaps = match exec.get_par() {
        Par::Seq => index.top_k_seq(level, *queries, per_query, metric),
        #[cfg(feature = "rayon")]
        Par::Rayon(_) => par::top_k(index, level, queries, per_query, metric, exec.tasks()),
    };
    Ok(finish(metric, per_query, heaps))
}

/// The full `n_queries × n_docs` matrix of values (Eq. 10 scores or KLs, see
/// [`Metric`]), row-major, from the kernel of [`top_k`] (bit-identical
/// values), at the level and with the threads of `exec`.
///
/// # Errors
/// As [`top_k`], and [`Error::LengthMismatch`] (`"out"`) for an `out` that is
/// not `n_queries · n_docs` long. `out` is untouched on error.
///
/// ```
/// use gaussian_kl::{DiagGaussian, DiagGaussians, Exec, diag};
/// use gaussian_kl::search::{self, DocIndex, Metric};
/// let docs = DiagGaussians::var(2, 1, &[0.0f64, 1.0], &[1.0, 2.0])?;
/// let queries = DiagGaussians::var(1, 1, &[0.5], &[1.5])?;
/// let mut out = [0.0; 2];
/// search::scores(&DocIndex::new(&docs)?, &queries, Metric::Kl, &mut out, &Exec::new())?;
/// let direct = diag::kl(&queries.get(0).unwrap(), &docs.get(1).unwrap())?;
/// assert!((out[1] - direct).abs() < 1e-15);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn scores<T: Real>(
    index: &DocIndex<T>,
    queries: &DiagGaussians<'_, T>,
    metric: Metric,
    out: &mut [T],
    exec: &Exec,
) -> Result<(), Error> {
    index.check_queries(queries)?;
    let nd = index.n;
    let len = queries
        .n
        .checked_mul(nd)
        .ok_or(Error::DimensionTooLarge { d: nd })?;
    check_len("out", len, out.len())?;
    let level = search_level(exec)?;
    if len == 0 {
        return Ok(());
    }
    match exec.get_par() {
        Par::Seq => {
            let mut sink = MatrixSink { nd, out };
            index.run(level, *queries, metric, 0..index.panels(), &mut sink);
        }
        #[cfg(feature = "rayon")]
        Par::Rayon(_) => par::scores(index, level, queries, metric, out, exec.tasks()),
    }
    Ok(())
}

#[cfg(feature = "rayon")]
mod par {
    //! The multi-core paths (feature `rayon`).

    use super::{DocIndex, HeapSink, MatrixSink, Metric, TopK, sub_batch};
    use crate::real::Real;
    use crate::simd::Level;
    use crate::view::DiagGaussians;
    use rayon::prelude::*;
    use std::vec::Vec;

    /// Queries per block when `nq` queries are split into `tasks` blocks:
    /// whole AVX2 register blocks (6); the AVX-512 block (14) and the group
    /// (64) may be cut, which costs speed, never a different value.
    fn query_chunk(nq: usize, tasks: usize) -> usize {
        nq.div_ceil(tasks).div_ceil(24) * 24
    }

    /// Many queries: blocks of queries; few: ranges of document panels whose
    /// heaps are merged. The heaps hold the serial run's entries, since
    /// `push` compares `(key, index)` fully and every value is computed
    /// identically whatever the split.
    pub(super) fn top_k<T: Real>(
        index: &DocIndex<T>,
        level: Level,
        queries: &DiagGaussians<'_, T>,
        per_query: usize,
        metric: Metric,
        tasks: usize,
    ) -> Vec<TopK<T>> {
        let nq = queries.n;
        if tasks <= 1 {
            return index.top_k_seq(level, *queries, per_query, metric);
        }
        if nq >= 2 * tasks {
            let chunk = query_chunk(nq, tasks);
            let parts: Vec<Vec<TopK<T>>> = (0..nq.div_ceil(chunk))
                .into_par_iter()
                .map(|c| {
                    let sub = sub_batch(queries, c * chunk..nq.min((c + 1) * chunk));
                    index.top_k_seq(level, sub, per_query, metric)
                })
                .collect();
            return parts.into_iter().flatten().collect();
        }
        let panels = index.panels();
        let chunk = panels.div_ceil(tasks).max(1);
        let parts: Vec<Vec<TopK<T>>> = (0..panels.div_ceil(chunk))
            .into_par_iter()
            .map(|c| {
                let mut sink = HeapSink {
                    metric,
                    heaps: (0..nq).map(|_| TopK::new(per_query)).collect(),
                };
                let range = c * chunk..panels.min((c + 1) * chunk);
                index.run(level, *queries, metric, range, &mut sink);
                sink.heaps
            })
            .collect();
        let mut parts = parts.into_iter();
        let mut heaps = parts.next().unwrap_or_default();
        for part in parts {
            for (h, other) in heaps.iter_mut().zip(part) {
                for (key, idx) in other.key.into_iter().zip(other.idx) {
                    h.push(key, idx);
                }
            }
        }
        heaps
    }

    /// Blocks of queries, each writing its own rows of `out`.
    pub(super) fn scores<T: Real>(
        index: &DocIndex<T>,
        level: Level,
        queries: &DiagGaussians<'_, T>,
        metric: Metric,
        out: &mut [T],
        tasks: usize,
    ) {
        let (nq, nd) = (queries.n, index.n);
        let chunk = query_chunk(nq, tasks.max(1));
        out.par_chunks_mut(chunk * nd)
            .enumerate()
            .for_each(|(c, rows)| {
                let sub = sub_batch(queries, c * chunk..nq.min((c + 1) * chunk));
                let mut sink = MatrixSink { nd, out: rows };
                index.run(level, sub, metric, 0..index.panels(), &mut sink);
            });
    }
}

/// Whether `count` values of `V` fit one allocation (`isize::MAX` bytes).
fn fits<V>(count: usize) -> bool {
    count
        .checked_mul(core::mem::size_of::<V>())
        .is_some_and(|bytes| bytes <= isize::MAX as usize)
}

/// Sorts each heap and lays the hits out row-major.
fn finish<T: Real>(metric: Metric, per_query: usize, heaps: Vec<TopK<T>>) -> Hits<T> {
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
