//! Gradients of the full-rank KL: PyTorch autograd oracle, central finite
//! differences in every input form, the VAE prior path, fixed = runtime,
//! batched = looped, and zero allocations.

// Index loops mirror the subscripts of the linear algebra they check.
#![allow(clippy::needless_range_loop)]

use gaussian_kl::full::{self, KlGrad};
use gaussian_kl::{Diagonal, Error, Layout, PackedTril};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod counting;

use counting::allocations;

// ---------------------------------------------------------------------------
// Input forms.

/// One way of handing a factor to the crate.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    Packed(Layout, Diagonal),
    Dense,
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
    v
}

fn tri(d: usize) -> usize {
    d * (d + 1) / 2
}

/// Converts a row-major raw factor (log diagonal, seed 000's form) into
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
        Form::Dense => {
            let mut out = vec![7.25; d * d];
            for i in 0..d {
                for j in 0..=i {
                    let v = raw[Layout::RowMajor.index(d, i, j)];
                    out[i * d + j] = if i == j { v.exp() } else { v };
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
        Form::Dense => vec![0.0; d * d],
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
            let dst = match form {
                Form::Packed(layout, _) => layout.index(d, i, j),
                Form::Dense => i * d + j,
            };
            out[dst] = v;
        }
    }
    out
}

fn tril_of(d: usize, form: Form, data: &[f64]) -> PackedTril<'_, f64> {
    match form {
        Form::Packed(layout, diag) => PackedTril::new(d, data).layout(layout).diagonal(diag),
        Form::Dense => unreachable!("dense factors are not PackedTril"),
    }
}

/// `KL(p‖q)` with both factors in `form` (the function being differentiated).
fn kl_form(d: usize, form: Form, mp: &[f64], lp: &[f64], mq: &[f64], lq: &[f64]) -> f64 {
    let mut work = vec![0.0; full::workspace_len(d)];
    match form {
        Form::Dense => full::kl_dense(mp, lp, mq, lq, &mut work).unwrap(),
        _ => full::kl(
            mp,
            tril_of(d, form, lp),
            mq,
            tril_of(d, form, lq),
            &mut work,
        )
        .unwrap(),
    }
}

/// The four gradients (mean_p, l_p, mean_q, l_q) and the KL, from the kernel
/// under test.
type Grads = (f64, [Vec<f64>; 4]);

fn grad_form(
    d: usize,
    form: Form,
    mp: &[f64],
    lp: &[f64],
    mq: &[f64],
    lq: &[f64],
    upstream: f64,
) -> Grads {
    let n = lp.len();
    let (mut a, mut b, mut c, mut e) = (vec![0.0; d], vec![0.0; n], vec![0.0; d], vec![0.0; n]);
    let mut work = vec![0.0; full::grad_workspace_len(d)];
    let g = KlGrad::new(&mut a, &mut b, &mut c, &mut e);
    let kl = match form {
        Form::Dense => full::kl_grad_dense(mp, lp, mq, lq, upstream, g, &mut work).unwrap(),
        _ => full::kl_grad(
            mp,
            tril_of(d, form, lp),
            mq,
            tril_of(d, form, lq),
            upstream,
            g,
            &mut work,
        )
        .unwrap(),
    };
    (kl, [a, b, c, e])
}

