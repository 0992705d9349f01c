//! Every full-rank entry point against the independent f64 reference
//! (`common::reference_kl`: dense covariances, Gauss–Jordan inverse, log-dets
//! from its pivots), plus the identities that must hold bit for bit, the
//! Cholesky residuals, and every error the full API can return.
//!
//! # Tolerances
//!
//! Errors are measured relative to `scale = ½(‖M‖²_F + ‖y‖² + |2·logdet diff| + d)`,
//! the sum of the magnitudes of the terms the kernel adds (`scale ≥ |KL|`, so
//! this is `max(|KL|, scale)`): every rounding error of the kernel is relative
//! to one of those terms, not to their possibly cancelling sum.
//!
//! With `κ = cond₂(L_q) = √(λ_max(Σ_q) λ_max(Σ_q⁻¹))` (estimated by the
//! reference by power iteration), the bound is
//!
//! ```text
//! tol = 2 · d · (κ + d) · ε_T · scale  +  2 · d · κ² · ε_64 · scale
//! ```
//!
//! - `d · κ · ε_T`: the forward substitutions for `y` and `M` are backward
//!   stable, so their entries carry a relative error of order `d · cond(L_q) · ε_T`;
//! - `d · d · ε_T`: the squared sums have up to `d(d+1)/2` terms in one
//!   accumulator (worst case `d²/2 · ε_T`);
//! - `d · κ² · ε_64`: the reference itself inverts `Σ_q`, whose condition is
//!   `κ²`, by Gauss–Jordan in f64 (negligible next to the f32 term).
//!
//! The factor 2 leaves a margin of several times over the worst error seen:
//! each test prints its largest `|error| / tol` (run with `--nocapture`); it is
//! largest at `d ≤ 2`, where the `exp`/`ln` roundings dominate.
//! For [`full::kl_cov`] the kernel first factors both covariances; Cholesky is
//! backward stable with a perturbation of order `d · ε_T · ‖Σ‖`, which moves
//! the KL by `d · cond(Σ) · ε_T = d · κ² · ε_T`: there `κ` is replaced by
//! `κ_q² + κ_p²`. The random factors (see `common::random_raw`) keep `κ`
//! near 10 up to `d = 64`.

use crate::common::*;
use gaussian_kl::{Diagonal, Error, Gaussian, Layout, MatRef, PackedTril, Real, full};

const DIAGONALS: [Diagonal; 2] = [Diagonal::Log, Diagonal::Plain];

/// Margin over the largest observed error (see the module docs).
const C: f64 = 2.0;

fn eps<T: Real>() -> f64 {
    T::EPSILON.to_f64()
}

/// The tolerance of the module docs, with `cond` standing for `κ` (or
/// `κ_q² + κ_p²` for the covariance entry point).
fn tol<T: Real>(d: usize, r: &Reference, cond: f64) -> f64 {
    let d = d as f64;
    C * d * (cond + d) * eps::<T>() * r.scale + C * d * r.kappa * r.kappa * f64::EPSILON * r.scale
}

/// The largest errors a test saw: relative to its tolerance, and in units of
/// `ε_T · scale` (with the `d` where that happened).
#[derive(Clone, Copy, Debug, Default)]
struct Worst {
    ratio: f64,
    eps_scale: f64,
    at_d: usize,
}

impl Worst {
    fn merge(self, o: Worst) -> Worst {
        Worst {
            ratio: self.ratio.max(o.ratio),
            ..if o.eps_scale > self.eps_scale {
                o
            } else {
                self
            }
        }
    }
}

/// Asserts `|got − reference| ≤ tol` and returns the error as a [`Worst`].
fn check<T: Real>(what: &str, d: usize, got: T, r: &Reference, cond: f64) -> Worst {
    let got = got.to_f64();
    let err = (got - r.kl).abs();
    let tol = tol::<T>(d, r, cond);
    assert!(
        err <= tol,
        "{what} ({}) d={d}: got {got}, reference {}, |err| = {err:e} > tol {tol:e} \
         (scale {}, kappa {})",
        core::any::type_name::<T>(),
        r.kl,
        r.scale,
        r.kappa
    );
    Worst {
        ratio: err / tol,
        eps_scale: err / (eps::<T>() * r.scale),
        at_d: d,
    }
}

/// Prints the largest `error / tolerance` a test saw (visible with `--nocapture`).
fn report<T: Real>(what: &str, worst: Worst) {
    println!(
        "{what} ({}): max |error| / tolerance = {:.2e}; max |error| = {:.2} ε·scale (at d = {})",
        core::any::type_name::<T>(),
        worst.ratio,
        worst.eps_scale,
        worst.at_d
    );
}

fn bits<T: Real>(x: T) -> u64 {
    x.to_f64().to_bits()
}

/// Seed for dimension `d`, case `k`, and a test-specific salt.
fn seed(salt: u64, d: usize, k: u64) -> u64 {
    salt * 1_000_003 + (d as u64) * 101 + k
}

