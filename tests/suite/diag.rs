//! Diagonal KL, the Eq. 10 score and the dot-product representations:
//! PyTorch oracle values, an independent double-double reference, the
//! dot-product identities, and the errors (argument, Gaussian and
//! coordinate named; outputs untouched).

use crate::dd_reference::Dd;
use gaussian_kl::diag::{self, Rep};
use gaussian_kl::{DiagGaussian, DiagGaussians, Error, Real, Scale};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const ORACLE: &str = include_str!("../data/torch_kl_cases.json");

fn flat(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect()
}

struct Case {
    d: usize,
    np: usize,
    nq: usize,
    pm: Vec<f64>,
    pv: Vec<f64>,
    qm: Vec<f64>,
    qv: Vec<f64>,
    kl: Vec<f64>,
    eq10: Vec<f64>,
}

fn oracle_cases() -> Vec<Case> {
    let json: Value = serde_json::from_str(ORACLE).unwrap();
    json["diag"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let d = c["k"].as_u64().unwrap() as usize;
            let pm = flat(&c["query_mean"]);
            let qm = flat(&c["doc_mean"]);
            Case {
                d,
                np: pm.len() / d,
                nq: qm.len() / d,
                pm,
                pv: flat(&c["query_var"]),
                qm,
                qv: flat(&c["doc_var"]),
                kl: flat(&c["kl"]),
                eq10: flat(&c["eq10_score"]),
            }
        })
        .collect()
}

fn rel_err(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
}

fn ln_all(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| x.ln()).collect()
}

/// Oracle: PyTorch float64. Both sides are sums of `3d` terms of similar
/// magnitude; `1e-12` relative leaves room for the different summation order
/// (`d · ε ≈ 7e-15` for `d = 33`) times the cancellation in `log σ²_q − log σ²_p`.
#[test]
fn oracle_diag_cases_f64() {
    let cases = oracle_cases();
    assert_eq!(cases.len(), 3);
    for c in &cases {
        let p = DiagGaussians::var(c.np, c.d, &c.pm, &c.pv).unwrap();
        let q = DiagGaussians::var(c.nq, c.d, &c.qm, &c.qv).unwrap();
        let n = c.np * c.nq;
        let (mut kl, mut eq10) = (vec![f64::NAN; n], vec![f64::NAN; n]);
        diag::kl_all_pairs(&p, &q, &mut kl).unwrap();
        diag::eq10_all_pairs(&p, &q, &mut eq10).unwrap();
        // the same through log-variances, and with the two scales mixed
        let (lpv, lqv) = (ln_all(&c.pv), ln_all(&c.qv));
        let pl = DiagGaussians::log_var(c.np, c.d, &c.pm, &lpv).unwrap();
        let ql = DiagGaussians::log_var(c.nq, c.d, &c.qm, &lqv).unwrap();
        let (mut kl_log, mut kl_mixed) = (vec![f64::NAN; n], vec![f64::NAN; n]);
        diag::kl_all_pairs(&pl, &ql, &mut kl_log).unwrap();
        diag::kl_all_pairs(&p, &ql, &mut kl_mixed).unwrap();
        for i in 0..c.np {
            for j in 0..c.nq {
                let ij = i * c.nq + j;
                assert!(c.kl[ij] > 0.0);
                assert!(rel_err(kl[ij], c.kl[ij]) < 1e-12, "kl {i},{j}");
                assert!(rel_err(kl_log[ij], c.kl[ij]) < 1e-12, "kl log {i},{j}");
                assert!(rel_err(kl_mixed[ij], c.kl[ij]) < 1e-12, "kl mixed {i},{j}");
                assert!(rel_err(eq10[ij], c.eq10[ij]) < 1e-12, "eq10 {i},{j}");
                // matrix entries are bit-identical to the single-pair functions
                let (pi, qj) = (p.get(i).unwrap(), q.get(j).unwrap());
                assert_eq!(kl[ij], diag::kl(&pi, &qj).unwrap());
                assert_eq!(eq10[ij], diag::eq10(&pi, &qj).unwrap());
                let (pli, qlj) = (pl.get(i).unwrap(), ql.get(j).unwrap());
                assert_eq!(kl_log[ij], diag::kl(&pli, &qlj).unwrap());
                assert_eq!(kl_mixed[ij], diag::kl(&pi, &qlj).unwrap());
            }
        }
    }
}

