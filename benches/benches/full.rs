//! Full-rank KL throughput in pairs per second: the crate's SIMD kernels,
//! its scalar reference, nalgebra and faer (per pair, single thread) in the
//! same run, for d ∈ {2, 3, 4, 8, 16, 32, 64, 128, 256} and batches sized for
//! L1, L2 and DRAM; `f32` and `f64`.
//!
//! `cargo bench -p gaussian-kl-bench --bench full -- --warm-up-time 1 --measurement-time 2 'f32/d=3/'`

mod support;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gaussian_kl::batch::{self, Pairs};
use gaussian_kl::{Exec, Gaussians, Kernel, Real};
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

fn group<T: Real>(c: &mut Criterion, name: &str, nalgebra: Peer<T>, faer: Peer<T>) {
    for d in DIMS {
        let mut g = c.benchmark_group(format!("{name}/d={d}"));
        for n in sizes::<T>(d) {
            let (mp, tp) = support::batch::<T>(1, d, n);
            let (mq, tq) = support::batch::<T>(2, d, n);
            let p = Gaussians::new(n, d, &mp, &tp).unwrap();
            let q = Gaussians::new(n, d, &mq, &tq).unwrap();
            let mut out = vec![T::ZERO; n];
            // Checked equal before timing: every peer against the crate.
            let m = n.min(64);
            let mut check = vec![T::ZERO; m];
            let (cp, cq) = (
                (&mp[..m * d], &tp[..m * d * (d + 1) / 2]),
                (&mq[..m * d], &tq[..m * d * (d + 1) / 2]),
            );
            support::kl_zip(&Exec::new(), d, cp, cq, &mut check);
            for peer in [nalgebra, faer] {
                let mut o = vec![T::ZERO; m];
                peer(d, cp.0, cp.1, cq.0, cq.1, &mut o);
                for (a, b) in o.iter().zip(&check) {
                    let scale = 1.0 + b.to_f64().abs();
                    assert!(
                        (a.to_f64() - b.to_f64()).abs() <= 1e-3 * scale,
                        "peer disagrees at d={d}: {a} vs {b}"
                    );
                }
            }
            g.throughput(Throughput::Elements(n as u64));
            let simd = Exec::new();
            let scalar = Exec::new().kernel(Kernel::Scalar);
            let need = batch::kl_scratch::<T>(d, &simd).unwrap();
            let need = need.max(batch::kl_scratch::<T>(d, &scalar).unwrap());
            let mut work = vec![T::ZERO; need];
            let mut run = |exec: &Exec, out: &mut [T]| {
                batch::kl(
                    black_box(&p),
                    Pairs::Zip(black_box(&q)),
                    out,
                    exec,
                    &mut work,
                )
            };
            g.bench_function(BenchmarkId::new("simd", n), |b| {
                b.iter(|| run(&simd, black_box(&mut out)))
            });
            let dram = n * d * d > (8 << 20);
            if !dram {
                g.bench_function(BenchmarkId::new("scalar", n), |b| {
                    b.iter(|| run(&scalar, black_box(&mut out)))
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
