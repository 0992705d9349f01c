//! An independent high-precision reference for full-rank KL: double-double
//! arithmetic (`hi + lo`, about 106 significant bits), column-oriented
//! forward substitution (a different operation order from the crate's
//! row-oriented kernels), and double-double `exp` / `ln`.
//!
//! Shared by `tests/suite/accuracy.rs`, `tests/suite/robustness.rs` and the fuzz targets
//! (`fuzz/`, through `#[path]`). Test code only: it uses `std` and may
//! allocate.
#![allow(dead_code)]

use core::ops::{Add, Div, Mul, Neg, Sub};

/// A double-double number `hi + lo`, `|lo| ≤ ulp(hi)/2`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Dd {
    /// Leading part.
    pub hi: f64,
    /// Trailing part.
    pub lo: f64,
}

#[inline]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

#[inline]
fn quick_two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    (s, b - (s - a))
}

#[inline]
fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    (p, a.mul_add(b, -p))
}

impl Dd {
    pub const ZERO: Dd = Dd { hi: 0.0, lo: 0.0 };
    pub const ONE: Dd = Dd { hi: 1.0, lo: 0.0 };
    /// ln 2 to double-double precision.
    pub const LN2: Dd = Dd {
        hi: core::f64::consts::LN_2,
        lo: 2.319_046_813_846_299_6e-17,
    };

    pub fn new(x: f64) -> Dd {
        Dd { hi: x, lo: 0.0 }
    }

    pub fn to_f64(self) -> f64 {
        self.hi + self.lo
    }

    pub fn abs(self) -> Dd {
        if self.hi < 0.0 { -self } else { self }
    }

    pub fn is_finite(self) -> bool {
        self.hi.is_finite() && self.lo.is_finite()
    }

    /// `2^k · self`, exact.
    fn ldexp(self, k: i32) -> Dd {
        let s = 2f64.powi(k);
        Dd {
            hi: self.hi * s,
            lo: self.lo * s,
        }
    }

    /// `eˣ` to about 1e-28 relative (less once the low part goes subnormal,
    /// `x ≲ −650`): `x = k ln2 + r`, `e^r` by Taylor series
    /// on `r / 2¹⁰`, squared ten times.
    pub fn exp(self) -> Dd {
        if self.hi > 709.0 {
            return Dd::new(f64::INFINITY);
        }
        if self.hi < -745.0 {
            return Dd::ZERO;
        }
        let k = (self.hi / core::f64::consts::LN_2).round();
        let r = (self - Dd::LN2 * Dd::new(k)).ldexp(-10);
        // Taylor: Σ rⁿ/n!, |r| ≤ 3.4e-4, 12 terms reach 1e-45; the ten squarings
        // amplify the double-double rounding by 2¹⁰.
        let mut term = Dd::ONE;
        let mut sum = Dd::ONE;
        for n in 1..=12 {
            term = term * r / Dd::new(n as f64);
            sum = sum + term;
        }
        for _ in 0..10 {
            sum = sum * sum;
        }
        // 2^k in two steps so that neither factor overflows.
        let k = k as i32;
        sum.ldexp(k / 2).ldexp(k - k / 2)
    }

    /// Natural logarithm, `x > 0`: one Newton step `y + x·e^{−y} − 1` from
    /// the f64 logarithm doubles its 53 bits.
    pub fn ln(self) -> Dd {
        // Keep e^{−y} in range: scale tiny (subnormal) and huge x by 2^∓600.
        if self.hi < 1e-290 {
            return self.ldexp(600).ln() - Dd::LN2 * Dd::new(600.0);
        }
        if self.hi > 1e290 {
            return self.ldexp(-600).ln() + Dd::LN2 * Dd::new(600.0);
        }
        let y = Dd::new(self.hi.ln());
        y + self * (-y).exp() - Dd::ONE
    }
}

