//! The batched layer: equal to looped single calls, broadcasting and
//! all-pairs equal to their explicit expansions, layouts and diagonal
//! encodings, every shape error, `d = 0`, and parallel = serial.
#![cfg(feature = "std")]

mod support;

use gaussian_kl::batch::{self, Gaussians, Kernel, Options};
use gaussian_kl::simd::Level;
use gaussian_kl::{Diagonal, Error, Layout, PackedTril, full};

/// Repeats entry `k` of a batch `n` times.
fn repeat<T: Copy>(v: &[T], width: usize, k: usize, n: usize) -> Vec<T> {
    (0..n)
        .flat_map(|_| v[k * width..][..width].iter().copied())
        .collect()
}

#[test]
fn scalar_kernel_is_bitwise_the_looped_single_calls() {
    for d in [1, 2, 5, 17] {
        let n = 11;
        let (mp, tp) = support::batch::<f64>(1, d, n);
        let (mq, tq) = support::batch::<f64>(2, d, n);
        let mut out = vec![0.0; n];
        Options::new()
            .kernel(Kernel::Scalar)
            .kl_full(
                &Gaussians::new(d, &mp, &tp),
                &Gaussians::new(d, &mq, &tq),
                &mut out,
            )
            .unwrap();
        let t = d * (d + 1) / 2;
        let mut work = vec![0.0; full::workspace_len(d)];
        for k in 0..n {
            let r = full::kl(
                &mp[k * d..][..d],
                PackedTril::new(d, &tp[k * t..][..t]),
                &mq[k * d..][..d],
                PackedTril::new(d, &tq[k * t..][..t]),
                &mut work,
            )
            .unwrap();
            assert_eq!(out[k].to_bits(), r.to_bits(), "d={d} k={k}");
        }
    }
}

#[test]
fn default_batch_equals_looped_single_calls_every_d() {
    for d in 1..=70 {
        let n = 19;
        let (mp, tp) = support::batch::<f32>(3 * d as u64, d, n);
        let (mq, tq) = support::batch::<f32>(3 * d as u64 + 1, d, n);
        let out =
            batch::kl_full_vec(&Gaussians::new(d, &mp, &tp), &Gaussians::new(d, &mq, &tq)).unwrap();
        assert_eq!(out.len(), n);
        let t = d * (d + 1) / 2;
        for k in 0..n {
            let (r, s) = support::reference(
                d,
                &mp[k * d..][..d],
                &tp[k * t..][..t],
                &mq[k * d..][..d],
                &tq[k * t..][..t],
            );
            let err = (out[k] as f64 - r as f64).abs();
            assert!(
                err <= support::tol::<f32>(d, s),
                "d={d} k={k}: {} vs {r}",
                out[k]
            );
        }
    }
}

#[test]
fn broadcasting_equals_explicit_repetition() {
    for level in [Level::Scalar, Level::detect()] {
        for kernel in [Kernel::Lanes, Kernel::Blocked] {
            let opts = Options::new().level(level).unwrap().kernel(kernel);
            for d in [1, 3, 16, 19] {
                let n = 21;
                let t = d * (d + 1) / 2;
                let (mp, tp) = support::batch::<f32>(4, d, n);
                let (mq, tq) = support::batch::<f32>(5, d, 1);
                let (mqn, tqn) = (repeat(&mq, d, 0, n), repeat(&tq, t, 0, n));
                let many_p = Gaussians::new(d, &mp, &tp);
                let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
                // many p vs one q
                opts.kl_full(&many_p, &Gaussians::new(d, &mq, &tq), &mut a)
                    .unwrap();
                opts.kl_full(&many_p, &Gaussians::new(d, &mqn, &tqn), &mut b)
                    .unwrap();
                assert_eq!(a, b, "{level:?} {kernel:?} d={d}: one q");
                // one p vs many q
                let (mp0, tp0) = (repeat(&mp, d, 4, 1), repeat(&tp, t, 4, 1));
                let (mpn, tpn) = (repeat(&mp, d, 4, n), repeat(&tp, t, 4, n));
                let many_q = Gaussians::new(d, &mp, &tp); // reuse p's numbers as q's
                opts.kl_full(&Gaussians::new(d, &mp0, &tp0), &many_q, &mut a)
                    .unwrap();
                opts.kl_full(&Gaussians::new(d, &mpn, &tpn), &many_q, &mut b)
                    .unwrap();
                assert_eq!(a, b, "{level:?} {kernel:?} d={d}: one p");
            }
        }
    }
}

