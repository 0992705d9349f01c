//! ndarray views as the crate's views, batches and outputs (feature
//! `ndarray`, `no_std` with `alloc`).
//!
//! | function | input | result | memory |
//! |---|---|---|---|
//! | [`mat_ref`] | a square `ArrayView2`, C or Fortran order, transposed, non-negative strides | [`MatRef`] | borrows |
//! | [`mat_ref_or_copy`] | the same, or one with gaps (a sub-block, `s![.., ..;2]`) or negative strides | [`MatRef`] | borrows if it can, else copies `d²` into `buf` |
//! | [`gaussian`] | a contiguous mean and a factor as in [`mat_ref`] | [`Gaussian`] | borrows |
//! | [`gaussians`] | `(n, d)` means, `(n, d(d+1)/2)` packed factors, C-contiguous | [`Gaussians`] | borrows |
//! | [`DenseGaussians::new`] | `(n, d)` C-contiguous means, `(n, d, d)` factors in any axis order | [`DenseGaussians`] | borrows |
//! | [`kl_dense`], [`kl_dense_std_normal`] | a [`DenseGaussians`] batch, any-strided `out` | writes `out` | zero-copy, scalar per pair |
//! | [`DenseGradMut::new`] | `(n, d)` C-contiguous and `(n, d, d)` gradient arrays with the factors' strides | [`DenseGradMut`] | borrows |
//! | [`kl_dense_grad`], [`kl_dense_std_normal_grad`] | dense batches and their [`DenseGradMut`]s | writes `out` and the gradients | zero-copy, scalar per pair |
//! | [`diag_gaussians`] | `(n, d)` means and variances (or log-variances), C-contiguous | [`DiagGaussians`] | borrows |
//! | [`out_vector`], [`out_matrix`] | a contiguous `ArrayViewMut1` / C-contiguous `ArrayViewMut2` | `&mut [T]` of checked shape | borrows |
//! | [`grad_mut`], [`diag_grad_mut`] | C-contiguous gradient arrays shaped as the inputs | [`GradMut`], [`DiagGradMut`] | borrows |
//!
//! **Why some layouts are refused.** The crate reads through slices, and a
//! view is borrowed as one slice only when its memory is one contiguous
//! block (ndarray's `to_slice_memory_order`): safe Rust cannot build a
//! slice over a view with gaps, and this crate forbids `unsafe`. Views with
//! gaps or negative strides give an [`Error::Unsupported`] naming the
//! argument (never a panic and never a wrong answer); [`mat_ref_or_copy`]
//! copies them instead. The batch views ([`Gaussians`], [`DiagGaussians`])
//! fix their row order, so their arrays must be C-contiguous (standard
//! order); a Fortran-order batch is copied by the caller with
//! `as_standard_layout()`.
//!
//! [`kl_dense`] loops over the pairs with `full::kl` on strided
//! [`MatRef`]s: no copy of the batch, but one pair at a time with the
//! scalar kernel; the SIMD batch kernels of `batch` need packed factors.
//!
//! ```
//! use gaussian_kl::{full, interop::ndarray as nd_kl};
//! use ndarray::{array, Array2, ShapeBuilder};
//! // L = [[1, 0], [0.5, 2]] stored column by column (Fortran order)
//! let l = Array2::from_shape_vec((2, 2).f(), vec![1.0f64, 0.5, 0.0, 2.0]).unwrap();
//! assert_eq!(l[[1, 0]], 0.5);
//! let (mp, mq, eye) = (array![0.0, 1.0], array![0.0, 0.0], ndarray::Array2::eye(2));
//! let p = nd_kl::gaussian(&mp, &l)?;
//! let q = nd_kl::gaussian(&mq, &eye)?;
//! let mut work = [0.0; full::kl_scratch(2)];
//! assert_eq!(full::kl(&p, &q, &mut work)?, full::kl_std_normal(&p)?);
//! # Ok::<(), gaussian_kl::Error>(())
//! ```

use ::ndarray::{
    ArrayView, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut1, ArrayViewMut2, ArrayViewMut3,
    Dimension,
};

use super::{GAPS, rename, square};
use crate::error::{Error, check_len, check_work};
use crate::full;
use crate::real::Real;
use crate::tril::tril_len;
use crate::view::{
    DiagGaussians, DiagGradMut, Gaussian, Gaussians, GradMut, Grads, MatRef, Mode, Scale,
};

/// Why a batch array must be in standard order.
const C_ORDER: &str = "must be C-contiguous (standard order) to be borrowed: use \
     `as_standard_layout()`";

/// A stride as the crate reads it (`0` for an axis of length ≤ 1).
fn stride(what: &'static str, len: usize, s: isize) -> Result<usize, Error> {
    if len <= 1 {
        Ok(0)
    } else {
        usize::try_from(s).map_err(|_| Error::Unsupported {
            what,
            why: "has a negative stride: use `mat_ref_or_copy` or reverse the axis first",
        })
    }
}

/// The view's memory as one slice starting at its first element (any axis
/// order; the strides were checked non-negative).
fn memory<'a, T, D: Dimension>(
    what: &'static str,
    a: &ArrayView<'a, T, D>,
) -> Result<&'a [T], Error> {
    if a.is_empty() {
        return Ok(&[]);
    }
    a.to_slice_memory_order()
        .ok_or(Error::Unsupported { what, why: GAPS })
}

