//! Shared pieces of the fuzz targets: input generators built on
//! [`arbitrary::Unstructured`], the double-double reference (the same file
//! the integration tests use) and the agreement checks.
//!
//! To fuzz a new full-rank path (a SIMD level, a batch kernel), add a check
//! to [`check_full`] (or a new target that calls [`FullCase::generate`] and
//! [`FullCase::reference`]): the case generator, the reference and the
//! tolerance are already here.

use arbitrary::{Result, Unstructured};
use gaussian_kl::{Diagonal, Gaussian, Layout, MatRef, PackedTril, Real};

#[path = "../../tests/suite/dd_reference.rs"]
pub mod dd;

/// Every layout, for loops and for `Unstructured::choose`.
pub const LAYOUTS: [Layout; 3] = [Layout::RowMajor, Layout::ColMajor, Layout::DiagFirst];

/// One packed factor in every form the API accepts.
#[derive(Clone, Debug)]
pub struct Factor {
    /// Dense row-major raw values (`raw[i*d + j]`, `j ≤ i`; zero above), the
    /// diagonal encoded as `diagonal`.
    pub raw: Vec<f64>,
    /// How the diagonal is encoded.
    pub diagonal: Diagonal,
}

impl Factor {
    /// The packed numbers in `layout`.
    pub fn packed<T: Real>(&self, d: usize, layout: Layout) -> Vec<T> {
        let mut out = vec![T::ZERO; d * (d + 1) / 2];
        for i in 0..d {
            for j in 0..=i {
                out[layout.index(d, i, j)] = T::from_f64(self.raw[i * d + j]);
            }
        }
        out
    }

    /// Dense row-major plain values (the diagonal decoded in `T`, exactly as
    /// the kernels decode it), the upper triangle set to `upper`.
    pub fn dense_plain<T: Real>(&self, d: usize, upper: T) -> Vec<T> {
        let mut out = vec![upper; d * d];
        for i in 0..d {
            for j in 0..i {
                out[i * d + j] = T::from_f64(self.raw[i * d + j]);
            }
            let v = T::from_f64(self.raw[i * d + i]);
            out[i * d + i] = match self.diagonal {
                Diagonal::Log => v.exp(),
                Diagonal::Plain => v,
            };
        }
        out
    }

    /// The factor packed in `layout` as a view of `data` (from
    /// [`Factor::packed`]); well-formed by construction.
    pub fn view<'a, T: Real>(&self, d: usize, data: &'a [T], layout: Layout) -> PackedTril<'a, T> {
        PackedTril::with_layout(d, data, layout, self.diagonal).expect("well-formed factor")
    }

    /// [`Factor::dense_plain`] stored column by column (the upper triangle,
    /// at `[i + j·d]` for `j > i`, set to `upper`).
    pub fn dense_plain_col<T: Real>(&self, d: usize, upper: T) -> Vec<T> {
        let row = self.dense_plain(d, upper);
        let mut out = vec![upper; d * d];
        for i in 0..d {
            for j in 0..d {
                out[j * d + i] = row[i * d + j];
            }
        }
        out
    }

    /// The diagonal encoding as the reference names it.
    pub fn dd_diag(&self) -> dd::Diag {
        match self.diagonal {
            Diagonal::Log => dd::Diag::Log,
            Diagonal::Plain => dd::Diag::Plain,
        }
    }
}

/// A well-formed full-rank pair: finite, bounded numbers that are exact in
/// both `f32` and `f64` (so one case drives both precisions).
#[derive(Clone, Debug)]
pub struct FullCase {
    /// Dimension, `1..=64`.
    pub d: usize,
    /// `μ_p`.
    pub mean_p: Vec<f64>,
    /// `μ_q`.
    pub mean_q: Vec<f64>,
    /// `L_p`.
    pub l_p: Factor,
    /// `L_q`.
    pub l_q: Factor,
    /// Layout `L_p` is passed in.
    pub layout_p: Layout,
    /// Layout `L_q` is passed in.
    pub layout_q: Layout,
}

/// `k/128 · 2^e`: exact in f32 and f64 for `|k| ≤ 128`, `|e|` small.
pub fn scaled(u: &mut Unstructured<'_>, e: i32) -> Result<f64> {
    Ok(f64::from(u.arbitrary::<i8>()?) / 128.0 * 2f64.powi(e))
}

impl Factor {
    /// Draws a `d × d` factor: off-diagonal entries `k/128 · 2^e`, `e ∈ −8..=2`
    /// for the whole factor; a log diagonal in `[−4, 4]` or a plain diagonal
    /// in `(0, 8]` (exact in f32 and f64).
    pub fn generate(u: &mut Unstructured<'_>, d: usize) -> Result<Factor> {
        let diagonal = if u.arbitrary()? {
            Diagonal::Log
        } else {
            Diagonal::Plain
        };
        Self::generate_with(u, d, diagonal)
    }

