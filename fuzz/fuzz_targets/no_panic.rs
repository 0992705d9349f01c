//! No panics, no out-of-bounds: arbitrary bytes into every public function
//! of the crate, with mismatched lengths, dimensions whose buffer sizes
//! overflow (`d` up to `usize::MAX`) passed with short slices, and NaN,
//! ±∞, ±0, subnormal and extreme values everywhere (zero, negative and
//! subnormal diagonals included). Errors are fine; a panic, an overflow
//! (this target is built with debug assertions) or an out-of-bounds access
//! is a bug.
//!
//! Beyond "does not panic", each call checks the checker: `Ok` implies the
//! shapes were consistent, and every `Err` formats through `Display`.
#![no_main]

use arbitrary::{Result, Unstructured};
use gaussian_kl::tril::tril_len;
use gaussian_kl::{Diagonal, Error, Layout, PackedTril, Real, full};
use gaussian_kl_fuzz::{LAYOUTS, wild_dim, wild_len, wild_vec, with_const_d};
use libfuzzer_sys::fuzz_target;

/// Longest slice a call gets: large enough for d = 70 dense (4,900).
const CAP: usize = 5_000;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = if u.arbitrary().unwrap_or(false) {
        one_call::<f32>(&mut u)
    } else {
        one_call::<f64>(&mut u)
    };
});

fn packed<'a, T: Real>(
    u: &mut Unstructured<'_>,
    d: usize,
    data: &'a [T],
) -> Result<PackedTril<'a, T>> {
    Ok(PackedTril {
        d,
        data,
        layout: *u.choose(&LAYOUTS)?,
        diagonal: if u.arbitrary()? {
            Diagonal::Log
        } else {
            Diagonal::Plain
        },
    })
}

/// Formats an error (exercising `Display`) and returns whether it was `Ok`.
fn ok<V>(r: &core::result::Result<V, Error>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) => {
            let s = format!("{e}");
            assert!(!s.is_empty());
            false
        }
    }
}

fn fixed_packed<T: Real, const D: usize>(
    u: &mut Unstructured<'_>,
    lp: PackedTril<'_, T>,
    lq: PackedTril<'_, T>,
) -> Result<bool> {
    let mp: [T; D] = core::array::from_fn(|_| T::ZERO);
    let mq = wild_vec::<T>(u, D)?;
    let mq: [T; D] = mq.try_into().expect("D values");
    let r = full::kl_packed_fixed::<T, D>(&mp, lp, &mq, lq);
    if ok(&r) {
        assert!(lp.d == D && lq.d == D && lp.data.len() == tril_len(D).unwrap());
    }
    Ok(true)
}

fn fixed_dense<T: Real, const D: usize>(u: &mut Unstructured<'_>) -> Result<bool> {
    let v = wild_vec::<T>(u, 2 * D * D + 2 * D)?;
    let mat = |off: usize| -> [[T; D]; D] {
        core::array::from_fn(|i| core::array::from_fn(|j| v[off + i * D + j]))
    };
    let mp: [T; D] = core::array::from_fn(|i| v[2 * D * D + i]);
    let mq: [T; D] = core::array::from_fn(|i| v[2 * D * D + D + i]);
    let r = full::kl_fixed::<T, D>(&mp, &mat(0), &mq, &mat(D * D));
    ok(&r);
    Ok(true)
}

