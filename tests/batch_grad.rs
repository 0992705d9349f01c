//! The batched gradient layer: the lockstep SIMD kernel at every level the
//! host has against a loop over the single-pair kernel `full::kl_grad`
//! (zip with every broadcast mix, all pairs; f32 and f64; every packed
//! form), the scalar kernel bit-identical to that loop, shape errors, and no
//! allocation.
//!
//! Tolerance of the SIMD kernel, per output entry:
//! `|ĝ − g| ≤ 64 (d+1) eps_T · Σ_b |u_b| mag_b`, summed over the pairs `b`
//! that add into the entry, `mag_b` the largest entry of pair `b`'s plain
//! gradient. Both kernels run the same algorithm; they differ only by the
//! rounding of fused multiply-adds, of `1 / L_qᵢᵢ` multiplications instead
//! of divisions and of `exp(raw_p − raw_q)`, each a relative `O(eps)` change
//! amplified by `O(d)` accumulation and the conditioning of `L_q` (here
//! `κ ≤ 4`: diagonals `e^{±0.4}`, off-diagonals `≤ 1/√d`). The KL:
//! `|KL̂ − KL| ≤ 64 (d+1) eps_T (|KL| + 2d)`.
#![cfg(feature = "std")]

use gaussian_kl::batch::{Kernel, Options};
use gaussian_kl::batch_grad::{self, BatchGrad, GaussianBatch};
use gaussian_kl::full::{self, KlGrad};
use gaussian_kl::simd::{Level, SimdReal};
use gaussian_kl::{Diagonal, Error, Layout, PackedTril, Real};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FORMS: [(Layout, Diagonal); 4] = [
    (Layout::RowMajor, Diagonal::Log),
    (Layout::ColMajor, Diagonal::Plain),
    (Layout::DiagFirst, Diagonal::Log),
    (Layout::RowMajor, Diagonal::Plain),
];

fn tri(d: usize) -> usize {
    d * (d + 1) / 2
}

/// `n` random Gaussians in `form`: means in `[−1, 1)`, diagonals `e^{±0.4}`
/// (raw log values or plain), off-diagonals `≤ 1/√d`.
fn gaussians(
    rng: &mut StdRng,
    d: usize,
    n: usize,
    form: (Layout, Diagonal),
) -> (Vec<f64>, Vec<f64>) {
    let s = 1.0 / (d as f64).sqrt();
    let means = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut factors = vec![0.0; n * tri(d)];
    for f in factors.chunks_exact_mut(tri(d)) {
        for i in 0..d {
            for j in 0..=i {
                f[form.0.index(d, i, j)] = if i == j {
                    let raw: f64 = rng.random_range(-0.4..0.4);
                    if form.1 == Diagonal::Log {
                        raw
                    } else {
                        raw.exp()
                    }
                } else {
                    s * rng.random_range(-1.0..1.0)
                };
            }
        }
    }
    (means, factors)
}

fn conv<T: Real>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

/// One batched call's outputs: KL values, then the four gradients.
#[derive(Clone, Debug, PartialEq)]
struct Out<T> {
    kl: Vec<T>,
    grads: [Vec<T>; 4],
}

/// The inputs of one call, in `T`.
struct Case<T> {
    d: usize,
    form: (Layout, Diagonal),
    mp: Vec<T>,
    lp: Vec<T>,
    mq: Vec<T>,
    lq: Vec<T>,
    upstream: Vec<T>,
}

impl<T: SimdReal> Case<T> {
    fn batch<'a>(&self, m: &'a [T], l: &'a [T]) -> GaussianBatch<'a, T> {
        GaussianBatch::new(m, l)
            .layout(self.form.0)
            .diagonal(self.form.1)
    }