/// The view's memory in standard order.
fn c_order<'a, T, D: Dimension>(
    what: &'static str,
    a: &ArrayView<'a, T, D>,
) -> Result<&'a [T], Error> {
    if a.is_empty() {
        return Ok(&[]);
    }
    a.to_slice()
        .ok_or(Error::Unsupported { what, why: C_ORDER })
}

/// Checks a count (`rows`, `cols`) against the one expected.
fn check_axis(what: &'static str, expected: usize, found: usize) -> Result<(), Error> {
    check_len(what, expected, found)
}

fn mat_ref_named<'a, T: Real>(
    what: &'static str,
    a: ArrayView2<'a, T>,
) -> Result<MatRef<'a, T>, Error> {
    let (r, c) = a.dim();
    let d = square(what, r, c)?;
    let rs = stride(what, r, a.strides()[0])?;
    let cs = stride(what, c, a.strides()[1])?;
    MatRef::from_strides(d, memory(what, &a)?, rs, cs).map_err(rename(what))
}

/// A square view as a [`MatRef`] with its own strides, borrowed: C order,
/// Fortran order, a transposed view, any view whose memory is one block.
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"matrix"`) for a non-square view;
/// [`Error::Unsupported`] (`"matrix"`) for negative strides or gaps in
/// memory (see [`mat_ref_or_copy`]).
///
/// ```
/// use gaussian_kl::{interop::ndarray::mat_ref, Error};
/// use ndarray::{array, s};
/// let a = array![[1.0f64, 0.0], [5.0, 1.0]];
/// assert_eq!(mat_ref(a.t())?.get(0, 1), 5.0); // the transpose, in place
/// let big = ndarray::Array2::<f64>::eye(4);
/// let err = mat_ref(big.slice(s![..2, ..2])).unwrap_err();
/// assert!(matches!(err, Error::Unsupported { what: "matrix", .. }));
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn mat_ref<'a, T: Real>(matrix: impl Into<ArrayView2<'a, T>>) -> Result<MatRef<'a, T>, Error> {
    mat_ref_named("matrix", matrix.into())
}

/// As [`mat_ref`] when the view can be borrowed; otherwise (gaps in
/// memory, negative strides) copies it row-major into `buf` (at least `d²`
/// numbers; it may be empty when the view is known to be contiguous). The
/// result is bit-identical either way.
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"matrix"`); [`Error::LengthMismatch`]
/// (`"buf"`) when a copy is needed and `buf` is too short.
///
/// ```
/// use gaussian_kl::interop::ndarray::mat_ref_or_copy;
/// use ndarray::{s, Array2};
/// let big = Array2::from_shape_fn((4, 4), |(i, j)| (4 * i + j) as f32);
/// let mut buf = [0.0; 4];
/// let m = mat_ref_or_copy(big.slice(s![1..3, ..;2]), &mut buf)?; // gaps: copied
/// assert_eq!((m.get(0, 0), m.get(0, 1), m.get(1, 0)), (4.0, 6.0, 8.0));
/// assert_eq!(mat_ref_or_copy(big.t(), &mut [])?.get(0, 1), 4.0); // borrowed
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn mat_ref_or_copy<'a, T: Real>(
    matrix: impl Into<ArrayView2<'a, T>>,
    buf: &'a mut [T],
) -> Result<MatRef<'a, T>, Error> {
    let a = matrix.into();
    match mat_ref_named("matrix", a) {
        Err(Error::Unsupported { .. }) => {
            let d = square("matrix", a.nrows(), a.ncols())?;
            super::copy_dense(
                "matrix",
                d,
                |i, j| a.get((i, j)).copied().unwrap_or(T::NAN),
                buf,
            )
        }
        r => r,
    }
}

/// A Gaussian from a contiguous mean and a lower Cholesky factor laid out
/// as [`mat_ref`] accepts, both borrowed. Only the lower triangle is read.
///
/// # Errors
/// [`Error::Unsupported`] (`"mean"`, `"factor"`) for layouts that cannot be
/// borrowed; [`Error::DimensionMismatch`] (`"factor"`);
/// [`Error::LengthMismatch`] (`"mean"`); [`Error::NonPositiveDiagonal`]
/// (`"factor"`).
///
/// ```
/// use gaussian_kl::{full, interop::ndarray::gaussian, Error};
/// use ndarray::array;
/// let l = array![[1.0f64, 0.0], [0.5, 1.0]];
/// let m = array![1.0, 0.0];
/// let p = gaussian(&m, &l)?;
/// assert_eq!(full::kl_std_normal(&p)?, 0.5 * (1.0 + 2.25 - 2.0));
/// let err = gaussian(&array![1.0], &l).unwrap_err();
/// assert_eq!(err, Error::LengthMismatch { what: "mean", expected: 2, found: 1 });
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn gaussian<'a, T: Real>(
    mean: impl Into<ArrayView1<'a, T>>,
    factor: impl Into<ArrayView2<'a, T>>,
) -> Result<Gaussian<'a, T>, Error> {
    let m = c_order("mean", &mean.into())?;
    Gaussian::new(m, mat_ref_named("factor", factor.into())?)
}

