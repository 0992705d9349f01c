//! `Kernel::Blocked` (the large-`d` forward kernel, `src/full/blocked.rs`)
//! against the independent f64 reference of `tests/suite/common.rs`: every `d` up to
//! 40 and both sides of every tile and panel edge up to 300, every level the
//! host has (and pulp's emulated widths with `emulated-levels`), every
//! layout and both diagonal encodings, `Pairs::Zip` (with broadcasting) and
//! `Pairs::All`, batch sizes around the edges, and too-short workspaces.
#![cfg(feature = "std")]

use crate::common;
use crate::common::levels;

use gaussian_kl::batch::{self, Pairs};
use gaussian_kl::simd::Level;
use gaussian_kl::{Diagonal, Error, Exec, Gaussians, Kernel, Layout, Real};

/// The dimensions: every `d` to 40, then the edges of 16-lane vectors,
/// 3-vector panels and 8-row tiles (± 1), and one beyond 256.
fn dims() -> Vec<usize> {
    let mut d: Vec<usize> = (1..=40).collect();
    d.extend([
        47, 48, 49, 63, 64, 65, 95, 96, 97, 127, 128, 129, 255, 256, 257, 300,
    ]);
    d
}

/// A seeded batch of `n` Gaussians (row-major packed, raw log diagonal).
fn batch_of<T: Real>(seed: u64, d: usize, n: usize) -> (Vec<T>, Vec<T>) {
    let mut rng = common::rng(seed);
    let (mut means, mut factors) = (Vec::new(), Vec::new());
    for _ in 0..n {
        means.extend(common::round::<T>(&common::random_mean(&mut rng, d)));
        factors.extend(common::round::<T>(&common::random_raw(&mut rng, d)));
    }
    (means, factors)
}

/// The reference of `(p[kp], q[kq])` (row-major, raw log diagonals).
fn reference<T: Real>(
    d: usize,
    (mp, tp): (&[T], &[T]),
    (mq, tq): (&[T], &[T]),
    (kp, kq): (usize, usize),
) -> common::Reference {
    use common::{dense_factor, reference_kl, widen};
    let t = d * (d + 1) / 2;
    reference_kl(
        d,
        &widen(&mp[kp * d..][..d]),
        &dense_factor(d, &widen(&tp[kp * t..][..t])),
        &widen(&mq[kq * d..][..d]),
        &dense_factor(d, &widen(&tq[kq * t..][..t])),
    )
}

/// The tolerance of `tests/suite/batch.rs` (`8 · d · ε · scale · κ`), unchanged.
fn tol<T: Real>(d: usize, r: &common::Reference) -> f64 {
    8.0 * d.max(1) as f64 * T::EPSILON.to_f64() * r.scale * r.kappa
}

fn check<T: Real>(what: &str, d: usize, out: &[T], refs: &[common::Reference]) {
    assert_eq!(out.len(), refs.len(), "{what}");
    for (k, (&o, r)) in out.iter().zip(refs).enumerate() {
        let err = common::rel_err(o.to_f64(), r.kl, 1.0);
        assert!(
            err <= tol::<T>(d, r),
            "{what} d={d} pair {k}: {o} vs {} (err {err:e}, tol {:e})",
            r.kl,
            tol::<T>(d, r)
        );
    }
}

/// `batch::kl` with the blocked kernel and exactly its scratch.
fn blocked<T: Real>(level: Level, p: &Gaussians<'_, T>, q: Pairs<'_, T>, n: usize) -> Vec<T> {
    let exec = Exec::new().level(level).kernel(Kernel::Blocked);
    let mut work = vec![T::NAN; batch::kl_scratch::<T>(p.dim(), &exec).unwrap()];
    let mut out = vec![T::NAN; n];
    batch::kl(p, q, &mut out, &exec, &mut work).unwrap();
    out
}

/// Every `d`, every level: two `p` against two `q`, zipped and all pairs.
fn every_d_every_level<T: Real>() {
    for d in dims() {
        // Two Gaussians a side; one above d = 65, where the unoptimized
        // f64 reference (O(d³) with its condition number) dominates.
        let n = if d <= 65 { 2 } else { 1 };
        let (mp, tp) = batch_of::<T>(1000 + d as u64, d, n);
        let (mq, tq) = batch_of::<T>(2000 + d as u64, d, n);
        let p = Gaussians::new(n, d, &mp, &tp).unwrap();
        let q = Gaussians::new(n, d, &mq, &tq).unwrap();
        let all: Vec<_> = (0..n * n)
            .map(|k| reference(d, (&mp, &tp), (&mq, &tq), (k / n, k % n)))
            .collect();
        let zip: Vec<_> = (0..n).map(|k| all[k * n + k]).collect();
        // Above d = 65 every panel and tile edge has been crossed at every
        // width; the large d run at the host's own level (plus the widest
        // emulated one), which keeps this test to seconds in a debug build.
        let wide = [Level::detect(), Level::Scalar512];
        for level in levels().into_iter().filter(|l| d <= 65 || wide.contains(l)) {
            let what = format!("{level:?} zip");
            check(&what, d, &blocked(level, &p, Pairs::Zip(&q), n), &zip);
            let what = format!("{level:?} all");
            check(&what, d, &blocked(level, &p, Pairs::All(&q), n * n), &all);
        }
    }
}

#[test]
fn blocked_meets_the_reference_at_every_d_and_level_f32() {
    every_d_every_level::<f32>();
}

#[test]
fn blocked_meets_the_reference_at_every_d_and_level_f64() {
    every_d_every_level::<f64>();
}

