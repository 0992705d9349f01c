//! The scalar kernels (group `full_grad_d<d>`, f64): forward only
//! (`batch::kl` with `Kernel::Scalar`, one pair at a time) against forward +
//! backward (`batch::kl_grad` with `Kernel::Scalar`), pairs per second, at
//! d ∈ {3, 16, 64}, with batches sized to sit in L2 and to spill to DRAM.
//! The target is a fused pass costing at most 3× the forward one. Also the
//! N(0, I) prior path (`batch::kl_std_normal`, `batch::kl_std_normal_grad`).
//!
//! The SIMD kernels likewise (group `batch_grad_<type>_d<d>`): the forward
//! kernel (`batch::kl`) against the lockstep gradient kernel
//! (`batch::kl_grad`) and the scalar gradient loop (`Kernel::Scalar`), in
//! f32 and f64.
//!
//! `cargo bench -p gaussian-kl-bench --bench grad -- --warm-up-time 1 --measurement-time 2`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gaussian_kl::batch::{self, Pairs};
use gaussian_kl::{Exec, Gaussians, GradMut, Grads, Kernel, Real};
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
    let scalar = Exec::new().kernel(Kernel::Scalar);
    for d in [3usize, 16, 64] {
        let t = d * (d + 1) / 2;
        for (place, n) in batch_sizes(d) {
            let n = n.max(1);
            let (mp, lp) = gaussians(&mut rng, d, n);
            let (mq, lq) = gaussians(&mut rng, d, n);
            let p = Gaussians::new(n, d, &mp, &lp).unwrap();
            let q = Gaussians::new(n, d, &mq, &lq).unwrap();
            let (mut g1, mut g2) = (vec![0.0; n * d], vec![0.0; n * t]);
            let (mut g3, mut g4) = (vec![0.0; n * d], vec![0.0; n * t]);
            let mut out = vec![0.0; n];
            let up = vec![1.0; n];
            let need = batch::kl_grad_scratch::<f64>(d, &scalar).unwrap();
            let need = need.max(batch::kl_scratch::<f64>(d, &scalar).unwrap());
            let mut work = vec![0.0; need];
            let mut group = c.benchmark_group(format!("full_grad_d{d}"));
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::new("forward", place), |b| {
                b.iter(|| {
                    batch::kl(&p, Pairs::Zip(&q), &mut out, &scalar, &mut work).unwrap();
                    black_box(&mut out);
                })
            });
            group.bench_function(BenchmarkId::new("forward+backward", place), |b| {
                b.iter(|| {
                    let g = Grads::new(
                        GradMut::new(&mut g1, &mut g2),
                        GradMut::new(&mut g3, &mut g4),
                    );
                    batch::kl_grad(&p, Pairs::Zip(&q), &up, &mut out, g, &scalar, &mut work)
                        .unwrap();
                    black_box((&mut out, &mut g2, &mut g4));
                })
            });
            if place == "L2" {
                group.bench_function(BenchmarkId::new("std_normal_forward", place), |b| {
                    b.iter(|| {
                        batch::kl_std_normal(&p, &mut out, &scalar, &mut []).unwrap();
                        black_box(&mut out);
                    })
                });
                group.bench_function(
                    BenchmarkId::new("std_normal_forward+backward", place),
                    |b| {
                        b.iter(|| {
                            let g = GradMut::new(&mut g1, &mut g2);
                            batch::kl_std_normal_grad(&p, &up, &mut out, g, &scalar, &mut [])
                                .unwrap();
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
fn bench_batch<T: Real>(c: &mut Criterion, name: &str) {
    let mut rng = StdRng::seed_from_u64(2);
    let size = core::mem::size_of::<T>();
    let (simd, scalar) = (Exec::new(), Exec::new().kernel(Kernel::Scalar));
    for d in [3usize, 16, 64] {
        let t = d * (d + 1) / 2;
        for (place, n) in batch_sizes(d) {
            // `batch_sizes` counts f64: the same bytes hold 8 / size times more pairs.
            let n = (n * 8 / size).max(1);
            let conv = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect::<Vec<T>>();
            let (mp, lp) = gaussians(&mut rng, d, n);
            let (mq, lq) = gaussians(&mut rng, d, n);
            let (mp, lp, mq, lq) = (conv(mp), conv(lp), conv(mq), conv(lq));
            let p = Gaussians::new(n, d, &mp, &lp).unwrap();
            let q = Gaussians::new(n, d, &mq, &lq).unwrap();
            let (mut g1, mut g2) = (vec![T::ZERO; n * d], vec![T::ZERO; n * t]);
            let (mut g3, mut g4) = (vec![T::ZERO; n * d], vec![T::ZERO; n * t]);
            let mut out = vec![T::ZERO; n];
            let up = vec![T::ONE; n];
            let need = [
                batch::kl_scratch::<T>(d, &simd),
                batch::kl_grad_scratch::<T>(d, &simd),
                batch::kl_grad_scratch::<T>(d, &scalar),
            ]
            .into_iter()
            .map(Result::unwrap)
            .max()
            .unwrap_or(0);
            let mut work = vec![T::ZERO; need];
            let mut group = c.benchmark_group(format!("batch_grad_{name}_d{d}"));
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::new("simd_forward", place), |b| {
                b.iter(|| {
                    batch::kl(&p, Pairs::Zip(&q), &mut out, &simd, &mut work).unwrap();
                    black_box(&mut out);
                })
            });
            for (label, exec) in [
                ("simd_forward+backward", simd),
                ("scalar_forward+backward", scalar),
            ] {
                group.bench_function(BenchmarkId::new(label, place), |b| {
                    b.iter(|| {
                        let g = Grads::new(
                            GradMut::new(&mut g1, &mut g2),
                            GradMut::new(&mut g3, &mut g4),
                        );
                        batch::kl_grad(&p, Pairs::Zip(&q), &up, &mut out, g, &exec, &mut work)
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
