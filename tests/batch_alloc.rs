//! The batched SIMD kernels never allocate when given a workspace: a
//! counting global allocator (per thread) around every kernel (lockstep,
//! blocked, scalar), every level the host has, zip and all pairs, `d` on
//! both sides of the stack-resident limit (16). The allocating forms
//! allocate at most one workspace per call, and none for the lockstep
//! kernel at `d ≤ 16`.
#![cfg(feature = "std")]

use gaussian_kl::batch::{self, Gaussians, Kernel, Options};
use gaussian_kl::simd::Level;

mod counting;

use counting::allocations_during;

/// `n` Gaussians of dimension `d`, raw log diagonals, deterministic values.
fn gaussians(d: usize, n: usize, shift: f32) -> (Vec<f32>, Vec<f32>) {
    let t = d * (d + 1) / 2;
    let means = (0..n * d)
        .map(|k| ((k as f32) * 0.37 + shift).sin())
        .collect();
    let tril = (0..n * t)
        .map(|k| 0.3 * ((k as f32) * 0.11 - shift).cos() / (d as f32).sqrt())
        .collect();
    (means, tril)
}

#[test]
fn with_work_never_allocates() {
    let kernels = [Kernel::Auto, Kernel::Lanes, Kernel::Blocked, Kernel::Scalar];
    for d in [3, 16, 17, 40] {
        let (mp, lp) = gaussians(d, 9, 0.0);
        let (mq, lq) = gaussians(d, 4, 1.0);
        let (p, q) = (Gaussians::new(d, &mp, &lp), Gaussians::new(d, &mq, &lq));
        let mut work = vec![0.0f32; batch::workspace_len(d)];
        let mut out = vec![0.0f32; 36];
        for &level in Level::all() {
            let Some(opts) = Options::new().level(level) else {
                continue;
            };
            for kernel in kernels {
                let opts = opts.kernel(kernel);
                let n = allocations_during(|| {
                    opts.kl_full_with_work(&p, &first(&q), &mut out[..9], &mut work)
                        .unwrap();
                    opts.kl_full_all_pairs_with_work(&p, &q, &mut out, &mut work)
                        .unwrap();
                });
                assert_eq!(n, 0, "d={d} {level:?} {kernel:?}");
                assert!(
                    out.iter().all(|v| v.is_finite() && *v > 0.0),
                    "d={d} {level:?}"
                );
            }
        }
    }
}

#[test]
fn with_work_equals_the_allocating_form() {
    for d in [2, 16, 21] {
        let (mp, lp) = gaussians(d, 11, 0.5);
        let (mq, lq) = gaussians(d, 11, 2.0);
        let (p, q) = (Gaussians::new(d, &mp, &lp), Gaussians::new(d, &mq, &lq));
        let mut work = vec![0.0f32; batch::workspace_len(d)];
        let (mut a, mut b) = (vec![0.0f32; 11], vec![0.0f32; 11]);
        Options::new()
            .kl_full_with_work(&p, &q, &mut a, &mut work)
            .unwrap();
        batch::kl_full(&p, &q, &mut b).unwrap();
        assert_eq!(a, b, "d={d}");
        let short = batch::workspace_len(d) - 1;
        assert_eq!(
            Options::new().kl_full_with_work(&p, &q, &mut a, &mut work[..short]),
            Err(gaussian_kl::Error::WorkspaceTooSmall {
                expected: short + 1,
                found: short
            })
        );
    }
}

#[test]
fn lockstep_at_small_d_allocates_nothing_even_without_a_workspace() {
    let (mp, lp) = gaussians(8, 33, 0.0);
    let (p, q) = (
        Gaussians::new(8, &mp, &lp),
        Gaussians::new(8, &mp[..8], &lp[..36]),
    );
    let mut out = vec![0.0f32; 33];
    assert_eq!(
        allocations_during(|| batch::kl_full(&p, &q, &mut out).unwrap()),
        0
    );
}

#[test]
fn the_counter_sees_allocations() {
    assert!(allocations_during(|| drop(std::hint::black_box(vec![1u8; 10]))) >= 1);
}

/// The first Gaussian of a batch alone (to broadcast).
fn first<'a>(g: &Gaussians<'a, f32>) -> Gaussians<'a, f32> {
    let d = g.d;
    Gaussians::new(d, &g.means[..d], &g.tril[..d * (d + 1) / 2])
}