/// Dot-product forms against the oracle: the dot products are differences
/// of large terms, so the bound is absolute, `4 (3d + 2) ε Σ |aᵢ bᵢ|`.
#[test]
fn oracle_diag_cases_through_dot_products() {
    for c in &oracle_cases() {
        let p = DiagGaussians::var(c.np, c.d, &c.pm, &c.pv).unwrap();
        let q = DiagGaussians::var(c.nq, c.d, &c.qm, &c.qv).unwrap();
        for rep in [Rep::Wide, Rep::WideKl, Rep::Compact, Rep::CompactKl] {
            let n = rep.len(c.d);
            let mut a = vec![0.0; c.np * n];
            let mut b = vec![0.0; c.nq * n];
            diag::query_vectors(rep, &p, &mut a).unwrap();
            diag::doc_vectors(rep, &q, &mut b).unwrap();
            for i in 0..c.np {
                for j in 0..c.nq {
                    let (x, y) = (&a[i * n..][..n], &b[j * n..][..n]);
                    let dot: f64 = x.iter().zip(y).map(|(u, v)| u * v).sum();
                    let mag: f64 = x.iter().zip(y).map(|(u, v)| (u * v).abs()).sum();
                    let tol = 4.0 * n as f64 * f64::EPSILON * mag;
                    let ij = i * c.nq + j;
                    if rep.is_kl() {
                        let kl = diag::kl_from_dot(dot, c.d);
                        assert!((kl - c.kl[ij]).abs() <= 0.5 * tol, "{rep:?} {i},{j}");
                    } else {
                        assert!((dot - c.eq10[ij]).abs() <= tol, "{rep:?} {i},{j}");
                    }
                }
            }
        }
    }
}

/// Random inputs: means in (−2, 2), variances in (0.05, 5) (or their logs).
fn random_side(rng: &mut StdRng, n: usize, d: usize, scale: Scale) -> (Vec<f64>, Vec<f64>) {
    let m = (0..n * d).map(|_| rng.random_range(-2.0..2.0)).collect();
    let v = (0..n * d)
        .map(|_| {
            let v: f64 = rng.random_range(0.05..5.0);
            match scale {
                Scale::Var => v,
                Scale::LogVar => v.ln(),
            }
        })
        .collect();
    (m, v)
}

fn view<'a, T: Real>(
    n: usize,
    d: usize,
    m: &'a [T],
    s: &'a [T],
    scale: Scale,
) -> DiagGaussians<'a, T> {
    match scale {
        Scale::Var => DiagGaussians::var(n, d, m, s).unwrap(),
        Scale::LogVar => DiagGaussians::log_var(n, d, m, s).unwrap(),
    }
}

/// The independent reference: the KL formula term by term in double-double
/// arithmetic (about 106 bits, `exp`/`ln` included) on the exact inputs.
/// Returns `(KL, Σ|terms|)`, the scale of the cancellation.
fn dd_kl(pm: &[f64], ps: &[f64], sp: Scale, qm: &[f64], qs: &[f64], sq: Scale) -> (f64, f64) {
    let (mut acc, mut mag) = (Dd::ZERO, 0.0);
    let var_ln = |s: f64, scale: Scale| match scale {
        Scale::Var => (Dd::new(s), Dd::new(s).ln()),
        Scale::LogVar => (Dd::new(s).exp(), Dd::new(s)),
    };
    for i in 0..pm.len() {
        let (vp, lp) = var_ln(ps[i], sp);
        let (vq, lq) = var_ln(qs[i], sq);
        let delta = Dd::new(pm[i]) - Dd::new(qm[i]);
        let r = (vp + delta * delta) / vq;
        acc = acc + lq - lp - Dd::ONE + r;
        mag += lq.to_f64().abs() + lp.to_f64().abs() + 1.0 + r.to_f64();
    }
    (0.5 * acc.to_f64(), 0.5 * mag)
}

