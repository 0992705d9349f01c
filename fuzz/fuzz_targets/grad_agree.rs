//! Full-rank gradient agreement (f64): the fused gradient kernels agree with
//! each other bit for bit, with the forward kernels, and with central finite
//! differences of the double-double reference.
//!
//! Input: `FullCase::generate_max(u, 32)` (`d ∈ 1..=32`, every layout per
//! factor, log or plain diagonals, finite values exact in f64), an upstream
//! weight `m/128 · 4`, a direction, and a small batch (below).
//!
//! Checks:
//! - bit-identical: the KL of `full::kl_grad` and `full::kl`; `kl_grad` with
//!   upstream `g` and `g ·` (its gradient with upstream 1), entry by entry;
//!   `Mode::Accumulate` and the existing contents plus the overwritten
//!   gradient; `full::kl_grad_packed_fixed::<f64, D>` (`d` in `FIXED_DIMS`)
//!   and `kl_grad`, KL and gradients; `kl_grad` in every other layout of
//!   each factor, the gradient read through the layout's index map; with
//!   plain diagonals, `kl_grad` on dense factors (`p` row-major, `q`
//!   column-major, strict upper triangle NaN: ignored; the gradients with
//!   the same strides, zero there) and `kl_grad_fixed`; `kl_std_normal_grad`
//!   and `kl_std_normal` (and the dense pair for a plain diagonal);
//!   `batch::kl_grad` (zip and all pairs) with the scalar
//!   kernel (`Kernel::Scalar`), any mix of broadcast sides and one upstream
//!   weight per pair, and a loop over `kl_grad` (a Gaussian's gradient
//!   summed from 0 in pair order);
//!   `batch::kl_std_normal_grad` and a loop over
//!   `kl_std_normal_grad`.
//! - finite differences: along a direction `v ∈ {−1, 0, 1}^n` over all
//!   parameters (`μ_p`, raw `L_p`, `μ_q`, raw `L_q`), the steps `h = 2⁻³⁰`
//!   and `h/2` are exact in f64 and the double-double reference makes the
//!   difference quotients `D_h`, `D_{h/2}` nearly free of rounding (below);
//!   their Richardson extrapolation `R = (4 D_{h/2} − D_h)/3` errs by
//!   `O(h⁴)`, far below `|D_h − D_{h/2}| ≈ h² |f'''| / 8`, which is added as
//!   slack. The kernel's `ĝ · v` must satisfy
//!   `|ĝ · v − R| ≤ 2 Σ|vᵢ| Eᵢ + n eps Σ|ĝᵢvᵢ| + 4 eps (|D_h| + |D_{h/2}|)
//!   + 2|D_h − D_{h/2}| + 3 T_dd / h` (the kernel's error, the rounding of
//!   the `n`-term dot product and of `R`, the truncation slack, and the
//!   reference's rounding carried through the quotients: `T_dd` is the
//!   forward bound `dd::tolerance` with unit roundoff `2⁻¹⁰⁰`, 16 ulps of
//!   the double-double format; the truncation error of the reference's
//!   `exp` is smooth in its argument and cancels in the differences), `Eᵢ`
//!   the error bound below. Checked where the case is well-conditioned:
//!   `(d+1) eps κ_S(L_q) ≤ 10⁻⁶`, so that second-order terms stay below the
//!   factor 2. The same for `kl_std_normal_grad` (`L_q = I`).
//! - the SIMD gradient kernel (`batch::kl_grad`, lockstep, at every level the
//!   host has), zip and all pairs, against the scalar kernel: each KL within
//!   `2 ·` the forward bound of `full_agree` of the double-double reference
//!   (the lockstep forward pass is the forward kernel's), each gradient entry
//!   within `4 Σ_b |u_b| E_b` of the scalar one (both kernels within twice
//!   the bound of the truth), summed over the pairs `b` that add into the
//!   entry (at most 4, whose sums' rounding the `γ` terms of `E` cover);
//!   checked for every pair that is well-conditioned as above: an
//!   ill-conditioned pair's KL and the entries it adds into are skipped, the
//!   rest of the batch still checked, and the skips counted on stderr.
//!
//! The error bound `E` (`error_bounds`): first-order and componentwise, with
//! `γ = (d + 6) eps` and the absolute values of the exact quantities.
//! Forward substitution `L_q y = b` returns `ŷ` with
//! `(L_q + ΔL) ŷ = b`, `|ΔL| ≤ γ |L_q|` (Higham, *Accuracy and Stability*,
//! Thm. 8.5; `γ` also covers the reciprocal of the diagonal and its `exp`,
//! at most 2 ulp), so `|ŷ − y| ≤ |L_q⁻¹| (eps |b| + γ |L_q| |y|)`; likewise
//! `M = L_q⁻¹ L_p` with `3 eps |L_p|` for `L_p`'s rounded diagonal (and
//! `M`'s, as the SIMD kernel's `exp(raw_p − raw_q)`), and the back
//! substitutions `z = L_q⁻ᵀ y`, `W = L_q⁻ᵀ M` add their input's error,
//! carried by `|L_q⁻ᵀ|`, to their own `γ |L_q⁻ᵀ| |L_qᵀ| |z|`:
//! ```text
//! E_y = |L_q⁻¹| (eps ỹ₀ + γ |L_q| |y|)     E_z = |L_q⁻ᵀ| (E_y + γ |L_qᵀ| |z|)
//! E_M = |L_q⁻¹| (3 eps |L_p| + γ |L_q| |M|)  E_W = |L_q⁻ᵀ| (E_M + γ |L_qᵀ| |W|)
//! E(μ)      = E_z + γ z̃
//! E(L_p)ᵢⱼ  = E_Wᵢⱼ + γ (W̃ᵢⱼ + [i=j]/L_pᵢᵢ)
//! E(L_q)ᵢⱼ  = E_zᵢ ỹⱼ + z̃ᵢ E_yⱼ + Σ_{k≤j} (E_Wᵢₖ M̃ⱼₖ + W̃ᵢₖ E_Mⱼₖ)
//!             + γ (z̃ᵢ ỹⱼ + Σ_{k≤j} W̃ᵢₖ M̃ⱼₖ + [i=j]/L_qᵢᵢ)
//! ```
//! with `ỹ₀ = |b|`, `ỹ = |L_q⁻¹||b|`, `M̃ = |L_q⁻¹||L_p|`, `z̃ = |L_q⁻ᵀ|ỹ`,
//! `W̃ = |L_q⁻ᵀ|M̃` (the terms' magnitudes), times `Lᵢᵢ (1 + 4 eps)` for a
//! log diagonal entry (the chain rule). The `γ |L_q⁻ᵀ||L_qᵀ||z|` term is the
//! one a magnitude-only bound misses: a back substitution that cancels
//! `O(1)` terms down to a small `zᵢ` errs by `eps` of those terms, not of
//! `zᵢ` (`fuzz/seeds/grad_agree/simd-vs-scalar-d16`: `z₀ ≈ 1.3e-7` from
//! terms of order 1; the two kernels differ there by `1e-16`).
#![no_main]

