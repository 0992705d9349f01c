//! Gradients of the full-rank KL: PyTorch autograd oracle, central finite
//! differences in every input form (each packed layout and diagonal
//! encoding, dense row-major and column-major), the VAE prior path, fixed =
//! runtime, and zero allocations. (The batched layer's gradients are tested
//! in `tests/suite/batch_grad.rs`.)

// Index loops mirror the subscripts of the linear algebra they check.
#![allow(clippy::needless_range_loop)]

use gaussian_kl::{
    Diagonal, Error, Factor, Gaussian, GradMut, Grads, Layout, MatRef, Mode, PackedTril, full,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::counting::allocations;

// ---------------------------------------------------------------------------
// Input forms.

/// One way of handing a factor to the crate.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    Packed(Layout, Diagonal),
    /// Dense row-major (`MatRef::row_major`).
    Dense,
    /// Dense column-major (`MatRef::col_major`).
    DenseCol,
}

impl Form {
    fn is_dense(self) -> bool {
        matches!(self, Form::Dense | Form::DenseCol)
    }

    /// Where entry `(i, j)` of a dense `d × d` matrix sits in this form.
    fn at(self, d: usize, i: usize, j: usize) -> usize {
        match self {
            Form::Packed(layout, _) => layout.index(d, i, j),
            Form::Dense => i * d + j,
            Form::DenseCol => j * d + i,
        }
    }

    /// Element `k` of a dense buffer as `(i, j)`.
    fn entry(self, d: usize, k: usize) -> (usize, usize) {
        match self {
            Form::DenseCol => (k % d, k / d),
            _ => (k / d, k % d),
        }
    }
}

const LAYOUTS: [Layout; 3] = [Layout::RowMajor, Layout::ColMajor, Layout::DiagFirst];

fn all_forms() -> Vec<Form> {
    let mut v = Vec::new();
    for l in LAYOUTS {
        for g in [Diagonal::Log, Diagonal::Plain] {
            v.push(Form::Packed(l, g));
        }
    }
    v.push(Form::Dense);
    v.push(Form::DenseCol);
    v
}

fn tri(d: usize) -> usize {
    d * (d + 1) / 2
}

/// Converts a row-major raw factor (log diagonal, a VAE encoder's form) into
/// `form`. Dense factors get junk above the diagonal, which must be ignored.
fn to_form(d: usize, raw: &[f64], form: Form) -> Vec<f64> {
    match form {
        Form::Packed(layout, diag) => {
            let mut out = vec![0.0; tri(d)];
            for i in 0..d {
                for j in 0..=i {
                    let v = raw[Layout::RowMajor.index(d, i, j)];
                    out[layout.index(d, i, j)] = if i == j && diag == Diagonal::Plain {
                        v.exp()
                    } else {
                        v
                    };
                }
            }
            out
        }
        Form::Dense | Form::DenseCol => {
            let mut out = vec![7.25; d * d];
            for i in 0..d {
                for j in 0..=i {
                    let v = raw[Layout::RowMajor.index(d, i, j)];
                    out[form.at(d, i, j)] = if i == j { v.exp() } else { v };
                }
            }
            out
        }
    }
}

/// Converts a row-major gradient with respect to the raw factor into the
/// gradient with respect to `form`'s parameters: the same entries permuted,
/// and `∂/∂Lᵢᵢ = (∂/∂rawᵢ) / Lᵢᵢ` for a plain diagonal.
fn grad_to_form(d: usize, raw: &[f64], g_raw: &[f64], form: Form) -> Vec<f64> {
    let mut out = match form {
        Form::Packed(..) => vec![0.0; tri(d)],
        Form::Dense | Form::DenseCol => vec![0.0; d * d],
    };
    for i in 0..d {
        for j in 0..=i {
            let at = Layout::RowMajor.index(d, i, j);
            let plain = i == j && form != Form::Packed(Layout::RowMajor, Diagonal::Log);
            let v = match form {
                Form::Packed(_, Diagonal::Log) => g_raw[at],
                _ if plain => g_raw[at] / raw[at].exp(),
                _ => g_raw[at],
            };
            out[form.at(d, i, j)] = v;
        }
    }
    out
}

fn tril_of(d: usize, form: Form, data: &[f64]) -> PackedTril<'_, f64> {
    match form {
        Form::Packed(layout, diag) => PackedTril::with_layout(d, data, layout, diag).unwrap(),
        _ => unreachable!("dense factors are not PackedTril"),
    }
}

/// The factor `data` in `form` as a view.
fn view(d: usize, form: Form, data: &[f64]) -> Factor<'_, f64> {
    match form {
        Form::Packed(..) => tril_of(d, form, data).into(),
        Form::Dense => MatRef::row_major(d, data).unwrap().into(),
        Form::DenseCol => MatRef::col_major(d, data).unwrap().into(),
    }
}

/// A Gaussian with its factor in `form`.
fn gauss<'a>(d: usize, form: Form, mean: &'a [f64], data: &'a [f64]) -> Gaussian<'a, f64> {
    Gaussian::new(mean, view(d, form, data)).unwrap()
}

/// `KL(p‖q)` with both factors in `form` (the function being differentiated).
fn kl_form(d: usize, form: Form, mp: &[f64], lp: &[f64], mq: &[f64], lq: &[f64]) -> f64 {
    let mut work = vec![0.0; full::kl_scratch(d)];
    full::kl(&gauss(d, form, mp, lp), &gauss(d, form, mq, lq), &mut work).unwrap()
}

/// Four gradient buffers as `Grads`.
fn grads_of(b: &mut [Vec<f64>; 4]) -> Grads<GradMut<'_, f64>> {
    let [a, b, c, e] = b;
    Grads::new(GradMut::new(a, b), GradMut::new(c, e))
}

