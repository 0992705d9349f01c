//! The blocked gradient kernel (`Kernel::Blocked` of `batch::kl_grad`, and
//! `Kernel::Auto` above its crossover) against the scalar gradient kernel
//! (itself checked against PyTorch's autograd in `tests/suite/oracle.rs` and an
//! independent f64 reference in `tests/suite/batch_grad.rs`): every `d` up to 40,
//! then block edges ± 1 and large `d` up to 300; every level the host has
//! (emulated widths included), every packed form, f32 and f64, `Zip` with
//! every broadcast mix and `All`, batch sizes around lane edges, both
//! `Mode`s; too-short workspaces are errors with every output untouched.
//!
//! Tolerance: `tests/suite/batch_grad.rs`'s, `16 · (d + 1) · ε · scale` per
//! entry with `scale` the sum over the entry's pairs of `|u| · κ² ·
//! max(1, largest gradient entry of the pair)`, `κ` the conditioning of
//! `L_q` from the f64 reference; the KL within `8 · d · ε · scale · κ`. The
//! reference is the scalar kernel in f64 on the same (rounded) inputs.
#![cfg(feature = "std")]

use crate::common;
use crate::common::levels;

use gaussian_kl::batch::{self, Pairs};
use gaussian_kl::simd::Level;
use gaussian_kl::{Diagonal, Error, Exec, Gaussians, GradMut, Grads, Kernel, Layout, Mode, Real};

const FORMS: [(Layout, Diagonal); 4] = [
    (Layout::RowMajor, Diagonal::Log),
    (Layout::ColMajor, Diagonal::Plain),
    (Layout::DiagFirst, Diagonal::Log),
    (Layout::RowMajor, Diagonal::Plain),
];

fn tri(d: usize) -> usize {
    d * (d + 1) / 2
}

/// `n` random Gaussians: f64 means and row-major raw log factors.
struct Raw {
    n: usize,
    means: Vec<f64>,
    raw: Vec<f64>,
}

impl Raw {
    fn random(seed: u64, d: usize, n: usize) -> Self {
        let mut rng = common::rng(seed);
        let (mut means, mut raw) = (vec![], vec![]);
        for _ in 0..n {
            means.extend(common::random_mean(&mut rng, d));
            raw.extend(common::random_raw(&mut rng, d));
        }
        Raw { n, means, raw }
    }

    /// The batch in precision `T` and `form`: means, factors.
    fn to<T: Real>(&self, d: usize, form: (Layout, Diagonal)) -> (Vec<T>, Vec<T>) {
        let mut factors = vec![];
        for k in 0..self.n {
            let r = common::round::<T>(&self.raw[k * tri(d)..][..tri(d)]);
            let f = match form.1 {
                Diagonal::Log => r,
                Diagonal::Plain => common::log_to_plain(d, &r),
            };
            factors.extend(common::to_layout(d, &f, form.0));
        }
        (common::round(&self.means), factors)
    }

    /// `κ(L_q)` of Gaussian `k` as `q` (against a standard `p`).
    fn kappa(&self, d: usize, k: usize) -> f64 {
        let lq = common::dense_factor(d, &self.raw[k * tri(d)..][..tri(d)]);
        let mut eye = vec![0.0; d * d];
        for i in 0..d {
            eye[i * d + i] = 1.0;
        }
        let zero = vec![0.0; d];
        common::reference_kl(d, &zero, &eye, &zero, &lq).kappa
    }
}

/// The outputs of one call: KL, then the four gradients.
type Outs<T> = (Vec<T>, [Vec<T>; 4]);

/// One `kl_grad` call with the gradient buffers starting at `pre`.
fn call<T: Real>(
    exec: &Exec,
    (p, q): (&Gaussians<'_, T>, &Gaussians<'_, T>),
    all: bool,
    u: &[T],
    (mode, pre): (Mode, T),
) -> Outs<T> {
    let d = p.dim();
    let qp = if all { Pairs::All(q) } else { Pairs::Zip(q) };
    let mut out = vec![T::NAN; u.len()];
    let mut g =
        [p.len() * d, p.len() * tri(d), q.len() * d, q.len() * tri(d)].map(|n| vec![pre; n]);
    let mut work = vec![T::NAN; batch::kl_grad_scratch::<T>(d, exec).unwrap()];
    let [a, b, c, e] = &mut g;
    let grads = Grads::new(GradMut::new(a, b).mode(mode), GradMut::new(c, e).mode(mode));
    batch::kl_grad(p, qp, u, &mut out, grads, exec, &mut work).unwrap();
    (out, g)
}