use arbitrary::{Result, Unstructured};
use gaussian_kl::batch::{self, Pairs};
use gaussian_kl::simd::Level;
use gaussian_kl::{Diagonal, GradMut, Layout, Mode, PackedTril, full};
use gaussian_kl::{Exec, Gaussians, Kernel};
use gaussian_kl_fuzz::dd::{self, Dd};
use gaussian_kl_fuzz::{
    Factor, FullCase, LAYOUTS, assert_close, assert_same, gaussian, generate_mean, mat, scaled,
    with_const_d,
};
use libfuzzer_sys::fuzz_target;
use std::sync::atomic::{AtomicUsize, Ordering};

const EPS: f64 = f64::EPSILON;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(case) = FullCase::generate_max(&mut u, 32) else {
        return;
    };
    let upstream = scaled(&mut u, 2).unwrap_or(1.0);
    check_pair(&case, upstream, &mut u);
    check_std_normal(&case, upstream, &mut u);
    let _ = check_batch(&mut u, case.d);
});

/// The four gradients of one pair, packed in their factors' layouts.
#[derive(Clone, Debug)]
struct Grads {
    mp: Vec<f64>,
    lp: Vec<f64>,
    mq: Vec<f64>,
    lq: Vec<f64>,
}

impl Grads {
    fn nan(d: usize) -> Grads {
        let t = d * (d + 1) / 2;
        Grads {
            mp: vec![f64::NAN; d],
            lp: vec![f64::NAN; t],
            mq: vec![f64::NAN; d],
            lq: vec![f64::NAN; t],
        }
    }

    fn out(&mut self) -> gaussian_kl::Grads<GradMut<'_, f64>> {
        gaussian_kl::Grads::new(
            GradMut::new(&mut self.mp, &mut self.lp),
            GradMut::new(&mut self.mq, &mut self.lq),
        )
    }
}

fn tril<'a>(d: usize, f: &Factor, data: &'a [f64], layout: Layout) -> PackedTril<'a, f64> {
    f.view(d, data, layout)
}

fn kl_grad(case: &FullCase, layout_p: Layout, layout_q: Layout, g: f64) -> (f64, Grads) {
    let d = case.d;
    let pp = case.l_p.packed::<f64>(d, layout_p);
    let pq = case.l_q.packed::<f64>(d, layout_q);
    let mut grads = Grads::nan(d);
    let mut work = vec![f64::NAN; full::kl_grad_scratch(d)];
    let kl = full::kl_grad(
        &gaussian(&case.mean_p, tril(d, &case.l_p, &pp, layout_p)),
        &gaussian(&case.mean_q, tril(d, &case.l_q, &pq, layout_q)),
        g,
        grads.out(),
        &mut work,
    )
    .expect("well-formed case");
    (kl, grads)
}

fn fixed_packed<const D: usize>(
    case: &FullCase,
    lp: PackedTril<'_, f64>,
    lq: PackedTril<'_, f64>,
    g: f64,
    out: gaussian_kl::Grads<GradMut<'_, f64>>,
) -> f64 {
    let mp: &[f64; D] = case.mean_p.as_slice().try_into().expect("d = D");
    let mq: &[f64; D] = case.mean_q.as_slice().try_into().expect("d = D");
    full::kl_grad_packed_fixed::<f64, D>(mp, lp, mq, lq, g, out).expect("well-formed case")
}

