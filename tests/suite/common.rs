//! Shared test support: an independent f64 reference for the full-rank KL
//! divergence and seeded random-case generators.
//!
//! The reference deliberately follows a different algorithm from the crate's
//! (which solves triangular systems with the Cholesky factors): it forms the
//! covariances `Σ = L Lᵀ` densely, inverts `Σ_q` by Gauss–Jordan elimination
//! with partial pivoting, takes both log-determinants from the pivots of that
//! elimination, and evaluates the textbook formula
//!
//! ```text
//! KL = ½ ( tr(Σ_q⁻¹ Σ_p) + (μ_q − μ_p)ᵀ Σ_q⁻¹ (μ_q − μ_p) − d + ln det Σ_q − ln det Σ_p ).
//! ```
//!
//! The packed-layout conversions below use their own index formulas, not
//! `Layout::index`, so that a wrong index map in the crate cannot hide.

#![allow(dead_code)]

use gaussian_kl::{Diagonal, Error, Factor, Gaussian, Layout, MatRef, PackedTril, Real, full};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Every packed layout, for loops.
pub const LAYOUTS: [Layout; 3] = [Layout::RowMajor, Layout::ColMajor, Layout::DiagFirst];

/// A seeded generator.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// One standard normal draw (Box–Muller, the cosine branch).
pub fn normal(rng: &mut StdRng) -> f64 {
    // u1 ∈ (0, 1] so that ln(u1) is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (core::f64::consts::TAU * u2).cos()
}

/// `d` standard normal draws.
pub fn normals(rng: &mut StdRng, d: usize) -> Vec<f64> {
    (0..d).map(|_| normal(rng)).collect()
}

/// Number of packed entries of a `d × d` lower triangle.
pub fn tril(d: usize) -> usize {
    d * (d + 1) / 2
}

/// Row-major (PyTorch `tril_indices`) position of `(i, j)`, `j ≤ i`.
pub fn rm(i: usize, j: usize) -> usize {
    i * (i + 1) / 2 + j
}

/// A random mean, entries `N(0, 1)`.
pub fn random_mean(rng: &mut StdRng, d: usize) -> Vec<f64> {
    normals(rng, d)
}

/// A random packed factor in row-major order with a raw log diagonal (seed
/// 000's parameterization): off-diagonal entries `N(0, 1)/√d` and log-diagonal
/// entries `N(0, 1)/4`, so that every row of `L` has a norm near 1 and the
/// diagonal stays within about `[e^{-1}, e]`. This keeps `cond(L)` moderate
/// (tens, not the `2^d` of unscaled random triangles) up to `d = 64`, which
/// is what makes the `cond`-scaled tolerances of the tests meaningful.
pub fn random_raw(rng: &mut StdRng, d: usize) -> Vec<f64> {
    let s = 1.0 / (d.max(1) as f64).sqrt();
    let mut raw = vec![0.0; tril(d)];
    for i in 0..d {
        for j in 0..i {
            raw[rm(i, j)] = s * normal(rng);
        }
        raw[rm(i, i)] = 0.25 * normal(rng);
    }
    raw
}

/// A random pair of Gaussians, all in f64, row-major packed, log diagonal.
#[derive(Clone, Debug)]
pub struct Case {
    pub d: usize,
    pub mean_p: Vec<f64>,
    pub raw_p: Vec<f64>,
    pub mean_q: Vec<f64>,
    pub raw_q: Vec<f64>,
}

impl Case {
    pub fn random(rng: &mut StdRng, d: usize) -> Self {
        Case {
            d,
            mean_p: random_mean(rng, d),
            raw_p: random_raw(rng, d),
            mean_q: random_mean(rng, d),
            raw_q: random_raw(rng, d),
        }
    }

    /// The case rounded to `T`: the inputs a `T` kernel sees.
    pub fn round<T: Real>(&self) -> CaseT<T> {
        CaseT {
            d: self.d,
            mean_p: round(&self.mean_p),
            raw_p: round(&self.raw_p),
            mean_q: round(&self.mean_q),
            raw_q: round(&self.raw_q),
        }
    }
}

