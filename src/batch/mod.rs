//! Batched full-rank KL divergences and their gradients (feature `std`).
//!
//! A batch is a [`Gaussians`] view (PyTorch's memory layout: `n × d` means,
//! `n × d(d+1)/2` packed factors). [`Pairs`] says which `q` each `p` meets:
//!
//! | `q` | pairs | `out.len()` |
//! |---|---|---|
//! | [`Pairs::Zip`] | `p[k]` vs `q[k]`; a batch of one broadcasts | `max(n_p, n_q)` (or `0`) |
//! | [`Pairs::All`] | every `p[i]` vs every `q[j]`, row-major | `n_p · n_q` |
//!
//! | operation | scratch |
//! |---|---|
//! | [`kl`] | [`kl_scratch`] |
//! | [`kl_std_normal`] (against `N(0, I)`, the VAE prior) | [`kl_std_normal_scratch`] |
//! | [`kl_grad`] | [`kl_grad_scratch`] |
//! | [`kl_std_normal_grad`] | [`kl_std_normal_grad_scratch`] |
//!
//! Every operation takes an [`Exec`] (threads, SIMD level, kernel) and a
//! caller workspace `work` at least as long as its scratch function says for
//! that `d` and that `Exec`; the batch layer never allocates. Every input,
//! output and workspace shape is checked before anything is written: on
//! `Err` the outputs are untouched.
//!
//! ## Kernels
//! [`Kernel::Auto`] runs the lockstep kernel (one pair
//! per SIMD lane) for `d ≤ 16` and the register-blocked kernel (one pair at a
//! time, rows vectorized) above for [`kl`], the lockstep kernel for `d ≤ 64`
//! (`f32`; `d ≤ 48` for `f64`; with vectors narrower than 64 bytes `d ≤ 36`
//! and `d ≤ 22`) and the blocked one above for [`kl_grad`] (crossovers
//! measured, see `grad_lanes_max_d`), and the scalar kernel for the two operations
//! against `N(0, I)` (which have no SIMD kernel: forcing `Lanes` or
//! `Blocked` there is [`Error::Unsupported`]). The SIMD
//! kernels agree with the scalar one to rounding (fused multiply-adds,
//! reciprocals of the diagonal) and do not depend on the batch size, a
//! pair's position in the batch or the number of tasks.
//!
//! ## Threads
//! [`Par::Rayon`](crate::Par) (feature `rayon`) splits the forward operations
//! into [`Exec::tasks`] contiguous parts, each with its own slice of `work`
//! (the scratch functions count every task), bit-identical to
//! [`Par::Seq`]. The gradient operations run on the calling
//! thread: `Par::Rayon` is [`Error::Unsupported`] there.
//!
//! ```
//! use gaussian_kl::{batch, Exec, Gaussians};
//! // Three posteriors p (d = 2, raw log diagonal) against one prior-like q.
//! let means_p = [0.1f32, -0.3, 0.0, 0.2, 1.0, 1.0];
//! let factors_p = [0.2f32, 0.5, -0.1, 0.0, 0.0, 0.0, -0.5, 0.3, 0.1];
//! let p = Gaussians::new(3, 2, &means_p, &factors_p)?;
//! let q = Gaussians::new(1, 2, &[0.0; 2], &[0.0; 3])?;
//! let exec = Exec::new();
//! let mut work = vec![0.0; batch::kl_scratch::<f32>(2, &exec)?];
//! let mut out = [0.0f32; 3];
//! batch::kl(&p, batch::Pairs::Zip(&q), &mut out, &exec, &mut work)?;
//! assert!((out[1] - 0.5 * 0.2 * 0.2).abs() < 1e-6); // p[1] = N((0, 0.2), I)
//! # Ok::<(), gaussian_kl::Error>(())
//! ```

mod full;
mod grad;

pub use full::{kl, kl_scratch, kl_std_normal, kl_std_normal_scratch};
pub use grad::{kl_grad, kl_grad_scratch, kl_std_normal_grad, kl_std_normal_grad_scratch};

use crate::error::{Error, check_len, check_work};
use crate::exec::{Exec, Kernel, Par};
use crate::full::blocked_grad;
use crate::full::lanes::{self, Side};
use crate::real::Real;
use crate::simd::Level;
use crate::tril::tril_len;
use crate::view::Gaussians;

/// Which `q` each `p` of a batch meets.
///
/// ```
/// use gaussian_kl::{batch, Exec, Gaussians};
/// // Three 1-d Gaussians N(0, 1), N(1, 1), N(2, 1) (raw log diagonal 0).
/// let g = Gaussians::new(3, 1, &[0.0f64, 1.0, 2.0], &[0.0; 3])?;
/// let exec = Exec::new();
/// let mut work = vec![0.0; batch::kl_scratch::<f64>(1, &exec)?];
/// let mut m = [0.0; 9];
/// batch::kl(&g, batch::Pairs::All(&g), &mut m, &exec, &mut work)?;
/// assert_eq!(m[0 * 3 + 2], 2.0); // ½ (0 − 2)²
/// let mut diag = [1.0; 3];
/// batch::kl(&g, batch::Pairs::Zip(&g), &mut diag, &exec, &mut work)?;
/// assert_eq!(diag, [0.0; 3]);
/// # Ok::<(), gaussian_kl::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pairs<'a, T> {
    /// `p[k]` against `q[k]`. The sizes agree, or one side holds a single
    /// Gaussian, which broadcasts against every Gaussian of the other (its
    /// gradient is then summed over the pairs).
    Zip(&'a Gaussians<'a, T>),
    /// Every `p[i]` against every `q[j]`: the `n_p × n_q` matrix, row-major
    /// (`out[i · n_q + j]`).
    All(&'a Gaussians<'a, T>),
}