/// `kl_grad_fixed` on dense factors: the KL and the four gradients flattened.
fn fixed_dense<const D: usize>(
    case: &FullCase,
    dp: &[f64],
    dq: &[f64],
    g: f64,
) -> (f64, [Vec<f64>; 4]) {
    let arr = |v: &[f64]| -> [[f64; D]; D] {
        core::array::from_fn(|i| core::array::from_fn(|j| v[i * D + j]))
    };
    let mp: &[f64; D] = case.mean_p.as_slice().try_into().expect("d = D");
    let mq: &[f64; D] = case.mean_q.as_slice().try_into().expect("d = D");
    let (kl, gr) =
        full::kl_grad_fixed::<f64, D>(mp, &arr(dp), mq, &arr(dq), g).expect("well-formed case");
    (
        kl,
        [
            gr.mean_p.to_vec(),
            gr.factor_p.as_flattened().to_vec(),
            gr.mean_q.to_vec(),
            gr.factor_q.as_flattened().to_vec(),
        ],
    )
}

#[track_caller]
fn same_all(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (x, y) in a.iter().zip(b) {
        assert_same(*x, *y, what);
    }
}

fn check_pair(case: &FullCase, g: f64, u: &mut Unstructured<'_>) {
    let d = case.d;
    let (lay_p, lay_q) = (case.layout_p, case.layout_q);
    let (kl, g1) = kl_grad(case, lay_p, lay_q, 1.0);

    // The forward kernel.
    let pp = case.l_p.packed::<f64>(d, lay_p);
    let pq = case.l_q.packed::<f64>(d, lay_q);
    let (lp, lq) = (
        tril(d, &case.l_p, &pp, lay_p),
        tril(d, &case.l_q, &pq, lay_q),
    );
    let mut work = vec![f64::NAN; full::kl_scratch(d)];
    let (gp, gq) = (gaussian(&case.mean_p, lp), gaussian(&case.mean_q, lq));
    let fwd = full::kl(&gp, &gq, &mut work).expect("well-formed");
    assert_same(kl, fwd, "kl_grad KL vs full::kl");

    // Accumulate adds exactly the overwritten gradient to what is there.
    let mut acc = Grads {
        mp: g1.mp.iter().map(|x| x * 0.5).collect(),
        lp: g1.lp.iter().map(|x| -x).collect(),
        mq: g1.mq.clone(),
        lq: g1.lq.iter().map(|x| x * 3.0).collect(),
    };
    let start = acc.clone();
    let mut gw = vec![f64::NAN; full::kl_grad_scratch(d)];
    let grads = gaussian_kl::Grads::new(
        GradMut::new(&mut acc.mp, &mut acc.lp).mode(Mode::Accumulate),
        GradMut::new(&mut acc.mq, &mut acc.lq).mode(Mode::Accumulate),
    );
    let kl_a = full::kl_grad(&gp, &gq, 1.0, grads, &mut gw).expect("well-formed");
    assert_same(kl_a, kl, "kl_grad KL, accumulate");
    for (got, (s0, g)) in [
        (&acc.mp, (&start.mp, &g1.mp)),
        (&acc.lp, (&start.lp, &g1.lp)),
        (&acc.mq, (&start.mq, &g1.mq)),
        (&acc.lq, (&start.lq, &g1.lq)),
    ] {
        let want: Vec<f64> = s0.iter().zip(g).map(|(a, b)| a + b).collect();
        same_all(got, &want, "accumulate");
    }

    // Upstream scaling: exactly g · (gradient with upstream 1).
    let (kl_g, gg) = kl_grad(case, lay_p, lay_q, g);
    assert_same(kl_g, kl, "KL does not depend on upstream");
    for (a, b) in [
        (&gg.mp, &g1.mp),
        (&gg.lp, &g1.lp),
        (&gg.mq, &g1.mq),
        (&gg.lq, &g1.lq),
    ] {
        let scaled: Vec<f64> = b.iter().map(|&x| g * x).collect();
        same_all(a, &scaled, "upstream · gradient");
    }

    // Fixed dimension, packed.
    let mut gf = Grads::nan(d);
    if let Some(kl_f) = with_const_d!(d, D => fixed_packed::<D>(case, lp, lq, g, gf.out())) {
        assert_same(kl_f, kl, "kl_grad_packed_fixed KL");
        same_all(&gf.mp, &gg.mp, "kl_grad_packed_fixed mean_p");
        same_all(&gf.lp, &gg.lp, "kl_grad_packed_fixed l_p");
        same_all(&gf.mq, &gg.mq, "kl_grad_packed_fixed mean_q");
        same_all(&gf.lq, &gg.lq, "kl_grad_packed_fixed l_q");
    }

    // Every other layout: the same numbers through the index map.
    for (lo_p, lo_q) in LAYOUTS
        .iter()
        .map(|&l| (l, lay_q))
        .chain(LAYOUTS.iter().map(|&l| (lay_p, l)))
    {
        let (kl_l, gl) = kl_grad(case, lo_p, lo_q, g);
        assert_same(kl_l, kl, "kl_grad KL, layouts");
        same_all(&gl.mp, &gg.mp, "layouts mean_p");
        same_all(&gl.mq, &gg.mq, "layouts mean_q");
        for i in 0..d {
            for j in 0..=i {
                let (a, b) = (lo_p.index(d, i, j), lay_p.index(d, i, j));
                assert_same(gl.lp[a], gg.lp[b], "layouts l_p");
                let (a, b) = (lo_q.index(d, i, j), lay_q.index(d, i, j));
                assert_same(gl.lq[a], gg.lq[b], "layouts l_q");
            }
        }
    }

    // Dense forms (plain diagonals): p row-major, q column-major; the
    // gradients come back with the same strides, zeros above the diagonal.
    if case.l_p.diagonal == Diagonal::Plain && case.l_q.diagonal == Diagonal::Plain {
        let dp = case.l_p.dense_plain::<f64>(d, f64::NAN);
        let dq = case.l_q.dense_plain::<f64>(d, f64::NAN);
        let cq = case.l_q.dense_plain_col::<f64>(d, f64::NAN);
        let mut dense = Grads {
            mp: vec![f64::NAN; d],
            lp: vec![f64::NAN; d * d],
            mq: vec![f64::NAN; d],
            lq: vec![f64::NAN; d * d],
        };
        let mut work = vec![f64::NAN; full::kl_grad_scratch(d)];
        let kl_d = full::kl_grad(
            &gaussian(&case.mean_p, mat(d, &dp, d, 1)),
            &gaussian(&case.mean_q, mat(d, &cq, 1, d)),
            g,
            dense.out(),
            &mut work,
        )
        .expect("well-formed case");
        let Grads {
            mp: a,
            lp: b,
            mq: c,
            lq: e_col,
        } = dense;
        assert_same(kl_d, kl, "kl_grad dense KL");
        same_all(&a, &gg.mp, "kl_grad dense mean_p");
        same_all(&c, &gg.mq, "kl_grad dense mean_q");
        // q's gradient back in row-major order, for kl_grad_fixed below.
        let mut e = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                e[i * d + j] = e_col[j * d + i];
                let (wp, wq) = if j <= i {
                    (gg.lp[lay_p.index(d, i, j)], gg.lq[lay_q.index(d, i, j)])
                } else {
                    (0.0, 0.0)
                };
                assert_same(b[i * d + j], wp, "kl_grad dense row-major l_p");
                assert_same(e_col[j * d + i], wq, "kl_grad dense column-major l_q");
            }
        }
        if let Some((kl_fd, fx)) = with_const_d!(d, D => fixed_dense::<D>(case, &dp, &dq, g)) {
            assert_same(kl_fd, kl, "kl_grad_fixed KL");
            same_all(&fx[0], &a, "kl_grad_fixed mean_p");
            same_all(&fx[1], &b, "kl_grad_fixed l_p");
            same_all(&fx[2], &c, "kl_grad_fixed mean_q");
            same_all(&fx[3], &e, "kl_grad_fixed l_q");
        }
    }

    // Finite differences of the double-double reference.
    let kappa = case.kappa_q();
    if (d + 1) as f64 * EPS * kappa > 1e-6 {
        return;
    }
    let Ok(dir) = direction(u, 2 * d + d * (d + 1)) else {
        return;
    };
    fd_check(case, &g1, &dir, &error_bounds(case), kappa, false);
}