/// The four gradients (mean_p, l_p, mean_q, l_q) and the KL, from the kernel
/// under test.
type KlAndGrads = (f64, [Vec<f64>; 4]);

fn grad_form(
    d: usize,
    form: Form,
    mp: &[f64],
    lp: &[f64],
    mq: &[f64],
    lq: &[f64],
    upstream: f64,
) -> KlAndGrads {
    let n = lp.len();
    // NaN in the buffers: every entry must be written (Mode::Overwrite).
    let mut g = [
        vec![f64::NAN; d],
        vec![f64::NAN; n],
        vec![f64::NAN; d],
        vec![f64::NAN; n],
    ];
    let mut work = vec![0.0; full::kl_grad_scratch(d)];
    let (p, q) = (gauss(d, form, mp, lp), gauss(d, form, mq, lq));
    let kl = full::kl_grad(&p, &q, upstream, grads_of(&mut g), &mut work).unwrap();
    (kl, g)
}

/// A seeded random pair in the raw form (log diagonal): means in [−1, 1], raw
/// log-diagonal in [−0.4, 0.4], off-diagonal entries in [−1, 1]/√d so that
/// `cond(L)` stays moderate at every `d`.
fn random_pair(rng: &mut StdRng, d: usize) -> [Vec<f64>; 4] {
    let s = 1.0 / (d as f64).sqrt();
    let mut raw = || {
        let mut v = vec![0.0; tri(d)];
        for i in 0..d {
            for j in 0..=i {
                v[Layout::RowMajor.index(d, i, j)] = if i == j {
                    rng.random_range(-0.4..0.4)
                } else {
                    s * rng.random_range(-1.0..1.0)
                };
            }
        }
        v
    };
    let (lp, lq) = (raw(), raw());
    let mp = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mq = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
    [mp, lp, mq, lq]
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// Max over entries of `|a − b|`.
fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

// ---------------------------------------------------------------------------
// PyTorch autograd oracle.

struct OracleCase {
    d: usize,
    mean1: Vec<f64>,
    packed1: Vec<f64>,
    mean2: Vec<f64>,
    packed2: Vec<f64>,
    kl: f64,
    grads: [Vec<f64>; 4],
}

fn oracle() -> Vec<OracleCase> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/torch_kl_cases.json"
    ))
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let vec = |c: &serde_json::Value, k: &str| -> Vec<f64> {
        c[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    json["full"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| OracleCase {
            d: c["d"].as_u64().unwrap() as usize,
            mean1: vec(c, "mean1"),
            packed1: vec(c, "packed1"),
            mean2: vec(c, "mean2"),
            packed2: vec(c, "packed2"),
            kl: c["kl"].as_f64().unwrap(),
            grads: [
                vec(c, "grad_mean1"),
                vec(c, "grad_packed1"),
                vec(c, "grad_mean2"),
                vec(c, "grad_packed2"),
            ],
        })
        .collect()
}

/// Every `full` oracle case, in every input form: each of the four
/// gradients within `1e-10 · max|entry|` of PyTorch's float64 autograd (the
/// issue's bound; both sides are f64 computations of the same function by
/// different algorithms, whose difference is a few hundred ulps at most for
/// these well-conditioned cases).
#[test]
fn oracle_gradients_every_form() {
    let cases = oracle();
    assert!(cases.len() >= 20);
    let mut worst: f64 = 0.0;
    for c in &cases {
        let d = c.d;
        for form in all_forms() {
            let lp = to_form(d, &c.packed1, form);
            let lq = to_form(d, &c.packed2, form);
            let (kl, got) = grad_form(d, form, &c.mean1, &lp, &c.mean2, &lq, 1.0);
            assert!(
                (kl - c.kl).abs() <= 1e-12 * c.kl.abs().max(1.0),
                "d={d} {form:?}"
            );
            let want = [
                c.grads[0].clone(),
                grad_to_form(d, &c.packed1, &c.grads[1], form),
                c.grads[2].clone(),
                grad_to_form(d, &c.packed2, &c.grads[3], form),
            ];
            for (k, name) in ["grad_mean1", "grad_packed1", "grad_mean2", "grad_packed2"]
                .iter()
                .enumerate()
            {
                let scale = max_abs(&want[k]).max(f64::MIN_POSITIVE);
                let rel = max_diff(&got[k], &want[k]) / scale;
                worst = worst.max(rel);
                assert!(rel <= 1e-10, "d={d} {form:?} {name}: rel err {rel:e}");
            }
        }
    }
    eprintln!("oracle: worst gradient error relative to the largest entry {worst:e}");
}

// ---------------------------------------------------------------------------
// Central finite differences.

/// Central-difference gradient of `f` at `x`, one coordinate at a time.
fn fd_grad(x: &mut [f64], h: f64, mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let x0 = x[i];
            x[i] = x0 + h;
            let up = f(x);
            x[i] = x0 - h;
            let down = f(x);
            x[i] = x0;
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// Finite-difference error budget. With step `h` the central difference is
/// off by `h²/6 · |f'''|` (truncation) plus `≈ ε·|KL|·κ / h` (rounding of
/// the two KL evaluations, `κ` a small multiple of `d`): with `h = 1e-5`,
/// `|f'''| = O(1)` and `|KL| ≤ O(d)` both stay below `1e-8`. A wrong formula
/// (a missing chain-rule factor `Lᵢᵢ = e^{±0.4}`, a sign, a transposed
/// index) is off by `O(0.1)` of the gradient, far above this.
const FD_H: f64 = 1e-5;
const FD_TOL: f64 = 1e-7;

/// Checks all four gradients of one pair in one form against central
/// differences; returns the worst error relative to `max(1, max|g|)`.
fn check_fd(d: usize, form: Form, pair: &[Vec<f64>; 4]) -> f64 {
    let [mp, lp_raw, mq, lq_raw] = pair;
    let lp = to_form(d, lp_raw, form);
    let lq = to_form(d, lq_raw, form);
    let (_, got) = grad_form(d, form, mp, &lp, mq, &lq, 1.0);
    // Dense: only the lower triangle is a parameter; the upper gradient is 0.
    let params = |n: usize| -> Vec<usize> {
        if form.is_dense() {
            (0..n)
                .filter(|&k| {
                    let (i, j) = form.entry(d, k);
                    j <= i
                })
                .collect()
        } else {
            (0..n).collect()
        }
    };
    let mut fd = [vec![], vec![], vec![], vec![]];
    let mut args = [mp.clone(), lp.clone(), mq.clone(), lq.clone()];
    for k in 0..4 {
        let mut x = args[k].clone();
        let g = fd_grad(&mut x, FD_H, |x| {
            let saved = std::mem::replace(&mut args[k], x.to_vec());
            let v = kl_form(d, form, &args[0], &args[1], &args[2], &args[3]);
            args[k] = saved;
            v
        });
        fd[k] = g;
    }
    let mut worst: f64 = 0.0;
    for k in 0..4 {
        let scale = max_abs(&got[k]).max(1.0);
        let idx = if k % 2 == 1 {
            params(got[k].len())
        } else {
            (0..d).collect()
        };
        for &i in &idx {
            let e = (got[k][i] - fd[k][i]).abs() / scale;
            worst = worst.max(e);
            assert!(
                e <= FD_TOL,
                "d={d} {form:?} arg {k} entry {i}: kernel {} fd {} (rel {e:e})",
                got[k][i],
                fd[k][i]
            );
        }
        if form.is_dense() && k % 2 == 1 {
            for i in 0..d {
                for j in i + 1..d {
                    let at = form.at(d, i, j);
                    assert_eq!(got[k][at], 0.0, "upper triangle of a dense gradient");
                }
            }
        }
    }
    worst
}

/// Every input form, every `d = 1..=32`: all four gradients against central
/// differences of the crate's KL, coordinate by coordinate.
#[test]
fn finite_differences_every_form_d1_to_32() {
    let mut rng = StdRng::seed_from_u64(0x6772_6164);
    let mut worst: f64 = 0.0;
    for d in 1..=32 {
        let pair = random_pair(&mut rng, d);
        for form in all_forms() {
            worst = worst.max(check_fd(d, form, &pair));
        }
    }
    eprintln!("finite differences: worst error {worst:e}");
}

/// The finite-difference check can fail: dropping the chain rule through
/// `exp` (reading a raw-diagonal gradient as the plain one) is caught.
#[test]
fn finite_differences_catch_a_missing_chain_rule() {
    let mut rng = StdRng::seed_from_u64(7);
    let d = 4;
    let [mp, lp, mq, lq] = random_pair(&mut rng, d);
    let raw = Form::Packed(Layout::RowMajor, Diagonal::Log);
    let plain = Form::Packed(Layout::RowMajor, Diagonal::Plain);
    let (_, g_plain) = grad_form(
        d,
        plain,
        &mp,
        &to_form(d, &lp, plain),
        &mq,
        &to_form(d, &lq, plain),
        1.0,
    );
    let mut x = lp.clone();
    let fd = fd_grad(&mut x, FD_H, |x| kl_form(d, raw, &mp, x, &mq, &lq));
    let diag0 = Layout::RowMajor.index(d, 0, 0);
    assert!((g_plain[1][diag0] - fd[diag0]).abs() > 1e3 * FD_TOL);
}

// ---------------------------------------------------------------------------
// Identities.

/// At `p = q` the mean gradients are exactly zero (`y = 0` exactly), and the
/// factor gradients vanish up to rounding: `tril(L⁻ᵀ) − diag(1/Lᵢᵢ) = 0`.
/// Rounding bound: each entry of `W` is a back substitution of length `≤ d`
/// over entries of size `≤ max|L⁻¹|`, so `64·d·ε·max|L⁻¹|²`-ish; we use
/// `1e3·d·ε`, far below the `O(1)` size of a wrong entry.
#[test]
fn at_p_equals_q_gradient_is_zero() {
    let mut rng = StdRng::seed_from_u64(11);
    for d in 1..=32 {
        let [mp, lp, _, _] = random_pair(&mut rng, d);
        for form in all_forms() {
            let l = to_form(d, &lp, form);
            let (kl, g) = grad_form(d, form, &mp, &l, &mp, &l, 1.0);
            assert!(kl.abs() <= 1e3 * d as f64 * f64::EPSILON, "d={d} {kl}");
            assert!(g[0].iter().all(|&v| v == 0.0), "d={d} {form:?}");
            assert!(g[2].iter().all(|&v| v == 0.0), "d={d} {form:?}");
            let tol = 1e3 * d as f64 * f64::EPSILON;
            assert!(max_abs(&g[1]) <= tol, "d={d} {form:?} {:e}", max_abs(&g[1]));
            assert!(max_abs(&g[3]) <= tol, "d={d} {form:?} {:e}", max_abs(&g[3]));
        }
    }
}

/// The KL returned with the gradient is bit-identical to the forward kernel,
/// and every layout gives bit-identical gradients (permuted).
#[test]
fn kl_matches_forward_and_layouts_agree() {
    let mut rng = StdRng::seed_from_u64(12);
    for d in [1, 2, 3, 5, 8, 13, 24, 40] {
        let [mp, lp, mq, lq] = random_pair(&mut rng, d);
        for diag in [Diagonal::Log, Diagonal::Plain] {
            let base = Form::Packed(Layout::RowMajor, diag);
            let (kl0, g0) = grad_form(
                d,
                base,
                &mp,
                &to_form(d, &lp, base),
                &mq,
                &to_form(d, &lq, base),
                1.0,
            );
            for layout in LAYOUTS {
                let form = Form::Packed(layout, diag);
                let (a, b) = (to_form(d, &lp, form), to_form(d, &lq, form));
                let (kl, g) = grad_form(d, form, &mp, &a, &mq, &b, 1.0);
                assert_eq!(kl.to_bits(), kl_form(d, form, &mp, &a, &mq, &b).to_bits());
                assert_eq!(kl.to_bits(), kl0.to_bits());
                for i in 0..d {
                    for j in 0..=i {
                        let (r, x) = (Layout::RowMajor.index(d, i, j), layout.index(d, i, j));
                        assert_eq!(g[1][x].to_bits(), g0[1][r].to_bits());
                        assert_eq!(g[3][x].to_bits(), g0[3][r].to_bits());
                    }
                }
            }
        }
    }
}

/// `upstream` scales every gradient: exactly for a power of two, to one
/// rounding for any other weight; the KL itself is not scaled.
#[test]
fn upstream_scales_the_gradient() {
    let mut rng = StdRng::seed_from_u64(13);
    for d in [1, 4, 17] {
        let [mp, lp, mq, lq] = random_pair(&mut rng, d);
        for form in all_forms() {
            let (a, b) = (to_form(d, &lp, form), to_form(d, &lq, form));
            let (kl1, g1) = grad_form(d, form, &mp, &a, &mq, &b, 1.0);
            let (kl4, g4) = grad_form(d, form, &mp, &a, &mq, &b, -4.0);
            let (kl3, g3) = grad_form(d, form, &mp, &a, &mq, &b, 0.3);
            assert_eq!(kl1, kl4);
            assert_eq!(kl1, kl3);
            for k in 0..4 {
                for i in 0..g1[k].len() {
                    assert_eq!(g4[k][i], -4.0 * g1[k][i]);
                    // The weight enters before the last `± 1` or `1/Lᵢᵢ` of a
                    // diagonal entry, so allow a few ulps of the largest term.
                    let tol = 8.0 * f64::EPSILON * (max_abs(&g1[k]) + 2.0);
                    assert!((g3[k][i] - 0.3 * g1[k][i]).abs() <= tol);
                }
            }
        }
    }
}

/// f32 agrees with f64: the same kernel in single precision, within
/// `c·d·ε₃₂` of the largest entry for these well-conditioned factors
/// (`c = 64` covers the back substitution and the length-`d` dot products).
#[test]
fn f32_agrees_with_f64() {
    let mut rng = StdRng::seed_from_u64(14);
    for d in [1, 2, 3, 7, 16, 32] {
        let [mp, lp, mq, lq] = random_pair(&mut rng, d);
        let (_, g64) = grad_form(
            d,
            Form::Packed(Layout::RowMajor, Diagonal::Log),
            &mp,
            &lp,
            &mq,
            &lq,
            1.0,
        );
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let (mp32, lp32, mq32, lq32) = (f(&mp), f(&lp), f(&mq), f(&lq));
        let n = tri(d);
        let (mut a, mut b, mut c, mut e) =
            (vec![0f32; d], vec![0f32; n], vec![0f32; d], vec![0f32; n]);
        let mut work = vec![0f32; full::kl_grad_scratch(d)];
        full::kl_grad(
            &Gaussian::packed(&mp32, &lp32).unwrap(),
            &Gaussian::packed(&mq32, &lq32).unwrap(),
            1.0,
            Grads::new(GradMut::new(&mut a, &mut b), GradMut::new(&mut c, &mut e)),
            &mut work,
        )
        .unwrap();
        for (got, want) in [a, b, c, e].iter().zip(&g64) {
            let got: Vec<f64> = got.iter().map(|&x| x as f64).collect();
            let tol = 64.0 * d as f64 * f32::EPSILON as f64 * max_abs(want).max(1.0);
            assert!(max_diff(&got, want) <= tol, "d={d}");
        }
    }
}

// ---------------------------------------------------------------------------
// The VAE prior path.

/// `kl_std_normal_grad` in every packed form and dense: the KL is
/// bit-identical to `kl_std_normal`, the gradient agrees with the general
/// kernel at `q = N(0, I)` (to a few ulps: different arithmetic) and with
/// central differences.
#[test]
fn std_normal_gradient() {
    let mut rng = StdRng::seed_from_u64(15);
    for d in 1..=32 {
        let [mp, lp, _, _] = random_pair(&mut rng, d);
        let zero_mean = vec![0.0; d];
        let identity_raw = vec![0.0; tri(d)]; // exp(0) = 1 on the diagonal
        for form in all_forms() {
            let l = to_form(d, &lp, form);
            let mut gm = vec![0.0; d];
            let mut gl = vec![0.0; l.len()];
            let p = gauss(d, form, &mp, &l);
            let kl = full::kl_std_normal_grad(&p, 1.0, GradMut::new(&mut gm, &mut gl)).unwrap();
            let want_kl = full::kl_std_normal(&p).unwrap();
            assert_eq!(kl.to_bits(), want_kl.to_bits());
            let id = to_form(d, &identity_raw, form);
            let (kl2, g2) = grad_form(d, form, &mp, &l, &zero_mean, &id, 1.0);
            let tol = 64.0 * d as f64 * f64::EPSILON;
            assert!((kl - kl2).abs() <= tol * kl.abs().max(1.0), "d={d}");
            // At q = N(0, I): y = −μ, z = −μ, so ∂/∂μ_p = μ.
            assert!(
                max_diff(&gm, &g2[0]) <= tol * max_abs(&gm).max(1.0),
                "d={d}"
            );
            assert!(
                max_diff(&gl, &g2[1]) <= tol * max_abs(&gl).max(1.0),
                "d={d} {form:?}"
            );
            // Central differences.
            let mut x = l.clone();
            let fd = fd_grad(&mut x, FD_H, |x| {
                full::kl_std_normal(&gauss(d, form, &mp, x)).unwrap()
            });
            for i in 0..l.len() {
                if form.is_dense() && form.entry(d, i).1 > form.entry(d, i).0 {
                    assert_eq!(gl[i], 0.0);
                    continue;
                }
                assert!((fd[i] - gl[i]).abs() <= FD_TOL * max_abs(&gl).max(1.0));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Fixed dimension.

fn dense_array<const D: usize>(d_raw: &[f64]) -> [[f64; D]; D] {
    let v = to_form(D, d_raw, Form::Dense);
    let mut a = [[0.0; D]; D];
    for i in 0..D {
        a[i].copy_from_slice(&v[i * D..(i + 1) * D]);
    }
    a
}

fn check_fixed<const D: usize>(rng: &mut StdRng) {
    let [mp, lp, mq, lq] = random_pair(rng, D);
    let mp_a: [f64; D] = mp.clone().try_into().unwrap();
    let mq_a: [f64; D] = mq.clone().try_into().unwrap();
    // Dense fixed = dense runtime, bit for bit.
    let (a, b) = (dense_array::<D>(&lp), dense_array::<D>(&lq));
    let (kl, g) = full::kl_grad_fixed(&mp_a, &a, &mq_a, &b, 0.75).unwrap();
    let (kl_rt, g_rt) = grad_form(
        D,
        Form::Dense,
        &mp,
        a.as_flattened(),
        &mq,
        b.as_flattened(),
        0.75,
    );
    assert_eq!(kl.to_bits(), kl_rt.to_bits());
    assert_eq!(g.mean_p.as_slice(), g_rt[0].as_slice());
    assert_eq!(g.factor_p.as_flattened(), g_rt[1].as_slice());
    assert_eq!(g.mean_q.as_slice(), g_rt[2].as_slice());
    assert_eq!(g.factor_q.as_flattened(), g_rt[3].as_slice());
    // Packed fixed = packed runtime, every packed form.
    for form in all_forms().into_iter().filter(|f| !f.is_dense()) {
        let (x, y) = (to_form(D, &lp, form), to_form(D, &lq, form));
        let (kl_rt, g_rt) = grad_form(D, form, &mp, &x, &mq, &y, 0.75);
        let n = tri(D);
        let (mut p1, mut p2, mut p3, mut p4) =
            (vec![0.0; D], vec![0.0; n], vec![0.0; D], vec![0.0; n]);
        let kl = full::kl_grad_packed_fixed::<f64, D>(
            &mp_a,
            tril_of(D, form, &x),
            &mq_a,
            tril_of(D, form, &y),
            0.75,
            Grads::new(
                GradMut::new(&mut p1, &mut p2),
                GradMut::new(&mut p3, &mut p4),
            ),
        )
        .unwrap();
        assert_eq!(kl.to_bits(), kl_rt.to_bits());
        assert_eq!([p1, p2, p3, p4], g_rt);
    }
}

#[test]
fn fixed_equals_runtime() {
    let mut rng = StdRng::seed_from_u64(16);
    check_fixed::<1>(&mut rng);
    check_fixed::<2>(&mut rng);
    check_fixed::<3>(&mut rng);
    check_fixed::<4>(&mut rng);
    check_fixed::<5>(&mut rng);
    check_fixed::<8>(&mut rng);
    check_fixed::<16>(&mut rng);
    check_fixed::<32>(&mut rng);
}

// ---------------------------------------------------------------------------
// Errors, NaN, zero dimension.

#[test]
fn shape_errors_and_no_panics() {
    let d = 3;
    let l = [0.1f64, 0.2, -0.3, 0.0, 0.5, 0.2];
    let m = [0.5f64, -0.5, 1.0];
    let g = Gaussian::packed(&m, &l).unwrap();
    let mut work = vec![0.0; full::kl_grad_scratch(d)];
    let (mut a, mut b, mut c, mut e) = (vec![9.0; d], vec![9.0; 6], vec![9.0; d], vec![9.0; 6]);
    let call = |a: &mut [f64], b: &mut [f64], c: &mut [f64], e: &mut [f64], work: &mut [f64]| {
        let grads = Grads::new(GradMut::new(a, b), GradMut::new(c, e));
        full::kl_grad(&g, &g, 1.0, grads, work)
    };
    let lm = |what, expected, found| Error::LengthMismatch {
        what,
        expected,
        found,
    };
    assert_eq!(
        call(&mut a[..2], &mut b, &mut c, &mut e, &mut work),
        Err(lm("grad.p.mean", 3, 2))
    );
    assert_eq!(
        call(&mut a, &mut b[..5], &mut c, &mut e, &mut work),
        Err(lm("grad.p.factor", 6, 5))
    );
    assert_eq!(
        call(&mut a, &mut b, &mut c[..0], &mut e, &mut work),
        Err(lm("grad.q.mean", 3, 0))
    );
    assert_eq!(
        call(&mut a, &mut b, &mut c, &mut e[..1], &mut work),
        Err(lm("grad.q.factor", 6, 1))
    );
    let short = full::kl_grad_scratch(d) - 1;
    assert_eq!(
        call(&mut a, &mut b, &mut c, &mut e, &mut work[..short]),
        Err(Error::WorkspaceTooSmall {
            expected: short + 1,
            found: short
        })
    );
    assert!(a.iter().chain(&b).chain(&c).chain(&e).all(|&v| v == 9.0));

    // Dimension mismatch: named "q", outputs untouched.
    let g2 = Gaussian::packed(&m[..2], &l[..3]).unwrap();
    let grads = Grads::new(GradMut::new(&mut a, &mut b), GradMut::new(&mut c, &mut e));
    let r = full::kl_grad(&g, &g2, 1.0, grads, &mut work);
    assert_eq!(
        r,
        Err(Error::DimensionMismatch {
            what: "q",
            expected: 3,
            found: 2
        })
    );
    assert!(a.iter().chain(&b).chain(&c).chain(&e).all(|&v| v == 9.0));
    assert_eq!(full::kl_grad_scratch(usize::MAX), usize::MAX);
    assert_eq!(full::kl_grad_scratch(usize::MAX / 2), usize::MAX);

    // A dense factor's gradient buffer is d² long (the input's data), not packed.
    let eye = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
    let gd = Gaussian::new(&m, MatRef::row_major(d, &eye).unwrap()).unwrap();
    let grads = Grads::new(GradMut::new(&mut a, &mut b), GradMut::new(&mut c, &mut e));
    let r = full::kl_grad(&gd, &gd, 1.0, grads, &mut work);
    assert_eq!(r, Err(lm("grad.p.factor", 9, 6)));
    // Fixed packed with the wrong d.
    let r = full::kl_grad_packed_fixed::<f64, 2>(
        &[0.0; 2],
        PackedTril::new(3, &l).unwrap(),
        &[0.0; 2],
        PackedTril::new(3, &l).unwrap(),
        1.0,
        Grads::new(GradMut::new(&mut a, &mut b), GradMut::new(&mut c, &mut e)),
    );
    assert!(matches!(
        r,
        Err(Error::DimensionMismatch {
            what: "factor_p",
            ..
        })
    ));
    // Std normal shapes.
    assert_eq!(
        full::kl_std_normal_grad(&g, 1.0, GradMut::new(&mut a, &mut b[..2])),
        Err(lm("grad.factor", 6, 2))
    );
    assert_eq!(
        full::kl_std_normal_grad(&gd, 1.0, GradMut::new(&mut a[..1], &mut [0.0; 9])),
        Err(lm("grad.mean", 3, 1))
    );
    assert!(a.iter().chain(&b).chain(&c).chain(&e).all(|&v| v == 9.0));
}

#[test]
fn nan_and_infinity_propagate_without_panic() {
    let d = 4;
    let mut rng = StdRng::seed_from_u64(17);
    let [mp, lp, mq, lq] = random_pair(&mut rng, d);
    for (k, bad) in [(0, f64::NAN), (1, f64::NAN), (2, f64::INFINITY), (3, 1e300)] {
        let mut args = [mp.clone(), lp.clone(), mq.clone(), lq.clone()];
        args[k][0] = bad;
        let form = Form::Packed(Layout::RowMajor, Diagonal::Log);
        let (kl, g) = grad_form(d, form, &args[0], &args[1], &args[2], &args[3], 1.0);
        assert!(!kl.is_finite() || g.iter().flatten().any(|v| !v.is_finite()));
    }
}

#[test]
fn zero_dimension() {
    let mut work: [f64; 0] = [];
    let g = Gaussian::packed(&[], &[]).unwrap();
    let none = || GradMut::new(&mut [], &mut []);
    let kl = full::kl_grad(&g, &g, 1.0, Grads::new(none(), none()), &mut work);
    assert_eq!(kl, Ok(0.0));
    let (kl, _) = full::kl_grad_fixed::<f64, 0>(&[], &[], &[], &[], 1.0).unwrap();
    assert_eq!(kl, 0.0);
    let gd = Gaussian::new(&[], MatRef::row_major(0, &[]).unwrap()).unwrap();
    assert_eq!(full::kl_std_normal_grad(&gd, 1.0, none()), Ok(0.0));
}

// ---------------------------------------------------------------------------
// No allocation.

#[test]
fn single_pair_kernels_do_not_allocate() {
    let d = 9;
    let mut rng = StdRng::seed_from_u64(18);
    let [mp, lp, mq, lq] = random_pair(&mut rng, d);
    let n = tri(d);
    let (mut a, mut b, mut c, mut e) = (
        vec![0.0; d],
        vec![0.0; d * d],
        vec![0.0; d],
        vec![0.0; d * d],
    );
    let mut work = vec![0.0; full::kl_grad_scratch(d)];
    let mp_a: [f64; 9] = mp.clone().try_into().unwrap();
    let mq_a: [f64; 9] = mq.clone().try_into().unwrap();
    let forms: Vec<(Form, Vec<f64>, Vec<f64>)> = all_forms()
        .into_iter()
        .map(|f| (f, to_form(d, &lp, f), to_form(d, &lq, f)))
        .collect();
    let before = allocations();
    for (form, x, y) in &forms {
        let len = x.len();
        let (p, q) = (gauss(d, *form, &mp, x), gauss(d, *form, &mq, y));
        for mode in [Mode::Overwrite, Mode::Accumulate] {
            let g = Grads::new(
                GradMut::new(&mut a, &mut b[..len]).mode(mode),
                GradMut::new(&mut c, &mut e[..len]).mode(mode),
            );
            full::kl_grad(&p, &q, 1.0, g, &mut work).unwrap();
            let g = GradMut::new(&mut a, &mut b[..len]).mode(mode);
            full::kl_std_normal_grad(&p, 1.0, g).unwrap();
        }
        if !form.is_dense() {
            let (lp_t, lq_t) = (tril_of(d, *form, x), tril_of(d, *form, y));
            let g = Grads::new(
                GradMut::new(&mut a, &mut b[..n]),
                GradMut::new(&mut c, &mut e[..n]),
            );
            full::kl_grad_packed_fixed::<f64, 9>(&mp_a, lp_t, &mq_a, lq_t, 1.0, g).unwrap();
        }
    }
    let after = allocations();
    assert_eq!(after - before, 0);
    // The counter works.
    let v = std::hint::black_box(vec![1u8; 3]);
    assert!(allocations() > after);
    drop(v);
}

/// `GradMut::reborrow` lets one set of output buffers serve repeated calls:
/// `Overwrite` replaces what an earlier call wrote.
#[test]
fn reborrowed_outputs_are_overwritten() {
    let mut rng = StdRng::seed_from_u64(19);
    let d = 5;
    let [mp, lp, mq, lq] = random_pair(&mut rng, d);
    let n = tri(d);
    let (mut a, mut b, mut c, mut e) = (vec![0.0; d], vec![0.0; n], vec![0.0; d], vec![0.0; n]);
    let (mut gp, mut gq) = (GradMut::new(&mut a, &mut b), GradMut::new(&mut c, &mut e));
    let mut work = vec![0.0; full::kl_grad_scratch(d)];
    let (p, q) = (
        Gaussian::packed(&mp, &lp).unwrap(),
        Gaussian::packed(&mq, &lq).unwrap(),
    );
    let g = Grads::new(gp.reborrow(), gq.reborrow());
    full::kl_grad(&p, &q, 3.0, g, &mut work).unwrap();
    let g = Grads::new(gp.reborrow(), gq.reborrow());
    full::kl_grad(&p, &q, 1.0, g, &mut work).unwrap();
    let form = Form::Packed(Layout::RowMajor, Diagonal::Log);
    let (_, want) = grad_form(d, form, &mp, &lp, &mq, &lq, 1.0);
    assert_eq!([a, b, c, e], want);
}

// ---------------------------------------------------------------------------
// An independent reference: explicit inverse, full matrix products.

type Mat = Vec<Vec<f64>>;

fn matmul(a: &Mat, b: &Mat) -> Mat {
    let (n, k, m) = (a.len(), b.len(), b[0].len());
    (0..n)
        .map(|i| {
            (0..m)
                .map(|j| (0..k).map(|l| a[i][l] * b[l][j]).sum())
                .collect()
        })
        .collect()
}

fn transpose(a: &Mat) -> Mat {
    (0..a[0].len())
        .map(|j| (0..a.len()).map(|i| a[i][j]).collect())
        .collect()
}

/// The gradient with respect to the raw row-major factors, from
/// `Σ_q⁻¹ = L_q⁻ᵀ L_q⁻¹` formed explicitly:
/// `∂/∂μ_q = Σ_q⁻¹ Δ`, `∂/∂L_p = tril(Σ_q⁻¹ L_p) − diag(1/L_pᵢᵢ)`,
/// `∂/∂L_q = −tril(Σ_q⁻¹ (Δ Δᵀ + Σ_p) Σ_q⁻¹ L_q) + diag(1/L_qᵢᵢ)`
/// (the same gradient as the kernel's, written without triangular solves).
fn reference_grad(d: usize, pair: &[Vec<f64>; 4]) -> [Vec<f64>; 4] {
    let [mp, lp_raw, mq, lq_raw] = pair;
    let dense = |raw: &[f64]| -> Mat {
        let v = to_form(d, raw, Form::Dense);
        (0..d)
            .map(|i| {
                (0..d)
                    .map(|j| if j <= i { v[i * d + j] } else { 0.0 })
                    .collect()
            })
            .collect()
    };
    let (l1, l2) = (dense(lp_raw), dense(lq_raw));
    // L_q⁻¹ column by column.
    let mut inv = vec![vec![0.0; d]; d];
    for c in 0..d {
        for i in 0..d {
            let mut s = if i == c { 1.0 } else { 0.0 };
            for k in 0..i {
                s -= l2[i][k] * inv[k][c];
            }
            inv[i][c] = s / l2[i][i];
        }
    }
    let s2inv = matmul(&transpose(&inv), &inv);
    let delta: Vec<f64> = (0..d).map(|i| mq[i] - mp[i]).collect();
    let g_mq: Vec<f64> = (0..d)
        .map(|i| (0..d).map(|j| s2inv[i][j] * delta[j]).sum())
        .collect();
    let g_mp = g_mq.iter().map(|x| -x).collect();
    let a1 = matmul(&s2inv, &l1);
    let mut a = matmul(&l1, &transpose(&l1));
    for i in 0..d {
        for j in 0..d {
            a[i][j] += delta[i] * delta[j];
        }
    }
    let a2 = matmul(&matmul(&matmul(&s2inv, &a), &s2inv), &l2);
    let (mut g_lp, mut g_lq) = (vec![0.0; tri(d)], vec![0.0; tri(d)]);
    for i in 0..d {
        for j in 0..=i {
            let at = Layout::RowMajor.index(d, i, j);
            if i == j {
                g_lp[at] = (a1[i][i] - 1.0 / l1[i][i]) * l1[i][i];
                g_lq[at] = (1.0 / l2[i][i] - a2[i][i]) * l2[i][i];
            } else {
                g_lp[at] = a1[i][j];
                g_lq[at] = -a2[i][j];
            }
        }
    }
    [g_mp, g_lp, g_mq, g_lq]
}

/// `‖L_q L_qᵀ z − (μ_q − μ_p)‖_∞ / ‖ |L_q| |L_q|ᵀ |z| ‖_∞` for the kernel's
/// `z = ∂KL/∂μ_q`: the residual of its two triangular solves, which are
/// backward stable at any conditioning (`(L + ΔL) x = b`, `|ΔL| ≤ γ_d |L|`,
/// Higham Thm 8.5), so this ratio is at most about `2 d ε` whatever `κ`.
fn mean_grad_residual(d: usize, pair: &[Vec<f64>; 4], z: &[f64]) -> f64 {
    let l = to_form(d, &pair[3], Form::Dense);
    let lower = |i: usize, j: usize| if j <= i { l[i * d + j] } else { 0.0 };
    // u = L_qᵀ z, then L_q u; the same with absolute values.
    let u: Vec<f64> = (0..d)
        .map(|k| (k..d).map(|i| lower(i, k) * z[i]).sum())
        .collect();
    let ua: Vec<f64> = (0..d)
        .map(|k| (k..d).map(|i| (lower(i, k) * z[i]).abs()).sum())
        .collect();
    let (mut res, mut mag) = (0.0f64, 0.0f64);
    for i in 0..d {
        let r: f64 = (0..=i).map(|k| lower(i, k) * u[k]).sum::<f64>() - (pair[2][i] - pair[0][i]);
        let m: f64 = (0..=i).map(|k| (lower(i, k) * ua[k]).abs()).sum();
        res = res.max(r.abs());
        mag = mag.max(m);
    }
    res / mag.max(f64::MIN_POSITIVE)
}

/// The kernel against the explicit-inverse reference for `d` up to 64 and
/// `L_q` from well to badly conditioned (off-diagonal scale `s`), with
/// `κ = ‖L_q‖_F ‖L_q⁻¹‖_F`.
///
/// Error model, relative to the largest entry of each gradient: the
/// kernel's back substitutions contribute `O(κ·ε)`; the reference forms
/// `Σ_q⁻¹ = L_q⁻ᵀ L_q⁻¹` and multiplies by it twice, so its own error grows
/// as `κ²·ε` with a small constant (a first-order bound is `d·κ²·ε`, which
/// the measured errors undercut by up to 1e5 at large `d`). Measured over
/// these 24 cases (seed 20): `error ≤ 2.7 · ε · (κ + κ²/500)`; worst at
/// `d = 24, κ = 384` (2.6), κ-dominated at `κ ≤ 400` (ratios 0.1 – 1.5),
/// κ²-dominated above `κ ≈ 4e3` (ratios 0.5 – 1.0, up to `κ = 2.7e7`). The
/// tolerance `32 · ε · (κ + κ²/500)` sits 12× above the worst measured
/// error and at most about 300× above the best.
///
/// When that tolerance reaches `1` (here `κ ≥ 1e10`: 4 of the 24 cases) the
/// two computations share no digits and no relative bound holds. Those
/// cases are checked against a looser stated bound instead of skipped:
/// every gradient entry is finite, `∂/∂μ_p = −∂/∂μ_q` exactly, and the
/// mean gradient's residual `‖Σ_q z − Δμ‖` is within `4 d ε` of
/// `‖|L_q||L_q|ᵀ|z|‖` (backward stability, independent of `κ`; measured
/// at most `0.34 d ε` across all 24 cases, 12× below the bound). That residual check also runs on
/// every other case.
#[test]
fn explicit_inverse_reference_across_conditioning() {
    let mut rng = StdRng::seed_from_u64(20);
    let (mut checked, mut loose, mut worst_ratio, mut worst_res) = (0, 0, 0.0f64, 0.0f64);
    for d in [2, 5, 12, 24, 40, 64] {
        for s in [0.25, 1.0, 2.0, 6.0] {
            let mut pair = random_pair(&mut rng, d);
            for i in 0..d {
                for j in 0..i {
                    pair[3][Layout::RowMajor.index(d, i, j)] *= s * (d as f64).sqrt();
                }
            }
            let want = reference_grad(d, &pair);
            let form = Form::Packed(Layout::RowMajor, Diagonal::Log);
            let (_, got) = grad_form(d, form, &pair[0], &pair[1], &pair[2], &pair[3], 1.0);
            // κ(L_q) from the reference's inverse.
            let l2 = to_form(d, &pair[3], Form::Dense);
            let nl: f64 = (0..d)
                .flat_map(|i| (0..=i).map(move |j| (i, j)))
                .map(|(i, j)| l2[i * d + j].powi(2))
                .sum::<f64>()
                .sqrt();
            let mut inv_norm = 0.0;
            for c in 0..d {
                let mut col = vec![0.0; d];
                for i in 0..d {
                    let mut v = if i == c { 1.0 } else { 0.0 };
                    for k in 0..i {
                        v -= l2[i * d + k] * col[k];
                    }
                    col[i] = v / l2[i * d + i];
                }
                inv_norm += col.iter().map(|x| x * x).sum::<f64>();
            }
            let kappa = nl * inv_norm.sqrt();
            // Conditioning-independent checks, every case.
            let res = mean_grad_residual(d, &pair, &got[2]) / (d as f64 * f64::EPSILON);
            worst_res = worst_res.max(res);
            assert!(
                res <= 4.0,
                "d={d} s={s}: mean-gradient residual {res:.2} d·ε"
            );
            assert!(got.iter().flatten().all(|v| v.is_finite()), "d={d} s={s}");
            assert!(
                got[0]
                    .iter()
                    .zip(&got[2])
                    .all(|(a, b)| a.to_bits() == (-b).to_bits())
            );
            let model = f64::EPSILON * (kappa + kappa * kappa / 500.0);
            let bound = 32.0 * model;
            let mut worst: f64 = 0.0;
            for k in 0..4 {
                let e = max_diff(&got[k], &want[k]) / max_abs(&want[k]).max(f64::MIN_POSITIVE);
                worst = worst.max(e);
            }
            if bound >= 1.0 {
                loose += 1;
                eprintln!(
                    "d={d:2} κ(L_q)={kappa:9.3e}: no relative bound (tolerance {bound:.1e}); \
                     finite, antisymmetric means, residual {res:.2} d·ε"
                );
                continue;
            }
            checked += 1;
            worst_ratio = worst_ratio.max(worst / model);
            eprintln!(
                "d={d:2} κ(L_q)={kappa:9.3e}: worst error {worst:9.3e} of the largest entry \
                 ({:.2} ε·(κ + κ²/500)); residual {res:.2} d·ε",
                worst / model
            );
            assert!(worst <= bound, "d={d} s={s}: {worst:e} > {bound:e}");
        }
    }
    eprintln!(
        "explicit inverse: {checked} cases bounded (worst {worst_ratio:.2} of 32), \
         {loose} checked loosely; worst residual {worst_res:.2} d·ε (of 4)"
    );
    assert_eq!(checked + loose, 24);
}
