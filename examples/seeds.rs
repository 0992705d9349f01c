//! Reproduces the seeds that started gaussian-kl: seed 000 (full-rank KL from
//! packed Cholesky factors) with a timing table, and seed 004 (diagonal
//! Gaussians, the MRL Eq. 10 score and its dot-product forms) with the seed's
//! three sanity checks.
//!
//! Run: `cargo run --release --example seeds`

use std::hint::black_box;
use std::time::Instant;

use gaussian_kl::diag::{self, Rep};
use gaussian_kl::{DiagGaussians, Gaussian, MatRef, PackedTril, full};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Seed 000's shapes: 5 pairs of 3-dimensional full-rank Gaussians.
const D: usize = 3;
const BATCH: usize = 5;
const T: usize = D * (D + 1) / 2;

/// A standard normal draw (Box–Muller), as `torch.randn`.
fn randn(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn randn_vec<const N: usize>(rng: &mut StdRng) -> [f64; N] {
    core::array::from_fn(|_| randn(rng))
}

/// Median of `reps` timings of `f` run `iters` times, in ns per call.
fn time_ns(reps: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[reps / 2]
}

fn main() -> Result<(), gaussian_kl::Error> {
    let mut rng = StdRng::seed_from_u64(0);
    let mean1: [[f64; D]; BATCH] = core::array::from_fn(|_| randn_vec(&mut rng));
    let mean2: [[f64; D]; BATCH] = core::array::from_fn(|_| randn_vec(&mut rng));
    let raw1: [[f64; T]; BATCH] = core::array::from_fn(|_| randn_vec(&mut rng));
    let raw2: [[f64; T]; BATCH] = core::array::from_fn(|_| randn_vec(&mut rng));

    println!("# Seed 000: KL between full-rank Gaussians, d = {D}, batch = {BATCH}");
    println!("# packed raw Cholesky elements, torch.tril_indices order, exp on the diagonal\n");
    println!(
        "| pair | full::kl (packed) | full::kl (dense scale_tril) | full::kl_cov (Σ) | max rel. diff |"
    );
    println!("|---:|---:|---:|---:|---:|");
    let mut work = [0.0f64; full::kl_cov_scratch(D)];
    let mut worst = 0.0f64;
    for b in 0..BATCH {
        let (p, q) = (PackedTril::new(D, &raw1[b])?, PackedTril::new(D, &raw2[b])?);
        let kl = full::kl(
            &Gaussian::new(&mean1[b], p)?,
            &Gaussian::new(&mean2[b], q)?,
            &mut work,
        )?;
        // The seed's own path: form the dense scale_tril, then solve.
        let (mut l1, mut l2) = ([0.0; D * D], [0.0; D * D]);
        p.expand_dense(&mut l1)?;
        q.expand_dense(&mut l2)?;
        let dense_p = Gaussian::new(&mean1[b], MatRef::row_major(D, &l1)?)?;
        let dense_q = Gaussian::new(&mean2[b], MatRef::row_major(D, &l2)?)?;
        let kl_dense = full::kl(&dense_p, &dense_q, &mut work)?;
        // And from covariance matrices Σ = L Lᵀ, factored again by the crate.
        let (s1, s2) = (gram(&l1), gram(&l2));
        let (c1, c2) = (MatRef::row_major(D, &s1)?, MatRef::row_major(D, &s2)?);
        let kl_cov = full::kl_cov(&mean1[b], c1, &mean2[b], c2, &mut work)?;
        let diff = ((kl - kl_dense).abs().max((kl - kl_cov).abs())) / kl.abs();
        worst = worst.max(diff);
        println!("| {b} | {kl:.15} | {kl_dense:.15} | {kl_cov:.15} | {diff:.1e} |");
    }
    println!("\nall three paths agree to {worst:.1e} relative (seed: torch.allclose, rtol 1e-5)\n");

    timing_table(&mean1, &raw1, &mean2, &raw2)?;
    seed004()
}

/// `L Lᵀ` of a dense row-major `D × D` matrix.
fn gram(l: &[f64; D * D]) -> [f64; D * D] {
    core::array::from_fn(|ij| {
        (0..D)
            .map(|k| l[(ij / D) * D + k] * l[(ij % D) * D + k])
            .sum()
    })
}

fn timing_table(
    mean1: &[[f64; D]; BATCH],
    raw1: &[[f64; T]; BATCH],
    mean2: &[[f64; D]; BATCH],
    raw2: &[[f64; T]; BATCH],
) -> Result<(), gaussian_kl::Error> {
    let m1f: Vec<[f32; D]> = mean1.iter().map(|m| m.map(|x| x as f32)).collect();
    let m2f: Vec<[f32; D]> = mean2.iter().map(|m| m.map(|x| x as f32)).collect();
    let r1f: Vec<[f32; T]> = raw1.iter().map(|m| m.map(|x| x as f32)).collect();
    let r2f: Vec<[f32; T]> = raw2.iter().map(|m| m.map(|x| x as f32)).collect();
    let (reps, iters) = (11, 200_000);
    let mut rows: Vec<(&str, f64)> = Vec::new();

    let mut w64 = [0.0f64; full::kl_scratch(D)];
    rows.push((
        "full::kl, f64 (runtime d, workspace)",
        time_ns(reps, iters, || {
            for b in 0..BATCH {
                let p = Gaussian::packed(black_box(&mean1[b]), black_box(&raw1[b]));
                let q = Gaussian::packed(black_box(&mean2[b]), black_box(&raw2[b]));
                if let (Ok(p), Ok(q)) = (p, q) {
                    black_box(full::kl(&p, &q, &mut w64).ok());
                }
            }
        }) / BATCH as f64,
    ));
    let mut w32 = [0.0f32; full::kl_scratch(D)];
    rows.push((
        "full::kl, f32 (runtime d, workspace)",
        time_ns(reps, iters, || {
            for b in 0..BATCH {
                let p = Gaussian::packed(black_box(&m1f[b]), black_box(&r1f[b]));
                let q = Gaussian::packed(black_box(&m2f[b]), black_box(&r2f[b]));
                if let (Ok(p), Ok(q)) = (p, q) {
                    black_box(full::kl(&p, &q, &mut w32).ok());
                }
            }
        }) / BATCH as f64,
    ));
    rows.push((
        "full::kl_packed_fixed::<f64, 3> (stack)",
        time_ns(reps, iters, || {
            for b in 0..BATCH {
                let p = PackedTril::new(D, black_box(&raw1[b]));
                let q = PackedTril::new(D, black_box(&raw2[b]));
                if let (Ok(p), Ok(q)) = (p, q) {
                    let m1 = black_box(&mean1[b]);
                    let kl = full::kl_packed_fixed::<f64, D>(m1, p, black_box(&mean2[b]), q);
                    black_box(kl.ok());
                }
            }
        }) / BATCH as f64,
    ));
    rows.push((
        "full::kl_std_normal, f64 (VAE prior)",
        time_ns(reps, iters, || {
            for b in 0..BATCH {
                if let Ok(p) = Gaussian::packed(black_box(&mean1[b]), black_box(&raw1[b])) {
                    black_box(full::kl_std_normal(&p).ok());
                }
            }
        }) / BATCH as f64,
    ));

    println!("## Timing, single thread, median of {reps} runs (ns per pair)\n");
    println!("| path | ns / pair | pairs / s | vs seed's PyTorch rewrite |");
    println!("|---|---:|---:|---:|");
    let seed_ours = 46.2e3 / BATCH as f64;
    for (name, ns) in &rows {
        println!(
            "| {name} | {ns:.1} | {:.2e} | {:.0}× |",
            1e9 / ns,
            seed_ours / ns
        );
    }
    println!(
        "| seed: PyTorch kl_divergence (quoted) | {:.0} | {:.2e} | |",
        164e3 / BATCH as f64,
        BATCH as f64 / 164e-6
    );
    println!(
        "| seed: PyTorch rewrite (quoted) | {seed_ours:.0} | {:.2e} | 1× |",
        BATCH as f64 / 46.2e-6
    );
    println!(
        "\n(The seed's figures are per call of 5 pairs, 164 µs and 46.2 µs, quoted from the seed, not measured here.)"
    );
    Ok(())
}

/// Seed 004: two diagonal-Gaussian queries, three documents, k = 5 (seeded,
/// drawn as the seed draws them: query means and variances uniform in [0, 1),
/// document means and variances `exp` of uniform), in f32 as PyTorch's default.
fn seed004() -> Result<(), gaussian_kl::Error> {
    println!("\n# Seed 004: diagonal Gaussians, MRL retrieval, 2 queries x 3 documents, k = 5\n");
    let (nq, nd, k) = (2usize, 3usize, 5usize);
    let mut rng = StdRng::seed_from_u64(4);
    let mut uniform = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random::<f32>()).collect() };
    let qm = uniform(nq * k);
    let qv = uniform(nq * k);
    let dm: Vec<f32> = uniform(nd * k).iter().map(|x| x.exp()).collect();
    let dv: Vec<f32> = uniform(nd * k).iter().map(|x| x.exp()).collect();
    let queries = DiagGaussians::var(nq, k, &qm, &qv)?;
    let docs = DiagGaussians::var(nd, k, &dm, &dv)?;
    let show = |title: &str, m: &[f32]| {
        println!("{title}:");
        for row in m.chunks(nd) {
            let cells: Vec<String> = row.iter().map(|x| format!("{x:9.4}")).collect();
            println!("  [{}]", cells.join(", "));
        }
    };
    let allclose = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-8 + 1e-5 * y.abs())
    };

    // Ground truth, the formal definition: the full-rank kernel on the
    // Cholesky factors diag(σ) (what MultivariateNormal does).
    let mut formal = vec![0.0f32; nq * nd];
    let mut work = vec![0.0f32; full::kl_scratch(k)];
    for i in 0..nq {
        for j in 0..nd {
            let mut lq = vec![0.0f32; k * k];
            let mut ld = vec![0.0f32; k * k];
            for p in 0..k {
                lq[p * k + p] = qv[i * k + p].sqrt();
                ld[p * k + p] = dv[j * k + p].sqrt();
            }
            let q = Gaussian::new(&qm[i * k..][..k], MatRef::row_major(k, &lq)?)?;
            let d = Gaussian::new(&dm[j * k..][..k], MatRef::row_major(k, &ld)?)?;
            formal[i * nd + j] = full::kl(&q, &d, &mut work)?;
        }
    }
    show(
        "Formal KL(Q_i || D_j) (full-rank kernel on diagonal factors)",
        &formal,
    );

    // The unsimplified Eq. 10 (the diagonal kernel) and the simplified score.
    let mut kl = vec![0.0f32; nq * nd];
    let mut eq10 = vec![0.0f32; nq * nd];
    diag::kl_all_pairs(&queries, &docs, &mut kl)?;
    diag::eq10_all_pairs(&queries, &docs, &mut eq10)?;
    show("diag::kl_all_pairs", &kl);
    let neg: Vec<f32> = kl.iter().map(|x| -x).collect();
    show("The seed's sign: -KL (larger is better)", &neg);
    show(
        "Eq. 10 score, constants removed (diag::eq10_all_pairs)",
        &eq10,
    );

    // Dot products of the representations: q . d for every rep.
    let mut dots = Vec::new();
    for rep in [Rep::Wide, Rep::WideKl, Rep::Compact, Rep::CompactKl] {
        let n = rep.len(k);
        let mut q = vec![0.0f32; nq * n];
        let mut d = vec![0.0f32; nd * n];
        diag::query_vectors(rep, &queries, &mut q)?;
        diag::doc_vectors(rep, &docs, &mut d)?;
        let mut m = vec![0.0f32; nq * nd];
        for i in 0..nq {
            for j in 0..nd {
                let dot: f32 = q[i * n..][..n]
                    .iter()
                    .zip(&d[j * n..][..n])
                    .map(|(a, b)| a * b)
                    .sum();
                m[i * nd + j] = if rep.is_kl() {
                    diag::kl_from_dot(dot, k)
                } else {
                    dot
                };
            }
        }
        let what = if rep.is_kl() {
            "KL = -(q'.d' + k)/2"
        } else {
            "q.d"
        };
        show(&format!("{rep:?} ({} numbers): {what}", n), &m);
        dots.push(m);
    }

    println!(
        "Formal definition of KL div. matches unsimplified version of Eq.10: {}",
        allclose(&kl, &formal)
    );
    println!(
        "Simplified version of Eq. 10 matches dot product formulation: {} (3k+1 layout), {} (compact)",
        allclose(&dots[0], &eq10),
        allclose(&dots[2], &eq10)
    );
    println!(
        "Formal definition of KL div. matches dot product formulation including constants: {} (3k+1 layout), {} (compact)",
        allclose(&dots[1], &formal),
        allclose(&dots[3], &formal)
    );
    Ok(())
}
