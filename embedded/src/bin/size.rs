//! Code-size probe (.ci/cross.sh): a firmware that calls only the fixed d = 3 KL,
//! `full::kl_packed_fixed::<f32, 3>` (two `PackedTril::new` included).
//! The inputs pass through `black_box`, so nothing is computed at compile time.

#![no_std]
#![no_main]

use core::hint::black_box;
use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use gaussian_kl::{full, PackedTril};

#[entry]
fn main() -> ! {
    let (mean_p, raw_p) = black_box(([0.5f32, -1.25, 2.0], [0.3f32, 0.8, -0.2, -0.5, 0.25, 0.1]));
    let (mean_q, raw_q) = black_box(([-0.75f32, 0.4, 1.5], [-0.1f32, 0.6, 0.35, 0.3, -0.7, -0.25]));
    let kl = PackedTril::new(3, &raw_p).and_then(|lp| {
        let lq = PackedTril::new(3, &raw_q)?;
        full::kl_packed_fixed::<f32, 3>(&mean_p, lp, &mean_q, lq)
    });
    debug::exit(match kl {
        Ok(v) if black_box(v) >= 0.0 => debug::EXIT_SUCCESS,
        _ => debug::EXIT_FAILURE,
    });
    loop {}
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
