//! Gradients of the diagonal KL and the Eq. 10 score: central finite
//! differences in f64 (the oracle's `diag` cases carry no gradients), and the
//! all-pairs form against the batch-of-pairs one.

#![allow(clippy::needless_range_loop)] // index loops over perturbed coordinates

use gaussian_kl::Error;
use gaussian_kl::diag::grad::{self, GradOut, Objective, Upstream};
use gaussian_kl::diag::{self, DiagBatch, Scale};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Data {
    n: usize,
    k: usize,
    mean: Vec<f64>,
    spread: Vec<f64>,
    scale: Scale,
}

impl Data {
    fn random(rng: &mut StdRng, n: usize, k: usize, scale: Scale) -> Self {
        let mean = (0..n * k).map(|_| rng.random_range(-1.5..1.5)).collect();
        let spread = (0..n * k)
            .map(|_| match scale {
                Scale::Var => rng.random_range(0.3..3.0),
                Scale::LogVar => rng.random_range(-1.2..1.1),
            })
            .collect();
        Self {
            n,
            k,
            mean,
            spread,
            scale,
        }
    }
    fn batch(&self) -> DiagBatch<'_, f64> {
        DiagBatch {
            n: self.n,
            k: self.k,
            mean: &self.mean,
            spread: &self.spread,
            scale: self.scale,
        }
    }
}

/// `L = Σ G_ij value_ij` over all pairs (pairwise) or `Σ g_i value(Q_i, D_i)`.
fn loss(obj: Objective, q: &Data, d: &Data, g: &[f64], all_pairs: bool) -> f64 {
    let mut v = vec![0.0; q.n * d.n];
    match obj {
        Objective::Kl => diag::pairwise_kl(q.batch(), d.batch(), &mut v).unwrap(),
        Objective::Eq10 => diag::pairwise_eq10(q.batch(), d.batch(), &mut v).unwrap(),
    }
    if all_pairs {
        v.iter().zip(g).map(|(a, b)| a * b).sum()
    } else {
        (0..q.n).map(|i| g[i] * v[i * d.n + i]).sum()
    }
}

/// Central differences with step `h = 1e-5 (1 + |x|)`: truncation
/// `O(h² L‴) ≈ 1e-9` and rounding `ε L / h ≈ 1e-10` on these O(1..10)
/// values; `1e-6 (1 + |grad|)` leaves a wide margin yet catches any wrong
/// term (they are all O(0.1) or larger).
fn check_fd(
    obj: Objective,
    q: &mut Data,
    d: &mut Data,
    g: &[f64],
    all_pairs: bool,
    got: [&[f64]; 4],
) {
    let fields: [(bool, bool); 4] = [(true, true), (true, false), (false, true), (false, false)];
    for (f, (is_q, is_mean)) in fields.into_iter().enumerate() {
        let len = if is_q { q.n * q.k } else { d.n * d.k };
        for e in 0..len {
            let x = {
                let data = if is_q { &mut *q } else { &mut *d };
                if is_mean {
                    data.mean[e]
                } else {
                    data.spread[e]
                }
            };
            let h = 1e-5 * (1.0 + x.abs());
            let mut at = |val: f64| {
                {
                    let data = if is_q { &mut *q } else { &mut *d };
                    if is_mean {
                        data.mean[e] = val
                    } else {
                        data.spread[e] = val
                    }
                }
                loss(obj, q, d, g, all_pairs)
            };
            let fd = (at(x + h) - at(x - h)) / (2.0 * h);
            at(x);
            let an = got[f][e];
            assert!(
                (fd - an).abs() <= 1e-6 * (1.0 + an.abs()),
                "{obj:?} scales ({:?},{:?}) all_pairs={all_pairs} field {f} entry {e}: fd {fd} vs {an}",
                q.scale,
                d.scale
            );
        }
    }
}

const SCALES: [(Scale, Scale); 4] = [
    (Scale::Var, Scale::Var),
    (Scale::LogVar, Scale::LogVar),
    (Scale::Var, Scale::LogVar),
    (Scale::LogVar, Scale::Var),
];