/// A batch in PyTorch's layout: `(n, d)` means and `(n, d(d+1)/2)` packed
/// factors (row-major `tril_indices` order, raw log diagonal), both
/// C-contiguous (a contiguous range of rows of a larger array is fine).
///
/// # Errors
/// [`Error::LengthMismatch`] (`"factors.rows"`: `n`; `"factors.cols"`:
/// `d(d+1)/2`); [`Error::Unsupported`] (`"means"`, `"factors"`) unless
/// C-contiguous; [`Error::DimensionTooLarge`].
///
/// ```
/// use gaussian_kl::{batch, interop::ndarray::{gaussians, out_vector}, Exec};
/// use ndarray::{Array1, Array2};
/// let (means, factors) = (Array2::<f32>::zeros((4, 3)), Array2::zeros((4, 6)));
/// let p = gaussians(&means, &factors)?;
/// let mut out = Array1::from_elem(4, f32::NAN);
/// batch::kl_std_normal(&p, out_vector(&mut out, 4)?, &Exec::new(), &mut [])?;
/// assert_eq!(out, Array1::zeros(4));
/// assert!(gaussians(&means, &factors.t()).is_err());
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn gaussians<'a, T: Real>(
    means: impl Into<ArrayView2<'a, T>>,
    factors: impl Into<ArrayView2<'a, T>>,
) -> Result<Gaussians<'a, T>, Error> {
    let (means, factors) = (means.into(), factors.into());
    let (n, d) = means.dim();
    let t = tril_len(d).ok_or(Error::DimensionTooLarge { d })?;
    check_axis("factors.rows", n, factors.nrows())?;
    check_axis("factors.cols", t, factors.ncols())?;
    Gaussians::new(
        n,
        d,
        c_order("means", &means)?,
        c_order("factors", &factors)?,
    )
}

/// A diagonal batch: `(n, d)` means and `(n, d)` variances or
/// log-variances (`scale`), both C-contiguous.
///
/// # Errors
/// [`Error::LengthMismatch`] (`"spread.rows"`, `"spread.cols"`);
/// [`Error::Unsupported`] (`"means"`, `"spread"`) unless C-contiguous; as
/// [`DiagGaussians::var`] (`"var"`, with the Gaussian's index).
///
/// ```
/// use gaussian_kl::{diag, interop::ndarray::{diag_gaussians, out_matrix}, Scale};
/// use ndarray::{array, Array2};
/// let (pm, pv) = (array![[0.0f64, 1.0]], array![[1.0, 2.0]]);
/// let (qm, qs) = (array![[0.0, 1.0], [0.5, 0.0]], array![[0.0, 0.0], [1.0, -1.0]]);
/// let p = diag_gaussians(&pm, &pv, Scale::Var)?;
/// let q = diag_gaussians(&qm, &qs, Scale::LogVar)?;
/// let mut out = Array2::zeros((1, 2));
/// diag::kl_all_pairs(&p, &q, out_matrix(&mut out, 1, 2)?)?;
/// assert!(out[[0, 0]] > 0.0);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn diag_gaussians<'a, T: Real>(
    means: impl Into<ArrayView2<'a, T>>,
    spread: impl Into<ArrayView2<'a, T>>,
    scale: Scale,
) -> Result<DiagGaussians<'a, T>, Error> {
    let (means, spread) = (means.into(), spread.into());
    let (n, d) = means.dim();
    check_axis("spread.rows", n, spread.nrows())?;
    check_axis("spread.cols", d, spread.ncols())?;
    let (m, s) = (c_order("means", &means)?, c_order("spread", &spread)?);
    match scale {
        Scale::Var => DiagGaussians::var(n, d, m, s),
        Scale::LogVar => DiagGaussians::log_var(n, d, m, s),
    }
}

/// A contiguous 1-D output of `len` numbers, borrowed as a slice.
///
/// # Errors
/// [`Error::LengthMismatch`] (`"out"`); [`Error::Unsupported`] (`"out"`)
/// unless contiguous.
///
/// ```
/// use gaussian_kl::{interop::ndarray::out_vector, Error};
/// use ndarray::{s, Array1};
/// let mut a = Array1::<f64>::zeros(6);
/// assert_eq!(out_vector(&mut a, 6)?.len(), 6);
/// assert!(matches!(out_vector(a.slice_mut(s![..;2]), 3), Err(Error::Unsupported { what: "out", .. })));
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn out_vector<'a, T: Real>(
    out: impl Into<ArrayViewMut1<'a, T>>,
    len: usize,
) -> Result<&'a mut [T], Error> {
    let out = out.into();
    check_len("out", len, out.len())?;
    slice_mut("out", out)
}

