//! Full-rank agreement: every implementation path of `KL(p‖q)` agrees with
//! every other and with an independent double-double reference.
//!
//! Input: `FullCase::generate` (d ∈ 1..=64, any layout per factor, log or
//! plain diagonals, finite bounded values exact in f32 and f64); each case
//! runs in both precisions.
//!
//! Checks, for `T` ∈ {f32, f64}:
//! - bit-identical: `full::kl` with each factor in every layout; `full::kl_packed_fixed::<T, D>` (const `D`, for `d` in `FIXED_DIMS`);
//!   with plain diagonals, `full::kl` on the dense expansion as row-major,
//!   column-major and transposed `MatRef`s, and `full::kl_fixed` (the
//!   batch kernels at every level are `batch_agree`'s).
//! - close to the reference (`dd::tolerance`):
//!   `|KL̂ − KL| ≤ 8 · (d+1)^{3/2} · eps_T · κ_S(L_q) · S`, with Skeel's
//!   condition number `κ_S(L_q) = ‖ |L_q⁻¹| |L_q| ‖∞` and
//!   `S = ‖y‖² + ‖M‖²_F + 2(Σ|log L_pᵢᵢ| + Σ|log L_qᵢᵢ|) + d`, checked while
//!   `(d+1)·eps_T·κ_S ≤ 1/8` (first-order analysis valid) and `S` is far
//!   from overflow in `T`; `full::kl_std_normal` against the reference with
//!   `q = N(0, I)` (`κ_S = 1`); in f64 with plain diagonals, `full::kl_cov`
//!   on `Σ = L Lᵀ` (exact in f64) with `κ_S²` in place of `κ_S`.
#![no_main]

use arbitrary::Unstructured;
use gaussian_kl::{Diagonal, Error, PackedTril, Real, full};
use gaussian_kl_fuzz::{FullCase, LAYOUTS, assert_close, assert_same, gaussian, mat, with_const_d};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(case) = FullCase::generate(&mut u) else {
        return;
    };
    let (reference, kappa) = case.reference();
    check::<f32>(&case, &reference, kappa);
    check::<f64>(&case, &reference, kappa);
});

fn fixed_packed<T: Real, const D: usize>(
    mean_p: &[T],
    l_p: PackedTril<'_, T>,
    mean_q: &[T],
    l_q: PackedTril<'_, T>,
) -> Result<T, Error> {
    let mp: &[T; D] = mean_p.try_into().expect("d = D");
    let mq: &[T; D] = mean_q.try_into().expect("d = D");
    full::kl_packed_fixed::<T, D>(mp, l_p, mq, l_q)
}

fn fixed_dense<T: Real, const D: usize>(
    mean_p: &[T],
    dense_p: &[T],
    mean_q: &[T],
    dense_q: &[T],
) -> Result<T, Error> {
    let arr = |v: &[T]| {
        let mut a = [[T::ZERO; D]; D];
        for (i, row) in a.iter_mut().enumerate() {
            row.copy_from_slice(&v[i * D..(i + 1) * D]);
        }
        a
    };
    let mp: &[T; D] = mean_p.try_into().expect("d = D");
    let mq: &[T; D] = mean_q.try_into().expect("d = D");
    full::kl_fixed::<T, D>(mp, &arr(dense_p), mq, &arr(dense_q))
}