    /// [`Factor::generate`] with a given diagonal encoding.
    pub fn generate_with(u: &mut Unstructured<'_>, d: usize, diagonal: Diagonal) -> Result<Factor> {
        let e_off = u.int_in_range(-8..=2i32)?;
        let mut raw = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..i {
                raw[i * d + j] = scaled(u, e_off)?;
            }
            raw[i * d + i] = match diagonal {
                Diagonal::Log => scaled(u, 2)?,
                Diagonal::Plain => (f64::from(u.arbitrary::<u8>()?) + 1.0) / 32.0,
            };
        }
        Ok(Factor { raw, diagonal })
    }
}

/// `d` numbers `k/128 · 2^e` (exact in f32 and f64).
pub fn generate_mean(u: &mut Unstructured<'_>, d: usize, e: i32) -> Result<Vec<f64>> {
    (0..d).map(|_| scaled(u, e)).collect()
}

impl FullCase {
    /// Draws a case: `d ∈ 1..=64`; off-diagonal entries `k/128 · 2^e`,
    /// `e ∈ −8..=2` chosen per factor; a log diagonal in `[−4, 4]` or a
    /// plain diagonal in `(0, 8]`; means `k/128 · 2^e`, `e ∈ −4..=4`.
    pub fn generate(u: &mut Unstructured<'_>) -> Result<FullCase> {
        Self::generate_max(u, 64)
    }

    /// [`FullCase::generate`] with `d ∈ 1..=max_d` (`max_d ≥ 1`).
    pub fn generate_max(u: &mut Unstructured<'_>, max_d: usize) -> Result<FullCase> {
        let d = u.int_in_range(1..=max_d.max(1))?;
        // One byte per number: refuse to pad a large `d` with zeros, so that
        // the fuzzer reaches large dimensions only with as many bytes.
        if u.len() < d * (d + 1) + 2 * d {
            return Err(arbitrary::Error::NotEnoughData);
        }
        let layout_p = *u.choose(&LAYOUTS)?;
        let layout_q = *u.choose(&LAYOUTS)?;
        let l_p = Factor::generate(u, d)?;
        let l_q = Factor::generate(u, d)?;
        let e_mean = u.int_in_range(-4..=4i32)?;
        let mean_p = generate_mean(u, d, e_mean)?;
        let mean_q = generate_mean(u, d, e_mean)?;
        Ok(FullCase {
            d,
            mean_p,
            mean_q,
            l_p,
            l_q,
            layout_p,
            layout_q,
        })
    }

    /// The double-double reference `KL(p‖q)` and Skeel's `κ_S(L_q)`.
    pub fn reference(&self) -> (dd::Reference, f64) {
        (self.reference_kl(), self.kappa_q())
    }

    /// The double-double reference `KL(p‖q)`.
    pub fn reference_kl(&self) -> dd::Reference {
        dd::kl(
            self.d,
            &self.mean_p,
            &self.l_p.raw,
            self.l_p.dd_diag(),
            &self.mean_q,
            &self.l_q.raw,
            self.l_q.dd_diag(),
        )
    }

    /// Skeel's condition number `κ_S(L_q)` (see [`dd::skeel_cond`]).
    pub fn kappa_q(&self) -> f64 {
        let d = self.d;
        dd::skeel_cond(d, &dd::plain_dense(d, &self.l_q.raw, self.l_q.dd_diag()))
    }

    /// This case with `q = N(0, I)` (plain identity factor).
    pub fn with_std_normal_q(&self) -> FullCase {
        let d = self.d;
        let mut eye = vec![0.0; d * d];
        for i in 0..d {
            eye[i * d + i] = 1.0;
        }
        FullCase {
            mean_q: vec![0.0; d],
            l_q: Factor {
                raw: eye,
                diagonal: Diagonal::Plain,
            },
            ..self.clone()
        }
    }

    /// `KL(p‖N(0, I))` in double-double.
    pub fn reference_std_normal(&self) -> dd::Reference {
        self.with_std_normal_q().reference_kl()
    }
}

/// Asserts `a` and `b` are the same bits (NaN payloads aside).
#[track_caller]
pub fn assert_same<T: Real>(a: T, b: T, what: &str) {
    let same = (a.is_nan() && b.is_nan()) || a.to_f64().to_bits() == b.to_f64().to_bits();
    assert!(same, "{what}: {a:?} != {b:?} (must be bit-identical)");
}

/// Asserts the kernel value `got` is within [`dd::tolerance`] of the
/// reference, when the first-order error analysis holds and the reference
/// sits well inside `T`'s range. Returns whether the value was checked.
#[track_caller]
pub fn assert_close<T: Real>(
    got: T,
    r: &dd::Reference,
    d: usize,
    kappa_s: f64,
    what: &str,
) -> bool {
    let eps = T::EPSILON.to_f64();
    // Largest finite value of T: 2^128 (1 − 2^−24) for f32, f64::MAX for f64.
    let max = if eps > 1e-10 {
        f32::MAX as f64
    } else {
        f64::MAX
    };
    let in_range = r.scale.is_finite() && r.scale < max / 64.0;
    if !dd::first_order_valid(d, eps, kappa_s) || !in_range {
        return false;
    }
    let tol = dd::tolerance(d, eps, kappa_s, r.scale);
    let exact = r.kl.to_f64();
    let err = (got.to_f64() - exact).abs();
    assert!(
        err <= tol,
        "{what}: d = {d}, got {got:?}, reference {exact:e}, |error| {err:e} > tolerance {tol:e} \
         (κ_S = {kappa_s:e}, S = {:e})",
        r.scale
    );
    true
}

