//! Posterior against prior for a handful of `Matrix3` Gaussians held in
//! nalgebra, with no copy into the crate's layout:
//!
//!     cargo run --example nalgebra --features nalgebra

use gaussian_kl::interop::nalgebra as na_kl;
use gaussian_kl::{Error, full};
use nalgebra::{Matrix3, Vector3};

fn main() -> Result<(), Error> {
    // Posteriors N(μ_k, Σ_k), Σ_k = L_k L_kᵀ, as a user holds them: a mean
    // vector and a covariance factored by nalgebra's Cholesky.
    let posteriors: Vec<(Vector3<f64>, Matrix3<f64>)> = (0..5)
        .map(|k| {
            let s = 0.2 * k as f64;
            let mean = Vector3::new(s, -0.5 * s, 0.1);
            let cov = Matrix3::new(
                1.0 + s,
                0.3,
                0.1, //
                0.3,
                0.8,
                0.2 * s, //
                0.1,
                0.2 * s,
                0.5 + s,
            );
            (mean, cov)
        })
        .collect();
    // A second Gaussian to compare with: a broader prior N(0, 2 I), given
    // by its Cholesky factor √2 I.
    let q_mean = Vector3::zeros();
    let q_factor = Matrix3::identity() * 2f64.sqrt();
    let q = na_kl::gaussian(&q_mean, &q_factor)?;
    let mut work = [0.0; full::kl_scratch(3)];
    println!(" k   KL(p_k ‖ N(0, I))   KL(p_k ‖ N(0, 2I))");
    for (k, (mean, cov)) in posteriors.iter().enumerate() {
        let Some(chol) = cov.cholesky() else {
            println!("{k:2}   not positive definite");
            continue;
        };
        // Borrows the factor in place (only its lower triangle is read).
        let p = na_kl::cholesky_gaussian(mean, &chol)?;
        let prior = full::kl_std_normal(&p)?;
        let broad = full::kl(&p, &q, &mut work)?;
        println!("{k:2}   {prior:17.6}   {broad:18.6}");
    }
    Ok(())
}
