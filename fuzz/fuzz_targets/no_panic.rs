//! No panics, no out-of-bounds, no half-written outputs: arbitrary bytes into
//! every public operation of the crate.
//!
//! - Every view constructor (`PackedTril`, `MatRef` with any strides,
//!   `Gaussian`, `Gaussians`, `DiagGaussian`, `DiagGaussians`) with wild
//!   dimensions (up to `usize::MAX`), lengths, layouts and values (NaN, ±∞,
//!   ±0, subnormals, extremes, zero and negative plain diagonals).
//! - Every operation of `full`, `batch`, `diag` and `search`, under every
//!   `Exec` a caller can build (each `Level`, available or not; each
//!   `Kernel`; `Par::Seq` and `Par::Rayon(0..=3)`), with caller workspaces
//!   of every length around the required one (0, short, exact, longer, 2×)
//!   and at every offset (`&mut buf[off..]`), and output buffers of wrong
//!   and right lengths.
//!
//! Errors are fine; a panic, an arithmetic overflow (this target is built
//! with debug assertions) or an out-of-bounds access is a bug. Each call also
//! checks the checker: every `Err` formats through `Display`, and after an
//! `Err` every output buffer is bit for bit what it was before the call.
#![no_main]

use arbitrary::{Result, Unstructured};
use gaussian_kl::batch::{self, Pairs};
use gaussian_kl::diag::{self, Rep};
use gaussian_kl::search::{self, DocIndex, Metric};
use gaussian_kl::simd::Level;
use gaussian_kl::tril::tril_len;
use gaussian_kl::{
    DiagGaussian, DiagGaussians, DiagGradMut, Diagonal, Error, Exec, Gaussian, Gaussians, GradMut,
    Grads, Kernel, MatRef, Mode, PackedTril, Par, Real, full,
};
use gaussian_kl_fuzz::{
    LAYOUTS, fixed_dim, wild_dim, wild_len, wild_value, wild_vec, with_const_d,
};
use libfuzzer_sys::fuzz_target;

/// Longest slice a call gets: large enough for d = 70 dense (4,900).
const CAP: usize = 5_000;
/// Longest slice of a diagonal batch: keeps `nq × nd` results small.
const DIAG_CAP: usize = 600;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = if u.arbitrary().unwrap_or(false) {
        one_call::<f32>(&mut u)
    } else {
        one_call::<f64>(&mut u)
    };
});

fn one_call<T: Real>(u: &mut Unstructured<'_>) -> Result<()> {
    match u.int_in_range(0..=9u8)? {
        0 => views::<T>(u),
        1 => full_call::<T>(u),
        2 => full_grad_call::<T>(u),
        3 => fixed_call::<T>(u),
        4 => cholesky_call::<T>(u),
        5 => batch_call::<T>(u),
        6 => batch_grad_call::<T>(u),
        7 => diag_call::<T>(u),
        8 => diag_grad_call::<T>(u),
        _ => search_call::<T>(u),
    }
}

/// Formats an error (exercising `Display`) and returns whether it was `Ok`.
fn ok<V>(r: &core::result::Result<V, Error>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) => {
            assert!(!format!("{e}").is_empty());
            false
        }
    }
}

/// Bit patterns, so that NaN outputs compare.
fn bits<T: Real>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}

/// After an `Err`, the outputs must be untouched.
fn untouched<T: Real>(r_ok: bool, before: &[Vec<u64>], after: &[&[T]]) {
    if !r_ok {
        for (b, a) in before.iter().zip(after) {
            assert!(*b == bits(a), "an output was written before an error");
        }
    }
}

fn diagonal(u: &mut Unstructured<'_>) -> Result<Diagonal> {
    Ok(if u.arbitrary()? {
        Diagonal::Log
    } else {
        Diagonal::Plain
    })
}

/// Wild values, as many as [`wild_len`] picks around `want`.
fn near<T: Real>(u: &mut Unstructured<'_>, want: Option<usize>, cap: usize) -> Result<Vec<T>> {
    let n = wild_len(u, want, cap)?;
    wild_vec(u, n)
}

/// A wild scalar in `T`.
fn wild<T: Real>(u: &mut Unstructured<'_>) -> Result<T> {
    Ok(T::from_f64(wild_value(u)?))
}