fn check<T: Real>(case: &FullCase, reference: &gaussian_kl_fuzz::dd::Reference, kappa: f64) {
    let d = case.d;
    let conv = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
    let (mean_p, mean_q) = (conv(&case.mean_p), conv(&case.mean_q));
    let packed_p = case.l_p.packed::<T>(d, case.layout_p);
    let packed_q = case.l_q.packed::<T>(d, case.layout_q);
    let lp = case.l_p.view(d, &packed_p, case.layout_p);
    let lq = case.l_q.view(d, &packed_q, case.layout_q);
    let mut work = vec![T::NAN; full::kl_scratch(d)];
    let (p, q) = (gaussian(&mean_p, lp), gaussian(&mean_q, lq));
    let kl = full::kl(&p, &q, &mut work).expect("well-formed case");

    // Every layout of each factor (the other kept): bit-identical.
    let pairs = LAYOUTS
        .iter()
        .map(|&l| (l, case.layout_q))
        .chain(LAYOUTS.iter().map(|&l| (case.layout_p, l)));
    for (layout_p, layout_q) in pairs {
        let pp = case.l_p.packed::<T>(d, layout_p);
        let pq = case.l_q.packed::<T>(d, layout_q);
        let other = full::kl(
            &gaussian(&mean_p, case.l_p.view(d, &pp, layout_p)),
            &gaussian(&mean_q, case.l_q.view(d, &pq, layout_q)),
            &mut work,
        )
        .expect("well-formed case");
        assert_same(kl, other, "kl, layouts");
    }

    // Fixed dimension: bit-identical.
    if let Some(fixed) = with_const_d!(d, D => fixed_packed::<T, D>(&mean_p, lp, &mean_q, lq)) {
        assert_same(kl, fixed.expect("well-formed case"), "kl_packed_fixed");
    }

    // Dense forms of plain factors: bit-identical.
    if case.l_p.diagonal == Diagonal::Plain && case.l_q.diagonal == Diagonal::Plain {
        // The strict upper triangle is ignored: fill it with NaN to prove it.
        let dp = case.l_p.dense_plain::<T>(d, T::NAN);
        let dq = case.l_q.dense_plain::<T>(d, T::NAN);
        let (cp, cq) = (
            case.l_p.dense_plain_col::<T>(d, T::NAN),
            case.l_q.dense_plain_col::<T>(d, T::NAN),
        );
        // Row-major p against column-major q, column-major p against a
        // transposed view of q's column-major storage read as row-major.
        for (vp, vq) in [
            (mat(d, &dp, d, 1), mat(d, &cq, 1, d)),
            (mat(d, &cp, 1, d), mat(d, &cq, d, 1).transpose()),
        ] {
            let dense = full::kl(&gaussian(&mean_p, vp), &gaussian(&mean_q, vq), &mut work)
                .expect("well-formed");
            assert_same(kl, dense, "kl, dense");
        }
        if let Some(fixed) = with_const_d!(d, D => fixed_dense::<T, D>(&mean_p, &dp, &mean_q, &dq))
        {
            assert_same(kl, fixed.expect("well-formed case"), "kl_fixed");
        }
    }

    // Covariances: with plain diagonals, Σ = L Lᵀ is exact in f64 (the
    // entries of L are multiples of 2⁻¹⁵ of magnitude at most 8, so each
    // product is a multiple of 2⁻³⁰ of magnitude at most 2⁶, and a sum of at
    // most 64 of them needs at most 43 bits). `kl_cov` factors Σ again:
    // its Cholesky factor has a componentwise backward error of
    // `(d+1) eps |L||Lᵀ|`, which perturbs the KL as a perturbation of `L_q`
    // of relative size `κ_S(L_q)` larger, hence the bound with `κ_S²`.
    if T::EPSILON.to_f64() < 1e-10
        && case.l_p.diagonal == Diagonal::Plain
        && case.l_q.diagonal == Diagonal::Plain
    {
        let gram = |f: &gaussian_kl_fuzz::Factor| {
            let l = f.dense_plain::<f64>(d, 0.0);
            let mut sigma = vec![T::ZERO; d * d];
            for i in 0..d {
                for j in 0..d {
                    let v: f64 = (0..d).map(|k| l[i * d + k] * l[j * d + k]).sum();
                    sigma[i * d + j] = T::from_f64(v);
                }
            }
            sigma
        };
        let (sp, sq) = (gram(&case.l_p), gram(&case.l_q));
        let mut w = vec![T::NAN; full::kl_cov_scratch(d)];
        // Σ_q column-major (symmetric: the same numbers), Σ_p row-major.
        let cov = full::kl_cov(
            &mean_p,
            mat(d, &sp, d, 1),
            &mean_q,
            mat(d, &sq, 1, d),
            &mut w,
        );
        assert_close(
            cov.expect("Σ = L Lᵀ with a positive diagonal is positive definite"),
            reference,
            d,
            kappa * kappa,
            "kl_cov vs reference",
        );
    }

    // Against the double-double reference.
    assert_close(kl, reference, d, kappa, "kl vs reference");
    let std_normal = full::kl_std_normal(&p).expect("well-formed case");
    assert_close(
        std_normal,
        &case.reference_std_normal(),
        d,
        1.0,
        "kl_std_normal vs reference",
    );
}