#[test]
fn all_pairs_equals_the_expanded_pairwise_batch() {
    for kernel in [Kernel::Lanes, Kernel::Blocked, Kernel::Scalar] {
        let opts = Options::new().kernel(kernel);
        for d in [1, 4, 18] {
            let (np, nq) = (7, 10);
            let (t, mut ep, mut etp, mut eq, mut etq) =
                (d * (d + 1) / 2, vec![], vec![], vec![], vec![]);
            let (mp, tp) = support::batch::<f64>(6, d, np);
            let (mq, tq) = support::batch::<f64>(7, d, nq);
            for i in 0..np {
                for j in 0..nq {
                    ep.extend_from_slice(&mp[i * d..][..d]);
                    etp.extend_from_slice(&tp[i * t..][..t]);
                    eq.extend_from_slice(&mq[j * d..][..d]);
                    etq.extend_from_slice(&tq[j * t..][..t]);
                }
            }
            let mut all = vec![0.0; np * nq];
            opts.kl_full_all_pairs(
                &Gaussians::new(d, &mp, &tp),
                &Gaussians::new(d, &mq, &tq),
                &mut all,
            )
            .unwrap();
            let mut zip = vec![0.0; np * nq];
            opts.kl_full(
                &Gaussians::new(d, &ep, &etp),
                &Gaussians::new(d, &eq, &etq),
                &mut zip,
            )
            .unwrap();
            assert_eq!(all, zip, "{kernel:?} d={d}");
            let v = batch::kl_full_all_pairs_vec(
                &Gaussians::new(d, &mp, &tp),
                &Gaussians::new(d, &mq, &tq),
            )
            .unwrap();
            assert_eq!(v.len(), np * nq);
        }
    }
}

/// Repacks a row-major batch of factors into `layout`.
fn relayout<T: Copy + Default>(d: usize, tril: &[T], layout: Layout) -> Vec<T> {
    let t = d * (d + 1) / 2;
    let mut out = vec![T::default(); tril.len()];
    for (src, dst) in tril.chunks(t).zip(out.chunks_mut(t)) {
        for i in 0..d {
            for j in 0..=i {
                dst[layout.index(d, i, j)] = src[Layout::RowMajor.index(d, i, j)];
            }
        }
    }
    out
}

#[test]
fn every_layout_gives_identical_bits_and_plain_diagonals_agree() {
    for kernel in [Kernel::Lanes, Kernel::Blocked] {
        let opts = Options::new().kernel(kernel);
        for d in [1, 2, 6, 16, 21] {
            let n = 13;
            let (mp, tp) = support::batch::<f64>(8, d, n);
            let (mq, tq) = support::batch::<f64>(9, d, n);
            let mut base = vec![0.0; n];
            opts.kl_full(
                &Gaussians::new(d, &mp, &tp),
                &Gaussians::new(d, &mq, &tq),
                &mut base,
            )
            .unwrap();
            for layout in [Layout::ColMajor, Layout::DiagFirst] {
                let (lp, lq) = (relayout(d, &tp, layout), relayout(d, &tq, layout));
                let mut out = vec![0.0; n];
                opts.kl_full(
                    &Gaussians::new(d, &mp, &lp).layout(layout),
                    &Gaussians::new(d, &mq, &lq).layout(layout),
                    &mut out,
                )
                .unwrap();
                assert_eq!(out, base, "{kernel:?} d={d} {layout:?}");
            }
            // Plain diagonals: exp applied beforehand. Different arithmetic
            // (ln of the plain value, divisions), so equal to rounding only.
            let plain = |t: &[f64]| -> Vec<f64> {
                let mut v = t.to_vec();
                for c in v.chunks_mut(d * (d + 1) / 2) {
                    for i in 0..d {
                        c[i * (i + 1) / 2 + i] = c[i * (i + 1) / 2 + i].exp();
                    }
                }
                v
            };
            let (pp, pq) = (plain(&tp), plain(&tq));
            let mut out = vec![0.0; n];
            opts.kl_full(
                &Gaussians::new(d, &mp, &pp).diagonal(Diagonal::Plain),
                &Gaussians::new(d, &mq, &pq).diagonal(Diagonal::Plain),
                &mut out,
            )
            .unwrap();
            let t = d * (d + 1) / 2;
            for k in 0..n {
                let (_, s) = support::reference(
                    d,
                    &mp[k * d..][..d],
                    &tp[k * t..][..t],
                    &mq[k * d..][..d],
                    &tq[k * t..][..t],
                );
                assert!(
                    (out[k] - base[k]).abs() <= support::tol::<f64>(d, s),
                    "{kernel:?} d={d} plain k={k}"
                );
            }
        }
    }
}