/// One test case: `p`, `q`, all pairs or zip, the pairs `(ip, iq)`.
struct Case<'a> {
    d: usize,
    p: &'a Raw,
    q: &'a Raw,
    all: bool,
    pairs: Vec<(usize, usize)>,
    u: Vec<f64>,
    /// `κ(L_q)` of every Gaussian of `q`.
    kappa: Vec<f64>,
}

impl Case<'_> {
    /// Runs `kernel` at each of `levels` in precision `T` and `form` (both
    /// `Mode`s) and checks it against the f64 scalar kernel.
    fn check<T: Real>(&self, levels: &[Level], kernel: Kernel, form: (Layout, Diagonal)) {
        let d = self.d;
        let (mp, fp) = self.p.to::<T>(d, form);
        let (mq, fq) = self.q.to::<T>(d, form);
        let pv = Gaussians::with_layout(self.p.n, d, &mp, &fp, form.0, form.1).unwrap();
        let qv = Gaussians::with_layout(self.q.n, d, &mq, &fq, form.0, form.1).unwrap();
        let u: Vec<T> = common::round(&self.u);
        // The reference: the scalar kernel in f64 on the same inputs.
        let w = |v: &[T]| common::widen(v);
        let (mp64, fp64, mq64, fq64, u64) = (w(&mp), w(&fp), w(&mq), w(&fq), w(&u));
        let pv64 = Gaussians::with_layout(self.p.n, d, &mp64, &fp64, form.0, form.1).unwrap();
        let qv64 = Gaussians::with_layout(self.q.n, d, &mq64, &fq64, form.0, form.1).unwrap();
        let scalar = Exec::new().kernel(Kernel::Scalar);
        let want = call(
            &scalar,
            (&pv64, &qv64),
            self.all,
            &u64,
            (Mode::Overwrite, 0.0),
        );
        let scale = self.scales(&want);
        for &level in levels {
            let exec = Exec::new().level(level).kernel(kernel);
            let what = format!("{level:?} {kernel:?} d={d} {form:?} all={}", self.all);
            let got = call(&exec, (&pv, &qv), self.all, &u, (Mode::Overwrite, T::NAN));
            compare(&what, d, &got, &want, &scale, 0.0);
            let pre = T::from_f64(0.75);
            let got = call(&exec, (&pv, &qv), self.all, &u, (Mode::Accumulate, pre));
            compare(&format!("{what} accumulate"), d, &got, &want, &scale, 0.75);
        }
    }

    /// Per-entry tolerance scales of the gradients, then the KL's.
    fn scales(&self, want: &Outs<f64>) -> [Vec<f64>; 5] {
        let d = self.d;
        let t = tri(d);
        let g = &want.1;
        let mut sc = [
            vec![0.0; self.p.n * d],
            vec![0.0; self.p.n * t],
            vec![0.0; self.q.n * d],
            vec![0.0; self.q.n * t],
            vec![0.0; self.pairs.len()],
        ];
        for (k, &(ip, iq)) in self.pairs.iter().enumerate() {
            let uk = self.u[k].abs().max(1e-300);
            // The pair's largest gradient entry (from the summed rows, an
            // upper bound's stand-in), divided back by its weight.
            let rows = [(0, ip, d), (1, ip, t), (2, iq, d), (3, iq, t)];
            let big = rows
                .iter()
                .flat_map(|&(s, r, n)| g[s][r * n..][..n].iter())
                .fold(1.0f64, |m, x| m.max(x.abs() / uk));
            let kap = self.kappa[iq];
            let mag = uk * big * kap * kap;
            for (s, r, n) in rows {
                for x in &mut sc[s][r * n..][..n] {
                    *x += mag;
                }
            }
            sc[4][k] = kap * (want.0[k].abs() + d as f64 + 1.0);
        }
        sc
    }
}

