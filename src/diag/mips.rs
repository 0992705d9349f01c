//! Dot-product (MIPS) representations of diagonal Gaussians.

use super::pairwise::row;
use super::{Scale, log_var_of, over_var, var_of};
use crate::error::{Error, check_len};
use crate::real::Real;
use crate::view::DiagGaussians;

/// A dot-product (MIPS) representation, named by its shape:
/// `score(p, q) = a · b` with `a` the query vector of `p`
/// ([`query_vectors`]) and `b` the document vector of `q` ([`doc_vectors`]),
/// so that any inner-product index can serve the Eq. 10 score or the exact KL.
///
/// With `γ_q = −Σ (log σ²_q + μ²_q/σ²_q)` and `γ_p = Σ log σ²_p`:
///
/// | [`Rep`] | length | query vector | document vector |
/// |---|---|---|---|
/// | `Compact` | `2d+1` | `[1, σ²_p + μ²_p…, μ_p…]` | `[γ_q, −1/σ²_q…, 2μ_q/σ²_q…]` |
/// | `CompactKl` | `2d+2` | `[1, γ_p, σ²_p + μ²_p…, μ_p…]` | `[γ_q, 1, −1/σ²_q…, 2μ_q/σ²_q…]` |
/// | `Wide` | `3d+1` | `[1, σ²_p…, μ²_p…, μ_p…]` | `[γ_q, −1/σ²_q…, −1/σ²_q…, 2μ_q/σ²_q…]` |
/// | `WideKl` | `3d+2` | `[1, γ_p, σ²_p…, μ²_p…, μ_p…]` | `[γ_q, 1, −1/σ²_q…, −1/σ²_q…, 2μ_q/σ²_q…]` |
///
/// The `Wide` layouts are the three-block maps of the MRL paper (`σ²` and `μ²`
/// of the query in separate blocks). The `Compact` ones merge the two
/// `−1/σ²_q` blocks (`σ²_p·w + μ²_p·w = (σ²_p + μ²_p)·w`): the same score, a
/// third fewer numbers to store and to multiply.
///
/// # Sign conventions
/// - `a · b` (`Compact`, `Wide`) is the Eq. 10 score, **larger is better**.
/// - `a′ · b′` (`CompactKl`, `WideKl`) is `−(2 KL(p‖q) + d)`, so
///   `KL(p‖q) = −½ (a′ · b′ + d)` ([`kl_from_dot`]); `½ (a′ · b′ + d)` is `−KL`.
/// - An index that ranks by *smallest* value (a distance) can store
///   `−b′` instead; then `KL(p‖q) = ½ (a′ · (−b′) − d)`.
///
/// Through a dot product the score is a difference of large terms (`γ_q`
/// holds `−Σ μ²_q/σ²_q`, the other entries add it back): expect an absolute
/// error of a few `ε · (|γ_q| + Σ|terms|)`, not a relative one, and compute
/// small KLs directly with [`kl`](super::kl) when they matter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rep {
    /// `2d+1` numbers; `a · b` is the Eq. 10 score.
    Compact,
    /// `2d+2` numbers; `KL = −½ (a′ · b′ + d)`.
    CompactKl,
    /// `3d+1` numbers, the MRL paper's map; `a · b` is the Eq. 10 score.
    Wide,
    /// `3d+2` numbers, the MRL paper's map with `γ_p`; `KL = −½ (a′ · b′ + d)`.
    WideKl,
}

impl Rep {
    /// Length of one vector for dimension `d` (saturating).
    ///
    /// ```
    /// use gaussian_kl::diag::Rep;
    /// assert_eq!(Rep::Wide.len(5), 16);
    /// assert_eq!(Rep::CompactKl.len(5), 12);
    /// ```
    pub const fn len(self, d: usize) -> usize {
        let (blocks, extra) = match self {
            Rep::Wide => (3, 1),
            Rep::WideKl => (3, 2),
            Rep::Compact => (2, 1),
            Rep::CompactKl => (2, 2),
        };
        d.saturating_mul(blocks).saturating_add(extra)
    }

    /// `true` for the layouts that carry `γ_p` and give the exact KL
    /// through [`kl_from_dot`].
    ///
    /// ```
    /// use gaussian_kl::diag::Rep;
    /// assert!(Rep::CompactKl.is_kl() && !Rep::Wide.is_kl());
    /// ```
    pub const fn is_kl(self) -> bool {
        matches!(self, Rep::WideKl | Rep::CompactKl)
    }

    /// `true` for the three-block layouts (`σ²_p` and `μ²_p` apart).
    ///
    /// ```
    /// use gaussian_kl::diag::Rep;
    /// assert!(Rep::WideKl.is_wide() && !Rep::Compact.is_wide());
    /// ```
    pub const fn is_wide(self) -> bool {
        matches!(self, Rep::Wide | Rep::WideKl)
    }
}