/// The row-major packed factor in the encoding `diagonal` (log raw values or
/// `exp` of them in `T`).
fn encoded<T: Real>(d: usize, raw: &[T], diagonal: Diagonal) -> Vec<T> {
    match diagonal {
        Diagonal::Log => raw.to_vec(),
        Diagonal::Plain => log_to_plain(d, raw),
    }
}

/// The reference for exactly the inputs a `T` kernel sees in this encoding.
fn reference_for<T: Real>(c: &CaseT<T>, diagonal: Diagonal) -> Reference {
    match diagonal {
        Diagonal::Log => c.reference(),
        Diagonal::Plain => {
            let d = c.d;
            let lp = packed_to_dense(d, &widen(&log_to_plain(d, &c.raw_p)), 0.0);
            let lq = packed_to_dense(d, &widen(&log_to_plain(d, &c.raw_q)), 0.0);
            reference_kl(d, &widen(&c.mean_p), &lp, &widen(&c.mean_q), &lq)
        }
    }
}

// ---------------------------------------------------------------- kl, packed and dense

/// `kl` in every layout and diagonal encoding, d = 1..=64, against the
/// reference; every layout bit-identical to RowMajor; a Plain factor
/// bit-identical to `kl` of its dense expansion (NaN above the diagonal,
/// which must be ignored) in every storage order (row-major, column-major,
/// transposed, strided sub-view).
fn kl_every_layout<T: Real>() {
    let mut worst = Worst::default();
    for d in 1..=64 {
        let mut work = vec![T::ZERO; full::kl_scratch(d)];
        for k in 0..2 {
            let c = Case::random(&mut rng(seed(1, d, k)), d).round::<T>();
            for diagonal in DIAGONALS {
                let r = reference_for(&c, diagonal);
                let rp = encoded(d, &c.raw_p, diagonal);
                let rq = encoded(d, &c.raw_q, diagonal);
                let row_major = kl_of(
                    &c.mean_p,
                    packed(d, &rp, Layout::RowMajor, diagonal),
                    &c.mean_q,
                    packed(d, &rq, Layout::RowMajor, diagonal),
                    &mut work,
                )
                .unwrap();
                worst = worst.merge(check("kl", d, row_major, &r, r.kappa));
                for layout in LAYOUTS {
                    let (lp, lq) = (to_layout(d, &rp, layout), to_layout(d, &rq, layout));
                    let got = kl_of(
                        &c.mean_p,
                        packed(d, &lp, layout, diagonal),
                        &c.mean_q,
                        packed(d, &lq, layout, diagonal),
                        &mut work,
                    )
                    .unwrap();
                    assert_eq!(
                        bits(got),
                        bits(row_major),
                        "{layout:?}/{diagonal:?} d={d} differs from RowMajor"
                    );
                }
                if diagonal == Diagonal::Plain {
                    let dp = packed_to_dense(d, &rp, T::NAN);
                    let dq = packed_to_dense(d, &rq, T::NAN);
                    // Every storage order of the dense factors, p and q each
                    // in its own: bit-identical to the packed form.
                    let (fp, fq) = (dense_forms(d, &dp, 3), dense_forms(d, &dq, 1));
                    for (a, b) in fp.iter().zip(fq.iter().rev()) {
                        let got = kl_of(
                            &c.mean_p,
                            form_view(d, a),
                            &c.mean_q,
                            form_view(d, b),
                            &mut work,
                        )
                        .unwrap();
                        assert_eq!(bits(got), bits(row_major), "dense {}/{} d={d}", a.0, b.0);
                        worst = worst.merge(check("kl, dense", d, got, &r, r.kappa));
                    }
                }
            }
        }
    }
    report::<T>("kl", worst);
}

#[test]
fn kl_every_layout_and_diagonal_matches_reference_f64() {
    kl_every_layout::<f64>();
}

#[test]
fn kl_every_layout_and_diagonal_matches_reference_f32() {
    kl_every_layout::<f32>();
}

/// A larger workspace than needed, filled with garbage, changes nothing.
#[test]
fn kl_ignores_workspace_contents_and_excess() {
    let d = 9;
    let c = Case::random(&mut rng(77), d).round::<f64>();
    let mut exact = vec![0.0; full::kl_scratch(d)];
    let mut big = vec![f64::NAN; full::kl_scratch(d) + 17];
    let a = kl_of(
        &c.mean_p,
        pt(d, &c.raw_p),
        &c.mean_q,
        pt(d, &c.raw_q),
        &mut exact,
    )
    .unwrap();
    let b = kl_of(
        &c.mean_p,
        pt(d, &c.raw_p),
        &c.mean_q,
        pt(d, &c.raw_q),
        &mut big,
    )
    .unwrap();
    assert_eq!(a.to_bits(), b.to_bits());
}