/// A C-contiguous `rows × cols` output (the all-pairs matrix, row `i`
/// for `p[i]`), borrowed as a row-major slice.
///
/// # Errors
/// [`Error::LengthMismatch`] (`"out.rows"`, `"out.cols"`);
/// [`Error::Unsupported`] (`"out"`) unless C-contiguous.
///
/// ```
/// use gaussian_kl::{interop::ndarray::out_matrix, Error};
/// use ndarray::Array2;
/// let mut a = Array2::<f32>::zeros((2, 3));
/// assert_eq!(out_matrix(&mut a, 2, 3)?.len(), 6);
/// let err = out_matrix(&mut a, 3, 2).unwrap_err();
/// assert_eq!(err, Error::LengthMismatch { what: "out.rows", expected: 3, found: 2 });
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn out_matrix<'a, T: Real>(
    out: impl Into<ArrayViewMut2<'a, T>>,
    rows: usize,
    cols: usize,
) -> Result<&'a mut [T], Error> {
    let out = out.into();
    check_axis("out.rows", rows, out.nrows())?;
    check_axis("out.cols", cols, out.ncols())?;
    slice_mut("out", out)
}

fn slice_mut<'a, T, D: Dimension>(
    what: &'static str,
    a: ::ndarray::ArrayViewMut<'a, T, D>,
) -> Result<&'a mut [T], Error> {
    if a.is_empty() {
        return Ok(&mut []);
    }
    a.into_slice()
        .ok_or(Error::Unsupported { what, why: C_ORDER })
}

/// Gradient outputs shaped as the batch `like`: `(n, d)` for the means and
/// `(n, d(d+1)/2)` for the packed factors, C-contiguous.
///
/// # Errors
/// [`Error::LengthMismatch`] (`"grad.mean.rows"`, `"grad.mean.cols"`,
/// `"grad.factor.rows"`, `"grad.factor.cols"`); [`Error::Unsupported`]
/// (`"grad.mean"`, `"grad.factor"`) unless C-contiguous.
///
/// ```
/// use gaussian_kl::{batch, interop::ndarray::{gaussians, grad_mut, out_vector}, Exec};
/// use ndarray::{array, Array1, Array2};
/// let (means, factors) = (array![[1.0f64, -2.0]], Array2::zeros((1, 3)));
/// let p = gaussians(&means, &factors)?;
/// let (mut gm, mut gl, mut out) = (Array2::zeros((1, 2)), Array2::zeros((1, 3)), Array1::zeros(1));
/// let grad = grad_mut(&p, &mut gm, &mut gl)?;
/// batch::kl_std_normal_grad(&p, &[1.0], out_vector(&mut out, 1)?, grad, &Exec::new(), &mut [])?;
/// assert_eq!(gm, means); // ∂/∂μ = μ
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn grad_mut<'a, T: Real>(
    like: &Gaussians<'_, T>,
    mean: impl Into<ArrayViewMut2<'a, T>>,
    factor: impl Into<ArrayViewMut2<'a, T>>,
) -> Result<GradMut<'a, T>, Error> {
    let (mean, factor) = (mean.into(), factor.into());
    let (n, d) = (like.len(), like.dim());
    let t = tril_len(d).ok_or(Error::DimensionTooLarge { d })?;
    check_axis("grad.mean.rows", n, mean.nrows())?;
    check_axis("grad.mean.cols", d, mean.ncols())?;
    check_axis("grad.factor.rows", n, factor.nrows())?;
    check_axis("grad.factor.cols", t, factor.ncols())?;
    Ok(GradMut::new(
        slice_mut("grad.mean", mean)?,
        slice_mut("grad.factor", factor)?,
    ))
}

/// Gradient outputs shaped as the diagonal batch `like`: `(n, d)` each,
/// C-contiguous.
///
/// # Errors
/// [`Error::LengthMismatch`] (`"grad.mean.rows"`, `"grad.mean.cols"`,
/// `"grad.spread.rows"`, `"grad.spread.cols"`); [`Error::Unsupported`]
/// (`"grad.mean"`, `"grad.spread"`) unless C-contiguous.
///
/// ```
/// use gaussian_kl::{diag, interop::ndarray::{diag_gaussians, diag_grad_mut}, Grads, Scale};
/// use ndarray::{array, Array2};
/// let (pm_, pv, qm_, qv) = (array![[0.5f64]], array![[2.0]], array![[0.0], [1.0]], array![[1.0], [1.0]]);
/// let p = diag_gaussians(&pm_, &pv, Scale::Var)?;
/// let q = diag_gaussians(&qm_, &qv, Scale::Var)?;
/// let (mut pm, mut ps) = (Array2::zeros((1, 1)), Array2::zeros((1, 1)));
/// let (mut qm, mut qs) = (Array2::zeros((2, 1)), Array2::zeros((2, 1)));
/// let grad = Grads::new(diag_grad_mut(&p, &mut pm, &mut ps)?, diag_grad_mut(&q, &mut qm, &mut qs)?);
/// diag::kl_all_pairs_grad(&p, &q, &[1.0, 1.0], grad)?;
/// assert_eq!(qm, array![[-0.5], [0.5]]);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn diag_grad_mut<'a, T: Real>(
    like: &DiagGaussians<'_, T>,
    mean: impl Into<ArrayViewMut2<'a, T>>,
    spread: impl Into<ArrayViewMut2<'a, T>>,
) -> Result<DiagGradMut<'a, T>, Error> {
    let (mean, spread) = (mean.into(), spread.into());
    let (n, d) = (like.len(), like.dim());
    check_axis("grad.mean.rows", n, mean.nrows())?;
    check_axis("grad.mean.cols", d, mean.ncols())?;
    check_axis("grad.spread.rows", n, spread.nrows())?;
    check_axis("grad.spread.cols", d, spread.ncols())?;
    Ok(DiagGradMut::new(
        slice_mut("grad.mean", mean)?,
        slice_mut("grad.spread", spread)?,
    ))
}