/// A case in precision `T` (row-major packed, log diagonal).
#[derive(Clone, Debug)]
pub struct CaseT<T> {
    pub d: usize,
    pub mean_p: Vec<T>,
    pub raw_p: Vec<T>,
    pub mean_q: Vec<T>,
    pub raw_q: Vec<T>,
}

impl<T: Real> CaseT<T> {
    /// The f64 reference for exactly these (rounded) inputs.
    pub fn reference(&self) -> Reference {
        let d = self.d;
        reference_kl(
            d,
            &widen(&self.mean_p),
            &dense_factor(d, &widen(&self.raw_p)),
            &widen(&self.mean_q),
            &dense_factor(d, &widen(&self.raw_q)),
        )
    }
}

/// Rounds to `T` (nearest).
pub fn round<T: Real>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

/// Widens to f64 (exact).
pub fn widen<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|&x| x.to_f64()).collect()
}

/// Reorders a row-major packed triangle into `layout`.
pub fn to_layout<T: Copy + Default>(d: usize, row_major: &[T], layout: Layout) -> Vec<T> {
    assert_eq!(row_major.len(), tril(d));
    let mut out = vec![T::default(); tril(d)];
    match layout {
        Layout::RowMajor => out.copy_from_slice(row_major),
        Layout::ColMajor => {
            // LAPACK 'L' packed: column j holds rows j..d.
            let mut pos = 0;
            for j in 0..d {
                for i in j..d {
                    out[pos] = row_major[rm(i, j)];
                    pos += 1;
                }
            }
        }
        Layout::DiagFirst => {
            let mut pos = d;
            for i in 0..d {
                out[i] = row_major[rm(i, i)];
                for j in 0..i {
                    out[pos] = row_major[rm(i, j)];
                    pos += 1;
                }
            }
        }
    }
    out
}

/// A row-major packed triangle with its log diagonal replaced by `exp` of it
/// (computed in `T`, as the crate's `Diagonal::Log` does).
pub fn log_to_plain<T: Real>(d: usize, raw: &[T]) -> Vec<T> {
    let mut out = raw.to_vec();
    for i in 0..d {
        out[rm(i, i)] = raw[rm(i, i)].exp();
    }
    out
}

/// Dense row-major `d × d` expansion of a row-major packed triangle of plain
/// values, with `upper` written above the diagonal (the kernels must ignore it).
pub fn packed_to_dense<T: Copy>(d: usize, plain: &[T], upper: T) -> Vec<T> {
    let mut out = vec![upper; d * d];
    for i in 0..d {
        for j in 0..=i {
            out[i * d + j] = plain[rm(i, j)];
        }
    }
    out
}

/// Dense f64 factor `L` (zeros above the diagonal) from a row-major packed
/// raw vector with a log diagonal.
pub fn dense_factor(d: usize, raw: &[f64]) -> Vec<f64> {
    packed_to_dense(d, &log_to_plain(d, raw), 0.0)
}

/// `L Lᵀ` of a dense row-major `d × d` matrix, in f64.
pub fn gram(d: usize, l: &[f64]) -> Vec<f64> {
    let mut s = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            let mut acc = 0.0;
            for k in 0..d {
                acc += l[i * d + k] * l[j * d + k];
            }
            s[i * d + j] = acc;
        }
    }
    s
}

/// Inverse and `ln |det A|` of a dense row-major `d × d` matrix by
/// Gauss–Jordan elimination with partial pivoting; `None` if a pivot is zero
/// or the determinant is negative (never for the SPD matrices used here).
pub fn invert_logdet(d: usize, a: &[f64]) -> Option<(Vec<f64>, f64)> {
    let mut a = a.to_vec();
    let mut inv = vec![0.0; d * d];
    for i in 0..d {
        inv[i * d + i] = 1.0;
    }
    let mut logdet = 0.0;
    let mut negative = false;
    for c in 0..d {
        // Partial pivoting: the largest magnitude in column c at or below row c.
        let p = (c..d)
            .max_by(|&x, &y| a[x * d + c].abs().total_cmp(&a[y * d + c].abs()))
            .unwrap();
        let piv = a[p * d + c];
        if piv == 0.0 || !piv.is_finite() {
            return None;
        }
        if p != c {
            for k in 0..d {
                a.swap(p * d + k, c * d + k);
                inv.swap(p * d + k, c * d + k);
            }
            negative = !negative;
        }
        logdet += piv.abs().ln();
        negative ^= piv < 0.0;
        let r = 1.0 / piv;
        for k in 0..d {
            a[c * d + k] *= r;
            inv[c * d + k] *= r;
        }
        for i in 0..d {
            if i != c {
                let f = a[i * d + c];
                if f != 0.0 {
                    for k in 0..d {
                        a[i * d + k] -= f * a[c * d + k];
                        inv[i * d + k] -= f * inv[c * d + k];
                    }
                }
            }
        }
    }
    if negative { None } else { Some((inv, logdet)) }
}

