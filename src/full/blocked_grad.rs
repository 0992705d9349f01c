//! Large-`d` SIMD gradient kernel: one pair at a time, vectorized across
//! columns, register-tiled like a GEMM micro-kernel.
//!
//! With `y = L_q⁻¹(μ_q − μ_p)`, `M = L_q⁻¹L_p`, `u = L_q⁻ᵀy`, `Z = L_q⁻ᵀM`:
//! `∂KL/∂μ_p = −u`, `∂KL/∂μ_q = u`, `∂KL/∂L_p = lower(Z) − diag(1/L_pᵢᵢ)`,
//! `∂KL/∂L_q = −lower(Z Mᵀ + u yᵀ) + diag(1/L_qᵢᵢ)` (a log diagonal times
//! `L_ᵢᵢ`, the chain rule of the raw value): the arithmetic of
//! [`kl_grad_unpacked`](super::grad::kl_grad_unpacked), reordered.
//!
//! One pair is three triangular sweeps, each `d³/6` multiply-adds, on the
//! `d × w` matrix `X = [y | M]` (`w` = `d + 1` rounded up to whole vectors,
//! row-major, rows vectorized across columns):
//!
//! 1. forward: `L_q X = [μ_q − μ_p | L_p]` in place, top-down (the forward
//!    kernel's solve); the KL from `‖X‖²_F`. `X` is then copied transposed
//!    into `Xᵀ` (`d + 1` rows of `d` rounded up to whole vectors, only the
//!    entries `c ≤ j + 1` that are not zero).
//! 2. backward: `L_qᵀ [u | Z] = X` in place, bottom-up. Column `j` of `Z`
//!    is needed only in rows `≥ j`, which depend only on rows below: each
//!    panel of columns starting at `c` runs rows `c − 1 .. d` (a trapezoid,
//!    as in the forward sweep).
//! 3. `S = [u | Z] Xᵀ`, lower part only: `S[i][j] = Σ_{c ≤ j+1} [u|Z][i][c] ·
//!    Xᵀ[c][j]` (`M` is lower triangular, so `j ≤ i` reads only `lower(Z)`),
//!    vectorized across `j`, written straight into the gradient of `L_q`.
//!
//! Every sweep is a tile of `R` rows × `C` vectors of accumulators: per step
//! `C` vector loads of one row and `R` broadcasts of scalars (`L_q` entries,
//! or `Z` entries in sweep 3), `R·C` fused multiply-adds. With 32 vector
//! registers (AVX-512) `R × C = 8 × 3` (24 accumulators, 3 loads, one
//! broadcast); with fewer, `4 × 3`. `L_q` is kept both row-major packed
//! (sweep 2 broadcasts `L_q[k][i₀..i₀+R]`, a contiguous run) and
//! column-major packed (sweep 1 broadcasts `L_q[i₀..i₀+R][k]`).
//!
//! The gradients of a pair are written (or added, for a Gaussian in several
//! pairs) into its rows as each is finished; nothing of a pair outlives it,
//! so the workspace is one pair's (`≈ 2d² + d²` scalars), L2-resident up to
//! `d` in the hundreds, where the lockstep kernel's `(3d² + 4d) · lanes`
//! block of every lane's pair went to DRAM.

use super::lanes::{Pairs, Side};
use super::lanes_grad::GradOut;
use super::scalar::finish;
use crate::real::Real;
use crate::simd::{Level, Simd, Zeroable};
use crate::tril::{Diagonal, Layout, row_start};
use pulp::WithSimd;
use pulp::bytemuck::{cast_slice, cast_slice_mut};

/// Most lanes of any level (16 × `f32`).
const MAX_LANES: usize = 16;

/// The workspace of [`kl_grad_blocked`] for `d` at `lanes` lanes (`None` on
/// overflow): `X` (`d` rows of `w`), `Xᵀ` (`d + 1` rows of `⌈d⌉`), `L_q`
/// twice (both packed orders) and three diagonals.
pub(crate) fn scratch(d: usize, lanes: usize) -> Option<usize> {
    let w = d.checked_add(1)?.div_ceil(lanes).checked_mul(lanes)?;
    let wd = d.div_ceil(lanes).checked_mul(lanes)?;
    let t = d.checked_mul(d.checked_add(1)?)? / 2;
    d.checked_mul(w)?
        .checked_add(d.checked_add(1)?.checked_mul(wd)?)?
        .checked_add(t.checked_mul(2)?)?
        .checked_add(d.checked_mul(3)?)
}

