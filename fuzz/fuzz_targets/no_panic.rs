//! No panics, no out-of-bounds: arbitrary bytes into every public function
//! of the crate (`full::*` with the gradient kernels, `batch_grad::*`,
//! `diag::*` with `diag::grad::*`, `search::*`, `tril::*`), with mismatched
//! lengths, batch sizes and dimensions, dimensions whose buffer sizes
//! overflow (`d` up to `usize::MAX`) passed with short slices, and NaN,
//! ±∞, ±0, subnormal and extreme values everywhere (zero, negative and
//! subnormal diagonals included). Errors are fine; a panic, an overflow
//! (this target is built with debug assertions) or an out-of-bounds access
//! is a bug.
//!
//! Beyond "does not panic", each call checks the checker: `Ok` implies the
//! shapes were consistent, and every `Err` formats through `Display`.
#![no_main]

use arbitrary::{Result, Unstructured};
use gaussian_kl::batch::{self, Gaussians, Kernel, Options};
use gaussian_kl::batch_grad::{self, BatchGrad, GaussianBatch};
use gaussian_kl::diag::grad::{self as dgrad, GradOut, Objective, Upstream};
use gaussian_kl::diag::{self, DiagBatch, Rep, Scale, ScoreReal};
use gaussian_kl::full::KlGrad;
use gaussian_kl::search::{DocIndex, Metric};
use gaussian_kl::simd::{Level, SimdReal};
use gaussian_kl::tril::tril_len;
use gaussian_kl::{Diagonal, Error, Layout, PackedTril, Real, full};
use gaussian_kl_fuzz::{LAYOUTS, fixed_dim, wild_dim, wild_len, wild_vec, with_const_d};
use libfuzzer_sys::fuzz_target;

/// Longest slice a call gets: large enough for d = 70 dense (4,900).
const CAP: usize = 5_000;
/// Longest slice of a diagonal batch: keeps `nq × nd` results (top-k heaps,
/// score matrices) small.
const DIAG_CAP: usize = 600;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = if u.arbitrary().unwrap_or(false) {
        one_call::<f32>(&mut u)
    } else {
        one_call::<f64>(&mut u)
    };
});

fn packed<'a, T: Real>(
    u: &mut Unstructured<'_>,
    d: usize,
    data: &'a [T],
) -> Result<PackedTril<'a, T>> {
    Ok(PackedTril {
        d,
        data,
        layout: *u.choose(&LAYOUTS)?,
        diagonal: if u.arbitrary()? {
            Diagonal::Log
        } else {
            Diagonal::Plain
        },
    })
}

/// Formats an error (exercising `Display`) and returns whether it was `Ok`.
fn ok<V>(r: &core::result::Result<V, Error>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) => {
            let s = format!("{e}");
            assert!(!s.is_empty());
            false
        }
    }
}

fn fixed_packed<T: Real, const D: usize>(
    u: &mut Unstructured<'_>,
    lp: PackedTril<'_, T>,
    lq: PackedTril<'_, T>,
) -> Result<bool> {
    let mp: [T; D] = core::array::from_fn(|_| T::ZERO);
    let mq = wild_vec::<T>(u, D)?;
    let mq: [T; D] = mq.try_into().expect("D values");
    let r = full::kl_packed_fixed::<T, D>(&mp, lp, &mq, lq);
    if ok(&r) {
        assert!(lp.d == D && lq.d == D && lp.data.len() == tril_len(D).unwrap());
    }
    Ok(true)
}

fn fixed_dense<T: Real, const D: usize>(u: &mut Unstructured<'_>) -> Result<bool> {
    let v = wild_vec::<T>(u, 2 * D * D + 2 * D)?;
    let mat = |off: usize| -> [[T; D]; D] {
        core::array::from_fn(|i| core::array::from_fn(|j| v[off + i * D + j]))
    };
    let mp: [T; D] = core::array::from_fn(|i| v[2 * D * D + i]);
    let mq: [T; D] = core::array::from_fn(|i| v[2 * D * D + D + i]);
    let r = full::kl_fixed::<T, D>(&mp, &mat(0), &mq, &mat(D * D));
    ok(&r);
    Ok(true)
}

