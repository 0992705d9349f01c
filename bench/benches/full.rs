//! Full-rank KL throughput in pairs per second: the crate's SIMD kernels,
//! its scalar reference, nalgebra and faer (per pair, single thread) in the
//! same run, for d ∈ {2, 3, 4, 8, 16, 32, 64, 128, 256} and batches sized for
//! L1, L2 and DRAM; `f32` and `f64`.
//!
//! `cargo bench -p gaussian-kl-bench --bench full -- --warm-up-time 1 --measurement-time 2 'f32/d=3/'`

mod support;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gaussian_kl::batch::{Gaussians, Kernel, Options};
use gaussian_kl::simd::SimdReal;
use std::hint::black_box;

const DIMS: [usize; 9] = [2, 3, 4, 8, 16, 32, 64, 128, 256];

/// Batch sizes whose inputs fill about 24 KiB (L1), 1 MiB (L2) and 96 MiB
/// (DRAM); at d ≤ 4 the L2 and DRAM sizes are the 4096 and 2²⁰ of the targets.
fn sizes<T>(d: usize) -> Vec<usize> {
    let bytes = 2 * (d + d * (d + 1) / 2) * core::mem::size_of::<T>();
    let mut v = vec![(24 << 10) / bytes, (1 << 20) / bytes, (96 << 20) / bytes];
    if d <= 4 {
        v[1] = 4096;
        v[2] = 1 << 20;
    }
    for s in &mut v {
        *s = (*s).max(1);
    }
    v.dedup();
    v
}

type Peer<T> = fn(usize, &[T], &[T], &[T], &[T], &mut [T]);

fn group<T: SimdReal>(c: &mut Criterion, name: &str, nalgebra: Peer<T>, faer: Peer<T>) {
    for d in DIMS {
        let mut g = c.benchmark_group(format!("{name}/d={d}"));
        for n in sizes::<T>(d) {
            let (mp, tp) = support::batch::<T>(1, d, n);
            let (mq, tq) = support::batch::<T>(2, d, n);
            let (p, q) = (Gaussians::new(d, &mp, &tp), Gaussians::new(d, &mq, &tq));
            let mut out = vec![T::ZERO; n];
            // Checked equal before timing: every peer against the crate.
            let mut check = vec![T::ZERO; n.min(64)];
            let m = check.len();
            let (cp, cq) = (
                Gaussians::new(d, &mp[..m * d], &tp[..m * d * (d + 1) / 2]),
                Gaussians::new(d, &mq[..m * d], &tq[..m * d * (d + 1) / 2]),
            );
            Options::new().kl_full(&cp, &cq, &mut check).unwrap();
            for peer in [nalgebra, faer] {
                let mut o = vec![T::ZERO; m];
                peer(d, cp.means, cp.tril, cq.means, cq.tril, &mut o);
                for (a, b) in o.iter().zip(&check) {
                    let scale = 1.0 + b.to_f64().abs();
                    assert!(
                        (a.to_f64() - b.to_f64()).abs() <= 1e-3 * scale,
                        "peer disagrees at d={d}: {a} vs {b}"
                    );
                }
            }
            g.throughput(Throughput::Elements(n as u64));
            g.bench_function(BenchmarkId::new("simd", n), |b| {
                b.iter(|| Options::new().kl_full(black_box(&p), black_box(&q), black_box(&mut out)))
            });
            let scalar = Options::new().kernel(Kernel::Scalar);
            let dram = n * d * d > (8 << 20);
            if !dram {
                g.bench_function(BenchmarkId::new("scalar", n), |b| {
                    b.iter(|| scalar.kl_full(black_box(&p), black_box(&q), black_box(&mut out)))
                });
                g.bench_function(BenchmarkId::new("nalgebra", n), |b| {
                    b.iter(|| nalgebra(d, black_box(&mp), &tp, &mq, &tq, black_box(&mut out)))
                });
                g.bench_function(BenchmarkId::new("faer", n), |b| {
                    b.iter(|| faer(d, black_box(&mp), &tp, &mq, &tq, black_box(&mut out)))
                });
            }
        }
        g.finish();
    }
}

fn full(c: &mut Criterion) {
    group::<f32>(c, "f32", support::nalgebra_f32, support::faer_f32);
    group::<f64>(c, "f64", support::nalgebra_f64, support::faer_f64);
}

fn peak(c: &mut Criterion) {
    let g = support::peak_gflops_f32();
    c.bench_function("peak_probe_f32", |b| b.iter(|| black_box(g)));
    eprintln!("peak probe: {g:.1} GFLOP/s f32 (one core, FMA)");
}

criterion_group!(benches, peak, full);
criterion_main!(benches);
