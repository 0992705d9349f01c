//! Batched full-rank KL over contiguous slices in PyTorch's memory layout,
//! with broadcasting (needs the `std` feature).
//!
//! A batch of `n` Gaussians of dimension `d` is a [`Gaussians`]: `n × d`
//! means and `n × d(d+1)/2` packed factors, one after the other (what
//! `torch.Tensor.contiguous()` gives for shapes `(n, d)` and `(n, d(d+1)/2)`).
//!
//! | function | pairs | `out.len()` |
//! |---|---|---|
//! | [`kl_full`] | `p[k]` vs `q[k]`; a batch of one broadcasts (one `q` vs many `p`, one `p` vs many `q`) | `max(n_p, n_q)` |
//! | [`kl_full_all_pairs`] | every `p[i]` vs every `q[j]`, row-major | `n_p · n_q` |
//!
//! Each has a `Vec`-returning twin ([`kl_full_vec`], [`kl_full_all_pairs_vec`]).
//! [`Options`] picks the SIMD level, the kernel and (with the `rayon`
//! feature) multi-core execution; the free functions use the defaults.
//!
//! Kernels: for `d ≤ 16`, the lockstep kernel (one pair per SIMD lane); above,
//! the register-blocked kernel (one pair at a time, rows vectorized). Results
//! agree with [`full::kl`](crate::full::kl) on each pair to rounding (the
//! SIMD kernels fuse multiply-adds and multiply by reciprocals of the
//! diagonal), and do not depend on the batch size, the position of a pair in
//! the batch, or on `rayon`.
//!
//! ```
//! use gaussian_kl::batch::{self, Gaussians};
//! // Three posteriors p (d = 2, raw log diagonal) against the prior-like q.
//! let means_p = [0.1f32, -0.3, 0.0, 0.2, 1.0, 1.0];
//! let tril_p = [0.2f32, 0.5, -0.1, 0.0, 0.0, 0.0, -0.5, 0.3, 0.1];
//! let (means_q, tril_q) = ([0.0f32; 2], [0.0f32; 3]);
//! let p = Gaussians::new(2, &means_p, &tril_p);
//! let q = Gaussians::new(2, &means_q, &tril_q);
//! let kl = batch::kl_full_vec(&p, &q)?;
//! assert_eq!(kl.len(), 3);
//! assert!((kl[1] - 0.5 * 0.2 * 0.2).abs() < 1e-6); // p[1] = N((0, 0.2), I)
//! # Ok::<(), gaussian_kl::Error>(())
//! ```

use crate::error::{Error, check_len};
use crate::full::{blocked, lanes};
use crate::real::Real;
use crate::simd::{Level, SimdReal};
use crate::tril::{Diagonal, Layout, tril_len};
use crate::view::PackedTril;
use std::vec;
use std::vec::Vec;

/// A batch of Gaussians of dimension `d`, contiguous, PyTorch's layout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gaussians<'a, T> {
    /// The dimension.
    pub d: usize,
    /// `n × d` means, row by row.
    pub means: &'a [T],
    /// `n × d(d+1)/2` packed factors, one after the other.
    pub tril: &'a [T],
    /// Order of each packed factor.
    pub layout: Layout,
    /// Encoding of the diagonals.
    pub diagonal: Diagonal,
}

impl<'a, T: Real> Gaussians<'a, T> {
    /// Row-major (PyTorch) packed factors with raw log diagonals.
    pub const fn new(d: usize, means: &'a [T], tril: &'a [T]) -> Self {
        Gaussians {
            d,
            means,
            tril,
            layout: Layout::RowMajor,
            diagonal: Diagonal::Log,
        }
    }

    /// The same numbers read in another packed layout.
    pub const fn layout(self, layout: Layout) -> Self {
        Gaussians { layout, ..self }
    }

    /// The same numbers with another diagonal encoding.
    pub const fn diagonal(self, diagonal: Diagonal) -> Self {
        Gaussians { diagonal, ..self }
    }

    /// Number of Gaussians, after checking that the slices agree; `None`
    /// when `d = 0` (then the slices are empty whatever the count).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if `means` is not a multiple of `d` long or
    /// `tril` does not hold `d(d+1)/2` numbers per mean.
    pub fn count(&self) -> Result<Option<usize>, Error> {
        self.count_named("means", "tril")
    }

