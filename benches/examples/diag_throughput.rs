//! Throughput of top-10 retrieval (f32, one thread) measured in on-CPU time,
//! for machines shared with other work, where wall-clock benchmarks
//! (`cargo bench -p gaussian-kl-bench --bench diag`) undercount what a core does.
//!
//! On 64-bit Linux the thread's on-CPU time comes from
//! `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`; elsewhere the figures fall back to wall-clock time.
//! The peak is the benchmark package's shared FMA probe (`gaussian_kl_bench::probe`, the one
//! the roofline report uses) at the level the search kernel runs; the roofline report
//! (`--example roofline`) has the same measurement as its `mrl_top_k` row.
//!
//! Run: `cargo run --release -p gaussian-kl-bench --example diag_throughput -- K NQ ND [REPS]`
//! (defaults: 128 64 16384 5). Prints pairs per second and GFLOP/s on the
//! `2·2k` flops of a compact dot product (`2k` multiply-adds; the constant term is one add),
//! for the fused kernel and for the
//! `3k+1` wide representation (`Rep::Wide`, the MRL paper's map) through `matrixmultiply::sgemm` + a streaming top-10.

use gaussian_kl::diag::{self, Rep};
use gaussian_kl::search::{self, DocIndex, Metric};
use gaussian_kl::{DiagGaussians, Exec};
use gaussian_kl_bench::probe::{self, Clock, Dtype, ProbeLevel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;

/// Median of `reps` runs of `f`: (wall seconds, on-CPU seconds).
fn measure(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    // One call per repetition (`rep_secs` 0): each call is long.
    let wall = probe::median_secs(Clock::Wall, reps, 0.0, &mut f);
    let cpu = probe::median_secs(Clock::ThreadCpu, reps, 0.0, &mut f);
    (wall, cpu)
}

/// The FMA peak of one thread at the level the search kernel runs, f32
/// GFLOP/s, from the benchmark package's shared probe (`probe`: enough
/// accumulators for the level's registers, no spills, on-CPU time); NaN
/// where the probe has no such level.
fn peak_gflops(reps: usize) -> (String, f64) {
    let level = format!("{:?}", Exec::new().resolved_level().unwrap());
    let peak = ProbeLevel::from_name(&level)
        .and_then(|l| probe::fma_peak_gflops(l, Dtype::F32, 1, reps, 0.05))
        .unwrap_or(f64::NAN);
    (level, peak)
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
    let flops = pairs * 2.0 * (2 * k) as f64;
    let (level, peak) = peak_gflops(reps);
    println!(
        "peak      FMA probe at {level} (gaussian_kl_bench::probe): {peak:6.1} GFLOP/s f32 on-CPU"
    );
    let report = |name: &str, (wall, cpu): (f64, f64)| {
        println!(
            "{name:9} k={k} nq={nq} nd={nd}: wall {:7.1} M pairs/s | on-CPU {:7.1} M pairs/s, {:6.1} GFLOP/s (2·2k count), {:4.1} % of the FMA probe",
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
