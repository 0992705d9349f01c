//! Diagonal KL, the Eq. 10 score and the MIPS representations: PyTorch
//! oracle values, an independent reference (the full-rank kernel on diagonal
//! factors), and the dot-product identities.

use gaussian_kl::diag::{self, DiagBatch, Rep};
use gaussian_kl::{Error, full};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const ORACLE: &str = include_str!("data/torch_kl_cases.json");

fn flat(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect()
}

struct Case {
    k: usize,
    nq: usize,
    nd: usize,
    qm: Vec<f64>,
    qv: Vec<f64>,
    dm: Vec<f64>,
    dv: Vec<f64>,
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
            let k = c["k"].as_u64().unwrap() as usize;
            let qm = flat(&c["query_mean"]);
            let dm = flat(&c["doc_mean"]);
            Case {
                k,
                nq: qm.len() / k,
                nd: dm.len() / k,
                qm,
                qv: flat(&c["query_var"]),
                dm,
                dv: flat(&c["doc_var"]),
                kl: flat(&c["kl"]),
                eq10: flat(&c["eq10_score"]),
            }
        })
        .collect()
}

fn rel_err(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
}

/// Oracle: PyTorch float64. Both sides are sums of `3k` terms of similar
/// magnitude; `1e-12` relative leaves room for the different summation order
/// (`k · ε ≈ 7e-15` for `k = 33`) times the cancellation in `log σ²_D − log σ²_Q`.
#[test]
fn oracle_diag_cases_f64() {
    let cases = oracle_cases();
    assert_eq!(cases.len(), 3);
    for c in &cases {
        let q = DiagBatch::var(c.nq, c.k, &c.qm, &c.qv);
        let d = DiagBatch::var(c.nd, c.k, &c.dm, &c.dv);
        let mut kl = vec![f64::NAN; c.nq * c.nd];
        let mut eq10 = vec![f64::NAN; c.nq * c.nd];
        diag::pairwise_kl(q, d, &mut kl).unwrap();
        diag::pairwise_eq10(q, d, &mut eq10).unwrap();
        // the same through log-variances
        let lqv: Vec<f64> = c.qv.iter().map(|v| v.ln()).collect();
        let ldv: Vec<f64> = c.dv.iter().map(|v| v.ln()).collect();
        let mut kl_log = vec![f64::NAN; c.nq * c.nd];
        diag::pairwise_kl(
            DiagBatch::log_var(c.nq, c.k, &c.qm, &lqv),
            DiagBatch::log_var(c.nd, c.k, &c.dm, &ldv),
            &mut kl_log,
        )
        .unwrap();
        for i in 0..c.nq {
            for j in 0..c.nd {
                let ij = i * c.nd + j;
                assert!(c.kl[ij] > 0.0);
                assert!(
                    rel_err(kl[ij], c.kl[ij]) < 1e-12,
                    "kl {i},{j}: {} vs {}",
                    kl[ij],
                    c.kl[ij]
                );
                assert!(rel_err(kl_log[ij], c.kl[ij]) < 1e-12, "kl log {i},{j}");
                assert!(rel_err(eq10[ij], c.eq10[ij]) < 1e-12, "eq10 {i},{j}");
                let (qm, qv) = (&c.qm[i * c.k..][..c.k], &c.qv[i * c.k..][..c.k]);
                let (dm, dv) = (&c.dm[j * c.k..][..c.k], &c.dv[j * c.k..][..c.k]);
                // matrix entries are bit-identical to the single-pair functions
                assert_eq!(kl[ij], diag::kl(qm, qv, dm, dv).unwrap());
                assert_eq!(eq10[ij], diag::eq10_score(qm, qv, dm, dv).unwrap());
                let (lq, ld) = (&lqv[i * c.k..][..c.k], &ldv[j * c.k..][..c.k]);
                assert_eq!(kl_log[ij], diag::kl_log_var(qm, lq, dm, ld).unwrap());
            }
        }
    }
}

