//! The PyTorch oracle: `tests/data/torch_kl_cases.json` holds full-rank cases
//! whose KL PyTorch computed in float64 (`kl`) and in float32
//! (`kl_torch_f32`), from seed 000's parameterization (row-major packed raw
//! numbers, `exp` on the diagonal).
//!
//! - f64: every entry point within `1e-12` relative of PyTorch's float64 value
//!   (both are backward-stable f64 evaluations of a well-posed quantity; the
//!   cases' `KL` is large where `L_q` is ill-conditioned, so relative error is
//!   the fair measure).
//! - f32 (inputs rounded to f32): within `max(10 · r_torch, 1e-5)` relative,
//!   where `r_torch = |kl_torch_f32 − kl| / |kl|` is PyTorch's own float32
//!   error on the same case: we ask to be no more than ten times worse than
//!   PyTorch, and allow `1e-5` (≈ 80 ε_f32) where PyTorch happened to be lucky.
//!
//! Paths: `kl` in every layout (log diagonal) and with a plain diagonal,
//! `kl_dense` on the dense expansion, and `kl_packed_fixed` where `d ≤ 16`.
//! Run with `--nocapture` to see the largest relative errors observed.

use gaussian_kl::{Diagonal, Gaussian, Layout, MatRef, PackedTril, Real, full};
use serde_json::Value;

/// The data file, compiled in: the build fails loudly if it is missing.
const CASES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/torch_kl_cases.json"
));

struct Case {
    d: usize,
    mean_p: Vec<f64>,
    raw_p: Vec<f64>,
    mean_q: Vec<f64>,
    raw_q: Vec<f64>,
    kl: f64,
    kl_torch_f32: f64,
}

fn floats(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("case field {key} is not an array"))
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn cases() -> Vec<Case> {
    let root: Value = serde_json::from_str(CASES).expect("torch_kl_cases.json is valid JSON");
    let full = root["full"].as_array().expect("a `full` array of cases");
    assert!(!full.is_empty(), "no full-rank cases in the oracle file");
    full.iter()
        .map(|c| {
            let d = c["d"].as_u64().expect("d") as usize;
            let case = Case {
                d,
                mean_p: floats(c, "mean1"),
                raw_p: floats(c, "packed1"),
                mean_q: floats(c, "mean2"),
                raw_q: floats(c, "packed2"),
                kl: c["kl"].as_f64().expect("kl"),
                kl_torch_f32: c["kl_torch_f32"].as_f64().unwrap_or(f64::NAN),
            };
            assert_eq!(case.mean_p.len(), d);
            assert_eq!(case.raw_p.len(), d * (d + 1) / 2);
            case
        })
        .collect()
}

/// Reorders a row-major packed triangle into `layout` (independent of `Layout::index`).
fn to_layout<T: Copy>(d: usize, rm: &[T], layout: Layout) -> Vec<T> {
    let at = |i: usize, j: usize| rm[i * (i + 1) / 2 + j];
    match layout {
        Layout::RowMajor => rm.to_vec(),
        Layout::ColMajor => (0..d)
            .flat_map(|j| (j..d).map(move |i| (i, j)))
            .map(|(i, j)| at(i, j))
            .collect(),
        Layout::DiagFirst => (0..d)
            .map(|i| at(i, i))
            .chain(
                (0..d)
                    .flat_map(|i| (0..i).map(move |j| (i, j)))
                    .map(|(i, j)| at(i, j)),
            )
            .collect(),
    }
}

/// `kl_packed_fixed::<D>` for the runtime `d` of a case, `None` above 16.
fn packed_fixed<T: Real>(
    d: usize,
    mp: &[T],
    lp: PackedTril<'_, T>,
    mq: &[T],
    lq: PackedTril<'_, T>,
) -> Option<T> {
    macro_rules! dispatch {
        ($($n:literal)*) => {
            match d {
                $($n => Some(
                    full::kl_packed_fixed::<T, $n>(mp.try_into().unwrap(), lp, mq.try_into().unwrap(), lq)
                        .expect("valid case"),
                ),)*
                _ => None,
            }
        };
    }
    dispatch!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
}

