//! Forward only (`full::kl`) against forward + backward (`full::kl_grad`),
//! pairs per second, at d ∈ {3, 16, 64}, with batches sized to sit in L2 and
//! to spill to DRAM. The target is a fused pass costing at most 3× the
//! forward one. Also the N(0, I) prior path.
//!
//! The batched layer likewise (group `batch_grad_<type>_d<d>`): the SIMD
//! forward kernel (`batch::kl_full`) against the SIMD gradient kernel
//! (`batch_grad::kl_grad_packed`) and the scalar gradient loop
//! (`Kernel::Scalar`), in f32 and f64.
//!
//! `cargo bench -p gaussian-kl-bench --bench grad -- --warm-up-time 1 --measurement-time 2`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gaussian_kl::PackedTril;
use gaussian_kl::batch::{self, Gaussians, Kernel, Options};
use gaussian_kl::batch_grad::{self, BatchGrad, GaussianBatch};
use gaussian_kl::full::{self, KlGrad};
use gaussian_kl::simd::SimdReal;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;

/// `n` Gaussians of dimension `d` in seed 000's raw form (row-major, log
/// diagonal), well conditioned: means and factors flattened.
fn gaussians(rng: &mut StdRng, d: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    let t = d * (d + 1) / 2;
    let s = 1.0 / (d as f64).sqrt();
    let means = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut factors = vec![0.0; n * t];
    for b in 0..n {
        for i in 0..d {
            for j in 0..=i {
                factors[b * t + i * (i + 1) / 2 + j] = if i == j {
                    rng.random_range(-0.4..0.4)
                } else {
                    s * rng.random_range(-1.0..1.0)
                };
            }
        }
    }
    (means, factors)
}

/// Batch sizes: inputs + gradient outputs of about 512 KiB (half of one
/// core's L2) and of about 256 MiB (8× the 32 MiB L3).
///
/// Under `--test` (CI's smoke run, each benchmark once) the DRAM batch is
/// 64× smaller: its timing is meaningless there, and setting up 256 MiB per
/// group would dominate the run.
fn batch_sizes(d: usize) -> [(&'static str, usize); 2] {
    let bytes_per_pair = 2 * 8 * 2 * (d + d * (d + 1) / 2); // p and q, inputs and gradients
    let dram = if std::env::args().any(|a| a == "--test") {
        4 << 20
    } else {
        256 << 20
    };
    [
        ("L2", (512 << 10) / bytes_per_pair),
        ("DRAM", dram / bytes_per_pair),
    ]
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    for d in [3usize, 16, 64] {
        let t = d * (d + 1) / 2;
        for (place, n) in batch_sizes(d) {
            let n = n.max(1);
            let (mp, lp) = gaussians(&mut rng, d, n);
            let (mq, lq) = gaussians(&mut rng, d, n);
            let (mut g1, mut g2) = (vec![0.0; n * d], vec![0.0; n * t]);
            let (mut g3, mut g4) = (vec![0.0; n * d], vec![0.0; n * t]);
            let mut out = vec![0.0; n];
            let mut work = vec![0.0; full::grad_workspace_len(d)];
            let mut group = c.benchmark_group(format!("full_grad_d{d}"));
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::new("forward", place), |b| {
                b.iter(|| {
                    for i in 0..n {
                        out[i] = full::kl(
                            &mp[i * d..(i + 1) * d],
                            PackedTril::new(d, &lp[i * t..(i + 1) * t]),
                            &mq[i * d..(i + 1) * d],
                            PackedTril::new(d, &lq[i * t..(i + 1) * t]),
                            &mut work,
                        )
                        .unwrap();
                    }
                    black_box(&mut out);
                })
            });
            group.bench_function(BenchmarkId::new("forward+backward", place), |b| {
                b.iter(|| {
                    for i in 0..n {
                        let g = KlGrad::new(
                            &mut g1[i * d..(i + 1) * d],
                            &mut g2[i * t..(i + 1) * t],
                            &mut g3[i * d..(i + 1) * d],
                            &mut g4[i * t..(i + 1) * t],
                        );
                        out[i] = full::kl_grad(
                            &mp[i * d..(i + 1) * d],
                            PackedTril::new(d, &lp[i * t..(i + 1) * t]),
                            &mq[i * d..(i + 1) * d],
                            PackedTril::new(d, &lq[i * t..(i + 1) * t]),
                            1.0,
                            g,
                            &mut work,
                        )
                        .unwrap();
                    }
                    black_box((&mut out, &mut g2, &mut g4));
                })
            });
            if place == "L2" {
                group.bench_function(BenchmarkId::new("std_normal_forward", place), |b| {
                    b.iter(|| {
                        for i in 0..n {
                            out[i] = full::kl_std_normal(
                                &mp[i * d..(i + 1) * d],
                                PackedTril::new(d, &lp[i * t..(i + 1) * t]),
                            )
                            .unwrap();
                        }
                        black_box(&mut out);
                    })
                });
                group.bench_function(
                    BenchmarkId::new("std_normal_forward+backward", place),
                    |b| {
                        b.iter(|| {
                            for i in 0..n {
                                out[i] = full::kl_std_normal_grad(
                                    &mp[i * d..(i + 1) * d],
                                    PackedTril::new(d, &lp[i * t..(i + 1) * t]),
                                    1.0,
                                    &mut g1[i * d..(i + 1) * d],
                                    &mut g2[i * t..(i + 1) * t],
                                )
                                .unwrap();
                            }
                            black_box((&mut out, &mut g2));
                        })
                    },
                );
            }
            group.finish();
        }
    }
}

