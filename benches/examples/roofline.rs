//! The roofline report of issue 13: the crate's throughput at every size that
//! matters against the bound of this machine (FMA peak ÷ flops, or read
//! bandwidth at the row's working set ÷ bytes, whichever is smaller), with
//! its peers measured in the same run.
//!
//! ```text
//! cargo run --release -p gaussian-kl-bench --example roofline -- [--json PATH] [--reps N] [--rep-secs S] [--quick] [--probe-only]
//!     [--op kl|kl_grad|kl_par|mrl_top_k]... [--d N]...
//! ```
//!
//! Defaults: 7 repetitions of at least 0.08 s per figure (median), about
//! two minutes on a 2-core machine; `--quick` (5 × 0.005 s) only checks
//! that everything runs; `--probe-only` prints the probes (FMA per level,
//! reads from 16 KiB to 256 MiB) and stops.
//!
//! The bounds come from `gaussian_kl_bench::probe`: the FMA probe at the
//! level the crate runs (`Exec::resolved_level`), and the streaming-read
//! probe over a buffer as large as the row's inputs, with as many threads as
//! the row. Cost model per pair:
//! - `kl`, `kl_par`: `d³/3 + 2d²` flops (issue 13's count: the triangular
//!   solve `L_q M = L_p` is `d³/6` multiply-adds; `y` and the squared norms
//!   `O(d²)`); bytes are the inputs read once: two means and two packed
//!   factors, `(2d + d(d+1)) · sizeof(T)`. The bound ignores `exp` and the
//!   transposes into lanes, which dominate at small `d`.
//! - `kl_grad`: `3 (d³/3 + 2d²)` (the forward solve plus a backward of two
//!   more `d³/6`-multiply-add sweeps, docs/performance.md); bytes: inputs read
//!   plus gradients written (as large as the inputs) plus `upstream` and `out`.
//! - `mrl_top_k`: `2 · 2k` flops, the dot product of the compact
//!   representation the kernel scores (`Rep::Compact`, `2k + 1` numbers, the
//!   constant term an add); bytes: the index and the queries read once each,
//!   `(2k + 1) · 4 · (1/n_queries + 1/n_docs)`.
//!
//! Every peer is checked against the crate before it is timed (relative
//! difference `|a − b| / max(1, |b|)` within the tolerances below, the
//! largest one seen is in the JSON as `peer_max_rel_diff`).

#[path = "../benches/support/mod.rs"]
mod support;

use gaussian_kl::batch::{self, Pairs};
use gaussian_kl::diag::{self, Rep};
use gaussian_kl::search::{self, DocIndex, Metric};
use gaussian_kl::simd::Level;
use gaussian_kl::{DiagGaussians, Exec, Gaussians, GradMut, Grads, Kernel, Par, Real};
use gaussian_kl_bench::probe::{self, Clock, Dtype, ProbeLevel};
use gaussian_kl_bench::report::{Report, Row, si, today};
use nalgebra::{RealField, SMatrix, SVector};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::hint::black_box;

/// Largest relative difference `|a − b| / max(1, |b|)` a peer may show
/// against the crate's `kl` in `f32`. Largest seen (docs/roofline.json,
/// `peer_max_rel_diff`): 1.9e-5 (the crate's scalar kernel), 1.1e-6
/// (nalgebra, faer); a bench check, so it only has to catch a wrong peer,
/// which is off by O(1).
const TOL_F32: f64 = 1e-3;
/// The same in `f64` (largest seen 1.1e-14).
const TOL_F64: f64 = 1e-9;
/// The SIMD gradient against the scalar gradient, `f32`: every value and
/// gradient entry (largest seen 1.5e-5).
const TOL_GRAD_F32: f64 = 3e-3;

type Peer<T> = fn(usize, &[T], &[T], &[T], &[T], &mut [T]);