/// Any `Exec` a caller can build.
fn exec(u: &mut Unstructured<'_>) -> Result<Exec> {
    let mut e = Exec::new();
    if u.arbitrary()? {
        e = e.level(*u.choose(Level::all())?);
    }
    e = e.kernel(*u.choose(&[Kernel::Auto, Kernel::Scalar, Kernel::Lanes, Kernel::Blocked])?);
    if u.arbitrary()? {
        e = e.par(Par::Rayon(u.int_in_range(0..=3)?));
    }
    let _ = (e.resolved_level(), e.tasks());
    Ok(e)
}

/// A workspace of a wild length around `need` (`None`: the query failed),
/// to be used as `&mut buf[off..]` (any offset, so any alignment).
fn workspace<T: Real>(u: &mut Unstructured<'_>, need: Option<usize>) -> Result<(Vec<T>, usize)> {
    let len = match (need, u.int_in_range(0..=5u8)?) {
        (Some(n), 0) if n <= CAP => n,
        (Some(n), 1) if n <= CAP => n.saturating_sub(u.int_in_range(1..=3)?),
        (Some(n), 2) if n <= CAP => n + u.int_in_range(1..=17)?,
        (Some(n), 3) if n <= CAP / 2 => 2 * n,
        _ => u.int_in_range(0..=CAP)?,
    };
    let off = u.int_in_range(0..=15)?;
    Ok((wild_vec(u, len + off)?, off))
}

/// Raw data for one full-rank Gaussian: a mean, and a packed or a dense
/// factor with any strides.
struct WildGaussian<T> {
    mean: Vec<T>,
    factor: Vec<T>,
    packed: Option<(gaussian_kl::Layout, Diagonal)>,
    strides: (usize, usize),
}

impl<T: Real> WildGaussian<T> {
    fn generate(u: &mut Unstructured<'_>, d: usize) -> Result<Self> {
        let mean = near(u, Some(d), CAP)?;
        if u.arbitrary()? {
            let n = wild_len(u, tril_len(d), CAP)?;
            let packed = Some((*u.choose(&LAYOUTS)?, diagonal(u)?));
            return Ok(WildGaussian {
                mean,
                factor: wild_vec(u, n)?,
                packed,
                strides: (0, 0),
            });
        }
        let strides = match u.int_in_range(0..=3u8)? {
            0 => (d, 1),
            1 => (1, d),
            2 => (u.int_in_range(0..=80)?, u.int_in_range(0..=80)?),
            _ => (u.arbitrary()?, u.arbitrary()?),
        };
        let n = wild_len(u, d.checked_mul(d), CAP)?;
        let mut factor: Vec<T> = wild_vec(u, n)?;
        if u.arbitrary()? {
            // Positive diagonals, so that the kernels are reached.
            for x in factor.iter_mut() {
                *x = x.abs();
            }
        }
        Ok(WildGaussian {
            mean,
            factor,
            packed: None,
            strides,
        })
    }

    fn view(&self, d: usize) -> core::result::Result<Gaussian<'_, T>, Error> {
        match self.packed {
            Some((layout, diag)) => {
                let l = PackedTril::with_layout(d, &self.factor, layout, diag)?;
                Gaussian::new(&self.mean, l)
            }
            None => {
                let (rs, cs) = self.strides;
                Gaussian::new(&self.mean, MatRef::from_strides(d, &self.factor, rs, cs)?)
            }
        }
    }
}

fn views<T: Real>(u: &mut Unstructured<'_>) -> Result<()> {
    let d = wild_dim(u)?;
    let data: Vec<T> = near(u, tril_len(d), CAP)?;
    if let Ok(l) = PackedTril::new(d, &data) {
        let _ = (l.dim(), l.data(), l.layout(), l.diagonal());
        let mut out: Vec<T> = near(u, d.checked_mul(d), CAP)?;
        let before = [bits(&out)];
        let r = l.expand_dense(&mut out);
        untouched(ok(&r), &before, &[&out]);
    }
    let m: Vec<T> = near(u, d.checked_mul(d), CAP)?;
    for a in [MatRef::row_major(d, &m), MatRef::col_major(d, &m)]
        .into_iter()
        .flatten()
    {
        let (i, j) = (u.arbitrary()?, u.arbitrary()?);
        let _ = (a.get(i, j), a.transpose().get(i, j), a.strides(), a.dim());
    }
    let (i, j): (usize, usize) = (u.arbitrary()?, u.arbitrary()?);
    let _ = u.choose(&LAYOUTS)?.index(d, i, j);
    let g = WildGaussian::<T>::generate(u, d)?;
    if let Ok(v) = g.view(d) {
        let _ = (v.dim(), v.mean(), v.factor().dim());
    }
    let _ = Gaussian::packed(&g.mean, &g.factor);
    let n: usize = u.int_in_range(0..=40)?;
    let (mn, fln) = (wild_len(u, n.checked_mul(d), CAP)?, wild_len(u, None, CAP)?);
    let (means, factors): (Vec<T>, Vec<T>) = (wild_vec(u, mn)?, wild_vec(u, fln)?);
    let layout = *u.choose(&LAYOUTS)?;
    if let Ok(b) = Gaussians::with_layout(n, d, &means, &factors, layout, diagonal(u)?) {
        let _ = (b.len(), b.is_empty(), b.get(u.arbitrary()?));
    }
    Ok(())
}