/// `got` against `want` (plus `shift` in every gradient entry).
fn compare<T: Real>(
    what: &str,
    d: usize,
    got: &Outs<T>,
    want: &Outs<f64>,
    scale: &[Vec<f64>; 5],
    shift: f64,
) {
    let eps = T::EPSILON.to_f64();
    for (k, (&o, &r)) in got.0.iter().zip(&want.0).enumerate() {
        let tol = 8.0 * d.max(1) as f64 * eps * scale[4][k];
        let err = common::rel_err(o.to_f64(), r, 1.0);
        assert!(err <= tol, "{what}: kl[{k}] {o} vs {r} (tol {tol:e})");
    }
    let c = 16.0 * (d + 1) as f64 * eps;
    for (s, sc) in scale.iter().take(4).enumerate() {
        for (i, (&x, &y)) in got.1[s].iter().zip(&want.1[s]).enumerate() {
            let tol = c * (sc[i] + shift);
            let err = common::rel_err(x.to_f64(), y + shift, 1.0);
            assert!(
                err <= tol,
                "{what}: gradient {s}[{i}] {x} vs {y} (tol {tol:e})"
            );
        }
    }
}

/// Pairs, weights and `κ` of one zip or all-pairs call.
fn case<'a>(d: usize, p: &'a Raw, q: &'a Raw, all: bool, seed: u64) -> Case<'a> {
    let pairs: Vec<(usize, usize)> = if all {
        (0..p.n * q.n).map(|k| (k / q.n, k % q.n)).collect()
    } else {
        let n = p.n.max(q.n);
        (0..n)
            .map(|k| {
                (
                    k.min(p.n - 1) * usize::from(p.n != 1),
                    k * usize::from(q.n != 1),
                )
            })
            .collect()
    };
    let mut rng = common::rng(seed);
    let u = common::normals(&mut rng, pairs.len());
    let kappa = (0..q.n).map(|k| q.kappa(d, k)).collect();
    Case {
        d,
        p,
        q,
        all,
        pairs,
        u,
        kappa,
    }
}

/// Every `d` up to 40, then block edges ± 1 and large `d`: a few pairs per
/// `d` (fewer at large `d`, for unoptimized test builds).
#[test]
fn blocked_meets_the_scalar_gradient_over_d() {
    let big = [63, 64, 65, 127, 128, 129, 255, 256, 257, 300];
    for d in (1..=40).chain(big) {
        let n = if d <= 40 { 3 } else { 1 };
        let (p, q) = (
            Raw::random(d as u64, d, n),
            Raw::random(1000 + d as u64, d, n),
        );
        let c = case(d, &p, &q, false, 7 + d as u64);
        let levels = levels();
        for (f, &form) in FORMS.iter().enumerate() {
            // Every form up to d = 8, two of them (taking turns) to 40 at
            // every level; above, every form at two levels (taking turns).
            if d > 8 && d <= 40 && f != d % 4 && f != (d + 1) % 4 {
                continue;
            }
            let lv: Vec<Level> = if d <= 40 {
                levels.clone()
            } else {
                vec![levels[(d + f) % levels.len()], *levels.last().unwrap()]
            };
            c.check::<f32>(&lv, Kernel::Blocked, form);
            c.check::<f64>(&lv, Kernel::Blocked, form);
        }
    }
}

/// The blocked kernel's edges between 41 and 97 at every level and form:
/// 4 vectors of `X` or `Xᵀ` (split into panels of 2 + 2, f32 at 16 lanes
/// for d = 48..64), `d` whose vectors of rows pass the rows padded to whole
/// tiles (the shuffle transpose reads `L` rows of `X` at a time: d ≡ 1..8
/// mod 16 at 16 lanes, 41 at 8 lanes and 4-row tiles), tile edges ± 1.
#[test]
fn blocked_panel_and_transpose_edges() {
    for d in [41, 47, 48, 49, 56, 57, 63, 72, 73, 81, 89, 97] {
        let (p, q) = (
            Raw::random(d as u64, d, 1),
            Raw::random(2000 + d as u64, d, 1),
        );
        let c = case(d, &p, &q, false, 11 + d as u64);
        let lv = levels();
        for &form in &FORMS {
            c.check::<f32>(&lv, Kernel::Blocked, form);
            c.check::<f64>(&lv, Kernel::Blocked, form);
        }
    }
}

