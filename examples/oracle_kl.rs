//! Computes the full-rank KL of every case in an oracle file
//! (`tests/data/torch_kl_cases.json` by default: raw packed factors in
//! PyTorch `tril_indices` order, `exp` on the diagonal) in f64 and f32, and
//! prints them as JSON, `{"f64": [...], "f32": [...]}`, each number in its
//! shortest round-trip form (f32 results widened exactly to f64).
//!
//! `.ci/wasm.sh` compares these native values bit for bit with the same
//! computation compiled to WebAssembly.
//!
//! ```text
//! cargo run --release --example oracle_kl [path/to/cases.json]
//! ```

use gaussian_kl::{Gaussian, Real, full};
use serde_json::Value;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn kl<T: Real>(case: &Value) -> f64 {
    let d = case["d"].as_u64().expect("d") as usize;
    let conv = |key: &str| -> Vec<T> { floats(&case[key]).into_iter().map(T::from_f64).collect() };
    let (mp, lp, mq, lq) = (
        conv("mean1"),
        conv("packed1"),
        conv("mean2"),
        conv("packed2"),
    );
    let p = Gaussian::packed(&mp, &lp).expect("oracle cases are well-formed");
    let q = Gaussian::packed(&mq, &lq).expect("oracle cases are well-formed");
    assert_eq!(p.dim(), d);
    let mut work = vec![T::ZERO; full::kl_scratch(d)];
    full::kl(&p, &q, &mut work)
        .expect("oracle cases are well-formed")
        .to_f64()
}

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/torch_kl_cases.json"
        )
        .into()
    });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let json: Value = serde_json::from_str(&text).expect("valid JSON");
    let cases = json["full"].as_array().expect("a `full` list");
    let list = |f: fn(&Value) -> f64| {
        cases
            .iter()
            .map(|c| format!("{:?}", f(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{{\"f64\": [{}], \"f32\": [{}]}}",
        list(kl::<f64>),
        list(kl::<f32>)
    );
}