const SCALES: [(Scale, Scale); 4] = [
    (Scale::Var, Scale::Var),
    (Scale::LogVar, Scale::LogVar),
    (Scale::Var, Scale::LogVar),
    (Scale::LogVar, Scale::Var),
];

/// Largest `|KL − reference| / (ε · Σ|terms|)` of the all-pairs KL over
/// random cases at every dimension, both scales on each side.
fn worst_kl_error<T: Real>(seed: u64) -> f64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut worst = 0.0f64;
    let eps = if core::mem::size_of::<T>() == 4 {
        f32::EPSILON as f64
    } else {
        f64::EPSILON
    };
    for d in [1, 2, 5, 16, 33, 128] {
        for (sp, sq) in SCALES {
            let (np, nq) = (3, 4);
            let (pm, ps) = random_side(&mut rng, np, d, sp);
            let (qm, qs) = random_side(&mut rng, nq, d, sq);
            // the inputs rounded to T are the reference's exact inputs
            let r = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
            let (pmt, pst, qmt, qst) = (r(&pm), r(&ps), r(&qm), r(&qs));
            let w = |v: &[T]| v.iter().map(|x| x.to_f64()).collect::<Vec<f64>>();
            let (pm, ps, qm, qs) = (w(&pmt), w(&pst), w(&qmt), w(&qst));
            let mut out = vec![T::NAN; np * nq];
            let (p, q) = (view(np, d, &pmt, &pst, sp), view(nq, d, &qmt, &qst, sq));
            diag::kl_all_pairs(&p, &q, &mut out).unwrap();
            for i in 0..np {
                for j in 0..nq {
                    let (want, mag) = dd_kl(
                        &pm[i * d..][..d],
                        &ps[i * d..][..d],
                        sp,
                        &qm[j * d..][..d],
                        &qs[j * d..][..d],
                        sq,
                    );
                    let got = out[i * nq + j].to_f64();
                    worst = worst.max((got - want).abs() / (eps * mag));
                }
            }
        }
    }
    worst
}

/// Against the double-double reference, f64 and f32, every scale pairing.
/// Measured (seeds 4, 5; d up to 128): worst `|err| / (ε · Σ|terms|)` is
/// 2.4 in f64 and 2.5 in f32 (each of the `4d` terms and the running sums
/// round once per operation; the error is relative to the cancelling scale
/// `Σ|terms|`, not to the KL). The bound `25` is 10× the measured worst, and
/// far below what a dropped or wrong term gives (`O(1/ε)` on this scale).
#[test]
fn matches_double_double_reference() {
    let w64 = worst_kl_error::<f64>(4);
    let w32 = worst_kl_error::<f32>(5);
    eprintln!("worst |err|/(eps*scale): f64 {w64:.3}, f32 {w32:.3}");
    assert!(w64 <= 25.0, "f64: {w64}");
    assert!(w32 <= 25.0, "f32: {w32}");
}