    fn tril<'a>(&self, data: &'a [T]) -> PackedTril<'a, T> {
        PackedTril {
            d: self.d,
            data,
            layout: self.form.0,
            diagonal: self.form.1,
        }
    }

    /// The batched call (`all` = all pairs), `kl_len` outputs.
    fn run(&self, opts: Options, all: bool, kl_len: usize) -> Out<T> {
        let mut kl = vec![T::NAN; kl_len];
        let mut g = [
            vec![T::NAN; self.mp.len()],
            vec![T::NAN; self.lp.len()],
            vec![T::NAN; self.mq.len()],
            vec![T::NAN; self.lq.len()],
        ];
        let mut work = vec![T::NAN; batch_grad::workspace_len(self.d)];
        let [g1, g2, g3, g4] = &mut g;
        let grad = BatchGrad {
            means_p: g1,
            factors_p: g2,
            means_q: g3,
            factors_q: g4,
        };
        let (p, q) = (
            self.batch(&self.mp, &self.lp),
            self.batch(&self.mq, &self.lq),
        );
        let r = if all {
            opts.kl_grad_all_pairs(self.d, p, q, &self.upstream, &mut kl, grad, &mut work)
        } else {
            opts.kl_grad_packed(self.d, p, q, &self.upstream, &mut kl, grad, &mut work)
        };
        r.unwrap();
        Out { kl, grads: g }
    }

    /// The loop over `full::kl_grad`, pair `k` = `(ip, iq)`, each pair's
    /// gradients added into its rows in pair order; also returns, per
    /// output entry, `Σ_b |u_b| mag_b` (see the module docs).
    fn looped(&self, pairs: &[(usize, usize)]) -> (Out<T>, [Vec<f64>; 4]) {
        let (d, t) = (self.d, tri(self.d));
        let mut out = Out {
            kl: vec![],
            grads: [
                vec![T::ZERO; self.mp.len()],
                vec![T::ZERO; self.lp.len()],
                vec![T::ZERO; self.mq.len()],
                vec![T::ZERO; self.lq.len()],
            ],
        };
        let mut scale = out.grads.clone().map(|g| vec![0.0; g.len()]);
        let mut work = vec![T::ZERO; full::grad_workspace_len(d)];
        for (b, &(ip, iq)) in pairs.iter().enumerate() {
            let u = self.upstream[if self.upstream.len() == 1 { 0 } else { b }];
            let mut g = [
                vec![T::ZERO; d],
                vec![T::ZERO; t],
                vec![T::ZERO; d],
                vec![T::ZERO; t],
            ];
            let [g1, g2, g3, g4] = &mut g;
            let kl = full::kl_grad(
                &self.mp[ip * d..][..d],
                self.tril(&self.lp[ip * t..][..t]),
                &self.mq[iq * d..][..d],
                self.tril(&self.lq[iq * t..][..t]),
                u,
                KlGrad::new(g1, g2, g3, g4),
                &mut work,
            )
            .unwrap();
            out.kl.push(kl);
            let mag = g
                .iter()
                .flatten()
                .fold(0.0f64, |m, x| m.max(x.to_f64().abs()));
            for (k, (row, w)) in [(ip, d), (ip, t), (iq, d), (iq, t)].into_iter().enumerate() {
                for (i, v) in g[k].iter().enumerate() {
                    out.grads[k][row * w + i] += *v;
                    scale[k][row * w + i] += mag;
                }
            }
        }
        (out, scale)
    }
}

/// Asserts the SIMD output against the loop within the module's tolerance.
fn assert_close<T: SimdReal>(
    got: &Out<T>,
    want: &Out<T>,
    scale: &[Vec<f64>; 4],
    d: usize,
    what: &str,
) {
    if let Err(e) = check_close(got, want, scale, d) {
        panic!("{what}: {e}");
    }
}

/// The first entry of `got` farther from `want` than the tolerance, if any.
fn check_close<T: SimdReal>(
    got: &Out<T>,
    want: &Out<T>,
    scale: &[Vec<f64>; 4],
    d: usize,
) -> Result<(), String> {
    let c = 64.0 * (d as f64 + 1.0) * T::EPSILON.to_f64();
    for (b, (x, y)) in got.kl.iter().zip(&want.kl).enumerate() {
        let (x, y) = (x.to_f64(), y.to_f64());
        let tol = c * (y.abs() + 2.0 * d as f64);
        let close = (x - y).abs() <= tol; // false for NaN
        if !close {
            return Err(format!("kl[{b}] {x} vs {y} (tol {tol:e})"));
        }
    }
    for (k, scale) in scale.iter().enumerate() {
        for (i, (x, y)) in got.grads[k].iter().zip(&want.grads[k]).enumerate() {
            let (x, y) = (x.to_f64(), y.to_f64());
            let tol = c * scale[i];
            let close = (x - y).abs() <= tol;
            if !close {
                return Err(format!("gradient {k}[{i}] {x} vs {y} (tol {tol:e})"));
            }
        }
    }
    Ok(())
}

fn levels() -> Vec<Level> {
    Level::all()
        .iter()
        .copied()
        .filter(|l| l.is_available())
        .collect()
}

fn make<T: SimdReal>(
    rng: &mut StdRng,
    d: usize,
    form: (Layout, Diagonal),
    np: usize,
    nq: usize,
    n_up: usize,
) -> Case<T> {
    let (mp, lp) = gaussians(rng, d, np, form);
    let (mq, lq) = gaussians(rng, d, nq, form);
    let upstream: Vec<f64> = (0..n_up).map(|_| rng.random_range(-2.0..2.0)).collect();
    Case {
        d,
        form,
        mp: conv(&mp),
        lp: conv(&lp),
        mq: conv(&mq),
        lq: conv(&lq),
        upstream: conv(&upstream),
    }
}