/// `n` full-rank Gaussians with dense factors: `(n, d)` C-contiguous means
/// and `(n, d, d)` factors in any axis order (C, Fortran, permuted, a
/// contiguous sub-batch) with non-negative strides, borrowed. Each factor is
/// read in place as a strided [`MatRef`]; only its lower triangle is read.
///
/// ```
/// use gaussian_kl::{full, interop::ndarray::DenseGaussians};
/// use ndarray::{Array2, Array3, ShapeBuilder};
/// let means = Array2::<f64>::zeros((5, 3));
/// let factors = Array3::from_shape_fn((5, 3, 3).f(), |(k, i, j)| if i == j { 1.0 + k as f64 } else { 0.0 });
/// let g = DenseGaussians::new(&means, &factors)?; // Fortran order: borrowed
/// assert_eq!((g.len(), g.dim()), (5, 3));
/// assert_eq!(full::kl_std_normal(&g.get(0).unwrap())?, 0.0);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DenseGaussians<'a, T> {
    n: usize,
    d: usize,
    means: &'a [T],
    factors: &'a [T],
    strides: [usize; 3],
}

impl<'a, T: Real> DenseGaussians<'a, T> {
    /// Borrows the batch, checking every shape and every diagonal (`> 0`).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] (`"factors.batch"`, `"factors.rows"`,
    /// `"factors.cols"`); [`Error::Unsupported`] (`"means"` unless
    /// C-contiguous, `"factors"` for negative strides or gaps);
    /// [`Error::NonPositiveDiagonal`] (`"factors"`, with the Gaussian's
    /// `item`).
    ///
    /// ```
    /// use gaussian_kl::{interop::ndarray::DenseGaussians, Error};
    /// use ndarray::{Array2, Array3};
    /// let err = DenseGaussians::new(&Array2::<f32>::zeros((2, 2)), &Array3::zeros((2, 2, 2))).unwrap_err();
    /// assert!(matches!(err, Error::NonPositiveDiagonal { what: "factors", item: Some(0), index: 0, .. }));
    /// ```
    pub fn new(
        means: impl Into<ArrayView2<'a, T>>,
        factors: impl Into<ArrayView3<'a, T>>,
    ) -> Result<Self, Error> {
        let (means, factors) = (means.into(), factors.into());
        let (n, d) = means.dim();
        let (fn_, fr, fc) = factors.dim();
        check_axis("factors.batch", n, fn_)?;
        check_axis("factors.rows", d, fr)?;
        check_axis("factors.cols", d, fc)?;
        let s = factors.strides();
        let strides = [
            stride("factors", fn_, s[0])?,
            stride("factors", fr, s[1])?,
            stride("factors", fc, s[2])?,
        ];
        let g = DenseGaussians {
            n,
            d,
            means: c_order("means", &means)?,
            factors: memory("factors", &factors)?,
            strides,
        };
        for k in 0..n {
            g.factor(k)?.check_diagonal("factors", Some(k))?;
        }
        Ok(g)
    }

    /// The factor of Gaussian `k`.
    fn factor(&self, k: usize) -> Result<MatRef<'a, T>, Error> {
        let [s0, s1, s2] = self.strides;
        let start = k.saturating_mul(s0);
        let end = start.saturating_add(self.span());
        let data = self.factors.get(start..end).unwrap_or(&[]);
        MatRef::from_strides(self.d, data, s1, s2).map_err(rename("factors"))
    }

    /// The length of memory one factor spans (its `MatRef`'s slice).
    fn span(&self) -> usize {
        let [_, s1, s2] = self.strides;
        match self.d {
            0 => 0,
            d => (d - 1)
                .saturating_mul(s1.saturating_add(s2))
                .saturating_add(1),
        }
    }

    /// The number of Gaussians `n`.
    pub fn len(&self) -> usize {
        self.n
    }

    /// `true` when `n = 0`.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The dimension `d`.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// Gaussian `k` (its factor a strided view into the batch), or `None`
    /// past the end.
    pub fn get(&self, k: usize) -> Option<Gaussian<'a, T>> {
        if k >= self.n {
            return None;
        }
        let mean = self.means.get(k * self.d..(k + 1) * self.d)?;
        Some(Gaussian {
            mean,
            factor: self.factor(k).ok()?.into(),
        })
    }
}

/// The pair count of a zipped batch (sizes equal, or one side of size 1).
fn zip_len(np: usize, nq: usize) -> Result<usize, Error> {
    if np == nq || nq == 1 {
        Ok(np)
    } else if np == 1 {
        Ok(nq)
    } else {
        Err(Error::BatchMismatch {
            what: "q",
            expected: np,
            found: nq,
        })
    }
}