fn full_call<T: Real>(u: &mut Unstructured<'_>) -> Result<()> {
    let d = wild_dim(u)?;
    let d_q = if u.ratio(7, 8)? { d } else { wild_dim(u)? };
    let (gp, gq) = (
        WildGaussian::<T>::generate(u, d)?,
        WildGaussian::generate(u, d_q)?,
    );
    let (Ok(p), Ok(q)) = (gp.view(d), gq.view(d_q)) else {
        return Ok(());
    };
    match u.int_in_range(0..=2u8)? {
        0 => {
            let (mut work, off) = workspace::<T>(u, Some(full::kl_scratch(d)))?;
            let r = full::kl(&p, &q, &mut work[off..]);
            if ok(&r) {
                assert!(d == d_q && work.len() - off >= full::kl_scratch(d));
            }
        }
        1 => {
            let _ = ok(&full::kl_std_normal(&p));
        }
        _ => {
            // kl_cov reads the two factors' matrices as covariances.
            let (None, None) = (gp.packed, gq.packed) else {
                return Ok(());
            };
            let (rs, cs) = gp.strides;
            let (Ok(cp), Ok(cq)) = (
                MatRef::from_strides(d, &gp.factor, rs, cs),
                MatRef::from_strides(d_q, &gq.factor, gq.strides.0, gq.strides.1),
            ) else {
                return Ok(());
            };
            let (mut work, off) = workspace::<T>(u, Some(full::kl_cov_scratch(d)))?;
            let _ = ok(&full::kl_cov(&gp.mean, cp, &gq.mean, cq, &mut work[off..]));
        }
    }
    Ok(())
}

/// Gradient buffers of wild lengths near the inputs'.
fn grad_bufs<T: Real>(u: &mut Unstructured<'_>, mean: usize, factor: usize) -> Result<[Vec<T>; 2]> {
    let a = wild_len(u, Some(mean), CAP)?;
    let b = wild_len(u, Some(factor), CAP)?;
    Ok([wild_vec(u, a)?, wild_vec(u, b)?])
}

fn mode(u: &mut Unstructured<'_>) -> Result<Mode> {
    Ok(if u.arbitrary()? {
        Mode::Accumulate
    } else {
        Mode::Overwrite
    })
}

fn full_grad_call<T: Real>(u: &mut Unstructured<'_>) -> Result<()> {
    let d = u.int_in_range(0..=70)?;
    let d_q = if u.ratio(7, 8)? { d } else { wild_dim(u)? };
    let (gp, gq) = (
        WildGaussian::<T>::generate(u, d)?,
        WildGaussian::generate(u, d_q)?,
    );
    let (Ok(p), Ok(q)) = (gp.view(d), gq.view(d_q)) else {
        return Ok(());
    };
    let [mut pm, mut pf] = grad_bufs::<T>(u, gp.mean.len(), gp.factor.len())?;
    let [mut qm, mut qf] = grad_bufs::<T>(u, gq.mean.len(), gq.factor.len())?;
    let before = [bits(&pm), bits(&pf), bits(&qm), bits(&qf)];
    let upstream = wild::<T>(u)?;
    let (mp, mq) = (mode(u)?, mode(u)?);
    let r_ok = if u.arbitrary()? {
        let (mut work, off) = workspace::<T>(u, Some(full::kl_grad_scratch(d)))?;
        let grads = Grads::new(
            GradMut::new(&mut pm, &mut pf).mode(mp),
            GradMut::new(&mut qm, &mut qf).mode(mq),
        );
        ok(&full::kl_grad(&p, &q, upstream, grads, &mut work[off..]))
    } else {
        let g = GradMut::new(&mut pm, &mut pf).mode(mp);
        ok(&full::kl_std_normal_grad(&p, upstream, g))
    };
    untouched(r_ok, &before, &[&pm, &pf, &qm, &qf]);
    Ok(())
}

