//! Special values: NaN, infinities, zero and subnormal diagonals, and shapes
//! that cannot exist. Each documented outcome (README, "Special values") is
//! checked here, in f32 and f64.

use crate::dd_reference;
use gaussian_kl::{
    Diagonal, Error, Gaussian, GradMut, Grads, Layout, MatRef, PackedTril, Real, full,
};

/// `full::kl` for `d = 2` with packed factors `[l00, l10, l11]`.
fn kl2<T: Real>(
    mean_p: [T; 2],
    l_p: [T; 3],
    diag_p: Diagonal,
    mean_q: [T; 2],
    l_q: [T; 3],
    diag_q: Diagonal,
) -> Result<T, Error> {
    let mut work = [T::ZERO; full::kl_scratch(2)];
    let p = Gaussian::new(
        &mean_p,
        PackedTril::with_layout(2, &l_p, Layout::RowMajor, diag_p)?,
    )?;
    let q = Gaussian::new(
        &mean_q,
        PackedTril::with_layout(2, &l_q, Layout::RowMajor, diag_q)?,
    )?;
    full::kl(&p, &q, &mut work)
}

/// A dense row-major `d × d` view.
fn dense<T: Real>(d: usize, a: &[T]) -> MatRef<'_, T> {
    MatRef::row_major(d, a).unwrap()
}

fn f<T: Real>(x: f64) -> T {
    T::from_f64(x)
}

/// A well-conditioned pair with log diagonals; tests overwrite one number.
fn base<T: Real>() -> ([T; 2], [T; 3], [T; 2], [T; 3]) {
    (
        [f(0.1), f(-0.3)],
        [f(0.2), f(0.5), f(-0.1)],
        [f(0.0), f(0.4)],
        [f(0.0), f(-0.2), f(0.3)],
    )
}

fn log_kl<T: Real>(mp: [T; 2], lp: [T; 3], mq: [T; 2], lq: [T; 3]) -> T {
    kl2(mp, lp, Diagonal::Log, mq, lq, Diagonal::Log).expect("log diagonals are never rejected")
}

macro_rules! both {
    ($name:ident, $body:ident) => {
        #[test]
        fn $name() {
            $body::<f32>();
            $body::<f64>();
        }
    };
}

fn nan_anywhere_gives_nan<T: Real>() {
    // Every one of the 10 numbers of the pair, in turn.
    for k in 0..10 {
        let (mut mp, mut lp, mut mq, mut lq) = base::<T>();
        match k {
            0..=1 => mp[k] = T::NAN,
            2..=4 => lp[k - 2] = T::NAN,
            5..=6 => mq[k - 5] = T::NAN,
            _ => lq[k - 7] = T::NAN,
        }
        assert!(log_kl(mp, lp, mq, lq).is_nan(), "NaN at input {k}");
    }
}
both!(nan_anywhere_gives_nan_log, nan_anywhere_gives_nan);

fn nan_plain_diagonal_gives_nan<T: Real>() {
    // NaN is not `≤ 0`, so it is not rejected: it propagates.
    let (mp, _, mq, _) = base::<T>();
    let good = [f(1.0), f(0.5), f(2.0)];
    let bad = [T::NAN, f(0.5), f(2.0)];
    let r = kl2(mp, bad, Diagonal::Plain, mq, good, Diagonal::Plain).unwrap();
    assert!(r.is_nan());
    let r = kl2(mp, good, Diagonal::Plain, mq, bad, Diagonal::Plain).unwrap();
    assert!(r.is_nan());
}
both!(nan_plain_diagonal, nan_plain_diagonal_gives_nan);

