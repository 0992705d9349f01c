//! The machine's bounds, measured: FMA throughput per SIMD level and
//! streaming-read bandwidth at a given working-set size.
//!
//! Every report of the benchmark package takes its bounds from here, so that
//! "% of peak" means the same thing everywhere.
//!
//! **FMA probe.** `ACC` independent vector accumulators, each updated by one
//! fused multiply-add per iteration (`acc = acc · a + b`), the multiplier and
//! addend in two more registers. `ACC` must cover FMA latency × FMA ports
//! (4 cycles × 2 ports = 8 on Zen 3, Ice Lake and Sapphire Rapids) and fit in
//! the register file with the two constants: 12 accumulators on AVX2 (16 `ymm`
//! registers), 24 on AVX-512 (32 `zmm`). The inner loop was checked in the
//! assembly to hold every accumulator in a register (no `(%rsp)` operand):
//! `cargo rustc --release -p gaussian-kl-bench --lib -- --emit asm`, then
//! read the loops of `fma_v3_f32`, `fma_v3_f64`, `fma_v4_f32`, `fma_v4_f64`
//! in `target/release/deps/gaussian_kl_bench-*.s` (docs/roofline.md records
//! what they contain). A probe with more accumulators than registers (the
//! 24-accumulator AVX2 loop that `diag_throughput` used to carry) spills to the
//! stack every iteration and reads about half the true peak.
//!
//! **Read probe.** Sums a buffer of the requested size with eight independent
//! vector accumulators, pass after pass: the buffer stays in whichever level
//! of the hierarchy it fits, so the rate is the bandwidth a kernel streaming
//! that many bytes can get (L1/L2 for a small batch, L3 or DRAM for a large
//! one). With `threads > 1`, each thread reads its own part of the buffer at
//! the same time and the rate is their sum.
//!
//! Every figure is the median of `reps` repetitions, each at least
//! `rep_secs` of wall-clock time; single-thread figures count the thread's
//! on-CPU time ([`Clock::ThreadCpu`]), multi-threaded ones wall-clock time.

use pulp::{Simd, WithSimd};
use std::hint::black_box;
use std::time::Instant;

/// What a figure's seconds are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Wall-clock time (every multi-threaded figure).
    Wall,
    /// The calling thread's on-CPU time (`CLOCK_THREAD_CPUTIME_ID` on
    /// Linux; wall-clock time elsewhere): on a machine shared with other
    /// work, the time the core spent on this thread, not the time other
    /// processes held it.
    ThreadCpu,
}

impl Clock {
    /// `"wall"` or `"thread_cpu"` (`"wall"` where the thread clock is
    /// unavailable).
    pub fn name(self) -> &'static str {
        match self {
            Clock::ThreadCpu if thread_cpu_ns().is_some() => "thread_cpu",
            _ => "wall",
        }
    }
}

/// Nanoseconds this thread has run on a CPU (Linux `CLOCK_THREAD_CPUTIME_ID`).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub fn thread_cpu_ns() -> Option<u64> {
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
    // (two 64-bit fields on 64-bit Linux). The standard library offers no
    // thread CPU clock, hence the one `unsafe` of the probe.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.sec as u64 * 1_000_000_000 + ts.nsec as u64)
}

/// Nanoseconds this thread has run on a CPU: unavailable on this target.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
pub fn thread_cpu_ns() -> Option<u64> {
    None
}

/// Seconds per call of `f` on `clock`: the median of `reps` repetitions (at
/// least one), each calling `f` until at least `rep_secs` of wall-clock time
/// have passed, after one untimed repetition (warm-up: caches, page faults,
/// frequency).
pub fn median_secs(clock: Clock, reps: usize, rep_secs: f64, mut f: impl FnMut()) -> f64 {
    let mut one = || {
        let (t0, c0) = (Instant::now(), thread_cpu_ns());
        let mut calls = 0u64;
        loop {
            f();
            calls += 1;
            let e = t0.elapsed().as_secs_f64();
            if e >= rep_secs {
                let secs = match (clock, c0, thread_cpu_ns()) {
                    (Clock::ThreadCpu, Some(a), Some(b)) => b.saturating_sub(a) as f64 * 1e-9,
                    _ => e,
                };
                return secs / calls as f64;
            }
        }
    };
    one();
    let mut t: Vec<f64> = (0..reps.max(1)).map(|_| one()).collect();
    median(&mut t)
}

/// The median of `x` (the mean of the two middle values for an even count;
/// NaN for an empty slice).
pub fn median(x: &mut [f64]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    x.sort_by(f64::total_cmp);
    let m = x.len() / 2;
    if x.len() % 2 == 1 {
        x[m]
    } else {
        0.5 * (x[m - 1] + x[m])
    }
}

/// An x86 SIMD level the probe can run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeLevel {
    /// AVX2 + FMA (pulp's `V3`), 256-bit vectors, 16 registers.
    Avx2,
    /// AVX-512 (pulp's `V4`), 512-bit vectors, 32 registers.
    Avx512,
}