/// Computes every pair's KL and gradients (added into the rows, or written
/// with `out.overwrite`). The caller has checked every shape and (for plain
/// diagonals) positivity, zeroed what is added into, and `work` holds
/// [`scratch`]`(d, lanes)` scalars. Returns `false` (touching nothing) if the
/// host lacks `level`.
pub(crate) fn kl_grad_blocked<T: Real>(
    level: Level,
    d: usize,
    p: Side<'_, T>,
    q: Side<'_, T>,
    pairs: Pairs,
    out: GradOut<'_, T>,
    work: &mut [T],
) -> bool {
    level
        .dispatch(Op {
            d,
            p,
            q,
            pairs,
            out,
            work,
        })
        .is_some()
}

struct Op<'a, T> {
    d: usize,
    p: Side<'a, T>,
    q: Side<'a, T>,
    pairs: Pairs,
    out: GradOut<'a, T>,
    work: &'a mut [T],
}

/// One pair's buffers: `x` (`d` rows of `nv` vectors), `xt` (`d + 1` rows of
/// `nj` vectors), `L_q` row-major (`lq`) and column-major (`lqc`) packed
/// with plain diagonals, `1/L_qᵢᵢ`, `L_qᵢᵢ`, `L_pᵢᵢ`.
struct Bufs<'a, T, V> {
    d: usize,
    nv: usize,
    nj: usize,
    x: &'a mut [V],
    xt: &'a mut [V],
    lq: &'a mut [T],
    lqc: &'a mut [T],
    inv: &'a mut [T],
    lqd: &'a mut [T],
    lpd: &'a mut [T],
}

impl<T: Real> WithSimd for Op<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        if core::mem::size_of::<T::V<S>>() >= 64 {
            self.run::<S, 8>(s);
        } else {
            self.run::<S, 4>(s);
        }
    }
}

impl<T: Real> Op<'_, T> {
    #[inline(always)]
    fn run<S: Simd, const R: usize>(self, s: S) {
        let Op {
            d,
            p,
            q,
            pairs,
            out,
            work,
        } = self;
        let lanes = T::lanes::<S>();
        let (nv, nj) = ((d + 1).div_ceil(lanes), d.div_ceil(lanes));
        let t = row_start(d);
        let (x, rest) = work.split_at_mut(d * nv * lanes);
        let (xt, rest) = rest.split_at_mut((d + 1) * nj * lanes);
        let (lq, rest) = rest.split_at_mut(t);
        let (lqc, rest) = rest.split_at_mut(t);
        let (inv, rest) = rest.split_at_mut(d);
        let (lqd, rest) = rest.split_at_mut(d);
        let lpd = &mut rest[..d];
        let mut b = Bufs {
            d,
            nv,
            nj,
            x: cast_slice_mut(x),
            xt: cast_slice_mut(xt),
            lq,
            lqc,
            inv,
            lqd,
            lpd,
        };
        for k in 0..out.kl.len() {
            let (kp, kq) = pairs.get(k);
            let g = if out.upstream.len() == 1 {
                out.upstream[0]
            } else {
                out.upstream[k]
            };
            let ld = load_q(&q, kq, &mut b);
            let ld = load_rhs::<T, S>(&p, (kp, &q.means[kq * d..][..d]), &mut b, ld);
            let sq = forward::<T, S, R>(s, &mut b);
            out.kl[k] = finish(d, sq, T::ZERO, ld);
            transpose::<T, S>(&mut b);
            backward::<T, S, R>(s, &mut b);
            let t = row_start(d);
            let dst = (
                &mut out.means_p[kp * d..][..d],
                &mut out.means_q[kq * d..][..d],
                &mut out.factors_p[kp * t..][..t],
            );
            grad_p::<T, S>(&b, (p.layout, p.diagonal), g, dst, out.overwrite);
            let glq = &mut out.factors_q[kq * t..][..t];
            grad_q::<T, S, R>(s, &b, (q.layout, q.diagonal), g, glq, out.overwrite);
        }
    }
}

