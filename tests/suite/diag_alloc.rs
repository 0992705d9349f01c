//! The `no_std` diagonal kernels never allocate: a counting global allocator
//! (per thread, so that the harness's other threads do not interfere).

use gaussian_kl::diag::{self, Rep};
use gaussian_kl::{DiagGaussians, DiagGradMut, Grads, Mode};

use crate::counting::counted as allocations;

#[test]
fn diagonal_kernels_do_not_allocate() {
    let (np, nq, d) = (3, 4, 5);
    let pm: Vec<f64> = (0..np * d).map(|i| (i as f64).sin()).collect();
    let pv: Vec<f64> = (0..np * d).map(|i| 1.0 + 0.1 * i as f64).collect();
    let qm: Vec<f64> = (0..nq * d).map(|i| (i as f64).cos()).collect();
    let qv: Vec<f64> = (0..nq * d).map(|i| 0.5 + 0.05 * i as f64).collect();
    let mut out = vec![0.0; np * nq];
    let mut a = vec![0.0; np * Rep::WideKl.len(d)];
    let mut b = vec![0.0; nq * Rep::WideKl.len(d)];
    let mut g = [
        vec![0.0; np * d],
        vec![0.0; np * d],
        vec![0.0; nq * d],
        vec![0.0; nq * d],
    ];
    let up = vec![1.0; np * nq];
    let (_, n) = allocations(|| {
        let p = DiagGaussians::var(np, d, &pm, &pv).unwrap();
        let q = DiagGaussians::log_var(nq, d, &qm, &qv).unwrap();
        let (p0, q0) = (p.get(0).unwrap(), q.get(1).unwrap());
        diag::kl(&p0, &q0).unwrap();
        diag::eq10(&p0, &q0).unwrap();
        diag::kl_std_normal(&q0).unwrap();
        diag::kl_all_pairs(&p, &q, &mut out).unwrap();
        diag::eq10_all_pairs(&p, &q, &mut out).unwrap();
        diag::query_vectors(Rep::WideKl, &p, &mut a).unwrap();
        diag::doc_vectors(Rep::WideKl, &q, &mut b).unwrap();
        let [gpm, gps, gqm, gqs] = &mut g;
        let grads = Grads::new(
            DiagGradMut::new(&mut gpm[..], &mut gps[..]),
            DiagGradMut::new(&mut gqm[..], &mut gqs[..]).mode(Mode::Accumulate),
        );
        diag::kl_all_pairs_grad(&p, &q, &up, grads).unwrap();
        let grads = Grads::new(
            DiagGradMut::new(&mut gpm[..d], &mut gps[..d]),
            DiagGradMut::new(&mut gqm[..d], &mut gqs[..d]),
        );
        diag::eq10_grad(&p0, &q0, 2.0, grads).unwrap();
        diag::kl_std_normal_grad(&p0, 1.0, DiagGradMut::new(&mut gpm[..d], &mut gps[..d])).unwrap();
        // errors do not allocate either
        diag::kl_all_pairs(&p, &q, &mut out[..2]).unwrap_err();
        DiagGaussians::var(np, d, &pm, &qm).unwrap_err();
    });
    assert_eq!(n, 0, "the diagonal kernels allocated {n} times");
    // the counter works
    let (_, m) = allocations(|| vec![1u8; 10]);
    assert_eq!(m, 1);
}