impl ProbeLevel {
    /// The name used in the reports (`"Avx2"`, `"Avx512"`), as
    /// `gaussian_kl::simd::Level`'s `Debug` prints it.
    pub fn name(self) -> &'static str {
        match self {
            ProbeLevel::Avx2 => "Avx2",
            ProbeLevel::Avx512 => "Avx512",
        }
    }

    /// Independent accumulators of this level's probe.
    pub fn accumulators(self) -> usize {
        match self {
            ProbeLevel::Avx2 => ACC_V3,
            ProbeLevel::Avx512 => ACC_V4,
        }
    }

    /// Vector width in bytes.
    pub fn vector_bytes(self) -> usize {
        match self {
            ProbeLevel::Avx2 => 32,
            ProbeLevel::Avx512 => 64,
        }
    }

    /// Whether this host runs the level.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                ProbeLevel::Avx2 => pulp::x86::V3::try_new().is_some(),
                ProbeLevel::Avx512 => pulp::x86::V4::try_new().is_some(),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Every level this host runs, narrowest first.
    pub fn all_available() -> Vec<ProbeLevel> {
        [ProbeLevel::Avx2, ProbeLevel::Avx512]
            .into_iter()
            .filter(|l| l.available())
            .collect()
    }

    /// The level of `gaussian_kl::simd::Level`'s `Debug` name, if it is one
    /// the probe has.
    pub fn from_name(name: &str) -> Option<ProbeLevel> {
        match name {
            "Avx2" => Some(ProbeLevel::Avx2),
            "Avx512" => Some(ProbeLevel::Avx512),
            _ => None,
        }
    }
}

/// Accumulators of the AVX2 probe: 12 + 2 constants = 14 of 16 `ymm`.
pub const ACC_V3: usize = 12;
/// Accumulators of the AVX-512 probe: 24 + 2 constants = 26 of 32 `zmm`.
pub const ACC_V4: usize = 24;

/// The element type of a probe or a benchmark row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// `f32`
    F32,
    /// `f64`
    F64,
}

impl Dtype {
    /// `"f32"` or `"f64"`.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
        }
    }

    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }
}

macro_rules! fma_loop {
    ($name:ident, $t:ty, $splat:ident, $fma:ident, $add:ident, $reduce:ident) => {
        /// `ACC` independent FMA chains, `iters` steps each.
        struct $name<const ACC: usize> {
            iters: u64,
        }

        impl<const ACC: usize> WithSimd for $name<ACC> {
            type Output = $t;
            #[inline(always)]
            fn with_simd<S: Simd>(self, s: S) -> $t {
                let a = s.$splat(black_box(0.999_999));
                let b = s.$splat(black_box(1e-7));
                let mut acc = [s.$splat(black_box(1.0)); ACC];
                for _ in 0..self.iters {
                    for x in acc.iter_mut() {
                        *x = s.$fma(*x, a, b);
                    }
                }
                let mut t = s.$splat(0.0);
                for x in acc {
                    t = s.$add(t, x);
                }
                s.$reduce(t)
            }
        }
    };
}

fma_loop!(
    FmaF32,
    f32,
    splat_f32s,
    mul_add_f32s,
    add_f32s,
    reduce_sum_f32s
);
fma_loop!(
    FmaF64,
    f64,
    splat_f64s,
    mul_add_f64s,
    add_f64s,
    reduce_sum_f64s
);

// One non-inlined function per (level, type), so the loop can be found and
// read in the assembly.

/// AVX2 probe, `f32`: `ACC_V3` accumulators.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
pub fn fma_v3_f32(s: pulp::x86::V3, iters: u64) -> f32 {
    Simd::vectorize(s, FmaF32::<ACC_V3> { iters })
}
/// AVX2 probe, `f64`: `ACC_V3` accumulators.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
pub fn fma_v3_f64(s: pulp::x86::V3, iters: u64) -> f64 {
    Simd::vectorize(s, FmaF64::<ACC_V3> { iters })
}
/// AVX-512 probe, `f32`: `ACC_V4` accumulators.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
pub fn fma_v4_f32(s: pulp::x86::V4, iters: u64) -> f32 {
    Simd::vectorize(s, FmaF32::<ACC_V4> { iters })
}
/// AVX-512 probe, `f64`: `ACC_V4` accumulators.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
pub fn fma_v4_f64(s: pulp::x86::V4, iters: u64) -> f64 {
    Simd::vectorize(s, FmaF64::<ACC_V4> { iters })
}

/// Runs `iters` iterations of the probe of `level` and `dtype` once; `None`
/// if the host lacks the level.
pub fn fma_run(level: ProbeLevel, dtype: Dtype, iters: u64) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        use pulp::x86::{V3, V4};
        let iters = black_box(iters);
        match (level, dtype) {
            (ProbeLevel::Avx2, Dtype::F32) => V3::try_new().map(|s| fma_v3_f32(s, iters) as f64),
            (ProbeLevel::Avx2, Dtype::F64) => V3::try_new().map(|s| fma_v3_f64(s, iters)),
            (ProbeLevel::Avx512, Dtype::F32) => V4::try_new().map(|s| fma_v4_f32(s, iters) as f64),
            (ProbeLevel::Avx512, Dtype::F64) => V4::try_new().map(|s| fma_v4_f64(s, iters)),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (level, dtype, iters);
        None
    }
}