fn zero_and_negative_plain_diagonals_are_errors<T: Real>() {
    let (mp, _, mq, _) = base::<T>();
    let good = [f(1.0), f(0.5), f(2.0)];
    for bad_value in [0.0, -0.0, -1.0, f64::NEG_INFINITY] {
        let bad = [f(1.0), f(0.5), f(bad_value)];
        let want = |e: Result<T, Error>| {
            matches!(e, Err(Error::NonPositiveDiagonal { what: "factor", item: None, index: 1, value })
                if value.to_bits() == bad_value.to_bits())
        };
        assert!(want(kl2(
            mp,
            bad,
            Diagonal::Plain,
            mq,
            good,
            Diagonal::Plain
        )));
        assert!(want(kl2(
            mp,
            good,
            Diagonal::Plain,
            mq,
            bad,
            Diagonal::Plain
        )));
        // Dense factors (in either storage order), the fixed kernel and
        // the std-normal prior agree.
        let dense_bad = [f(1.0), T::ZERO, f(0.5), f(bad_value)];
        let col_bad = [f(1.0), f(0.5), T::ZERO, f(bad_value)];
        assert!(want(
            Gaussian::new(&mp, dense(2, &dense_bad)).map(|_| T::ZERO)
        ));
        let col = MatRef::col_major(2, &col_bad).unwrap();
        assert!(want(Gaussian::new(&mp, col).map(|_| T::ZERO)));
        let fixed = [[f(1.0), T::ZERO], [f(0.5), f(bad_value)]];
        let good_fixed = [[f(1.0), T::ZERO], [f(0.5), f(2.0)]];
        assert!(matches!(
            full::kl_fixed(&mp, &good_fixed, &mq, &fixed),
            Err(Error::NonPositiveDiagonal {
                what: "factor_q",
                index: 1,
                ..
            })
        ));
        assert!(matches!(
            full::kl_grad_fixed(&mp, &fixed, &mq, &good_fixed, T::ONE),
            Err(Error::NonPositiveDiagonal {
                what: "factor_p",
                index: 1,
                ..
            })
        ));
    }
}
both!(
    zero_and_negative_plain_diagonals,
    zero_and_negative_plain_diagonals_are_errors
);

fn subnormal_plain_diagonal_of_q_gives_infinity<T: Real>() {
    // L_q has a subnormal pivot: M = L_q⁻¹ L_p overflows, and the exact KL
    // (about 1/pivot², far beyond the range of T) rounds to +∞.
    let (mp, _, mq, _) = base::<T>();
    let tiny = if T::EPSILON.to_f64() > 1e-10 {
        1e-40
    } else {
        5e-324
    };
    assert!(f::<T>(tiny) > T::ZERO, "subnormal, not zero");
    let lp = [f(1.0), f(0.5), f(2.0)];
    let lq = [f(1.0), f(0.5), f(tiny)];
    let r = kl2(mp, lp, Diagonal::Plain, mq, lq, Diagonal::Plain).unwrap();
    assert_eq!(r, T::INFINITY);
}
both!(
    subnormal_plain_diagonal_q,
    subnormal_plain_diagonal_of_q_gives_infinity
);

fn subnormal_plain_diagonal_of_p_is_accurate<T: Real>() {
    // A subnormal pivot of L_p is an ordinary (if extreme) input: KL is
    // finite (−log Lᵢᵢ ≈ 92 for f32 1e-40, 744 for f64 5e-324) and as
    // accurate as ever.
    let (mp, _, mq, _) = base::<T>();
    let tiny = if T::EPSILON.to_f64() > 1e-10 {
        1e-40
    } else {
        5e-324
    };
    let lp = [f(1.0), f(0.5), f(tiny)];
    let lq = [f(1.0), f(0.5), f(2.0)];
    let got = kl2(mp, lp, Diagonal::Plain, mq, lq, Diagonal::Plain).unwrap();
    let back = |v: &[T]| v.iter().map(|x| x.to_f64()).collect::<Vec<_>>();
    let dense = |l: [T; 3]| vec![l[0].to_f64(), 0.0, l[1].to_f64(), l[2].to_f64()];
    let r = dd_reference::kl(
        2,
        &back(&mp),
        &dense(lp),
        dd_reference::Diag::Plain,
        &back(&mq),
        &dense(lq),
        dd_reference::Diag::Plain,
    );
    let kappa = dd_reference::skeel_cond(2, &dense(lq));
    let tol = dd_reference::tolerance(2, T::EPSILON.to_f64(), kappa, r.scale);
    assert!(got.is_finite() && got > f(90.0), "{got:?}");
    assert!((got.to_f64() - r.kl.to_f64()).abs() <= tol);
}
both!(
    subnormal_plain_diagonal_p,
    subnormal_plain_diagonal_of_p_is_accurate
);