/// MIPS forms against the oracle: the dot products are differences of large
/// terms, so the bound is absolute, `4 (3k + 2) ε Σ |qᵢ dᵢ|`.
#[test]
fn oracle_diag_cases_through_dot_products() {
    for c in &oracle_cases() {
        let q = DiagBatch::var(c.nq, c.k, &c.qm, &c.qv);
        let d = DiagBatch::var(c.nd, c.k, &c.dm, &c.dv);
        for rep in [Rep::Seed, Rep::SeedFull, Rep::Compact, Rep::CompactFull] {
            let n = rep.len(c.k);
            let mut qr = vec![0.0; c.nq * n];
            let mut dr = vec![0.0; c.nd * n];
            diag::query_rep(rep, q, &mut qr).unwrap();
            diag::doc_rep(rep, d, &mut dr).unwrap();
            for i in 0..c.nq {
                for j in 0..c.nd {
                    let (a, b) = (&qr[i * n..][..n], &dr[j * n..][..n]);
                    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                    let mag: f64 = a.iter().zip(b).map(|(x, y)| (x * y).abs()).sum();
                    let tol = 4.0 * n as f64 * f64::EPSILON * mag;
                    let ij = i * c.nd + j;
                    if rep.is_full() {
                        let kl = diag::kl_from_dot(dot, c.k);
                        assert!((kl - c.kl[ij]).abs() <= 0.5 * tol, "{rep:?} {i},{j}");
                    } else {
                        assert!((dot - c.eq10[ij]).abs() <= tol, "{rep:?} {i},{j}");
                    }
                }
            }
        }
    }
}

/// Random positive inputs: means in (−2, 2), variances in (0.05, 5).
fn random_batch(rng: &mut StdRng, n: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    let m = (0..n * k).map(|_| rng.random_range(-2.0..2.0)).collect();
    let v = (0..n * k).map(|_| rng.random_range(0.05..5.0)).collect();
    (m, v)
}

/// Independent reference: the full-rank kernel (a triangular solve) on the
/// diagonal factors `diag(σ)`. Same quantity, different algorithm; the
/// bound is `8 k ε` times the sum of the absolute values of the `4k` terms
/// (`log σ²_D`, `log σ²_Q`, `1`, `(σ²_Q + δ²)/σ²_D`), since they cancel.
#[test]
fn matches_full_rank_kernel_on_diagonal_factors() {
    let mut rng = StdRng::seed_from_u64(4);
    for k in [1, 2, 5, 16, 33] {
        let (qm, qv) = random_batch(&mut rng, 3, k);
        let (dm, dv) = random_batch(&mut rng, 4, k);
        let mut out = vec![0.0; 12];
        diag::pairwise_kl(
            DiagBatch::var(3, k, &qm, &qv),
            DiagBatch::var(4, k, &dm, &dv),
            &mut out,
        )
        .unwrap();
        let mut work = vec![0.0; full::workspace_len(k)];
        for i in 0..3 {
            for j in 0..4 {
                let mut lq = vec![0.0; k * k];
                let mut ld = vec![0.0; k * k];
                for p in 0..k {
                    lq[p * k + p] = qv[i * k + p].sqrt();
                    ld[p * k + p] = dv[j * k + p].sqrt();
                }
                let r = full::kl_dense(&qm[i * k..][..k], &lq, &dm[j * k..][..k], &ld, &mut work)
                    .unwrap();
                let got = out[i * 4 + j];
                let mag: f64 = (0..k)
                    .map(|p| {
                        let (vq, vd) = (qv[i * k + p], dv[j * k + p]);
                        let dl = qm[i * k + p] - dm[j * k + p];
                        vd.ln().abs() + vq.ln().abs() + 1.0 + (vq + dl * dl) / vd
                    })
                    .sum();
                let tol = 8.0 * k as f64 * f64::EPSILON * mag;
                assert!((got - r).abs() <= tol, "k={k} {got} vs {r}");
            }
        }
    }
}