/// Zip with every broadcast mix: every level within tolerance of the loop,
/// the scalar kernel bit-identical to it.
fn zip_levels<T: SimdReal>(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    // 21 pairs: full and partial blocks at 2, 4, 8 and 16 lanes.
    let n = 21;
    for d in [1, 2, 3, 5, 8, 13, 16, 17, 24] {
        for form in FORMS {
            for (np, nq) in [(n, n), (n, 1), (1, n)] {
                for n_up in [1, n] {
                    let case = make::<T>(&mut rng, d, form, np, nq, n_up);
                    let pairs: Vec<_> = (0..n).map(|b| (b.min(np - 1), b.min(nq - 1))).collect();
                    let (want, scale) = case.looped(&pairs);
                    let scalar = case.run(Options::new().kernel(Kernel::Scalar), false, n);
                    assert_eq!(scalar, want, "scalar kernel, d={d} {form:?} {np}×{nq}");
                    for level in levels() {
                        let opts = Options::new().level(level).unwrap();
                        let got = case.run(opts, false, n);
                        let what = format!("{level:?} d={d} {form:?} {np}×{nq} up {n_up}");
                        assert_close(&got, &want, &scale, d, &what);
                    }
                }
            }
        }
    }
}

#[test]
fn zip_every_level_matches_the_loop_f64() {
    zip_levels::<f64>(1);
}

#[test]
fn zip_every_level_matches_the_loop_f32() {
    zip_levels::<f32>(2);
}

/// All pairs: every level within tolerance of the loop over `(i, j)`
/// row-major, the scalar kernel bit-identical to it.
fn all_pairs_levels<T: SimdReal>(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for d in [1, 3, 6, 16, 19] {
        for form in FORMS {
            for (np, nq) in [(1, 1), (3, 7), (5, 4), (1, 18)] {
                for n_up in [1, np * nq] {
                    let case = make::<T>(&mut rng, d, form, np, nq, n_up);
                    let pairs: Vec<_> =
                        (0..np).flat_map(|i| (0..nq).map(move |j| (i, j))).collect();
                    let (want, scale) = case.looped(&pairs);
                    let scalar = case.run(Options::new().kernel(Kernel::Scalar), true, np * nq);
                    assert_eq!(scalar, want, "scalar kernel, d={d} {form:?} {np}×{nq}");
                    for level in levels() {
                        let opts = Options::new().level(level).unwrap();
                        let got = case.run(opts, true, np * nq);
                        let what = format!("{level:?} d={d} {form:?} {np}×{nq} up {n_up}");
                        assert_close(&got, &want, &scale, d, &what);
                    }
                }
            }
        }
    }
}

#[test]
fn all_pairs_every_level_matches_the_loop_f64() {
    all_pairs_levels::<f64>(3);
}

#[test]
fn all_pairs_every_level_matches_the_loop_f32() {
    all_pairs_levels::<f32>(4);
}

/// The SIMD kernel's result for a pair does not depend on the batch around
/// it: pair `b` of a batch equals the same pair computed alone, bit for bit.
#[test]
fn a_pair_does_not_depend_on_its_batch() {
    let mut rng = StdRng::seed_from_u64(5);
    for d in [2, 7, 16, 20] {
        let n = 19;
        let case = make::<f32>(&mut rng, d, FORMS[0], n, n, n);
        let batch = case.run(Options::new(), false, n);
        let t = tri(d);
        for b in [0, 7, 16, 18] {
            let one = Case {
                d,
                form: case.form,
                mp: case.mp[b * d..][..d].to_vec(),
                lp: case.lp[b * t..][..t].to_vec(),
                mq: case.mq[b * d..][..d].to_vec(),
                lq: case.lq[b * t..][..t].to_vec(),
                upstream: vec![case.upstream[b]],
            };
            let alone = one.run(Options::new(), false, 1);
            assert_eq!(alone.kl[0].to_bits(), batch.kl[b].to_bits(), "d={d} b={b}");
            assert_eq!(
                alone.grads[1][..],
                batch.grads[1][b * t..][..t],
                "d={d} b={b}"
            );
            assert_eq!(
                alone.grads[2][..],
                batch.grads[2][b * d..][..d],
                "d={d} b={b}"
            );
        }
    }
}