fn one_call<T: ScoreReal + SimdReal>(u: &mut Unstructured<'_>) -> Result<()> {
    let op = u.int_in_range(0..=24u8)?;
    if op >= 10 {
        return match op {
            10..16 => diag_call::<T>(u, op),
            24 => batch_call::<T>(u),
            _ => grad_call::<T>(u, op),
        };
    }
    let d = wild_dim(u)?;
    let tri = tril_len(d);
    let sq = d.checked_mul(d);
    match op {
        0 => {
            // full::kl, every shape independently wrong or right.
            let d_q = if u.ratio(7, 8)? { d } else { wild_dim(u)? };
            let (np, nq) = (wild_len(u, tri, CAP)?, wild_len(u, tril_len(d_q), CAP)?);
            let (mp, mq) = (wild_len(u, Some(d), CAP)?, wild_len(u, Some(d), CAP)?);
            let nw = wild_len(u, Some(full::workspace_len(d)), CAP)?;
            let (dp, dq) = (wild_vec::<T>(u, np)?, wild_vec::<T>(u, nq)?);
            let (vp, vq) = (wild_vec::<T>(u, mp)?, wild_vec::<T>(u, mq)?);
            let (lp, lq) = (packed(u, d, &dp)?, packed(u, d_q, &dq)?);
            let mut work = wild_vec::<T>(u, nw)?;
            let r = full::kl(&vp, lp, &vq, lq, &mut work);
            if ok(&r) {
                assert!(d_q == d && Some(np) == tri && Some(nq) == tri);
                assert!(mp == d && mq == d && nw >= full::workspace_len(d));
            }
        }
        1 | 2 => {
            // full::kl_dense / full::kl_cov: d is mean_p.len().
            let d = d.min(CAP);
            let mq = wild_len(u, Some(d), CAP)?;
            let (np, nq) = (wild_len(u, sq, CAP)?, wild_len(u, sq, CAP)?);
            let nw = wild_len(u, Some(full::workspace_len(d)), CAP)?;
            let vp = wild_vec::<T>(u, d)?;
            let vq = wild_vec::<T>(u, mq)?;
            let (ap, aq) = (wild_vec::<T>(u, np)?, wild_vec::<T>(u, nq)?);
            let mut work = wild_vec::<T>(u, nw)?;
            let r = if op == 1 {
                full::kl_dense(&vp, &ap, &vq, &aq, &mut work)
            } else {
                full::kl_cov(&vp, &ap, &vq, &aq, &mut work)
            };
            if ok(&r) {
                assert!(mq == d && Some(np) == d.checked_mul(d) && np == nq);
                assert!(nw >= full::workspace_len(d));
            }
        }
        3 => {
            let (n, m) = (wild_len(u, tri, CAP)?, wild_len(u, Some(d), CAP)?);
            let data = wild_vec::<T>(u, n)?;
            let mean = wild_vec::<T>(u, m)?;
            let r = full::kl_std_normal(&mean, packed(u, d, &data)?);
            if ok(&r) {
                assert!(Some(n) == tri && m == d);
            }
        }
        4 => {
            let d = d.min(CAP);
            let n = wild_len(u, sq, CAP)?;
            let mean = wild_vec::<T>(u, d)?;
            let l = wild_vec::<T>(u, n)?;
            if ok(&full::kl_std_normal_dense(&mean, &l)) {
                assert!(Some(n) == d.checked_mul(d));
            }
        }
        5 => {
            // Fixed D, packed factors whose d may differ from D.
            let big_d = fixed_dim(u)?;
            let d_q = if u.arbitrary()? { big_d } else { d };
            let d_p = if u.arbitrary()? { big_d } else { d };
            let np = wild_len(u, tril_len(d_p), CAP)?;
            let nq = wild_len(u, tril_len(d_q), CAP)?;
            let (dp, dq) = (wild_vec::<T>(u, np)?, wild_vec::<T>(u, nq)?);
            let (lp, lq) = (packed(u, d_p, &dp)?, packed(u, d_q, &dq)?);
            with_const_d!(big_d, D => fixed_packed::<T, D>(u, lp, lq)).expect("FIXED_DIMS")?;
        }
        6 => {
            let big_d = fixed_dim(u)?;
            with_const_d!(big_d, D => fixed_dense::<T, D>(u)).expect("FIXED_DIMS")?;
        }
        7 => {
            let n = wild_len(u, sq, CAP)?;
            let mut a = wild_vec::<T>(u, n)?;
            if ok(&full::cholesky_in_place(d, &mut a)) {
                assert!(Some(n) == sq);
            }
        }
        8 => {
            let n = wild_len(u, tri, CAP)?;
            let mut a = wild_vec::<T>(u, n)?;
            if ok(&full::cholesky_packed_in_place(d, &mut a)) {
                assert!(Some(n) == tri);
            }
        }
        _ => {
            // The tril module: lengths, index maps, checks, expansion.
            let n = wild_len(u, tri, CAP)?;
            let data = wild_vec::<T>(u, n)?;
            let l = packed(u, d, &data)?;
            if ok(&l.check("l")) {
                assert!(Some(n) == tri);
            }
            let m = wild_len(u, sq, CAP)?;
            let mut out = wild_vec::<T>(u, m)?;
            if ok(&l.expand_dense(&mut out)) {
                assert!(Some(n) == tri && Some(m) == sq);
            }
            let _ = full::workspace_len(d);
            let _ = full::grad_workspace_len(d);
            let _ = batch_grad::workspace_len(d);
            let layout: Layout = *u.choose(&LAYOUTS)?;
            let (i, j): (usize, usize) = (u.arbitrary()?, u.arbitrary()?);
            let _ = layout.index(d, i, j);
            let _ = PackedTril::new(d, &data)
                .layout(layout)
                .diagonal(Diagonal::Plain);
        }
    }
    Ok(())
}

