//! Gradients of the diagonal KL and the Eq. 10 score: central finite
//! differences of the forward values in f64 (the forward kernels meet the
//! double-double reference in `tests/suite/diag.rs`), the all-pairs form against
//! the single-pair one, `Mode::Accumulate`, and the errors.

#![allow(clippy::needless_range_loop)] // index loops over perturbed coordinates

use gaussian_kl::diag;
use gaussian_kl::{DiagGaussian, DiagGaussians, DiagGradMut, Error, Grads, Mode, Scale};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Value {
    Kl,
    Eq10,
}

#[derive(Clone)]
struct Data {
    n: usize,
    d: usize,
    mean: Vec<f64>,
    spread: Vec<f64>,
    scale: Scale,
}

impl Data {
    fn random(rng: &mut StdRng, n: usize, d: usize, scale: Scale) -> Self {
        let mean = (0..n * d).map(|_| rng.random_range(-1.5..1.5)).collect();
        let spread = (0..n * d)
            .map(|_| match scale {
                Scale::Var => rng.random_range(0.3..3.0),
                Scale::LogVar => rng.random_range(-1.2..1.1),
            })
            .collect();
        Self {
            n,
            d,
            mean,
            spread,
            scale,
        }
    }
    fn batch(&self) -> DiagGaussians<'_, f64> {
        match self.scale {
            Scale::Var => DiagGaussians::var(self.n, self.d, &self.mean, &self.spread).unwrap(),
            Scale::LogVar => {
                DiagGaussians::log_var(self.n, self.d, &self.mean, &self.spread).unwrap()
            }
        }
    }
    fn one(&self, i: usize) -> DiagGaussian<'_, f64> {
        self.batch().get(i).unwrap()
    }
}

/// `L = Σ G_ij value(p_i, q_j)` through the forward all-pairs kernels.
fn loss(value: Value, p: &Data, q: &Data, g: &[f64]) -> f64 {
    let mut v = vec![0.0; p.n * q.n];
    match value {
        Value::Kl => diag::kl_all_pairs(&p.batch(), &q.batch(), &mut v).unwrap(),
        Value::Eq10 => diag::eq10_all_pairs(&p.batch(), &q.batch(), &mut v).unwrap(),
    }
    v.iter().zip(g).map(|(a, b)| a * b).sum()
}

/// Largest `|fd − grad| / (1 + |grad|)` over every input of `p` and `q`
/// (`got`: ∂/∂ p.mean, p.spread, q.mean, q.spread), with central differences
/// of step `h = 1e-5 (1 + |x|)`.
fn fd_worst(value: Value, p: &mut Data, q: &mut Data, g: &[f64], got: [&[f64]; 4]) -> f64 {
    let mut worst = 0.0f64;
    for (f, got) in got.into_iter().enumerate() {
        let len = if f < 2 { p.n * p.d } else { q.n * q.d };
        for e in 0..len {
            let x = get(p, q, f, e);
            let h = 1e-5 * (1.0 + x.abs());
            set(p, q, f, e, x + h);
            let up = loss(value, p, q, g);
            set(p, q, f, e, x - h);
            let down = loss(value, p, q, g);
            set(p, q, f, e, x);
            let fd = (up - down) / (2.0 * h);
            worst = worst.max((fd - got[e]).abs() / (1.0 + got[e].abs()));
        }
    }
    worst
}

fn get(p: &Data, q: &Data, f: usize, e: usize) -> f64 {
    let data = if f < 2 { p } else { q };
    if f.is_multiple_of(2) {
        data.mean[e]
    } else {
        data.spread[e]
    }
}

fn set(p: &mut Data, q: &mut Data, f: usize, e: usize, x: f64) {
    let data = if f < 2 { p } else { q };
    if f.is_multiple_of(2) {
        data.mean[e] = x;
    } else {
        data.spread[e] = x;
    }
}

/// The finite-difference bound. Truncation is `h² |L‴| / 6 ≈ 1e-10 · |L‴|`
/// and rounding `ε |L| / h ≈ 2e-11 · |L|` on these O(1..10) values.
/// Measured worst `|fd − grad| / (1 + |grad|)` over the tests below (printed
/// with `--nocapture`): 1.9e-9 all pairs, 9.7e-10 one pair, 1.6e-10 against
/// N(0, I). The bound `1e-7` is about 50× the worst (0.1 used `1e-6`, 530×).
/// A wrong term (all O(0.1) or larger) gives a ratio ≳ 1e-2, and an O(1)
/// entry scaled by `1 + 1e-6` gives ≈ 5e-7: both caught.
const FD_TOL: f64 = 1e-7;

