//! The batch layer never allocates with `Par::Seq`: a counting global
//! allocator (per thread) around every operation (`kl` zip and all pairs,
//! `kl_std_normal`, `kl_grad` zip and all pairs, `kl_std_normal_grad`) and
//! its scratch query, every kernel (including the ones an operation rejects:
//! the error path allocates nothing either), every level the host has, `d`
//! on both sides of the stack-resident limit (16), f32 and f64, a
//! workspace of exactly the scratch size and one a scalar short.
#![cfg(feature = "std")]

use gaussian_kl::batch::{self, Pairs};
use gaussian_kl::simd::Level;
use gaussian_kl::{Error, Exec, Gaussians, GradMut, Grads, Kernel, Real};

use crate::counting::{allocations_during, counted};

/// `n` Gaussians of dimension `d`, raw log diagonals, deterministic values.
fn gaussians<T: Real>(d: usize, n: usize, shift: f64) -> (Vec<T>, Vec<T>) {
    let t = d * (d + 1) / 2;
    let means = (0..n * d)
        .map(|k| T::from_f64(((k as f64) * 0.37 + shift).sin()))
        .collect();
    let tril = (0..n * t)
        .map(|k| T::from_f64(0.3 * ((k as f64) * 0.11 - shift).cos() / (d as f64).sqrt()))
        .collect();
    (means, tril)
}

const KERNELS: [Kernel; 4] = [Kernel::Auto, Kernel::Lanes, Kernel::Blocked, Kernel::Scalar];

/// The scratch of operation `op` (see [`run`]).
fn scratch<T: Real>(op: usize, d: usize, exec: &Exec) -> Result<usize, Error> {
    match op {
        0 | 1 => batch::kl_scratch::<T>(d, exec),
        2 => batch::kl_std_normal_scratch::<T>(d, exec),
        3 | 4 => batch::kl_grad_scratch::<T>(d, exec),
        _ => batch::kl_std_normal_grad_scratch::<T>(d, exec),
    }
}

/// The buffers of one call, allocated outside the counted region.
struct Bufs<T> {
    out: Vec<T>,
    up: Vec<T>,
    g: [Vec<T>; 4],
    work: Vec<T>,
}

/// Operation `op` on `p` (9 Gaussians) and `q` (9, or 4 for all pairs).
fn run<T: Real>(
    op: usize,
    exec: &Exec,
    (p, q): (&Gaussians<'_, T>, &Gaussians<'_, T>),
    b: &mut Bufs<T>,
    work_len: usize,
) -> Result<(), Error> {
    let n = if op == 1 || op == 4 {
        p.len() * q.len()
    } else {
        p.len()
    };
    let (out, up, work) = (&mut b.out[..n], &b.up[..n], &mut b.work[..work_len]);
    let [a, c, e, f] = &mut b.g;
    if op == 5 {
        let g = GradMut::new(a, c);
        return batch::kl_std_normal_grad(p, up, out, g, exec, work);
    }
    let grads = Grads::new(GradMut::new(a, c), GradMut::new(e, f));
    match op {
        0 => batch::kl(p, Pairs::Zip(q), out, exec, work),
        1 => batch::kl(p, Pairs::All(q), out, exec, work),
        2 => batch::kl_std_normal(p, out, exec, work),
        3 => batch::kl_grad(p, Pairs::Zip(q), up, out, grads, exec, work),
        _ => batch::kl_grad(p, Pairs::All(q), up, out, grads, exec, work),
    }
}

fn never_allocates<T: Real>() {
    for d in [3, 16, 17, 40] {
        let (mp, lp) = gaussians::<T>(d, 9, 0.0);
        let (mq, lq) = gaussians::<T>(d, 9, 1.0);
        let p = Gaussians::new(9, d, &mp, &lp).unwrap();
        let q9 = Gaussians::new(9, d, &mq, &lq).unwrap();
        let t = d * (d + 1) / 2;
        let q4 = Gaussians::new(4, d, &mq[..4 * d], &lq[..4 * t]).unwrap();
        for &level in Level::all().iter().filter(|l| l.is_available()) {
            for kernel in KERNELS {
                let exec = Exec::new().level(level).kernel(kernel);
                for op in 0..6 {
                    let q = if op == 1 || op == 4 { &q4 } else { &q9 };
                    let what = format!("d={d} {level:?} {kernel:?} op {op}");
                    let (need, n) = counted(|| scratch::<T>(op, d, &exec));
                    assert_eq!(n, 0, "{what}: the scratch query allocated");
                    let Ok(need) = need else {
                        // A kernel this operation lacks: rejected without allocating.
                        let mut b = bufs::<T>(&p, q, 0);
                        let n = allocations_during(|| {
                            assert!(run(op, &exec, (&p, q), &mut b, 0).is_err());
                        });
                        assert_eq!(n, 0, "{what}: the rejection allocated");
                        continue;
                    };
                    let mut b = bufs::<T>(&p, q, need);
                    let n = allocations_during(|| {
                        run(op, &exec, (&p, q), &mut b, need).unwrap();
                        if need > 0 {
                            let e = run(op, &exec, (&p, q), &mut b, need - 1);
                            assert!(matches!(e, Err(Error::WorkspaceTooSmall { .. })));
                        }
                    });
                    assert_eq!(n, 0, "{what}");
                    assert!(b.out.iter().all(|v| v.is_finite()), "{what}");
                }
            }
        }
    }
}

fn bufs<T: Real>(p: &Gaussians<'_, T>, q: &Gaussians<'_, T>, need: usize) -> Bufs<T> {
    let n = p.len() * q.len().max(1);
    Bufs {
        out: vec![T::ZERO; n],
        up: vec![T::ONE; n],
        g: [
            vec![T::ZERO; p.means().len()],
            vec![T::ZERO; p.factors().len()],
            vec![T::ZERO; q.means().len()],
            vec![T::ZERO; q.factors().len()],
        ],
        work: vec![T::ZERO; need],
    }
}

#[test]
fn every_operation_kernel_and_level_never_allocates_f32() {
    never_allocates::<f32>();
}

#[test]
fn every_operation_kernel_and_level_never_allocates_f64() {
    never_allocates::<f64>();
}

#[test]
fn the_counter_sees_allocations() {
    assert!(allocations_during(|| drop(std::hint::black_box(vec![1u8; 10]))) >= 1);
}