/// The layouts entry by entry: `Wide` (the MRL paper's map), `WideKl`,
/// `CompactKl`.
#[test]
fn layouts_exactly() {
    let (pm, pv) = ([0.3f64, -0.7], [0.5, 2.0]);
    let (qm, qv) = ([1.5f64, 0.25], [4.0, 0.5]);
    let p = DiagGaussians::var(1, 2, &pm, &pv).unwrap();
    let q = DiagGaussians::var(1, 2, &qm, &qv).unwrap();
    let g_q = -((4f64.ln() + 1.5 * 1.5 / 4.0) + (0.5f64.ln() + 0.25 * 0.25 / 0.5));
    let g_p = 0.5f64.ln() + 2f64.ln();
    let (mut a, mut b) = ([0.0; 7], [0.0; 7]);
    diag::query_vectors(Rep::Wide, &p, &mut a).unwrap();
    diag::doc_vectors(Rep::Wide, &q, &mut b).unwrap();
    let (x, y) = (0.3f64 * 0.3, -0.7f64 * -0.7);
    assert_eq!(a, [1.0, 0.5, 2.0, x, y, 0.3, -0.7]);
    assert!((b[0] - g_q).abs() < 1e-15);
    assert_eq!(b[1..], [-0.25, -2.0, -0.25, -2.0, 0.75, 1.0]);
    let (mut a, mut b) = ([0.0; 8], [0.0; 8]);
    diag::query_vectors(Rep::WideKl, &p, &mut a).unwrap();
    diag::doc_vectors(Rep::WideKl, &q, &mut b).unwrap();
    assert_eq!(a[0], 1.0);
    assert!((a[1] - g_p).abs() < 1e-15);
    assert_eq!(a[2..], [0.5, 2.0, x, y, 0.3, -0.7]);
    assert!((b[0] - g_q).abs() < 1e-15);
    assert_eq!(b[1..], [1.0, -0.25, -2.0, -0.25, -2.0, 0.75, 1.0]);
    let (mut a, mut b) = ([0.0; 6], [0.0; 6]);
    diag::query_vectors(Rep::CompactKl, &p, &mut a).unwrap();
    diag::doc_vectors(Rep::CompactKl, &q, &mut b).unwrap();
    assert_eq!(a[0], 1.0);
    assert_eq!(a[2..], [0.5 + x, 2.0 + y, 0.3, -0.7]);
    assert_eq!(b[1..], [1.0, -0.25, -2.0, 0.75, 1.0]);
    assert_eq!((Rep::Compact.len(2), Rep::Wide.len(2)), (5, 7));
    assert!(Rep::WideKl.is_kl() && Rep::WideKl.is_wide() && !Rep::Compact.is_wide());
}

/// All-pairs `KL = −½(a′·b′ + d)` through both `…Kl` layouts, the Eq. 10
/// score `= a·b` through both short ones, and the wide layout's dot product
/// equal to the compact one, on random data.
#[test]
fn dot_product_identities_random() {
    let mut rng = StdRng::seed_from_u64(41);
    for d in [1, 3, 8, 16, 64, 128] {
        let (np, nq) = (3, 5);
        let (pm, pv) = random_side(&mut rng, np, d, Scale::Var);
        let (qm, qv) = random_side(&mut rng, nq, d, Scale::Var);
        let p = DiagGaussians::var(np, d, &pm, &pv).unwrap();
        let q = DiagGaussians::var(nq, d, &qm, &qv).unwrap();
        let mut kl = vec![0.0; np * nq];
        let mut eq10 = vec![0.0; np * nq];
        diag::kl_all_pairs(&p, &q, &mut kl).unwrap();
        diag::eq10_all_pairs(&p, &q, &mut eq10).unwrap();
        let dots = |rep: Rep| {
            let n = rep.len(d);
            let mut a = vec![0.0; np * n];
            let mut b = vec![0.0; nq * n];
            diag::query_vectors(rep, &p, &mut a).unwrap();
            diag::doc_vectors(rep, &q, &mut b).unwrap();
            let mut out = vec![(0.0, 0.0); np * nq];
            for i in 0..np {
                for j in 0..nq {
                    let (x, y) = (&a[i * n..][..n], &b[j * n..][..n]);
                    out[i * nq + j] = (
                        x.iter().zip(y).map(|(u, v)| u * v).sum::<f64>(),
                        x.iter().zip(y).map(|(u, v)| (u * v).abs()).sum::<f64>(),
                    );
                }
            }
            out
        };
        let (wide, wide_kl, comp, comp_kl) = (
            dots(Rep::Wide),
            dots(Rep::WideKl),
            dots(Rep::Compact),
            dots(Rep::CompactKl),
        );
        for ij in 0..np * nq {
            let tol = |mag: f64| 4.0 * (3 * d + 2) as f64 * f64::EPSILON * mag;
            assert!((wide[ij].0 - eq10[ij]).abs() <= tol(wide[ij].1));
            assert!((comp[ij].0 - eq10[ij]).abs() <= tol(comp[ij].1));
            assert!((wide[ij].0 - comp[ij].0).abs() <= tol(wide[ij].1));
            assert!((diag::kl_from_dot(wide_kl[ij].0, d) - kl[ij]).abs() <= tol(wide_kl[ij].1));
            assert!((diag::kl_from_dot(comp_kl[ij].0, d) - kl[ij]).abs() <= tol(comp_kl[ij].1));
            // the "distance" convention: KL = ½(a′·(−b′) − d)
            assert!((0.5 * (-comp_kl[ij].0 - d as f64) - kl[ij]).abs() <= tol(comp_kl[ij].1));
        }
    }
}

