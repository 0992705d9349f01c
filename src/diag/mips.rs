//! Dot-product (MIPS) representations: `score(Q, D) = q · d`, so that any
//! inner-product index can serve the Eq. 10 score or the exact KL.
//!
//! With `γ_D = −Σ (log σ²_D + μ²_D/σ²_D)` and `γ_Q = Σ log σ²_Q`:
//!
//! | [`Rep`] | length | query | document |
//! |---|---|---|---|
//! | `Seed` | `3k+1` | `[1, σ²_Q…, μ²_Q…, μ_Q…]` | `[γ_D, −1/σ²_D…, −1/σ²_D…, 2μ_D/σ²_D…]` |
//! | `SeedFull` | `3k+2` | `[1, γ_Q, σ²_Q…, μ²_Q…, μ_Q…]` | `[γ_D, 1, −1/σ²_D…, −1/σ²_D…, 2μ_D/σ²_D…]` |
//! | `Compact` | `2k+1` | `[1, σ²_Q + μ²_Q…, μ_Q…]` | `[γ_D, −1/σ²_D…, 2μ_D/σ²_D…]` |
//! | `CompactFull` | `2k+2` | `[1, γ_Q, σ²_Q + μ²_Q…, μ_Q…]` | `[γ_D, 1, −1/σ²_D…, 2μ_D/σ²_D…]` |
//!
//! The `Seed` layouts are exactly seed 004's `mrl_query_rep`,
//! `mrl_document_rep` and their `_full` versions. The `Compact` ones merge the
//! two `−1/σ²_D` blocks (`σ²_Q·w + μ²_Q·w = (σ²_Q + μ²_Q)·w`): same score, a
//! third fewer numbers to store and to multiply.
//!
//! # Sign conventions
//! - `q · d` (`Seed`, `Compact`) is the Eq. 10 score, **larger is better**.
//! - `q′ · d′` (`SeedFull`, `CompactFull`) is `−(2 KL(Q‖D) + k)`, so
//!   `KL(Q‖D) = −½ (q′ · d′ + k)` ([`kl_from_dot`]); the seed's
//!   `mrl_dot_product_full` returns `½ (q′ · d′ + k) = −KL`.
//! - An index that ranks by *smallest* value (a distance) can store
//!   `−d′` instead; then `KL(Q‖D) = ½ (q′ · (−d′) − k)`.
//!
//! Through a dot product the score is a difference of large terms (`γ_D`
//! holds `−Σ μ²_D/σ²_D`, the other entries add it back): expect an absolute
//! error of a few `ε · (|γ_D| + Σ|terms|)`, not a relative one, and compute
//! small KLs directly with [`kl`](super::kl) when they matter.

use super::{DiagBatch, Scale, log_var_of, over_var, var_of};
use crate::error::{Error, check_len};
use crate::real::Real;

/// A dot-product representation layout (see the [`diag`](super) module
/// docs for the table of layouts and the sign conventions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rep {
    /// Seed 004's `3k+1` layout; `q · d` is the Eq. 10 score.
    Seed,
    /// Seed 004's `3k+2` layout; `KL = −½ (q′ · d′ + k)`.
    SeedFull,
    /// The `2k+1` layout; `q · d` is the Eq. 10 score.
    Compact,
    /// The `2k+2` layout; `KL = −½ (q′ · d′ + k)`.
    CompactFull,
}

impl Rep {
    /// Length of one vector for dimension `k` (saturating).
    ///
    /// ```
    /// use gaussian_kl::diag::Rep;
    /// assert_eq!(Rep::Seed.len(5), 16);
    /// assert_eq!(Rep::CompactFull.len(5), 12);
    /// ```
    pub const fn len(self, k: usize) -> usize {
        let (blocks, extra) = match self {
            Rep::Seed => (3, 1),
            Rep::SeedFull => (3, 2),
            Rep::Compact => (2, 1),
            Rep::CompactFull => (2, 2),
        };
        k.saturating_mul(blocks).saturating_add(extra)
    }

    /// `true` for the layouts that carry `γ_Q` and give the exact KL.
    pub const fn is_full(self) -> bool {
        matches!(self, Rep::SeedFull | Rep::CompactFull)
    }

    /// `true` for the seed's three-block layouts.
    pub const fn is_seed(self) -> bool {
        matches!(self, Rep::Seed | Rep::SeedFull)
    }
}

/// `KL(Q‖D) = −½ (q′ · d′ + k)` from a `SeedFull` / `CompactFull` dot product.
///
/// ```
/// use gaussian_kl::diag::kl_from_dot;
/// assert_eq!(kl_from_dot(-7.0f64, 5), 1.0);
/// ```
pub fn kl_from_dot<T: Real>(dot: T, k: usize) -> T {
    -T::HALF * (dot + T::from_usize(k))
}