/// A direction `v ∈ {−1, 0, 1}^n`.
fn direction(u: &mut Unstructured<'_>, n: usize) -> Result<Vec<f64>> {
    (0..n)
        .map(|_| Ok(f64::from(u.int_in_range(-1..=1i8)?)))
        .collect()
}

/// A first-order, componentwise bound on the rounding error of every
/// gradient entry (upstream 1), in the order `μ_p, L_p (row-major packed),
/// μ_q, L_q (row-major packed)` (module docs: "The error bound").
fn error_bounds(case: &FullCase) -> Vec<f64> {
    let d = case.d;
    let plain = |f: &Factor| f.dense_plain::<f64>(d, 0.0);
    let (lp, lq) = (plain(&case.l_p), plain(&case.l_q));
    let inv = dd::inverse_lower(d, &lq);
    let gamma = (d + 6) as f64 * EPS;
    let abs = |v: &[f64]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    // `A x` (or `Aᵀ x` with `t`) for a dense lower-triangular `d × d` `A`
    // and a dense `d × c` `x`, row by row (`k ≤ i`, or `k ≥ i` for `Aᵀ`).
    let mul = |a: &[f64], t: bool, x: &[f64], c: usize| -> Vec<f64> {
        let mut out = vec![0.0; d * c];
        for i in 0..d {
            let row = &mut out[i * c..(i + 1) * c];
            let ks = if t { i..d } else { 0..i + 1 };
            for k in ks {
                let aik = if t { a[k * d + i] } else { a[i * d + k] };
                for (o, &xk) in row.iter_mut().zip(&x[k * c..(k + 1) * c]) {
                    *o += aik * xk;
                }
            }
        }
        out
    };
    let axpy = |a: f64, x: &[f64], y: &[f64]| -> Vec<f64> {
        x.iter().zip(y).map(|(x, y)| a * x + y).collect()
    };
    let (ainv, alq) = (abs(&inv), abs(&lq));
    let b: Vec<f64> = (0..d).map(|i| case.mean_q[i] - case.mean_p[i]).collect();
    // Values (first order suffices) and term magnitudes.
    let y = mul(&inv, false, &b, 1);
    let m = mul(&inv, false, &lp, d);
    let z = mul(&inv, true, &y, 1);
    let w = mul(&inv, true, &m, d);
    let yt = mul(&ainv, false, &abs(&b), 1);
    let mt = mul(&ainv, false, &abs(&lp), d);
    let zt = mul(&ainv, true, &yt, 1);
    let wt = mul(&ainv, true, &mt, d);
    // The two solves' errors: a perturbed right-hand side, then
    // `|L_q⁻¹| γ |L_q| |x|` (and transposed) for each substitution.
    let solve = |rhs: Vec<f64>, x: &[f64], c: usize, t: bool| -> Vec<f64> {
        let back = mul(&ainv, t, &mul(&alq, t, &abs(x), c), c);
        axpy(gamma, &back, &rhs)
    };
    let ey = solve(yt.iter().map(|x| EPS * x).collect(), &y, 1, false);
    let em = solve(mt.iter().map(|x| 3.0 * EPS * x).collect(), &m, d, false);
    let ez = solve(mul(&ainv, true, &ey, 1), &z, 1, true);
    let ew = solve(mul(&ainv, true, &em, d), &w, d, true);
    let log = |f: &Factor, l: &[f64], i: usize, x: f64| match f.diagonal {
        Diagonal::Log => x * l[i * d + i] * (1.0 + 4.0 * EPS),
        Diagonal::Plain => x,
    };
    let mut out = Vec::with_capacity(2 * d + d * (d + 1));
    let means: Vec<f64> = (0..d).map(|i| ez[i] + gamma * zt[i]).collect();
    out.extend_from_slice(&means);
    for i in 0..d {
        for j in 0..=i {
            let diag = if i == j { 1.0 / lp[i * d + i] } else { 0.0 };
            let e = ew[i * d + j] + gamma * (wt[i * d + j] + diag);
            out.push(if i == j { log(&case.l_p, &lp, i, e) } else { e });
        }
    }
    out.extend_from_slice(&means);
    for i in 0..d {
        for j in 0..=i {
            let (mut err, mut mag) = (ez[i] * yt[j] + zt[i] * ey[j], zt[i] * yt[j]);
            for k in 0..=j {
                err += ew[i * d + k] * mt[j * d + k] + wt[i * d + k] * em[j * d + k];
                mag += wt[i * d + k] * mt[j * d + k];
            }
            let diag = if i == j { 1.0 / lq[i * d + i] } else { 0.0 };
            let e = err + gamma * (mag + diag);
            out.push(if i == j { log(&case.l_q, &lq, i, e) } else { e });
        }
    }
    out
}