/// nalgebra with fixed-size matrices, as a user with a compile-time `D`
/// writes it: `SMatrix` factors, `solve_lower_triangular`, squared norms.
fn nalgebra_fixed<T: RealField + Copy, const D: usize>(
    _d: usize,
    mp: &[T],
    tp: &[T],
    mq: &[T],
    tq: &[T],
    out: &mut [T],
) {
    let t = D * (D + 1) / 2;
    for (k, o) in out.iter_mut().enumerate() {
        let (tp, tq) = (&tp[k * t..][..t], &tq[k * t..][..t]);
        let build = |raw: &[T]| {
            SMatrix::<T, D, D>::from_fn(|i, j| {
                if j < i {
                    raw[i * (i + 1) / 2 + j]
                } else if i == j {
                    raw[i * (i + 1) / 2 + i].exp()
                } else {
                    T::zero()
                }
            })
        };
        let (l1, l2) = (build(tp), build(tq));
        let diff = SVector::<T, D>::from_fn(|i, _| mq[k * D + i] - mp[k * D + i]);
        let m = l2.solve_lower_triangular(&l1).unwrap();
        let y = l2.solve_lower_triangular(&diff).unwrap();
        let mut ld = T::zero();
        for i in 0..D {
            ld += tp[i * (i + 1) / 2 + i] - tq[i * (i + 1) / 2 + i];
        }
        let two: T = nalgebra::convert(2.0);
        let dd: T = nalgebra::convert(D as f64);
        let half: T = nalgebra::convert(0.5);
        *o = half * (y.norm_squared() + m.norm_squared() - two * ld - dd);
    }
}

fn fixed_peer<T: RealField + Copy>(d: usize) -> Option<Peer<T>> {
    Some(match d {
        2 => nalgebra_fixed::<T, 2>,
        3 => nalgebra_fixed::<T, 3>,
        4 => nalgebra_fixed::<T, 4>,
        8 => nalgebra_fixed::<T, 8>,
        16 => nalgebra_fixed::<T, 16>,
        _ => return None,
    })
}

/// The two element types with their peers and tolerances.
trait Num: Real + RealField + Copy {
    const DTYPE: Dtype;
    const TOL: f64;
    fn peers(d: usize) -> Vec<(&'static str, Peer<Self>)>;
}

impl Num for f32 {
    const DTYPE: Dtype = Dtype::F32;
    const TOL: f64 = TOL_F32;
    fn peers(d: usize) -> Vec<(&'static str, Peer<f32>)> {
        let mut v: Vec<(&'static str, Peer<f32>)> = Vec::new();
        if let Some(f) = fixed_peer::<f32>(d) {
            v.push(("nalgebra_SMatrix", f));
        }
        v.push(("nalgebra_DMatrix", support::nalgebra_f32));
        v.push(("faer", support::faer_f32));
        v
    }
}

impl Num for f64 {
    const DTYPE: Dtype = Dtype::F64;
    const TOL: f64 = TOL_F64;
    fn peers(d: usize) -> Vec<(&'static str, Peer<f64>)> {
        let mut v: Vec<(&'static str, Peer<f64>)> = Vec::new();
        if let Some(f) = fixed_peer::<f64>(d) {
            v.push(("nalgebra_SMatrix", f));
        }
        v.push(("nalgebra_DMatrix", support::nalgebra_f64));
        v.push(("faer", support::faer_f64));
        v
    }
}

/// Largest `|a − b| / max(1, |b|)` over two equally long slices (infinity
/// for a NaN on either side).
fn max_rel_diff<T: Real>(a: &[T], b: &[T]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0f64, |m, (&x, &y)| {
        let (x, y) = (Real::to_f64(x), Real::to_f64(y));
        let e = (x - y).abs() / y.abs().max(1.0);
        if e.is_nan() { f64::INFINITY } else { m.max(e) }
    })
}

/// Panics with the row and peer named unless `err ≤ tol`.
fn check(what: &str, err: f64, tol: f64) {
    assert!(
        err <= tol,
        "{what}: relative difference {err:e} from the crate exceeds {tol:e}"
    );
}

/// The run's settings and the bounds measured so far.
struct Ctx {
    reps: usize,
    rep_secs: f64,
    level: Option<ProbeLevel>,
    peak: HashMap<(&'static str, usize), f64>,
    bandwidth: HashMap<(usize, usize), f64>,
}

impl Ctx {
    /// Seconds per call, single thread: on-CPU time.
    fn time(&self, f: impl FnMut()) -> f64 {
        probe::median_secs(Clock::ThreadCpu, self.reps, self.rep_secs, f)
    }

