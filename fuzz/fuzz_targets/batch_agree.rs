//! Batch agreement: the values of `batch::kl` (zipped, broadcast and all
//! pairs) and `batch::kl_std_normal`, computed by every kernel
//! (`Kernel::{Auto, Scalar, Lanes, Blocked}`) at every SIMD level the host
//! has (with the emulated widths), each against the independent
//! double-double reference pair by pair.
//!
//! Input: a batch of `n_p ∈ 1..=20` and `n_q ∈ 1..=20` Gaussians of one
//! `d ∈ 1..=40` (so the lockstep kernel's tail lanes and the blocked
//! kernel's edges are crossed), each side in one layout and one diagonal
//! encoding, values exact in f32 and f64 (`FullCase`'s generators); each
//! batch runs in both precisions.
//!
//! Checks, for `T` ∈ {f32, f64}, every (kernel, level) pair:
//! - every output within `dd::tolerance` of the reference (the bound of
//!   `full_agree`: `8 (d+1)^{3/2} eps_T κ_S(L_q) S`), while the first-order
//!   analysis is valid; the pairs outside it are counted, not skipped
//!   silently (`skipped` in the panic message of a failure);
//! - results do not depend on the batch: the zipped output of pair `k`
//!   is bit-identical to the same pair's entry in the all-pairs matrix, for
//!   the same kernel and level;
//! - `Par::Rayon(2)` is bit-identical to `Par::Seq`;
//! - the prior (`kl_std_normal`) at every kernel it has (`Auto`, `Scalar`;
//!   the others must be `Error::Unsupported`).
#![no_main]

use arbitrary::{Result, Unstructured};
use gaussian_kl::batch::{self, Pairs};
use gaussian_kl::simd::Level;
use gaussian_kl::{Diagonal, Error, Exec, Gaussians, Kernel, Layout, Par, Real};
use gaussian_kl_fuzz::{Factor, LAYOUTS, assert_close, assert_same, dd, generate_mean};
use libfuzzer_sys::fuzz_target;

const KERNELS: [Kernel; 4] = [Kernel::Auto, Kernel::Scalar, Kernel::Lanes, Kernel::Blocked];

/// One side of the batch, in f64 (exact in f32).
struct Side {
    means: Vec<Vec<f64>>,
    factors: Vec<Factor>,
    layout: Layout,
    diagonal: Diagonal,
}

impl Side {
    fn generate(u: &mut Unstructured<'_>, d: usize, n: usize) -> Result<Side> {
        let layout = *u.choose(&LAYOUTS)?;
        let diagonal = if u.arbitrary()? {
            Diagonal::Log
        } else {
            Diagonal::Plain
        };
        let e_mean = u.int_in_range(-4..=4i32)?;
        let mut side = Side {
            means: Vec::new(),
            factors: Vec::new(),
            layout,
            diagonal,
        };
        for _ in 0..n {
            side.factors.push(Factor::generate_with(u, d, diagonal)?);
            side.means.push(generate_mean(u, d, e_mean)?);
        }
        Ok(side)
    }

    fn data<T: Real>(&self, d: usize) -> (Vec<T>, Vec<T>) {
        let means = self
            .means
            .iter()
            .flatten()
            .map(|&x| T::from_f64(x))
            .collect();
        let factors = self
            .factors
            .iter()
            .flat_map(|f| f.packed::<T>(d, self.layout))
            .collect();
        (means, factors)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok((d, p, q)) = generate(&mut u) else {
        return;
    };
    let refs = references(d, &p, &q);
    check::<f32>(d, &p, &q, &refs);
    check::<f64>(d, &p, &q, &refs);
});

fn generate(u: &mut Unstructured<'_>) -> Result<(usize, Side, Side)> {
    let d = u.int_in_range(1..=40usize)?;
    let (np, nq) = (u.int_in_range(1..=20usize)?, u.int_in_range(1..=20usize)?);
    // One byte per number: large batches only with as many bytes.
    if u.len() < (np + nq) * (d * (d + 1) / 2 + d) {
        return Err(arbitrary::Error::NotEnoughData);
    }
    Ok((d, Side::generate(u, d, np)?, Side::generate(u, d, nq)?))
}

/// Per pair `(i, j)`: the reference KL and `κ_S(L_q[j])`; per `i`: the
/// reference `KL(p[i] ‖ N(0, I))`.
struct Refs {
    all: Vec<(dd::Reference, f64)>,
    prior: Vec<dd::Reference>,
}

