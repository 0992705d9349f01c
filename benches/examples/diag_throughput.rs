//! Throughput of top-10 retrieval (f32, one thread) measured in on-CPU time,
//! for machines shared with other work, where wall-clock benchmarks
//! (`cargo bench -p gaussian-kl-bench --bench diag`) undercount what a core does.
//!
//! On 64-bit Linux the thread's on-CPU time comes from
//! `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`; elsewhere the figures fall back to wall-clock time.
//!
//! Run: `cargo run --release -p gaussian-kl-bench --example diag_throughput -- K NQ ND [REPS]`
//! (defaults: 128 64 16384 5). Prints pairs per second and GFLOP/s on the
//! `2(2k+1)` flops of a compact dot product, for the fused kernel and for the
//! `3k+1` wide representation (`Rep::Wide`, the MRL paper's map) through `matrixmultiply::sgemm` + a streaming top-10.

use gaussian_kl::diag::{self, Rep};
use gaussian_kl::search::{self, DocIndex, Metric};
use gaussian_kl::{DiagGaussians, Exec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::time::Instant;

/// Nanoseconds this thread has run on a CPU (Linux `CLOCK_THREAD_CPUTIME_ID`).
#[cfg(target_os = "linux")]
fn cpu_ns() -> Option<u64> {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `clock_gettime` from the C library the program links, with a
    // valid clock id and a pointer to a live, writable `struct timespec`
    // (two 64-bit fields on 64-bit Linux).
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.sec as u64 * 1_000_000_000 + ts.nsec as u64)
}

#[cfg(not(target_os = "linux"))]
fn cpu_ns() -> Option<u64> {
    None
}

/// Median of `reps` runs of `f`: (wall seconds, on-CPU seconds).
fn measure(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f(); // warm-up
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..reps {
        let (t0, c0) = (Instant::now(), cpu_ns());
        f();
        let w = t0.elapsed().as_secs_f64();
        wall.push(w);
        cpu.push(match (c0, cpu_ns()) {
            (Some(a), Some(b)) => (b - a) as f64 * 1e-9,
            _ => w,
        });
    }
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    (wall[reps / 2], cpu[reps / 2])
}

/// A register-only FMA loop: 24 independent accumulators, `iters` steps.
/// Its rate is the FMA peak this core delivers right now (shared or not).
struct Peak {
    iters: usize,
}

impl pulp::WithSimd for Peak {
    type Output = f32;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> f32 {
        let a = simd.splat_f32s(0.999_999);
        let b = simd.splat_f32s(1e-7);
        let mut acc = [simd.splat_f32s(1.0); 24];
        for _ in 0..self.iters {
            for x in acc.iter_mut() {
                *x = simd.mul_add_f32s(*x, a, b);
            }
        }
        let mut s = simd.splat_f32s(0.0);
        for x in acc {
            s = simd.add_f32s(s, x);
        }
        simd.reduce_sum_f32s(s)
    }
}

/// Measured FMA peak of one thread, f32 GFLOP/s (2 flops per lane per FMA).
fn peak_gflops() -> f64 {
    let iters = 20_000_000;
    let lanes = pulp::Arch::new().dispatch(LaneCount);
    let (_, cpu) = measure(3, || {
        black_box(pulp::Arch::new().dispatch(Peak {
            iters: black_box(iters),
        }));
    });
    (iters * 24 * lanes * 2) as f64 / cpu * 1e-9
}

/// Top-10 of one row by descending score (ties: smaller index), streaming
/// with a threshold, as `benches/diag.rs` does for its peers.
fn select_top(row: &[f32], out: &mut Vec<(f32, usize)>) {
    out.clear();
    for (j, &s) in row.iter().enumerate() {
        if out.len() == 10 {
            if s.is_nan() || s <= out[9].0 {
                continue;
            }
            out.pop();
        }
        let pos = out.partition_point(|&(t, _)| t >= s);
        out.insert(pos, (s, j));
    }
}

struct LaneCount;
impl pulp::WithSimd for LaneCount {
    type Output = usize;
    fn with_simd<S: pulp::Simd>(self, _: S) -> usize {
        S::F32_LANES
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let get = |i: usize, d: usize| args.get(i).copied().unwrap_or(d);
    let (k, nq, nd, reps) = (get(0, 128), get(1, 64), get(2, 16_384), get(3, 5).max(1));
    let mut rng = StdRng::seed_from_u64(2026);
    let mut random = |n: usize, lo: f32, hi: f32| -> Vec<f32> {
        (0..n).map(|_| rng.random_range(lo..hi)).collect()
    };
    let (dm, dv) = (random(nd * k, 0.0, 2.0), random(nd * k, 1.0, 2.7));
    let (qm, qv) = (random(nq * k, 0.0, 1.0), random(nq * k, 0.0, 1.0));
    let docs = DiagGaussians::var(nd, k, &dm, &dv).expect("positive variances");
    let q = DiagGaussians::var(nq, k, &qm, &qv).expect("positive variances");
    let index = DocIndex::new(&docs).unwrap();
    let pairs = (nq * nd) as f64;
    let flops = pairs * 2.0 * (2 * k + 1) as f64;
    let peak = peak_gflops();
    println!("peak      register-only FMA loop: {peak:6.1} GFLOP/s on-CPU");
    let report = |name: &str, (wall, cpu): (f64, f64)| {
        println!(
            "{name:9} k={k} nq={nq} nd={nd}: wall {:7.1} M pairs/s | on-CPU {:7.1} M pairs/s, {:6.1} GFLOP/s (2k+1 count), {:4.1} % of measured peak",
            pairs / wall * 1e-6,
            pairs / cpu * 1e-6,
            flops / cpu * 1e-9,
            100.0 * flops / cpu * 1e-9 / peak
        );
    };

    report(
        "fused",
        measure(reps, || {
            let hits = search::top_k(&index, black_box(&q), 10, Metric::Eq10, &Exec::new());
            black_box(hits.unwrap());
        }),
    );

    let n3 = Rep::Wide.len(k);
    let mut drep = vec![0.0f32; nd * n3];
    diag::doc_vectors(Rep::Wide, &docs, &mut drep).unwrap();
    let mut qrep = vec![0.0f32; nq * n3];
    let mut scores = vec![0.0f32; nq * nd];
    let mut top = Vec::with_capacity(11);
    report(
        "gemm_3k1",
        measure(reps, || {
            diag::query_vectors(Rep::Wide, &q, &mut qrep).unwrap();
            // SAFETY: `qrep` is nq × n3 row-major, `drep` nd × n3 row-major read
            // as the n3 × nd matrix Bᵀ (strides 1, n3), `scores` nq × nd
            // row-major; the sizes match and the buffers do not overlap.
            unsafe {
                matrixmultiply::sgemm(
                    nq,
                    n3,
                    nd,
                    1.0,
                    qrep.as_ptr(),
                    n3 as isize,
                    1,
                    drep.as_ptr(),
                    1,
                    n3 as isize,
                    0.0,
                    scores.as_mut_ptr(),
                    nd as isize,
                    1,
                );
            }
            let mut best = 0usize;
            for row in scores.chunks(nd) {
                select_top(row, &mut top);
                best += top[0].1;
            }
            black_box(best);
        }),
    );
}