    /// Seconds per call, any number of threads: wall-clock time.
    fn time_wall(&self, f: impl FnMut()) -> f64 {
        probe::median_secs(Clock::Wall, self.reps, self.rep_secs, f)
    }

    fn peak(&mut self, dtype: Dtype, threads: usize) -> f64 {
        let (reps, secs, level) = (self.reps, self.rep_secs, self.level);
        *self.peak.entry((dtype.name(), threads)).or_insert_with(|| {
            level
                .and_then(|l| probe::fma_peak_gflops(l, dtype, threads, reps, secs))
                .unwrap_or(f64::NAN)
        })
    }

    fn bandwidth(&mut self, bytes: usize, threads: usize) -> f64 {
        let (reps, secs) = (self.reps, self.rep_secs);
        *self
            .bandwidth
            .entry((bytes, threads))
            .or_insert_with(|| probe::read_bandwidth_gbs(bytes, threads, reps, secs))
    }

    /// Fills the row's bound from the probes.
    fn bound(&mut self, row: &mut Row, dtype: Dtype) {
        row.peak_gflops = self.peak(dtype, row.threads);
        let ws = (row.bytes_per_pair * row.batch as f64).ceil() as usize;
        row.bandwidth_gbs = self.bandwidth(ws, row.threads);
    }
}

fn kl_flops(d: usize) -> f64 {
    let d = d as f64;
    d * d * d / 3.0 + 2.0 * d * d
}

fn kl_bytes(d: usize, size: usize) -> f64 {
    ((2 * d + d * (d + 1)) * size) as f64
}

/// Two random batches of `n` Gaussians, PyTorch layout.
struct Inputs<T> {
    d: usize,
    n: usize,
    mp: Vec<T>,
    tp: Vec<T>,
    mq: Vec<T>,
    tq: Vec<T>,
}

impl<T: Real> Inputs<T> {
    fn new(d: usize, n: usize) -> Self {
        let (mp, tp) = support::batch::<T>(1, d, n);
        let (mq, tq) = support::batch::<T>(2, d, n);
        Inputs {
            d,
            n,
            mp,
            tp,
            mq,
            tq,
        }
    }

    fn views(&self) -> (Gaussians<'_, T>, Gaussians<'_, T>) {
        (
            Gaussians::new(self.n, self.d, &self.mp, &self.tp).unwrap(),
            Gaussians::new(self.n, self.d, &self.mq, &self.tq).unwrap(),
        )
    }

