//! A VAE-sized batch held in ndarray (256 posteriors, d = 16): the KL
//! against the prior `N(0, I)` and its gradient, written into ndarray
//! outputs, twice: from packed Cholesky factors as an encoder emits them (an
//! `Array2`, through the SIMD batch layer), and from the same factors as
//! dense lower-triangular matrices in an `Array3` (through the strided
//! per-pair adapter). The arrays are borrowed, not copied.
//!
//!     cargo run --release --example ndarray_batch --features ndarray

use gaussian_kl::interop::ndarray as nd_kl;
use gaussian_kl::{Error, Exec, batch};
use ndarray::{Array1, Array2, Array3};

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

    // The same posteriors with dense factors, an `Array3` of shape (n, d, d):
    // the lower triangle with exp on the diagonal, zeros above.
    let dense = Array3::from_shape_fn((n, d, d), |(k, i, j)| {
        let raw = if j <= i {
            factors[[k, i * (i + 1) / 2 + j]]
        } else {
            0.0
        };
        if i == j { raw.exp() } else { raw }
    });
    let p3 = nd_kl::DenseGaussians::new(&means, &dense)?;
    let (mut kl3, mut g3_mean) = (Array1::<f32>::zeros(n), Array2::<f32>::zeros((n, d)));
    let mut g3_factor = Array3::<f32>::zeros((n, d, d));
    let grad3 = nd_kl::DenseGradMut::new(&p3, &mut g3_mean, &mut g3_factor)?;
    nd_kl::kl_dense_std_normal_grad(&p3, &upstream, &mut kl3, grad3)?;
    let max_diff = kl
        .iter()
        .zip(&kl3)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let max_kl = kl.iter().copied().fold(0.0f32, f32::max);
    // f32 rounding only: the dense path takes log(exp(raw)) for the packed
    // path's raw log diagonal.
    assert!(
        max_diff <= 64.0 * f32::EPSILON * max_kl,
        "dense vs packed: {max_diff}"
    );
    // ∂/∂μ does not depend on the factor's form.
    let g_diff = g_mean
        .iter()
        .zip(&g3_mean)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        g_diff <= 64.0 * f32::EPSILON,
        "dense vs packed mean gradient: {g_diff}"
    );

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
    println!(
        "dense (n, d, d) factors in an Array3: max |KL difference| {max_diff:.2e}, \
         |d/dL| = {:.5}",
        g3_factor.iter().map(|v| v * v).sum::<f32>().sqrt()
    );
    Ok(())
}