impl Add for Dd {
    type Output = Dd;
    fn add(self, b: Dd) -> Dd {
        let (s, e) = two_sum(self.hi, b.hi);
        let (t, f) = two_sum(self.lo, b.lo);
        let (s, e) = quick_two_sum(s, e + t);
        let (hi, lo) = quick_two_sum(s, e + f);
        Dd { hi, lo }
    }
}

impl Neg for Dd {
    type Output = Dd;
    fn neg(self) -> Dd {
        Dd {
            hi: -self.hi,
            lo: -self.lo,
        }
    }
}

impl Sub for Dd {
    type Output = Dd;
    fn sub(self, b: Dd) -> Dd {
        self + (-b)
    }
}

impl Mul for Dd {
    type Output = Dd;
    fn mul(self, b: Dd) -> Dd {
        let (p, e) = two_prod(self.hi, b.hi);
        let e = e + (self.hi * b.lo + self.lo * b.hi);
        let (hi, lo) = quick_two_sum(p, e);
        Dd { hi, lo }
    }
}

impl Div for Dd {
    type Output = Dd;
    fn div(self, b: Dd) -> Dd {
        // Two correction steps of long division.
        let q1 = self.hi / b.hi;
        let r = self - b * Dd::new(q1);
        let q2 = r.hi / b.hi;
        let r = r - b * Dd::new(q2);
        let q3 = r.hi / b.hi;
        let (hi, lo) = quick_two_sum(q1, q2);
        Dd { hi, lo } + Dd::new(q3)
    }
}

/// How the diagonal of a factor is given to the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diag {
    /// `Lᵢᵢ = exp(raw)`, `log Lᵢᵢ = raw`.
    Log,
    /// `Lᵢᵢ = raw > 0`.
    Plain,
}

/// The reference KL and the magnitudes that bound its rounding error.
#[derive(Clone, Copy, Debug)]
pub struct Reference {
    /// `KL(p‖q)` in double-double.
    pub kl: Dd,
    /// `‖y‖²`.
    pub y_sq: f64,
    /// `‖M‖²_F`.
    pub m_sq: f64,
    /// `Σ|log L_pᵢᵢ| + Σ|log L_qᵢᵢ|`.
    pub abs_log_sum: f64,
    /// `S = ‖y‖² + ‖M‖²_F + 2(Σ|log L_pᵢᵢ| + Σ|log L_qᵢᵢ|) + d`: the sum of
    /// the magnitudes the kernel adds, the scale of its absolute error.
    pub scale: f64,
}

/// Expands a dense row-major factor (`raw[i*d + j]`, `j ≤ i`, upper
/// triangle ignored) into double-double values and `Σ log Lᵢᵢ`.
fn factor(d: usize, raw: &[f64], diag: Diag) -> (Vec<Dd>, Dd, f64) {
    let mut l = vec![Dd::ZERO; d * d];
    let mut log_sum = Dd::ZERO;
    let mut abs_log = 0.0;
    for i in 0..d {
        for j in 0..i {
            l[i * d + j] = Dd::new(raw[i * d + j]);
        }
        let r = Dd::new(raw[i * d + i]);
        let (v, lg) = match diag {
            Diag::Log => (r.exp(), r),
            Diag::Plain => (r, r.ln()),
        };
        l[i * d + i] = v;
        log_sum = log_sum + lg;
        abs_log += lg.to_f64().abs();
    }
    (l, log_sum, abs_log)
}

/// Solves `L X = B` in place for a row-major `d × c` block `x`, row by row
/// (row `j` final, then subtracted from the rows below): the axpy order,
/// unlike the crate's dot-product order. Each column goes through the
/// operations of a one-column solve, interleaved across the columns so that
/// their divisions, one dependent chain per column, overlap. `lower`: `B`
/// (hence `X`) is lower triangular, and the structural zeros above its
/// diagonal, where the solve would only add zeros, are skipped.
fn forward_sub(d: usize, l: &[Dd], x: &mut [Dd], c: usize, lower: bool) {
    for j in 0..d {
        let width = if lower { j + 1 } else { c };
        let ljj = l[j * d + j];
        for v in &mut x[j * c..j * c + width] {
            *v = *v / ljj;
        }
        let (done, below) = x.split_at_mut((j + 1) * c);
        let xj = &done[j * c..j * c + width];
        for (i, row) in below.chunks_exact_mut(c).enumerate() {
            let lij = l[(j + 1 + i) * d + j];
            for (v, &w) in row.iter_mut().zip(xj) {
                *v = *v - lij * w;
            }
        }
    }
}