// ---------------------------------------------------------------- kl_cov

fn kl_cov_matches<T: Real>() {
    let mut worst = Worst::default();
    for d in 1..=64 {
        let mut work = vec![T::ZERO; full::kl_scratch(d)];
        let c = Case::random(&mut rng(seed(2, d, 0)), d).round::<T>();
        // Σ = L Lᵀ formed in f64 from the T-valued factors, then rounded to T:
        // the reference sees exactly the covariances the kernel sees.
        let cov = |raw: &[T]| -> Vec<T> { round(&gram(d, &dense_factor(d, &widen(raw)))) };
        let (cp, cq) = (cov(&c.raw_p), cov(&c.raw_q));
        let r = reference_kl_cov(
            d,
            &widen(&c.mean_p),
            &widen(&cp),
            &widen(&c.mean_q),
            &widen(&cq),
        );
        let got = full::kl_cov(
            &c.mean_p,
            dense(d, &cp),
            &c.mean_q,
            dense(d, &cq),
            &mut work,
        )
        .unwrap();
        let cond = r.kappa * r.kappa + r.kappa_p * r.kappa_p;
        worst = worst.merge(check("kl_cov", d, got, &r, cond));
        // Every storage order reads the same lower triangle.
        for (a, b) in dense_forms(d, &cp, 2)
            .iter()
            .zip(dense_forms(d, &cq, 1).iter().rev())
        {
            let again = full::kl_cov(
                &c.mean_p,
                form_view(d, a),
                &c.mean_q,
                form_view(d, b),
                &mut work,
            )
            .unwrap();
            assert_eq!(bits(again), bits(got), "kl_cov {}/{} d={d}", a.0, b.0);
        }
        // Only the lower triangle is read: poison the strict upper one.
        let poison = |a: &[T]| -> Vec<T> {
            let mut a = a.to_vec();
            for i in 0..d {
                for j in i + 1..d {
                    a[i * d + j] = T::NAN;
                }
            }
            a
        };
        let again = full::kl_cov(
            &c.mean_p,
            dense(d, &poison(&cp)),
            &c.mean_q,
            dense(d, &poison(&cq)),
            &mut work,
        )
        .unwrap();
        assert_eq!(
            bits(again),
            bits(got),
            "kl_cov reads the upper triangle, d={d}"
        );
    }
    report::<T>("kl_cov", worst);
}

#[test]
fn kl_cov_matches_reference_f64() {
    kl_cov_matches::<f64>();
}

#[test]
fn kl_cov_matches_reference_f32() {
    kl_cov_matches::<f32>();
}

// ---------------------------------------------------------------- kl_std_normal

fn std_normal_matches<T: Real>() {
    let mut worst = Worst::default();
    for d in 1..=64 {
        let c = Case::random(&mut rng(seed(3, d, 0)), d).round::<T>();
        let identity = packed_to_dense(d, &log_to_plain(d, &vec![0.0; tril(d)]), 0.0);
        let zeros = vec![0.0; d];
        for diagonal in DIAGONALS {
            let rp = encoded(d, &c.raw_p, diagonal);
            let lp = packed_to_dense(d, &widen(&log_to_plain(d, &c.raw_p)), 0.0);
            let r = match diagonal {
                Diagonal::Log => reference_kl(
                    d,
                    &widen(&c.mean_p),
                    &dense_factor(d, &widen(&c.raw_p)),
                    &zeros,
                    &identity,
                ),
                Diagonal::Plain => reference_kl(d, &widen(&c.mean_p), &lp, &zeros, &identity),
            };
            let mut first = None;
            for layout in LAYOUTS {
                let l = to_layout(d, &rp, layout);
                let got = std_normal_of(&c.mean_p, packed(d, &l, layout, diagonal)).unwrap();
                worst = worst.merge(check("kl_std_normal", d, got, &r, r.kappa));
                let f0 = *first.get_or_insert(bits(got));
                assert_eq!(bits(got), f0, "kl_std_normal {layout:?} d={d}");
            }
            if diagonal == Diagonal::Plain {
                let dl = packed_to_dense(d, &rp, T::NAN);
                for form in dense_forms(d, &dl, 2) {
                    let got = std_normal_of(&c.mean_p, form_view(d, &form)).unwrap();
                    worst = worst.merge(check("kl_std_normal, dense", d, got, &r, r.kappa));
                    assert_eq!(Some(bits(got)), first, "kl_std_normal {} d={d}", form.0);
                }
            }
        }
    }
    report::<T>("kl_std_normal", worst);
}

#[test]
fn kl_std_normal_matches_reference_f64() {
    std_normal_matches::<f64>();
}

#[test]
fn kl_std_normal_matches_reference_f32() {
    std_normal_matches::<f32>();
}

// ---------------------------------------------------------------- fixed D