fn scale(u: &mut Unstructured<'_>) -> Result<Scale> {
    Ok(if u.arbitrary()? {
        Scale::LogVar
    } else {
        Scale::Var
    })
}

/// Wild values, made non-negative half of the time (so that variances pass
/// the positivity check and reach the kernels; NaN, ±0 and ∞ stay).
fn spread_vec<T: Real>(u: &mut Unstructured<'_>, len: usize) -> Result<Vec<T>> {
    let v = wild_vec::<T>(u, len)?;
    Ok(if u.arbitrary()? {
        v.into_iter().map(|x| x.abs()).collect()
    } else {
        v
    })
}

/// A diagonal batch with wild `n`, `k` (or the given `k`), lengths and values.
struct WildBatch<T> {
    n: usize,
    k: usize,
    mean: Vec<T>,
    spread: Vec<T>,
    scale: Scale,
}

impl<T: Real> WildBatch<T> {
    /// With `k = 0` the slices are empty whatever `n` is: `n` is kept
    /// `≤ 2¹⁶` (the `O(n)` loops and allocations of an honest request for
    /// 2⁴⁰ zero-dimensional Gaussians are not bugs), or, with `huge_empty`,
    /// may also be `≥ usize::MAX / 2`, which the search must reject.
    fn generate(u: &mut Unstructured<'_>, k: Option<usize>, huge_empty: bool) -> Result<Self> {
        let mut n = if u.ratio(3, 4)? {
            u.int_in_range(0..=40)?
        } else {
            wild_dim(u)?
        };
        let k = match k {
            Some(k) if u.ratio(7, 8)? => k,
            _ => wild_dim(u)?,
        };
        if k == 0 && n > 1 << 16 && !(huge_empty && n >= usize::MAX / 2) {
            n %= 1 << 16;
        }
        let want = n.checked_mul(k);
        let (nm, ns) = (wild_len(u, want, DIAG_CAP)?, wild_len(u, want, DIAG_CAP)?);
        Ok(WildBatch {
            n,
            k,
            mean: wild_vec(u, nm)?,
            spread: spread_vec(u, ns)?,
            scale: scale(u)?,
        })
    }

    fn batch(&self) -> DiagBatch<'_, T> {
        match self.scale {
            Scale::Var => DiagBatch::var(self.n, self.k, &self.mean, &self.spread),
            Scale::LogVar => DiagBatch::log_var(self.n, self.k, &self.mean, &self.spread),
        }
    }

    /// The shape is consistent (what `Ok` must imply).
    fn well_formed(&self) -> bool {
        self.n.checked_mul(self.k) == Some(self.mean.len()) && self.mean.len() == self.spread.len()
    }
}

const REPS: [Rep; 4] = [Rep::Seed, Rep::SeedFull, Rep::Compact, Rep::CompactFull];