/// A wrong gradient would be caught: corrupting one entry of the loop's
/// output makes the comparison fail.
#[test]
fn the_tolerance_catches_a_wrong_entry() {
    let mut rng = StdRng::seed_from_u64(6);
    let case = make::<f64>(&mut rng, 4, FORMS[0], 9, 1, 9);
    let pairs: Vec<_> = (0..9).map(|b| (b, 0)).collect();
    let (mut want, scale) = case.looped(&pairs);
    want.grads[3][2] *= 1.0 + 1e-9;
    let got = case.run(Options::new(), false, 9);
    assert!(check_close(&got, &want, &scale, 4).is_err());
    // Uncorrupted, the same comparison passes.
    let (want, scale) = case.looped(&pairs);
    assert_eq!(check_close(&got, &want, &scale, 4), Ok(()));
}

#[test]
fn all_pairs_shape_errors() {
    let d = 2;
    let (m, l) = (vec![0.0f64; 6], vec![0.0f64; 9]);
    let mut work = vec![0.0; batch_grad::workspace_len(d)];
    let mut g = [vec![0.0; 6], vec![0.0; 9], vec![0.0; 6], vec![0.0; 9]];
    let mut call = |pm: &[f64], pl: &[f64], up: &[f64], kl_len: usize| {
        let mut kl = vec![0.0; kl_len];
        let [g1, g2, g3, g4] = &mut g;
        batch_grad::kl_grad_all_pairs(
            d,
            GaussianBatch::new(pm, pl),
            GaussianBatch::new(&m, &l),
            up,
            &mut kl,
            BatchGrad {
                means_p: &mut g1[..pm.len()],
                factors_p: &mut g2[..pl.len()],
                means_q: g3,
                factors_q: g4,
            },
            &mut work,
        )
    };
    let lm = |what, expected, found| {
        Err(Error::LengthMismatch {
            what,
            expected,
            found,
        })
    };
    assert_eq!(call(&m, &l, &[1.0], 9), Ok(()));
    assert_eq!(call(&m[..2], &l[..3], &[1.0; 3], 3), Ok(()));
    assert_eq!(call(&m, &l, &[1.0], 8), lm("kl", 9, 8));
    assert_eq!(call(&m[..5], &l, &[1.0], 9), lm("p.means", 4, 5));
    assert_eq!(call(&m, &l[..6], &[1.0], 9), lm("p.factors", 9, 6));
    assert_eq!(call(&m, &l, &[1.0; 2], 9), lm("upstream", 9, 2));
    let plain = [1.0, 0.5, -1.0];
    assert_eq!(
        batch_grad::kl_grad_all_pairs(
            1,
            GaussianBatch::new(&[0.0, 1.0, 2.0], &plain).diagonal(Diagonal::Plain),
            GaussianBatch::new(&[0.0], &[0.0]),
            &[1.0],
            &mut [0.0; 3],
            BatchGrad {
                means_p: &mut [0.0; 3],
                factors_p: &mut [0.0; 3],
                means_q: &mut [0.0; 1],
                factors_q: &mut [0.0; 1],
            },
            &mut work,
        ),
        Err(Error::NonPositiveDiagonal {
            what: "p.factors",
            index: 2
        })
    );
}

/// NaN and infinite inputs propagate into the pairs they touch and nowhere
/// else (the other lanes of the block stay finite).
#[test]
fn nan_stays_in_its_lane() {
    let mut rng = StdRng::seed_from_u64(7);
    let (d, n) = (3, 16);
    let mut case = make::<f32>(&mut rng, d, FORMS[0], n, n, 1);
    case.mp[5 * d] = f32::NAN;
    case.lq[9 * tri(d)] = f32::INFINITY;
    let out = case.run(Options::new(), false, n);
    let t = tri(d);
    for b in 0..n {
        let bad = b == 5 || b == 9;
        assert_eq!(out.kl[b].is_finite(), !bad, "pair {b}: {}", out.kl[b]);
        if !bad {
            let rows = [&out.grads[0][b * d..][..d], &out.grads[1][b * t..][..t]];
            let rows = [
                rows[0],
                rows[1],
                &out.grads[2][b * d..][..d],
                &out.grads[3][b * t..][..t],
            ];
            assert!(
                rows.iter().all(|r| r.iter().all(|v| v.is_finite())),
                "pair {b}"
            );
        }
    }
}

#[test]
fn zero_dimension() {
    let mut kl = [9.0f64; 4];
    let mut work = [0.0f64; 0];
    let grad = BatchGrad {
        means_p: &mut [],
        factors_p: &mut [],
        means_q: &mut [],
        factors_q: &mut [],
    };
    let e = GaussianBatch::<f64>::new(&[], &[]);
    batch_grad::kl_grad_all_pairs(0, e, e, &[1.0], &mut kl, grad, &mut work).unwrap();
    assert_eq!(kl, [0.0; 4]);
}