/// `kl_fixed::<D>` bit-identical to `kl` on dense row-major views, `kl_packed_fixed::<D>`
/// bit-identical to `kl` in every layout and encoding, both against the reference.
fn fixed_matches<T: Real, const D: usize>() -> Worst {
    let mut worst = Worst::default();
    let mut work = vec![T::ZERO; full::kl_scratch(D)];
    for k in 0..3 {
        let c = Case::random(&mut rng(seed(4, D, k)), D).round::<T>();
        let arr = |v: &[T]| -> [T; D] { v.try_into().unwrap() };
        let (mp, mq) = (arr(&c.mean_p), arr(&c.mean_q));
        // Dense plain factors, NaN above the diagonal (ignored).
        let square = |raw: &[T]| -> [[T; D]; D] {
            let dense = packed_to_dense(D, &log_to_plain(D, raw), T::NAN);
            core::array::from_fn(|i| core::array::from_fn(|j| dense[i * D + j]))
        };
        let (sp, sq) = (square(&c.raw_p), square(&c.raw_q));
        let fixed = full::kl_fixed(&mp, &sp, &mq, &sq).unwrap();
        let flat = |a: &[[T; D]; D]| -> Vec<T> { a.iter().flatten().copied().collect() };
        let dense = kl_of(
            &c.mean_p,
            dense(D, &flat(&sp)),
            &c.mean_q,
            dense(D, &flat(&sq)),
            &mut work,
        )
        .unwrap();
        assert_eq!(bits(fixed), bits(dense), "kl_fixed::<{D}> vs kl, dense");
        let r = reference_for(&c, Diagonal::Plain);
        worst = worst.merge(check("kl_fixed", D, fixed, &r, r.kappa));
        for diagonal in DIAGONALS {
            let r = reference_for(&c, diagonal);
            for layout in LAYOUTS {
                let lp = to_layout(D, &encoded(D, &c.raw_p, diagonal), layout);
                let lq = to_layout(D, &encoded(D, &c.raw_q, diagonal), layout);
                let (pp, pq) = (
                    packed(D, &lp, layout, diagonal),
                    packed(D, &lq, layout, diagonal),
                );
                let fixed = full::kl_packed_fixed(&mp, pp, &mq, pq).unwrap();
                let runtime = kl_of(&c.mean_p, pp, &c.mean_q, pq, &mut work).unwrap();
                assert_eq!(
                    bits(fixed),
                    bits(runtime),
                    "kl_packed_fixed::<{D}> {layout:?}/{diagonal:?} vs kl"
                );
                worst = worst.merge(check("kl_packed_fixed", D, fixed, &r, r.kappa));
            }
        }
    }
    worst
}

macro_rules! fixed_all_d {
    ($t:ty; $($d:literal)*) => {
        let worst = [$( fixed_matches::<$t, $d>() ),*].into_iter().fold(Worst::default(), Worst::merge);
        report::<$t>("kl_fixed, kl_packed_fixed", worst);
    };
}

