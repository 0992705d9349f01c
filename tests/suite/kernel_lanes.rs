//! The lockstep kernel (`Kernel::Lanes`) on its own: every level the host
//! has (with `emulated-levels`, pulp's emulated widths too), `d = 1..=20` and
//! some larger `d`, batch sizes around the lane count, both layouts families
//! (row-major, which takes the transposed fast path where the level has
//! shuffles, and the others, which do not), both diagonals, `Zip` and `All`
//! (non-contiguous pairs), against the independent f64 reference of
//! `tests/suite/common.rs`; and the fast path (full blocks of consecutive row-major
//! log-diagonal pairs) bit for bit against the element-copy gather of the
//! same level (a broadcast batch takes the latter with the same arithmetic).
#![cfg(feature = "std")]

use crate::common;
use crate::common::levels;

use gaussian_kl::batch::{self, Pairs};
use gaussian_kl::simd::Level;
use gaussian_kl::{Diagonal, Exec, Gaussians, Kernel, Layout, Real};

/// `n` seeded Gaussians (row-major packed, raw log diagonal).
fn batch_of<T: Real>(seed: u64, d: usize, n: usize) -> (Vec<T>, Vec<T>) {
    let mut rng = common::rng(seed);
    let mut means = Vec::new();
    let mut factors = Vec::new();
    for _ in 0..n {
        means.extend(common::round::<T>(&common::random_mean(&mut rng, d)));
        factors.extend(common::round::<T>(&common::random_raw(&mut rng, d)));
    }
    (means, factors)
}

/// The same tolerance as `tests/suite/batch.rs` (measured there: worst
/// `err / (d · ε · scale · kappa)` 1.6 for f32, 1.7 for f64; 8 leaves 5×).
fn tol<T: Real>(d: usize, r: &common::Reference) -> f64 {
    8.0 * d.max(1) as f64 * T::EPSILON.to_f64() * r.scale * r.kappa
}

/// The f64 reference of pair `(p[kp], q[kq])`.
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

/// Each packed triangle of a batch converted to `layout` and, for plain
/// diagonals, with `exp` applied to its diagonal (in `T`).
fn encode<T: Real>(d: usize, tril: &[T], layout: Layout, diagonal: Diagonal) -> Vec<T> {
    let t = d * (d + 1) / 2;
    let mut out = Vec::with_capacity(tril.len());
    for c in tril.chunks(t) {
        let c = match diagonal {
            Diagonal::Plain => common::log_to_plain(d, c),
            _ => c.to_vec(),
        };
        out.extend(common::to_layout(d, &c, layout));
    }
    out
}

/// `batch::kl` with `Kernel::Lanes` at `level` and exactly the scratch.
fn lanes_kl<T: Real>(level: Level, p: &Gaussians<'_, T>, q: Pairs<'_, T>, out: &mut [T]) {
    let exec = Exec::new().level(level).kernel(Kernel::Lanes);
    let mut work = vec![T::ZERO; batch::kl_scratch::<T>(p.dim(), &exec).unwrap()];
    batch::kl(p, q, out, &exec, &mut work).unwrap();
}

/// Checks every output of the lane kernel at every level for `d` and each
/// batch size (`Zip`; `sizes(level)`) and `3 × (n + 1)` pairs (`All`, `n` the
/// largest size up to 40), every layout and diagonal.
fn check_d<T: Real>(d: usize, sizes: impl Fn(Level) -> Vec<usize>) {
    let nmax = levels()
        .into_iter()
        .flat_map(&sizes)
        .max()
        .unwrap_or(0)
        .max(3);
    let (mp, tp) = batch_of::<T>(1000 + d as u64, d, nmax + 1);
    let (mq, tq) = batch_of::<T>(2000 + d as u64, d, nmax + 1);
    let zip: Vec<_> = (0..nmax)
        .map(|k| reference(d, (&mp, &tp), (&mq, &tq), (k, k)))
        .collect();
    let nq_of = |level| {
        sizes(level)
            .into_iter()
            .filter(|&n| n <= 40)
            .max()
            .unwrap_or(0)
            + 1
    };
    let nq_max = levels().into_iter().map(nq_of).max().unwrap_or(1);
    let all: Vec<_> = (0..3 * nq_max)
        .map(|k| reference(d, (&mp, &tp), (&mq, &tq), (k / nq_max, k % nq_max)))
        .collect();
    for level in levels() {
        for layout in common::LAYOUTS {
            for diagonal in [Diagonal::Log, Diagonal::Plain] {
                let (ep, eq) = (
                    encode(d, &tp, layout, diagonal),
                    encode(d, &tq, layout, diagonal),
                );
                let what = format!("{level:?} d={d} {layout:?} {diagonal:?}");
                let t = d * (d + 1) / 2;
                for n in sizes(level) {
                    let p =
                        Gaussians::with_layout(n, d, &mp[..n * d], &ep[..n * t], layout, diagonal);
                    let q =
                        Gaussians::with_layout(n, d, &mq[..n * d], &eq[..n * t], layout, diagonal);
                    let mut out = vec![T::NAN; n];
                    lanes_kl(level, &p.unwrap(), Pairs::Zip(&q.unwrap()), &mut out);
                    for (k, o) in out.iter().enumerate() {
                        let err = common::rel_err(o.to_f64(), zip[k].kl, 1.0);
                        let bound = tol::<T>(d, &zip[k]);
                        assert!(
                            err <= bound,
                            "{what} zip n={n} pair {k}: {o} err {err:e} > {bound:e}"
                        );
                    }
                }
                // All pairs: 3 × (n + 1), the q index running fastest, so that the
                // pairs of a block are not consecutive on the p side.
                let nq = nq_of(level);
                let p = Gaussians::with_layout(3, d, &mp[..3 * d], &ep[..3 * t], layout, diagonal);
                let q =
                    Gaussians::with_layout(nq, d, &mq[..nq * d], &eq[..nq * t], layout, diagonal);
                let mut out = vec![T::NAN; 3 * nq];
                lanes_kl(level, &p.unwrap(), Pairs::All(&q.unwrap()), &mut out);
                for (k, o) in out.iter().enumerate() {
                    let r = &all[(k / nq) * nq_max + k % nq];
                    let err = common::rel_err(o.to_f64(), r.kl, 1.0);
                    let bound = tol::<T>(d, r);
                    assert!(
                        err <= bound,
                        "{what} all pair {k}: {o} err {err:e} > {bound:e}"
                    );
                }
            }
        }
    }
}

