//! `gaussian-kl` for `wasm32-unknown-unknown`, `no_std`, no allocator: the
//! full-rank KL exported to JavaScript through one static buffer per
//! precision.
//!
//! Protocol: JavaScript writes `μ_p` (`d`), the packed `L_p` (`d(d+1)/2`),
//! `μ_q`, the packed `L_q` into the buffer (`buffer_f64()` / `buffer_f32()`
//! give its address, `buffer_len()` its length in elements), calls
//! `kl_f64(d, layout, diagonal)` (or `kl_f32`), and reads `status()`:
//! `0` when the returned value is the KL, otherwise the error (the value is
//! then NaN): 1 length mismatch, 2 dimension mismatch, 3 workspace too
//! small, 4 dimension too large (here: `d > 64`), 5 non-positive diagonal,
//! 6 any other. `layout`: 0 row-major, 1 column-major, 2 diagonal-first;
//! `diagonal`: 0 log, 1 plain.
#![no_std]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicI32, Ordering};
use gaussian_kl::{Diagonal, Error, Gaussian, Layout, PackedTril, Real, full};

/// Elements in each buffer: the inputs and the workspace of `d ≤ 64`.
const LEN: usize = 2 * 64 + 2 * (64 * 65 / 2) + full::kl_scratch(64);

struct Buffer<T>(UnsafeCell<[T; LEN]>);

// SAFETY: wasm32-unknown-unknown without the `atomics` feature is single
// threaded; the buffer is only touched by the exports below, one at a time,
// and by JavaScript between calls.
unsafe impl<T> Sync for Buffer<T> {}

static BUF_F64: Buffer<f64> = Buffer(UnsafeCell::new([0.0; LEN]));
static BUF_F32: Buffer<f32> = Buffer(UnsafeCell::new([0.0; LEN]));
static STATUS: AtomicI32 = AtomicI32::new(0);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

/// Address of the f64 buffer in linear memory.
#[unsafe(no_mangle)]
pub extern "C" fn buffer_f64() -> *mut f64 {
    BUF_F64.0.get().cast()
}

/// Address of the f32 buffer in linear memory.
#[unsafe(no_mangle)]
pub extern "C" fn buffer_f32() -> *mut f32 {
    BUF_F32.0.get().cast()
}

/// Length of each buffer, in elements.
#[unsafe(no_mangle)]
pub extern "C" fn buffer_len() -> usize {
    LEN
}

/// `0` if the last call succeeded, else its error code (see the crate docs).
#[unsafe(no_mangle)]
pub extern "C" fn status() -> i32 {
    STATUS.load(Ordering::Relaxed)
}

fn code(e: Error) -> i32 {
    match e {
        Error::LengthMismatch { .. } => 1,
        Error::DimensionMismatch { .. } => 2,
        Error::WorkspaceTooSmall { .. } => 3,
        Error::DimensionTooLarge { .. } => 4,
        Error::NonPositiveDiagonal { .. } => 5,
        _ => 6,
    }
}

fn layout(code: u32) -> Layout {
    match code {
        1 => Layout::ColMajor,
        2 => Layout::DiagFirst,
        _ => Layout::RowMajor,
    }
}

fn kl_in<T: Real>(buf: &mut [T; LEN], d: usize, lay: u32, diag: u32) -> Result<T, Error> {
    if d > 64 {
        return Err(Error::DimensionTooLarge { d });
    }
    let t = d * (d + 1) / 2;
    let (mean_p, rest) = buf.split_at_mut(d);
    let (l_p, rest) = rest.split_at_mut(t);
    let (mean_q, rest) = rest.split_at_mut(d);
    let (l_q, work) = rest.split_at_mut(t);
    let diagonal = if diag == 1 {
        Diagonal::Plain
    } else {
        Diagonal::Log
    };
    let p = PackedTril::with_layout(d, &*l_p, layout(lay), diagonal)?;
    let q = PackedTril::with_layout(d, &*l_q, layout(lay), diagonal)?;
    full::kl(&Gaussian::new(mean_p, p)?, &Gaussian::new(mean_q, q)?, work)
}

fn finish<T: Real>(r: Result<T, Error>) -> T {
    STATUS.store(r.map_or_else(code, |_| 0), Ordering::Relaxed);
    r.unwrap_or(T::NAN)
}

/// `KL(p‖q)` in f64 from the f64 buffer.
#[unsafe(no_mangle)]
pub extern "C" fn kl_f64(d: usize, layout: u32, diagonal: u32) -> f64 {
    // SAFETY: single-threaded (see `Buffer`), and no other reference to the
    // buffer is alive: JavaScript does not run during this call.
    let buf = unsafe { &mut *BUF_F64.0.get() };
    finish(kl_in(buf, d, layout, diagonal))
}

/// `KL(p‖q)` in f32 from the f32 buffer.
#[unsafe(no_mangle)]
pub extern "C" fn kl_f32(d: usize, layout: u32, diagonal: u32) -> f32 {
    // SAFETY: as in `kl_f64`.
    let buf = unsafe { &mut *BUF_F32.0.get() };
    finish(kl_in(buf, d, layout, diagonal))
}

/// `KL(p‖N(0, I))` in f64: `μ` and the packed `L` at the start of the buffer.
#[unsafe(no_mangle)]
pub extern "C" fn kl_std_normal_f64(d: usize, layout: u32, diagonal: u32) -> f64 {
    // SAFETY: as in `kl_f64`.
    let buf = unsafe { &*BUF_F64.0.get() };
    let r = if d > 64 {
        Err(Error::DimensionTooLarge { d })
    } else {
        let (mean, rest) = buf.split_at(d);
        let diag = if diagonal == 1 {
            Diagonal::Plain
        } else {
            Diagonal::Log
        };
        PackedTril::with_layout(d, &rest[..d * (d + 1) / 2], self::layout(layout), diag)
            .and_then(|l| Gaussian::new(mean, l))
            .and_then(|p| full::kl_std_normal(&p))
    };
    finish(r)
}