const SCALES: [(Scale, Scale); 4] = [
    (Scale::Var, Scale::Var),
    (Scale::LogVar, Scale::LogVar),
    (Scale::Var, Scale::LogVar),
    (Scale::LogVar, Scale::Var),
];

fn grads(np: usize, nq: usize, d: usize) -> [Vec<f64>; 4] {
    [
        vec![f64::NAN; np * d],
        vec![f64::NAN; np * d],
        vec![f64::NAN; nq * d],
        vec![f64::NAN; nq * d],
    ]
}

fn grads_mut(g: &mut [Vec<f64>; 4]) -> Grads<DiagGradMut<'_, f64>> {
    let [a, b, c, e] = g;
    Grads::new(DiagGradMut::new(a, b), DiagGradMut::new(c, e))
}

#[test]
fn all_pairs_grad_matches_finite_differences() {
    let mut rng = StdRng::seed_from_u64(22);
    let mut worst = 0.0f64;
    for value in [Value::Kl, Value::Eq10] {
        for (sp, sq) in SCALES {
            let (np, nq, d) = (2, 3, 5);
            let mut p = Data::random(&mut rng, np, d, sp);
            let mut q = Data::random(&mut rng, nq, d, sq);
            let g: Vec<f64> = (0..np * nq).map(|_| rng.random_range(-2.0..2.0)).collect();
            let mut out = grads(np, nq, d);
            let (pb, qb) = (p.batch(), q.batch());
            match value {
                Value::Kl => diag::kl_all_pairs_grad(&pb, &qb, &g, grads_mut(&mut out)),
                Value::Eq10 => diag::eq10_all_pairs_grad(&pb, &qb, &g, grads_mut(&mut out)),
            }
            .unwrap();
            let w = fd_worst(
                value,
                &mut p,
                &mut q,
                &g,
                [&out[0], &out[1], &out[2], &out[3]],
            );
            assert!(w <= FD_TOL, "{value:?} ({sp:?}, {sq:?}): {w:e}");
            worst = worst.max(w);
        }
    }
    eprintln!("all-pairs: worst fd ratio {worst:e}");
}

/// The single-pair gradients (and their returned values) against finite
/// differences, and against the all-pairs kernel on a 1 × 1 batch, bit for bit.
#[test]
fn pair_grad_matches_finite_differences() {
    let mut rng = StdRng::seed_from_u64(21);
    let mut worst = 0.0f64;
    for value in [Value::Kl, Value::Eq10] {
        for (sp, sq) in SCALES {
            let d = 4;
            let mut p = Data::random(&mut rng, 1, d, sp);
            let mut q = Data::random(&mut rng, 1, d, sq);
            let up: f64 = rng.random_range(-2.0..2.0);
            let mut out = grads(1, 1, d);
            let (pi, qj) = (p.one(0), q.one(0));
            let v = match value {
                Value::Kl => diag::kl_grad(&pi, &qj, up, grads_mut(&mut out)),
                Value::Eq10 => diag::eq10_grad(&pi, &qj, up, grads_mut(&mut out)),
            }
            .unwrap();
            let want = match value {
                Value::Kl => diag::kl(&pi, &qj),
                Value::Eq10 => diag::eq10(&pi, &qj),
            };
            assert_eq!(Ok(v), want);
            let mut all = grads(1, 1, d);
            let (pb, qb) = (p.batch(), q.batch());
            match value {
                Value::Kl => diag::kl_all_pairs_grad(&pb, &qb, &[up], grads_mut(&mut all)),
                Value::Eq10 => diag::eq10_all_pairs_grad(&pb, &qb, &[up], grads_mut(&mut all)),
            }
            .unwrap();
            assert_eq!(all, out, "{value:?}");
            let w = fd_worst(
                value,
                &mut p,
                &mut q,
                &[up],
                [&out[0], &out[1], &out[2], &out[3]],
            );
            assert!(w <= FD_TOL, "{value:?} ({sp:?}, {sq:?}): {w:e}");
            worst = worst.max(w);
        }
    }
    eprintln!("pair: worst fd ratio {worst:e}");
}