#[test]
fn pairs_backward_matches_finite_differences() {
    let mut rng = StdRng::seed_from_u64(21);
    for obj in [Objective::Kl, Objective::Eq10] {
        for (sq, sd) in SCALES {
            let (n, k) = (3, 4);
            let mut q = Data::random(&mut rng, n, k, sq);
            let mut d = Data::random(&mut rng, n, k, sd);
            let g: Vec<f64> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
            let mut out = vec![vec![f64::NAN; n * k]; 4];
            let [a, b, c, e] = &mut out[..] else {
                unreachable!()
            };
            grad::pairs_backward(
                obj,
                q.batch(),
                d.batch(),
                Upstream::PerPair(&g),
                GradOut { mean: a, spread: b },
                GradOut { mean: c, spread: e },
            )
            .unwrap();
            // the g-weighted loss uses only the diagonal pairs (i, i)
            let mut g_diag = vec![0.0; n * n];
            for i in 0..n {
                g_diag[i * n + i] = g[i];
            }
            check_fd(
                obj,
                &mut q,
                &mut d,
                &g_diag,
                true,
                [&out[0], &out[1], &out[2], &out[3]],
            );
            check_fd(
                obj,
                &mut q,
                &mut d,
                &g,
                false,
                [&out[0], &out[1], &out[2], &out[3]],
            );
        }
    }
}

#[test]
fn pairwise_backward_matches_finite_differences() {
    let mut rng = StdRng::seed_from_u64(22);
    for obj in [Objective::Kl, Objective::Eq10] {
        for (sq, sd) in SCALES {
            let (nq, nd, k) = (2, 3, 5);
            let mut q = Data::random(&mut rng, nq, k, sq);
            let mut d = Data::random(&mut rng, nd, k, sd);
            let g: Vec<f64> = (0..nq * nd).map(|_| rng.random_range(-2.0..2.0)).collect();
            let (mut a, mut b) = (vec![f64::NAN; nq * k], vec![f64::NAN; nq * k]);
            let (mut c, mut e) = (vec![f64::NAN; nd * k], vec![f64::NAN; nd * k]);
            grad::pairwise_backward(
                obj,
                q.batch(),
                d.batch(),
                &g,
                GradOut {
                    mean: &mut a,
                    spread: &mut b,
                },
                GradOut {
                    mean: &mut c,
                    spread: &mut e,
                },
            )
            .unwrap();
            check_fd(obj, &mut q, &mut d, &g, true, [&a, &b, &c, &e]);
        }
    }
}

/// A one-hot upstream matrix picks out exactly one pair's gradient, and a
/// scalar upstream equals a per-pair one with equal weights.
#[test]
fn pairwise_one_hot_equals_pairs_backward() {
    let mut rng = StdRng::seed_from_u64(23);
    let k = 6;
    let q = Data::random(&mut rng, 2, k, Scale::LogVar);
    let d = Data::random(&mut rng, 3, k, Scale::LogVar);
    for obj in [Objective::Kl, Objective::Eq10] {
        for i in 0..2 {
            for j in 0..3 {
                let mut g = vec![0.0; 6];
                g[i * 3 + j] = 1.5;
                let (mut a, mut b, mut c, mut e) = (
                    vec![0.0; 2 * k],
                    vec![0.0; 2 * k],
                    vec![0.0; 3 * k],
                    vec![0.0; 3 * k],
                );
                grad::pairwise_backward(
                    obj,
                    q.batch(),
                    d.batch(),
                    &g,
                    GradOut {
                        mean: &mut a,
                        spread: &mut b,
                    },
                    GradOut {
                        mean: &mut c,
                        spread: &mut e,
                    },
                )
                .unwrap();
                let qi = DiagBatch::log_var(1, k, &q.mean[i * k..][..k], &q.spread[i * k..][..k]);
                let dj = DiagBatch::log_var(1, k, &d.mean[j * k..][..k], &d.spread[j * k..][..k]);
                let (mut pa, mut pb, mut pc, mut pe) =
                    (vec![0.0; k], vec![0.0; k], vec![0.0; k], vec![0.0; k]);
                grad::pairs_backward(
                    obj,
                    qi,
                    dj,
                    Upstream::Scalar(1.5),
                    GradOut {
                        mean: &mut pa,
                        spread: &mut pb,
                    },
                    GradOut {
                        mean: &mut pc,
                        spread: &mut pe,
                    },
                )
                .unwrap();
                assert_eq!(&a[i * k..][..k], &pa[..]);
                assert_eq!(&b[i * k..][..k], &pb[..]);
                assert_eq!(&c[j * k..][..k], &pc[..]);
                assert_eq!(&e[j * k..][..k], &pe[..]);
                // untouched rows are zero
                assert!(a[(1 - i) * k..][..k].iter().all(|&x| x == 0.0));
                let (mut sa, mut sb, mut sc, mut se) =
                    (vec![0.0; k], vec![0.0; k], vec![0.0; k], vec![0.0; k]);
                grad::pairs_backward(
                    obj,
                    qi,
                    dj,
                    Upstream::PerPair(&[1.5]),
                    GradOut {
                        mean: &mut sa,
                        spread: &mut sb,
                    },
                    GradOut {
                        mean: &mut sc,
                        spread: &mut se,
                    },
                )
                .unwrap();
                assert_eq!((sa, sb, sc, se), (pa, pb, pc, pe));
            }
        }
    }
}