/// Largest eigenvalue of a symmetric positive-semidefinite `d × d` matrix by
/// power iteration (40 steps from a fixed start; the Rayleigh quotient's
/// error is quadratic in the eigenvector's, ample for a tolerance estimate).
pub fn lambda_max(d: usize, a: &[f64]) -> f64 {
    if d == 0 {
        return 0.0;
    }
    let mut v: Vec<f64> = (0..d).map(|i| 1.0 + 0.1 * i as f64).collect();
    let mut lambda = 0.0;
    for _ in 0..40 {
        let w: Vec<f64> = (0..d)
            .map(|i| (0..d).map(|j| a[i * d + j] * v[j]).sum())
            .collect();
        let vv: f64 = v.iter().map(|x| x * x).sum();
        lambda = v.iter().zip(&w).map(|(x, y)| x * y).sum::<f64>() / vv;
        let n = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        if n == 0.0 {
            return 0.0;
        }
        v = w.iter().map(|x| x / n).collect();
    }
    lambda
}

/// The reference value of one KL and the figures its tolerance is built on.
#[derive(Clone, Copy, Debug)]
pub struct Reference {
    /// `KL(p‖q)` in f64.
    pub kl: f64,
    /// Sum of the magnitudes of the terms:
    /// `½(tr(Σ_q⁻¹Σ_p) + quad + |ln det Σ_q − ln det Σ_p| + d)`, which equals
    /// `½(‖M‖²_F + ‖y‖² + |2·logdet diff| + d)` and is `≥ |KL|`.
    pub scale: f64,
    /// `cond₂(L_q) = √(λ_max(Σ_q) · λ_max(Σ_q⁻¹))`, estimated by power
    /// iteration on `Σ_q` and on the reference's `Σ_q⁻¹` (at least 1).
    pub kappa: f64,
    /// The same for `L_p`.
    pub kappa_p: f64,
}

/// The f64 reference from dense covariance matrices (row-major `d × d`).
pub fn reference_kl_cov(
    d: usize,
    mean_p: &[f64],
    cov_p: &[f64],
    mean_q: &[f64],
    cov_q: &[f64],
) -> Reference {
    let (inv_q, ld_q) = invert_logdet(d, cov_q).expect("cov_q is positive definite");
    let (inv_p, ld_p) = invert_logdet(d, cov_p).expect("cov_p is positive definite");
    let mut trace = 0.0;
    for i in 0..d {
        for j in 0..d {
            trace += inv_q[i * d + j] * cov_p[j * d + i];
        }
    }
    let diff: Vec<f64> = (0..d).map(|i| mean_q[i] - mean_p[i]).collect();
    let mut quad = 0.0;
    for i in 0..d {
        for j in 0..d {
            quad += diff[i] * inv_q[i * d + j] * diff[j];
        }
    }
    let dd = d as f64;
    let cond = |a: &[f64], inv: &[f64]| (lambda_max(d, a) * lambda_max(d, inv)).sqrt().max(1.0);
    Reference {
        kl: 0.5 * (trace + quad - dd + ld_q - ld_p),
        scale: 0.5 * (trace.abs() + quad.abs() + (ld_q - ld_p).abs() + dd),
        kappa: cond(cov_q, &inv_q),
        kappa_p: cond(cov_p, &inv_p),
    }
}