#[test]
fn kl_std_normal_grad_matches_finite_differences() {
    let mut rng = StdRng::seed_from_u64(24);
    let mut worst = 0.0f64;
    for scale in [Scale::Var, Scale::LogVar] {
        let d = 6;
        let p = Data::random(&mut rng, 1, d, scale);
        let up = 1.7;
        let (mut gm, mut gs) = (vec![f64::NAN; d], vec![f64::NAN; d]);
        let v = diag::kl_std_normal_grad(&p.one(0), up, DiagGradMut::new(&mut gm, &mut gs));
        assert_eq!(v, diag::kl_std_normal(&p.one(0)));
        let f = |p: &Data| up * diag::kl_std_normal(&p.one(0)).unwrap();
        for (field, got) in [(0, &gm), (1, &gs)] {
            for e in 0..d {
                let mut pp = p.clone();
                let x = if field == 0 { p.mean[e] } else { p.spread[e] };
                let h = 1e-5 * (1.0 + x.abs());
                let at = |pp: &mut Data, y: f64| {
                    if field == 0 {
                        pp.mean[e] = y
                    } else {
                        pp.spread[e] = y
                    }
                };
                at(&mut pp, x + h);
                let a = f(&pp);
                at(&mut pp, x - h);
                let b = f(&pp);
                let fd = (a - b) / (2.0 * h);
                let w = (fd - got[e]).abs() / (1.0 + got[e].abs());
                assert!(w <= FD_TOL, "{scale:?} field {field} entry {e}: {w:e}");
                worst = worst.max(w);
            }
        }
    }
    eprintln!("std normal: worst fd ratio {worst:e}");
}

/// A one-hot upstream matrix picks out exactly one pair's gradient (bit for
/// bit the single-pair one), the other rows stay zero.
#[test]
fn all_pairs_one_hot_equals_pair_grad() {
    let mut rng = StdRng::seed_from_u64(23);
    let d = 6;
    let p = Data::random(&mut rng, 2, d, Scale::LogVar);
    let q = Data::random(&mut rng, 3, d, Scale::Var);
    for value in [Value::Kl, Value::Eq10] {
        for i in 0..2 {
            for j in 0..3 {
                let mut g = vec![0.0; 6];
                g[i * 3 + j] = 1.5;
                let mut all = grads(2, 3, d);
                let (pb, qb) = (p.batch(), q.batch());
                let mut one = grads(1, 1, d);
                let (pi, qj) = (p.one(i), q.one(j));
                match value {
                    Value::Kl => {
                        diag::kl_all_pairs_grad(&pb, &qb, &g, grads_mut(&mut all)).unwrap();
                        diag::kl_grad(&pi, &qj, 1.5, grads_mut(&mut one)).unwrap();
                    }
                    Value::Eq10 => {
                        diag::eq10_all_pairs_grad(&pb, &qb, &g, grads_mut(&mut all)).unwrap();
                        diag::eq10_grad(&pi, &qj, 1.5, grads_mut(&mut one)).unwrap();
                    }
                }
                assert_eq!(&all[0][i * d..][..d], &one[0][..]);
                assert_eq!(&all[1][i * d..][..d], &one[1][..]);
                assert_eq!(&all[2][j * d..][..d], &one[2][..]);
                assert_eq!(&all[3][j * d..][..d], &one[3][..]);
                assert!(all[0][(1 - i) * d..][..d].iter().all(|&x| x == 0.0));
            }
        }
    }
}