#[test]
fn every_shape_mismatch_is_an_error_naming_it() {
    let (m, t) = support::batch::<f32>(1, 3, 4); // 4 Gaussians, d = 3
    let g = Gaussians::new(3, &m, &t);
    let mut out = vec![0.0f32; 4];
    // d disagrees
    let (m2, t2) = support::batch::<f32>(1, 2, 4);
    assert_eq!(
        batch::kl_full(&g, &Gaussians::new(2, &m2, &t2), &mut out),
        Err(Error::DimensionMismatch {
            what: "q",
            expected: 3,
            found: 2
        })
    );
    // means not a multiple of d
    assert_eq!(
        batch::kl_full(&Gaussians::new(3, &m[..11], &t), &g, &mut out),
        Err(Error::LengthMismatch {
            what: "p.means",
            expected: 9,
            found: 11
        })
    );
    // packed factors do not match the means
    assert_eq!(
        batch::kl_full(&g, &Gaussians::new(3, &m, &t[..18]), &mut out),
        Err(Error::LengthMismatch {
            what: "q.tril",
            expected: 24,
            found: 18
        })
    );
    // batch sizes neither agree nor broadcast
    assert!(matches!(
        batch::kl_full(&g, &Gaussians::new(3, &m[..6], &t[..12]), &mut out),
        Err(Error::LengthMismatch {
            expected: 4,
            found: 2,
            ..
        })
    ));
    // output too short / too long
    assert_eq!(
        batch::kl_full(&g, &g, &mut out[..3]),
        Err(Error::LengthMismatch {
            what: "out",
            expected: 4,
            found: 3
        })
    );
    let mut long = vec![0.0f32; 17];
    assert_eq!(
        batch::kl_full_all_pairs(&g, &g, &mut long),
        Err(Error::LengthMismatch {
            what: "out",
            expected: 16,
            found: 17
        })
    );
    // plain diagonal entry ≤ 0: pair 2, row 1 → index 2·3 + 1
    let mut bad = t.clone();
    for k in 0..4 {
        for i in 0..3 {
            bad[k * 6 + i * (i + 1) / 2 + i] = 1.0;
        }
    }
    bad[2 * 6 + 2] = -1.0;
    assert_eq!(
        batch::kl_full(
            &g,
            &Gaussians::new(3, &m, &bad).diagonal(Diagonal::Plain),
            &mut out
        ),
        Err(Error::NonPositiveDiagonal {
            what: "q.tril",
            index: 7
        })
    );
    // d = 0: empty slices, any batch size, zeros out
    let mut z = vec![1.0f32; 5];
    batch::kl_full(
        &Gaussians::new(0, &[], &[]),
        &Gaussians::new(0, &[], &[]),
        &mut z,
    )
    .unwrap();
    assert_eq!(z, vec![0.0; 5]);
    assert_eq!(
        batch::kl_full(
            &Gaussians::new(0, &[1.0f32], &[]),
            &Gaussians::new(0, &[], &[]),
            &mut z
        ),
        Err(Error::LengthMismatch {
            what: "p.means",
            expected: 0,
            found: 1
        })
    );
    // empty batches
    let e = Gaussians::new(3, &m[..0], &t[..0]);
    assert_eq!(batch::kl_full_vec(&e, &e).unwrap(), Vec::<f32>::new());
    assert_eq!(
        batch::kl_full_all_pairs_vec(&e, &g).unwrap(),
        Vec::<f32>::new()
    );
    // huge d with short slices
    assert!(
        batch::kl_full(
            &Gaussians::new(usize::MAX, &m, &t),
            &Gaussians::new(usize::MAX, &m, &t),
            &mut out
        )
        .is_err()
    );
    assert!(
        batch::kl_full(
            &Gaussians::new(usize::MAX >> 8, &m, &t),
            &Gaussians::new(usize::MAX >> 8, &m, &t),
            &mut out
        )
        .is_err()
    );
}