/// `L_q` of pair `kq` unpacked into `lq` and `lqc` with plain diagonals,
/// `1/L_qᵢᵢ` into `inv`, `L_qᵢᵢ` into `lqd`; returns `−Σ log L_qᵢᵢ`.
#[inline(always)]
fn load_q<T: Real, V>(q: &Side<'_, T>, kq: usize, b: &mut Bufs<'_, T, V>) -> T {
    let d = b.d;
    let t = row_start(d);
    let data = &q.tril[kq * t..][..t];
    let mut ld = T::ZERO;
    if q.layout == Layout::RowMajor {
        b.lq.copy_from_slice(data);
    } else {
        for i in 0..d {
            for j in 0..=i {
                b.lq[row_start(i) + j] = data[q.layout.index(d, i, j)];
            }
        }
    }
    for i in 0..d {
        let ii = row_start(i) + i;
        let raw = b.lq[ii];
        let (inv, l) = match q.diagonal {
            Diagonal::Log => {
                ld -= raw;
                ((-raw).exp(), raw.exp())
            }
            Diagonal::Plain => {
                ld -= raw.ln();
                (T::ONE / raw, raw)
            }
        };
        (b.inv[i], b.lq[ii], b.lqd[i]) = (inv, l, l);
    }
    // Column-major packed copy: column k holds rows k..d.
    let mut at = 0;
    for k in 0..d {
        for i in k..d {
            b.lqc[at] = b.lq[row_start(i) + k];
            at += 1;
        }
    }
    ld
}

/// `[μ_q − μ_p | L_p]` of pair `kp`, zero-padded, into `x`; `L_pᵢᵢ` into
/// `lpd`. Adds `log L_pᵢᵢ` to `ld` row by row and returns it.
#[inline(always)]
fn load_rhs<T: Real, S: Simd>(
    p: &Side<'_, T>,
    (kp, mq): (usize, &[T]),
    b: &mut Bufs<'_, T, T::V<S>>,
    mut ld: T,
) -> T {
    let d = b.d;
    let t = row_start(d);
    let w = b.nv * T::lanes::<S>();
    let data = &p.tril[kp * t..][..t];
    let mp = &p.means[kp * d..][..d];
    let x: &mut [T] = cast_slice_mut(&mut *b.x);
    for (i, row) in x.chunks_exact_mut(w).enumerate().take(d) {
        row[0] = mq[i] - mp[i];
        if p.layout == Layout::RowMajor {
            row[1..i + 2].copy_from_slice(&data[row_start(i)..][..=i]);
        } else {
            for j in 0..=i {
                row[j + 1] = data[p.layout.index(d, i, j)];
            }
        }
        let raw = row[i + 1];
        let l = match p.diagonal {
            Diagonal::Log => {
                ld += raw;
                raw.exp()
            }
            Diagonal::Plain => {
                ld += raw.ln();
                raw
            }
        };
        (row[i + 1], b.lpd[i]) = (l, l);
        row[i + 2..].fill(T::ZERO);
    }
    ld
}

/// Sweep 1: `L_q X = X` in place; returns `Σ X²`.
#[inline(always)]
fn forward<T: Real, S: Simd, const R: usize>(s: S, b: &mut Bufs<'_, T, T::V<S>>) -> T {
    let lanes = T::lanes::<S>();
    let zero = T::vsplat(s, T::ZERO);
    let mut sq = [[zero; 3]; R];
    let mut c = 0;
    while c < b.nv {
        let width = (b.nv - c).min(3);
        let r0 = (c * lanes).saturating_sub(1);
        match width {
            3 => fwd_panel::<T, S, R, 3>(s, b, c, r0, &mut sq),
            2 => fwd_panel::<T, S, R, 2>(s, b, c, r0, &mut sq),
            _ => fwd_panel::<T, S, R, 1>(s, b, c, r0, &mut sq),
        }
        c += width;
    }
    let mut total = zero;
    for row in &sq {
        for v in row {
            total = T::vadd(s, total, *v);
        }
    }
    reduce::<T, S>(total)
}