fn infinite_means<T: Real>() {
    let (mp, lp, mut mq, lq) = base::<T>();
    // d = 1: y = ±∞, KL = +∞.
    let mut work = [T::ZERO; full::kl_scratch(1)];
    let one = [T::ZERO];
    for inf in [T::INFINITY, -T::INFINITY] {
        let mean = [inf];
        let p = Gaussian::packed(&mean, &one).unwrap();
        let q = Gaussian::packed(&one, &one).unwrap();
        assert_eq!(full::kl(&p, &q, &mut work), Ok(T::INFINITY));
        // The gradient does not panic either; its KL is the same.
        let (mut a, mut b, mut c, mut e) = ([T::ZERO], [T::ZERO], [T::ZERO], [T::ZERO]);
        let g = Grads::new(GradMut::new(&mut a, &mut b), GradMut::new(&mut c, &mut e));
        let mut gw = [T::ZERO; full::kl_grad_scratch(1)];
        assert_eq!(full::kl_grad(&p, &q, T::ONE, g, &mut gw), Ok(T::INFINITY));
    }
    // d = 2, only the last coordinate infinite: nothing subtracts ∞ from ∞.
    mq[1] = T::INFINITY;
    assert_eq!(log_kl(mp, lp, mq, lq), T::INFINITY);
    // Both coordinates infinite: row 1 computes ∞ − L₁₀·∞, which is NaN
    // when L₁₀ > 0 (here −0.2 · ∞ added to ∞ is ∞, but not in general).
    let mut mq2 = mq;
    mq2[0] = T::INFINITY;
    let mut lq2 = lq;
    lq2[1] = f(0.5); // L₁₀ > 0: ∞ − 0.5·∞·… = NaN
    assert!(log_kl(mp, lp, mq2, lq2).is_nan());
    // The VAE prior: ‖μ‖² = ∞.
    assert_eq!(
        full::kl_std_normal(&Gaussian::packed(&mq, &lp).unwrap()),
        Ok(T::INFINITY)
    );
}
both!(infinite_means_give_infinity_or_nan, infinite_means);

fn log_diagonal_extremes<T: Real>() {
    let (mp, lp, mq, lq) = base::<T>();
    // Σ log L_q = +∞ (q infinitely wide): y and M lose that row, −2·(−∞).
    let mut w = lq;
    w[2] = T::INFINITY;
    assert_eq!(log_kl(mp, lp, mq, w), T::INFINITY);
    // Σ log L_p = −∞ (p degenerate): KL = +∞.
    let mut w = lp;
    w[0] = -T::INFINITY;
    assert_eq!(log_kl(mp, w, mq, lq), T::INFINITY);
    // Σ log L_p = +∞: ‖M‖² = ∞ and log det = ∞ meet as ∞ − ∞ = NaN.
    let mut w = lp;
    w[2] = T::INFINITY;
    assert!(log_kl(mp, w, mq, lq).is_nan());
    // Σ log L_q = −∞ (q degenerate): division by a zero pivot, ∞ − ∞: NaN.
    let mut w = lq;
    w[0] = -T::INFINITY;
    assert!(log_kl(mp, lp, mq, w).is_nan());
    // A finite log diagonal whose exp underflows to 0 (q) behaves as a zero
    // pivot: +∞ where the mean difference in that row is non-zero…
    let under = if T::EPSILON.to_f64() > 1e-10 {
        -200.0
    } else {
        -800.0
    };
    let mut w = lq;
    w[2] = f(under);
    assert_eq!(w[2].exp(), T::ZERO);
    assert_eq!(log_kl(mp, lp, mq, w), T::INFINITY);
    // …and NaN where it is zero (0/0), although the exact KL is +∞.
    let same = [mp[0], mp[1]];
    assert!(log_kl(mp, lp, same, w).is_nan());
    // A finite log diagonal of p whose exp overflows: ‖M‖² = ∞ against a
    // finite log det, KL = +∞ (the exact KL is beyond the range of T).
    let mut w = lp;
    w[2] = f(-under);
    assert_eq!(w[2].exp(), T::INFINITY);
    assert_eq!(log_kl(mp, w, mq, lq), T::INFINITY);
}
both!(
    log_diagonal_extremes_give_infinity_or_nan,
    log_diagonal_extremes
);