fn fixed_packed<T: Real, const D: usize>(
    u: &mut Unstructured<'_>,
    lp: PackedTril<'_, T>,
    lq: PackedTril<'_, T>,
) -> Result<bool> {
    let v = wild_vec::<T>(u, 2 * D + 1)?;
    let mp: [T; D] = core::array::from_fn(|i| v[i]);
    let mq: [T; D] = core::array::from_fn(|i| v[D + i]);
    let _ = ok(&full::kl_packed_fixed::<T, D>(&mp, lp, &mq, lq));
    let t = tril_len(D).unwrap_or(0);
    let [mut pm, mut pf] = grad_bufs::<T>(u, D, t)?;
    let [mut qm, mut qf] = grad_bufs::<T>(u, D, t)?;
    let before = [bits(&pm), bits(&pf), bits(&qm), bits(&qf)];
    let grads = Grads::new(
        GradMut::new(&mut pm, &mut pf).mode(mode(u)?),
        GradMut::new(&mut qm, &mut qf).mode(mode(u)?),
    );
    let r = full::kl_grad_packed_fixed::<T, D>(&mp, lp, &mq, lq, v[2 * D], grads);
    untouched(ok(&r), &before, &[&pm, &pf, &qm, &qf]);
    Ok(true)
}

fn fixed_dense<T: Real, const D: usize>(u: &mut Unstructured<'_>) -> Result<bool> {
    let v = wild_vec::<T>(u, 2 * D * D + 2 * D + 1)?;
    let mat = |off: usize| -> [[T; D]; D] {
        core::array::from_fn(|i| core::array::from_fn(|j| v[off + i * D + j]))
    };
    let mp: [T; D] = core::array::from_fn(|i| v[2 * D * D + i]);
    let mq: [T; D] = core::array::from_fn(|i| v[2 * D * D + D + i]);
    let _ = ok(&full::kl_fixed::<T, D>(&mp, &mat(0), &mq, &mat(D * D)));
    let g = v[2 * D * D + 2 * D];
    let _ = ok(&full::kl_grad_fixed::<T, D>(
        &mp,
        &mat(0),
        &mq,
        &mat(D * D),
        g,
    ));
    Ok(true)
}

/// The `wide` lockstep kernels (8 `f32` or 4 `f64` pairs of compile-time `D`).
fn wide<const D: usize>(u: &mut Unstructured<'_>) -> Result<bool> {
    let t = D * (D + 1) / 2;
    if u.arbitrary()? {
        let (a, b): (Vec<f32>, Vec<f32>) = (near(u, Some(8 * D), CAP)?, near(u, Some(8 * t), CAP)?);
        let (c, e): (Vec<f32>, Vec<f32>) = (near(u, Some(8 * D), CAP)?, near(u, Some(8 * t), CAP)?);
        let _ = ok(&full::kl_wide_f32x8::<D>(&a, &b, &c, &e));
    } else {
        let (a, b): (Vec<f64>, Vec<f64>) = (near(u, Some(4 * D), CAP)?, near(u, Some(4 * t), CAP)?);
        let (c, e): (Vec<f64>, Vec<f64>) = (near(u, Some(4 * D), CAP)?, near(u, Some(4 * t), CAP)?);
        let _ = ok(&full::kl_wide_f64x4::<D>(&a, &b, &c, &e));
    }
    Ok(true)
}