/// The pairwise sum of a vector's lanes.
#[inline(always)]
fn reduce<T: Real, S: Simd>(v: T::V<S>) -> T {
    let lanes = T::lanes::<S>();
    let mut buf = [T::ZERO; MAX_LANES];
    buf[..lanes].copy_from_slice(cast_slice(core::slice::from_ref(&v)));
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

/// Sweep 1 on the panel of `C` vectors at vector column `c`, rows `r0..d`.
#[inline(always)]
fn fwd_panel<T: Real, S: Simd, const R: usize, const C: usize>(
    s: S,
    b: &mut Bufs<'_, T, T::V<S>>,
    c: usize,
    r0: usize,
    sq: &mut [[T::V<S>; 3]; R],
) {
    let d = b.d;
    let mut i0 = r0;
    while i0 + R <= d {
        fwd_tile::<T, S, R, C>(s, b, (i0, c, r0), sq);
        i0 += R;
    }
    while i0 < d {
        let mut one = [sq[0]];
        fwd_tile::<T, S, 1, C>(s, b, (i0, c, r0), &mut one);
        sq[0] = one[0];
        i0 += 1;
    }
}

/// Rows `i0..i0 + R` of the panel: the rows `r0..i0` above are finished.
#[inline(always)]
fn fwd_tile<T: Real, S: Simd, const R: usize, const C: usize>(
    s: S,
    b: &mut Bufs<'_, T, T::V<S>>,
    (i0, c, r0): (usize, usize, usize),
    sq: &mut [[T::V<S>; 3]; R],
) {
    let (d, nv) = (b.d, b.nv);
    let mut acc = [[T::V::<S>::zeroed(); C]; R];
    for (r, a) in acc.iter_mut().enumerate() {
        a.copy_from_slice(&b.x[(i0 + r) * nv + c..][..C]);
    }
    for k in r0..i0 {
        let xk = &b.x[k * nv + c..][..C];
        // L_q[i0 + r][k], column k of the column-major copy.
        let at = k * d - k * k.saturating_sub(1) / 2 + (i0 - k);
        let l = &b.lqc[at..][..R];
        for r in 0..R {
            let lr = T::vsplat(s, l[r]);
            for cc in 0..C {
                acc[r][cc] = T::vneg_mul_add(s, lr, xk[cc], acc[r][cc]);
            }
        }
    }
    // The R × R triangle of the tile.
    for r in 0..R {
        let row = &b.lq[row_start(i0 + r) + i0..][..=r];
        for qq in 0..r {
            let l = T::vsplat(s, row[qq]);
            for cc in 0..C {
                acc[r][cc] = T::vneg_mul_add(s, l, acc[qq][cc], acc[r][cc]);
            }
        }
        let iv = T::vsplat(s, b.inv[i0 + r]);
        for cc in 0..C {
            let v = T::vmul(s, acc[r][cc], iv);
            acc[r][cc] = v;
            sq[r][cc] = T::vmul_add(s, v, v, sq[r][cc]);
        }
        b.x[(i0 + r) * nv + c..][..C].copy_from_slice(&acc[r]);
    }
}

/// `Xᵀ[c][j] = X[j][c]` for `c ≤ j + 1`, zero elsewhere (and in the padding).
#[inline(always)]
fn transpose<T: Real, S: Simd>(b: &mut Bufs<'_, T, T::V<S>>) {
    let lanes = T::lanes::<S>();
    let (d, w, wd) = (b.d, b.nv * lanes, b.nj * lanes);
    let x: &[T] = cast_slice(&*b.x);
    let xt: &mut [T] = cast_slice_mut(&mut *b.xt);
    for (c, row) in xt.chunks_exact_mut(wd).enumerate().take(d + 1) {
        let j0 = c.saturating_sub(1);
        row[..j0].fill(T::ZERO);
        for (j, v) in row[..d].iter_mut().enumerate().skip(j0) {
            *v = x[j * w + c];
        }
        row[d..].fill(T::ZERO);
    }
}

/// Sweep 2: `L_qᵀ [u | Z] = X` in place, bottom-up; in each panel only the
/// rows at or below its first column's diagonal.
#[inline(always)]
fn backward<T: Real, S: Simd, const R: usize>(s: S, b: &mut Bufs<'_, T, T::V<S>>) {
    let lanes = T::lanes::<S>();
    let d = b.d;
    let mut c = 0;
    while c < b.nv {
        let width = (b.nv - c).min(3);
        let r0 = (c * lanes).saturating_sub(1);
        // Full tiles from the bottom, then the leftover rows above them.
        let mut i0 = d;
        while i0 >= r0 + R {
            i0 -= R;
            match width {
                3 => bwd_tile::<T, S, R, 3>(s, b, i0, c),
                2 => bwd_tile::<T, S, R, 2>(s, b, i0, c),
                _ => bwd_tile::<T, S, R, 1>(s, b, i0, c),
            }
        }
        while i0 > r0 {
            i0 -= 1;
            match width {
                3 => bwd_tile::<T, S, 1, 3>(s, b, i0, c),
                2 => bwd_tile::<T, S, 1, 2>(s, b, i0, c),
                _ => bwd_tile::<T, S, 1, 1>(s, b, i0, c),
            }
        }
        c += width;
    }
}

/// Rows `i0..i0 + R` of a panel at vector column `c`: the rows below are
/// finished.
#[inline(always)]
fn bwd_tile<T: Real, S: Simd, const R: usize, const C: usize>(
    s: S,
    b: &mut Bufs<'_, T, T::V<S>>,
    i0: usize,
    c: usize,
) {
    let (d, nv) = (b.d, b.nv);
    let mut acc = [[T::V::<S>::zeroed(); C]; R];
    for (r, a) in acc.iter_mut().enumerate() {
        a.copy_from_slice(&b.x[(i0 + r) * nv + c..][..C]);
    }
    for k in i0 + R..d {
        let xk = &b.x[k * nv + c..][..C];
        // L_q[k][i0 + r], a run of row k.
        let l = &b.lq[row_start(k) + i0..][..R];
        for r in 0..R {
            let lr = T::vsplat(s, l[r]);
            for cc in 0..C {
                acc[r][cc] = T::vneg_mul_add(s, lr, xk[cc], acc[r][cc]);
            }
        }
    }
    // The R × R triangle, bottom-up.
    for r in (0..R).rev() {
        for qq in r + 1..R {
            let l = T::vsplat(s, b.lq[row_start(i0 + qq) + i0 + r]);
            for cc in 0..C {
                acc[r][cc] = T::vneg_mul_add(s, l, acc[qq][cc], acc[r][cc]);
            }
        }
        let iv = T::vsplat(s, b.inv[i0 + r]);
        for cc in 0..C {
            acc[r][cc] = T::vmul(s, acc[r][cc], iv);
        }
        b.x[(i0 + r) * nv + c..][..C].copy_from_slice(&acc[r]);
    }
}

/// Writes (or adds) `v` into `slot`.
#[inline(always)]
fn put<T: Real>(slot: &mut T, v: T, overwrite: bool) {
    if overwrite { *slot = v } else { *slot += v }
}

/// `g · ∂/∂μ_p = −g·u`, `g · ∂/∂μ_q = g·u` and `g · ∂/∂L_p = g · (lower(Z) −
/// diag(1/L_pᵢᵢ))` into the pair's rows.
#[inline(always)]
fn grad_p<T: Real, S: Simd>(
    b: &Bufs<'_, T, T::V<S>>,
    (layout, diagonal): (Layout, Diagonal),
    g: T,
    (gmp, gmq, glp): (&mut [T], &mut [T], &mut [T]),
    overwrite: bool,
) {
    let (d, w) = (b.d, b.nv * T::lanes::<S>());
    let x: &[T] = cast_slice(&*b.x);
    for (i, row) in x.chunks_exact(w).enumerate().take(d) {
        let gu = g * row[0];
        put(&mut gmp[i], -gu, overwrite);
        put(&mut gmq[i], gu, overwrite);
        let z = &row[1..=i + 1];
        if layout == Layout::RowMajor {
            let dst = &mut glp[row_start(i)..][..i];
            for (o, &v) in dst.iter_mut().zip(z) {
                put(o, g * v, overwrite);
            }
        } else {
            for (j, &v) in z[..i].iter().enumerate() {
                put(&mut glp[layout.index(d, i, j)], g * v, overwrite);
            }
        }
        let (zii, lp) = (z[i], b.lpd[i]);
        let v = match diagonal {
            Diagonal::Log => g * (zii * lp - T::ONE),
            Diagonal::Plain => g * (zii - T::ONE / lp),
        };
        put(&mut glp[layout.index(d, i, i)], v, overwrite);
    }
}

/// Sweep 3: `S = [u | Z] Xᵀ` (lower part) tile by tile, written as
/// `g · ∂/∂L_q = −g·S` below the diagonal and `g · (1/L_qᵢᵢ − Sᵢᵢ)` on it.
#[inline(always)]
fn grad_q<T: Real, S: Simd, const R: usize>(
    s: S,
    b: &Bufs<'_, T, T::V<S>>,
    form: (Layout, Diagonal),
    g: T,
    glq: &mut [T],
    overwrite: bool,
) {
    let lanes = T::lanes::<S>();
    let d = b.d;
    let dst = &mut Dst {
        glq,
        form,
        g,
        overwrite,
    };
    let mut jc = 0;
    while jc < b.nj {
        let width = (b.nj - jc).min(3);
        let mut i0 = jc * lanes;
        while i0 < d {
            let rows = (d - i0).min(R);
            let at = (i0, jc);
            match (rows == R, width) {
                (true, 3) => s_tile::<T, S, R, 3>(s, b, at, dst),
                (true, 2) => s_tile::<T, S, R, 2>(s, b, at, dst),
                (true, _) => s_tile::<T, S, R, 1>(s, b, at, dst),
                (false, 3) => s_tile::<T, S, 1, 3>(s, b, at, dst),
                (false, 2) => s_tile::<T, S, 1, 2>(s, b, at, dst),
                (false, _) => s_tile::<T, S, 1, 1>(s, b, at, dst),
            }
            i0 += if rows == R { R } else { 1 };
        }
        jc += width;
    }
}

/// Where sweep 3 writes: `L_q`'s gradient rows, their form, the upstream
/// weight, overwrite or add.
struct Dst<'a, T> {
    glq: &'a mut [T],
    form: (Layout, Diagonal),
    g: T,
    overwrite: bool,
}

