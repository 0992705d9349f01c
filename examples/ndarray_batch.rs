//! A VAE-sized batch held in ndarray (256 posteriors, d = 16, packed
//! Cholesky factors as an encoder emits them): the KL against the prior
//! `N(0, I)` and its gradient, written into ndarray outputs. The arrays
//! are borrowed, not copied.
//!
//!     cargo run --release --example ndarray_batch --features ndarray

use gaussian_kl::interop::ndarray as nd_kl;
use gaussian_kl::{Error, Exec, batch};
use ndarray::{Array1, Array2};

fn main() -> Result<(), Error> {
    let (n, d) = (256, 16);
    let t = d * (d + 1) / 2;
    // Encoder outputs: means and raw packed factors (PyTorch `tril_indices`
    // order, log diagonal), a deterministic stand-in for a network.
    let means = Array2::from_shape_fn((n, d), |(k, i)| ((k * 7 + i * 3) % 11) as f32 * 0.05 - 0.25);
    let factors = Array2::from_shape_fn((n, t), |(k, j)| ((k * 5 + j) % 13) as f32 * 0.01 - 0.06);
    let p = nd_kl::gaussians(&means, &factors)?;

    let exec = Exec::new();
    let mut kl = Array1::<f32>::zeros(n);
    let mut work = vec![0.0; batch::kl_std_normal_scratch::<f32>(d, &exec)?];
    batch::kl_std_normal(&p, nd_kl::out_vector(&mut kl, n)?, &exec, &mut work)?;

    // The gradient of the mean KL over the batch: upstream 1/n per sample.
    let upstream = vec![1.0 / n as f32; n];
    let (mut g_mean, mut g_factor) = (Array2::<f32>::zeros((n, d)), Array2::<f32>::zeros((n, t)));
    let mut kl2 = Array1::<f32>::zeros(n);
    let mut work = vec![0.0; batch::kl_std_normal_grad_scratch::<f32>(d, &exec)?];
    let grad = nd_kl::grad_mut(&p, &mut g_mean, &mut g_factor)?;
    batch::kl_std_normal_grad(
        &p,
        &upstream,
        nd_kl::out_vector(&mut kl2, n)?,
        grad,
        &exec,
        &mut work,
    )?;
    assert_eq!(kl, kl2, "the fused pass gives the same KL");

    let norm = |a: &Array2<f32>| a.iter().map(|v| v * v).sum::<f32>().sqrt();
    println!("batch {n} x d = {d} (level {:?})", exec.resolved_level()?);
    println!(
        "KL(p || N(0, I)): mean {:.5}, min {:.5}, max {:.5}",
        kl.mean().unwrap_or(f32::NAN),
        kl.iter().copied().fold(f32::INFINITY, f32::min),
        kl.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    );
    println!(
        "gradient of the batch mean: |d/dmu| = {:.5}, |d/dL| = {:.5}",
        norm(&g_mean),
        norm(&g_factor)
    );
    Ok(())
}