/// `Mode::Accumulate` adds to what the buffers hold: for one pair exactly
/// `prior + overwrite`; for all pairs, from zero, bit for bit the overwrite
/// result, and from a prior, within rounding of `prior + overwrite`.
#[test]
fn accumulate_mode_adds() {
    let mut rng = StdRng::seed_from_u64(25);
    let d = 5;
    let p = Data::random(&mut rng, 2, d, Scale::Var);
    let q = Data::random(&mut rng, 3, d, Scale::LogVar);
    let prior: Vec<f64> = (0..3 * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    // one pair
    let mut over = grads(1, 1, d);
    diag::kl_grad(&p.one(1), &q.one(2), 0.7, grads_mut(&mut over)).unwrap();
    let mut acc: [Vec<f64>; 4] = core::array::from_fn(|_| prior[..d].to_vec());
    {
        let [a, b, c, e] = &mut acc;
        let grad = Grads::new(
            DiagGradMut::new(a, b).mode(Mode::Accumulate),
            DiagGradMut::new(c, e).mode(Mode::Accumulate),
        );
        diag::kl_grad(&p.one(1), &q.one(2), 0.7, grad).unwrap();
    }
    for f in 0..4 {
        for e in 0..d {
            assert_eq!(acc[f][e], prior[e] + over[f][e]);
        }
    }
    // all pairs, p side accumulated, q side overwritten
    let g: Vec<f64> = (0..6).map(|_| rng.random_range(-1.0..1.0)).collect();
    let (pb, qb) = (p.batch(), q.batch());
    let mut over = grads(2, 3, d);
    diag::eq10_all_pairs_grad(&pb, &qb, &g, grads_mut(&mut over)).unwrap();
    for start in [0.0, 1.0] {
        let mut acc = grads(2, 3, d);
        for f in 0..2 {
            for (e, x) in acc[f].iter_mut().enumerate() {
                *x = start * prior[e];
            }
        }
        let [a, b, c, e] = &mut acc;
        let grad = Grads::new(
            DiagGradMut::new(a, b).mode(Mode::Accumulate),
            DiagGradMut::new(c, e),
        );
        diag::eq10_all_pairs_grad(&pb, &qb, &g, grad).unwrap();
        assert_eq!(acc[2..], over[2..]);
        for f in 0..2 {
            for e in 0..2 * d {
                let want = start * prior[e] + over[f][e];
                if start == 0.0 {
                    assert_eq!(acc[f][e], over[f][e]);
                } else {
                    // three additions in another order: a few ulp of the terms
                    let tol = 8.0 * f64::EPSILON * (1.0 + want.abs() + over[f][e].abs());
                    assert!((acc[f][e] - want).abs() <= tol);
                }
            }
        }
    }
}

type GradsF64<'a> = Grads<DiagGradMut<'a, f64>>;

#[test]
fn grad_errors_name_the_buffer_and_write_nothing() {
    let (m, v) = ([0.0f64; 4], [1.0f64; 4]);
    let b = DiagGaussians::var(2, 2, &m, &v).unwrap();
    let b3 = DiagGaussians::var(1, 3, &m[..3], &v[..3]).unwrap();
    let one = b.get(0).unwrap();
    let sentinel = 9.25;
    let check =
        |sizes: [usize; 4], run: &dyn Fn(GradsF64<'_>) -> Result<(), Error>, want: Error| {
            let mut g: [Vec<f64>; 4] = sizes.map(|n| vec![sentinel; n]);
            for mode in [Mode::Overwrite, Mode::Accumulate] {
                let [a, bb, c, e] = &mut g;
                let grad = Grads::new(
                    DiagGradMut::new(a, bb).mode(mode),
                    DiagGradMut::new(c, e).mode(mode),
                );
                assert_eq!(run(grad), Err(want));
                assert!(g.iter().flatten().all(|&x| x == sentinel), "{want:?}");
            }
        };
    let names = [
        "grad.p.mean",
        "grad.p.spread",
        "grad.q.mean",
        "grad.q.spread",
    ];
    for (f, what) in names.into_iter().enumerate() {
        let mut sizes = [2; 4];
        sizes[f] = 3;
        let want = Error::LengthMismatch {
            what,
            expected: 2,
            found: 3,
        };
        check(
            sizes,
            &|g| diag::kl_grad(&one, &one, 1.0, g).map(drop),
            want,
        );
        check(
            sizes,
            &|g| diag::eq10_grad(&one, &one, 1.0, g).map(drop),
            want,
        );
        let mut sizes = [4; 4];
        sizes[f] = 1;
        let want = Error::LengthMismatch {
            what,
            expected: 4,
            found: 1,
        };
        check(
            sizes,
            &|g| diag::kl_all_pairs_grad(&b, &b, &[1.0; 4], g),
            want,
        );
        check(
            sizes,
            &|g| diag::eq10_all_pairs_grad(&b, &b, &[1.0; 4], g),
            want,
        );
    }
    let up = Error::LengthMismatch {
        what: "upstream",
        expected: 4,
        found: 3,
    };
    check(
        [4; 4],
        &|g| diag::kl_all_pairs_grad(&b, &b, &[1.0; 3], g),
        up,
    );
    check(
        [4; 4],
        &|g| diag::eq10_all_pairs_grad(&b, &b, &[1.0; 3], g),
        up,
    );
    let dim = Error::DimensionMismatch {
        what: "q",
        expected: 2,
        found: 3,
    };
    check(
        [4, 4, 3, 3],
        &|g| diag::kl_all_pairs_grad(&b, &b3, &[1.0; 2], g),
        dim,
    );
    check(
        [2, 2, 3, 3],
        &|g| diag::kl_grad(&one, &b3.get(0).unwrap(), 1.0, g).map(drop),
        dim,
    );
    // the std-normal gradient names its single buffer pair
    let (mut gm, mut gs) = ([sentinel; 2], [sentinel; 1]);
    assert_eq!(
        diag::kl_std_normal_grad(&one, 1.0, DiagGradMut::new(&mut gm, &mut gs)),
        Err(Error::LengthMismatch {
            what: "grad.spread",
            expected: 2,
            found: 1
        })
    );
    assert_eq!((gm, gs), ([sentinel; 2], [sentinel; 1]));
}