/// The batch sizes around the lane count `l`.
fn sizes(l: usize) -> Vec<usize> {
    let mut v = vec![0, 1, l.saturating_sub(1), l, l + 1, 2 * l + 3];
    v.sort_unstable();
    v.dedup();
    v
}

fn meets_the_reference<T: Real>() {
    for d in (1..=20).chain([24, 33]) {
        check_d::<T>(d, |level| sizes(level.lanes::<T>()));
    }
    // A long batch: many full blocks and a ragged tail.
    check_d::<T>(3, |_| vec![4096 + 5]);
}

#[test]
fn lanes_meets_the_reference_at_every_level_f32() {
    meets_the_reference::<f32>();
}

#[test]
fn lanes_meets_the_reference_at_every_level_f64() {
    meets_the_reference::<f64>();
}

/// Full blocks of consecutive row-major log-diagonal pairs (the transposed
/// fast path where the level has shuffles) against the same pairs through
/// the element-copy gather (`p` broadcast from a batch of one, which is not
/// consecutive on the `p` side): the same arithmetic after the gather, so the
/// same bits.
fn fast_path_is_bitwise_the_copy<T: Real>() {
    for level in levels() {
        let l = level.lanes::<T>();
        for d in (1..=20).chain([24, 33]) {
            for n in [l, 2 * l + 3, 4096 + 5] {
                if n > 100 && d > 4 {
                    continue;
                }
                let (mp, tp) = batch_of::<T>(3000 + d as u64, d, 1);
                let (mq, tq) = batch_of::<T>(4000 + d as u64, d, n);
                let rep = |v: &[T]| -> Vec<T> { (0..n).flat_map(|_| v.iter().copied()).collect() };
                let (rmp, rtp) = (rep(&mp), rep(&tp));
                let q = Gaussians::new(n, d, &mq, &tq).unwrap();
                let mut fast = vec![T::NAN; n];
                let p_rep = Gaussians::new(n, d, &rmp, &rtp).unwrap();
                lanes_kl(level, &p_rep, Pairs::Zip(&q), &mut fast);
                let mut copy = vec![T::NAN; n];
                let p_one = Gaussians::new(1, d, &mp, &tp).unwrap();
                lanes_kl(level, &p_one, Pairs::Zip(&q), &mut copy);
                let bits = |v: &[T]| -> Vec<f64> { v.iter().map(|x| x.to_f64()).collect() };
                assert_eq!(bits(&fast), bits(&copy), "{level:?} d={d} n={n}");
                // And swapped: q broadcast, p consecutive.
                let p = Gaussians::new(n, d, &mq, &tq).unwrap();
                let q_rep = Gaussians::new(n, d, &rmp, &rtp).unwrap();
                let q_one = Gaussians::new(1, d, &mp, &tp).unwrap();
                lanes_kl(level, &p, Pairs::Zip(&q_rep), &mut fast);
                lanes_kl(level, &p, Pairs::Zip(&q_one), &mut copy);
                assert_eq!(bits(&fast), bits(&copy), "{level:?} d={d} n={n} swapped");
            }
        }
    }
}

#[test]
fn fast_path_is_bitwise_the_copy_f32() {
    fast_path_is_bitwise_the_copy::<f32>();
}

#[test]
fn fast_path_is_bitwise_the_copy_f64() {
    fast_path_is_bitwise_the_copy::<f64>();
}