/// Gaussian `k` of a zipped side (a batch of one broadcasts).
fn pick<'b, T: Real>(side: &DenseGaussians<'b, T>, k: usize) -> Option<Gaussian<'b, T>> {
    side.get(if side.n == 1 { 0 } else { k })
}

/// `out[k] = KL(p[k] ‖ q[k])` for dense batches, zipped with broadcasting
/// as `batch::Pairs::Zip` (a batch of one meets every Gaussian of the
/// other). `out` may have any strides. One `full::kl` per pair (scalar
/// kernel, no copy of the batch); each value is bit-identical to
/// `full::kl` on that pair. `work` holds at least `full::kl_scratch(d)`.
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"q"`); [`Error::BatchMismatch`] (`"q"`);
/// [`Error::LengthMismatch`] (`"out"`); [`Error::WorkspaceTooSmall`]. `out`
/// is untouched on error.
///
/// ```
/// use gaussian_kl::{full, interop::ndarray::{kl_dense, DenseGaussians}};
/// use ndarray::{Array1, Array2, Array3};
/// let eye = Array3::from_shape_fn((3, 2, 2), |(_, i, j)| if i == j { 1.0f64 } else { 0.0 });
/// let means = Array2::from_shape_fn((3, 2), |(k, _)| k as f64);
/// let p = DenseGaussians::new(&means, &eye)?;
/// let q = DenseGaussians::new(means.slice(ndarray::s![..1, ..]), eye.slice(ndarray::s![..1, .., ..]))?;
/// let mut out = Array1::zeros(3);
/// let mut work = vec![0.0; full::kl_scratch(2)];
/// kl_dense(&p, &q, &mut out, &mut work)?;
/// assert_eq!(out, ndarray::array![0.0, 1.0, 4.0]); // ½‖μ_k‖²
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_dense<'a, T: Real>(
    p: &DenseGaussians<'_, T>,
    q: &DenseGaussians<'_, T>,
    out: impl Into<ArrayViewMut1<'a, T>>,
    work: &mut [T],
) -> Result<(), Error> {
    let mut out = out.into();
    if q.d != p.d {
        return Err(Error::DimensionMismatch {
            what: "q",
            expected: p.d,
            found: q.d,
        });
    }
    let n = zip_len(p.n, q.n)?;
    check_len("out", n, out.len())?;
    check_work(full::kl_scratch(p.d), work.len())?;
    for (k, o) in out.iter_mut().enumerate() {
        *o = match (pick(p, k), pick(q, k)) {
            (Some(a), Some(b)) => full::kl(&a, &b, work).unwrap_or(T::NAN),
            _ => T::NAN,
        };
    }
    Ok(())
}

/// `out[k] = KL(p[k] ‖ N(0, I))` for a dense batch; `out` may have any
/// strides. Each value is bit-identical to `full::kl_std_normal`.
///
/// # Errors
/// [`Error::LengthMismatch`] (`"out"`); `out` is untouched on error.
///
/// ```
/// use gaussian_kl::interop::ndarray::{kl_dense_std_normal, DenseGaussians};
/// use ndarray::{array, Array1};
/// let (m, l) = (array![[1.0f32, 0.0]], array![[[1.0, 0.0], [0.0, 1.0]]]);
/// let p = DenseGaussians::new(&m, &l)?;
/// let mut out = Array1::zeros(1);
/// kl_dense_std_normal(&p, &mut out)?;
/// assert_eq!(out[0], 0.5);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_dense_std_normal<'a, T: Real>(
    p: &DenseGaussians<'_, T>,
    out: impl Into<ArrayViewMut1<'a, T>>,
) -> Result<(), Error> {
    let mut out = out.into();
    check_len("out", p.n, out.len())?;
    for (k, o) in out.iter_mut().enumerate() {
        *o = match p.get(k) {
            Some(g) => full::kl_std_normal(&g).unwrap_or(T::NAN),
            None => T::NAN,
        };
    }
    Ok(())
}

/// Why a dense gradient must share the input's strides.
const SAME_STRIDES: &str = "must have the same shape and strides as the factors it is the \
     gradient of (the gradient is written with the input's strides)";

/// Gradient outputs for a [`DenseGaussians`] batch: `(n, d)` C-contiguous
/// means and `(n, d, d)` factors with the same strides as the batch's
/// factors (both C order, or both Fortran order, …), borrowed. Only the
/// lower triangle of each factor's gradient is written; the rest is zeroed
/// in [`Mode::Overwrite`] and left alone in [`Mode::Accumulate`].
///
/// ```
/// use gaussian_kl::{interop::ndarray::{kl_dense_std_normal_grad, DenseGaussians, DenseGradMut}, Error};
/// use ndarray::{array, Array1, Array2, Array3, ShapeBuilder};
/// let (m, l) = (array![[1.0f64, 0.0]], array![[[2.0, 0.0], [0.5, 1.0]]]);
/// let p = DenseGaussians::new(&m, &l)?;
/// let (mut gm, mut gl) = (Array2::zeros((1, 2)), Array3::zeros((1, 2, 2)));
/// let mut out = Array1::zeros(1);
/// kl_dense_std_normal_grad(&p, &[1.0], &mut out, DenseGradMut::new(&p, &mut gm, &mut gl)?)?;
/// assert_eq!(gl, array![[[2.0 - 0.5, 0.0], [0.5, 0.0]]]); // L − diag(1/Lᵢᵢ)
/// let mut fortran = Array3::<f64>::zeros((1, 2, 2).f());
/// let err = DenseGradMut::new(&p, &mut gm, &mut fortran).unwrap_err();
/// assert!(matches!(err, Error::Unsupported { what: "grad.factor", .. }));
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
#[derive(Debug)]
pub struct DenseGradMut<'a, T> {
    n: usize,
    d: usize,
    strides: [usize; 3],
    mean: &'a mut [T],
    factor: &'a mut [T],
    mode: Mode,
}