impl<'a, T> Pairs<'a, T> {
    /// The `q` side.
    fn gaussians(&self) -> &'a Gaussians<'a, T> {
        match *self {
            Pairs::Zip(q) | Pairs::All(q) => q,
        }
    }
}

/// The operations, for the policy checks and the scratch sizes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Kl,
    KlStdNormal,
    KlGrad,
    KlStdNormalGrad,
}

/// How a checked call runs: the level, the concrete kernel, the tasks and
/// each task's scratch.
#[derive(Clone, Copy, Debug)]
struct Run {
    level: Level,
    kernel: Kernel,
    tasks: usize,
    per_task: usize,
}

impl Run {
    /// The whole scratch.
    fn total(&self, d: usize) -> Result<usize, Error> {
        self.per_task
            .checked_mul(self.tasks)
            .filter(|_| self.per_task != usize::MAX)
            .ok_or(Error::DimensionTooLarge { d })
    }
}

/// The largest `d` at which [`Kernel::Auto`] runs the gradient's lockstep
/// kernel (the blocked one above), by scalar type and vector width.
/// Measured on a Sapphire Rapids-class Xeon, batches of 512, lockstep vs
/// blocked pairs/s (both kernels as of the 4 × 4-tiled lockstep backward
/// and the shuffle-transposed blocked gradient):
/// - 64-byte vectors (AVX-512): `f32` d = 64 101 k vs 95–97 k, d = 72
///   79 k vs 71 k, d = 80 57 k vs 57 k; `f64` d = 48 112 k vs 107–108 k,
///   d = 52 91 k vs 94 k, d = 56 73–76 k vs 77–87 k.
/// - Narrower (the AVX2 level forced on the same machine): `f32` d = 36
///   246 k vs 238 k, d = 40 188–191 k vs 204–206 k; `f64` d = 20 607 k vs
///   566 k, d = 24 374 k vs 391 k.
///
/// The lockstep block grows as `d² · lanes` (1.25 MB at `f32` d = 80 with 16
/// lanes), so the wide-vector crossover is kept at the measured even point,
/// not past it.
const fn grad_lanes_max_d(wide: bool, f64: bool) -> usize {
    match (wide, f64) {
        (true, false) => 64,
        (true, true) => 48,
        (false, false) => 36,
        (false, true) => 22,
    }
}

/// Checks `exec` against the operation and sizes its scratch for `d`.
fn plan_run<T: Real>(op: Op, d: usize, exec: &Exec) -> Result<Run, Error> {
    let level = exec.resolved_level()?;
    let t = tril_len(d).ok_or(Error::DimensionTooLarge { d })?;
    let lanes_t = level.lanes::<T>();
    let kernel = match (op, exec.kernel) {
        (Op::Kl, Kernel::Auto) if d <= lanes::MAX_FIXED_D => Kernel::Lanes,
        (Op::Kl, Kernel::Auto) => Kernel::Blocked,
        (Op::KlGrad, Kernel::Auto)
            if d <= grad_lanes_max_d(
                lanes_t * core::mem::size_of::<T>() >= 64,
                core::mem::size_of::<T>() == 8,
            ) =>
        {
            Kernel::Lanes
        }
        (Op::KlGrad, Kernel::Auto) => Kernel::Blocked,
        (Op::KlStdNormal | Op::KlStdNormalGrad, Kernel::Auto) => Kernel::Scalar,
        (Op::KlStdNormal | Op::KlStdNormalGrad, Kernel::Lanes | Kernel::Blocked) => {
            return Err(Error::Unsupported {
                what: "kernel",
                why: "the KL against N(0, I) has only the scalar kernel (Auto or Scalar)",
            });
        }
        (_, k) => k,
    };
    let tasks = match (op, exec.par) {
        (_, Par::Seq) => 1,
        #[cfg(feature = "rayon")]
        (Op::Kl | Op::KlStdNormal, Par::Rayon(_)) => exec.tasks(),
        #[cfg(feature = "rayon")]
        (Op::KlGrad | Op::KlStdNormalGrad, Par::Rayon(_)) => {
            return Err(Error::Unsupported {
                what: "par",
                why: "the gradient operations run on the calling thread (Par::Seq)",
            });
        }
    };
    // An overflow is reported when the scratch is asked for (`Run::total`):
    // an empty batch needs none, whatever `d`.
    let per_task = task_scratch(op, kernel, d, t, lanes_t).unwrap_or(usize::MAX);
    Ok(Run {
        level,
        kernel,
        tasks,
        per_task,
    })
}

