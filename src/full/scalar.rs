//! Scalar reference kernels: plain, obviously correct code, kept forever as
//! the yardstick every faster path is tested against.
//!
//! They take the factors already unpacked into row-major packed triangles of
//! plain values (see `PackedTril::unpack_row_major`), so that every input
//! form reaches the same arithmetic in the same order.

use crate::real::Real;
use crate::tril::row_start;

/// KL(p‖q) from unpacked factors, by in-place forward substitution with fused
/// squared-sum accumulation.
///
/// - `l2`: `L_q`, row-major packed, plain values, `d(d+1)/2` long.
/// - `m`: holds `L_p` (same form) on entry; overwritten row by row with
///   `M = L_q⁻¹ L_p` (only its lower triangle exists: `M` is lower triangular).
/// - `y`: `d` long, overwritten with `y = L_q⁻¹ (μ_q − μ_p)`.
/// - `log_det_diff`: `Σ log L_pᵢᵢ − Σ log L_qᵢᵢ`.
///
/// Each entry of `y` and `M` is squared into its sum the moment it is final;
/// neither is read a second time for the norms.
pub(crate) fn kl_unpacked<T: Real>(
    d: usize,
    mean_p: &[T],
    mean_q: &[T],
    l2: &[T],
    m: &mut [T],
    y: &mut [T],
    log_det_diff: T,
) -> T {
    // L_q y = μ_q − μ_p.
    let mut y_sq = T::ZERO;
    for i in 0..d {
        let row = &l2[row_start(i)..row_start(i) + i + 1];
        let mut s = mean_q[i] - mean_p[i];
        for k in 0..i {
            s -= row[k] * y[k];
        }
        let v = s / row[i];
        y[i] = v;
        y_sq += v * v;
    }
    // L_q M = L_p, row i of M from rows < i:
    // M[i][j] = (L_p[i][j] − Σ_{k=j}^{i−1} L_q[i][k] M[k][j]) / L_q[i][i].
    let mut m_sq = T::ZERO;
    for i in 0..d {
        let ri = row_start(i);
        for j in 0..=i {
            let mut s = m[ri + j];
            for k in j..i {
                s -= l2[ri + k] * m[row_start(k) + j];
            }
            let v = s / l2[ri + i];
            m[ri + j] = v;
            m_sq += v * v;
        }
    }
    finish(d, y_sq, m_sq, log_det_diff)
}

/// `½(‖y‖² + ‖M‖²_F − 2·log_det_diff − d)`.
#[inline(always)]
pub(crate) fn finish<T: Real>(d: usize, y_sq: T, m_sq: T, log_det_diff: T) -> T {
    T::HALF * (y_sq + m_sq - (log_det_diff + log_det_diff) - T::from_usize(d))
}

/// KL(p‖N(0, I)) = ½(‖μ‖² + ‖L‖²_F − 2 Σ log Lᵢᵢ − d), with `L` given by an
/// accessor `entry(i, j) -> plain value` over `j ≤ i` and `log_diag_sum`.
pub(crate) fn kl_std_normal_with<T: Real>(
    d: usize,
    mean: &[T],
    entry: impl Fn(usize, usize) -> T,
    log_diag_sum: T,
) -> T {
    let mut mu_sq = T::ZERO;
    for &v in &mean[..d] {
        mu_sq += v * v;
    }
    let mut l_sq = T::ZERO;
    for i in 0..d {
        for j in 0..=i {
            let v = entry(i, j);
            l_sq += v * v;
        }
    }
    finish(d, mu_sq, l_sq, log_diag_sum)
}