/// The case moved by `t · v` (exact: `t = ±2⁻³⁰` or `±2⁻³¹`, every input a
/// multiple of `2⁻¹⁵` of magnitude ≤ 16), as dense raw factors.
fn moved(case: &FullCase, v: &[f64], t: f64) -> [Vec<f64>; 4] {
    let d = case.d;
    let mut it = v.iter();
    let mut next = |x: f64| x + t * it.next().copied().unwrap_or(0.0);
    let mp: Vec<f64> = case.mean_p.iter().map(|&x| next(x)).collect();
    let mut lp = case.l_p.raw.clone();
    for i in 0..d {
        for j in 0..=i {
            lp[i * d + j] = next(lp[i * d + j]);
        }
    }
    let mq: Vec<f64> = case.mean_q.iter().map(|&x| next(x)).collect();
    let mut lq = case.l_q.raw.clone();
    for i in 0..d {
        for j in 0..=i {
            lq[i * d + j] = next(lq[i * d + j]);
        }
    }
    [mp, lp, mq, lq]
}

/// Checks `ĝ · v` (gradient with upstream 1, packed in the case's layouts)
/// against the Richardson-extrapolated central difference. `std_normal`:
/// `case` has `q = N(0, I)` ([`FullCase::with_std_normal_q`]), and `v` and
/// `g1` cover `μ_p, L_p` only.
fn fd_check(case: &FullCase, g1: &Grads, v: &[f64], bounds: &[f64], kappa: f64, std_normal: bool) {
    let d = case.d;
    let f = |t: f64| -> dd::Reference {
        let [mp, lp, mq, lq] = moved(case, v, t);
        dd::kl(
            d,
            &mp,
            &lp,
            case.l_p.dd_diag(),
            &mq,
            &lq,
            case.l_q.dd_diag(),
        )
    };
    let h = 2f64.powi(-30);
    let mut scale: f64 = 0.0;
    let mut quotient = |h: f64| {
        let (a, b) = (f(h), f(-h));
        scale = scale.max(a.scale).max(b.scale);
        ((a.kl - b.kl) / Dd::new(2.0 * h)).to_f64()
    };
    let (d1, d2) = (quotient(h), quotient(h / 2.0));
    let rich = (4.0 * d2 - d1) / 3.0;
    // The reference's own rounding (its forward bound with a double-double
    // unit roundoff of 2⁻¹⁰⁰, 16 ulps of slack), divided by the steps:
    // `(4 · 2/h + 2/(2h)) / 3 = 3/h` times the bound for `R`.
    let noise = 3.0 * dd::tolerance(d, 2f64.powi(-100), kappa, scale) / h;
    // ĝ · v in the row-major packed order of `moved` and `error_bounds`.
    let (mut dot, mut weight, mut abs_dot) = (0.0, 0.0, 0.0);
    let mut k = 0;
    let mut add = |gi: f64, k: &mut usize| {
        dot += gi * v[*k];
        abs_dot += (gi * v[*k]).abs();
        weight += v[*k].abs() * bounds[*k];
        *k += 1;
    };
    for i in 0..d {
        add(g1.mp[i], &mut k);
    }
    for i in 0..d {
        for j in 0..=i {
            add(g1.lp[case.layout_p.index(d, i, j)], &mut k);
        }
    }
    if !std_normal {
        for i in 0..d {
            add(g1.mq[i], &mut k);
        }
        for i in 0..d {
            for j in 0..=i {
                add(g1.lq[case.layout_q.index(d, i, j)], &mut k);
            }
        }
    }
    // The kernel's error (twice the first-order bound), the rounding of the
    // dot product and of `R`, and the truncation slack.
    let tol = 2.0 * weight
        + k as f64 * EPS * abs_dot
        + 4.0 * EPS * (d1.abs() + d2.abs())
        + 2.0 * (d1 - d2).abs()
        + noise;
    let err = (dot - rich).abs();
    assert!(
        err <= tol,
        "gradient vs finite differences (std_normal: {std_normal}): d = {d}, ĝ·v = {dot:e}, \
         FD = {rich:e} (D_h {d1:e}, D_h/2 {d2:e}), |error| {err:e} > {tol:e}"
    );
}