/// Every layout × diagonal encoding of both sides, every level.
fn layouts_and_diagonals<T: Real>() {
    for d in [1, 5, 16, 17, 33, 48, 65, 97, 129] {
        let (mp, tp) = batch_of::<T>(3000 + d as u64, d, 3);
        let (mq, tq) = batch_of::<T>(4000 + d as u64, d, 3);
        let zip: Vec<_> = (0..3)
            .map(|k| reference(d, (&mp, &tp), (&mq, &tq), (k, k)))
            .collect();
        let t = d * (d + 1) / 2;
        let encode = |tril: &[T], layout: Layout, diagonal: Diagonal| -> Vec<T> {
            tril.chunks(t)
                .flat_map(|c| {
                    let c = match diagonal {
                        Diagonal::Log => c.to_vec(),
                        Diagonal::Plain => common::log_to_plain(d, c),
                    };
                    common::to_layout(d, &c, layout)
                })
                .collect()
        };
        for layout in common::LAYOUTS {
            for diagonal in [Diagonal::Log, Diagonal::Plain] {
                let (ep, eq) = (encode(&tp, layout, diagonal), encode(&tq, layout, diagonal));
                let p = Gaussians::with_layout(3, d, &mp, &ep, layout, diagonal).unwrap();
                let q = Gaussians::with_layout(3, d, &mq, &eq, layout, diagonal).unwrap();
                for level in levels() {
                    let out = blocked(level, &p, Pairs::Zip(&q), 3);
                    check(&format!("{level:?} {layout:?} {diagonal:?}"), d, &out, &zip);
                }
            }
        }
    }
}

#[test]
fn blocked_meets_the_reference_in_every_layout_and_diagonal() {
    layouts_and_diagonals::<f32>();
    layouts_and_diagonals::<f64>();
}

/// Batch sizes 0, 1, 2, 7, 17 on either side: zipped (equal sizes and a
/// broadcast single `q` or `p`) and all pairs.
fn batch_sizes<T: Real>() {
    for d in [17, 40, 65] {
        let (mp, tp) = batch_of::<T>(5000 + d as u64, d, 17);
        let (mq, tq) = batch_of::<T>(6000 + d as u64, d, 17);
        let sides = (&mp[..], &tp[..]);
        let sideq = (&mq[..], &tq[..]);
        let t = d * (d + 1) / 2;
        for n in [0, 1, 2, 7, 17] {
            let p = Gaussians::new(n, d, &mp[..n * d], &tp[..n * t]).unwrap();
            let q = Gaussians::new(n, d, &mq[..n * d], &tq[..n * t]).unwrap();
            let q1 = Gaussians::new(1, d, &mq[..d], &tq[..t]).unwrap();
            let p1 = Gaussians::new(1, d, &mp[..d], &tp[..t]).unwrap();
            let zip: Vec<_> = (0..n).map(|k| reference(d, sides, sideq, (k, k))).collect();
            let to_q1: Vec<_> = (0..n).map(|k| reference(d, sides, sideq, (k, 0))).collect();
            let from_p1: Vec<_> = (0..n).map(|k| reference(d, sides, sideq, (0, k))).collect();
            let m = n.min(7);
            let pm = Gaussians::new(m, d, &mp[..m * d], &tp[..m * t]).unwrap();
            let all: Vec<_> = (0..m * n)
                .map(|k| reference(d, sides, sideq, (k / n, k % n)))
                .collect();
            for level in levels() {
                let what = format!("{level:?} n={n}");
                check(&what, d, &blocked(level, &p, Pairs::Zip(&q), n), &zip);
                if n > 0 {
                    check(&what, d, &blocked(level, &p, Pairs::Zip(&q1), n), &to_q1);
                    check(&what, d, &blocked(level, &p1, Pairs::Zip(&q), n), &from_p1);
                }
                check(&what, d, &blocked(level, &pm, Pairs::All(&q), m * n), &all);
            }
        }
    }
}

#[test]
fn blocked_meets_the_reference_at_every_batch_size() {
    batch_sizes::<f32>();
    batch_sizes::<f64>();
}

/// A workspace one short (or empty, or half) is `WorkspaceTooSmall`, the
/// output untouched; the exact length works.
fn short_workspace<T: Real>() {
    for d in [1, 17, 48, 65, 129] {
        let (m, t) = batch_of::<T>(7, d, 2);
        let g = Gaussians::new(2, d, &m, &t).unwrap();
        for level in levels() {
            let exec = Exec::new().level(level).kernel(Kernel::Blocked);
            let need = batch::kl_scratch::<T>(d, &exec).unwrap();
            assert!(need > 0);
            for len in [0, need / 2, need - 1] {
                let mut work = vec![T::ZERO; len];
                let mut out = [T::NAN; 4];
                let sentinel = T::from_f64(-7.25);
                out.fill(sentinel);
                let got = batch::kl(&g, Pairs::All(&g), &mut out, &exec, &mut work);
                let want = Error::WorkspaceTooSmall {
                    expected: need,
                    found: len,
                };
                assert_eq!(got, Err(want), "{level:?} d={d} len={len}");
                assert!(out.iter().all(|&v| v == sentinel));
            }
            let mut work = vec![T::ZERO; need];
            let mut out = [T::NAN; 4];
            batch::kl(&g, Pairs::All(&g), &mut out, &exec, &mut work).unwrap();
            assert!(out[0].abs().to_f64() < 1e-3 && out[3].abs().to_f64() < 1e-3);
        }
    }
}

#[test]
fn a_short_workspace_is_an_error_not_a_panic() {
    short_workspace::<f32>();
    short_workspace::<f64>();
}
