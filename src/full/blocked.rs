//! Large-`d` SIMD kernel: one pair at a time, rows of `M` vectorized across
//! columns and register-blocked.
//!
//! The right-hand side `[μ_q − μ_p | L_p]` is held dense, `d` rows of `w`
//! columns (`w` = `d + 1` rounded up to whole vectors, zeros above the
//! diagonal and in the padding). Columns of a triangular solve are
//! independent, so the kernel walks panels of two vectors' width and, inside
//! a panel, blocks of four rows in the axpy form
//!
//! ```text
//! row i ← (row i − Σ_{k<i} L_q[i][k] · row k) · (1 / L_q[i][i])
//! ```
//!
//! with a 4 × 2 block of vector accumulators (one load of row `k` serves four
//! rows, one broadcast of `L_q[i][k]` serves two vectors). Each finished
//! vector is squared into a vector accumulator at once (fused sums), so
//! `‖y‖² + ‖M‖²_F` is summed lane-parallel, `4·2·L` partial sums wide.

use super::lanes::{Pairs, Side};
use super::scalar::finish;
use crate::real::Real;
use crate::simd::{Level, Simd, Zeroable};
use crate::tril::{Diagonal, Layout, row_start};
use crate::view::PackedTril;
use pulp::WithSimd;
use pulp::bytemuck::{cast_slice, cast_slice_mut};

/// Rows per register block.
const R: usize = 4;
/// Most lanes of any level (16 × `f32`).
const MAX_LANES: usize = 16;

/// Computes `out[k]` for every `k < out.len()`; shapes (and plain-diagonal
/// positivity) are the caller's to check, and `work` holds at least
/// `d·w + d(d+1)/2 + d` scalars, `w` = `d + 1` rounded up to whole vectors
/// (the batch layer's scratch). Returns `false` if the host lacks `level`.
pub(crate) fn kl_blocked<T: Real>(
    level: Level,
    d: usize,
    p: Side<'_, T>,
    q: Side<'_, T>,
    pairs: Pairs,
    out: &mut [T],
    work: &mut [T],
) -> bool {
    level
        .dispatch(BlockedOp {
            d,
            p,
            q,
            pairs,
            out,
            work,
        })
        .is_some()
}

struct BlockedOp<'a, T> {
    d: usize,
    p: Side<'a, T>,
    q: Side<'a, T>,
    pairs: Pairs,
    out: &'a mut [T],
    work: &'a mut [T],
}

impl<T: Real> WithSimd for BlockedOp<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let BlockedOp {
            d,
            p,
            q,
            pairs,
            out,
            work,
        } = self;
        let lanes = T::lanes::<S>();
        let w = (d + 1).div_ceil(lanes) * lanes;
        let tri = row_start(d);
        let (b, rest) = work.split_at_mut(d * w);
        let (lq, rest) = rest.split_at_mut(tri);
        let inv = &mut rest[..d];
        for (k, o) in out.iter_mut().enumerate() {
            let (kp, kq) = pairs.get(k);
            let tq = PackedTril {
                d,
                data: &q.tril[kq * tri..kq * tri + tri],
                layout: q.layout,
                diagonal: q.diagonal,
            };
            let tp = PackedTril {
                d,
                data: &p.tril[kp * tri..kp * tri + tri],
                layout: p.layout,
                diagonal: p.diagonal,
            };
            let ld = load_q(tq, lq, inv);
            let mp = &p.means[kp * d..kp * d + d];
            let mq = &q.means[kq * d..kq * d + d];
            let ld = load_rhs(tp, (mp, mq), w, b, ld);
            let sq = solve::<T, S>(s, d, w, b, lq, inv);
            *o = finish(d, sq, T::ZERO, ld);
        }
    }
}

/// `L_q` unpacked (row-major packed) into `lq`, its inverted diagonal into
/// `inv`; returns `−Σ log L_qᵢᵢ`.
#[inline(always)]
fn load_q<T: Real>(tq: PackedTril<'_, T>, lq: &mut [T], inv: &mut [T]) -> T {
    let d = tq.d;
    let mut ld = T::ZERO;
    if tq.layout == Layout::RowMajor {
        lq.copy_from_slice(tq.data);
    } else {
        for i in 0..d {
            for j in 0..=i {
                lq[row_start(i) + j] = tq.data[tq.layout.index(d, i, j)];
            }
        }
    }
    for i in 0..d {
        let ii = row_start(i) + i;
        let raw = lq[ii];
        (inv[i], lq[ii]) = match tq.diagonal {
            Diagonal::Log => {
                ld -= raw;
                ((-raw).exp(), raw.exp())
            }
            Diagonal::Plain => {
                ld -= raw.ln();
                (T::ONE / raw, raw)
            }
        };
    }
    ld
}

/// `[μ_q − μ_p | L_p]`, zero-padded, into `b` (`d` rows of `w`): `M`'s
/// column `j` is column `j + 1`. Adds `log L_pᵢᵢ` to `ld` row by row (the
/// order of the sum) and returns it.
#[inline(always)]
fn load_rhs<T: Real>(
    tp: PackedTril<'_, T>,
    (mp, mq): (&[T], &[T]),
    w: usize,
    b: &mut [T],
    mut ld: T,
) -> T {
    let d = tp.d;
    for i in 0..d {
        let row = &mut b[i * w..i * w + w];
        row[0] = mq[i] - mp[i];
        if tp.layout == Layout::RowMajor {
            row[1..i + 2].copy_from_slice(&tp.data[row_start(i)..row_start(i) + i + 1]);
        } else {
            for j in 0..=i {
                row[j + 1] = tp.data[tp.layout.index(d, i, j)];
            }
        }
        let raw = row[i + 1];
        row[i + 1] = match tp.diagonal {
            Diagonal::Log => {
                ld += raw;
                raw.exp()
            }
            Diagonal::Plain => {
                ld += raw.ln();
                raw
            }
        };
        row[i + 2..].fill(T::ZERO);
    }
    ld
}