/// The dimensions at which the fixed-`D` (const generic) kernels are
/// checked: every `D` up to 9, then each side of the 16-, 32- and 64-wide
/// boundaries. Every fixed kernel is a separate monomorphization per `D`
/// (and per scalar type), so instantiating all of `1..=64` made the fuzz
/// builds several times slower to compile for no new code paths: the
/// kernels are one generic body whose only `D`-dependence is loop bounds.
pub const FIXED_DIMS: [usize; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64];

/// Picks one of [`FIXED_DIMS`].
pub fn fixed_dim(u: &mut Unstructured<'_>) -> Result<usize> {
    Ok(FIXED_DIMS[u.choose_index(FIXED_DIMS.len())?])
}

/// Evaluates `$body` with `const $n: usize` equal to the runtime `$d`, for
/// every `$d` in [`FIXED_DIMS`], so that a generic function over `const D`
/// can be reached from a fuzzed dimension: `with_const_d!(d, D => f::<T, D>(x))`.
/// Gives `Some(body)`, or `None` for other `$d`.
#[macro_export]
macro_rules! with_const_d {
    ($d:expr, $n:ident => $body:expr) => {
        $crate::with_const_d!(@list $d, $n => $body, [
            1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64
        ])
    };
    (@list $d:expr, $n:ident => $body:expr, [$($v:literal),*]) => {
        match $d {
            $($v => {
                const $n: usize = $v;
                Some($body)
            })*
            _ => None,
        }
    };
}

// The macro's list is `FIXED_DIMS`, checked at compile time.
const _: () = {
    let mut i = 0;
    while i < FIXED_DIMS.len() {
        match with_const_d!(FIXED_DIMS[i], D => D) {
            Some(d) => assert!(d == FIXED_DIMS[i]),
            None => panic!("with_const_d! misses a FIXED_DIMS entry"),
        }
        i += 1;
    }
};

/// Numbers that break naive code: NaN, infinities, signed zeros,
/// subnormals (of f32 and of f64), the extremes, and ordinary values.
pub const SPECIALS: [f64; 20] = [
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    0.0,
    -0.0,
    5e-324,
    -5e-324,
    1e-310,
    1e-40,
    f64::MIN_POSITIVE,
    f32::MIN_POSITIVE as f64,
    f64::MAX,
    f64::MIN,
    f32::MAX as f64,
    1e300,
    -1e300,
    1.0,
    -1.0,
    0.5,
    800.0,
];

/// An arbitrary float: a special value, raw f64 bits, or a small integer.
pub fn wild_value(u: &mut Unstructured<'_>) -> Result<f64> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => *u.choose(&SPECIALS)?,
        1 => f64::from_bits(u.arbitrary()?),
        _ => f64::from(u.arbitrary::<i8>()?) / 16.0,
    })
}

/// An arbitrary dimension: small (`0..=70`), or one of the sizes where
/// `d(d+1)/2`, `d²` or `d(d+2)` overflow, or any `usize`.
pub fn wild_dim(u: &mut Unstructured<'_>) -> Result<usize> {
    const EDGES: [usize; 8] = [
        usize::MAX,
        usize::MAX - 1,
        usize::MAX / 2,
        1 << 32,
        (1 << 32) - 1,
        // the largest d whose d(d+1)/2 fits, and its neighbour
        6_074_000_999,
        6_074_001_000,
        4_294_967_296 + 1,
    ];
    Ok(match u.int_in_range(0..=5u8)? {
        0 => *u.choose(&EDGES)?,
        1 => u.arbitrary()?,
        _ => u.int_in_range(0..=70)?,
    })
}

/// An arbitrary slice length: usually what `want` (the length `d` calls
/// for) says when that is small, otherwise anything up to `cap`.
pub fn wild_len(u: &mut Unstructured<'_>, want: Option<usize>, cap: usize) -> Result<usize> {
    match want {
        Some(n) if n <= cap && u.ratio(3, 4)? => Ok(n),
        _ => u.int_in_range(0..=cap),
    }
}

/// `len` wild values converted to `T`.
pub fn wild_vec<T: Real>(u: &mut Unstructured<'_>, len: usize) -> Result<Vec<T>> {
    (0..len).map(|_| Ok(T::from_f64(wild_value(u)?))).collect()
}

/// A Gaussian of a well-formed case (panics only on a generator bug).
pub fn gaussian<'a, T: Real>(
    mean: &'a [T],
    factor: impl Into<gaussian_kl::Factor<'a, T>>,
) -> Gaussian<'a, T> {
    Gaussian::new(mean, factor).expect("well-formed case")
}

/// A dense `d × d` view with the given strides (panics only on a bug).
pub fn mat<T: Real>(d: usize, data: &[T], row_stride: usize, col_stride: usize) -> MatRef<'_, T> {
    MatRef::from_strides(d, data, row_stride, col_stride).expect("well-formed view")
}