/// The seed's layouts, entry by entry, as `mrl_query_rep(_full)` and
/// `mrl_document_rep(_full)` build them.
#[test]
fn seed_layouts_exactly() {
    let (qm, qv) = ([0.3f64, -0.7], [0.5, 2.0]);
    let (dm, dv) = ([1.5f64, 0.25], [4.0, 0.5]);
    let g_d = -((4f64.ln() + 1.5 * 1.5 / 4.0) + (0.5f64.ln() + 0.25 * 0.25 / 0.5));
    let g_q = 0.5f64.ln() + 2f64.ln();
    let mut q = [0.0; 7];
    let mut d = [0.0; 7];
    diag::query_rep(Rep::Seed, DiagBatch::var(1, 2, &qm, &qv), &mut q).unwrap();
    diag::doc_rep(Rep::Seed, DiagBatch::var(1, 2, &dm, &dv), &mut d).unwrap();
    let (a, b) = (0.3f64 * 0.3, -0.7f64 * -0.7);
    assert_eq!(q, [1.0, 0.5, 2.0, a, b, 0.3, -0.7]);
    assert!((d[0] - g_d).abs() < 1e-15);
    assert_eq!(d[1..], [-0.25, -2.0, -0.25, -2.0, 0.75, 1.0]);
    let mut q = [0.0; 8];
    let mut d = [0.0; 8];
    diag::query_rep(Rep::SeedFull, DiagBatch::var(1, 2, &qm, &qv), &mut q).unwrap();
    diag::doc_rep(Rep::SeedFull, DiagBatch::var(1, 2, &dm, &dv), &mut d).unwrap();
    assert_eq!(q[0], 1.0);
    assert!((q[1] - g_q).abs() < 1e-15);
    assert_eq!(q[2..], [0.5, 2.0, a, b, 0.3, -0.7]);
    assert!((d[0] - g_d).abs() < 1e-15);
    assert_eq!(d[1..], [1.0, -0.25, -2.0, -0.25, -2.0, 0.75, 1.0]);
    let mut q = [0.0; 6];
    let mut d = [0.0; 6];
    diag::query_rep(Rep::CompactFull, DiagBatch::var(1, 2, &qm, &qv), &mut q).unwrap();
    diag::doc_rep(Rep::CompactFull, DiagBatch::var(1, 2, &dm, &dv), &mut d).unwrap();
    assert_eq!(q[0], 1.0);
    assert_eq!(q[2..], [0.5 + a, 2.0 + b, 0.3, -0.7]);
    assert_eq!(d[1..], [1.0, -0.25, -2.0, 0.75, 1.0]);
}

/// `pairwise KL = −½(q′·d′ + k)` through both full layouts, the Eq. 10 score
/// `= q·d` through both short ones, and the seed layout's dot product equal
/// to the compact one, on random data in f64 and f32.
#[test]
fn dot_product_identities_random() {
    let mut rng = StdRng::seed_from_u64(41);
    for k in [1, 3, 8, 16, 64, 128] {
        let (nq, nd) = (3, 5);
        let (qm, qv) = random_batch(&mut rng, nq, k);
        let (dm, dv) = random_batch(&mut rng, nd, k);
        let (q, d) = (
            DiagBatch::var(nq, k, &qm, &qv),
            DiagBatch::var(nd, k, &dm, &dv),
        );
        let mut kl = vec![0.0; nq * nd];
        let mut eq10 = vec![0.0; nq * nd];
        diag::pairwise_kl(q, d, &mut kl).unwrap();
        diag::pairwise_eq10(q, d, &mut eq10).unwrap();
        let dots = |rep: Rep| {
            let n = rep.len(k);
            let mut qr = vec![0.0; nq * n];
            let mut dr = vec![0.0; nd * n];
            diag::query_rep(rep, q, &mut qr).unwrap();
            diag::doc_rep(rep, d, &mut dr).unwrap();
            let mut out = vec![(0.0, 0.0); nq * nd];
            for i in 0..nq {
                for j in 0..nd {
                    let (a, b) = (&qr[i * n..][..n], &dr[j * n..][..n]);
                    out[i * nd + j] = (
                        a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>(),
                        a.iter().zip(b).map(|(x, y)| (x * y).abs()).sum::<f64>(),
                    );
                }
            }
            out
        };
        let (seed, seed_full, comp, comp_full) = (
            dots(Rep::Seed),
            dots(Rep::SeedFull),
            dots(Rep::Compact),
            dots(Rep::CompactFull),
        );
        for ij in 0..nq * nd {
            let tol = |mag: f64| 4.0 * (3 * k + 2) as f64 * f64::EPSILON * mag;
            assert!((seed[ij].0 - eq10[ij]).abs() <= tol(seed[ij].1));
            assert!((comp[ij].0 - eq10[ij]).abs() <= tol(comp[ij].1));
            assert!((seed[ij].0 - comp[ij].0).abs() <= tol(seed[ij].1));
            assert!((diag::kl_from_dot(seed_full[ij].0, k) - kl[ij]).abs() <= tol(seed_full[ij].1));
            assert!((diag::kl_from_dot(comp_full[ij].0, k) - kl[ij]).abs() <= tol(comp_full[ij].1));
            // the "distance" convention: KL = ½(q′·(−d′) − k)
            assert!((0.5 * (-comp_full[ij].0 - k as f64) - kl[ij]).abs() <= tol(comp_full[ij].1));
        }
    }
}