/// `diag::*`, `diag::grad::*` and `search::*`.
fn diag_call<T: ScoreReal>(u: &mut Unstructured<'_>, op: u8) -> Result<()> {
    match op {
        10 => {
            // The single-pair functions.
            let k = u.int_in_range(0..=70usize)?;
            let lens = [
                wild_len(u, Some(k), 80)?,
                wild_len(u, Some(k), 80)?,
                wild_len(u, Some(k), 80)?,
            ];
            let mq = wild_vec::<T>(u, k)?;
            let sq = spread_vec::<T>(u, lens[0])?;
            let md = wild_vec::<T>(u, lens[1])?;
            let sd = spread_vec::<T>(u, lens[2])?;
            let shape = lens == [k, k, k];
            if ok(&diag::kl(&mq, &sq, &md, &sd)) {
                assert!(shape);
            }
            if ok(&diag::kl_log_var(&mq, &sq, &md, &sd)) {
                assert!(shape);
            }
            if ok(&diag::eq10_score(&mq, &sq, &md, &sd)) {
                assert!(shape);
            }
            if ok(&diag::kl_std_normal(&mq, &sq)) {
                assert!(lens[0] == k);
            }
        }
        11 => {
            let q = WildBatch::<T>::generate(u, None, false)?;
            let d = WildBatch::<T>::generate(u, Some(q.k), false)?;
            let want = q.n.checked_mul(d.n);
            let mut out = near::<T>(u, want, CAP)?;
            let r = if u.arbitrary()? {
                diag::pairwise_kl(q.batch(), d.batch(), &mut out)
            } else {
                diag::pairwise_eq10(q.batch(), d.batch(), &mut out)
            };
            if ok(&r) {
                assert!(q.well_formed() && d.well_formed() && q.k == d.k);
                assert!(want == Some(out.len()));
            }
        }
        12 => {
            let rep = *u.choose(&REPS)?;
            let b = WildBatch::<T>::generate(u, None, false)?;
            let _ = (rep.is_full(), rep.is_seed(), rep.len(wild_dim(u)?));
            let want = b.n.checked_mul(rep.len(b.k));
            let mut out = near::<T>(u, want, CAP)?;
            let r = if u.arbitrary()? {
                diag::query_rep(rep, b.batch(), &mut out)
            } else {
                diag::doc_rep(rep, b.batch(), &mut out)
            };
            if ok(&r) {
                assert!(b.well_formed() && want == Some(out.len()));
            }
            let dot = T::from_f64(gaussian_kl_fuzz::wild_value(u)?);
            let _ = diag::kl_from_dot(dot, wild_dim(u)?);
        }
        13 | 14 => {
            let objective = if u.arbitrary()? {
                Objective::Kl
            } else {
                Objective::Eq10
            };
            let q = WildBatch::<T>::generate(u, None, false)?;
            let d = WildBatch::<T>::generate(u, Some(q.k), false)?;
            let len_q = wild_len(u, Some(q.mean.len()), DIAG_CAP)?;
            let len_d = wild_len(u, Some(d.mean.len()), DIAG_CAP)?;
            let (mut gqm, mut gqs) = (wild_vec::<T>(u, len_q)?, wild_vec::<T>(u, len_q)?);
            let (mut gdm, mut gds) = (wild_vec::<T>(u, len_d)?, wild_vec::<T>(u, len_d)?);
            let grad_q = GradOut {
                mean: &mut gqm,
                spread: &mut gqs,
            };
            let grad_d = GradOut {
                mean: &mut gdm,
                spread: &mut gds,
            };
            if op == 13 {
                let g = near::<T>(u, Some(q.n), DIAG_CAP)?;
                let upstream = if u.arbitrary()? {
                    Upstream::Scalar(T::from_f64(gaussian_kl_fuzz::wild_value(u)?))
                } else {
                    Upstream::PerPair(&g)
                };
                let r = dgrad::pairs_backward(
                    objective,
                    q.batch(),
                    d.batch(),
                    upstream,
                    grad_q,
                    grad_d,
                );
                if ok(&r) {
                    assert!(q.well_formed() && d.well_formed() && q.n == d.n && q.k == d.k);
                }
            } else {
                let want = q.n.checked_mul(d.n);
                let g = near::<T>(u, want, CAP)?;
                let r =
                    dgrad::pairwise_backward(objective, q.batch(), d.batch(), &g, grad_q, grad_d);
                if ok(&r) {
                    assert!(q.well_formed() && d.well_formed() && q.k == d.k);
                    assert!(want == Some(g.len()));
                }
            }
        }
        _ => {
            // search: DocIndex and Hits.
            let d = WildBatch::<T>::generate(u, None, true)?;
            let index = DocIndex::new(d.batch());
            if !ok(&index) {
                return Ok(());
            }
            assert!(d.well_formed());
            let index = index.expect("checked");
            assert_eq!(
                (index.len(), index.dim(), index.is_empty()),
                (d.n, d.k, d.n == 0)
            );
            let q = WildBatch::<T>::generate(u, Some(d.k), true)?;
            let metric = if u.arbitrary()? {
                Metric::Kl
            } else {
                Metric::Eq10
            };
            let level = *u.choose(Level::all())?;
            let _ = level.is_available();
            let top = if u.ratio(1, 4)? {
                wild_dim(u)?
            } else {
                u.int_in_range(0..=40)?
            };
            // An honest request for billions of hits (k = 0: any nq, nd ≤ 2¹⁶)
            // allocates them; only absurd counts must be rejected. Honest
            // requests stop at 2¹⁶ hits: the same code paths as millions, at a
            // fraction of the time per input.
            let hits = q.n.saturating_mul(top.min(d.n));
            if hits > 1 << 16 && q.n < usize::MAX / 2 {
                return Ok(());
            }
            let r = match u.int_in_range(0..=4u8)? {
                0 => index.top_k(q.batch(), top, metric),
                1 => index.top_k_at(level, q.batch(), top, metric),
                2 => index.par_top_k(q.batch(), top, metric),
                _ => {
                    let want = q.n.checked_mul(d.n);
                    let mut out = near::<T>(u, want, CAP)?;
                    let r = if u.arbitrary()? {
                        index.scores(q.batch(), metric, &mut out)
                    } else {
                        index.scores_at(level, q.batch(), metric, &mut out)
                    };
                    if ok(&r) {
                        assert!(q.well_formed() && q.k == d.k && want == Some(out.len()));
                    }
                    return Ok(());
                }
            };
            if ok(&r) {
                assert!(q.well_formed() && q.k == d.k);
                let hits = r.expect("checked");
                let per = top.min(d.n);
                assert_eq!(hits.per_query, per);
                assert_eq!(hits.index.len(), q.n * per);
                assert_eq!(hits.len(), if per == 0 { 0 } else { q.n });
                let _ = hits.is_empty();
                let (a, b) = hits.row(u.arbitrary()?);
                assert_eq!(a.len(), b.len());
                assert!(hits.index.iter().all(|&j| j < d.n));
            }
        }
    }
    Ok(())
}

