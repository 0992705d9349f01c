//! Code-size probe (.ci/cross.sh): the same firmware as `size` without the KL:
//! start-up, the semihosting exit and the inputs; `size` minus this is the KL's share.
//! The inputs pass through `black_box`, so nothing is computed at compile time.

#![no_std]
#![no_main]

use core::hint::black_box;
use cortex_m_rt::entry;
use cortex_m_semihosting::debug;

#[entry]
fn main() -> ! {
    let (mean_p, raw_p) = black_box(([0.5f32, -1.25, 2.0], [0.3f32, 0.8, -0.2, -0.5, 0.25, 0.1]));
    let (mean_q, raw_q) = black_box(([-0.75f32, 0.4, 1.5], [-0.1f32, 0.6, 0.35, 0.3, -0.7, -0.25]));
    black_box((&mean_p, &raw_p, &mean_q, &raw_q));
    debug::exit(match black_box(0.0f32) {
        v if v >= 0.0 => debug::EXIT_SUCCESS,
        _ => debug::EXIT_FAILURE,
    });
    loop {}
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