impl<'a, T: Real> DenseGradMut<'a, T> {
    /// Borrows outputs shaped as `like` (overwritten).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] (`"grad.mean.rows"`, `"grad.mean.cols"`,
    /// `"grad.factor.batch"`, `"grad.factor.rows"`, `"grad.factor.cols"`);
    /// [`Error::Unsupported`] (`"grad.mean"` unless C-contiguous,
    /// `"grad.factor"` unless it has `like`'s strides and no gaps).
    pub fn new(
        like: &DenseGaussians<'_, T>,
        mean: impl Into<ArrayViewMut2<'a, T>>,
        factor: impl Into<ArrayViewMut3<'a, T>>,
    ) -> Result<Self, Error> {
        let (mean, factor) = (mean.into(), factor.into());
        let (n, d) = (like.n, like.d);
        check_axis("grad.mean.rows", n, mean.nrows())?;
        check_axis("grad.mean.cols", d, mean.ncols())?;
        let (fb, fr, fc) = factor.dim();
        check_axis("grad.factor.batch", n, fb)?;
        check_axis("grad.factor.rows", d, fr)?;
        check_axis("grad.factor.cols", d, fc)?;
        let s = factor.strides();
        let unsupported = Error::Unsupported {
            what: "grad.factor",
            why: SAME_STRIDES,
        };
        let strides = [
            stride("grad.factor", fb, s[0]).map_err(|_| unsupported)?,
            stride("grad.factor", fr, s[1]).map_err(|_| unsupported)?,
            stride("grad.factor", fc, s[2]).map_err(|_| unsupported)?,
        ];
        if strides != like.strides {
            return Err(unsupported);
        }
        let mean = slice_mut("grad.mean", mean)?;
        let factor = if factor.is_empty() {
            &mut []
        } else {
            factor.into_slice_memory_order().ok_or(Error::Unsupported {
                what: "grad.factor",
                why: GAPS,
            })?
        };
        Ok(DenseGradMut {
            n,
            d,
            strides,
            mean,
            factor,
            mode: Mode::Overwrite,
        })
    }

    /// The same outputs in another [`Mode`].
    ///
    /// ```
    /// use gaussian_kl::{interop::ndarray::{DenseGaussians, DenseGradMut}, Mode};
    /// use ndarray::{array, Array2, Array3};
    /// let (m, l) = (array![[0.0f32]], array![[[1.0]]]);
    /// let p = DenseGaussians::new(&m, &l)?;
    /// let (mut gm, mut gl) = (Array2::zeros((1, 1)), Array3::zeros((1, 1, 1)));
    /// let _acc = DenseGradMut::new(&p, &mut gm, &mut gl)?.mode(Mode::Accumulate);
    /// # Ok::<(), gaussian_kl::Error>(())
    /// ```
    pub fn mode(self, mode: Mode) -> Self {
        DenseGradMut { mode, ..self }
    }

    /// Checks that these outputs fit `like`, naming `what` (`"grad"`, `"grad.p"`, `"grad.q"`).
    fn check(&self, what: &'static str, like: &DenseGaussians<'_, T>) -> Result<(), Error> {
        if (self.n, self.d, self.strides) == (like.n, like.d, like.strides)
            && self.factor.len() == like.factors.len()
        {
            Ok(())
        } else {
            Err(Error::Unsupported {
                what,
                why: SAME_STRIDES,
            })
        }
    }

    /// Zeroes the outputs in [`Mode::Overwrite`]; the kernels then add.
    fn start(&mut self) {
        if self.mode == Mode::Overwrite {
            self.mean.fill(T::ZERO);
            self.factor.fill(T::ZERO);
        }
    }