fn covariance_special_values<T: Real>() {
    let mut work = [T::ZERO; full::kl_cov_scratch(2)];
    let cov_data = [f(4.0), f(2.0), f(2.0), f(10.0)];
    let cov = dense(2, &cov_data);
    let m = [T::ZERO, T::ZERO];
    // NaN anywhere in the lower triangle reaches a pivot: an error.
    for k in [0, 2, 3] {
        let mut c = cov_data;
        c[k] = T::NAN;
        assert_eq!(
            full::kl_cov(&m, dense(2, &c), &m, cov, &mut work),
            Err(Error::NotPositiveDefinite {
                what: "cov_p",
                pivot: if k == 0 { 0 } else { 1 }
            })
        );
    }
    // The upper triangle is never read, NaN or not.
    let mut c = cov_data;
    c[1] = T::NAN;
    assert_eq!(
        full::kl_cov(&m, dense(2, &c), &m, cov, &mut work),
        Ok(T::ZERO)
    );
    // Column-major: the upper triangle is then c[2].
    let mut c = cov_data;
    c[2] = T::NAN;
    let col = MatRef::col_major(2, &c).unwrap();
    assert_eq!(full::kl_cov(&m, col, &m, cov, &mut work), Ok(T::ZERO));
    // Zero and singular covariances: errors.
    let zero = [T::ZERO; 4];
    assert!(matches!(
        full::kl_cov(&m, cov, &m, dense(2, &zero), &mut work),
        Err(Error::NotPositiveDefinite {
            what: "cov_q",
            pivot: 0
        })
    ));
    let singular = [f(1.0), f(1.0), f(1.0), f(1.0)];
    assert!(matches!(
        full::kl_cov(&m, dense(2, &singular), &m, cov, &mut work),
        Err(Error::NotPositiveDefinite {
            what: "cov_p",
            pivot: 1
        })
    ));
    // A NaN mean propagates.
    assert!(
        full::kl_cov(&[T::NAN, T::ZERO], cov, &m, cov, &mut work)
            .unwrap()
            .is_nan()
    );
}
both!(
    covariance_special_values_are_errors_or_nan,
    covariance_special_values
);

fn impossible_shapes<T: Real>() {
    let data = [T::ZERO; 3];
    let mut work = [T::ZERO; 16];
    let m = [T::ZERO; 2];
    // d whose d(d+1)/2 overflows: DimensionTooLarge, whatever the slices.
    assert_eq!(
        PackedTril::new(usize::MAX, &data),
        Err(Error::DimensionTooLarge { d: usize::MAX })
    );
    assert_eq!(
        MatRef::row_major(usize::MAX, &data),
        Err(Error::DimensionTooLarge { d: usize::MAX })
    );
    // d that fits but does not match the slices: LengthMismatch.
    assert!(matches!(
        PackedTril::new(1 << 10, &data),
        Err(Error::LengthMismatch { what: "factor", .. })
    ));
    // A broadcast matrix of absurd d is a valid view, which no mean fits.
    let wide = MatRef::from_strides(usize::MAX, &data, 0, 0).unwrap();
    assert!(matches!(
        Gaussian::new(&m, wide),
        Err(Error::LengthMismatch { what: "mean", .. })
    ));
    assert!(matches!(
        full::kl_cov(&m, wide, &m, wide, &mut work),
        Err(Error::LengthMismatch { what: "mean_p", .. })
    ));
    assert_eq!(
        full::cholesky_packed_in_place(usize::MAX, &mut [T::ZERO; 3]),
        Err(Error::DimensionTooLarge { d: usize::MAX })
    );
    assert_eq!(
        full::cholesky_in_place(1 << (usize::BITS / 2), &mut [T::ZERO; 3]),
        Err(Error::DimensionTooLarge {
            d: 1 << (usize::BITS / 2)
        })
    );
    assert_eq!(full::kl_scratch(usize::MAX), usize::MAX);
    assert_eq!(full::kl_grad_scratch(usize::MAX), usize::MAX);
    // Out-of-domain index maps wrap instead of panicking.
    for layout in [Layout::RowMajor, Layout::ColMajor, Layout::DiagFirst] {
        let _ = layout.index(usize::MAX, usize::MAX, usize::MAX);
        let _ = layout.index(3, 0, 2); // j > i
    }
}
both!(impossible_shapes_are_errors, impossible_shapes);
