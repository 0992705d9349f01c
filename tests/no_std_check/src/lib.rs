//! A `#![no_std]` consumer of gaussian-kl, built by CI to prove that the
//! library needs neither `std` nor an allocator.

#![no_std]

use gaussian_kl::{Gaussian, full};

/// Dimension of the exported function.
const D: usize = 4;
/// Packed lower-triangle length for `D`.
const T: usize = D * (D + 1) / 2;

/// `KL(p‖q)` for 4-dimensional Gaussians in the packed parameterization
/// (row-major packed, log diagonal), computed with a workspace on the stack.
/// Returns NaN if the library reports an error (it cannot for these shapes).
#[unsafe(no_mangle)]
pub extern "C" fn gaussian_kl_no_std_check(
    mean_p: &[f64; D],
    raw_p: &[f64; T],
    mean_q: &[f64; D],
    raw_q: &[f64; T],
) -> f64 {
    let mut work = [0.0f64; full::kl_scratch(D)];
    match (Gaussian::packed(mean_p, raw_p), Gaussian::packed(mean_q, raw_q)) {
        (Ok(p), Ok(q)) => full::kl(&p, &q, &mut work).unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