/// f32 kernels against the f64 ones: relative `4 k ε₃₂` on terms that are
/// mostly positive (the log terms cancel partly, hence the `Σ|term|` scale).
#[test]
fn f32_matches_f64() {
    let mut rng = StdRng::seed_from_u64(7);
    for k in [1, 5, 32, 128] {
        let (qm, qv) = random_batch(&mut rng, 2, k);
        let (dm, dv) = random_batch(&mut rng, 3, k);
        let c = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let (qm32, qv32, dm32, dv32) = (c(&qm), c(&qv), c(&dm), c(&dv));
        // reference in f64 on the f32-rounded inputs
        let back = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let (qm, qv, dm, dv) = (back(&qm32), back(&qv32), back(&dm32), back(&dv32));
        let mut r64 = vec![0.0; 6];
        let mut r32 = vec![0.0f32; 6];
        diag::pairwise_kl(
            DiagBatch::var(2, k, &qm, &qv),
            DiagBatch::var(3, k, &dm, &dv),
            &mut r64,
        )
        .unwrap();
        diag::pairwise_kl(
            DiagBatch::var(2, k, &qm32, &qv32),
            DiagBatch::var(3, k, &dm32, &dv32),
            &mut r32,
        )
        .unwrap();
        for i in 0..6 {
            // scale: Σ|log σ²_D| + Σ|log σ²_Q| + R ≤ 2k·|log 20| + R
            let scale = r64[i] + 4.0 * k as f64 * 3.0;
            assert!(
                (r32[i] as f64 - r64[i]).abs() <= 4.0 * k as f64 * f32::EPSILON as f64 * scale,
                "k={k}: {} vs {}",
                r32[i],
                r64[i]
            );
        }
    }
}

#[test]
fn kl_std_normal_is_kl_against_the_prior() {
    let mut rng = StdRng::seed_from_u64(9);
    for k in [0, 1, 7, 64] {
        let mu: Vec<f64> = (0..k).map(|_| rng.random_range(-3.0..3.0)).collect();
        let lv: Vec<f64> = (0..k).map(|_| rng.random_range(-4.0..2.0)).collect();
        let fast = diag::kl_std_normal(&mu, &lv).unwrap();
        let general = diag::kl_log_var(&mu, &lv, &vec![0.0; k], &vec![0.0; k]).unwrap();
        assert!((fast - general).abs() <= 8.0 * (k.max(1)) as f64 * f64::EPSILON * fast.max(1.0));
        assert!(fast >= 0.0);
    }
}

#[test]
fn kl_of_a_distribution_with_itself_is_zero() {
    let mut rng = StdRng::seed_from_u64(10);
    let (m, v) = random_batch(&mut rng, 1, 20);
    let kl = diag::kl(&m, &v, &m, &v).unwrap();
    assert!(kl.abs() < 20.0 * f64::EPSILON, "{kl}");
    let eq = diag::eq10_score(&m, &v, &m, &v).unwrap();
    let log_det: f64 = v.iter().map(|x| x.ln()).sum();
    // eq10(Q, Q) = −(Σ log σ² + k)
    assert!((eq - (-(log_det + 20.0))).abs() < 1e-12);
}