fn check_std_normal(case: &FullCase, g: f64, u: &mut Unstructured<'_>) {
    let d = case.d;
    let pp = case.l_p.packed::<f64>(d, case.layout_p);
    let p = gaussian(&case.mean_p, tril(d, &case.l_p, &pp, case.layout_p));
    let mut grads = Grads::nan(d);
    let kl = full::kl_std_normal_grad(&p, 1.0, GradMut::new(&mut grads.mp, &mut grads.lp))
        .expect("well-formed case");
    assert_same(
        kl,
        full::kl_std_normal(&p).unwrap(),
        "kl_std_normal_grad KL",
    );
    let (mut gm, mut gl) = (vec![f64::NAN; d], vec![f64::NAN; pp.len()]);
    let kl_g = full::kl_std_normal_grad(&p, g, GradMut::new(&mut gm, &mut gl)).unwrap();
    assert_same(kl_g, kl, "kl_std_normal_grad KL, upstream");
    same_all(
        &gm,
        &grads.mp.iter().map(|&x| g * x).collect::<Vec<_>>(),
        "upstream μ",
    );
    same_all(
        &gl,
        &grads.lp.iter().map(|&x| g * x).collect::<Vec<_>>(),
        "upstream L",
    );
    if case.l_p.diagonal == Diagonal::Plain {
        let dense = case.l_p.dense_plain::<f64>(d, f64::NAN);
        let (mut dm, mut dl) = (vec![f64::NAN; d], vec![f64::NAN; d * d]);
        let pd = gaussian(&case.mean_p, mat(d, &dense, d, 1));
        let kl_d = full::kl_std_normal_grad(&pd, g, GradMut::new(&mut dm, &mut dl)).unwrap();
        let fwd = full::kl_std_normal(&pd).unwrap();
        assert_same(kl_d, fwd, "kl_std_normal_grad_dense KL vs forward");
        assert_same(kl_d, kl, "kl_std_normal_grad_dense KL vs packed");
        same_all(&dm, &gm, "kl_std_normal_grad_dense μ");
        for i in 0..d {
            for j in 0..d {
                let want = if j <= i {
                    gl[case.layout_p.index(d, i, j)]
                } else {
                    0.0
                };
                assert_same(dl[i * d + j], want, "kl_std_normal_grad_dense L");
            }
        }
    }
    // Finite differences (q = N(0, I): κ_S = 1).
    let Ok(dir) = direction(u, d + d * (d + 1) / 2) else {
        return;
    };
    let prior = case.with_std_normal_q();
    let bounds = error_bounds(&prior);
    fd_check(
        &prior,
        &grads,
        &dir,
        &bounds[..d + d * (d + 1) / 2],
        1.0,
        true,
    );
}

/// A batch side: `count` Gaussians (packed in `layout`).
struct Side {
    means: Vec<f64>,
    factors: Vec<f64>,
    layout: Layout,
    diagonal: Diagonal,
}

impl Side {
    fn generate(u: &mut Unstructured<'_>, d: usize, count: usize) -> Result<Side> {
        let layout = *u.choose(&LAYOUTS)?;
        let diagonal = if u.arbitrary()? {
            Diagonal::Log
        } else {
            Diagonal::Plain
        };
        let e = u.int_in_range(-4..=4i32)?;
        let (mut means, mut factors) = (Vec::new(), Vec::new());
        for _ in 0..count {
            means.extend(generate_mean(u, d, e)?);
            factors.extend(Factor::generate_with(u, d, diagonal)?.packed::<f64>(d, layout));
        }
        Ok(Side {
            means,
            factors,
            layout,
            diagonal,
        })
    }

