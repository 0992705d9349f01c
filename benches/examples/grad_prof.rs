// Temporary profiling driver (not committed).
use gaussian_kl::batch::{self, Pairs};
use gaussian_kl::{Exec, Gaussians, GradMut, Grads, Kernel};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let d: usize = a[1].parse().unwrap();
    let n: usize = a[2].parse().unwrap();
    let secs: f64 = a[3].parse().unwrap();
    let kern = match a.get(4).map(|s| s.as_str()) {
        Some("lanes") => Kernel::Lanes,
        Some("blocked") => Kernel::Blocked,
        Some("kl") => Kernel::Auto,
        _ => Kernel::Auto,
    };
    let fwd = a.get(4).map(|s| s.as_str()) == Some("kl");
    let t = d * (d + 1) / 2;
    let mut seed = 1u64;
    let mut r = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5) as f32
    };
    let mp: Vec<f32> = (0..n * d).map(|_| r()).collect();
    let mq: Vec<f32> = (0..n * d).map(|_| r()).collect();
    let s = 1.0 / (d as f32).sqrt();
    let fp: Vec<f32> = (0..n * t).map(|_| r() * s).collect();
    let fq: Vec<f32> = (0..n * t).map(|_| r() * s).collect();
    let p = Gaussians::new(n, d, &mp, &fp).unwrap();
    let q = Gaussians::new(n, d, &mq, &fq).unwrap();
    let exec = Exec::new().kernel(kern);
    let mut out = vec![0.0f32; n];
    let u = vec![1.0f32; n];
    let (mut a1, mut a2, mut a3, mut a4) = (
        vec![0.0f32; n * d],
        vec![0.0f32; n * t],
        vec![0.0f32; n * d],
        vec![0.0f32; n * t],
    );
    let start = std::time::Instant::now();
    let c0 = gaussian_kl_bench::probe::thread_cpu_ns().unwrap();
    let mut reps = 0usize;
    if fwd {
        let mut work = vec![0.0f32; batch::kl_scratch::<f32>(d, &exec).unwrap()];
        while start.elapsed().as_secs_f64() < secs {
            batch::kl(&p, Pairs::Zip(&q), &mut out, &exec, &mut work).unwrap();
            reps += 1;
        }
    } else {
        let mut work = vec![0.0f32; batch::kl_grad_scratch::<f32>(d, &exec).unwrap()];
        while start.elapsed().as_secs_f64() < secs {
            let g = Grads::new(
                GradMut::new(&mut a1, &mut a2),
                GradMut::new(&mut a3, &mut a4),
            );
            batch::kl_grad(&p, Pairs::Zip(&q), &u, &mut out, g, &exec, &mut work).unwrap();
            reps += 1;
        }
    }
    let el = (gaussian_kl_bench::probe::thread_cpu_ns().unwrap() - c0) as f64 * 1e-9;
    println!(
        "d={d} {} pairs/s {:.3e} out0 {}",
        a.get(4).cloned().unwrap_or_default(),
        (reps * n) as f64 / el,
        out[0]
    );
}