fn one_call<T: Real>(u: &mut Unstructured<'_>) -> Result<()> {
    let op = u.int_in_range(0..=9u8)?;
    let d = wild_dim(u)?;
    let tri = tril_len(d);
    let sq = d.checked_mul(d);
    match op {
        0 => {
            // full::kl, every shape independently wrong or right.
            let d_q = if u.ratio(7, 8)? { d } else { wild_dim(u)? };
            let (np, nq) = (wild_len(u, tri, CAP)?, wild_len(u, tril_len(d_q), CAP)?);
            let (mp, mq) = (wild_len(u, Some(d), CAP)?, wild_len(u, Some(d), CAP)?);
            let nw = wild_len(u, Some(full::workspace_len(d)), CAP)?;
            let (dp, dq) = (wild_vec::<T>(u, np)?, wild_vec::<T>(u, nq)?);
            let (vp, vq) = (wild_vec::<T>(u, mp)?, wild_vec::<T>(u, mq)?);
            let (lp, lq) = (packed(u, d, &dp)?, packed(u, d_q, &dq)?);
            let mut work = wild_vec::<T>(u, nw)?;
            let r = full::kl(&vp, lp, &vq, lq, &mut work);
            if ok(&r) {
                assert!(d_q == d && Some(np) == tri && Some(nq) == tri);
                assert!(mp == d && mq == d && nw >= full::workspace_len(d));
            }
        }
        1 | 2 => {
            // full::kl_dense / full::kl_cov: d is mean_p.len().
            let d = d.min(CAP);
            let mq = wild_len(u, Some(d), CAP)?;
            let (np, nq) = (wild_len(u, sq, CAP)?, wild_len(u, sq, CAP)?);
            let nw = wild_len(u, Some(full::workspace_len(d)), CAP)?;
            let vp = wild_vec::<T>(u, d)?;
            let vq = wild_vec::<T>(u, mq)?;
            let (ap, aq) = (wild_vec::<T>(u, np)?, wild_vec::<T>(u, nq)?);
            let mut work = wild_vec::<T>(u, nw)?;
            let r = if op == 1 {
                full::kl_dense(&vp, &ap, &vq, &aq, &mut work)
            } else {
                full::kl_cov(&vp, &ap, &vq, &aq, &mut work)
            };
            if ok(&r) {
                assert!(mq == d && Some(np) == d.checked_mul(d) && np == nq);
                assert!(nw >= full::workspace_len(d));
            }
        }
        3 => {
            let (n, m) = (wild_len(u, tri, CAP)?, wild_len(u, Some(d), CAP)?);
            let data = wild_vec::<T>(u, n)?;
            let mean = wild_vec::<T>(u, m)?;
            let r = full::kl_std_normal(&mean, packed(u, d, &data)?);
            if ok(&r) {
                assert!(Some(n) == tri && m == d);
            }
        }
        4 => {
            let d = d.min(CAP);
            let n = wild_len(u, sq, CAP)?;
            let mean = wild_vec::<T>(u, d)?;
            let l = wild_vec::<T>(u, n)?;
            if ok(&full::kl_std_normal_dense(&mean, &l)) {
                assert!(Some(n) == d.checked_mul(d));
            }
        }
        5 => {
            // Fixed D, packed factors whose d may differ from D.
            let big_d = u.int_in_range(1..=64usize)?;
            let d_q = if u.arbitrary()? { big_d } else { d };
            let d_p = if u.arbitrary()? { big_d } else { d };
            let np = wild_len(u, tril_len(d_p), CAP)?;
            let nq = wild_len(u, tril_len(d_q), CAP)?;
            let (dp, dq) = (wild_vec::<T>(u, np)?, wild_vec::<T>(u, nq)?);
            let (lp, lq) = (packed(u, d_p, &dp)?, packed(u, d_q, &dq)?);
            with_const_d!(big_d, D => fixed_packed::<T, D>(u, lp, lq)).expect("1..=64")?;
        }
        6 => {
            let big_d = u.int_in_range(1..=64usize)?;
            with_const_d!(big_d, D => fixed_dense::<T, D>(u)).expect("1..=64")?;
        }
        7 => {
            let n = wild_len(u, sq, CAP)?;
            let mut a = wild_vec::<T>(u, n)?;
            if ok(&full::cholesky_in_place(d, &mut a)) {
                assert!(Some(n) == sq);
            }
        }
        8 => {
            let n = wild_len(u, tri, CAP)?;
            let mut a = wild_vec::<T>(u, n)?;
            if ok(&full::cholesky_packed_in_place(d, &mut a)) {
                assert!(Some(n) == tri);
            }
        }
        _ => {
            // The tril module: lengths, index maps, checks, expansion.
            let n = wild_len(u, tri, CAP)?;
            let data = wild_vec::<T>(u, n)?;
            let l = packed(u, d, &data)?;
            if ok(&l.check("l")) {
                assert!(Some(n) == tri);
            }
            let m = wild_len(u, sq, CAP)?;
            let mut out = wild_vec::<T>(u, m)?;
            if ok(&l.expand_dense(&mut out)) {
                assert!(Some(n) == tri && Some(m) == sq);
            }
            let _ = full::workspace_len(d);
            let layout: Layout = *u.choose(&LAYOUTS)?;
            let (i, j): (usize, usize) = (u.arbitrary()?, u.arbitrary()?);
            let _ = layout.index(d, i, j);
            let _ = PackedTril::new(d, &data)
                .layout(layout)
                .diagonal(Diagonal::Plain);
        }
    }
    Ok(())
}