    fn batch(&self, d: usize) -> Gaussians<'_, f64> {
        let n = self.means.len() / d;
        let (m, f) = (&self.means, &self.factors);
        Gaussians::with_layout(n, d, m, f, self.layout, self.diagonal).expect("well-formed batch")
    }

    /// Gaussian `i` of this side and `j` of `q` as a full case.
    fn case_with(&self, q: &Side, d: usize, i: usize, j: usize) -> FullCase {
        let t = d * (d + 1) / 2;
        let factor = |s: &Side, k: usize| {
            let mut raw = vec![0.0; d * d];
            for r in 0..d {
                for c in 0..=r {
                    raw[r * d + c] = s.factors[k * t + s.layout.index(d, r, c)];
                }
            }
            Factor {
                raw,
                diagonal: s.diagonal,
            }
        };
        FullCase {
            d,
            mean_p: self.means[i * d..(i + 1) * d].to_vec(),
            mean_q: q.means[j * d..(j + 1) * d].to_vec(),
            l_p: factor(self, i),
            l_q: factor(q, j),
            layout_p: self.layout,
            layout_q: q.layout,
        }
    }

    fn row(&self, d: usize, b: usize) -> (&[f64], PackedTril<'_, f64>) {
        let t = d * (d + 1) / 2;
        let count = self.means.len() / d;
        let b = if count == 1 { 0 } else { b };
        let f = PackedTril::with_layout(
            d,
            &self.factors[b * t..(b + 1) * t],
            self.layout,
            self.diagonal,
        )
        .expect("well-formed batch");
        (&self.means[b * d..(b + 1) * d], f)
    }
}

fn check_batch(u: &mut Unstructured<'_>, d: usize) -> Result<()> {
    let n = u.int_in_range(0..=4usize)?;
    let (shared_p, shared_q) = (u.arbitrary()?, u.arbitrary()?);
    let count = |shared: bool| if shared { 1 } else { n };
    let p = Side::generate(u, d, count(shared_p))?;
    let q = Side::generate(u, d, count(shared_q))?;
    let all_pairs = u.arbitrary::<bool>()?;
    let (np, nq) = (p.means.len() / d, q.means.len() / d);
    // The pairs, in output order.
    let pairs: Vec<(usize, usize)> = if all_pairs {
        (0..np).flat_map(|i| (0..nq).map(move |j| (i, j))).collect()
    } else {
        // Zip: a side of one broadcasts (numpy's rules: an empty side gives
        // no pair, two sides of one give one pair).
        let n_out = if np == 0 || nq == 0 { 0 } else { np.max(nq) };
        (0..n_out).map(|b| (b.min(np - 1), b.min(nq - 1))).collect()
    };
    // One upstream weight per pair (per Gaussian for the prior).
    let up: Vec<f64> = (0..pairs.len())
        .map(|_| scaled(u, 2))
        .collect::<Result<_>>()?;
    let prior_up: Vec<f64> = (0..n).map(|_| scaled(u, 2)).collect::<Result<_>>()?;
    let scalar = Exec::new().kernel(Kernel::Scalar);
    let want = run_batch(scalar, all_pairs, d, &p, &q, &up, pairs.len());
    let want =
        want.unwrap_or_else(|e| panic!("batch (n {n}, all {all_pairs}, np {np}, nq {nq}): {e}"));
    // The loop.
    let t = d * (d + 1) / 2;
    let mut acc = [
        vec![0.0; p.means.len()],
        vec![0.0; p.factors.len()],
        vec![0.0; q.means.len()],
        vec![0.0; q.factors.len()],
    ];
    let mut bound = acc.clone();
    // Pairs too ill-conditioned for the first-order bound: their KL and the
    // gradient entries they add into are skipped (and counted), the rest of
    // the batch is still checked.
    let mut conditioned = Vec::with_capacity(pairs.len());
    let mut references = Vec::with_capacity(pairs.len());
    // Entry `i` of a factor packed in `layout` is entry `at[i]` row-major.
    let row_major_at = |layout: Layout| {
        let mut at = vec![0; t];
        for r in 0..d {
            for col in 0..=r {
                at[layout.index(d, r, col)] = r * (r + 1) / 2 + col;
            }
        }
        at
    };
    let (at_p, at_q) = (row_major_at(p.layout), row_major_at(q.layout));
    for (b, &(ip, iq)) in pairs.iter().enumerate() {
        let (mp, lp) = p.row(d, ip);
        let (mq, lq) = q.row(d, iq);
        let g = up[b];
        let mut one = Grads::nan(d);
        let mut w = vec![f64::NAN; full::kl_grad_scratch(d)];
        let (gp, gq) = (gaussian(mp, lp), gaussian(mq, lq));
        let v = full::kl_grad(&gp, &gq, g, one.out(), &mut w).expect("well-formed");
        assert_same(want.0[b], v, "batch KL");
        // The SIMD kernel's bounds (module docs), in the factors' layouts.
        let case = p.case_with(&q, d, ip, iq);
        let (reference, kappa) = case.reference();
        references.push((reference, kappa));
        let ok = (d + 1) as f64 * EPS * kappa <= 1e-6;
        conditioned.push(ok);
        let errs = error_bounds(&case);
        // Each kernel within twice the first-order bound of the truth.
        let c = 4.0 * g.abs();
        // (gradient, slot, Gaussian, length, row-major index map)
        type Part<'a> = (&'a [f64], usize, usize, usize, &'a [usize]);
        let parts: [Part<'_>; 4] = [
            (&one.mp, 0, ip, d, &at_p),
            (&one.lp, 1, ip, t, &at_p),
            (&one.mq, 2, iq, d, &at_q),
            (&one.lq, 3, iq, t, &at_q),
        ];
        for (vals, slot, row, len, at) in parts {
            for (a, &x) in acc[slot][row * len..(row + 1) * len].iter_mut().zip(vals) {
                *a += x;
            }
            // `errs` holds μ_p, L_p, μ_q, L_q, factors row-major packed.
            let off = [0, d, d + t, 2 * d + t][slot];
            for i in 0..len {
                let m = errs[off + if len == d { i } else { at[i] }];
                // An ill-conditioned pair makes the entries it touches unbounded.
                bound[slot][row * len + i] += if ok { c * m } else { f64::INFINITY };
            }
        }
    }
    let names = ["means_p", "factors_p", "means_q", "factors_q"];
    for k in 0..4 {
        same_all(&want.1[k], &acc[k], names[k]);
    }

    let skipped = conditioned.iter().filter(|ok| !**ok).count();
    if skipped > 0 {
        count_skips(skipped);
    }

    // The SIMD kernels (lockstep and blocked) at every level.
    let levels = Level::all().iter().filter(|l| l.is_available());
    let kernels = [Kernel::Lanes, Kernel::Blocked];
    for exec in levels.flat_map(|&l| kernels.map(|k| Exec::new().level(l).kernel(k))) {
        let got = run_batch(exec, all_pairs, d, &p, &q, &up, pairs.len()).expect("as scalar");
        for (b, (r, kappa)) in references.iter().enumerate() {
            if conditioned[b] {
                assert_close(got.0[b], r, d, 2.0 * kappa, "SIMD batch KL");
            }
        }
        for k in 0..4 {
            for (i, (x, y)) in got.1[k].iter().zip(&want.1[k]).enumerate() {
                let tol = bound[k][i];
                if tol.is_infinite() {
                    continue;
                }
                assert!(
                    (x - y).abs() <= tol,
                    "SIMD batch {} [{i}]: {x:e} vs scalar {y:e}, tol {tol:e}",
                    names[k]
                );
            }
        }
    }

    // The prior path.
    let p_full = if shared_p { None } else { Some(&p) };
    if let Some(p) = p_full {
        let mut kl = vec![f64::NAN; n];
        let (mut gm, mut gl) = (
            vec![f64::NAN; p.means.len()],
            vec![f64::NAN; p.factors.len()],
        );
        let up = prior_up;
        let exec = Exec::new();
        let mut work = vec![f64::NAN; batch::kl_std_normal_grad_scratch::<f64>(d, &exec).unwrap()];
        let grad = GradMut::new(&mut gm, &mut gl);
        batch::kl_std_normal_grad(&p.batch(d), &up, &mut kl, grad, &exec, &mut work)
            .expect("well-formed batch");
        for b in 0..n {
            let (mp, lp) = p.row(d, b);
            let g = up[b];
            let (mut m1, mut l1) = (vec![f64::NAN; d], vec![f64::NAN; t]);
            let gp = gaussian(mp, lp);
            let v = full::kl_std_normal_grad(&gp, g, GradMut::new(&mut m1, &mut l1)).unwrap();
            assert_same(kl[b], v, "prior batch KL");
            same_all(&gm[b * d..(b + 1) * d], &m1, "prior batch μ");
            same_all(&gl[b * t..(b + 1) * t], &l1, "prior batch L");
        }
    }
    Ok(())
}