#[test]
fn fixed_kernels_bit_identical_to_runtime_f64() {
    fixed_all_d!(f64; 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
}

#[test]
fn fixed_kernels_bit_identical_to_runtime_f32() {
    fixed_all_d!(f32; 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
}

// ---------------------------------------------------------------- identities

/// KL(p‖p) = 0 within `d · ε · scale` (in exact arithmetic `M = I`, `y = 0`
/// and the log-dets cancel; the kernel's forward substitution in fact
/// reproduces `M = I` exactly, so the result is 0).
fn self_kl_zero<T: Real>() {
    for d in 1..=64 {
        let mut work = vec![T::ZERO; full::kl_scratch(d)];
        let c = Case::random(&mut rng(seed(5, d, 0)), d).round::<T>();
        for diagonal in DIAGONALS {
            let rp = encoded(d, &c.raw_p, diagonal);
            for layout in LAYOUTS {
                let lp = to_layout(d, &rp, layout);
                let l = packed(d, &lp, layout, diagonal);
                let got = kl_of(&c.mean_p, l, &c.mean_p, l, &mut work)
                    .unwrap()
                    .to_f64();
                let logdet: f64 = (0..d).map(|i| c.raw_p[rm(i, i)].to_f64().abs()).sum();
                // scale = ½(‖M‖² + ‖y‖² + |2·logdet diff| + d) with M = I, y = 0,
                // and the log-det terms each of size Σ|log Lᵢᵢ|.
                let scale = 0.5 * (d as f64 + 2.0 * logdet + d as f64);
                assert!(
                    got.abs() <= d as f64 * eps::<T>() * scale,
                    "KL(p‖p) = {got} at d={d} {layout:?}/{diagonal:?}"
                );
            }
        }
    }
}

#[test]
fn kl_of_a_distribution_with_itself_is_zero_f64() {
    self_kl_zero::<f64>();
}

#[test]
fn kl_of_a_distribution_with_itself_is_zero_f32() {
    self_kl_zero::<f32>();
}

/// `PackedTril::expand_dense` in every layout and encoding equals the
/// independent expansion bit for bit.
#[test]
fn expand_dense_matches_independent_expansion() {
    for d in 0..=20 {
        let c = Case::random(&mut rng(seed(6, d, 0)), d).round::<f32>();
        for diagonal in DIAGONALS {
            let rp = encoded(d, &c.raw_p, diagonal);
            let want = packed_to_dense(d, &log_to_plain(d, &c.raw_p), 0.0f32);
            for layout in LAYOUTS {
                let l = to_layout(d, &rp, layout);
                let mut out = vec![f32::NAN; d * d];
                packed(d, &l, layout, diagonal)
                    .expand_dense(&mut out)
                    .unwrap();
                assert_eq!(
                    out.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    "expand_dense d={d} {layout:?}/{diagonal:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------- Cholesky

/// Residual check: `‖L̂ L̂ᵀ − Σ‖_max ≤ 2 (d+1) ε ‖Σ‖_max`. Cholesky is
/// backward stable with `|ΔΣ| ≤ γ_{d+1} |L̂||L̂ᵀ|` (Higham, Thm 10.3), and
/// `(|L̂||L̂ᵀ|)ᵢⱼ ≤ ‖L̂ᵢ‖‖L̂ⱼ‖ ≈ √(Σᵢᵢ Σⱼⱼ) ≤ ‖Σ‖_max`; the 2 covers
/// `γ_{d+1} = (d+1)ε/(1 − (d+1)ε)` and the residual's own f64 rounding.
fn cholesky_residual<T: Real>() {
    for d in 1..=64 {
        let c = Case::random(&mut rng(seed(7, d, 0)), d).round::<T>();
        let sigma: Vec<T> = round(&gram(d, &dense_factor(d, &widen(&c.raw_p))));
        let sigma64 = widen(&sigma);
        let max = sigma64.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let bound = 2.0 * (d as f64 + 1.0) * eps::<T>() * max;

        let mut dense = sigma.clone();
        for i in 0..d {
            for j in i + 1..d {
                dense[i * d + j] = T::NAN; // upper triangle is ignored
            }
        }
        full::cholesky_in_place(d, &mut dense).unwrap();
        for i in 0..d {
            for j in i + 1..d {
                assert_eq!(dense[i * d + j], T::ZERO, "upper triangle not zeroed");
            }
        }
        let l = widen(&dense);
        let res = gram(d, &l)
            .iter()
            .zip(&sigma64)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            res <= bound,
            "cholesky_in_place d={d}: residual {res:e} > {bound:e}"
        );

        let mut pk: Vec<T> = (0..d)
            .flat_map(|i| (0..=i).map(move |j| (i, j)))
            .map(|(i, j)| sigma[i * d + j])
            .collect();
        full::cholesky_packed_in_place(d, &mut pk).unwrap();
        for i in 0..d {
            for j in 0..=i {
                assert_eq!(
                    bits(pk[rm(i, j)]),
                    bits(dense[i * d + j]),
                    "packed vs dense Cholesky"
                );
            }
        }
    }
}

#[test]
fn cholesky_residual_is_small_f64() {
    cholesky_residual::<f64>();
}

#[test]
fn cholesky_residual_is_small_f32() {
    cholesky_residual::<f32>();
}

/// Σ made indefinite at row `r` (its pivot `Σ_rr − Σ_{k<r} L_rk²` becomes
/// `−1`), or NaN there: both factorizations and `kl_cov` report pivot `r`.
#[test]
fn cholesky_reports_the_failing_pivot() {
    for d in [1usize, 2, 5, 16, 33] {
        for r in [0, d / 2, d - 1] {
            let c = Case::random(&mut rng(seed(8, d, r as u64)), d);
            let l = dense_factor(d, &c.raw_p);
            let sigma = gram(d, &l);
            for bad in [
                sigma[r * d + r] - l[r * d + r] * l[r * d + r] - 1.0,
                f64::NAN,
            ] {
                let mut s = sigma.clone();
                s[r * d + r] = bad;
                let want = Err(Error::NotPositiveDefinite {
                    what: "a",
                    pivot: r,
                });
                assert_eq!(full::cholesky_in_place(d, &mut s.clone()), want);
                let mut pk: Vec<f64> = (0..tril(d)).map(|_| 0.0).collect();
                for i in 0..d {
                    for j in 0..=i {
                        pk[rm(i, j)] = s[i * d + j];
                    }
                }
                assert_eq!(full::cholesky_packed_in_place(d, &mut pk), want);

                let mut work = vec![0.0; full::kl_scratch(d)];
                let m = vec![0.0; d];
                assert_eq!(
                    full::kl_cov(&m, dense(d, &sigma), &m, dense(d, &s), &mut work),
                    Err(Error::NotPositiveDefinite {
                        what: "cov_q",
                        pivot: r
                    })
                );
                assert_eq!(
                    full::kl_cov(&m, dense(d, &s), &m, dense(d, &sigma), &mut work),
                    Err(Error::NotPositiveDefinite {
                        what: "cov_p",
                        pivot: r
                    })
                );
            }
        }
    }
    // A zero pivot is not positive either.
    assert_eq!(
        full::cholesky_packed_in_place(2, &mut [1.0f64, 1.0, 1.0]),
        Err(Error::NotPositiveDefinite {
            what: "a",
            pivot: 1
        })
    );
}

// ---------------------------------------------------------------- errors

fn lm(what: &'static str, expected: usize, found: usize) -> Error {
    Error::LengthMismatch {
        what,
        expected,
        found,
    }
}

/// Every shape error names the argument that is wrong: the views name their
/// own (`mean`, `factor`, `matrix`) when they are built; `full::kl` names
/// `q` when the two sides differ in dimension, and the workspace.
#[test]
fn kl_shape_errors() {
    let d = 3;
    let c = Case::random(&mut rng(9), d);
    let (mp, mq, rp, rq) = (&c.mean_p, &c.mean_q, &c.raw_p, &c.raw_q);
    let mut work = vec![0.0; full::kl_scratch(d)];

    assert_eq!(Gaussian::new(&mp[..2], pt(3, rp)), Err(lm("mean", 3, 2)));
    assert_eq!(Gaussian::new(&[0.0; 4], pt(3, rq)), Err(lm("mean", 3, 4)));
    assert_eq!(Gaussian::packed(mp, &rp[..5]), Err(lm("factor", 6, 5)));
    assert_eq!(PackedTril::new(3, &[0.0; 7]), Err(lm("factor", 6, 7)));
    let p = Gaussian::packed(mp, rp).unwrap();
    let q2 = Gaussian::packed(&mq[..2], &rq[..3]).unwrap();
    assert_eq!(
        full::kl(&p, &q2, &mut work),
        Err(Error::DimensionMismatch {
            what: "q",
            expected: 3,
            found: 2
        })
    );
    let q = Gaussian::packed(mq, rq).unwrap();
    assert_eq!(
        full::kl(&p, &q, &mut work[..full::kl_scratch(d) - 1]),
        Err(Error::WorkspaceTooSmall {
            expected: full::kl_scratch(d),
            found: full::kl_scratch(d) - 1
        })
    );
    assert!(full::kl(&p, &q, &mut work).is_ok());
    for layout in LAYOUTS {
        // A non-positive plain diagonal entry, reported with its row, in every layout.
        for (bad_row, bad) in [(0usize, 0.0), (2, -1.5), (1, -0.0)] {
            let mut plain = log_to_plain(d, rp);
            plain[rm(bad_row, bad_row)] = bad;
            let bad_l = to_layout(d, &plain, layout);
            let got = PackedTril::with_layout(d, &bad_l, layout, Diagonal::Plain);
            assert!(
                matches!(got, Err(Error::NonPositiveDiagonal { what: "factor", item: None, index, value })
                    if index == bad_row && value.to_bits() == bad.to_bits()),
                "{layout:?} row {bad_row}: {got:?}"
            );
        }
    }
}

#[test]
fn dense_and_cov_shape_errors() {
    let d = 3;
    let c = Case::random(&mut rng(10), d);
    let lp = packed_to_dense(d, &log_to_plain(d, &c.raw_p), 0.0);
    let lq = packed_to_dense(d, &log_to_plain(d, &c.raw_q), 0.0);
    let (mp, mq) = (&c.mean_p[..], &c.mean_q[..]);
    let mut work = vec![0.0; full::kl_cov_scratch(d)];
    let small = full::kl_cov_scratch(d) - 1;
    let ws = Err(Error::WorkspaceTooSmall {
        expected: full::kl_cov_scratch(d),
        found: small,
    });

    assert_eq!(MatRef::row_major(d, &lp[..8]), Err(lm("matrix", 9, 8)));
    assert_eq!(MatRef::col_major(d, &lp[..8]), Err(lm("matrix", 9, 8)));
    // The top-left 3 × 3 block of a 4-wide array needs 2·4 + 2 + 1 numbers.
    assert_eq!(
        MatRef::from_strides(d, &[1.0; 10], 4, 1),
        Err(lm("matrix", 11, 10))
    );
    assert_eq!(
        Gaussian::new(&mq[..2], dense(d, &lq)),
        Err(lm("mean", 3, 2))
    );
    let mut bad = lp.clone();
    bad[2 * d + 2] = -1.0;
    // The diagonal of a column-major view is checked in place, too.
    for l in [dense(d, &bad), MatRef::col_major(d, &bad).unwrap()] {
        assert!(matches!(
            Gaussian::new(mp, l),
            Err(Error::NonPositiveDiagonal {
                what: "factor",
                item: None,
                index: 2,
                value: -1.0
            })
        ));
    }

    let (sp, sq) = (gram(d, &lp), gram(d, &lq));
    let (cp, cq) = (dense(d, &sp), dense(d, &sq));
    assert_eq!(
        full::kl_cov(mp, cp, &mq[..1], cq, &mut work),
        Err(lm("mean_q", 3, 1))
    );
    // The dimension is the covariance's: a short mean_p is blamed on mean_p.
    assert_eq!(
        full::kl_cov(&mp[..2], cp, mq, cq, &mut work),
        Err(lm("mean_p", 3, 2))
    );
    let sq2 = gram(2, &lq[..4]);
    assert_eq!(
        full::kl_cov(mp, cp, mq, dense(2, &sq2), &mut work),
        Err(Error::DimensionMismatch {
            what: "cov_q",
            expected: 3,
            found: 2
        })
    );
    assert_eq!(full::kl_cov(mp, cp, mq, cq, &mut work[..small]), ws);

    assert_eq!(
        full::cholesky_in_place(d, &mut sp.clone()[..8]),
        Err(lm("a", 9, 8))
    );
    assert_eq!(
        full::cholesky_packed_in_place(d, &mut [1.0; 5]),
        Err(lm("a", 6, 5))
    );

    let mut out = vec![0.0; 8];
    assert_eq!(pt(d, &c.raw_p).expand_dense(&mut out), Err(lm("out", 9, 8)));
}

#[test]
fn fixed_errors() {
    let l = [[1.0f64, 0.0], [0.5, 2.0]];
    let mut bad = l;
    bad[1][1] = 0.0;
    let m = [0.0; 2];
    assert!(matches!(
        full::kl_fixed(&m, &bad, &m, &l),
        Err(Error::NonPositiveDiagonal {
            what: "factor_p",
            index: 1,
            ..
        })
    ));
    assert!(matches!(
        full::kl_fixed(&m, &l, &m, &bad),
        Err(Error::NonPositiveDiagonal {
            what: "factor_q",
            index: 1,
            ..
        })
    ));
    let raw3 = [0.0f64; 3];
    let raw6 = [0.0f64; 6];
    let (two, three) = (pt(2, &raw3), pt(3, &raw6));
    assert_eq!(
        full::kl_packed_fixed(&m, three, &m, two),
        Err(Error::DimensionMismatch {
            what: "factor_p",
            expected: 2,
            found: 3
        })
    );
    assert_eq!(
        full::kl_packed_fixed(&m, two, &m, three),
        Err(Error::DimensionMismatch {
            what: "factor_q",
            expected: 2,
            found: 3
        })
    );
}

/// Absurd dimensions with short slices are errors, never panics (no
/// overflowing arithmetic, no out-of-bounds access).
#[test]
fn huge_dimensions_are_errors_not_panics() {
    let short = [0.0f64; 3];
    let m = [0.0f64; 2];
    for d in [usize::MAX, usize::MAX / 2, 1usize << (usize::BITS / 2 + 1)] {
        // d(d+1)/2 overflows usize.
        assert_eq!(
            PackedTril::new(d, &short),
            Err(Error::DimensionTooLarge { d })
        );
        // d² overflows usize.
        assert_eq!(
            MatRef::row_major(d, &short),
            Err(Error::DimensionTooLarge { d })
        );
        assert_eq!(
            MatRef::from_strides(d, &short, usize::MAX / 4, 1),
            Err(Error::DimensionTooLarge { d })
        );
        assert_eq!(
            full::cholesky_packed_in_place(d, &mut [0.0; 3]),
            Err(Error::DimensionTooLarge { d })
        );
        assert_eq!(
            full::cholesky_in_place(d, &mut [0.0; 4]),
            Err(Error::DimensionTooLarge { d })
        );
        // A broadcast (zero-stride) matrix of any d is a valid view; the
        // means then cannot match it.
        let wide = MatRef::from_strides(d, &short, 0, 0).unwrap();
        assert_eq!(Gaussian::new(&m, wide), Err(lm("mean", d, 2)));
        assert_eq!(
            full::kl_cov(&m, wide, &m, wide, &mut [0.0; 8]),
            Err(lm("mean_p", d, 2))
        );
    }
    // d(d+1)/2 fits but the slice is short: a length error.
    let d = 1usize << (usize::BITS / 2 - 4);
    assert_eq!(
        PackedTril::new(d, &short),
        Err(lm("factor", d * (d + 1) / 2, 3))
    );
    // d² overflows while d(d+1)/2 does not: the dense paths.
    let d = 1usize << (usize::BITS / 2);
    assert_eq!(
        full::cholesky_in_place(d, &mut [0.0; 4]),
        Err(Error::DimensionTooLarge { d })
    );
    assert_eq!(full::kl_scratch(usize::MAX), usize::MAX);
    assert_eq!(full::kl_cov_scratch(usize::MAX), usize::MAX);
    assert_eq!(full::kl_grad_scratch(usize::MAX), usize::MAX);
    assert_eq!(full::kl_grad_scratch(usize::MAX / 2), usize::MAX);
}

// ---------------------------------------------------------------- NaN, inf, d = 0

/// NaN inputs give a NaN result (not an error); an infinite mean gives a
/// non-finite result.
#[test]
fn nan_and_inf_propagate() {
    for d in [1usize, 4, 17] {
        let c = Case::random(&mut rng(seed(11, d, 0)), d);
        let mut work = vec![0.0; full::kl_scratch(d)];
        let lp = packed_to_dense(d, &log_to_plain(d, &c.raw_p), 0.0);
        let lq = packed_to_dense(d, &log_to_plain(d, &c.raw_q), 0.0);
        let (sp, sq) = (gram(d, &lp), gram(d, &lq));
        let mut poisoned = |x: f64| {
            let mut mp = c.mean_p.clone();
            mp[d - 1] = x;
            let kl = kl_of(&mp, pt(d, &c.raw_p), &c.mean_q, pt(d, &c.raw_q), &mut work).unwrap();
            let dkl = kl_of(&mp, dense(d, &lp), &c.mean_q, dense(d, &lq), &mut work).unwrap();
            let cov =
                full::kl_cov(&mp, dense(d, &sp), &c.mean_q, dense(d, &sq), &mut work).unwrap();
            let std = std_normal_of(&mp, pt(d, &c.raw_p)).unwrap();
            let std_dense = std_normal_of(&mp, dense(d, &lp)).unwrap();
            [kl, dkl, cov, std, std_dense]
        };
        for v in poisoned(f64::NAN) {
            assert!(v.is_nan(), "NaN mean gave {v} at d={d}");
        }
        for v in poisoned(f64::INFINITY) {
            assert!(!v.is_finite(), "infinite mean gave {v} at d={d}");
        }
        // NaN in a factor (off-diagonal, log diagonal, plain diagonal).
        let last = tril(d) - 1;
        for (pos, diagonal) in [
            (last, Diagonal::Log),
            (last, Diagonal::Plain),
            (0, Diagonal::Log),
        ] {
            let mut rq = encoded(d, &c.raw_q, diagonal);
            rq[pos] = f64::NAN;
            let rp = encoded(d, &c.raw_p, diagonal);
            let got = kl_of(
                &c.mean_p,
                packed(d, &rp, Layout::RowMajor, diagonal),
                &c.mean_q,
                packed(d, &rq, Layout::RowMajor, diagonal),
                &mut work,
            )
            .unwrap();
            assert!(got.is_nan(), "NaN in l_q[{pos}] ({diagonal:?}) gave {got}");
        }
    }
    // d = 1 closed form: an infinite mean difference gives +∞.
    let mut work = [0.0; 3];
    let one = pt(1, &[0.0f64]);
    assert_eq!(
        kl_of(&[f64::INFINITY], one, &[0.0], one, &mut work),
        Ok(f64::INFINITY)
    );
    // Fixed kernels propagate too.
    let l = [[1.0f64]];
    assert!(
        full::kl_fixed(&[f64::NAN], &l, &[0.0], &l)
            .unwrap()
            .is_nan()
    );
    assert!(
        full::kl_packed_fixed(&[0.0], one, &[f64::NAN], one)
            .unwrap()
            .is_nan()
    );
}

#[test]
fn zero_dimension_is_zero_everywhere() {
    fn all<T: Real>() {
        let e: [T; 0] = [];
        let mut work: [T; 0] = [];
        for layout in LAYOUTS {
            for diagonal in DIAGONALS {
                let l = packed(0, &e, layout, diagonal);
                assert_eq!(kl_of(&e, l, &e, l, &mut work), Ok(T::ZERO));
                assert_eq!(std_normal_of(&e, l), Ok(T::ZERO));
                assert_eq!(full::kl_packed_fixed::<T, 0>(&[], l, &[], l), Ok(T::ZERO));
            }
        }
        assert_eq!(
            kl_of(&e, dense(0, &e), &e, dense(0, &e), &mut work),
            Ok(T::ZERO)
        );
        assert_eq!(
            full::kl_cov(&e, dense(0, &e), &e, dense(0, &e), &mut work),
            Ok(T::ZERO)
        );
        assert_eq!(std_normal_of(&e, dense(0, &e)), Ok(T::ZERO));
        assert_eq!(full::kl_fixed::<T, 0>(&[], &[], &[], &[]), Ok(T::ZERO));
        assert_eq!(full::cholesky_in_place::<T>(0, &mut []), Ok(()));
        assert_eq!(full::cholesky_packed_in_place::<T>(0, &mut []), Ok(()));
        assert_eq!(pt(0, &e).expand_dense(&mut []), Ok(()));
        assert_eq!(full::kl_scratch(0), 0);
    }
    all::<f32>();
    all::<f64>();
}