#[test]
fn grad_errors() {
    let m = [0.0f64; 4];
    let v = [1.0f64; 4];
    let q = DiagBatch::var(2, 2, &m, &v);
    let mut a = [0.0; 4];
    let mut b = [0.0; 4];
    let mut c = [0.0; 4];
    let mut e = [0.0; 3];
    let r = grad::pairs_backward(
        Objective::Kl,
        q,
        q,
        Upstream::Scalar(1.0),
        GradOut {
            mean: &mut a,
            spread: &mut b,
        },
        GradOut {
            mean: &mut c,
            spread: &mut e,
        },
    );
    assert_eq!(
        r,
        Err(Error::LengthMismatch {
            what: "grad_d.spread",
            expected: 4,
            found: 3
        })
    );
    let mut e = [0.0; 4];
    let r = grad::pairs_backward(
        Objective::Kl,
        q,
        q,
        Upstream::PerPair(&[1.0]),
        GradOut {
            mean: &mut a,
            spread: &mut b,
        },
        GradOut {
            mean: &mut c,
            spread: &mut e,
        },
    );
    assert_eq!(
        r,
        Err(Error::LengthMismatch {
            what: "upstream",
            expected: 2,
            found: 1
        })
    );
    let r = grad::pairs_backward(
        Objective::Eq10,
        q,
        DiagBatch::var(1, 2, &m[..2], &v[..2]),
        Upstream::Scalar(1.0),
        GradOut {
            mean: &mut a,
            spread: &mut b,
        },
        GradOut {
            mean: &mut c,
            spread: &mut e,
        },
    );
    assert_eq!(
        r,
        Err(Error::LengthMismatch {
            what: "documents (pairs)",
            expected: 2,
            found: 1
        })
    );
    let r = grad::pairwise_backward(
        Objective::Kl,
        q,
        DiagBatch::var(2, 2, &m, &[1.0, -1.0, 1.0, 1.0]),
        &[1.0; 4],
        GradOut {
            mean: &mut a,
            spread: &mut b,
        },
        GradOut {
            mean: &mut c,
            spread: &mut e,
        },
    );
    assert_eq!(
        r,
        Err(Error::NonPositiveVariance {
            what: "document spread",
            index: 1
        })
    );
    let r = grad::pairwise_backward(
        Objective::Kl,
        q,
        q,
        &[1.0; 3],
        GradOut {
            mean: &mut a,
            spread: &mut b,
        },
        GradOut {
            mean: &mut c,
            spread: &mut e,
        },
    );
    assert_eq!(
        r,
        Err(Error::LengthMismatch {
            what: "upstream",
            expected: 4,
            found: 3
        })
    );
}
