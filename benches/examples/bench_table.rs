//! A quick version of `benches/full.rs` that prints one Markdown table:
//! pairs per second for the crate (SIMD, `f32` and `f64`), its scalar
//! reference, nalgebra and faer (`f32`, per pair, single thread), the
//! ratios, and the crate's `f32` GFLOP/s as a fraction of an FMA peak probe.
//!
//! `cargo run --release -p gaussian-kl-bench --example bench_table [-- QUICK_SECS]`
//!
//! Each figure is the median of 3 runs of at least `QUICK_SECS` (default 0.3).

#[path = "../benches/support/mod.rs"]
mod support;

use gaussian_kl::batch::{self, Pairs};
use gaussian_kl::simd::Level;
use gaussian_kl::{Exec, Gaussians, Kernel, Real};
use std::hint::black_box;
use std::time::Instant;

/// Median pairs/s of 3 runs of `f`, each repeated for at least `secs`.
fn rate(n: usize, secs: f64, mut f: impl FnMut()) -> f64 {
    let mut r = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let mut reps = 0usize;
        while t0.elapsed().as_secs_f64() < secs {
            f();
            reps += 1;
        }
        r.push((reps * n) as f64 / t0.elapsed().as_secs_f64());
    }
    r.sort_by(|a, b| a.partial_cmp(b).unwrap());
    r[1]
}

fn crate_rate<T: Real>(d: usize, n: usize, secs: f64, kernel: Kernel) -> f64 {
    let (mp, tp) = support::batch::<T>(1, d, n);
    let (mq, tq) = support::batch::<T>(2, d, n);
    let p = Gaussians::new(n, d, &mp, &tp).unwrap();
    let q = Gaussians::new(n, d, &mq, &tq).unwrap();
    let mut out = vec![T::ZERO; n];
    let exec = Exec::new().kernel(kernel);
    let mut work = vec![T::ZERO; batch::kl_scratch::<T>(d, &exec).unwrap()];
    rate(n, secs, || {
        batch::kl(
            black_box(&p),
            Pairs::Zip(&q),
            black_box(&mut out),
            &exec,
            &mut work,
        )
        .unwrap()
    })
}

type Peer = fn(usize, &[f32], &[f32], &[f32], &[f32], &mut [f32]);

fn peer_rate(d: usize, n: usize, secs: f64, peer: Peer) -> f64 {
    let (mp, tp) = support::batch::<f32>(1, d, n);
    let (mq, tq) = support::batch::<f32>(2, d, n);
    let mut out = vec![0.0; n];
    // Checked equal to the crate before timing.
    let mut check = vec![0.0; n];
    support::kl_zip(&Exec::new(), d, (&mp, &tp), (&mq, &tq), &mut check);
    peer(d, &mp, &tp, &mq, &tq, &mut out);
    for (a, b) in out.iter().zip(&check) {
        assert!(
            (a - b).abs() <= 1e-3 * (1.0 + b.abs()),
            "peer disagrees at d={d}: {a} vs {b}"
        );
    }
    rate(n, secs, || {
        peer(d, black_box(&mp), &tp, &mq, &tq, black_box(&mut out))
    })
}

fn fmt(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.1} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.3);
    let peak = support::peak_gflops_f32();
    println!(
        "level {:?} ({} f32 lanes); FMA peak probe {peak:.0} GFLOP/s f32; single thread; median of 3\n",
        Level::detect(),
        Level::detect().lanes::<f32>()
    );
    println!(
        "| d | batch | crate f32 | crate f64 | scalar f32 | nalgebra f32 | faer f32 | × scalar | × nalgebra | × faer | f64/f32 | GFLOP/s f32 (% peak) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let rows: &[(usize, usize)] = &[
        (2, 4096),
        (3, 4096),
        (3, 1 << 20),
        (4, 4096),
        (8, 4096),
        (16, 4096),
        (32, 1024),
        (64, 256),
        (128, 32),
        (256, 8),
    ];
    for &(d, n) in rows {
        let simd = crate_rate::<f32>(d, n, secs, Kernel::Auto);
        let simd64 = crate_rate::<f64>(d, n, secs, Kernel::Auto);
        let peer_n = n.min(4096);
        let scalar = crate_rate::<f32>(d, peer_n, secs, Kernel::Scalar);
        let na = peer_rate(d, peer_n, secs, support::nalgebra_f32);
        let fa = peer_rate(d, peer_n, secs, support::faer_f32);
        let gf = simd * support::flops_per_pair(d) / 1e9;
        println!(
            "| {d} | {n} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {gf:.1} ({:.0} %) |",
            fmt(simd),
            fmt(simd64),
            fmt(scalar),
            fmt(na),
            fmt(fa),
            simd / scalar,
            simd / na,
            simd / fa,
            simd64 / simd,
            100.0 * gf / peak
        );
    }
}