/// Rows `i0..i0 + R` × vector columns `jc..jc + C` of `S`, then written.
#[inline(always)]
fn s_tile<T: Real, S: Simd, const R: usize, const C: usize>(
    s: S,
    b: &Bufs<'_, T, T::V<S>>,
    (i0, jc): (usize, usize),
    dst: &mut Dst<'_, T>,
) {
    let lanes = T::lanes::<S>();
    let (d, w, nj) = (b.d, b.nv * lanes, b.nj);
    let j0 = jc * lanes;
    // Xᵀ[c][j] = 0 for c > j + 1: the last column read is j0 + C·L.
    let n = (j0 + C * lanes).min(d) + 1;
    let zs: &[T] = cast_slice(&*b.x);
    let zrows: [&[T]; R] = core::array::from_fn(|r| &zs[(i0 + r) * w..][..n]);
    let mut acc = [[T::V::<S>::zeroed(); C]; R];
    for c in 0..n {
        let xt = &b.xt[c * nj + jc..][..C];
        for r in 0..R {
            let z = T::vsplat(s, zrows[r][c]);
            for cc in 0..C {
                acc[r][cc] = T::vmul_add(s, z, xt[cc], acc[r][cc]);
            }
        }
    }
    let (layout, diagonal) = dst.form;
    let (g, ow) = (dst.g, dst.overwrite);
    for (r, a) in acc.iter().enumerate() {
        let i = i0 + r;
        let sv: &[T] = cast_slice(&a[..]);
        let jend = (j0 + C * lanes).min(i + 1);
        if jend <= j0 {
            continue;
        }
        for (j, &v) in sv[..jend - j0].iter().enumerate() {
            let j = j0 + j;
            let gv = if j == i {
                match diagonal {
                    Diagonal::Log => g * (T::ONE - v * b.lqd[i]),
                    Diagonal::Plain => g * (b.inv[i] - v),
                }
            } else {
                -(g * v)
            };
            put(&mut dst.glq[layout.index(d, i, j)], gv, ow);
        }
    }
}
