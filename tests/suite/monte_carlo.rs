//! Monte-Carlo check, as PyTorch and TensorFlow Probability test their KL
//! divergences: `KL(p‖q) = E_p[log p(x) − log q(x)]`. Samples
//! `x = μ_p + L_p z`, `z ~ N(0, I)` (Box–Muller on a seeded `StdRng`), and
//! log-densities by this file's own f64 triangular solves; the sample mean
//! must lie within 4 standard errors of the crate's analytic value (a false
//! alarm about once in 16 000 runs, and the seed is fixed).

use crate::common::*;
use gaussian_kl::{Gaussian, full};

/// Solves `L u = b` for dense row-major lower-triangular `L` (f64).
fn forward_solve(d: usize, l: &[f64], b: &[f64], u: &mut [f64]) {
    for i in 0..d {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * d + k] * u[k];
        }
        u[i] = s / l[i * d + i];
    }
}

/// `log N(x; μ, L Lᵀ)` without the `−d/2 · log 2π` term (it cancels in the
/// ratio). `diff` and `u` are scratch of length `d`.
fn log_density(
    d: usize,
    x: &[f64],
    mean: &[f64],
    l: &[f64],
    log_det_l: f64,
    diff: &mut [f64],
    u: &mut [f64],
) -> f64 {
    for i in 0..d {
        diff[i] = x[i] - mean[i];
    }
    forward_solve(d, l, diff, u);
    -0.5 * u.iter().map(|v| v * v).sum::<f64>() - log_det_l
}

fn monte_carlo(d: usize, n: usize, seed: u64) {
    let case = Case::random(&mut rng(seed), d);
    let mut work = vec![0.0; full::kl_scratch(d)];
    let analytic = full::kl(
        &Gaussian::packed(&case.mean_p, &case.raw_p).unwrap(),
        &Gaussian::packed(&case.mean_q, &case.raw_q).unwrap(),
        &mut work,
    )
    .unwrap();
    let (lp, lq) = (dense_factor(d, &case.raw_p), dense_factor(d, &case.raw_q));
    let log_det = |raw: &[f64]| (0..d).map(|i| raw[rm(i, i)]).sum::<f64>();
    let (ldp, ldq) = (log_det(&case.raw_p), log_det(&case.raw_q));

    let mut r = rng(seed ^ 0x5eed);
    let [mut z, mut x, mut diff, mut u] = [(); 4].map(|_| vec![0.0; d]);
    let (mut sum, mut sum_sq) = (0.0f64, 0.0f64);
    for _ in 0..n {
        for v in z.iter_mut() {
            *v = normal(&mut r);
        }
        for i in 0..d {
            let mut s = case.mean_p[i];
            for k in 0..=i {
                s += lp[i * d + k] * z[k];
            }
            x[i] = s;
        }
        let ratio = log_density(d, &x, &case.mean_p, &lp, ldp, &mut diff, &mut u)
            - log_density(d, &x, &case.mean_q, &lq, ldq, &mut diff, &mut u);
        sum += ratio;
        sum_sq += ratio * ratio;
    }
    let nf = n as f64;
    let mean = sum / nf;
    let var = (sum_sq - nf * mean * mean) / (nf - 1.0);
    let se = (var / nf).sqrt();
    println!(
        "monte carlo d={d}: analytic {analytic:.5}, sample mean {mean:.5} ± {se:.5} (N = {n}), \
         {:.2} standard errors",
        (mean - analytic) / se
    );
    // The check must be able to fail: the standard error has to be small
    // next to the KL itself (here below 1 %).
    assert!(
        se < 0.01 * analytic,
        "d={d}: standard error {se} too large for KL {analytic}"
    );
    assert!(
        (mean - analytic).abs() <= 4.0 * se,
        "d={d}: sample mean {mean} is {:.1} standard errors from the analytic KL {analytic}",
        (mean - analytic).abs() / se
    );
}

#[test]
fn monte_carlo_d2() {
    monte_carlo(2, 200_000, 2);
}

#[test]
fn monte_carlo_d5() {
    monte_carlo(5, 200_000, 5);
}

#[test]
fn monte_carlo_d16() {
    monte_carlo(16, 200_000, 16);
}
