//! Seed 004 reproduced with the public API: two diagonal-Gaussian queries and
//! three documents in k = 5 dimensions (seeded, drawn as the seed draws them:
//! query means and variances uniform in [0, 1), document means and variances
//! `exp` of uniform), in f32 as PyTorch's default.
//!
//! Prints the KL matrix (and the seed's `−KL`), the Eq. 10 score, the
//! dot-product forms (the seed's `3k+1` / `3k+2` layouts and the compact
//! `2k+1` / `2k+2` ones), and the seed's three sanity checks with
//! `torch.allclose` tolerances (`|a − b| ≤ 1e-8 + 1e-5 |b|`).
//!
//! Run: `cargo run --example seed004_part`

use gaussian_kl::diag::{self, DiagBatch, Rep};
use gaussian_kl::full;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn main() -> Result<(), gaussian_kl::Error> {
    let (nq, nd, k) = (2usize, 3usize, 5usize);
    let mut rng = StdRng::seed_from_u64(4);
    let mut uniform = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random::<f32>()).collect() };
    let qm = uniform(nq * k);
    let qv = uniform(nq * k);
    let dm: Vec<f32> = uniform(nd * k).iter().map(|x| x.exp()).collect();
    let dv: Vec<f32> = uniform(nd * k).iter().map(|x| x.exp()).collect();
    let queries = DiagBatch::var(nq, k, &qm, &qv);
    let docs = DiagBatch::var(nd, k, &dm, &dv);
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
    let mut work = vec![0.0f32; full::workspace_len(k)];
    for i in 0..nq {
        for j in 0..nd {
            let mut lq = vec![0.0f32; k * k];
            let mut ld = vec![0.0f32; k * k];
            for p in 0..k {
                lq[p * k + p] = qv[i * k + p].sqrt();
                ld[p * k + p] = dv[j * k + p].sqrt();
            }
            formal[i * nd + j] =
                full::kl_dense(&qm[i * k..][..k], &lq, &dm[j * k..][..k], &ld, &mut work)?;
        }
    }
    show(
        "Formal KL(Q_i || D_j) (full-rank kernel on diagonal factors)",
        &formal,
    );

    // The unsimplified Eq. 10 (the diagonal kernel) and the simplified score.
    let mut kl = vec![0.0f32; nq * nd];
    let mut eq10 = vec![0.0f32; nq * nd];
    diag::pairwise_kl(queries, docs, &mut kl)?;
    diag::pairwise_eq10(queries, docs, &mut eq10)?;
    show("diag::pairwise_kl", &kl);
    let neg: Vec<f32> = kl.iter().map(|x| -x).collect();
    show("The seed's sign: -KL (larger is better)", &neg);
    show(
        "Eq. 10 score, constants removed (diag::pairwise_eq10)",
        &eq10,
    );

    // Dot products of the representations: q . d for every rep.
    let mut dots = Vec::new();
    for rep in [Rep::Seed, Rep::SeedFull, Rep::Compact, Rep::CompactFull] {
        let n = rep.len(k);
        let mut q = vec![0.0f32; nq * n];
        let mut d = vec![0.0f32; nd * n];
        diag::query_rep(rep, queries, &mut q)?;
        diag::doc_rep(rep, docs, &mut d)?;
        let mut m = vec![0.0f32; nq * nd];
        for i in 0..nq {
            for j in 0..nd {
                let dot: f32 = q[i * n..][..n]
                    .iter()
                    .zip(&d[j * n..][..n])
                    .map(|(a, b)| a * b)
                    .sum();
                m[i * nd + j] = if rep.is_full() {
                    diag::kl_from_dot(dot, k)
                } else {
                    dot
                };
            }
        }
        let what = if rep.is_full() {
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
        "Simplified version of Eq. 10 matches dot product formulation: {} (seed layout), {} (compact)",
        allclose(&dots[0], &eq10),
        allclose(&dots[2], &eq10)
    );
    println!(
        "Formal definition of KL div. matches dot product formulation including constants: {} (seed layout), {} (compact)",
        allclose(&dots[1], &formal),
        allclose(&dots[3], &formal)
    );
    Ok(())
}