/// `KL(p‖q) = −½ (a′ · b′ + d)` from a `CompactKl` / `WideKl` dot product.
///
/// ```
/// use gaussian_kl::diag::kl_from_dot;
/// assert_eq!(kl_from_dot(-7.0f64, 5), 1.0);
/// ```
pub fn kl_from_dot<T: Real>(dot: T, d: usize) -> T {
    -T::HALF * (dot + T::from_usize(d))
}

/// Checks the output length, returning the row length.
fn check_rep<T: Real>(rep: Rep, b: &DiagGaussians<'_, T>, out: &[T]) -> Result<usize, Error> {
    let len = rep.len(b.d);
    let total =
        b.n.checked_mul(len)
            .ok_or(Error::DimensionTooLarge { d: b.d })?;
    check_len("out", total, out.len())?;
    Ok(len)
}

/// Writes one query row's representation; `out.len() == rep.len(k)`.
pub(crate) fn query_row<T: Real>(rep: Rep, scale: Scale, m: &[T], s: &[T], out: &mut [T]) {
    let k = m.len();
    out[0] = T::ONE;
    let mut o = 1;
    if rep.is_kl() {
        let mut g = 0.0f64;
        for &x in s {
            g += log_var_of(scale, x).to_f64();
        }
        out[1] = T::from_f64(g);
        o = 2;
    }
    if rep.is_wide() {
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
    if rep.is_kl() {
        out[1] = T::ONE;
        o = 2;
    }
    let blocks = if rep.is_wide() { 2 } else { 1 };
    for p in 0..k {
        let (w, b) = doc_entry(scale, m[p], s[p]);
        for blk in 0..blocks {
            out[o + blk * k + p] = w;
        }
        out[o + blocks * k + p] = b;
    }
}

/// Query vectors of a batch `p`: `out` is `n × rep.len(d)`, row-major.
///
/// `γ_p` (the `…Kl` layouts) is accumulated in `f64` and rounded once.
///
/// # Errors
/// [`Error::LengthMismatch`] (`"out"`) for an `out` that is not
/// `n · rep.len(d)` long; [`Error::DimensionTooLarge`] if that overflows.
/// `out` is untouched on error.
///
/// ```
/// use gaussian_kl::{DiagGaussian, DiagGaussians, diag::{self, Rep}};
/// let (mp, vp, mq, vq) = ([0.2f64, 0.7], [0.5, 0.9], [1.1, 1.3], [1.5, 2.0]);
/// let (p, q) = (DiagGaussians::var(1, 2, &mp, &vp)?, DiagGaussians::var(1, 2, &mq, &vq)?);
/// let (p1, q1) = (DiagGaussian::var(&mp, &vp)?, DiagGaussian::var(&mq, &vq)?);
/// for rep in [Rep::Wide, Rep::Compact] {
///     let mut a = vec![0.0; rep.len(2)];
///     let mut b = vec![0.0; rep.len(2)];
///     diag::query_vectors(rep, &p, &mut a)?;
///     diag::doc_vectors(rep, &q, &mut b)?;
///     let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
///     assert!((dot - diag::eq10(&p1, &q1)?).abs() < 1e-14);
/// }
/// let mut a = [0.0; 6];
/// let mut b = [0.0; 6];
/// diag::query_vectors(Rep::CompactKl, &p, &mut a)?;
/// diag::doc_vectors(Rep::CompactKl, &q, &mut b)?;
/// let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
/// assert!((diag::kl_from_dot(dot, 2) - diag::kl(&p1, &q1)?).abs() < 1e-14);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn query_vectors<T: Real>(
    rep: Rep,
    p: &DiagGaussians<'_, T>,
    out: &mut [T],
) -> Result<(), Error> {
    let len = check_rep(rep, p, out)?;
    for i in 0..p.n {
        let g = row(p, i);
        query_row(
            rep,
            p.scale,
            g.mean,
            g.spread,
            &mut out[i * len..(i + 1) * len],
        );
    }
    Ok(())
}

/// Document vectors of a batch `q`: `out` is `n × rep.len(d)`, row-major.
///
/// `γ_q` is accumulated in `f64` and rounded once; the other entries are one
/// correctly rounded division each (or `exp` for log-variances).
///
/// # Errors
/// As [`query_vectors`].
///
/// ```
/// use gaussian_kl::{DiagGaussians, diag::{self, Rep}};
/// let mut b = [0.0f64; 4];
/// diag::doc_vectors(Rep::Wide, &DiagGaussians::var(1, 1, &[1.0], &[2.0])?, &mut b)?;
/// assert_eq!(b, [-(2f64.ln() + 0.5), -0.5, -0.5, 1.0]);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn doc_vectors<T: Real>(
    rep: Rep,
    q: &DiagGaussians<'_, T>,
    out: &mut [T],
) -> Result<(), Error> {
    let len = check_rep(rep, q, out)?;
    for j in 0..q.n {
        let g = row(q, j);
        doc_row(
            rep,
            q.scale,
            g.mean,
            g.spread,
            &mut out[j * len..(j + 1) * len],
        );
    }
    Ok(())
}