/// `kl_std_normal` equals `kl` against a zero-mean unit-variance `q`, from
/// either scale.
#[test]
fn kl_std_normal_is_kl_against_the_prior() {
    let mut rng = StdRng::seed_from_u64(9);
    for d in [0, 1, 7, 64] {
        let mu: Vec<f64> = (0..d).map(|_| rng.random_range(-3.0..3.0)).collect();
        let lv: Vec<f64> = (0..d).map(|_| rng.random_range(-4.0..2.0)).collect();
        let v: Vec<f64> = lv.iter().map(|x| x.exp()).collect();
        let (zero, one) = (vec![0.0; d], vec![1.0; d]);
        let prior = DiagGaussian::var(&zero, &one).unwrap();
        for p in [
            DiagGaussian::log_var(&mu, &lv).unwrap(),
            DiagGaussian::var(&mu, &v).unwrap(),
        ] {
            let fast = diag::kl_std_normal(&p).unwrap();
            let general = diag::kl(&p, &prior).unwrap();
            let tol = 8.0 * (d.max(1)) as f64 * f64::EPSILON * fast.max(1.0);
            assert!((fast - general).abs() <= tol, "d={d} {:?}", p.scale());
            assert!(fast >= 0.0);
        }
    }
}

#[test]
fn kl_of_a_distribution_with_itself_is_zero() {
    let mut rng = StdRng::seed_from_u64(10);
    let (m, v) = random_side(&mut rng, 1, 20, Scale::Var);
    let g = DiagGaussian::var(&m, &v).unwrap();
    let kl = diag::kl(&g, &g).unwrap();
    assert!(kl.abs() < 20.0 * f64::EPSILON, "{kl}");
    let eq = diag::eq10(&g, &g).unwrap();
    let log_det: f64 = v.iter().map(|x| x.ln()).sum();
    // eq10(p, p) = −(Σ log σ² + d)
    assert!((eq - (-(log_det + 20.0))).abs() < 1e-12);
}

/// Regression: the 0.1 `diag::kl(mean_q, var_q, mean_d, var_d)` reported a
/// wrong `mean_d` length as `var_d`; the dimension of `q` is now checked
/// against `p` and named `q`.
#[test]
fn wrong_q_dimension_names_q() {
    let (m, v) = ([0.0f64; 4], [1.0f64; 4]);
    let p = DiagGaussian::var(&m, &v).unwrap();
    let q = DiagGaussian::var(&m[..2], &v[..2]).unwrap();
    let want = Error::DimensionMismatch {
        what: "q",
        expected: 4,
        found: 2,
    };
    assert_eq!(diag::kl(&p, &q), Err(want));
    assert_eq!(diag::eq10(&p, &q), Err(want));
    // a mean and a spread that disagree name the spread, at construction
    assert_eq!(
        DiagGaussian::var(&m, &v[..3]),
        Err(Error::LengthMismatch {
            what: "var",
            expected: 4,
            found: 3
        })
    );
}

/// Regression: batch errors give the Gaussian and the coordinate inside it
/// (0.1 reported the flat index 5 for Gaussian 1, coordinate 1 here).
#[test]
fn batch_errors_name_the_gaussian_and_coordinate() {
    let m = [0.0f64; 8];
    let v = [1.0, 1.0, 1.0, 1.0, 1.0, -2.0, 1.0, 1.0];
    assert_eq!(
        DiagGaussians::var(2, 4, &m, &v),
        Err(Error::NonPositiveVariance {
            what: "var",
            item: Some(1),
            index: 1,
            value: -2.0
        })
    );
    assert_eq!(
        DiagGaussian::var(&m[..4], &[1.0, 0.0, 1.0, 1.0]),
        Err(Error::NonPositiveVariance {
            what: "var",
            item: None,
            index: 1,
            value: 0.0
        })
    );
}