/// The batched kernels in `T`: SIMD forward, SIMD forward + backward, the
/// scalar forward + backward loop.
fn bench_batch<T: SimdReal>(c: &mut Criterion, name: &str) {
    let mut rng = StdRng::seed_from_u64(2);
    let size = core::mem::size_of::<T>();
    for d in [3usize, 16, 64] {
        let t = d * (d + 1) / 2;
        for (place, n) in batch_sizes(d) {
            // `batch_sizes` counts f64: the same bytes hold 8 / size times more pairs.
            let n = (n * 8 / size).max(1);
            let conv = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect::<Vec<T>>();
            let (mp, lp) = gaussians(&mut rng, d, n);
            let (mq, lq) = gaussians(&mut rng, d, n);
            let (mp, lp, mq, lq) = (conv(mp), conv(lp), conv(mq), conv(lq));
            let (mut g1, mut g2) = (vec![T::ZERO; n * d], vec![T::ZERO; n * t]);
            let (mut g3, mut g4) = (vec![T::ZERO; n * d], vec![T::ZERO; n * t]);
            let mut out = vec![T::ZERO; n];
            let mut work = vec![T::ZERO; batch_grad::workspace_len(d)];
            let mut group = c.benchmark_group(format!("batch_grad_{name}_d{d}"));
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::new("simd_forward", place), |b| {
                let (p, q) = (Gaussians::new(d, &mp, &lp), Gaussians::new(d, &mq, &lq));
                b.iter(|| {
                    batch::kl_full(&p, &q, &mut out).unwrap();
                    black_box(&mut out);
                })
            });
            for (label, opts) in [
                ("simd_forward+backward", Options::new()),
                (
                    "scalar_forward+backward",
                    Options::new().kernel(Kernel::Scalar),
                ),
            ] {
                group.bench_function(BenchmarkId::new(label, place), |b| {
                    b.iter(|| {
                        let grad = BatchGrad {
                            means_p: &mut g1,
                            factors_p: &mut g2,
                            means_q: &mut g3,
                            factors_q: &mut g4,
                        };
                        opts.kl_grad_packed(
                            d,
                            GaussianBatch::new(&mp, &lp),
                            GaussianBatch::new(&mq, &lq),
                            &[T::ONE],
                            &mut out,
                            grad,
                            &mut work,
                        )
                        .unwrap();
                        black_box((&mut out, &mut g2, &mut g4));
                    })
                });
            }
            group.finish();
        }
    }
}

fn bench_batch_all(c: &mut Criterion) {
    bench_batch::<f32>(c, "f32");
    bench_batch::<f64>(c, "f64");
}

criterion_group!(benches, bench, bench_batch_all);
criterion_main!(benches);