fn diagonal(u: &mut Unstructured<'_>) -> Result<Diagonal> {
    Ok(if u.arbitrary()? {
        Diagonal::Log
    } else {
        Diagonal::Plain
    })
}

fn grad_packed_fixed<T: Real, const D: usize>(
    u: &mut Unstructured<'_>,
    lp: PackedTril<'_, T>,
    lq: PackedTril<'_, T>,
    out: KlGrad<'_, T>,
) -> Result<bool> {
    let v = wild_vec::<T>(u, 2 * D)?;
    let mp: [T; D] = core::array::from_fn(|i| v[i]);
    let mq: [T; D] = core::array::from_fn(|i| v[D + i]);
    let g = T::from_f64(gaussian_kl_fuzz::wild_value(u)?);
    Ok(ok(&full::kl_grad_packed_fixed::<T, D>(
        &mp, lp, &mq, lq, g, out,
    )))
}

fn grad_fixed<T: Real, const D: usize>(u: &mut Unstructured<'_>) -> Result<bool> {
    let v = wild_vec::<T>(u, 2 * D * D + 2 * D + 1)?;
    let mat = |off: usize| -> [[T; D]; D] {
        core::array::from_fn(|i| core::array::from_fn(|j| v[off + i * D + j]))
    };
    let mp: [T; D] = core::array::from_fn(|i| v[2 * D * D + i]);
    let mq: [T; D] = core::array::from_fn(|i| v[2 * D * D + D + i]);
    let r = full::kl_grad_fixed::<T, D>(&mp, &mat(0), &mq, &mat(D * D), v[2 * D * D + 2 * D]);
    Ok(ok(&r))
}

/// Four wild gradient outputs with lengths near `(d, n_factor)`.
fn grad_bufs<T: Real>(
    u: &mut Unstructured<'_>,
    d: usize,
    n_factor: Option<usize>,
) -> Result<[Vec<T>; 4]> {
    let a = wild_len(u, Some(d), CAP)?;
    let b = wild_len(u, n_factor, CAP)?;
    let c = wild_len(u, Some(d), CAP)?;
    let e = wild_len(u, n_factor, CAP)?;
    Ok([
        wild_vec(u, a)?,
        wild_vec(u, b)?,
        wild_vec(u, c)?,
        wild_vec(u, e)?,
    ])
}