    /// Gaussian `k`'s outputs (accumulating), or `None` past the memory.
    fn item(&mut self, like: &DenseGaussians<'_, T>, k: usize) -> Option<GradMut<'_, T>> {
        let k = if self.n == 1 { 0 } else { k };
        let start = k.checked_mul(self.strides[0])?;
        let factor = self
            .factor
            .get_mut(start..start.checked_add(like.span())?)?;
        let mean = self.mean.get_mut(k * self.d..(k + 1) * self.d)?;
        Some(GradMut::new(mean, factor).mode(Mode::Accumulate))
    }
}

/// [`kl_dense_std_normal`] and `upstream[k] · ∇KL` for every Gaussian,
/// into outputs shaped as the batch ([`DenseGradMut`]). One
/// `full::kl_std_normal_grad` per Gaussian (scalar, zero-copy); the values
/// are bit-identical to that call in [`Mode::Accumulate`] on zeroed buffers.
///
/// # Errors
/// [`Error::LengthMismatch`] (`"out"`, `"upstream"`); [`Error::Unsupported`]
/// (`"grad"`) for outputs built for another batch. Nothing is written on
/// error.
///
/// ```
/// use gaussian_kl::interop::ndarray::{kl_dense_std_normal_grad, DenseGaussians, DenseGradMut};
/// use ndarray::{array, Array1, Array2, Array3};
/// let (m, l) = (array![[1.0f32, -1.0]], array![[[1.0, 0.0], [0.0, 1.0]]]);
/// let p = DenseGaussians::new(&m, &l)?;
/// let (mut gm, mut gl, mut out) = (Array2::zeros((1, 2)), Array3::zeros((1, 2, 2)), Array1::zeros(1));
/// kl_dense_std_normal_grad(&p, &[2.0], &mut out, DenseGradMut::new(&p, &mut gm, &mut gl)?)?;
/// assert_eq!((out[0], gm), (1.0, array![[2.0, -2.0]]));
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_dense_std_normal_grad<'a, T: Real>(
    p: &DenseGaussians<'_, T>,
    upstream: &[T],
    out: impl Into<ArrayViewMut1<'a, T>>,
    mut grad: DenseGradMut<'_, T>,
) -> Result<(), Error> {
    let mut out = out.into();
    check_len("out", p.n, out.len())?;
    check_len("upstream", p.n, upstream.len())?;
    grad.check("grad", p)?;
    grad.start();
    for (k, o) in out.iter_mut().enumerate() {
        *o = match (p.get(k), grad.item(p, k)) {
            (Some(g), Some(sink)) => {
                full::kl_std_normal_grad(&g, upstream[k], sink).unwrap_or(T::NAN)
            }
            _ => T::NAN,
        };
    }
    Ok(())
}

/// [`kl_dense`] and `upstream[k] · ∇KL` for every pair into outputs shaped
/// as each side; a side of one Gaussian (broadcast) gets the sum over its
/// pairs. One `full::kl_grad` per pair (scalar, zero-copy); `work` holds at
/// least `full::kl_grad_scratch(d)`.
///
/// # Errors
/// As [`kl_dense`]; [`Error::LengthMismatch`] (`"upstream"`);
/// [`Error::Unsupported`] (`"grad.p"`, `"grad.q"`) for outputs built for
/// another batch. Nothing is written on error.
///
/// ```
/// use gaussian_kl::{full, Grads};
/// use gaussian_kl::interop::ndarray::{kl_dense_grad, DenseGaussians, DenseGradMut};
/// use ndarray::{array, Array1, Array2, Array3};
/// let (mp, lp) = (array![[1.0f64], [2.0]], array![[[1.0]], [[1.0]]]);
/// let (mq, lq) = (array![[0.0]], array![[[1.0]]]);
/// let (p, q) = (DenseGaussians::new(&mp, &lp)?, DenseGaussians::new(&mq, &lq)?);
/// let (mut gpm, mut gpl) = (Array2::zeros((2, 1)), Array3::zeros((2, 1, 1)));
/// let (mut gqm, mut gql) = (Array2::zeros((1, 1)), Array3::zeros((1, 1, 1)));
/// let grad = Grads::new(DenseGradMut::new(&p, &mut gpm, &mut gpl)?, DenseGradMut::new(&q, &mut gqm, &mut gql)?);
/// let mut out = Array1::zeros(2);
/// let mut work = vec![0.0; full::kl_grad_scratch(1)];
/// kl_dense_grad(&p, &q, &[1.0, 1.0], &mut out, grad, &mut work)?;
/// assert_eq!(out, array![0.5, 2.0]);
/// assert_eq!(gqm[[0, 0]], -3.0); // summed over the two pairs
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_dense_grad<'a, T: Real>(
    p: &DenseGaussians<'_, T>,
    q: &DenseGaussians<'_, T>,
    upstream: &[T],
    out: impl Into<ArrayViewMut1<'a, T>>,
    grad: Grads<DenseGradMut<'_, T>>,
    work: &mut [T],
) -> Result<(), Error> {
    let mut out = out.into();
    if q.d != p.d {
        return Err(Error::DimensionMismatch {
            what: "q",
            expected: p.d,
            found: q.d,
        });
    }
    let n = zip_len(p.n, q.n)?;
    check_len("out", n, out.len())?;
    check_len("upstream", n, upstream.len())?;
    check_work(full::kl_grad_scratch(p.d), work.len())?;
    let Grads {
        p: mut gp,
        q: mut gq,
    } = grad;
    gp.check("grad.p", p)?;
    gq.check("grad.q", q)?;
    gp.start();
    gq.start();
    for (k, o) in out.iter_mut().enumerate() {
        *o = match (pick(p, k), pick(q, k), gp.item(p, k), gq.item(q, k)) {
            (Some(a), Some(b), Some(sa), Some(sb)) => {
                full::kl_grad(&a, &b, upstream[k], Grads::new(sa, sb), work).unwrap_or(T::NAN)
            }
            _ => T::NAN,
        };
    }
    Ok(())
}