/// The f64 reference from dense lower-triangular factors (row-major `d × d`,
/// plain diagonal, zeros above it).
pub fn reference_kl(
    d: usize,
    mean_p: &[f64],
    l_p: &[f64],
    mean_q: &[f64],
    l_q: &[f64],
) -> Reference {
    reference_kl_cov(d, mean_p, &gram(d, l_p), mean_q, &gram(d, l_q))
}

/// `|got − want| / scale`, NaN-safe (a NaN `got` gives +∞).
pub fn rel_err(got: f64, want: f64, scale: f64) -> f64 {
    let e = (got - want).abs() / scale;
    if e.is_nan() { f64::INFINITY } else { e }
}

// ---------------------------------------------------------------- API shorthands

/// A packed row-major, raw-log-diagonal factor (panics on a bad length: a
/// test bug, not a case under test).
pub fn pt<T: Real>(d: usize, data: &[T]) -> PackedTril<'_, T> {
    PackedTril::new(d, data).unwrap()
}

/// A packed factor in any layout and diagonal encoding.
pub fn packed<T: Real>(
    d: usize,
    data: &[T],
    layout: Layout,
    diagonal: Diagonal,
) -> PackedTril<'_, T> {
    PackedTril::with_layout(d, data, layout, diagonal).unwrap()
}

/// A dense row-major `d × d` view.
pub fn dense<T: Real>(d: usize, data: &[T]) -> MatRef<'_, T> {
    MatRef::row_major(d, data).unwrap()
}

/// `full::kl` of two (mean, factor) pairs; shape errors of the views are
/// returned as the `Gaussian` constructor reports them.
pub fn kl_of<'a, T: Real>(
    mean_p: &'a [T],
    l_p: impl Into<Factor<'a, T>>,
    mean_q: &'a [T],
    l_q: impl Into<Factor<'a, T>>,
    work: &mut [T],
) -> Result<T, Error> {
    full::kl(
        &Gaussian::new(mean_p, l_p)?,
        &Gaussian::new(mean_q, l_q)?,
        work,
    )
}

/// `full::kl_std_normal` of a (mean, factor) pair.
pub fn std_normal_of<'a, T: Real>(mean: &'a [T], l: impl Into<Factor<'a, T>>) -> Result<T, Error> {
    full::kl_std_normal(&Gaussian::new(mean, l)?)
}

/// One storage of a dense matrix: its name, data, row and column strides.
pub type DenseForm<T> = (&'static str, Vec<T>, usize, usize);

/// The same dense `d × d` matrix (given row-major) stored four ways, each
/// with the strides that read it back: row-major, column-major, a transposed
/// view of its transpose, and the top-left block of a larger row-major array
/// with `pad` NaN columns and a NaN row after it.
pub fn dense_forms<T: Real>(d: usize, row_major: &[T], pad: usize) -> Vec<DenseForm<T>> {
    let mut col = vec![T::NAN; d * d];
    for i in 0..d {
        for j in 0..d {
            col[j * d + i] = row_major[i * d + j];
        }
    }
    let w = d + pad;
    let mut sub = vec![T::NAN; w * (d + 1)];
    for i in 0..d {
        sub[i * w..i * w + d].copy_from_slice(&row_major[i * d..(i + 1) * d]);
    }
    vec![
        ("row-major", row_major.to_vec(), d, 1),
        ("column-major", col.clone(), 1, d),
        // Lᵀ stored row-major is L column-major: its transpose view reads L.
        ("transposed", col, 1, d),
        ("strided sub-view", sub, w, 1),
    ]
}

/// A view of one of [`dense_forms`].
pub fn form_view<'a, T: Real>(d: usize, form: &'a DenseForm<T>) -> MatRef<'a, T> {
    if form.0 == "transposed" {
        MatRef::row_major(d, &form.1).unwrap().transpose()
    } else {
        MatRef::from_strides(d, &form.1, form.2, form.3).unwrap()
    }
}

/// Every SIMD level this host and build can run (the emulated widths with
/// the `emulated-levels` feature); the others are printed as `SKIPPED`.
pub fn levels() -> Vec<gaussian_kl::simd::Level> {
    let mut out = Vec::new();
    for &l in gaussian_kl::simd::Level::all() {
        if l.is_available() {
            out.push(l);
        } else {
            eprintln!("SKIPPED {l:?}: not available on this host/build");
        }
    }
    out
}