fn fixed_call<T: Real>(u: &mut Unstructured<'_>) -> Result<()> {
    let big_d = fixed_dim(u)?;
    if u.ratio(1, 4)? {
        with_const_d!(big_d, D => wide::<D>(u)).expect("FIXED_DIMS")?;
        // The vector exp and the lane count at any level, available or not.
        let level = *u.choose(Level::all())?;
        let mut xs: Vec<T> = near(u, None, 64)?;
        let _ = (
            gaussian_kl::simd::exp_in_place(level, &mut xs),
            level.lanes::<T>(),
        );
        return Ok(());
    }
    if u.arbitrary()? {
        with_const_d!(big_d, D => fixed_dense::<T, D>(u)).expect("FIXED_DIMS")?;
        return Ok(());
    }
    // Packed factors whose d may differ from D.
    let d = wild_dim(u)?;
    let d_p = if u.arbitrary()? { big_d } else { d };
    let d_q = if u.arbitrary()? { big_d } else { d };
    let dp: Vec<T> = near(u, tril_len(d_p), CAP)?;
    let dq: Vec<T> = near(u, tril_len(d_q), CAP)?;
    let lp = PackedTril::with_layout(d_p, &dp, *u.choose(&LAYOUTS)?, diagonal(u)?);
    let lq = PackedTril::with_layout(d_q, &dq, *u.choose(&LAYOUTS)?, diagonal(u)?);
    if let (Ok(lp), Ok(lq)) = (lp, lq) {
        with_const_d!(big_d, D => fixed_packed::<T, D>(u, lp, lq)).expect("FIXED_DIMS")?;
    }
    Ok(())
}

fn cholesky_call<T: Real>(u: &mut Unstructured<'_>) -> Result<()> {
    let d = wild_dim(u)?;
    if u.arbitrary()? {
        let mut a: Vec<T> = near(u, d.checked_mul(d), CAP)?;
        if ok(&full::cholesky_in_place(d, &mut a)) {
            assert!(Some(a.len()) == d.checked_mul(d));
        }
    } else {
        let mut a: Vec<T> = near(u, tril_len(d), CAP)?;
        if ok(&full::cholesky_packed_in_place(d, &mut a)) {
            assert!(Some(a.len()) == tril_len(d));
        }
    }
    Ok(())
}

/// Raw data for a batch of full-rank Gaussians.
struct WildBatch<T> {
    n: usize,
    d: usize,
    means: Vec<T>,
    factors: Vec<T>,
    layout: gaussian_kl::Layout,
    diagonal: Diagonal,
}

impl<T: Real> WildBatch<T> {
    /// `n` and `d` small most of the time (the kernels are reached), wild
    /// otherwise; with `d = 0` the slices are empty whatever `n` is, and an
    /// honest request for 2⁴⁰ zero-dimensional pairs is not a bug, so `n`
    /// then stays `≤ 2¹⁶` unless it is absurd (`≥ usize::MAX / 2`).
    fn generate(u: &mut Unstructured<'_>, d: Option<usize>) -> Result<Self> {
        let mut n = if u.ratio(7, 8)? {
            u.int_in_range(0..=40)?
        } else {
            wild_dim(u)?
        };
        let d = match d {
            Some(d) if u.ratio(7, 8)? => d,
            _ if u.ratio(3, 4)? => u.int_in_range(0..=40)?,
            _ => wild_dim(u)?,
        };
        if d == 0 && n > 1 << 16 && n < usize::MAX / 2 {
            n %= 1 << 16;
        }
        let mn = wild_len(u, n.checked_mul(d), CAP)?;
        let fln = wild_len(u, tril_len(d).and_then(|t| t.checked_mul(n)), CAP)?;
        let mut factors: Vec<T> = wild_vec(u, fln)?;
        if u.arbitrary()? {
            for x in factors.iter_mut() {
                *x = x.abs();
            }
        }
        Ok(WildBatch {
            n,
            d,
            means: wild_vec(u, mn)?,
            factors,
            layout: *u.choose(&LAYOUTS)?,
            diagonal: diagonal(u)?,
        })
    }

    fn view(&self) -> core::result::Result<Gaussians<'_, T>, Error> {
        Gaussians::with_layout(
            self.n,
            self.d,
            &self.means,
            &self.factors,
            self.layout,
            self.diagonal,
        )
    }
}

/// `p`, `q`, whether they pair `All` (else `Zip`), and the number of pairs
/// the pairing rules give (`None`: the sizes do not broadcast).
type Sides<T> = (WildBatch<T>, WildBatch<T>, bool, Option<usize>);