/// `KL(p‖q)` in double-double from dense row-major factors (`raw`, plain
/// values off the diagonal, the diagonal encoded as `diag`).
pub fn kl(
    d: usize,
    mean_p: &[f64],
    l_p: &[f64],
    diag_p: Diag,
    mean_q: &[f64],
    l_q: &[f64],
    diag_q: Diag,
) -> Reference {
    let (lq, log_q, abs_q) = factor(d, l_q, diag_q);
    let (lp, log_p, abs_p) = factor(d, l_p, diag_p);
    let mut y: Vec<Dd> = (0..d)
        .map(|i| Dd::new(mean_q[i]) - Dd::new(mean_p[i]))
        .collect();
    forward_sub(d, &lq, &mut y, 1, false);
    let mut y_sq = Dd::ZERO;
    for v in &y {
        y_sq = y_sq + *v * *v;
    }
    // M = L_q⁻¹ L_p, lower triangular, row-major.
    let mut m = vec![Dd::ZERO; d * d];
    for i in 0..d {
        m[i * d..i * d + i + 1].copy_from_slice(&lp[i * d..i * d + i + 1]);
    }
    forward_sub(d, &lq, &mut m, d, true);
    let mut m_sq = Dd::ZERO;
    for c in 0..d {
        for i in 0..d {
            let v = m[i * d + c];
            m_sq = m_sq + v * v;
        }
    }
    let two = Dd::new(2.0);
    let kl = Dd::new(0.5) * (y_sq + m_sq - two * (log_p - log_q) - Dd::new(d as f64));
    let scale = y_sq.to_f64() + m_sq.to_f64() + 2.0 * (abs_p + abs_q) + d as f64;
    Reference {
        kl,
        y_sq: y_sq.to_f64(),
        m_sq: m_sq.to_f64(),
        abs_log_sum: abs_p + abs_q,
        scale,
    }
}

/// `L⁻¹` of a dense row-major lower-triangular `L` with plain values, in f64
/// (column-oriented forward substitution on the identity).
pub fn inverse_lower(d: usize, l: &[f64]) -> Vec<f64> {
    let mut inv = vec![0.0; d * d];
    for c in 0..d {
        inv[c * d + c] = 1.0;
        for j in c..d {
            let v = inv[j * d + c] / l[j * d + j];
            inv[j * d + c] = v;
            for i in j + 1..d {
                inv[i * d + c] -= l[i * d + j] * v;
            }
        }
    }
    inv
}

/// Skeel's condition number `κ_S(L) = ‖ |L⁻¹| |L| ‖∞` of a dense row-major
/// lower-triangular `L` with plain values. It bounds the forward error of a
/// triangular solve (`‖x̂ − x‖∞ / ‖x‖∞ ≲ 2 γ_d κ_S`, Higham, *Accuracy and
/// Stability*, §8.2) and is invariant under row scaling. Returns ∞ when the
/// inverse overflows.
pub fn skeel_cond(d: usize, l: &[f64]) -> f64 {
    let inv = inverse_lower(d, l);
    let mut worst: f64 = 0.0;
    for i in 0..d {
        let mut row = 0.0;
        for j in 0..d {
            // (|L⁻¹||L|)ᵢⱼ = Σ_k |L⁻¹ᵢₖ| |Lₖⱼ|, k from j to i.
            let mut s = 0.0;
            for k in j..=i {
                s += inv[i * d + k].abs() * l[k * d + j].abs();
            }
            row += s;
        }
        worst = worst.max(row);
    }
    if worst.is_nan() { f64::INFINITY } else { worst }
}