/// Every path on one case in precision `T`; returns the largest relative
/// error against the float64 oracle value.
fn all_paths<T: Real>(c: &Case, tol: f64) -> f64 {
    let d = c.d;
    let r = |v: &[f64]| -> Vec<T> { v.iter().map(|&x| T::from_f64(x)).collect() };
    let (mp, mq, rp, rq) = (r(&c.mean_p), r(&c.mean_q), r(&c.raw_p), r(&c.raw_q));
    let mut work = vec![T::ZERO; full::kl_scratch(d)];
    let mut worst = 0.0f64;
    let mut record = |path: &str, got: T| {
        let rel = (got.to_f64() - c.kl).abs() / c.kl.abs();
        assert!(
            rel <= tol,
            "{path} ({}) d={d}: got {got}, torch float64 {}, relative error {rel:e} > {tol:e}",
            core::any::type_name::<T>(),
            c.kl
        );
        worst = worst.max(rel);
    };
    for layout in [Layout::RowMajor, Layout::ColMajor, Layout::DiagFirst] {
        let (lp, lq) = (to_layout(d, &rp, layout), to_layout(d, &rq, layout));
        let (pp, pq) = (
            PackedTril::with_layout(d, &lp, layout, Diagonal::Log).expect("valid case"),
            PackedTril::with_layout(d, &lq, layout, Diagonal::Log).expect("valid case"),
        );
        let (p, q) = (
            Gaussian::new(&mp, pp).expect("valid case"),
            Gaussian::new(&mq, pq).expect("valid case"),
        );
        record("kl", full::kl(&p, &q, &mut work).expect("valid case"));
        if let Some(v) = packed_fixed(d, &mp, pp, &mq, pq) {
            record("kl_packed_fixed", v);
        }
    }
    // The plain-diagonal encoding of the same factors (exp taken in T).
    let plain = |raw: &[T]| -> Vec<T> {
        let mut v = raw.to_vec();
        for i in 0..d {
            let k = i * (i + 1) / 2 + i;
            v[k] = v[k].exp();
        }
        v
    };
    let (lp, lq) = (plain(&rp), plain(&rq));
    let (pp, pq) = (
        PackedTril::with_layout(d, &lp, Layout::RowMajor, Diagonal::Plain).expect("valid case"),
        PackedTril::with_layout(d, &lq, Layout::RowMajor, Diagonal::Plain).expect("valid case"),
    );
    let (p, q) = (
        Gaussian::new(&mp, pp).expect("valid case"),
        Gaussian::new(&mq, pq).expect("valid case"),
    );
    record(
        "kl (plain diagonal)",
        full::kl(&p, &q, &mut work).expect("valid case"),
    );
    // The same factors dense and column-major (plain diagonal, upper NaN).
    let col = |packed: &[T]| -> Vec<T> {
        let mut a = vec![T::NAN; d * d];
        for i in 0..d {
            for j in 0..=i {
                a[j * d + i] = packed[i * (i + 1) / 2 + j];
            }
        }
        a
    };
    let (cp, cq) = (col(&lp), col(&lq));
    let (p, q) = (
        Gaussian::new(&mp, MatRef::col_major(d, &cp).expect("valid case")).expect("valid case"),
        Gaussian::new(&mq, MatRef::col_major(d, &cq).expect("valid case")).expect("valid case"),
    );
    record(
        "kl (dense column-major)",
        full::kl(&p, &q, &mut work).expect("valid case"),
    );
    worst
}

#[test]
fn torch_oracle_f64() {
    let cases = cases();
    let worst = cases
        .iter()
        .map(|c| all_paths::<f64>(c, 1e-12))
        .fold(0.0, f64::max);
    println!(
        "oracle f64: {} cases, max relative error = {worst:.3e}",
        cases.len()
    );
}

#[test]
fn torch_oracle_f32() {
    let cases = cases();
    let mut checked = 0;
    let mut worst = 0.0f64;
    let mut torch_worst = 0.0f64;
    for c in &cases {
        if !c.kl_torch_f32.is_finite() {
            continue;
        }
        let torch_rel = (c.kl_torch_f32 - c.kl).abs() / c.kl.abs();
        torch_worst = torch_worst.max(torch_rel);
        worst = worst.max(all_paths::<f32>(c, (10.0 * torch_rel).max(1e-5)));
        checked += 1;
    }
    assert!(checked > 0, "no finite float32 oracle values");
    println!(
        "oracle f32: {checked} cases, max relative error = {worst:.3e} \
         (PyTorch float32 on the same cases: {torch_worst:.3e})"
    );
}
