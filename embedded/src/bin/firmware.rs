//! gaussian-kl on a Cortex-M4F (thumbv7em-none-eabihf, single-precision FPU),
//! run by .ci/cross.sh under `qemu-system-arm -machine mps2-an386`.
//!
//! Computes, in f32, the d = 3 packed-Cholesky KL (`full::kl_packed_fixed`)
//! and, for diagonal Gaussians, the KL (`diag::kl`) and the Eq. 10 score
//! (`diag::eq10`) of the inputs in src/cases.rs; compares each with the f64
//! value that build.rs computed on the host, within the crate's documented f32
//! error bound (build.rs says which); prints everything over semihosting and
//! exits with status 1 on any disagreement or error.

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use gaussian_kl::{diag, full, DiagGaussian, Error, PackedTril};

#[allow(dead_code)]
mod cases {
    include!("../cases.rs");
}
mod reference {
    include!(concat!(env!("OUT_DIR"), "/reference.rs"));
}

/// Prints one comparison; true when `got` is within `tol` of `want`.
fn check(what: &str, case: usize, got: Result<f32, Error>, want: f64, tol: f64) -> bool {
    match got {
        Ok(v) => {
            let err = (f64::from(v) - want).abs();
            let ok = err <= tol; // false for NaN
            hprintln!(
                "{} case {}: f32 {:e}  host f64 {:e}  |error| {:.2e}  bound {:.2e}  {}",
                what,
                case,
                v,
                want,
                err,
                tol,
                if ok { "ok" } else { "DISAGREE" }
            );
            ok
        }
        Err(e) => {
            hprintln!("{} case {}: error {:?}", what, case, e);
            false
        }
    }
}

fn full_kl(c: &cases::FullCase) -> Result<f32, Error> {
    let lp = PackedTril::new(3, &c.raw_p)?;
    let lq = PackedTril::new(3, &c.raw_q)?;
    full::kl_packed_fixed::<f32, 3>(&c.mean_p, lp, &c.mean_q, lq)
}

fn diag_pair(c: &cases::DiagCase) -> Result<(DiagGaussian<'_, f32>, DiagGaussian<'_, f32>), Error> {
    Ok((
        DiagGaussian::var(&c.mean_p, &c.var_p)?,
        DiagGaussian::var(&c.mean_q, &c.var_q)?,
    ))
}

#[entry]
fn main() -> ! {
    hprintln!("gaussian-kl on Cortex-M4F (thumbv7em-none-eabihf), f32 against host f64");
    let mut ok = true;
    for (i, (c, &(want, tol))) in cases::FULL.iter().zip(&reference::FULL_REF).enumerate() {
        ok &= check("full::kl_packed_fixed::<f32, 3>", i, full_kl(c), want, tol);
    }
    for (i, (c, &(kl, eq10, tol))) in cases::DIAG.iter().zip(&reference::DIAG_REF).enumerate() {
        let pair = diag_pair(c);
        let got_kl = pair.and_then(|(p, q)| diag::kl(&p, &q));
        ok &= check("diag::kl (d = 8)", i, got_kl, kl, tol);
        let got_eq10 = pair.and_then(|(p, q)| diag::eq10(&p, &q));
        ok &= check("diag::eq10 (d = 8)", i, got_eq10, eq10, tol);
    }
    if ok {
        hprintln!("firmware: all results within the bound");
        debug::exit(debug::EXIT_SUCCESS);
    } else {
        hprintln!("firmware: FAILED");
        debug::exit(debug::EXIT_FAILURE);
    }
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("firmware: panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}