/// Shape errors of the operations name `q`, `out`; nothing is written.
#[test]
fn shape_errors_leave_outputs_untouched() {
    let (m, v) = ([0.0f64; 6], [1.0f64; 6]);
    let p = DiagGaussians::var(2, 2, &m[..4], &v[..4]).unwrap();
    let q3 = DiagGaussians::var(2, 3, &m, &v).unwrap();
    let sentinel = [7.5f64; 4];
    let mut out = sentinel;
    assert_eq!(
        diag::kl_all_pairs(&p, &q3, &mut out),
        Err(Error::DimensionMismatch {
            what: "q",
            expected: 2,
            found: 3
        })
    );
    assert_eq!(out, sentinel);
    assert_eq!(
        diag::eq10_all_pairs(&p, &p, &mut out[..3]),
        Err(Error::LengthMismatch {
            what: "out",
            expected: 4,
            found: 3
        })
    );
    assert_eq!(out, sentinel);
    let mut long = [7.5f64; 5];
    assert!(matches!(
        diag::kl_all_pairs(&p, &p, &mut long),
        Err(Error::LengthMismatch { what: "out", .. })
    ));
    assert_eq!(long, [7.5; 5]);
    for rep in [Rep::Compact, Rep::CompactKl, Rep::Wide, Rep::WideKl] {
        let mut r = [7.5f64; 5];
        assert_eq!(
            diag::doc_vectors(rep, &p, &mut r),
            Err(Error::LengthMismatch {
                what: "out",
                expected: 2 * rep.len(2),
                found: 5
            })
        );
        assert!(matches!(
            diag::query_vectors(rep, &p, &mut r),
            Err(Error::LengthMismatch { what: "out", .. })
        ));
        assert_eq!(r, [7.5; 5]);
    }
    // an n_p · n_q that overflows is an error, not a panic
    let huge = DiagGaussians::<f64>::var(usize::MAX, 0, &[], &[]).unwrap();
    assert!(matches!(
        diag::kl_all_pairs(&huge, &huge, &mut out),
        Err(Error::DimensionTooLarge { .. })
    ));
    assert_eq!(out, sentinel);
    // empty batches and d = 0 are fine
    let e = DiagGaussian::<f64>::var(&[], &[]).unwrap();
    assert_eq!(diag::kl(&e, &e), Ok(0.0));
    let none = DiagGaussians::<f64>::var(0, 2, &[], &[]).unwrap();
    assert_eq!(diag::kl_all_pairs(&none, &p, &mut []), Ok(()));
    let z = DiagGaussians::<f64>::var(2, 0, &[], &[]).unwrap();
    let mut o = [f64::NAN; 4];
    diag::kl_all_pairs(&z, &z, &mut o).unwrap();
    assert_eq!(o, [0.0; 4]);
}

/// NaN inputs are not errors: they reach exactly the affected results.
#[test]
fn nan_propagates_to_the_affected_entries() {
    let pm = [0.0, f64::NAN, 0.0, 0.0];
    let v = [1.0; 4];
    let qm = [0.5; 4];
    let mut out = [0.0; 4];
    let p = DiagGaussians::var(2, 2, &pm, &v).unwrap();
    let q = DiagGaussians::var(2, 2, &qm, &v).unwrap();
    diag::kl_all_pairs(&p, &q, &mut out).unwrap();
    assert!(out[0].is_nan() && out[1].is_nan());
    assert!(out[2].is_finite() && out[3].is_finite());
    let nan_var = [1.0, f64::NAN];
    let g = DiagGaussian::var(&[0.0; 2], &nan_var).unwrap();
    let one = DiagGaussian::var(&[0.0; 2], &[1.0; 2]).unwrap();
    assert!(diag::kl(&g, &one).unwrap().is_nan());
    let inf = DiagGaussian::var(&[0.0], &[f64::INFINITY]).unwrap();
    let unit = DiagGaussian::var(&[0.0], &[1.0]).unwrap();
    assert_eq!(diag::kl(&unit, &inf).unwrap(), f64::INFINITY);
}
