//! The forward operations: [`kl`] and [`kl_std_normal`].

use super::{Op, Pairs, Run, check_out_work, for_tasks, pairing, plan_run, side};
use crate::error::Error;
use crate::exec::{Exec, Kernel};
use crate::full::lanes::{self, Side};
use crate::full::{blocked, scalar};
use crate::real::Real;
use crate::tril::Diagonal;
use crate::view::{Gaussians, PackedTril, row_len};

/// The scratch (in scalars) that [`kl`] needs for dimension `d` under
/// `exec`: every task's share, for the kernel and level `exec` resolves to
/// at this `d`.
///
/// # Errors
/// [`Error::LevelUnavailable`] for a forced level the host lacks;
/// [`Error::DimensionTooLarge`] when the size overflows `usize`.
///
/// ```
/// use gaussian_kl::{batch, Exec, Kernel};
/// // The lockstep block of d ≤ 16 lives on the stack.
/// assert_eq!(batch::kl_scratch::<f32>(16, &Exec::new().kernel(Kernel::Lanes))?, 0);
/// // The scalar kernel: two packed triangles and a vector.
/// assert_eq!(batch::kl_scratch::<f64>(3, &Exec::new().kernel(Kernel::Scalar))?, 15);
/// assert!(batch::kl_scratch::<f64>(usize::MAX / 2, &Exec::new()).is_err());
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_scratch<T: Real>(d: usize, exec: &Exec) -> Result<usize, Error> {
    plan_run::<T>(Op::Kl, d, exec)?.total(d)
}

/// `KL(p‖q)` for every pair of a batch (see [`Pairs`]): `out[k]` for pair
/// `k`, `out.len()` the number of pairs.
///
/// `work` must hold at least [`kl_scratch`]`(d, exec)` scalars (any
/// alignment; a longer slice is fine, its contents do not matter).
///
/// # Errors
/// [`Error::DimensionMismatch`] (`"q"`) when the sides' `d` differ;
/// [`Error::BatchMismatch`] (`"q"`) for [`Pairs::Zip`] sizes that neither
/// agree nor broadcast; [`Error::LengthMismatch`] (`"out"`);
/// [`Error::WorkspaceTooSmall`]; [`Error::LevelUnavailable`];
/// [`Error::DimensionTooLarge`]. On error `out` is untouched. An empty
/// batch needs no workspace.
///
/// ```
/// use gaussian_kl::{batch, Error, Exec, Gaussians, Kernel};
/// let p = Gaussians::new(2, 2, &[0.5f64, 0.0, 0.0, 0.0], &[0.0; 6])?;
/// let q = Gaussians::new(1, 2, &[0.0; 2], &[0.0; 3])?;
/// let exec = Exec::new().kernel(Kernel::Blocked);
/// let mut work = vec![0.0; batch::kl_scratch::<f64>(2, &exec)?];
/// let mut out = [0.0; 2];
/// batch::kl(&p, batch::Pairs::Zip(&q), &mut out, &exec, &mut work)?;
/// assert!((out[0] - 0.125).abs() < 1e-15 && out[1] == 0.0);
/// let err = batch::kl(&p, batch::Pairs::Zip(&q), &mut out[..1], &exec, &mut work);
/// assert_eq!(err, Err(Error::LengthMismatch { what: "out", expected: 2, found: 1 }));
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl<T: Real>(
    p: &Gaussians<'_, T>,
    q: Pairs<'_, T>,
    out: &mut [T],
    exec: &Exec,
    work: &mut [T],
) -> Result<(), Error> {
    let pairing = pairing(p, q)?;
    let d = p.d;
    let run = plan_run::<T>(Op::Kl, d, exec)?;
    let work = check_out_work(&run, d, pairing.n, out, work)?;
    if d == 0 || pairing.n == 0 {
        // Two point masses on the zero-dimensional space are the same.
        out.fill(T::ZERO);
        return Ok(());
    }
    let (ps, qs) = (side(p), side(q.gaussians()));
    for_tasks(&run, out, work, |start, out, work| {
        kl_part(&run, d, ps, qs, pairing.map.skip(start), out, work);
    });
    Ok(())
}

/// One task's share of [`kl`].
fn kl_part<T: Real>(
    run: &Run,
    d: usize,
    p: Side<'_, T>,
    q: Side<'_, T>,
    map: lanes::Pairs,
    out: &mut [T],
    work: &mut [T],
) {
    let done = match run.kernel {
        Kernel::Lanes => lanes::kl_lanes(run.level, d, p, q, map, out, work),
        Kernel::Blocked => blocked::kl_blocked(run.level, d, p, q, map, out, work),
        _ => false,
    };
    if !done {
        // The scalar kernel (a resolved level is always available).
        kl_scalar(d, p, q, map, out, work);
    }
}