/// `full::kl_grad*`, `full::kl_std_normal_grad*` and `batch_grad::*`.
fn grad_call<T: SimdReal>(u: &mut Unstructured<'_>, op: u8) -> Result<()> {
    let d = wild_dim(u)?;
    let tri = tril_len(d);
    let sq = d.checked_mul(d);
    let g = T::from_f64(gaussian_kl_fuzz::wild_value(u)?);
    match op {
        16 => {
            let d_q = if u.ratio(7, 8)? { d } else { wild_dim(u)? };
            let (np, nq) = (wild_len(u, tri, CAP)?, wild_len(u, tril_len(d_q), CAP)?);
            let (mp, mq) = (wild_len(u, Some(d), CAP)?, wild_len(u, Some(d), CAP)?);
            let nw = wild_len(u, Some(full::grad_workspace_len(d)), CAP)?;
            let (dp, dq) = (wild_vec::<T>(u, np)?, wild_vec::<T>(u, nq)?);
            let (vp, vq) = (wild_vec::<T>(u, mp)?, wild_vec::<T>(u, mq)?);
            let (lp, lq) = (packed(u, d, &dp)?, packed(u, d_q, &dq)?);
            let [mut a, mut b, mut c, mut e] = grad_bufs::<T>(u, d, tri)?;
            let mut work = wild_vec::<T>(u, nw)?;
            let out = KlGrad::new(&mut a, &mut b, &mut c, &mut e);
            if ok(&full::kl_grad(&vp, lp, &vq, lq, g, out, &mut work)) {
                assert!(d_q == d && Some(np) == tri && Some(nq) == tri);
                assert!(mp == d && mq == d && nw >= full::grad_workspace_len(d));
                assert!(a.len() == d && Some(b.len()) == tri && c.len() == d);
            }
        }
        17 => {
            let d = d.min(70);
            let sq = Some(d * d);
            let mq = wild_len(u, Some(d), CAP)?;
            let (np, nq) = (wild_len(u, sq, CAP)?, wild_len(u, sq, CAP)?);
            let nw = wild_len(u, Some(full::grad_workspace_len(d)), CAP)?;
            let vp = wild_vec::<T>(u, d)?;
            let vq = wild_vec::<T>(u, mq)?;
            let (ap, aq) = (wild_vec::<T>(u, np)?, wild_vec::<T>(u, nq)?);
            let [mut a, mut b, mut c, mut e] = grad_bufs::<T>(u, d, sq)?;
            let mut work = wild_vec::<T>(u, nw)?;
            let mut out = KlGrad::new(&mut a, &mut b, &mut c, &mut e);
            let _ = out.reborrow();
            if ok(&full::kl_grad_dense(&vp, &ap, &vq, &aq, g, out, &mut work)) {
                assert!(mq == d && Some(np) == sq && np == nq);
                assert!(nw >= full::grad_workspace_len(d));
            }
        }
        18 => {
            // Fixed D, packed factors whose d may differ from D.
            let big_d = fixed_dim(u)?;
            let d_p = if u.arbitrary()? { big_d } else { d };
            let d_q = if u.arbitrary()? { big_d } else { d };
            let np = wild_len(u, tril_len(d_p), CAP)?;
            let nq = wild_len(u, tril_len(d_q), CAP)?;
            let (dp, dq) = (wild_vec::<T>(u, np)?, wild_vec::<T>(u, nq)?);
            let (lp, lq) = (packed(u, d_p, &dp)?, packed(u, d_q, &dq)?);
            let [mut a, mut b, mut c, mut e] = grad_bufs::<T>(u, big_d, tril_len(big_d))?;
            let out = KlGrad::new(&mut a, &mut b, &mut c, &mut e);
            let fine = with_const_d!(big_d, D => grad_packed_fixed::<T, D>(u, lp, lq, out))
                .expect("FIXED_DIMS")?;
            if fine {
                assert!(d_p == big_d && d_q == big_d && Some(np) == tril_len(big_d));
                assert!(Some(nq) == tril_len(big_d));
            }
        }
        19 => {
            let big_d = fixed_dim(u)?;
            with_const_d!(big_d, D => grad_fixed::<T, D>(u)).expect("FIXED_DIMS")?;
        }
        20 => {
            let (n, m) = (wild_len(u, tri, CAP)?, wild_len(u, Some(d), CAP)?);
            let data = wild_vec::<T>(u, n)?;
            let mean = wild_vec::<T>(u, m)?;
            let l = packed(u, d, &data)?;
            let [mut a, mut b, _, _] = grad_bufs::<T>(u, d, tri)?;
            if ok(&full::kl_std_normal_grad(&mean, l, g, &mut a, &mut b)) {
                assert!(Some(n) == tri && m == d && a.len() == d && Some(b.len()) == tri);
            }
        }
        21 => {
            let d = d.min(CAP);
            let n = wild_len(u, sq, CAP)?;
            let mean = wild_vec::<T>(u, d)?;
            let l = wild_vec::<T>(u, n)?;
            let [mut a, mut b, _, _] = grad_bufs::<T>(u, d, sq)?;
            if ok(&full::kl_std_normal_grad_dense(
                &mean, &l, g, &mut a, &mut b,
            )) {
                assert!(Some(n) == d.checked_mul(d) && a.len() == d && b.len() == n);
            }
        }
        22 => {
            // batch_grad::kl_grad_packed (n = kl.len(); each side n or 1
            // rows) and kl_grad_all_pairs, at any level or the scalar kernel.
            let n = if u.ratio(7, 8)? {
                u.int_in_range(0..=6)?
            } else {
                wild_dim(u)?.min(CAP)
            };
            let side_len = |u: &mut Unstructured<'_>, per: Option<usize>| -> Result<usize> {
                let rows = if u.arbitrary()? { 1 } else { n };
                wild_len(u, per.and_then(|p| p.checked_mul(rows)), CAP)
            };
            let (mp_len, lp_len) = (side_len(u, Some(d))?, side_len(u, tri)?);
            let (mq_len, lq_len) = (side_len(u, Some(d))?, side_len(u, tri)?);
            let (mp, lp) = (wild_vec::<T>(u, mp_len)?, wild_vec::<T>(u, lp_len)?);
            let (mq, lq) = (wild_vec::<T>(u, mq_len)?, wild_vec::<T>(u, lq_len)?);
            let p = GaussianBatch::new(&mp, &lp)
                .layout(*u.choose(&LAYOUTS)?)
                .diagonal(diagonal(u)?);
            let q = GaussianBatch::new(&mq, &lq)
                .layout(*u.choose(&LAYOUTS)?)
                .diagonal(diagonal(u)?);
            let up_len = if u.arbitrary()? { 1 } else { n };
            let up = near::<T>(u, Some(up_len), CAP)?;
            let mut kl = wild_vec::<T>(u, n)?;
            let lens = [
                wild_len(u, Some(mp_len), CAP)?,
                wild_len(u, Some(lp_len), CAP)?,
                wild_len(u, Some(mq_len), CAP)?,
                wild_len(u, Some(lq_len), CAP)?,
            ];
            let mut bufs = [
                wild_vec::<T>(u, lens[0])?,
                wild_vec::<T>(u, lens[1])?,
                wild_vec::<T>(u, lens[2])?,
                wild_vec::<T>(u, lens[3])?,
            ];
            let nw = wild_len(u, Some(batch_grad::workspace_len(d)), CAP)?;
            let mut work = wild_vec::<T>(u, nw)?;
            let [a, b, c, e] = &mut bufs;
            let grad = BatchGrad {
                means_p: a,
                factors_p: b,
                means_q: c,
                factors_q: e,
            };
            let level = *u.choose(Level::all())?;
            let opts = match Options::new().level(level) {
                Some(o) if u.arbitrary()? => o,
                _ => Options::new().kernel(Kernel::Scalar),
            };
            if u.arbitrary()? {
                let r = opts.kl_grad_all_pairs(d, p, q, &up, &mut kl, grad, &mut work);
                if ok(&r) && d > 0 {
                    assert!(lens == [mp_len, lp_len, mq_len, lq_len]);
                    assert!(nw >= batch_grad::workspace_len(d));
                    let (np, nq) = (mp_len / d, mq_len / d);
                    assert!(Some(n) == np.checked_mul(nq));
                    assert!(up.len() == n || up.len() == 1);
                }
            } else {
                let r = opts.kl_grad_packed(d, p, q, &up, &mut kl, grad, &mut work);
                if ok(&r) {
                    assert!(lens == [mp_len, lp_len, mq_len, lq_len]);
                    assert!(nw >= batch_grad::workspace_len(d));
                    assert!(up.len() == n || up.len() == 1);
                }
            }
        }
        _ => {
            let n = if u.ratio(7, 8)? {
                u.int_in_range(0..=6)?
            } else {
                wild_dim(u)?.min(CAP)
            };
            let m_len = wild_len(u, d.checked_mul(n), CAP)?;
            let l_len = wild_len(u, tri.and_then(|t| t.checked_mul(n)), CAP)?;
            let (m, l) = (wild_vec::<T>(u, m_len)?, wild_vec::<T>(u, l_len)?);
            let p = GaussianBatch::new(&m, &l)
                .layout(*u.choose(&LAYOUTS)?)
                .diagonal(diagonal(u)?);
            let up_len = if u.arbitrary()? { 1 } else { n };
            let up = near::<T>(u, Some(up_len), CAP)?;
            let mut kl = wild_vec::<T>(u, n)?;
            let gm_len = wild_len(u, Some(m_len), CAP)?;
            let gl_len = wild_len(u, Some(l_len), CAP)?;
            let (mut gm, mut gl) = (wild_vec::<T>(u, gm_len)?, wild_vec::<T>(u, gl_len)?);
            let r = batch_grad::kl_std_normal_grad_packed(d, p, &up, &mut kl, &mut gm, &mut gl);
            if ok(&r) {
                assert!(Some(m_len) == d.checked_mul(n) && gm_len == m_len && gl_len == l_len);
                assert!(up.len() == n || up.len() == 1);
            }
        }
    }
    Ok(())
}