/// Two wild batch sides and their pairing.
fn batch_sides<T: Real>(u: &mut Unstructured<'_>) -> Result<Sides<T>> {
    let p = WildBatch::<T>::generate(u, None)?;
    let mut q = WildBatch::<T>::generate(u, Some(p.d))?;
    if u.ratio(1, 3)? {
        q.n = 1; // broadcast (its slices keep their lengths: may be wrong)
    }
    let all = u.arbitrary()?;
    let pairs = if all {
        p.n.checked_mul(q.n)
    } else if p.n == q.n || q.n == 1 {
        Some(p.n)
    } else if p.n == 1 {
        Some(q.n)
    } else {
        None
    };
    Ok((p, q, all, pairs))
}

/// Honest requests stop at 2¹⁶ outputs (the same paths as millions).
fn too_many(pairs: Option<usize>) -> bool {
    matches!(pairs, Some(n) if n > 1 << 16)
}

fn batch_call<T: Real>(u: &mut Unstructured<'_>) -> Result<()> {
    let (pw, qw, all, pairs) = batch_sides::<T>(u)?;
    if too_many(pairs) {
        return Ok(());
    }
    let (Ok(p), Ok(q)) = (pw.view(), qw.view()) else {
        return Ok(());
    };
    let ex = exec(u)?;
    let prior = u.ratio(1, 4)?;
    let need = if prior {
        batch::kl_std_normal_scratch::<T>(p.dim(), &ex)
    } else {
        batch::kl_scratch::<T>(p.dim(), &ex)
    };
    let (mut work, off) = workspace::<T>(u, need.ok())?;
    let out_len = if prior { Some(p.len()) } else { pairs };
    let mut out: Vec<T> = near(u, out_len, CAP)?;
    let before = [bits(&out)];
    let r = if prior {
        batch::kl_std_normal(&p, &mut out, &ex, &mut work[off..])
    } else {
        let pq = if all { Pairs::All(&q) } else { Pairs::Zip(&q) };
        batch::kl(&p, pq, &mut out, &ex, &mut work[off..])
    };
    let r_ok = ok(&r);
    untouched(r_ok, &before, &[&out]);
    if r_ok {
        assert!(Some(out.len()) == out_len);
        // An empty batch has nothing to compute and needs no workspace: it
        // succeeds even where sizing the scratch of its `d` overflows (the
        // scratch query's `DimensionTooLarge`; tests/suite/batch.rs pins both).
        assert!(out.is_empty() || work.len() - off >= need.unwrap_or(usize::MAX));
    }
    Ok(())
}

fn batch_grad_call<T: Real>(u: &mut Unstructured<'_>) -> Result<()> {
    let (pw, qw, all, pairs) = batch_sides::<T>(u)?;
    if too_many(pairs) {
        return Ok(());
    }
    let (Ok(p), Ok(q)) = (pw.view(), qw.view()) else {
        return Ok(());
    };
    let ex = exec(u)?;
    let prior = u.ratio(1, 4)?;
    let need = if prior {
        batch::kl_std_normal_grad_scratch::<T>(p.dim(), &ex)
    } else {
        batch::kl_grad_scratch::<T>(p.dim(), &ex)
    };
    let (mut work, off) = workspace::<T>(u, need.ok())?;
    let out_len = if prior { Some(p.len()) } else { pairs };
    let mut out: Vec<T> = near(u, out_len, CAP)?;
    let upstream: Vec<T> = near(u, out_len, CAP)?;
    let [mut pm, mut pf] = grad_bufs::<T>(u, pw.means.len(), pw.factors.len())?;
    let [mut qm, mut qf] = grad_bufs::<T>(u, qw.means.len(), qw.factors.len())?;
    let before = [bits(&out), bits(&pm), bits(&pf), bits(&qm), bits(&qf)];
    let (mp, mq) = (mode(u)?, mode(u)?);
    let r = if prior {
        let g = GradMut::new(&mut pm, &mut pf).mode(mp);
        batch::kl_std_normal_grad(&p, &upstream, &mut out, g, &ex, &mut work[off..])
    } else {
        let pq = if all { Pairs::All(&q) } else { Pairs::Zip(&q) };
        let grads = Grads::new(
            GradMut::new(&mut pm, &mut pf).mode(mp),
            GradMut::new(&mut qm, &mut qf).mode(mq),
        );
        batch::kl_grad(&p, pq, &upstream, &mut out, grads, &ex, &mut work[off..])
    };
    let r_ok = ok(&r);
    untouched(r_ok, &before, &[&out, &pm, &pf, &qm, &qf]);
    // Every kernel (Blocked included) serves kl_grad.
    let kernel_refused = matches!(need, Err(Error::Unsupported { what: "kernel", .. }));
    assert!(prior || !kernel_refused, "kl_grad refused a kernel: {need:?}");
    if r_ok {
        assert!(Some(out.len()) == out_len && upstream.len() == out.len());
        assert!(out.is_empty() || work.len() - off >= need.unwrap_or(usize::MAX));
    }
    Ok(())
}