    /// `KL` of every pair under `exec` into `out`.
    fn kl(&self, exec: &Exec, out: &mut [T], work: &mut [T]) {
        let (p, q) = self.views();
        batch::kl(&p, Pairs::Zip(&q), out, exec, work).unwrap();
    }
}

/// Pairs per second of the crate's `batch::kl` under `exec`, and its output.
fn crate_kl<T: Real>(ctx: &Ctx, inp: &Inputs<T>, exec: &Exec, wall: bool) -> (f64, Vec<T>) {
    let mut out = vec![T::ZERO; inp.n];
    let mut work = vec![T::ZERO; batch::kl_scratch::<T>(inp.d, exec).unwrap()];
    inp.kl(exec, &mut out, &mut work);
    let run = || inp.kl(exec, black_box(&mut out), &mut work);
    let secs = if wall {
        ctx.time_wall(run)
    } else {
        ctx.time(run)
    };
    (inp.n as f64 / secs, out)
}

fn kl_row<T: Num>(ctx: &mut Ctx, d: usize, n: usize) -> Row {
    let inp = Inputs::<T>::new(d, n);
    let (rate, reference) = crate_kl(ctx, &inp, &Exec::new(), false);
    let mut peers = Vec::new();
    let (scalar, out) = crate_kl(ctx, &inp, &Exec::new().kernel(Kernel::Scalar), false);
    let e = max_rel_diff(&out, &reference);
    check(&format!("kl {d} scalar"), e, T::TOL);
    peers.push(("gaussian-kl_scalar".to_string(), scalar, e));
    for (name, peer) in T::peers(d) {
        let mut out = vec![T::ZERO; n];
        peer(d, &inp.mp, &inp.tp, &inp.mq, &inp.tq, &mut out);
        let e = max_rel_diff(&out, &reference);
        check(&format!("kl {} d={d} {name}", T::DTYPE.name()), e, T::TOL);
        let secs = ctx.time(|| peer(d, black_box(&inp.mp), &inp.tp, &inp.mq, &inp.tq, &mut out));
        peers.push((name.to_string(), n as f64 / secs, e));
    }
    let mut row = Row {
        op: "kl",
        dtype: T::DTYPE.name(),
        d,
        batch: n,
        threads: 1,
        clock: Clock::ThreadCpu.name(),
        pairs_per_s: rate,
        flops_per_pair: kl_flops(d),
        bytes_per_pair: kl_bytes(d, T::DTYPE.bytes()),
        peers,
        ..Row::default()
    };
    ctx.bound(&mut row, T::DTYPE);
    row
}

/// Pairs per second of `batch::kl_grad` (`upstream = 1`) under `exec`, and
/// `out` followed by the four gradients.
fn crate_grad(ctx: &Ctx, inp: &Inputs<f32>, exec: &Exec) -> (f64, Vec<f32>) {
    let (d, n, t) = (inp.d, inp.n, inp.d * (inp.d + 1) / 2);
    let (p, q) = inp.views();
    let up = vec![1.0f32; n];
    let mut out = vec![0.0f32; n];
    let (mut gmp, mut glp) = (vec![0.0f32; n * d], vec![0.0f32; n * t]);
    let (mut gmq, mut glq) = (vec![0.0f32; n * d], vec![0.0f32; n * t]);
    let mut work = vec![0.0f32; batch::kl_grad_scratch::<f32>(d, exec).unwrap()];
    let mut run = || {
        let g = Grads::new(
            GradMut::new(&mut gmp, &mut glp),
            GradMut::new(&mut gmq, &mut glq),
        );
        batch::kl_grad(
            &p,
            Pairs::Zip(&q),
            &up,
            black_box(&mut out),
            g,
            exec,
            &mut work,
        )
        .unwrap();
    };
    run();
    let secs = ctx.time(&mut run);
    let all = [out, gmp, glp, gmq, glq].concat();
    (n as f64 / secs, all)
}

fn grad_row(ctx: &mut Ctx, d: usize, n: usize) -> Row {
    let inp = Inputs::<f32>::new(d, n);
    let (rate, reference) = crate_grad(ctx, &inp, &Exec::new());
    let (scalar, out) = crate_grad(ctx, &inp, &Exec::new().kernel(Kernel::Scalar));
    let e = max_rel_diff(&out, &reference);
    check(&format!("kl_grad d={d} scalar"), e, TOL_GRAD_F32);
    let mut row = Row {
        op: "kl_grad",
        dtype: "f32",
        d,
        batch: n,
        threads: 1,
        clock: Clock::ThreadCpu.name(),
        pairs_per_s: rate,
        flops_per_pair: 3.0 * kl_flops(d),
        bytes_per_pair: 2.0 * kl_bytes(d, 4) + 8.0,
        peers: vec![("gaussian-kl_scalar".into(), scalar, e)],
        ..Row::default()
    };
    ctx.bound(&mut row, Dtype::F32);
    row
}

fn par_row(ctx: &mut Ctx, d: usize, n: usize, threads: usize) -> Row {
    let inp = Inputs::<f32>::new(d, n);
    let (seq, reference) = crate_kl(ctx, &inp, &Exec::new(), true);
    let (rate, out) = crate_kl(ctx, &inp, &Exec::new().par(Par::Rayon(threads)), true);
    let e = max_rel_diff(&out, &reference);
    check(&format!("kl_par d={d}"), e, 0.0);
    let mut row = Row {
        op: "kl_par",
        dtype: "f32",
        d,
        batch: n,
        threads,
        clock: "wall",
        pairs_per_s: rate,
        flops_per_pair: kl_flops(d),
        bytes_per_pair: kl_bytes(d, 4),
        // The same call on one thread (Par::Seq), same run.
        peers: vec![("gaussian-kl_1_thread".into(), seq, 0.0)],
        ..Row::default()
    };
    ctx.bound(&mut row, Dtype::F32);
    row
}

/// Top-10 of one row of scores by descending score (ties: smaller index),
/// streaming with a threshold, as `benches/diag.rs` does for its peers.
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

/// The peer of `top_k`: the `3k + 1` map of the MRL paper (`Rep::Wide`), one
/// `matrixmultiply::sgemm` for all scores, a streaming top-10 per query.
/// Returns the 10 best Eq. 10 scores of each query.
struct Gemm {
    k: usize,
    nq: usize,
    nd: usize,
    drep: Vec<f32>,
    qrep: Vec<f32>,
    scores: Vec<f32>,
    top: Vec<(f32, usize)>,
}

impl Gemm {
    fn run(&mut self, q: &DiagGaussians<f32>, best: &mut [f32]) {
        let n3 = Rep::Wide.len(self.k);
        diag::query_vectors(Rep::Wide, q, &mut self.qrep).unwrap();
        // SAFETY: `qrep` is nq × n3 row-major, `drep` nd × n3 row-major read
        // as the n3 × nd matrix Bᵀ (strides 1, n3), `scores` nq × nd
        // row-major; the sizes match and the buffers do not overlap.
        unsafe {
            matrixmultiply::sgemm(
                self.nq,
                n3,
                self.nd,
                1.0,
                self.qrep.as_ptr(),
                n3 as isize,
                1,
                self.drep.as_ptr(),
                1,
                n3 as isize,
                0.0,
                self.scores.as_mut_ptr(),
                self.nd as isize,
                1,
            );
        }
        for (row, b) in self.scores.chunks(self.nd).zip(best.chunks_mut(10)) {
            select_top(row, &mut self.top);
            for (x, &(s, _)) in b.iter_mut().zip(&self.top) {
                *x = s;
            }
        }
    }
}

fn mrl_row(ctx: &mut Ctx, k: usize, nq: usize, nd: usize) -> Row {
    let mut rng = StdRng::seed_from_u64(2026);
    let mut random = |n: usize, lo: f32, hi: f32| -> Vec<f32> {
        (0..n).map(|_| rng.random_range(lo..hi)).collect()
    };
    let (dm, dv) = (random(nd * k, 0.0, 2.0), random(nd * k, 1.0, 2.7));
    let (qm, qv) = (random(nq * k, 0.0, 1.0), random(nq * k, 0.5, 1.5));
    let docs = DiagGaussians::var(nd, k, &dm, &dv).unwrap();
    let q = DiagGaussians::var(nq, k, &qm, &qv).unwrap();
    let index = DocIndex::new(&docs).unwrap();
    let top = |exec: &Exec| search::top_k(&index, &q, 10, Metric::Kl, exec).unwrap();
    let reference = top(&Exec::new());
    let kls: Vec<f32> = (0..nq).flat_map(|i| reference.row(i).1.to_vec()).collect();
    let pairs = (nq * nd) as f64;
    let rate = pairs / ctx.time(|| drop(black_box(top(black_box(&Exec::new())))));

    let scalar_exec = Exec::new().level(Level::Scalar);
    let got = top(&scalar_exec);
    let got: Vec<f32> = (0..nq).flat_map(|i| got.row(i).1.to_vec()).collect();
    let e_scalar = max_rel_diff(&got, &kls);
    check("mrl_top_k scalar level", e_scalar, TOL_F32);
    let scalar = pairs / ctx.time(|| drop(black_box(top(&scalar_exec))));

    let n3 = Rep::Wide.len(k);
    let mut g = Gemm {
        k,
        nq,
        nd,
        drep: vec![0.0; nd * n3],
        qrep: vec![0.0; nq * n3],
        scores: vec![0.0; nq * nd],
        top: Vec::with_capacity(11),
    };
    diag::doc_vectors(Rep::Wide, &docs, &mut g.drep).unwrap();
    let mut best = vec![0.0f32; nq * 10];
    g.run(&q, &mut best);
    // Eq. 10 score → KL(Q‖D) = −½ (score + Σ log σ²_Q + k) (search::Metric::Kl).
    let as_kl: Vec<f32> = best
        .chunks(10)
        .zip(qv.chunks(k))
        .flat_map(|(b, v)| {
            let c: f32 = v.iter().map(|x| x.ln()).sum::<f32>() + k as f32;
            b.iter().map(move |s| -0.5 * (s + c)).collect::<Vec<_>>()
        })
        .collect();
    let e_gemm = max_rel_diff(&as_kl, &kls);
    check("mrl_top_k sgemm", e_gemm, TOL_F32);
    let gemm = pairs / ctx.time(|| g.run(black_box(&q), &mut best));

    let mut row = Row {
        op: "mrl_top_k",
        dtype: "f32",
        d: k,
        batch: nq * nd,
        threads: 1,
        clock: Clock::ThreadCpu.name(),
        pairs_per_s: rate,
        flops_per_pair: (2 * 2 * k) as f64,
        bytes_per_pair: ((2 * k + 1) * 4) as f64 * (1.0 / nq as f64 + 1.0 / nd as f64),
        peers: vec![
            ("gaussian-kl_Level::Scalar".into(), scalar, e_scalar),
            ("matrixmultiply_sgemm_3k+1".into(), gemm, e_gemm),
        ],
        ..Row::default()
    };
    ctx.bound(&mut row, Dtype::F32);
    row
}

struct Args {
    json: Option<String>,
    probe_only: bool,
    reps: usize,
    rep_secs: f64,
    /// `--op NAME` (repeatable): only these operations (default: all).
    ops: Vec<String>,
    /// `--d N` (repeatable): only these dimensions (default: all).
    dims: Vec<usize>,
}

impl Args {
    fn wants(&self, op: &str, d: usize) -> bool {
        (self.ops.is_empty() || self.ops.iter().any(|o| o == op))
            && (self.dims.is_empty() || self.dims.contains(&d))
    }
}

fn args() -> Args {
    let mut a = Args {
        json: None,
        probe_only: false,
        reps: 7,
        rep_secs: 0.08,
        ops: Vec::new(),
        dims: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--json" => a.json = it.next(),
            "--reps" => a.reps = it.next().and_then(|s| s.parse().ok()).unwrap_or(7).max(5),
            "--rep-secs" => a.rep_secs = it.next().and_then(|s| s.parse().ok()).unwrap_or(0.08),
            "--probe-only" => a.probe_only = true,
            "--op" => a.ops.extend(it.next()),
            "--d" => a
                .dims
                .extend(it.next().and_then(|s| s.parse::<usize>().ok())),
            "--quick" => (a.reps, a.rep_secs) = (5, 0.005),
            other => panic!("unknown argument {other:?} (see the example's docs)"),
        }
    }
    a
}

const SIZES: &[(usize, usize)] = &[
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

fn main() {
    let a = args();
    let t0 = std::time::Instant::now();
    let level = Exec::new().resolved_level().unwrap();
    let mut ctx = Ctx {
        reps: a.reps,
        rep_secs: a.rep_secs,
        level: ProbeLevel::from_name(&format!("{level:?}")),
        peak: HashMap::new(),
        bandwidth: HashMap::new(),
    };
    let mut report = Report {
        machine: probe::machine(),
        level: format!("{level:?}"),
        date: today(),
        reps: a.reps,
        rep_secs: a.rep_secs,
        ..Report::default()
    };
    for l in ProbeLevel::all_available() {
        for t in [Dtype::F32, Dtype::F64] {
            let g = probe::fma_peak_gflops(l, t, 1, a.reps, a.rep_secs).unwrap_or(f64::NAN);
            report
                .fma_probes
                .push((l.name().into(), t.name(), 1, l.accumulators(), g));
            if Some(l) == ctx.level {
                ctx.peak.insert((t.name(), 1), g);
            }
            eprintln!(
                "FMA probe {} {} 1 thread: {g:.1} GFLOP/s",
                l.name(),
                t.name()
            );
        }
    }
    report.fma_peak_gflops = (ctx.peak(Dtype::F32, 1), ctx.peak(Dtype::F64, 1));
    if a.probe_only {
        for kib in [16, 64, 256, 1024, 4096, 16_384, 65_536, 262_144] {
            for t in [1, 2] {
                let g = ctx.bandwidth(kib << 10, t);
                println!("read probe: {kib} KiB, {t} thread(s): {g:.1} GB/s");
            }
        }
        println!(
            "FMA probe f32, 2 threads: {:.1} GFLOP/s",
            ctx.peak(Dtype::F32, 2)
        );
        return;
    }
    let rows = &mut report.rows;
    for &(d, n) in SIZES.iter().filter(|&&(d, _)| a.wants("kl", d)) {
        rows.push(kl_row::<f32>(&mut ctx, d, n));
        rows.push(kl_row::<f64>(&mut ctx, d, n));
        eprintln!("kl d={d} n={n} done ({:.0} s)", t0.elapsed().as_secs_f64());
    }
    for &(d, n) in SIZES.iter().filter(|&&(d, _)| a.wants("kl_grad", d)) {
        rows.push(grad_row(&mut ctx, d, n));
        eprintln!(
            "kl_grad d={d} n={n} done ({:.0} s)",
            t0.elapsed().as_secs_f64()
        );
    }
    for (d, n) in [(3, 1 << 20), (64, 1024)] {
        if a.wants("kl_par", d) {
            rows.push(par_row(&mut ctx, d, n, 2));
        }
    }
    if a.wants("mrl_top_k", 128) {
        rows.push(mrl_row(&mut ctx, 128, 64, 16_384));
    }
    let g2 = ctx.peak(Dtype::F32, 2);
    report.fma_probes.push((
        report.level.clone(),
        "f32",
        2,
        ctx.level.map_or(0, |l| l.accumulators()),
        g2,
    ));
    let mut reads: Vec<_> = ctx
        .bandwidth
        .iter()
        .map(|(&(b, t), &g)| (b, t, g))
        .collect();
    reads.sort_by_key(|&(b, t, _)| (t, b));
    report.read_probes = reads;

    println!(
        "{}; level {}; {}; FMA peak {:.1} GFLOP/s f32, {:.1} f64 (1 thread), {:.1} f32 (2 threads); medians of {} × ≥ {} s; {:.0} s\n",
        report.machine,
        report.level,
        report.date,
        report.fma_peak_gflops.0,
        report.fma_peak_gflops.1,
        g2,
        a.reps,
        a.rep_secs,
        t0.elapsed().as_secs_f64()
    );
    for (b, t, g) in &report.read_probes {
        println!(
            "read probe: {} B working set, {t} thread(s): {g:.1} GB/s",
            si(*b as f64)
        );
    }
    println!();
    print!("{}", report.table());
    println!();
    print!("{}", report.targets());
    if let Some(path) = a.json {
        std::fs::write(&path, report.to_json()).unwrap();
        eprintln!("wrote {path}");
    }
}