#[test]
fn shape_and_value_errors() {
    let m = [0.0f64; 4];
    let v = [1.0f64; 4];
    let bad = [1.0, 0.0, 1.0, 1.0];
    assert_eq!(
        diag::kl(&m, &v[..3], &m, &v),
        Err(Error::LengthMismatch {
            what: "var_q",
            expected: 4,
            found: 3
        })
    );
    assert_eq!(
        diag::kl(&m, &v, &m[..2], &v),
        Err(Error::LengthMismatch {
            what: "mean_d",
            expected: 4,
            found: 2
        })
    );
    assert_eq!(
        diag::kl(&m, &v, &m, &bad),
        Err(Error::NonPositiveVariance {
            what: "var_d",
            index: 1
        })
    );
    assert_eq!(
        diag::eq10_score(&m, &[-1.0, 1.0, 1.0, 1.0], &m, &v),
        Err(Error::NonPositiveVariance {
            what: "var_q",
            index: 0
        })
    );
    assert_eq!(
        diag::kl_std_normal(&m, &v[..1]),
        Err(Error::LengthMismatch {
            what: "log_var",
            expected: 4,
            found: 1
        })
    );
    // log-variances may be anything
    assert!(diag::kl_log_var(&m, &[-1.0; 4], &m, &[0.0; 4]).is_ok());
    let mut out = [0.0; 4];
    let q = DiagBatch::var(2, 2, &m, &v);
    assert_eq!(
        diag::pairwise_kl(q, DiagBatch::var(1, 4, &m, &v), &mut out),
        Err(Error::DimensionMismatch {
            what: "documents",
            expected: 2,
            found: 4
        })
    );
    assert_eq!(
        diag::pairwise_kl(q, DiagBatch::var(2, 2, &m, &bad), &mut out),
        Err(Error::NonPositiveVariance {
            what: "document spread",
            index: 1
        })
    );
    assert_eq!(
        diag::pairwise_eq10(q, q, &mut out[..3]),
        Err(Error::LengthMismatch {
            what: "out",
            expected: 4,
            found: 3
        })
    );
    assert_eq!(
        diag::pairwise_eq10(DiagBatch::var(3, 2, &m, &v), q, &mut out),
        Err(Error::LengthMismatch {
            what: "query mean",
            expected: 6,
            found: 4
        })
    );
    assert_eq!(
        diag::pairwise_kl(DiagBatch::var(usize::MAX, 2, &m, &v), q, &mut out),
        Err(Error::DimensionTooLarge { d: 2 })
    );
    let mut r = [0.0; 5];
    assert_eq!(
        diag::doc_rep(Rep::Compact, q, &mut r),
        Err(Error::LengthMismatch {
            what: "out",
            expected: 10,
            found: 5
        })
    );
    assert_eq!(
        diag::query_rep(Rep::Seed, DiagBatch::var(1, 4, &m, &bad), &mut [0.0; 13]),
        Err(Error::NonPositiveVariance {
            what: "query spread",
            index: 1
        })
    );
    // empty batches and k = 0 are fine
    assert_eq!(diag::kl::<f64>(&[], &[], &[], &[]), Ok(0.0));
    let e = DiagBatch::<f64>::var(0, 3, &[], &[]);
    assert_eq!(
        diag::pairwise_kl(e, DiagBatch::var(1, 3, &m[..3], &v[..3]), &mut []),
        Ok(())
    );
    let z = DiagBatch::<f64>::var(2, 0, &[], &[]);
    let mut o = [f64::NAN; 4];
    diag::pairwise_kl(z, z, &mut o).unwrap();
    assert_eq!(o, [0.0; 4]);
}

/// NaN inputs are not errors: they reach exactly the affected results.
#[test]
fn nan_propagates_to_the_affected_entries() {
    let qm = [0.0, f64::NAN, 0.0, 0.0];
    let v = [1.0; 4];
    let dm = [0.5; 4];
    let mut out = [0.0; 4];
    diag::pairwise_kl(
        DiagBatch::var(2, 2, &qm, &v),
        DiagBatch::var(2, 2, &dm, &v),
        &mut out,
    )
    .unwrap();
    assert!(out[0].is_nan() && out[1].is_nan());
    assert!(out[2].is_finite() && out[3].is_finite());
    let nan_var = [1.0, f64::NAN];
    assert!(
        diag::kl(&[0.0; 2], &nan_var, &[0.0; 2], &[1.0; 2])
            .unwrap()
            .is_nan()
    );
    assert_eq!(
        diag::kl(&[0.0], &[1.0], &[0.0], &[f64::INFINITY]).unwrap(),
        f64::INFINITY
    );
}
