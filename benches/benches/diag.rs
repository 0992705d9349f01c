//! Top-10 retrieval of diagonal Gaussians by the Eq. 10 score, f32, one
//! thread, with its peers in the same run:
//!
//! - `fused`: `search::top_k`, the compact `2k+1` panels scored by the
//!   register-blocked micro-kernel straight into per-query heaps;
//! - `gemm_3k1`: the `3k+1` wide representations (`Rep::Wide`, the MRL paper's map) scored by a single-thread
//!   `matrixmultiply::sgemm` into the full `nq × nd` matrix, then a top-10
//!   selection per row (what `qrep @ drep.T` + `topk` does);
//! - `direct`: the Eq. 10 double loop (`Σ log σ²_D` once per document, then
//!   `Σ (σ²_Q + (μ_Q − μ_D)²)/σ²_D` per pair), then top-10 (small `nd` only).
//!
//! Throughput is in query–document pairs per second.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gaussian_kl::diag::{self, Rep};
use gaussian_kl::search::{self, DocIndex, Metric};
use gaussian_kl::{DiagGaussians, Exec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;

const TOP: usize = 10;

fn random(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Top-`TOP` of one row by descending score (ties: smaller index), into `out`.
fn select_top(row: &[f32], out: &mut Vec<(f32, usize)>) {
    out.clear();
    for (j, &s) in row.iter().enumerate() {
        if out.len() == TOP {
            if s.is_nan() || s <= out[TOP - 1].0 {
                continue;
            }
            out.pop();
        }
        let pos = out.partition_point(|&(t, _)| t >= s);
        out.insert(pos, (s, j));
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(2026);
    let exec = Exec::new();
    for k in [16usize, 128, 384] {
        for nd in [16_384usize, 131_072] {
            let dm = random(&mut rng, nd * k, 0.0, 2.0);
            let dv = random(&mut rng, nd * k, 1.0, 2.7);
            let docs = DiagGaussians::var(nd, k, &dm, &dv).unwrap();
            let index = DocIndex::new(&docs).unwrap();
            let n3 = Rep::Wide.len(k);
            let mut drep = vec![0.0f32; nd * n3];
            diag::doc_vectors(Rep::Wide, &docs, &mut drep).unwrap();
            let mut group = c.benchmark_group(format!("diag_top10_f32/k{k}"));
            group.sample_size(10);
            for nq in [1usize, 64] {
                let qm = random(&mut rng, nq * k, 0.0, 1.0);
                let qv = random(&mut rng, nq * k, 0.0, 1.0);
                let q = DiagGaussians::var(nq, k, &qm, &qv).unwrap();
                group.throughput(Throughput::Elements((nq * nd) as u64));
                let id = |peer: &str| BenchmarkId::new(peer, format!("nq{nq}_nd{nd}"));

                group.bench_function(id("fused"), |b| {
                    b.iter(|| {
                        let hits = search::top_k(&index, black_box(&q), TOP, Metric::Eq10, &exec);
                        black_box(hits.unwrap())
                    })
                });

                let mut scores = vec![0.0f32; nq * nd];
                let mut qrep = vec![0.0f32; nq * n3];
                let mut top = Vec::with_capacity(TOP + 1);
                group.bench_function(id("gemm_3k1"), |b| {
                    b.iter(|| {
                        diag::query_vectors(Rep::Wide, black_box(&q), &mut qrep).unwrap();
                        // SAFETY: `qrep` is nq × n3 row-major (strides n3, 1); `drep`
                        // is nd × n3 row-major, read as the n3 × nd matrix Bᵀ (strides
                        // 1, n3); `scores` is nq × nd row-major (strides nd, 1). All
                        // three buffers have exactly those sizes and do not overlap.
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
                        let mut checksum = 0;
                        for i in 0..nq {
                            select_top(&scores[i * nd..][..nd], &mut top);
                            checksum += top[0].1;
                        }
                        black_box(checksum)
                    })
                });

                if nd <= 16_384 {
                    let mut row = vec![0.0f32; nd];
                    let mut log_det = vec![0.0f32; nd];
                    group.bench_function(id("direct"), |b| {
                        b.iter(|| {
                            for (j, ld) in log_det.iter_mut().enumerate() {
                                *ld = dv[j * k..][..k].iter().map(|v| v.ln()).sum();
                            }
                            let mut checksum = 0;
                            for i in 0..nq {
                                let (mq, vq) = (&qm[i * k..][..k], &qv[i * k..][..k]);
                                for (j, r) in row.iter_mut().enumerate() {
                                    let (md, vd) = (&dm[j * k..][..k], &dv[j * k..][..k]);
                                    let mut s = 0.0f32;
                                    for p in 0..k {
                                        let d = mq[p] - md[p];
                                        s += (vq[p] + d * d) / vd[p];
                                    }
                                    *r = -(log_det[j] + s);
                                }
                                select_top(&row, &mut top);
                                checksum += top[0].1;
                            }
                            black_box(checksum)
                        })
                    });
                }
            }
            group.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