/// `Zip` with every broadcast mix and `All`, batch sizes around the lane
/// edges (the kernel is one pair at a time, but the pairing and the
/// gradient sums are not), and `Auto` at d = 45 (lockstep or blocked by the
/// level's crossover).
#[test]
fn blocked_zip_all_and_batch_sizes() {
    for d in [17, 45] {
        for n in [1, 2, 8, 9, 16, 17] {
            let s = 100 * d as u64 + n as u64;
            let (p, q) = (Raw::random(s, d, n), Raw::random(s + 1, d, n));
            let (p1, q1) = (Raw::random(s + 2, d, 1), Raw::random(s + 3, d, 1));
            let (pa, qa) = (Raw::random(s + 4, d, n.min(5)), Raw::random(s + 5, d, 3));
            let cases = [
                case(d, &p, &q, false, s),
                case(d, &p, &q1, false, s + 1),
                case(d, &p1, &q, false, s + 2),
                case(d, &pa, &qa, true, s + 3),
            ];
            if d > 44 {
                cases[0].check::<f32>(&[Level::detect()], Kernel::Auto, FORMS[0]);
            }
            let form = FORMS[n % FORMS.len()];
            let lv = levels();
            for c in &cases {
                c.check::<f32>(&lv, Kernel::Blocked, form);
                c.check::<f64>(&lv, Kernel::Blocked, form);
            }
        }
    }
}

/// The lockstep kernel's transposed path: full blocks of consecutive
/// row-major pairs with log diagonals, gathered and scattered by the level's
/// shuffles where it has them (AVX-512), every other block by the element
/// copies. Every `d` to 20 and the tile edges of the records past it, whole
/// blocks and a partial last one, gradients written (`Overwrite`, one pair
/// per Gaussian) and added (`Accumulate`), both in `check`.
#[test]
fn lanes_transposed_path_over_d_and_block_edges() {
    for d in (1..=20).chain([22, 23, 31, 44, 49, 64]) {
        for n in [16, 35] {
            let s = 7000 + 100 * d as u64 + n as u64;
            let (p, q) = (Raw::random(s, d, n), Raw::random(s + 1, d, n));
            let c = case(d, &p, &q, false, s);
            c.check::<f32>(&levels(), Kernel::Lanes, FORMS[0]);
            c.check::<f64>(&levels(), Kernel::Lanes, FORMS[0]);
        }
    }
}

/// The scratch of `Blocked`, and `Auto` above every crossover (`d > 64`), is
/// the blocked kernel's; a workspace one short is an error that touches no
/// output, for every level.
#[test]
fn too_short_workspace_is_an_error_and_touches_nothing() {
    for d in [1, 5, 17, 40, 64, 65] {
        let (p, q) = (Raw::random(1, d, 3), Raw::random(2, d, 3));
        let (mp, fp) = p.to::<f32>(d, FORMS[0]);
        let (mq, fq) = q.to::<f32>(d, FORMS[0]);
        let pv = Gaussians::new(3, d, &mp, &fp).unwrap();
        let qv = Gaussians::new(3, d, &mq, &fq).unwrap();
        for level in levels() {
            let exec = Exec::new().level(level).kernel(Kernel::Blocked);
            let need = batch::kl_grad_scratch::<f32>(d, &exec).unwrap();
            assert!(need > 0, "d={d}");
            if d > 64 {
                let auto = Exec::new().level(level);
                assert_eq!(batch::kl_grad_scratch::<f32>(d, &auto).unwrap(), need);
            }
            for len in [0, need - 1] {
                let mut work = vec![0.0f32; len];
                let mut out = [7.0f32; 3];
                let mut g = [3 * d, 3 * tri(d), 3 * d, 3 * tri(d)].map(|n| vec![7.0f32; n]);
                let [a, b, c, e] = &mut g;
                let grads = Grads::new(GradMut::new(a, b), GradMut::new(c, e));
                let r = batch::kl_grad(
                    &pv,
                    Pairs::Zip(&qv),
                    &[1.0; 3],
                    &mut out,
                    grads,
                    &exec,
                    &mut work,
                );
                assert!(
                    matches!(r, Err(Error::WorkspaceTooSmall { .. })),
                    "{level:?} d={d} len={len}: {r:?}"
                );
                assert_eq!(out, [7.0; 3]);
                assert!(g.iter().flatten().all(|&x| x == 7.0));
            }
        }
    }
}
