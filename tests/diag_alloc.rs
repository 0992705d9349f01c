//! The `no_std` diagonal kernels never allocate: a counting global allocator
//! (per thread, so that the harness's other threads do not interfere).

use gaussian_kl::diag::grad::{self, GradOut, Objective, Upstream};
use gaussian_kl::diag::{self, DiagBatch, Rep};

mod counting;

use counting::counted as allocations;

#[test]
fn diagonal_kernels_do_not_allocate() {
    let (nq, nd, k) = (3, 4, 5);
    let qm: Vec<f64> = (0..nq * k).map(|i| (i as f64).sin()).collect();
    let qv: Vec<f64> = (0..nq * k).map(|i| 1.0 + 0.1 * i as f64).collect();
    let dm: Vec<f64> = (0..nd * k).map(|i| (i as f64).cos()).collect();
    let dv: Vec<f64> = (0..nd * k).map(|i| 0.5 + 0.05 * i as f64).collect();
    let (q, d) = (
        DiagBatch::var(nq, k, &qm, &qv),
        DiagBatch::var(nd, k, &dm, &dv),
    );
    let mut out = vec![0.0; nq * nd];
    let mut qr = vec![0.0; nq * Rep::SeedFull.len(k)];
    let mut dr = vec![0.0; nd * Rep::SeedFull.len(k)];
    let mut g = [
        vec![0.0; nq * k],
        vec![0.0; nq * k],
        vec![0.0; nd * k],
        vec![0.0; nd * k],
    ];
    let up = vec![1.0; nq * nd];
    let (_, n) = allocations(|| {
        diag::kl(&qm[..k], &qv[..k], &dm[..k], &dv[..k]).unwrap();
        diag::kl_log_var(&qm[..k], &qv[..k], &dm[..k], &dv[..k]).unwrap();
        diag::kl_std_normal(&qm[..k], &qv[..k]).unwrap();
        diag::eq10_score(&qm[..k], &qv[..k], &dm[..k], &dv[..k]).unwrap();
        diag::pairwise_kl(q, d, &mut out).unwrap();
        diag::pairwise_eq10(q, d, &mut out).unwrap();
        diag::query_rep(Rep::SeedFull, q, &mut qr).unwrap();
        diag::doc_rep(Rep::SeedFull, d, &mut dr).unwrap();
        let [a, b, c, e] = &mut g;
        grad::pairwise_backward(
            Objective::Kl,
            q,
            d,
            &up,
            GradOut { mean: a, spread: b },
            GradOut { mean: c, spread: e },
        )
        .unwrap();
        let d3 = DiagBatch::var(nq, k, &dm[..nq * k], &dv[..nq * k]);
        grad::pairs_backward(
            Objective::Eq10,
            q,
            d3,
            Upstream::Scalar(2.0),
            GradOut { mean: a, spread: b },
            GradOut {
                mean: &mut c[..nq * k],
                spread: &mut e[..nq * k],
            },
        )
        .unwrap();
        // errors do not allocate either
        diag::kl(&qm[..k], &qv[..2], &dm[..k], &dv[..k]).unwrap_err();
    });
    assert_eq!(n, 0, "the diagonal kernels allocated {n} times");
    // the counter works
    let (_, m) = allocations(|| vec![1u8; 10]);
    assert_eq!(m, 1);
}