/// Raw data for `n` diagonal Gaussians.
struct WildDiag<T> {
    n: usize,
    d: usize,
    means: Vec<T>,
    spread: Vec<T>,
    log: bool,
}

impl<T: Real> WildDiag<T> {
    fn generate(u: &mut Unstructured<'_>, d: Option<usize>, huge_empty: bool) -> Result<Self> {
        let mut n = if u.ratio(3, 4)? {
            u.int_in_range(0..=40)?
        } else {
            wild_dim(u)?
        };
        let d = match d {
            Some(d) if u.ratio(7, 8)? => d,
            _ => wild_dim(u)?,
        };
        if d == 0 && n > 1 << 16 && !(huge_empty && n >= usize::MAX / 2) {
            n %= 1 << 16;
        }
        let want = n.checked_mul(d);
        let (nm, ns) = (wild_len(u, want, DIAG_CAP)?, wild_len(u, want, DIAG_CAP)?);
        let mut spread: Vec<T> = wild_vec(u, ns)?;
        if u.arbitrary()? {
            for x in spread.iter_mut() {
                *x = x.abs();
            }
        }
        Ok(WildDiag {
            n,
            d,
            means: wild_vec(u, nm)?,
            spread,
            log: u.arbitrary()?,
        })
    }

    fn view(&self) -> core::result::Result<DiagGaussians<'_, T>, Error> {
        if self.log {
            DiagGaussians::log_var(self.n, self.d, &self.means, &self.spread)
        } else {
            DiagGaussians::var(self.n, self.d, &self.means, &self.spread)
        }
    }

    fn one(&self) -> core::result::Result<DiagGaussian<'_, T>, Error> {
        if self.log {
            DiagGaussian::log_var(&self.means, &self.spread)
        } else {
            DiagGaussian::var(&self.means, &self.spread)
        }
    }
}

const REPS: [Rep; 4] = [Rep::Compact, Rep::CompactKl, Rep::Wide, Rep::WideKl];

fn diag_call<T: Real>(u: &mut Unstructured<'_>) -> Result<()> {
    let p = WildDiag::<T>::generate(u, None, false)?;
    let q = WildDiag::<T>::generate(u, Some(p.d), false)?;
    match u.int_in_range(0..=2u8)? {
        0 => {
            if let (Ok(a), Ok(b)) = (p.one(), q.one()) {
                let _ = (ok(&diag::kl(&a, &b)), ok(&diag::eq10(&a, &b)));
                let _ = ok(&diag::kl_std_normal(&a));
            }
        }
        1 => {
            let (Ok(a), Ok(b)) = (p.view(), q.view()) else {
                return Ok(());
            };
            let want = p.n.checked_mul(q.n);
            let mut out: Vec<T> = near(u, want, CAP)?;
            let before = [bits(&out)];
            let r = if u.arbitrary()? {
                diag::kl_all_pairs(&a, &b, &mut out)
            } else {
                diag::eq10_all_pairs(&a, &b, &mut out)
            };
            let r_ok = ok(&r);
            untouched(r_ok, &before, &[&out]);
            if r_ok {
                assert!(want == Some(out.len()) && p.d == q.d);
            }
        }
        _ => {
            let Ok(a) = p.view() else {
                return Ok(());
            };
            let rep = *u.choose(&REPS)?;
            let _ = (rep.len(wild_dim(u)?), rep.is_kl(), rep.is_wide());
            let want = p.n.checked_mul(rep.len(p.d));
            let mut out: Vec<T> = near(u, want, CAP)?;
            let before = [bits(&out)];
            let r = if u.arbitrary()? {
                diag::query_vectors(rep, &a, &mut out)
            } else {
                diag::doc_vectors(rep, &a, &mut out)
            };
            untouched(ok(&r), &before, &[&out]);
            let _ = diag::kl_from_dot(wild::<T>(u)?, wild_dim(u)?);
        }
    }
    Ok(())
}