/// FMA peak in GFLOP/s (2 flops per lane per FMA) of `threads` threads
/// running the probe of `level` and `dtype` at the same time; `None` if the
/// host lacks the level. Median of `reps` repetitions of at least `rep_secs`.
pub fn fma_peak_gflops(
    level: ProbeLevel,
    dtype: Dtype,
    threads: usize,
    reps: usize,
    rep_secs: f64,
) -> Option<f64> {
    let iters: u64 = 1 << 20;
    fma_run(level, dtype, 1)?;
    let threads = threads.max(1);
    let lanes = level.vector_bytes() / dtype.bytes();
    let flops_per_call = (iters as usize * level.accumulators() * lanes * 2 * threads) as f64;
    let clock = if threads == 1 {
        Clock::ThreadCpu
    } else {
        Clock::Wall
    };
    let secs = median_secs(clock, reps, rep_secs, || {
        if threads == 1 {
            black_box(fma_run(level, dtype, iters));
        } else {
            std::thread::scope(|sc| {
                for _ in 0..threads {
                    sc.spawn(|| black_box(fma_run(level, dtype, iters)));
                }
            });
        }
    });
    Some(flops_per_call / secs * 1e-9)
}

/// `passes` sums of `x`, each with eight independent vector accumulators
/// (a streaming read per pass).
struct ReadSum<'a> {
    x: &'a [f32],
    passes: usize,
}

impl WithSimd for ReadSum<'_> {
    type Output = f32;
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> f32 {
        let mut total = 0.0;
        for _ in 0..self.passes {
            // Opaque each pass, so that no pass can be hoisted or merged.
            let (head, tail) = S::as_simd_f32s(black_box(self.x));
            let mut acc = [s.splat_f32s(0.0); 8];
            let mut chunks = head.chunks_exact(8);
            for c in &mut chunks {
                for (a, &x) in acc.iter_mut().zip(c) {
                    *a = s.add_f32s(*a, x);
                }
            }
            for &x in chunks.remainder() {
                acc[0] = s.add_f32s(acc[0], x);
            }
            let mut t = s.splat_f32s(0.0);
            for a in acc {
                t = s.add_f32s(t, a);
            }
            total += s.reduce_sum_f32s(t) + tail.iter().sum::<f32>();
        }
        total
    }
}

/// Streaming-read bandwidth in GB/s (1e9 bytes per second) over a working
/// set of `bytes` bytes (rounded up to 4 KiB), read by `threads` threads at
/// once, each its own contiguous part, pass after pass (at least 16 MiB per
/// thread per call, so that starting the threads costs under 1 %), at the
/// host's best SIMD level. Median of `reps` repetitions of at least
/// `rep_secs`: on-CPU time for one thread, wall-clock time for several.
pub fn read_bandwidth_gbs(bytes: usize, threads: usize, reps: usize, rep_secs: f64) -> f64 {
    let threads = threads.max(1);
    let n = bytes.div_ceil(4096).max(1) * 1024;
    // Filled (so every page is mapped) with values whose sum stays finite.
    let buf: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 1e-3).collect();
    let part = n.div_ceil(threads);
    let passes = (4usize << 20).div_ceil(part).max(1);
    let arch = pulp::Arch::new();
    let read = |x: &[f32]| black_box(arch.dispatch(ReadSum { x, passes }));
    let clock = if threads == 1 {
        Clock::ThreadCpu
    } else {
        Clock::Wall
    };
    let secs = median_secs(clock, reps, rep_secs, || {
        if threads == 1 {
            read(&buf);
        } else {
            std::thread::scope(|sc| {
                for c in buf.chunks(part) {
                    sc.spawn(move || read(c));
                }
            });
        }
    });
    (n * 4 * passes) as f64 / secs * 1e-9
}

/// The host's model name (`/proc/cpuinfo`), the number of CPUs, and which of
/// `avx2`, `fma`, `avx512f` it has.
pub fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|x| x.1))
        .map(str::trim)
        .unwrap_or("unknown CPU")
        .to_string();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    #[cfg(target_arch = "x86_64")]
    let flags = {
        let mut f = Vec::new();
        if std::is_x86_feature_detected!("avx2") {
            f.push("avx2");
        }
        if std::is_x86_feature_detected!("fma") {
            f.push("fma");
        }
        if std::is_x86_feature_detected!("avx512f") {
            f.push("avx512f");
        }
        f.join(" ")
    };
    #[cfg(not(target_arch = "x86_64"))]
    let flags = String::new();
    format!("{model}, {cpus} CPUs, flags: {flags}")
}