/// Checks the batch and the output length, returning the row length.
fn check_rep<T: Real>(
    rep: Rep,
    b: &DiagBatch<'_, T>,
    names: [&'static str; 2],
    out: &[T],
) -> Result<usize, Error> {
    b.check(names)?;
    let len = rep.len(b.k);
    let total =
        b.n.checked_mul(len)
            .ok_or(Error::DimensionTooLarge { d: b.k })?;
    check_len("out", total, out.len())?;
    Ok(len)
}

/// Writes one query row's representation; `out.len() == rep.len(k)`.
pub(crate) fn query_row<T: Real>(rep: Rep, scale: Scale, m: &[T], s: &[T], out: &mut [T]) {
    let k = m.len();
    out[0] = T::ONE;
    let mut o = 1;
    if rep.is_full() {
        let mut g = 0.0f64;
        for &x in s {
            g += log_var_of(scale, x).to_f64();
        }
        out[1] = T::from_f64(g);
        o = 2;
    }
    if rep.is_seed() {
        for p in 0..k {
            out[o + p] = var_of(scale, s[p]);
            out[o + k + p] = m[p] * m[p];
        }
        o += 2 * k;
    } else {
        for p in 0..k {
            out[o + p] = var_of(scale, s[p]) + m[p] * m[p];
        }
        o += k;
    }
    out[o..o + k].copy_from_slice(m);
}

/// `γ_D = −Σ (log σ²_D + μ²_D/σ²_D)`, accumulated in `f64`.
pub(crate) fn gamma_doc<T: Real>(scale: Scale, m: &[T], s: &[T]) -> T {
    let mut g = 0.0f64;
    for (&mu, &x) in m.iter().zip(s) {
        let ld = log_var_of(scale, x).to_f64();
        let v = var_of(scale, x).to_f64();
        let mu = mu.to_f64();
        g += ld + mu * mu / v;
    }
    T::from_f64(-g)
}

/// `(−1/σ²_D, 2μ_D/σ²_D)` of one document entry.
#[inline(always)]
pub(crate) fn doc_entry<T: Real>(scale: Scale, mu: T, s: T) -> (T, T) {
    (-over_var(scale, T::ONE, s), over_var(scale, mu + mu, s))
}

/// Writes one document row's representation; `out.len() == rep.len(k)`.
pub(crate) fn doc_row<T: Real>(rep: Rep, scale: Scale, m: &[T], s: &[T], out: &mut [T]) {
    let k = m.len();
    out[0] = gamma_doc(scale, m, s);
    let mut o = 1;
    if rep.is_full() {
        out[1] = T::ONE;
        o = 2;
    }
    let blocks = if rep.is_seed() { 2 } else { 1 };
    for p in 0..k {
        let (w, b) = doc_entry(scale, m[p], s[p]);
        for blk in 0..blocks {
            out[o + blk * k + p] = w;
        }
        out[o + blocks * k + p] = b;
    }
}

/// Query representations of a batch: `out` is `n × rep.len(k)`, row-major.
///
/// `γ_Q` (full layouts) is accumulated in `f64` and rounded once.
///
/// # Errors
/// [`Error::LengthMismatch`] for batch slices that are not `n·k` long or an
/// `out` that is not `n · rep.len(k)` long; [`Error::NonPositiveVariance`].
///
/// ```
/// use gaussian_kl::diag::{self, DiagBatch, Rep};
/// let (mq, vq, md, vd) = ([0.2f64, 0.7], [0.5, 0.9], [1.1, 1.3], [1.5, 2.0]);
/// for rep in [Rep::Seed, Rep::Compact] {
///     let mut q = vec![0.0; rep.len(2)];
///     let mut d = vec![0.0; rep.len(2)];
///     diag::query_rep(rep, DiagBatch::var(1, 2, &mq, &vq), &mut q)?;
///     diag::doc_rep(rep, DiagBatch::var(1, 2, &md, &vd), &mut d)?;
///     let dot: f64 = q.iter().zip(&d).map(|(a, b)| a * b).sum();
///     assert!((dot - diag::eq10_score(&mq, &vq, &md, &vd)?).abs() < 1e-14);
/// }
/// let mut q = [0.0; 6];
/// let mut d = [0.0; 6];
/// diag::query_rep(Rep::CompactFull, DiagBatch::var(1, 2, &mq, &vq), &mut q)?;
/// diag::doc_rep(Rep::CompactFull, DiagBatch::var(1, 2, &md, &vd), &mut d)?;
/// let dot: f64 = q.iter().zip(&d).map(|(a, b)| a * b).sum();
/// assert!((diag::kl_from_dot(dot, 2) - diag::kl(&mq, &vq, &md, &vd)?).abs() < 1e-14);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn query_rep<T: Real>(rep: Rep, queries: DiagBatch<'_, T>, out: &mut [T]) -> Result<(), Error> {
    let len = check_rep(rep, &queries, ["query mean", "query spread"], out)?;
    for i in 0..queries.n {
        let (m, s) = queries.row(i);
        query_row(rep, queries.scale, m, s, &mut out[i * len..(i + 1) * len]);
    }
    Ok(())
}

/// Document representations of a batch: `out` is `n × rep.len(k)`, row-major.
///
/// `γ_D` is accumulated in `f64` and rounded once; the other entries are one
/// correctly rounded division each (or `exp` for log-variances).
///
/// # Errors
/// As [`query_rep`].
///
/// ```
/// use gaussian_kl::diag::{self, DiagBatch, Rep};
/// let mut d = [0.0f64; 4];
/// diag::doc_rep(Rep::Seed, DiagBatch::var(1, 1, &[1.0], &[2.0]), &mut d)?;
/// assert_eq!(d, [-(2f64.ln() + 0.5), -0.5, -0.5, 1.0]);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn doc_rep<T: Real>(rep: Rep, docs: DiagBatch<'_, T>, out: &mut [T]) -> Result<(), Error> {
    let len = check_rep(rep, &docs, ["document mean", "document spread"], out)?;
    for j in 0..docs.n {
        let (m, s) = docs.row(j);
        doc_row(rep, docs.scale, m, s, &mut out[j * len..(j + 1) * len]);
    }
    Ok(())
}