#[test]
fn kl_of_a_batch_against_itself_is_zero() {
    for d in [1, 3, 9, 16, 33] {
        let (m, t) = support::batch::<f64>(11, d, 9);
        let g = Gaussians::new(d, &m, &t);
        for kernel in [Kernel::Lanes, Kernel::Blocked] {
            let mut out = vec![1.0; 9];
            Options::new()
                .kernel(kernel)
                .kl_full(&g, &g, &mut out)
                .unwrap();
            for v in out {
                assert!(
                    v.abs() <= 8.0 * d as f64 * f64::EPSILON * d as f64,
                    "{kernel:?} d={d}: {v}"
                );
            }
        }
    }
}

#[cfg(feature = "rayon")]
#[test]
fn parallel_equals_serial_bitwise() {
    for d in [2, 8, 24] {
        let n = 5000;
        let (mp, tp) = support::batch::<f32>(12, d, n);
        let (mq, tq) = support::batch::<f32>(13, d, n);
        let (p, q) = (Gaussians::new(d, &mp, &tp), Gaussians::new(d, &mq, &tq));
        let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
        Options::new().kl_full(&p, &q, &mut a).unwrap();
        Options::new()
            .parallel(true)
            .kl_full(&p, &q, &mut b)
            .unwrap();
        assert_eq!(a, b, "d={d}");
        let (mut a, mut b) = (vec![0.0; 70 * 70], vec![0.0; 70 * 70]);
        let (p, q) = (
            Gaussians::new(d, &mp[..70 * d], &tp[..70 * d * (d + 1) / 2]),
            Gaussians::new(d, &mq[..70 * d], &tq[..70 * d * (d + 1) / 2]),
        );
        Options::new().kl_full_all_pairs(&p, &q, &mut a).unwrap();
        Options::new()
            .parallel(true)
            .kl_full_all_pairs(&p, &q, &mut b)
            .unwrap();
        assert_eq!(a, b, "all pairs d={d}");
    }
}

/// Found by the `no_panic` fuzz target: an empty batch with an absurd `d`
/// (nothing to compute, every slice empty) allocated an `O(d²)` workspace
/// before looking at the batch size, and aborted the process. Every kernel
/// now returns at once.
#[test]
fn empty_batch_with_absurd_dimension_returns_at_once() {
    // A 2³⁴-scalar triangle on 64 bits, 2²⁹ on 32 bits (wasm32), where
    // `d = 2¹⁷` is itself too large: `d (d + 1) / 2` does not fit a `usize`.
    let d = if cfg!(target_pointer_width = "64") {
        1 << 17
    } else {
        1 << 15
    };
    let e: [f64; 0] = [];
    #[cfg(target_pointer_width = "32")]
    {
        let g = Gaussians::new(1 << 17, &e, &e);
        let too_large = Err(Error::DimensionTooLarge { d: 1 << 17 });
        assert_eq!(Options::new().kl_full(&g, &g, &mut []), too_large);
    }
    let g = Gaussians::new(d, &e, &e);
    for kernel in [Kernel::Auto, Kernel::Lanes, Kernel::Blocked, Kernel::Scalar] {
        let opts = Options::new().kernel(kernel);
        assert_eq!(opts.kl_full(&g, &g, &mut []), Ok(()));
        assert_eq!(opts.kl_full_all_pairs(&g, &g, &mut []), Ok(()));
    }
    assert_eq!(batch::kl_full_vec(&g, &g), Ok(vec![]));
    assert_eq!(batch::kl_full_all_pairs_vec(&g, &g), Ok(vec![]));
    // Also found by the fuzzer: the plain-diagonal check computed
    // `d (d + 1) / 2` unchecked, an overflow for `d = 2³²` on 64 bits (where
    // `d (d + 1) / 2` itself fits).
    #[cfg(target_pointer_width = "64")]
    {
        let d = (usize::MAX >> 32) + 1;
        let g = Gaussians::new(d, &e, &e).diagonal(Diagonal::Plain);
        for kernel in [Kernel::Auto, Kernel::Scalar] {
            let opts = Options::new().kernel(kernel);
            assert_eq!(opts.kl_full(&g, &g, &mut []), Ok(()));
            assert_eq!(opts.kl_full_all_pairs(&g, &g, &mut []), Ok(()));
        }
    }
}