    fn count_named(&self, means: &'static str, tril: &'static str) -> Result<Option<usize>, Error> {
        let d = self.d;
        let t = tril_len(d).ok_or(Error::DimensionTooLarge { d })?;
        if d == 0 {
            check_len(means, 0, self.means.len())?;
            check_len(tril, 0, self.tril.len())?;
            return Ok(None);
        }
        let n = self.means.len() / d;
        check_len(means, n * d, self.means.len())?;
        let need = n.checked_mul(t).ok_or(Error::DimensionTooLarge { d })?;
        check_len(tril, need, self.tril.len())?;
        Ok(Some(n))
    }

    fn side(&self) -> lanes::Side<'a, T> {
        lanes::Side {
            means: self.means,
            tril: self.tril,
            layout: self.layout,
            diagonal: self.diagonal,
        }
    }

    /// Checks every plain diagonal entry (`index` = pair · d + row).
    fn check_diag(&self, what: &'static str, n: usize) -> Result<(), Error> {
        if self.diagonal == Diagonal::Log || n == 0 {
            return Ok(());
        }
        let d = self.d;
        let t = tril_len(d).ok_or(Error::DimensionTooLarge { d })?;
        for k in 0..n {
            for i in 0..d {
                if self.tril[k * t + self.layout.index(d, i, i)] <= T::ZERO {
                    return Err(Error::NonPositiveDiagonal {
                        what,
                        item: Some(k),
                        index: i,
                        value: self.tril[k * t + self.layout.index(d, i, i)].to_f64(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Which kernel computes a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kernel {
    /// Lockstep for `d ≤ 16`, blocked above (the default).
    #[default]
    Auto,
    /// The scalar reference, one [`full::kl`](crate::full::kl) call per pair.
    Scalar,
    /// The lockstep kernel (one pair per SIMD lane), any `d`.
    Lanes,
    /// The register-blocked kernel (one pair at a time), any `d`.
    Blocked,
}

/// Settings for the batched functions: SIMD level, kernel, threads.
///
/// ```
/// use gaussian_kl::batch::{Gaussians, Kernel, Options};
/// use gaussian_kl::simd::Level;
/// let (m, t) = ([0.5f64, 0.0], [0.0f64, 0.0, 0.0]);
/// let g = Gaussians::new(2, &m, &t);
/// let z = Gaussians::new(2, &[0.0; 2], &t);
/// let opts = Options::new().level(Level::Scalar).unwrap().kernel(Kernel::Lanes);
/// let mut out = [0.0];
/// opts.kl_full(&g, &z, &mut out)?;
/// assert!((out[0] - 0.125).abs() < 1e-15);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    level: Level,
    kernel: Kernel,
    parallel: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            level: Level::detect(),
            kernel: Kernel::Auto,
            parallel: false,
        }
    }
}

/// Batches at least this long are split across threads (with `rayon`).
#[cfg(feature = "rayon")]
const PAR_CHUNK: usize = 1024;

impl Options {
    /// The defaults: best detected level, [`Kernel::Auto`], one thread.
    pub fn new() -> Self {
        Self::default()
    }

    /// The SIMD level and kernel (for the gradient layer).
    pub(crate) fn level_and_kernel(&self) -> (Level, Kernel) {
        (self.level, self.kernel)
    }

    /// Forces a SIMD level; `None` if the host lacks it.
    pub fn level(self, level: Level) -> Option<Self> {
        level.is_available().then_some(Options { level, ..self })
    }

    /// Forces a kernel.
    pub fn kernel(self, kernel: Kernel) -> Self {
        Options { kernel, ..self }
    }

    /// Splits large batches across rayon's thread pool. Results are
    /// bit-identical to the serial run.
    #[cfg(feature = "rayon")]
    pub fn parallel(self, parallel: bool) -> Self {
        Options { parallel, ..self }
    }

    /// [`kl_full`] with these options.
    ///
    /// # Errors
    /// As [`kl_full`].
    pub fn kl_full<T: SimdReal>(
        &self,
        p: &Gaussians<'_, T>,
        q: &Gaussians<'_, T>,
        out: &mut [T],
    ) -> Result<(), Error> {
        self.zip(p, q, out, None)
    }

    fn zip<T: SimdReal>(
        &self,
        p: &Gaussians<'_, T>,
        q: &Gaussians<'_, T>,
        out: &mut [T],
        work: Option<&mut [T]>,
    ) -> Result<(), Error> {
        let (d, np, nq) = check_sides(p, q)?;
        let (np, nq) = (np.unwrap_or(out.len()), nq.unwrap_or(out.len()));
        let n = if np == nq || nq == 1 {
            np
        } else if np == 1 {
            nq
        } else {
            return Err(Error::LengthMismatch {
                what: "q (batch size; 1 broadcasts)",
                expected: np,
                found: nq,
            });
        };
        check_len("out", n, out.len())?;
        if d == 0 {
            out.fill(T::ZERO);
            return Ok(());
        }
        p.check_diag("p.tril", np)?;
        q.check_diag("q.tril", nq)?;
        if n == 0 {
            // Nothing to compute: no workspace either (`d` may be absurd).
            return Ok(());
        }
        let pairs = lanes::Pairs::Zip {
            base: 0,
            step_p: usize::from(np != 1),
            step_q: usize::from(nq != 1),
        };
        self.run(d, p, q, pairs, out, work);
        Ok(())
    }

    /// [`Options::kl_full`] in a caller's workspace: never allocates. `work`
    /// must hold at least [`workspace_len`]`(d)` scalars. Runs on the calling
    /// thread whatever [`Options::parallel`] says (each thread would need a
    /// workspace of its own).
    ///
    /// # Errors
    /// As [`kl_full`]; [`Error::WorkspaceTooSmall`].
    pub fn kl_full_with_work<T: SimdReal>(
        &self,
        p: &Gaussians<'_, T>,
        q: &Gaussians<'_, T>,
        out: &mut [T],
        work: &mut [T],
    ) -> Result<(), Error> {
        check_work(p.d, work)?;
        self.zip(p, q, out, Some(work))
    }

    /// [`Options::kl_full_all_pairs`] in a caller's workspace, as
    /// [`Options::kl_full_with_work`].
    ///
    /// # Errors
    /// As [`kl_full_all_pairs`]; [`Error::WorkspaceTooSmall`].
    pub fn kl_full_all_pairs_with_work<T: SimdReal>(
        &self,
        p: &Gaussians<'_, T>,
        q: &Gaussians<'_, T>,
        out: &mut [T],
        work: &mut [T],
    ) -> Result<(), Error> {
        check_work(p.d, work)?;
        self.all_pairs(p, q, out, Some(work))
    }

    /// [`kl_full_all_pairs`] with these options.
    ///
    /// # Errors
    /// As [`kl_full_all_pairs`].
    pub fn kl_full_all_pairs<T: SimdReal>(
        &self,
        p: &Gaussians<'_, T>,
        q: &Gaussians<'_, T>,
        out: &mut [T],
    ) -> Result<(), Error> {
        self.all_pairs(p, q, out, None)
    }

    fn all_pairs<T: SimdReal>(
        &self,
        p: &Gaussians<'_, T>,
        q: &Gaussians<'_, T>,
        out: &mut [T],
        work: Option<&mut [T]>,
    ) -> Result<(), Error> {
        let (d, np, nq) = check_sides(p, q)?;
        if d == 0 {
            out.fill(T::ZERO);
            return Ok(());
        }
        let (np, nq) = (np.unwrap_or(0), nq.unwrap_or(0));
        let n = np.checked_mul(nq).ok_or(Error::DimensionTooLarge { d })?;
        check_len("out", n, out.len())?;
        p.check_diag("p.tril", np)?;
        q.check_diag("q.tril", nq)?;
        if n == 0 {
            return Ok(());
        }
        self.run(d, p, q, lanes::Pairs::All { base: 0, n_q: nq }, out, work);
        Ok(())
    }

    fn run<T: SimdReal>(
        &self,
        d: usize,
        p: &Gaussians<'_, T>,
        q: &Gaussians<'_, T>,
        pairs: lanes::Pairs,
        out: &mut [T],
        work: Option<&mut [T]>,
    ) {
        if let Some(work) = work {
            return self.run_serial_in(d, p, q, pairs, out, work);
        }
        #[cfg(feature = "rayon")]
        if self.parallel && out.len() > PAR_CHUNK {
            use rayon::prelude::*;
            out.par_chunks_mut(PAR_CHUNK)
                .enumerate()
                .for_each(|(c, chunk)| self.run_serial(d, p, q, pairs.skip(c * PAR_CHUNK), chunk));
            return;
        }
        self.run_serial(d, p, q, pairs, out);
    }

    /// One workspace for this call (none for the lockstep kernel at
    /// `d ≤ 16`), then [`Options::run_serial_in`].
    fn run_serial<T: SimdReal>(
        &self,
        d: usize,
        p: &Gaussians<'_, T>,
        q: &Gaussians<'_, T>,
        pairs: lanes::Pairs,
        out: &mut [T],
    ) {
        let need = match self.resolve(d) {
            Kernel::Lanes => lanes::work_len(d),
            Kernel::Blocked => blocked::work_len(d),
            _ => scalar_work_len(d),
        };
        let mut work = vec![T::ZERO; need];
        self.run_serial_in(d, p, q, pairs, out, &mut work);
    }

    /// The kernel that `Auto` stands for at `d`.
    fn resolve(&self, d: usize) -> Kernel {
        match self.kernel {
            Kernel::Auto if d <= lanes::MAX_FIXED_D => Kernel::Lanes,
            Kernel::Auto => Kernel::Blocked,
            k => k,
        }
    }

    fn run_serial_in<T: SimdReal>(
        &self,
        d: usize,
        p: &Gaussians<'_, T>,
        q: &Gaussians<'_, T>,
        pairs: lanes::Pairs,
        out: &mut [T],
        work: &mut [T],
    ) {
        let (ps, qs) = (p.side(), q.side());
        let ok = match self.resolve(d) {
            Kernel::Lanes => lanes::kl_lanes(self.level, d, ps, qs, pairs, out, work),
            Kernel::Blocked => blocked::kl_blocked(self.level, d, ps, qs, pairs, out, work),
            _ => false,
        };
        if ok {
            return;
        }
        // The level is unavailable (or the scalar kernel was asked for).
        if work.len() >= scalar_work_len(d) {
            scalar_loop(d, p, q, pairs, out, work);
        } else {
            scalar_loop(d, p, q, pairs, out, &mut vec![T::ZERO; scalar_work_len(d)]);
        }
    }
}

/// The scalar loop's workspace.
const fn scalar_work_len(d: usize) -> usize {
    crate::full::kl_scratch(d)
}

/// Workspace length (in scalars) that [`Options::kl_full_with_work`] and
/// [`Options::kl_full_all_pairs_with_work`] need for dimension `d`, whatever
/// the kernel and level: `O(d²)`. Saturates at `usize::MAX`.
///
/// ```
/// use gaussian_kl::batch::{self, Gaussians, Options};
/// let (m, t) = ([0.5f32, 0.0], [0.0f32; 3]);
/// let mut work = vec![0.0f32; batch::workspace_len(2)];
/// let mut out = [0.0f32];
/// let g = Gaussians::new(2, &m, &t);
/// Options::new().kl_full_with_work(&g, &Gaussians::new(2, &[0.0; 2], &t), &mut out, &mut work)?;
/// assert!((out[0] - 0.125).abs() < 1e-7);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub const fn workspace_len(d: usize) -> usize {
    let (a, b, c) = (lanes::work_len(d), blocked::work_len(d), scalar_work_len(d));
    let ab = if a > b { a } else { b };
    if ab > c { ab } else { c }
}

fn check_work<T>(d: usize, work: &[T]) -> Result<(), Error> {
    let need = workspace_len(d);
    if work.len() < need {
        return Err(Error::WorkspaceTooSmall {
            expected: need,
            found: work.len(),
        });
    }
    Ok(())
}

/// The scalar reference, one checked call per pair (shapes already checked,
/// so the calls cannot fail; a failure would surface as NaN).
fn scalar_loop<T: Real>(
    d: usize,
    p: &Gaussians<'_, T>,
    q: &Gaussians<'_, T>,
    pairs: lanes::Pairs,
    out: &mut [T],
    work: &mut [T],
) {
    let t = tril_len(d).unwrap_or(0); // fits: the slices hold n · t numbers
    for (k, o) in out.iter_mut().enumerate() {
        let (kp, kq) = pairs.get(k);
        let lp = PackedTril {
            d,
            data: &p.tril[kp * t..kp * t + t],
            layout: p.layout,
            diagonal: p.diagonal,
        };
        let lq = PackedTril {
            d,
            data: &q.tril[kq * t..kq * t + t],
            layout: q.layout,
            diagonal: q.diagonal,
        };
        let mp = &p.means[kp * d..kp * d + d];
        let mq = &q.means[kq * d..kq * d + d];
        *o = crate::full::kl_packed(mp, lp, mq, lq, work).unwrap_or(T::NAN);
    }
}

/// Checks both sides and their common `d`; returns `(d, n_p, n_q)`.
fn check_sides<T: Real>(
    p: &Gaussians<'_, T>,
    q: &Gaussians<'_, T>,
) -> Result<(usize, Option<usize>, Option<usize>), Error> {
    if q.d != p.d {
        return Err(Error::DimensionMismatch {
            what: "q",
            expected: p.d,
            found: q.d,
        });
    }
    let np = p.count_named("p.means", "p.tril")?;
    let nq = q.count_named("q.means", "q.tril")?;
    Ok((p.d, np, nq))
}

/// `out[k] = KL(p[k] ‖ q[k])`, where a batch of one broadcasts against the
/// other (one `q` against many `p`, or one `p` against many `q`).
///
/// With `d = 0` the means and factors are empty whatever the batch size, so
/// `out` sets it, and is filled with `0`.
///
/// # Errors
/// [`Error::DimensionMismatch`] if `q.d != p.d`; [`Error::LengthMismatch`]
/// for a means slice that is not a multiple of `d` long, a factor slice that
/// does not match its means, batch sizes that neither agree nor broadcast, or
/// `out` of the wrong length; [`Error::NonPositiveDiagonal`] for a plain
/// diagonal entry `≤ 0` (`index` = pair · `d` + row).
pub fn kl_full<T: SimdReal>(
    p: &Gaussians<'_, T>,
    q: &Gaussians<'_, T>,
    out: &mut [T],
) -> Result<(), Error> {
    Options::new().kl_full(p, q, out)
}

/// [`kl_full`] into a new `Vec` (`d` must be at least 1, since the batch size
/// is read from the means).
///
/// # Errors
/// As [`kl_full`].
pub fn kl_full_vec<T: SimdReal>(
    p: &Gaussians<'_, T>,
    q: &Gaussians<'_, T>,
) -> Result<Vec<T>, Error> {
    let (_, np, nq) = check_sides(p, q)?;
    let n = match (np, nq) {
        (Some(1), Some(b)) => b,
        (Some(a), _) => a,
        _ => 0,
    };
    let mut out = vec![T::ZERO; n];
    kl_full(p, q, &mut out)?;
    Ok(out)
}

/// `out[i · n_q + j] = KL(p[i] ‖ q[j])` for every pair (the `n_p × n_q`
/// matrix, row-major).
///
/// # Errors
/// As [`kl_full`], with `out.len()` required to be `n_p · n_q`.
///
/// ```
/// use gaussian_kl::batch::{self, Gaussians};
/// let means = [0.0f64, 1.0, 2.0]; // three 1-d Gaussians, unit variance
/// let tril = [0.0f64; 3];
/// let g = Gaussians::new(1, &means, &tril);
/// let m = batch::kl_full_all_pairs_vec(&g, &g)?;
/// assert_eq!(m.len(), 9);
/// assert_eq!(m[0 * 3 + 2], 2.0); // ½ (0 − 2)²
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_full_all_pairs<T: SimdReal>(
    p: &Gaussians<'_, T>,
    q: &Gaussians<'_, T>,
    out: &mut [T],
) -> Result<(), Error> {
    Options::new().kl_full_all_pairs(p, q, out)
}

/// [`kl_full_all_pairs`] into a new `Vec`.
///
/// # Errors
/// As [`kl_full_all_pairs`].
pub fn kl_full_all_pairs_vec<T: SimdReal>(
    p: &Gaussians<'_, T>,
    q: &Gaussians<'_, T>,
) -> Result<Vec<T>, Error> {
    let (_, np, nq) = check_sides(p, q)?;
    let n = np
        .unwrap_or(0)
        .checked_mul(nq.unwrap_or(0))
        .ok_or(Error::DimensionTooLarge { d: p.d })?;
    let mut out = vec![T::ZERO; n];
    kl_full_all_pairs(p, q, &mut out)?;
    Ok(out)
}