/// `batch::*`: zip (with broadcasting) and all pairs, `_vec` forms, any
/// level and kernel, serial or on rayon's pool.
fn batch_call<T: SimdReal>(u: &mut Unstructured<'_>) -> Result<()> {
    let d = if u.ratio(7, 8)? {
        u.int_in_range(0..=20)?
    } else {
        wild_dim(u)?
    };
    let tri = tril_len(d);
    let side = |u: &mut Unstructured<'_>| -> Result<(Vec<T>, Vec<T>, Layout, Diagonal)> {
        let n = if u.ratio(7, 8)? {
            u.int_in_range(0..=20usize)?
        } else {
            wild_dim(u)?.min(CAP)
        };
        let m = near::<T>(u, d.checked_mul(n), CAP)?;
        let l = near::<T>(u, tri.and_then(|t| t.checked_mul(n)), CAP)?;
        Ok((m, l, *u.choose(&LAYOUTS)?, diagonal(u)?))
    };
    let (mp, lp, lay_p, dg_p) = side(u)?;
    let (mq, lq, lay_q, dg_q) = side(u)?;
    let d_q = if u.ratio(15, 16)? { d } else { wild_dim(u)? };
    let p = Gaussians::new(d, &mp, &lp).layout(lay_p).diagonal(dg_p);
    let q = Gaussians::new(d_q, &mq, &lq).layout(lay_q).diagonal(dg_q);
    let kernel = *u.choose(&[Kernel::Auto, Kernel::Scalar, Kernel::Lanes, Kernel::Blocked])?;
    let level = *u.choose(Level::all())?;
    let opts = Options::new()
        .level(level)
        .unwrap_or_default()
        .kernel(kernel);
    let opts = opts.parallel(u.ratio(1, 8)?);
    let mut out = near::<T>(u, Some(mp.len().max(mq.len()) / d.max(1)), CAP)?;
    let (count_p, count_q) = (p.count(), q.count());
    match u.int_in_range(0..=3u8)? {
        0 => {
            if ok(&opts.kl_full(&p, &q, &mut out)) {
                assert!(count_p.is_ok() && count_q.is_ok() && d == d_q);
            }
        }
        1 => {
            if ok(&opts.kl_full_all_pairs(&p, &q, &mut out)) && d > 0 {
                let (np, nq) = (count_p.unwrap().unwrap(), count_q.unwrap().unwrap());
                assert!(Some(out.len()) == np.checked_mul(nq));
            }
        }
        2 => {
            let _ = ok(&batch::kl_full_vec(&p, &q));
        }
        _ => {
            // Keep the matrix small: the counts alone are up to CAP each.
            let small = match (&count_p, &count_q) {
                (Ok(Some(a)), Ok(Some(b))) => a.saturating_mul(*b) <= 1 << 14,
                _ => true,
            };
            if !small {
                return Ok(());
            }
            if let (Ok(v), true) = (batch::kl_full_all_pairs_vec(&p, &q), d > 0) {
                let (np, nq) = (count_p.unwrap().unwrap(), count_q.unwrap().unwrap());
                assert!(v.len() == np * nq);
            }
        }
    }
    Ok(())
}

/// `wild_vec` of a `wild_len(u, want, cap)` length.
fn near<T: Real>(u: &mut Unstructured<'_>, want: Option<usize>, cap: usize) -> Result<Vec<T>> {
    let n = wild_len(u, want, cap)?;
    wild_vec(u, n)
}