/// A packed factor of a side.
#[inline]
fn factor<'a, T>(s: &Side<'a, T>, d: usize, k: usize) -> PackedTril<'a, T> {
    let t = row_len(d);
    PackedTril {
        d,
        data: &s.tril[k * t..(k + 1) * t],
        layout: s.layout,
        diagonal: s.diagonal,
    }
}

/// The scalar reference kernel, pair by pair; `work` holds `d(d+1) + d`.
fn kl_scalar<T: Real>(
    d: usize,
    p: Side<'_, T>,
    q: Side<'_, T>,
    map: lanes::Pairs,
    out: &mut [T],
    work: &mut [T],
) {
    let t = row_len(d);
    let (l2, rest) = work.split_at_mut(t);
    let (m, rest) = rest.split_at_mut(t);
    let y = &mut rest[..d];
    for (k, o) in out.iter_mut().enumerate() {
        let (kp, kq) = map.get(k);
        // The views validated every plain diagonal: the unpacking cannot fail.
        let log_q = factor(&q, d, kq).unpack_row_major("factors", l2);
        let log_p = factor(&p, d, kp).unpack_row_major("factors", m);
        *o = match (log_p, log_q) {
            (Ok(lp), Ok(lq)) => scalar::kl_unpacked(
                d,
                &p.means[kp * d..(kp + 1) * d],
                &q.means[kq * d..(kq + 1) * d],
                l2,
                m,
                y,
                lp - lq,
            ),
            _ => T::NAN,
        };
    }
}

/// The scratch (in scalars) that [`kl_std_normal`] needs: `0` (no solve).
///
/// # Errors
/// [`Error::LevelUnavailable`]; [`Error::Unsupported`] for a kernel other
/// than `Auto` or `Scalar`; [`Error::DimensionTooLarge`].
///
/// ```
/// use gaussian_kl::{batch, Exec};
/// assert_eq!(batch::kl_std_normal_scratch::<f32>(64, &Exec::new())?, 0);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_std_normal_scratch<T: Real>(d: usize, exec: &Exec) -> Result<usize, Error> {
    plan_run::<T>(Op::KlStdNormal, d, exec)?.total(d)
}

/// `KL(p[k]‖N(0, I))` for every Gaussian of a batch (the VAE prior term):
/// `½(‖μ‖² + ‖L‖²_F − 2 Σ log Lᵢᵢ − d)`, no solve, by the scalar kernel
/// ([`Kernel::Auto`](crate::Kernel::Auto) or `Scalar`), bit-identical to the
/// single-Gaussian KL against `N(0, I)`. `out.len() == p.len()`.
///
/// # Errors
/// [`Error::LengthMismatch`] (`"out"`); [`Error::WorkspaceTooSmall`];
/// [`Error::LevelUnavailable`]; [`Error::Unsupported`] (`"kernel"`) for
/// `Lanes` or `Blocked`. On error `out` is untouched.
///
/// ```
/// use gaussian_kl::{batch, Exec, Gaussians};
/// // N((1, 0), I) and N(0, I) itself.
/// let p = Gaussians::new(2, 2, &[1.0f64, 0.0, 0.0, 0.0], &[0.0; 6])?;
/// let mut out = [9.0; 2];
/// batch::kl_std_normal(&p, &mut out, &Exec::new(), &mut [])?;
/// assert_eq!(out, [0.5, 0.0]);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
pub fn kl_std_normal<T: Real>(
    p: &Gaussians<'_, T>,
    out: &mut [T],
    exec: &Exec,
    work: &mut [T],
) -> Result<(), Error> {
    let d = p.d;
    let run = plan_run::<T>(Op::KlStdNormal, d, exec)?;
    check_out_work(&run, d, p.n, out, work)?;
    let ps = side(p);
    for_tasks(&run, out, &mut [], |start, out, _| {
        for (k, o) in out.iter_mut().enumerate() {
            let g = start + k;
            *o = std_normal_one(factor(&ps, d, g), &ps.means[g * d..(g + 1) * d]);
        }
    });
    Ok(())
}

/// `Σ log Lᵢᵢ` of a validated factor (a log diagonal sums its raw values).
pub(super) fn log_diag_sum<T: Real>(l: &PackedTril<'_, T>) -> T {
    let mut log_sum = T::ZERO;
    for i in 0..l.d {
        let raw = l.raw(i, i);
        log_sum += match l.diagonal {
            Diagonal::Log => raw,
            Diagonal::Plain => raw.ln(),
        };
    }
    log_sum
}

/// `KL(N(mean, L Lᵀ)‖N(0, I))` of one validated Gaussian.
fn std_normal_one<T: Real>(l: PackedTril<'_, T>, mean: &[T]) -> T {
    let log_sum = log_diag_sum(&l);
    let entry = |i: usize, j: usize| {
        let raw = l.raw(i, j);
        if i == j && l.diagonal == Diagonal::Log {
            raw.exp()
        } else {
            raw
        }
    };
    scalar::kl_std_normal_with(l.d, mean, entry, log_sum)
}