/// Counts the batch pairs skipped as too ill-conditioned to bound, printing
/// the running total at every power of two (fuzzing output shows how much
/// the SIMD check leaves out).
fn count_skips(n: usize) {
    static SKIPPED: AtomicUsize = AtomicUsize::new(0);
    let before = SKIPPED.fetch_add(n, Ordering::Relaxed);
    let after = before + n;
    if after.next_power_of_two() != before.next_power_of_two() || before == 0 {
        eprintln!(
            "grad_agree: {after} ill-conditioned batch pairs skipped in the SIMD check so far"
        );
    }
}

/// One batched call: the KL values and the four gradients, or the error.
#[allow(clippy::type_complexity)]
fn run_batch(
    exec: Exec,
    all_pairs: bool,
    d: usize,
    p: &Side,
    q: &Side,
    up: &[f64],
    n: usize,
) -> Result<(Vec<f64>, [Vec<f64>; 4]), gaussian_kl::Error> {
    let mut kl = vec![f64::NAN; n];
    let mut g = [
        vec![f64::NAN; p.means.len()],
        vec![f64::NAN; p.factors.len()],
        vec![f64::NAN; q.means.len()],
        vec![f64::NAN; q.factors.len()],
    ];
    let mut work = vec![f64::NAN; batch::kl_grad_scratch::<f64>(d, &exec)?];
    let [g1, g2, g3, g4] = &mut g;
    let grad = gaussian_kl::Grads::new(GradMut::new(g1, g2), GradMut::new(g3, g4));
    let (pb, qb) = (p.batch(d), q.batch(d));
    let pairs = if all_pairs {
        Pairs::All(&qb)
    } else {
        Pairs::Zip(&qb)
    };
    let r = batch::kl_grad(&pb, pairs, up, &mut kl, grad, &exec, &mut work);
    r.map(|()| (kl, g))
}