/// The normwise condition number `κ∞(L) = ‖L‖∞ ‖L⁻¹‖∞`.
pub fn cond_inf(d: usize, l: &[f64]) -> f64 {
    let inv = inverse_lower(d, l);
    let norm = |a: &[f64]| {
        (0..d)
            .map(|i| (0..d).map(|j| a[i * d + j].abs()).sum::<f64>())
            .fold(0.0, f64::max)
    };
    norm(l) * norm(&inv)
}

/// The tolerance every full-rank kernel must meet against [`kl`], for
/// working precision `eps` and dimension `d`:
///
/// ```text
/// |KL̂ − KL| ≤ 8 · (d+1)^{3/2} · eps · κ_S(L_q) · S
/// ```
///
/// Why: forward substitution is backward stable, `(L + ΔL) ŷ = b`,
/// `|ΔL| ≤ γ_{d+1} |L|` (the `+1` covers the rounding of `exp` on a log
/// diagonal and of `μ_q − μ_p`), so `|ŷ − y| ≤ γ_{d+1} |L⁻¹|(|L||y| + |b|)
/// ≤ 2 γ_{d+1} |L⁻¹||L||y|` to first order, i.e. `‖ŷ − y‖∞ ≤ 2 γ_{d+1} κ_S ‖y‖∞`;
/// squaring costs `2‖y‖₂‖Δy‖₂ ≤ 2√d ‖y‖₂ ‖Δy‖∞`, giving `4√d γ_{d+1} κ_S ‖y‖²`.
/// Each column of `M` is the same solve, so `‖M‖²_F` obeys the same bound.
/// The logarithms, the sums and the final combination add at most
/// `(d+4)·eps·S`, and `κ_S ≥ 1`. A further factor 2 covers second-order terms.
/// The bound is meaningful only while `(d+1)·eps·κ_S ≤ 1/8`
/// ([`first_order_valid`]); beyond it the computed value may be anything.
pub fn tolerance(d: usize, eps: f64, kappa_s: f64, scale: f64) -> f64 {
    8.0 * ((d + 1) as f64).powf(1.5) * eps * kappa_s * scale
}

/// Whether the first-order error analysis behind [`tolerance`] holds.
pub fn first_order_valid(d: usize, eps: f64, kappa_s: f64) -> bool {
    (d + 1) as f64 * eps * kappa_s <= 0.125
}

/// Dense plain-valued `L` (diagonal decoded in f64) from a raw dense factor,
/// for the condition numbers.
pub fn plain_dense(d: usize, raw: &[f64], diag: Diag) -> Vec<f64> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..i {
            l[i * d + j] = raw[i * d + j];
        }
        l[i * d + i] = match diag {
            Diag::Log => raw[i * d + i].exp(),
            Diag::Plain => raw[i * d + i],
        };
    }
    l
}

#[cfg(test)]
mod self_test {
    use super::*;

    #[test]
    fn dd_exp_ln_roundtrip() {
        for &x in &[-600.0, -3.5, -1e-3, 0.0, 0.7, 1.0, 2.5, 100.0, 600.0] {
            let e = Dd::new(x).exp();
            let back = e.ln();
            assert!(
                (back - Dd::new(x)).abs().to_f64() <= 1e-28 * x.abs().max(1.0),
                "{x}"
            );
        }
        // Subnormal and huge arguments: ln(2^−1074) = −1074 ln 2.
        let tiny = Dd::new(5e-324).ln() + Dd::LN2 * Dd::new(1074.0);
        assert!(tiny.abs().to_f64() < 1e-27, "{tiny:?}");
        let huge = Dd::new(2f64.powi(1000)).ln() - Dd::LN2 * Dd::new(1000.0);
        assert!(huge.abs().to_f64() < 1e-27, "{huge:?}");
        let e1 = Dd::ONE.exp();
        // e = 2.718281828459045 + 1.4456468917292502e-16
        assert_eq!(e1.hi, core::f64::consts::E);
        assert!(
            (e1.lo - 1.445_646_891_729_250_2e-16).abs() < 1e-28,
            "{e1:?}"
        );
    }
}