/// A seeded random pair in seed 000's raw form: means in [−1, 1], raw
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
        match form {
            Form::Dense => (0..n).filter(|&k| k % d <= k / d).collect(),
            _ => (0..n).collect(),
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
        if form == Form::Dense && k % 2 == 1 {
            for i in 0..d {
                for j in i + 1..d {
                    assert_eq!(got[k][i * d + j], 0.0, "upper triangle of a dense gradient");
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
        let mut work = vec![0f32; full::grad_workspace_len(d)];
        full::kl_grad(
            &mp32,
            PackedTril::new(d, &lp32),
            &mq32,
            PackedTril::new(d, &lq32),
            1.0,
            KlGrad::new(&mut a, &mut b, &mut c, &mut e),
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
            let (kl, want_kl) = match form {
                Form::Dense => (
                    full::kl_std_normal_grad_dense(&mp, &l, 1.0, &mut gm, &mut gl).unwrap(),
                    full::kl_std_normal_dense(&mp, &l).unwrap(),
                ),
                _ => (
                    full::kl_std_normal_grad(&mp, tril_of(d, form, &l), 1.0, &mut gm, &mut gl)
                        .unwrap(),
                    full::kl_std_normal(&mp, tril_of(d, form, &l)).unwrap(),
                ),
            };
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
            let fd = fd_grad(&mut x, FD_H, |x| match form {
                Form::Dense => full::kl_std_normal_dense(&mp, x).unwrap(),
                _ => full::kl_std_normal(&mp, tril_of(d, form, x)).unwrap(),
            });
            for i in 0..l.len() {
                if form == Form::Dense && i % d > i / d {
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
    assert_eq!(g.l_p.as_flattened(), g_rt[1].as_slice());
    assert_eq!(g.mean_q.as_slice(), g_rt[2].as_slice());
    assert_eq!(g.l_q.as_flattened(), g_rt[3].as_slice());
    // Packed fixed = packed runtime, every packed form.
    for form in all_forms().into_iter().filter(|f| *f != Form::Dense) {
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
            KlGrad::new(&mut p1, &mut p2, &mut p3, &mut p4),
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
    let mut work = vec![0.0; full::grad_workspace_len(d)];
    let (mut a, mut b, mut c, mut e) = (vec![9.0; d], vec![9.0; 6], vec![9.0; d], vec![9.0; 6]);
    let call = |a: &mut [f64], b: &mut [f64], c: &mut [f64], e: &mut [f64], work: &mut [f64]| {
        full::kl_grad(
            &m,
            PackedTril::new(d, &l),
            &m,
            PackedTril::new(d, &l),
            1.0,
            KlGrad::new(a, b, c, e),
            work,
        )
    };
    let lm = |what, expected, found| Error::LengthMismatch {
        what,
        expected,
        found,
    };
    assert_eq!(
        call(&mut a[..2], &mut b, &mut c, &mut e, &mut work),
        Err(lm("grad.mean_p", 3, 2))
    );
    assert_eq!(
        call(&mut a, &mut b[..5], &mut c, &mut e, &mut work),
        Err(lm("grad.l_p", 6, 5))
    );
    assert_eq!(
        call(&mut a, &mut b, &mut c[..0], &mut e, &mut work),
        Err(lm("grad.mean_q", 3, 0))
    );
    assert_eq!(
        call(&mut a, &mut b, &mut c, &mut e[..1], &mut work),
        Err(lm("grad.l_q", 6, 1))
    );
    let short = full::grad_workspace_len(d) - 1;
    assert_eq!(
        call(&mut a, &mut b, &mut c, &mut e, &mut work[..short]),
        Err(Error::WorkspaceTooSmall {
            expected: short + 1,
            found: short
        })
    );
    assert!(a.iter().chain(&b).chain(&c).chain(&e).all(|&v| v == 9.0));

    // Non-positive plain diagonal: an error, outputs untouched.
    let bad = [1.0f64, 0.2, 0.0, 0.0, 0.5, 1.0];
    let r = full::kl_grad(
        &m,
        PackedTril::new(d, &bad).diagonal(Diagonal::Plain),
        &m,
        PackedTril::new(d, &l),
        1.0,
        KlGrad::new(&mut a, &mut b, &mut c, &mut e),
        &mut work,
    );
    assert_eq!(
        r,
        Err(Error::NonPositiveDiagonal {
            what: "l_p",
            index: 1
        })
    );
    assert!(a.iter().chain(&b).chain(&c).chain(&e).all(|&v| v == 9.0));

    // Dimension mismatch and absurd d with short slices.
    let r = full::kl_grad(
        &m,
        PackedTril::new(d, &l),
        &m,
        PackedTril::new(usize::MAX, &l),
        1.0,
        KlGrad::new(&mut a, &mut b, &mut c, &mut e),
        &mut work,
    );
    assert!(matches!(r, Err(Error::DimensionMismatch { .. })));
    let r = full::kl_grad(
        &m,
        PackedTril::new(usize::MAX / 2, &l),
        &m,
        PackedTril::new(usize::MAX / 2, &l),
        1.0,
        KlGrad::new(&mut a, &mut b, &mut c, &mut e),
        &mut work,
    );
    assert!(r.is_err());
    assert_eq!(full::grad_workspace_len(usize::MAX), usize::MAX);
    assert_eq!(full::grad_workspace_len(usize::MAX / 2), usize::MAX);

    // Dense shapes.
    let r = full::kl_grad_dense(
        &m,
        &[1.0; 9],
        &m,
        &[1.0; 9],
        1.0,
        KlGrad::new(&mut a, &mut b, &mut c, &mut e),
        &mut work,
    );
    assert_eq!(r, Err(lm("grad.l_p", 9, 6)));
    // Fixed packed with the wrong d.
    let r = full::kl_grad_packed_fixed::<f64, 2>(
        &[0.0; 2],
        PackedTril::new(3, &l),
        &[0.0; 2],
        PackedTril::new(3, &l),
        1.0,
        KlGrad::new(&mut a, &mut b, &mut c, &mut e),
    );
    assert!(matches!(
        r,
        Err(Error::DimensionMismatch { what: "l_p", .. })
    ));
    // Std normal shapes.
    assert_eq!(
        full::kl_std_normal_grad(&m, PackedTril::new(d, &l), 1.0, &mut a, &mut b[..2]),
        Err(lm("grad_l", 6, 2))
    );
    assert_eq!(
        full::kl_std_normal_grad_dense(&m, &[1.0; 9], 1.0, &mut a[..1], &mut [0.0; 9]),
        Err(lm("grad_mean", 3, 1))
    );
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
    let kl = full::kl_grad(
        &[],
        PackedTril::new(0, &[]),
        &[],
        PackedTril::new(0, &[]),
        1.0,
        KlGrad::new(&mut [], &mut [], &mut [], &mut []),
        &mut work,
    );
    assert_eq!(kl, Ok(0.0));
    let (kl, _) = full::kl_grad_fixed::<f64, 0>(&[], &[], &[], &[], 1.0).unwrap();
    assert_eq!(kl, 0.0);
    assert_eq!(
        full::kl_std_normal_grad_dense(&[], &[], 1.0, &mut [], &mut []),
        Ok(0.0)
    );
}

// ---------------------------------------------------------------------------
// No allocation.

#[test]
fn single_pair_kernels_do_not_allocate() {
    let d = 9;
    let mut rng = StdRng::seed_from_u64(18);
    let [mp, lp, mq, lq] = random_pair(&mut rng, d);
    let dense_p = to_form(d, &lp, Form::Dense);
    let dense_q = to_form(d, &lq, Form::Dense);
    let n = tri(d);
    let (mut a, mut b, mut c, mut e) = (
        vec![0.0; d],
        vec![0.0; d * d],
        vec![0.0; d],
        vec![0.0; d * d],
    );
    let mut work = vec![0.0; full::grad_workspace_len(d)];
    let mp_a: [f64; 9] = mp.clone().try_into().unwrap();
    let mq_a: [f64; 9] = mq.clone().try_into().unwrap();
    let forms: Vec<(Form, Vec<f64>, Vec<f64>)> = all_forms()
        .into_iter()
        .filter(|f| *f != Form::Dense)
        .map(|f| (f, to_form(d, &lp, f), to_form(d, &lq, f)))
        .collect();
    let before = allocations();
    for (form, x, y) in &forms {
        let (lp_t, lq_t) = (tril_of(d, *form, x), tril_of(d, *form, y));
        let g = KlGrad::new(&mut a, &mut b[..n], &mut c, &mut e[..n]);
        full::kl_grad(&mp, lp_t, &mq, lq_t, 1.0, g, &mut work).unwrap();
        let g = KlGrad::new(&mut a, &mut b[..n], &mut c, &mut e[..n]);
        full::kl_grad_packed_fixed::<f64, 9>(&mp_a, lp_t, &mq_a, lq_t, 1.0, g).unwrap();
        full::kl_std_normal_grad(&mp, lp_t, 1.0, &mut a, &mut b[..n]).unwrap();
    }
    let g = KlGrad::new(&mut a, &mut b, &mut c, &mut e);
    full::kl_grad_dense(&mp, &dense_p, &mq, &dense_q, 1.0, g, &mut work).unwrap();
    full::kl_std_normal_grad_dense(&mp, &dense_p, 1.0, &mut a, &mut b).unwrap();
    let after = allocations();
    assert_eq!(after - before, 0);
    // The counter works.
    let v = std::hint::black_box(vec![1u8; 3]);
    assert!(allocations() > after);
    drop(v);
}

// ---------------------------------------------------------------------------
// The batched layer.

#[cfg(feature = "std")]
mod batch {
    use super::*;
    use gaussian_kl::batch::{Kernel, Options};
    use gaussian_kl::batch_grad::{self, BatchGrad, GaussianBatch};

    /// `n` random Gaussians of dimension `d` in `form`, flattened.
    fn batch_of(rng: &mut StdRng, d: usize, n: usize, form: Form) -> (Vec<f64>, Vec<f64>) {
        let (mut means, mut factors) = (vec![], vec![]);
        for _ in 0..n {
            let [m, l, _, _] = random_pair(rng, d);
            means.extend(m);
            factors.extend(to_form(d, &l, form));
        }
        (means, factors)
    }

    fn gb<'a>(form: Form, means: &'a [f64], factors: &'a [f64]) -> GaussianBatch<'a, f64> {
        let Form::Packed(layout, diag) = form else {
            unreachable!()
        };
        GaussianBatch::new(means, factors)
            .layout(layout)
            .diagonal(diag)
    }

    /// Batched (the scalar kernel) = looped, bit for bit, with and without
    /// broadcasting of `p`, `q` and the upstream weight; a broadcast side's
    /// gradient is the sum, in batch order, of the per-pair gradients. (The
    /// SIMD kernel against the same loop: `tests/batch_grad.rs`.)
    #[test]
    fn batch_equals_loop_with_broadcasting() {
        let mut rng = StdRng::seed_from_u64(21);
        let n = 5;
        for d in [1, 2, 3, 7, 16] {
            let t = tri(d);
            for form in all_forms().into_iter().filter(|f| *f != Form::Dense) {
                for (np, nq) in [(n, n), (n, 1), (1, n), (1, 1)] {
                    for per_pair_upstream in [false, true] {
                        let (mp, lp) = batch_of(&mut rng, d, np, form);
                        let (mq, lq) = batch_of(&mut rng, d, nq, form);
                        let upstream: Vec<f64> = if per_pair_upstream {
                            (0..n).map(|b| 0.5 + b as f64 * 0.37).collect()
                        } else {
                            vec![1.7]
                        };
                        let mut kl = vec![0.0; n];
                        let (mut g1, mut g2) = (vec![9.0; mp.len()], vec![9.0; lp.len()]);
                        let (mut g3, mut g4) = (vec![9.0; mq.len()], vec![9.0; lq.len()]);
                        let mut work = vec![0.0; batch_grad::workspace_len(d)];
                        Options::new()
                            .kernel(Kernel::Scalar)
                            .kl_grad_packed(
                                d,
                                gb(form, &mp, &lp),
                                gb(form, &mq, &lq),
                                &upstream,
                                &mut kl,
                                BatchGrad {
                                    means_p: &mut g1,
                                    factors_p: &mut g2,
                                    means_q: &mut g3,
                                    factors_q: &mut g4,
                                },
                                &mut work,
                            )
                            .unwrap();
                        // The loop.
                        let (mut r1, mut r2) = (vec![0.0; mp.len()], vec![0.0; lp.len()]);
                        let (mut r3, mut r4) = (vec![0.0; mq.len()], vec![0.0; lq.len()]);
                        for b in 0..n {
                            let (ip, iq) =
                                (if np == 1 { 0 } else { b }, if nq == 1 { 0 } else { b });
                            let u = upstream[if per_pair_upstream { b } else { 0 }];
                            let (kl_b, g) = grad_form(
                                d,
                                form,
                                &mp[ip * d..(ip + 1) * d],
                                &lp[ip * t..(ip + 1) * t],
                                &mq[iq * d..(iq + 1) * d],
                                &lq[iq * t..(iq + 1) * t],
                                u,
                            );
                            assert_eq!(kl[b].to_bits(), kl_b.to_bits());
                            for (acc, part, i, w) in [
                                (&mut r1, &g[0], ip, d),
                                (&mut r2, &g[1], ip, t),
                                (&mut r3, &g[2], iq, d),
                                (&mut r4, &g[3], iq, t),
                            ] {
                                for (a, v) in acc[i * w..(i + 1) * w].iter_mut().zip(part) {
                                    *a += v;
                                }
                            }
                        }
                        assert_eq!(
                            (g1, g2, g3, g4),
                            (r1, r2, r3, r4),
                            "d={d} {form:?} {np} {nq}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn batch_std_normal_equals_loop() {
        let mut rng = StdRng::seed_from_u64(22);
        let n = 6;
        for d in [1, 4, 11] {
            let t = tri(d);
            for form in all_forms().into_iter().filter(|f| *f != Form::Dense) {
                let (m, l) = batch_of(&mut rng, d, n, form);
                let upstream: Vec<f64> = (0..n).map(|b| 1.0 - 0.25 * b as f64).collect();
                let mut kl = vec![0.0; n];
                let (mut gm, mut gl) = (vec![0.0; m.len()], vec![0.0; l.len()]);
                batch_grad::kl_std_normal_grad_packed(
                    d,
                    gb(form, &m, &l),
                    &upstream,
                    &mut kl,
                    &mut gm,
                    &mut gl,
                )
                .unwrap();
                for b in 0..n {
                    let (mut rm, mut rl) = (vec![0.0; d], vec![0.0; t]);
                    let k = full::kl_std_normal_grad(
                        &m[b * d..(b + 1) * d],
                        tril_of(d, form, &l[b * t..(b + 1) * t]),
                        upstream[b],
                        &mut rm,
                        &mut rl,
                    )
                    .unwrap();
                    assert_eq!(kl[b].to_bits(), k.to_bits());
                    assert_eq!(gm[b * d..(b + 1) * d], rm[..]);
                    assert_eq!(gl[b * t..(b + 1) * t], rl[..]);
                }
            }
        }
    }

    #[test]
    fn batch_shape_errors() {
        let d = 2;
        let (m, l) = (vec![0.0; 6], vec![0.0; 9]);
        let mut kl = vec![0.0; 3];
        let (mut g1, mut g2, mut g3, mut g4) =
            (vec![0.0; 6], vec![0.0; 9], vec![0.0; 6], vec![0.0; 9]);
        let mut work = vec![0.0; batch_grad::workspace_len(d)];
        let mut run = |pm: &[f64], pl: &[f64], up: &[f64], g4_len: usize, work_len: usize| {
            batch_grad::kl_grad_packed(
                d,
                GaussianBatch::new(pm, pl),
                GaussianBatch::new(&m, &l),
                up,
                &mut kl,
                BatchGrad {
                    means_p: &mut g1[..pm.len()],
                    factors_p: &mut g2[..pl.len()],
                    means_q: &mut g3,
                    factors_q: &mut g4[..g4_len],
                },
                &mut work[..work_len],
            )
        };
        let w = batch_grad::workspace_len(d);
        let lm = |what, expected, found| {
            Err(Error::LengthMismatch {
                what,
                expected,
                found,
            })
        };
        assert_eq!(run(&m[..4], &l, &[1.0], 9, w), lm("p.means", 6, 4));
        assert_eq!(run(&m, &l[..8], &[1.0], 9, w), lm("p.factors", 9, 8));
        assert_eq!(run(&m[..2], &l[..6], &[1.0], 9, w), lm("p.factors", 3, 6));
        assert_eq!(run(&m, &l, &[1.0, 2.0], 9, w), lm("upstream", 3, 2));
        assert_eq!(run(&m, &l, &[1.0], 3, w), lm("grad.factors_q", 9, 3));
        assert_eq!(
            run(&m, &l, &[1.0], 9, w - 1),
            Err(Error::WorkspaceTooSmall {
                expected: w,
                found: w - 1
            })
        );
        assert_eq!(run(&m, &l, &[1.0; 3], 9, w), Ok(()));
        assert_eq!(
            batch_grad::kl_std_normal_grad_packed(
                d,
                GaussianBatch::new(&m, &l),
                &[1.0],
                &mut [0.0; 2],
                &mut [0.0; 6],
                &mut [0.0; 9],
            ),
            lm("p.means", 4, 6)
        );
    }

    /// Every batched kernel (the SIMD one at every available level, on the
    /// stack for `d ≤ 16` and in the workspace above; the scalar loop), zip
    /// and all pairs, and the prior path: no allocation.
    #[test]
    fn batch_does_not_allocate() {
        let mut rng = StdRng::seed_from_u64(23);
        let n = 8;
        let form = Form::Packed(Layout::ColMajor, Diagonal::Log);
        let mut options: Vec<Options> = gaussian_kl::simd::Level::all()
            .iter()
            .filter_map(|&l| Options::new().level(l))
            .collect();
        options.push(Options::new().kernel(Kernel::Scalar));
        for d in [6, 20] {
            let (mp, lp) = batch_of(&mut rng, d, n, form);
            let (mq, lq) = batch_of(&mut rng, d, 3, form);
            let mut kl = vec![0.0; 3 * n];
            let (mut g1, mut g2) = (vec![0.0; mp.len()], vec![0.0; lp.len()]);
            let (mut g3, mut g4) = (vec![0.0; mq.len()], vec![0.0; lq.len()]);
            let mut work = vec![0.0; batch_grad::workspace_len(d)];
            let upstream = vec![0.5; 3 * n];
            for opts in &options {
                let before = allocations();
                opts.kl_grad_packed(
                    d,
                    gb(form, &mp, &lp),
                    gb(form, &mq[..d], &lq[..tri(d)]),
                    &upstream[..n],
                    &mut kl[..n],
                    BatchGrad {
                        means_p: &mut g1,
                        factors_p: &mut g2,
                        means_q: &mut g3[..d],
                        factors_q: &mut g4[..tri(d)],
                    },
                    &mut work,
                )
                .unwrap();
                opts.kl_grad_all_pairs(
                    d,
                    gb(form, &mp, &lp),
                    gb(form, &mq, &lq),
                    &upstream,
                    &mut kl,
                    BatchGrad {
                        means_p: &mut g1,
                        factors_p: &mut g2,
                        means_q: &mut g3,
                        factors_q: &mut g4,
                    },
                    &mut work,
                )
                .unwrap();
                assert_eq!(allocations() - before, 0, "d={d} {opts:?}");
            }
            let before = allocations();
            batch_grad::kl_std_normal_grad_packed(
                d,
                gb(form, &mp, &lp),
                &[1.0],
                &mut kl[..n],
                &mut g1,
                &mut g2,
            )
            .unwrap();
            assert_eq!(allocations() - before, 0);
        }
    }
}

/// `KlGrad::reborrow` lets one set of output slices serve repeated calls.
#[test]
fn reborrowed_outputs_are_overwritten() {
    let mut rng = StdRng::seed_from_u64(19);
    let d = 5;
    let [mp, lp, mq, lq] = random_pair(&mut rng, d);
    let n = tri(d);
    let (mut a, mut b, mut c, mut e) = (vec![0.0; d], vec![0.0; n], vec![0.0; d], vec![0.0; n]);
    let mut g = KlGrad::new(&mut a, &mut b, &mut c, &mut e);
    let mut work = vec![0.0; full::grad_workspace_len(d)];
    let (tp, tq) = (PackedTril::new(d, &lp), PackedTril::new(d, &lq));
    full::kl_grad(&mp, tp, &mq, tq, 3.0, g.reborrow(), &mut work).unwrap();
    full::kl_grad(&mp, tp, &mq, tq, 1.0, g.reborrow(), &mut work).unwrap();
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

/// The kernel against the explicit-inverse reference for `d` up to 64 and
/// `L_q` from well to badly conditioned (off-diagonal scale `s`). Both are
/// f64 computations with error growing as `d · κ(L_q)² · ε` (the gradient
/// of `L_q` carries `Σ_q⁻¹` twice), so the bound is `16 · d · κ² · ε` of
/// the largest entry, `κ = ‖L_q‖_F ‖L_q⁻¹‖_F`. Cases where that bound
/// exceeds `1e-3` would test nothing and are skipped (and printed).
#[test]
fn explicit_inverse_reference_across_conditioning() {
    let mut rng = StdRng::seed_from_u64(20);
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
            let mut worst: f64 = 0.0;
            for k in 0..4 {
                let e = max_diff(&got[k], &want[k]) / max_abs(&want[k]).max(f64::MIN_POSITIVE);
                worst = worst.max(e);
            }
            let bound = 16.0 * d as f64 * kappa * kappa * f64::EPSILON;
            if bound > 1e-3 {
                eprintln!("d={d:2} κ(L_q)={kappa:9.3e}: skipped, too ill-conditioned to bound");
                continue;
            }
            eprintln!(
                "d={d:2} κ(L_q)={kappa:9.3e}: worst error {worst:9.3e} of the largest entry ({:.1e} ε·d·κ²)",
                worst / (d as f64 * kappa * kappa * f64::EPSILON)
            );
            assert!(worst <= bound, "d={d} s={s}: {worst:e} > {bound:e}");
        }
    }
}