/// Solves `L_q X = B` in place (`B`: `d × w`, row-major) and returns
/// `Σ X²` over all entries.
#[inline(always)]
fn solve<T: Real, S: Simd>(s: S, d: usize, w: usize, b: &mut [T], lq: &[T], inv: &[T]) -> T {
    let lanes = T::lanes::<S>();
    let zero = T::vsplat(s, T::ZERO);
    let mut sq = [[zero; 2]; R];
    let chunks = w / lanes;
    let mut c = 0;
    while c < chunks {
        // Two-vector panels halve the broadcasts but compute the panel's
        // trapezoid: worth it once the panel is narrow next to `d`.
        let width = if c + 2 <= chunks && d >= 8 * lanes {
            2
        } else {
            1
        };
        // Column `c·L` holds `M`'s column `c·L − 1` (or `y`): zero above row
        // `c·L − 1`.
        let r0 = (c * lanes).saturating_sub(1);
        if width == 2 {
            panel::<T, S, 2>(s, [d, w, c * lanes, r0], b, (lq, inv), &mut sq);
        } else {
            panel::<T, S, 1>(s, [d, w, c * lanes, r0], b, (lq, inv), &mut sq);
        }
        c += width;
    }
    let mut total = zero;
    for row in &sq {
        for v in row {
            total = T::vadd(s, total, *v);
        }
    }
    let lanes_v: &[T] = cast_slice(core::slice::from_ref(&total));
    // Pairwise reduction of the lanes.
    let mut buf = [T::ZERO; MAX_LANES];
    buf[..lanes].copy_from_slice(lanes_v);
    let mut n = lanes;
    while n > 1 {
        let h = n / 2;
        for i in 0..h {
            buf[i] += buf[i + h];
        }
        if n % 2 == 1 {
            buf[0] += buf[n - 1];
        }
        n = h;
    }
    buf[0]
}

/// One panel of `C` vectors starting at column `col`, rows `r0..d`
/// (`[d, w, col, r0]`), of `b` (`d` rows of `w`), `L_q` and `1 / L_qᵢᵢ`
/// given as `(lq, inv)`.
#[inline(always)]
fn panel<T: Real, S: Simd, const C: usize>(
    s: S,
    [d, w, col, r0]: [usize; 4],
    b: &mut [T],
    (lq, inv): (&[T], &[T]),
    sq: &mut [[T::V<S>; 2]; R],
) {
    let lanes = T::lanes::<S>();
    let load = |b: &[T], i: usize, c: usize| -> T::V<S> {
        let mut v = T::V::<S>::zeroed();
        let at = i * w + col + c * lanes;
        cast_slice_mut::<T::V<S>, T>(core::slice::from_mut(&mut v))
            .copy_from_slice(&b[at..at + lanes]);
        v
    };
    let store = |b: &mut [T], i: usize, c: usize, v: T::V<S>| {
        let at = i * w + col + c * lanes;
        b[at..at + lanes].copy_from_slice(cast_slice(core::slice::from_ref(&v)));
    };
    let mut i0 = r0;
    while i0 + R <= d {
        let mut acc = [[T::V::<S>::zeroed(); C]; R];
        for r in 0..R {
            for c in 0..C {
                acc[r][c] = load(b, i0 + r, c);
            }
        }
        let rows: [&[T]; R] =
            core::array::from_fn(|r| &lq[row_start(i0 + r)..row_start(i0 + r) + i0 + r + 1]);
        for k in r0..i0 {
            let x: [T::V<S>; C] = core::array::from_fn(|c| load(b, k, c));
            for r in 0..R {
                let l = T::vsplat(s, rows[r][k]);
                for c in 0..C {
                    acc[r][c] = T::vneg_mul_add(s, l, x[c], acc[r][c]);
                }
            }
        }
        // The 4 × 4 triangle of the block.
        for r in 0..R {
            for q in 0..r {
                let l = T::vsplat(s, rows[r][i0 + q]);
                for c in 0..C {
                    acc[r][c] = T::vneg_mul_add(s, l, acc[q][c], acc[r][c]);
                }
            }
            let iv = T::vsplat(s, inv[i0 + r]);
            for c in 0..C {
                let v = T::vmul(s, acc[r][c], iv);
                acc[r][c] = v;
                sq[r][c] = T::vmul_add(s, v, v, sq[r][c]);
                store(b, i0 + r, c, v);
            }
        }
        i0 += R;
    }
    // Leftover rows, one at a time.
    for i in i0..d {
        let row = &lq[row_start(i)..row_start(i) + i + 1];
        let mut acc: [T::V<S>; C] = core::array::from_fn(|c| load(b, i, c));
        for k in r0..i {
            let x: [T::V<S>; C] = core::array::from_fn(|c| load(b, k, c));
            let l = T::vsplat(s, row[k]);
            for c in 0..C {
                acc[c] = T::vneg_mul_add(s, l, x[c], acc[c]);
            }
        }
        let iv = T::vsplat(s, inv[i]);
        for c in 0..C {
            let v = T::vmul(s, acc[c], iv);
            sq[0][c] = T::vmul_add(s, v, v, sq[0][c]);
            store(b, i, c, v);
        }
    }
}