/// One task's scratch (`None` on overflow).
fn task_scratch(op: Op, kernel: Kernel, d: usize, t: usize, lanes: usize) -> Option<usize> {
    let d2 = d.checked_mul(d)?;
    match (op, kernel) {
        (Op::KlStdNormal | Op::KlStdNormalGrad, _) => Some(0),
        // The lockstep block lives on the stack up to d = 16.
        (_, Kernel::Lanes) if d <= lanes::MAX_FIXED_D => Some(0),
        // (a, m, y): d², d², d vectors.
        (Op::Kl, Kernel::Lanes) => d2.checked_mul(2)?.checked_add(d)?.checked_mul(lanes),
        // (a, m, w, y, z, lpd, lqd): 3d² + 4d vectors.
        (Op::KlGrad, Kernel::Lanes) => d2
            .checked_mul(3)?
            .checked_add(d.checked_mul(4)?)?
            .checked_mul(lanes),
        // d rows of d + 1 columns rounded up to whole vectors, L_q, 1/L_qᵢᵢ.
        (Op::Kl, Kernel::Blocked) => {
            let w = d.checked_add(1)?.div_ceil(lanes).checked_mul(lanes)?;
            d.checked_mul(w)?.checked_add(t)?.checked_add(d)
        }
        // (L_q, L_p → M, y).
        (Op::Kl, _) => t.checked_mul(2)?.checked_add(d),
        (Op::KlGrad, Kernel::Blocked) => blocked_grad::scratch(d, lanes),
        // One pair's workspace (L_q, M, W, y, z, diag L_p) and its four
        // gradients.
        (Op::KlGrad, _) => t.checked_add(d)?.checked_mul(5),
    }
}

/// The pairing of a checked call.
#[derive(Clone, Copy, Debug)]
struct Pairing {
    /// The number of pairs.
    n: usize,
    /// Output index → (p index, q index).
    map: lanes::Pairs,
    /// Whether every Gaussian of both sides is in exactly one pair.
    one_to_one: bool,
}

/// Checks `p` against `q` and returns the pairing.
fn pairing<T>(p: &Gaussians<'_, T>, q: Pairs<'_, T>) -> Result<Pairing, Error> {
    let g = q.gaussians();
    if g.d != p.d {
        return Err(Error::DimensionMismatch {
            what: "q",
            expected: p.d,
            found: g.d,
        });
    }
    let (np, nq) = (p.n, g.n);
    match q {
        Pairs::Zip(_) => {
            let n = if np == nq || nq == 1 {
                np
            } else if np == 1 {
                nq
            } else {
                return Err(Error::BatchMismatch {
                    what: "q",
                    expected: np,
                    found: nq,
                });
            };
            let (step_p, step_q) = (usize::from(np != 1), usize::from(nq != 1));
            Ok(Pairing {
                n,
                map: lanes::Pairs::Zip {
                    base: 0,
                    step_p,
                    step_q,
                },
                one_to_one: step_p == 1 && step_q == 1,
            })
        }
        Pairs::All(_) => Ok(Pairing {
            n: np
                .checked_mul(nq)
                .ok_or(Error::DimensionTooLarge { d: p.d })?,
            map: lanes::Pairs::All { base: 0, n_q: nq },
            one_to_one: false,
        }),
    }
}

/// The kernels' view of a batch.
fn side<'a, T>(g: &Gaussians<'a, T>) -> Side<'a, T> {
    Side {
        means: g.means,
        tril: g.factors,
        layout: g.layout,
        diagonal: g.diagonal,
    }
}

/// Checks `out` and the workspace; returns the workspace's needed prefix.
/// An empty batch needs no workspace (its callers return before any kernel).
fn check_out_work<'w, T>(
    run: &Run,
    d: usize,
    n: usize,
    out: &[T],
    work: &'w mut [T],
) -> Result<&'w mut [T], Error> {
    check_len("out", n, out.len())?;
    if n == 0 {
        return Ok(&mut work[..0]);
    }
    let total = run.total(d)?;
    check_work(total, work.len())?;
    Ok(&mut work[..total])
}

/// Runs `f(first output index, outputs, task workspace)` on contiguous
/// parts of `out`: one part on the calling thread for one task, else
/// `tasks` parts on rayon, each with its own `per_task` slice of `work`.
fn for_tasks<T, F>(run: &Run, out: &mut [T], work: &mut [T], f: F)
where
    T: Send,
    F: Fn(usize, &mut [T], &mut [T]) + Sync,
{
    if run.tasks <= 1 || out.len() <= 1 {
        f(0, out, work);
        return;
    }
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        let chunk = out.len().div_ceil(run.tasks);
        if run.per_task == 0 {
            out.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(i, o)| f(i * chunk, o, &mut []));
        } else {
            out.par_chunks_mut(chunk)
                .zip(work.par_chunks_mut(run.per_task))
                .enumerate()
                .for_each(|(i, (o, w))| f(i * chunk, o, w));
        }
    }
    #[cfg(not(feature = "rayon"))]
    f(0, out, work);
}