fn references(d: usize, p: &Side, q: &Side) -> Refs {
    let dq = |f: &Factor| f.dd_diag();
    let kappa: Vec<f64> = q
        .factors
        .iter()
        .map(|f| dd::skeel_cond(d, &dd::plain_dense(d, &f.raw, dq(f))))
        .collect();
    let mut all = Vec::new();
    for (mp, fp) in p.means.iter().zip(&p.factors) {
        for ((mq, fq), &k) in q.means.iter().zip(&q.factors).zip(&kappa) {
            let r = dd::kl(d, mp, &fp.raw, fp.dd_diag(), mq, &fq.raw, fq.dd_diag());
            all.push((r, k));
        }
    }
    let mut eye = vec![0.0; d * d];
    for i in 0..d {
        eye[i * d + i] = 1.0;
    }
    let zero = vec![0.0; d];
    let prior = p
        .means
        .iter()
        .zip(&p.factors)
        .map(|(m, f)| dd::kl(d, m, &f.raw, f.dd_diag(), &zero, &eye, dd::Diag::Plain))
        .collect();
    Refs { all, prior }
}

/// Runs `batch::kl` with `exec` (every kernel serves every `d`, at every
/// available level: an error is a finding).
fn run<T: Real>(p: &Gaussians<'_, T>, q: Pairs<'_, T>, n_out: usize, exec: &Exec) -> Vec<T> {
    let need = batch::kl_scratch::<T>(p.dim(), exec).expect("scratch");
    let (mut out, mut work) = (vec![T::NAN; n_out], vec![T::NAN; need]);
    batch::kl(p, q, &mut out, exec, &mut work).expect("a valid batch");
    out
}

fn check<T: Real>(d: usize, p: &Side, q: &Side, refs: &Refs) {
    let (mp, fp) = p.data::<T>(d);
    let (mq, fq) = q.data::<T>(d);
    let (np, nq) = (p.means.len(), q.means.len());
    let pv = Gaussians::with_layout(np, d, &mp, &fp, p.layout, p.diagonal).expect("valid");
    let qv = Gaussians::with_layout(nq, d, &mq, &fq, q.layout, q.diagonal).expect("valid");
    // The first min(np, nq) Gaussians of each side, zipped.
    let n = np.min(nq);
    let t = d * (d + 1) / 2;
    let pz = Gaussians::with_layout(n, d, &mp[..n * d], &fp[..n * t], p.layout, p.diagonal)
        .expect("valid");
    let qz = Gaussians::with_layout(n, d, &mq[..n * d], &fq[..n * t], q.layout, q.diagonal)
        .expect("valid");
    let mut skipped = 0usize;
    for level in Level::all().iter().copied().filter(|l| l.is_available()) {
        for kernel in KERNELS {
            let exec = Exec::new().level(level).kernel(kernel);
            let what = format!("{kernel:?} at {level:?}");
            let all = run(&pv, Pairs::All(&qv), np * nq, &exec);
            for (k, (v, (r, kappa))) in all.iter().zip(&refs.all).enumerate() {
                if !assert_close(
                    *v,
                    r,
                    d,
                    *kappa,
                    &format!("{what}, pair {k}, skipped {skipped}"),
                ) {
                    skipped += 1;
                }
            }
            let zip = run(&pz, Pairs::Zip(&qz), n, &exec);
            for (k, v) in zip.iter().enumerate() {
                assert_same(
                    *v,
                    all[k * nq + k],
                    &format!("{what}: zip vs all, pair {k}"),
                );
            }
            let par = run(&pv, Pairs::All(&qv), np * nq, &exec.par(Par::Rayon(2)));
            for (a, b) in all.iter().zip(&par) {
                assert_same(*a, *b, &format!("{what}: Rayon(2) vs Seq"));
            }
            prior::<T>(&pv, &exec, refs, d, &what);
        }
    }
}

fn prior<T: Real>(p: &Gaussians<'_, T>, exec: &Exec, refs: &Refs, d: usize, what: &str) {
    // The prior has the scalar kernel only: a lockstep or blocked one is
    // `Unsupported`, and nothing else may fail.
    let need = match batch::kl_std_normal_scratch::<T>(d, exec) {
        Ok(need) => need,
        Err(Error::Unsupported { what: "kernel", .. })
            if matches!(exec.get_kernel(), Kernel::Lanes | Kernel::Blocked) =>
        {
            return;
        }
        Err(e) => panic!("kl_std_normal_scratch, {what}: {e}"),
    };
    let (mut out, mut work) = (vec![T::NAN; p.len()], vec![T::NAN; need]);
    batch::kl_std_normal(p, &mut out, exec, &mut work).expect("a valid batch");
    for (k, (v, r)) in out.iter().zip(&refs.prior).enumerate() {
        assert_close(
            *v,
            r,
            d,
            1.0,
            &format!("kl_std_normal, {what}, Gaussian {k}"),
        );
    }
}