fn diag_grad_call<T: Real>(u: &mut Unstructured<'_>) -> Result<()> {
    let p = WildDiag::<T>::generate(u, None, false)?;
    let q = WildDiag::<T>::generate(u, Some(p.d), false)?;
    let [mut pm, mut ps] = grad_bufs::<T>(u, p.means.len(), p.spread.len())?;
    let [mut qm, mut qs] = grad_bufs::<T>(u, q.means.len(), q.spread.len())?;
    let before = [bits(&pm), bits(&ps), bits(&qm), bits(&qs)];
    let (mp, mq) = (mode(u)?, mode(u)?);
    let kl = u.arbitrary()?;
    let op = u.int_in_range(0..=2u8)?;
    if op == 1 {
        let Ok(a) = p.one() else {
            return Ok(());
        };
        let g = DiagGradMut::new(&mut pm, &mut ps).mode(mp);
        let r_ok = ok(&diag::kl_std_normal_grad(&a, wild::<T>(u)?, g));
        untouched(r_ok, &before[..2], &[&pm, &ps]);
        return Ok(());
    }
    let grads = Grads::new(
        DiagGradMut::new(&mut pm, &mut ps).mode(mp),
        DiagGradMut::new(&mut qm, &mut qs).mode(mq),
    );
    let r_ok = if op == 0 {
        let (Ok(a), Ok(b)) = (p.one(), q.one()) else {
            return Ok(());
        };
        let up = wild::<T>(u)?;
        if kl {
            ok(&diag::kl_grad(&a, &b, up, grads))
        } else {
            ok(&diag::eq10_grad(&a, &b, up, grads))
        }
    } else {
        let (Ok(a), Ok(b)) = (p.view(), q.view()) else {
            return Ok(());
        };
        let want = p.n.checked_mul(q.n);
        let up: Vec<T> = near(u, want, CAP)?;
        if kl {
            ok(&diag::kl_all_pairs_grad(&a, &b, &up, grads))
        } else {
            ok(&diag::eq10_all_pairs_grad(&a, &b, &up, grads))
        }
    };
    untouched(r_ok, &before, &[&pm, &ps, &qm, &qs]);
    Ok(())
}

fn search_call<T: Real>(u: &mut Unstructured<'_>) -> Result<()> {
    let docs = WildDiag::<T>::generate(u, None, true)?;
    let Ok(dv) = docs.view() else {
        return Ok(());
    };
    let index = DocIndex::new(&dv);
    if !ok(&index) {
        return Ok(());
    }
    let index = index.expect("checked");
    assert_eq!((index.len(), index.dim()), (docs.n, docs.d));
    assert_eq!(index.is_empty(), docs.n == 0);
    let queries = WildDiag::<T>::generate(u, Some(docs.d), true)?;
    let Ok(qv) = queries.view() else {
        return Ok(());
    };
    let metric = if u.arbitrary()? {
        Metric::Kl
    } else {
        Metric::Eq10
    };
    let ex = exec(u)?;
    if u.arbitrary()? {
        let want = queries.n.checked_mul(docs.n);
        if too_many(want) {
            return Ok(());
        }
        let mut out: Vec<T> = near(u, want, CAP)?;
        let before = [bits(&out)];
        let r = search::scores(&index, &qv, metric, &mut out, &ex);
        let r_ok = ok(&r);
        untouched(r_ok, &before, &[&out]);
        if r_ok {
            assert!(want == Some(out.len()) && queries.d == docs.d);
        }
        return Ok(());
    }
    let top = if u.ratio(1, 4)? {
        wild_dim(u)?
    } else {
        u.int_in_range(0..=40)?
    };
    if queries.n.saturating_mul(top.min(docs.n)) > 1 << 16 && queries.n < usize::MAX / 2 {
        return Ok(());
    }
    let r = search::top_k(&index, &qv, top, metric, &ex);
    if ok(&r) {
        let hits = r.expect("checked");
        let per = top.min(docs.n);
        assert_eq!(hits.per_query, per);
        assert_eq!(hits.index.len(), queries.n * per);
        assert_eq!(hits.len(), if per == 0 { 0 } else { queries.n });
        assert_eq!(hits.is_empty(), hits.index.is_empty());
        let (a, b) = hits.row(u.arbitrary()?);
        assert_eq!(a.len(), b.len());
        assert!(hits.index.iter().all(|&j| j < docs.n));
    }
    Ok(())
}
