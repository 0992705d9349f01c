//! Fixed-dimension lockstep kernels on `wide`'s compile-time-width vectors:
//! the path for targets whose SIMD is known when the crate is compiled
//! (WASM `simd128`, embedded), where no run-time dispatch is wanted.
//!
//! `kl_wide_f32x8::<D>` runs 8 pairs (`kl_wide_f64x4::<D>`: 4 pairs) of
//! dimension `D` in lockstep, one pair per lane, with the algorithm of the
//! pulp lockstep kernel: inputs in PyTorch's layout (consecutive pairs,
//! row-major packed factors, raw log diagonals) transposed into lanes, `wide`'s
//! vector `exp` on the diagonals, fused multiply-adds where the target has FMA
//! (without the `fma` target feature `wide` rounds the product and the sum
//! separately, so the last bits depend on the compile-time target).

use crate::error::{Error, check_len};
use crate::tril::row_start;

macro_rules! wide_kernel {
    ($name:ident, $t:ty, $v:ty, $lanes:literal, $doc_ex:literal) => {
        /// `KL(p_l‖q_l)` for the
        #[doc = concat!(stringify!($lanes))]
        /// consecutive pairs of a PyTorch-layout batch of compile-time
        /// dimension `D`: `means_*` hold
        #[doc = concat!("`", stringify!($lanes), " · D`")]
        /// numbers, `factors_*`
        #[doc = concat!("`", stringify!($lanes), " · D(D+1)/2`")]
        /// (row-major packed, raw log diagonal, a VAE encoder's output).
        ///
        /// # Errors
        /// [`Error::LengthMismatch`] naming the slice whose length is wrong.
        /// NaN and infinities propagate to the results of their lanes.
        ///
        /// ```
        #[doc = $doc_ex]
        /// ```
        pub fn $name<const D: usize>(
            means_p: &[$t],
            factors_p: &[$t],
            means_q: &[$t],
            factors_q: &[$t],
        ) -> Result<[$t; $lanes], Error> {
            const L: usize = $lanes;
            let t = row_start(D);
            check_len("means_p", L * D, means_p.len())?;
            check_len("factors_p", L * t, factors_p.len())?;
            check_len("means_q", L * D, means_q.len())?;
            check_len("factors_q", L * t, factors_q.len())?;
            // Transposed blocks: a = L_q (1/L_qᵢᵢ on the diagonal),
            // m = L_p → M, y = μ_q − μ_p → y.
            let mut a = [[<$v>::ZERO; D]; D];
            let mut m = [[<$v>::ZERO; D]; D];
            let mut y = [<$v>::ZERO; D];
            for i in 0..D {
                y[i] = <$v>::new(core::array::from_fn(|l| {
                    means_q[l * D + i] - means_p[l * D + i]
                }));
                for j in 0..=i {
                    let at = row_start(i) + j;
                    a[i][j] = <$v>::new(core::array::from_fn(|l| factors_q[l * t + at]));
                    m[i][j] = <$v>::new(core::array::from_fn(|l| factors_p[l * t + at]));
                }
            }
            let mut ld = <$v>::ZERO;
            for i in 0..D {
                let (rp, rq) = (m[i][i], a[i][i]);
                ld += rp - rq;
                m[i][i] = (rp - rq).exp();
                a[i][i] = (-rq).exp();
            }
            let mut y_sq = <$v>::ZERO;
            for i in 0..D {
                let mut acc = y[i];
                for k in 0..i {
                    acc = a[i][k].mul_neg_add(y[k], acc);
                }
                let v = acc * a[i][i];
                y[i] = v;
                y_sq = v.mul_add(v, y_sq);
            }
            let mut m_sq = [<$v>::ZERO; 2];
            for i in 0..D {
                for j in 0..i {
                    let mut acc = m[i][j];
                    for k in j..i {
                        acc = a[i][k].mul_neg_add(m[k][j], acc);
                    }
                    let v = acc * a[i][i];
                    m[i][j] = v;
                    m_sq[j % 2] = v.mul_add(v, m_sq[j % 2]);
                }
                let v = m[i][i];
                m_sq[1] = v.mul_add(v, m_sq[1]);
            }
            let kl =
                <$v>::splat(0.5) * (y_sq + m_sq[0] + m_sq[1] - (ld + ld) - <$v>::splat(D as $t));
            Ok(kl.to_array())
        }
    };
}

wide_kernel!(
    kl_wide_f32x8,
    f32,
    wide::f32x8,
    8,
    "use gaussian_kl::full::kl_wide_f32x8;
// 8 pairs, d = 2: p_l = N((l/8, 0), I), q = N(0, I) → KL = ½ (l/8)².
let means_p: Vec<f32> = (0..8).flat_map(|l| [l as f32 / 8.0, 0.0]).collect();
let zeros = [0.0f32; 8 * 3];
let kl = kl_wide_f32x8::<2>(&means_p, &zeros, &[0.0; 16], &zeros)?;
for l in 0..8 {
    assert!((kl[l] - 0.5 * (l as f32 / 8.0).powi(2)).abs() < 1e-6);
}
# Ok::<(), gaussian_kl::Error>(())"
);

wide_kernel!(
    kl_wide_f64x4,
    f64,
    wide::f64x4,
    4,
    "use gaussian_kl::full::kl_wide_f64x4;
let zeros = [0.0f64; 4 * 6];
let means_q = [1.0f64; 4 * 3]; // q_l = N((1, 1, 1), I), p_l = N(0, I): KL = 3/2
assert_eq!(kl_wide_f64x4::<3>(&[0.0; 12], &zeros, &means_q, &zeros)?, [1.5; 4]);
# Ok::<(), gaussian_kl::Error>(())"
);
