//! In-register transposes of pair-major records into lanes, with the
//! architecture's shuffles (the lockstep kernel's fast gather).
//!
//! A block of `L` consecutive records of `t` scalars each (PyTorch's
//! `batch × t` layout: `L·t` contiguous scalars) becomes `t` vectors, vector
//! `j` holding value `j` of every record (`dst[j]` lane `l` = `src[l·t + j]`).
//! Generic code over pulp's [`Simd`] has no shuffles, so this module matches
//! on the dispatched level: AVX-512 (`V4`, 16 `f32` / 8 `f64` lanes) has a
//! shuffle path, every other level (AVX2, NEON, `simd128`, scalar, the
//! emulated widths) reports `false` and the caller keeps its element-by-element
//! copy. Two algorithms, picked by `t`:
//!
//! - `t < L`: the `L·t` scalars are `t` whole vectors; output `j` takes lane
//!   `l` from vector `⌊(l·t + j)/L⌋`, lane `(l·t + j) mod L`: vectors 0 and 1
//!   (which every output draws on) in one two-source permute (`vpermt2ps`),
//!   each further vector by a single-source permute with the same index
//!   vector merged under a lane mask (`vpermps` with merge masking):
//!   `t(t − 1)` shuffles for `t` outputs. For `f32` and even `t ≥ 4` a record
//!   is `t/2` 64-bit pairs: the block is two blocks of 8 records of `t/2`
//!   64-bit values, each transposed that way at 8 lanes, and each output
//!   pair then split into even and odd floats by two two-source permutes:
//!   `t²/2` shuffles (18 for `t = 6`, a `d = 3` factor, against 30 and the
//!   36 of one masked permute per source vector; `6·16` scalar stores and
//!   reloads before that).
//! - `t ≥ L`: `L × L` tiles, row `l` of a tile loaded from record `l` at column
//!   `c` (`L` unaligned loads), transposed by in-lane shuffles first
//!   (`f32`: `vunpck{l,h}ps` of row pairs, then `vunpck{l,h}pd` of those,
//!   leaving 4 × 4 blocks transposed inside each 128-bit lane; `f64`:
//!   `vunpck{l,h}pd`), then two stages of 128-bit shuffles (`vshuff32x4` /
//!   `vshuff64x2`) that move those lanes across the vectors: 64 shuffles per
//!   16 `f32` outputs (half of them in-lane), 24 per 8 `f64`. Whole tiles
//!   from column 0 store all their outputs; a last tile starts at `t − L`
//!   (overlapping the one before, its repeated columns are not stored
//!   again), so no load reads past the block. On Zen 4 (EPYC) an in-lane
//!   `zmm` shuffle costs about 2/3 of a `vpermt2ps` (measured: 0.65 and 1.0
//!   cycles per instruction, `vshuff32x4` 0.9), on Intel all of them take
//!   port 5 once, so the count, the same as the `log₂ L`-stage `vpermt2ps`
//!   network's this replaced, is what matters there.
//!
//! Both are exact copies: the outputs are bit for bit those of the element
//! copy.
//!
//! [`untranspose`] is the inverse (lanes back into records, the gradient
//! kernel's scatter): for `t < L`, record-block vector `v` lane `m` takes lane
//! `⌊(v·L + m)/t⌋` of input `(v·L + m) mod t`, again one merge-masked permute
//! per (output, input) pair that shares a lane (`t²`; for `f32` and even
//! `t ≥ 4` inputs `2j`, `2j + 1` are first interleaved into 64-bit pairs and
//! each half of the block inverted at 8 lanes: `t²/2 + t`); for `t ≥ L` the
//! same `L × L` tile network (a transpose is its own inverse), the
//! overlapping last tile told which of its lanes were written already.

use super::Simd;
use crate::real::Real;
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
use pulp::bytemuck::{Pod, try_cast};

/// The index vectors and lane masks of one transpose shape (`lanes` records
/// of `t` scalars), built at compile time (`const`). Index vectors are 16
/// `u32` (an `f64` index is a `u64`: low half the index, high half zero).
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[derive(Clone, Copy)]
struct Tab {
    /// The permute index of output `j`.
    idx: [[u32; 16]; 16],
    /// The lanes of output `j` that come from source vector `v`.
    mask: [[u16; 16]; 16],
    /// Output `j`'s two-source index over source vectors 0
    /// and 1 (the lanes of vector 1 offset by `lanes`), which every output
    /// draws on when `t ≥ 2`.
    idx2: [[u32; 16]; 16],
}

#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
impl Tab {
    /// The table of `lanes ∈ {8, 16}` records of `t < lanes` scalars.
    const fn new(t: usize, lanes: usize) -> Tab {
        let mut idx = [[0u32; 16]; 16];
        let mut mask = [[0u16; 16]; 16];
        let mut idx2 = [[0u32; 16]; 16];
        let wide = 16 / lanes;
        let mut j = 0;
        while j < t {
            let mut l = 0;
            while l < lanes {
                idx[j][l * wide] = ((l * t + j) % lanes) as u32;
                mask[j][(l * t + j) / lanes] |= 1 << l;
                let from1 = (l * t + j) / lanes == 1;
                idx2[j][l * wide] = ((l * t + j) % lanes + if from1 { lanes } else { 0 }) as u32;
                l += 1;
            }
            j += 1;
        }
        Tab { idx, mask, idx2 }
    }

    /// The table of [`untranspose`] for `t < lanes`: the permute index of
    /// output vector `v`, and the lanes of output `v` taken from input `j`.
    const fn inverse(t: usize, lanes: usize) -> Tab {
        let mut idx = [[0u32; 16]; 16];
        let mut mask = [[0u16; 16]; 16];
        let wide = 16 / lanes;
        let mut v = 0;
        while v < t {
            let mut m = 0;
            while m < lanes {
                let f = v * lanes + m;
                idx[v][m * wide] = (f / t) as u32;
                mask[v][f % t] |= 1 << m;
                m += 1;
            }
            v += 1;
        }
        Tab {
            idx,
            mask,
            idx2: [[0u32; 16]; 16],
        }
    }
}

/// The source of a transpose: `load(off)` returns the `lanes` scalars of the
/// block that start at scalar `off`. (A trait with `#[inline(always)]`
/// methods rather than a closure: a closure does not inherit the dispatched
/// level's target features, and its intrinsics would stay calls.)
#[cfg_attr(
    not(all(target_arch = "x86_64", feature = "avx512")),
    allow(dead_code, reason = "only the AVX-512 path loads")
)]
pub(crate) trait Load<V> {
    /// The vector of the block's scalars `off..off + lanes`.
    fn load(&self, off: usize) -> V;
}

/// The destination of a transpose: receives output `j`.
#[cfg_attr(
    not(all(target_arch = "x86_64", feature = "avx512")),
    allow(dead_code, reason = "only the AVX-512 path stores")
)]
pub(crate) trait Store<V> {
    /// Output `j` (called once per `j`, in increasing `j`).
    fn store(&mut self, j: usize, v: V);
}

/// Transposes one block of `lanes` records of `t` scalars: `load(off)`
/// returns the `lanes` scalars of the block that start at scalar `off`
/// (`off + lanes ≤ lanes · t`), `store(j, v)` receives output `j`. `store` is
/// called exactly once per `j < t`, in increasing `j`. Returns `false` (having
/// called neither) if the level has no shuffle path. Meant for a `t` known at
/// compile time after inlining (one copy per `t < lanes`).
#[inline(always)]
pub(crate) fn transpose<T: Real, S: Simd>(
    s: S,
    t: usize,
    load: &impl Load<T::V<S>>,
    store: &mut impl Store<T::V<S>>,
) -> bool {
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    {
        let any: &dyn core::any::Any = &s;
        if let Some(v4) = any.downcast_ref::<pulp::x86::V4>() {
            return v4::transpose::<T, S>(*v4, t, load, store);
        }
    }
    let _ = (s, t, load, store);
    false
}

/// The source of an [`untranspose`]: input vector `j` (value `j` of every
/// record).
#[cfg_attr(
    not(all(target_arch = "x86_64", feature = "avx512")),
    allow(dead_code, reason = "only the AVX-512 path reads")
)]
pub(crate) trait Get<V> {
    /// Input vector `j` (`j < t`; any order, a `j` may be asked again).
    fn get(&mut self, j: usize) -> V;
}

/// The destination of an [`untranspose`]: the block's `lanes` scalars from
/// `off`, of which the first `skip` were written already (keep them).
#[cfg_attr(
    not(all(target_arch = "x86_64", feature = "avx512")),
    allow(dead_code, reason = "only the AVX-512 path writes")
)]
pub(crate) trait Put<V> {
    /// Scalars `off + skip..off + lanes` of the block, from lanes `skip..`.
    fn put(&mut self, off: usize, v: V, skip: usize);
}

/// The inverse of [`transpose`]: `t` input vectors (`get(j)`, value `j` of
/// every record) into `lanes` consecutive records of `t` scalars, delivered
/// to `put` as whole vectors of the block (every scalar exactly once, each
/// `put` telling how many of its leading lanes were delivered before).
/// Returns `false` (having called neither) if the level has no shuffle path.
#[inline(always)]
pub(crate) fn untranspose<T: Real, S: Simd>(
    s: S,
    t: usize,
    get: &mut impl Get<T::V<S>>,
    put: &mut impl Put<T::V<S>>,
) -> bool {
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    {
        let any: &dyn core::any::Any = &s;
        if let Some(v4) = any.downcast_ref::<pulp::x86::V4>() {
            return v4::untranspose::<T, S>(*v4, t, get, put);
        }
    }
    let _ = (s, t, get, put);
    false
}

/// A same-size reinterpretation (`None` if the sizes differ, which the
/// callers rule out by the scalar's size first).
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[inline(always)]
fn cv<A: Pod, B: Pod>(a: A) -> Option<B> {
    try_cast(a).ok()
}

#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
mod v4 {
    use super::{Get, Load, Put, Store, Tab, cv};
    use crate::real::Real;
    use core::arch::x86_64::{__m512, __m512d, __m512i};
    use pulp::Simd;
    use pulp::bytemuck::{Pod, Zeroable};
    use pulp::x86::V4;

    /// One copy of the small-`t` transpose per `t`.
    macro_rules! by_t {
        ($t:expr, $f:ident, $s:expr, $load:expr, $store:expr; $($n:literal)*) => {
            match $t {
                $($n => $f::<_, $n>($s, $load, $store),)*
                _ => {}
            }
        };
    }

    /// The AVX-512 shuffle path of [`transpose`](super::transpose).
    // Outlined in unoptimized builds: there every variant inlined into a
    // kernel kept its own stack slots (no slot reuse at opt-level 0), and the
    // gradient kernel's frame passed 2 MB, a test thread's whole stack.
    #[cfg_attr(debug_assertions, inline(never))]
    #[cfg_attr(not(debug_assertions), inline(always))]
    pub(super) fn transpose<T: Real, S: Simd>(
        s: V4,
        t: usize,
        load: &impl Load<T::V<S>>,
        store: &mut impl Store<T::V<S>>,
    ) -> bool {
        let f = s.avx512f;
        if T::lanes::<S>() == 16 && core::mem::size_of::<T>() == 4 {
            // Probe the casts once; they succeed for `f32` at `V4`.
            if cv::<__m512, T::V<S>>(f._mm512_setzero_ps()).is_none() {
                return false;
            }
            f32x16(s, t, load, store);
            return true;
        }
        if T::lanes::<S>() == 8 && core::mem::size_of::<T>() == 8 {
            if cv::<__m512d, T::V<S>>(f._mm512_setzero_pd()).is_none() {
                return false;
            }
            f64x8(s, t, load, store);
            return true;
        }
        false
    }

    /// The AVX-512 shuffle path of [`untranspose`](super::untranspose).
    // Outlined in unoptimized builds: there every variant inlined into a
    // kernel kept its own stack slots (no slot reuse at opt-level 0), and the
    // gradient kernel's frame passed 2 MB, a test thread's whole stack.
    #[cfg_attr(debug_assertions, inline(never))]
    #[cfg_attr(not(debug_assertions), inline(always))]
    pub(super) fn untranspose<T: Real, S: Simd>(
        s: V4,
        t: usize,
        get: &mut impl Get<T::V<S>>,
        put: &mut impl Put<T::V<S>>,
    ) -> bool {
        let f = s.avx512f;
        if T::lanes::<S>() == 16 && core::mem::size_of::<T>() == 4 {
            if cv::<__m512, T::V<S>>(f._mm512_setzero_ps()).is_none() {
                return false;
            }
            f32x16_inv(s, t, get, put);
            return true;
        }
        if T::lanes::<S>() == 8 && core::mem::size_of::<T>() == 8 {
            if cv::<__m512d, T::V<S>>(f._mm512_setzero_pd()).is_none() {
                return false;
            }
            f64x8_inv(s, t, get, put);
            return true;
        }
        false
    }

    /// An input of the inverse, reinterpreted as the intrinsics' type.
    #[inline(always)]
    fn gt<V: Pod, W: Pod + Zeroable>(get: &mut impl Get<V>, j: usize) -> W {
        cv(get.get(j)).unwrap_or(W::zeroed())
    }

    /// An output of the inverse, reinterpreted from the intrinsics' type.
    #[inline(always)]
    fn pt<V: Pod, W: Pod>(put: &mut impl Put<V>, off: usize, w: W, skip: usize) {
        if let Some(v) = cv(w) {
            put.put(off, v, skip);
        }
    }

    /// The `L × L` transpose network on 16 `f32` rows: two stages of
    /// in-lane shuffles (`vunpck{l,h}ps`, then `vunpck{l,h}pd` on the
    /// pairs) leave, in 128-bit lane `q` of vector `4g + c`, rows
    /// `4g..4g + 4` of column `4q + c`; two stages of 128-bit shuffles
    /// (`vshuff32x4`) then transpose those lanes across the vectors
    /// `c, 4 + c, 8 + c, 12 + c`. 64 shuffles as the `vpermt2ps` network's,
    /// half of them in-lane (cheaper on Zen 4, the same port on Intel), and
    /// no index vectors.
    #[inline(always)]
    fn net_f32(s: V4, r: &mut [__m512; 16]) {
        let f = s.avx512f;
        let mut u = [f._mm512_setzero_ps(); 16];
        for g in 0..4 {
            let x = &r[4 * g..4 * g + 4];
            let (a, b) = (x[0], x[1]);
            let (c, d) = (x[2], x[3]);
            let t0 = f._mm512_castps_pd(f._mm512_unpacklo_ps(a, b));
            let t1 = f._mm512_castps_pd(f._mm512_unpackhi_ps(a, b));
            let t2 = f._mm512_castps_pd(f._mm512_unpacklo_ps(c, d));
            let t3 = f._mm512_castps_pd(f._mm512_unpackhi_ps(c, d));
            u[4 * g] = f._mm512_castpd_ps(f._mm512_unpacklo_pd(t0, t2));
            u[4 * g + 1] = f._mm512_castpd_ps(f._mm512_unpackhi_pd(t0, t2));
            u[4 * g + 2] = f._mm512_castpd_ps(f._mm512_unpacklo_pd(t1, t3));
            u[4 * g + 3] = f._mm512_castpd_ps(f._mm512_unpackhi_pd(t1, t3));
        }
        for c in 0..4 {
            let v0 = f._mm512_shuffle_f32x4::<0x44>(u[c], u[4 + c]);
            let v1 = f._mm512_shuffle_f32x4::<0xee>(u[c], u[4 + c]);
            let v2 = f._mm512_shuffle_f32x4::<0x44>(u[8 + c], u[12 + c]);
            let v3 = f._mm512_shuffle_f32x4::<0xee>(u[8 + c], u[12 + c]);
            r[c] = f._mm512_shuffle_f32x4::<0x88>(v0, v2);
            r[4 + c] = f._mm512_shuffle_f32x4::<0xdd>(v0, v2);
            r[8 + c] = f._mm512_shuffle_f32x4::<0x88>(v1, v3);
            r[12 + c] = f._mm512_shuffle_f32x4::<0xdd>(v1, v3);
        }
    }

    /// The `L × L` transpose network on 8 `f64` rows: one stage of in-lane
    /// shuffles (`vunpck{l,h}pd`) leaves, in 128-bit lane `q` of vector
    /// `2g + c`, rows `2g, 2g + 1` of column `2q + c`; two stages of 128-bit
    /// shuffles (`vshuff64x2`) transpose those lanes across the vectors
    /// `c, 2 + c, 4 + c, 6 + c`. 24 shuffles, as the `vpermt2pd` network's.
    #[inline(always)]
    fn net_f64(s: V4, r: &mut [__m512d; 8]) {
        let f = s.avx512f;
        let mut u = [f._mm512_setzero_pd(); 8];
        for g in 0..4 {
            u[2 * g] = f._mm512_unpacklo_pd(r[2 * g], r[2 * g + 1]);
            u[2 * g + 1] = f._mm512_unpackhi_pd(r[2 * g], r[2 * g + 1]);
        }
        for c in 0..2 {
            let v0 = f._mm512_shuffle_f64x2::<0x44>(u[c], u[2 + c]);
            let v1 = f._mm512_shuffle_f64x2::<0xee>(u[c], u[2 + c]);
            let v2 = f._mm512_shuffle_f64x2::<0x44>(u[4 + c], u[6 + c]);
            let v3 = f._mm512_shuffle_f64x2::<0xee>(u[4 + c], u[6 + c]);
            r[c] = f._mm512_shuffle_f64x2::<0x88>(v0, v2);
            r[2 + c] = f._mm512_shuffle_f64x2::<0xdd>(v0, v2);
            r[4 + c] = f._mm512_shuffle_f64x2::<0x88>(v1, v3);
            r[6 + c] = f._mm512_shuffle_f64x2::<0xdd>(v1, v3);
        }
    }

    /// The inverse on 16 `f32` lanes.
    #[inline(always)]
    fn f32x16_inv<V: Pod>(s: V4, t: usize, get: &mut impl Get<V>, put: &mut impl Put<V>) {
        const L: usize = 16;
        if t < L {
            if t >= 4 && t.is_multiple_of(2) {
                by_t!(t, even_f32_inv, s, get, put; 4 6 8 10 12 14);
            } else {
                by_t!(t, small_f32_inv, s, get, put; 1 2 3 5 7 9 11 13 15);
            }
            return;
        }
        // Whole tiles from column 0, then the one at `t − L` (its first
        // `c0 − (t − L)` columns delivered already).
        let mut c0 = 0;
        while c0 + L <= t {
            let mut r = [s.avx512f._mm512_setzero_ps(); L];
            for (i, x) in r.iter_mut().enumerate() {
                *x = gt(get, c0 + i);
            }
            net_f32(s, &mut r);
            for (l, x) in r.iter().enumerate() {
                pt(put, l * t + c0, *x, 0);
            }
            c0 += L;
        }
        if c0 < t {
            let c1 = t - L;
            let mut r = [s.avx512f._mm512_setzero_ps(); L];
            for (i, x) in r.iter_mut().enumerate() {
                *x = gt(get, c1 + i);
            }
            net_f32(s, &mut r);
            for (l, x) in r.iter().enumerate() {
                pt(put, l * t + c1, *x, c0 - c1);
            }
        }
    }

    /// The inverse of `t = N < 16` `f32` records.
    #[inline(always)]
    fn small_f32_inv<V: Pod, const N: usize>(s: V4, get: &mut impl Get<V>, put: &mut impl Put<V>) {
        let f = s.avx512f;
        let tab = const { &Tab::inverse(N, 16) };
        let mut src = [f._mm512_setzero_ps(); N];
        for (j, x) in src.iter_mut().enumerate() {
            *x = gt(get, j);
        }
        for v in 0..N {
            let ix = pulp::cast(tab.idx[v]);
            let mut acc = f._mm512_setzero_ps();
            for (j, x) in src.iter().enumerate() {
                let k = tab.mask[v][j];
                if k != 0 {
                    acc = f._mm512_mask_permutexvar_ps(acc, k, ix, *x);
                }
            }
            pt(put, v * 16, acc, 0);
        }
    }

    /// The inverse of [`even_f32`]: `t = N` even, `4 ≤ N < 16`. Inputs
    /// `2j` and `2j + 1` interleave into the `(2j, 2j + 1)` 64-bit pairs of
    /// records 0–7 and of records 8–15 (two two-source permutes); each half
    /// is then the `f64` inverse of `N / 2` pairs at 8 lanes (one
    /// merge-masked permute per (output, input) pair that shares a lane).
    /// `N²/2 + N` shuffles against `N²` for [`small_f32_inv`] (60 against
    /// 100 for `N = 10`, a `d = 4` factor).
    #[inline(always)]
    fn even_f32_inv<V: Pod, const N: usize>(s: V4, get: &mut impl Get<V>, put: &mut impl Put<V>) {
        const PAIR: [[u32; 16]; 2] = {
            let mut e = [[0u32; 16]; 2];
            let mut m = 0;
            while m < 8 {
                e[0][2 * m] = m as u32;
                e[0][2 * m + 1] = 16 + m as u32;
                e[1][2 * m] = 8 + m as u32;
                e[1][2 * m + 1] = 24 + m as u32;
                m += 1;
            }
            e
        };
        let f = s.avx512f;
        let u = N / 2;
        let tab = const { &Tab::inverse(N / 2, 8) };
        let (lo, hi) = (pulp::cast(PAIR[0]), pulp::cast(PAIR[1]));
        let mut mid = [[f._mm512_setzero_pd(); 8]; 2];
        for j in 0..u {
            let (a, b): (__m512, __m512) = (gt(get, 2 * j), gt(get, 2 * j + 1));
            mid[0][j] = f._mm512_castps_pd(f._mm512_permutex2var_ps(a, lo, b));
            mid[1][j] = f._mm512_castps_pd(f._mm512_permutex2var_ps(a, hi, b));
        }
        for (b, src) in mid.iter().enumerate() {
            for v in 0..u {
                let ix = pulp::cast(tab.idx[v]);
                let mut acc = f._mm512_setzero_pd();
                for (j, x) in src.iter().enumerate().take(u) {
                    let k = tab.mask[v][j] as u8;
                    if k != 0 {
                        acc = f._mm512_mask_permutexvar_pd(acc, k, ix, *x);
                    }
                }
                pt(put, b * 8 * N + v * 16, f._mm512_castpd_ps(acc), 0);
            }
        }
    }

    /// The inverse on 8 `f64` lanes.
    #[inline(always)]
    fn f64x8_inv<V: Pod>(s: V4, t: usize, get: &mut impl Get<V>, put: &mut impl Put<V>) {
        const L: usize = 8;
        if t < L {
            by_t!(t, small_f64_inv, s, get, put; 1 2 3 4 5 6 7);
            return;
        }
        // Whole tiles from column 0, then the one at `t − L` (its first
        // `c0 − (t − L)` columns delivered already).
        let mut c0 = 0;
        while c0 + L <= t {
            let mut r = [s.avx512f._mm512_setzero_pd(); L];
            for (i, x) in r.iter_mut().enumerate() {
                *x = gt(get, c0 + i);
            }
            net_f64(s, &mut r);
            for (l, x) in r.iter().enumerate() {
                pt(put, l * t + c0, *x, 0);
            }
            c0 += L;
        }
        if c0 < t {
            let c1 = t - L;
            let mut r = [s.avx512f._mm512_setzero_pd(); L];
            for (i, x) in r.iter_mut().enumerate() {
                *x = gt(get, c1 + i);
            }
            net_f64(s, &mut r);
            for (l, x) in r.iter().enumerate() {
                pt(put, l * t + c1, *x, c0 - c1);
            }
        }
    }

    /// The inverse of `t = N < 8` `f64` records.
    #[inline(always)]
    fn small_f64_inv<V: Pod, const N: usize>(s: V4, get: &mut impl Get<V>, put: &mut impl Put<V>) {
        let f = s.avx512f;
        let tab = const { &Tab::inverse(N, 8) };
        let mut src = [f._mm512_setzero_pd(); N];
        for (j, x) in src.iter_mut().enumerate() {
            *x = gt(get, j);
        }
        for v in 0..N {
            let ix = pulp::cast(tab.idx[v]);
            let mut acc = f._mm512_setzero_pd();
            for (j, x) in src.iter().enumerate() {
                let k = tab.mask[v][j] as u8;
                if k != 0 {
                    acc = f._mm512_mask_permutexvar_pd(acc, k, ix, *x);
                }
            }
            pt(put, v * 8, acc, 0);
        }
    }

    /// A load, reinterpreted as the intrinsics' type.
    #[inline(always)]
    fn ld<V: Pod, W: Pod + Zeroable>(load: &impl Load<V>, off: usize) -> W {
        cv(load.load(off)).unwrap_or(W::zeroed())
    }

    /// A store, reinterpreted from the intrinsics' type.
    #[inline(always)]
    fn st<V: Pod, W: Pod>(store: &mut impl Store<V>, j: usize, w: W) {
        if let Some(v) = cv(w) {
            store.store(j, v);
        }
    }

    /// 16 `f32` lanes.
    #[inline(always)]
    fn f32x16<V: Pod>(s: V4, t: usize, load: &impl Load<V>, store: &mut impl Store<V>) {
        const L: usize = 16;
        if t < L {
            if t >= 4 && t.is_multiple_of(2) {
                by_t!(t, even_f32, s, load, store; 4 6 8 10 12 14);
            } else {
                by_t!(t, small_f32, s, load, store; 1 2 3 5 7 9 11 13 15);
            }
            return;
        }
        // Whole tiles from column 0 (every output stored, no test), then
        // the one at `t − L`, storing only the outputs from `c0`.
        let mut c0 = 0;
        while c0 + L <= t {
            let mut r = [s.avx512f._mm512_setzero_ps(); L];
            for (l, x) in r.iter_mut().enumerate() {
                *x = ld(load, l * t + c0);
            }
            net_f32(s, &mut r);
            for (i, x) in r.iter().enumerate() {
                st(store, c0 + i, *x);
            }
            c0 += L;
        }
        if c0 < t {
            let c1 = t - L;
            let mut r = [s.avx512f._mm512_setzero_ps(); L];
            for (l, x) in r.iter_mut().enumerate() {
                *x = ld(load, l * t + c1);
            }
            net_f32(s, &mut r);
            for (i, x) in r.iter().enumerate().skip(c0 - c1) {
                st(store, c1 + i, *x);
            }
        }
    }

    /// One output of a short-record transpose, 16 `f32` lanes: sources 0
    /// and 1 by one two-source permute (`ix2`), each further source `v`
    /// merged under `mask[v]` by a single-source permute with `ix`.
    #[inline(always)]
    fn merge_ps(s: V4, src: &[__m512], (ix, ix2): (__m512i, __m512i), mask: &[u16]) -> __m512 {
        let f = s.avx512f;
        let mut acc = if src.len() >= 2 {
            f._mm512_permutex2var_ps(src[0], ix2, src[1])
        } else {
            f._mm512_permutexvar_ps(ix, src[0])
        };
        for (v, x) in src.iter().enumerate().skip(2) {
            if mask[v] != 0 {
                acc = f._mm512_mask_permutexvar_ps(acc, mask[v], ix, *x);
            }
        }
        acc
    }

    /// [`merge_ps`] at 8 `f64` lanes (the low 8 bits of each mask).
    #[inline(always)]
    fn merge_pd(s: V4, src: &[__m512d], (ix, ix2): (__m512i, __m512i), mask: &[u16]) -> __m512d {
        let f = s.avx512f;
        let mut acc = if src.len() >= 2 {
            f._mm512_permutex2var_pd(src[0], ix2, src[1])
        } else {
            f._mm512_permutexvar_pd(ix, src[0])
        };
        for (v, x) in src.iter().enumerate().skip(2) {
            let k = mask[v] as u8;
            if k != 0 {
                acc = f._mm512_mask_permutexvar_pd(acc, k, ix, *x);
            }
        }
        acc
    }

    /// `t = N < 16` `f32` records: vectors 0 and 1 by one two-source
    /// permute, one merge-masked permute per further source vector.
    #[inline(always)]
    fn small_f32<V: Pod, const N: usize>(s: V4, load: &impl Load<V>, store: &mut impl Store<V>) {
        let f = s.avx512f;
        let tab = const { &Tab::new(N, 16) };
        let mut src = [f._mm512_setzero_ps(); N];
        for (v, x) in src.iter_mut().enumerate() {
            *x = ld(load, v * 16);
        }
        for j in 0..N {
            let ix = (pulp::cast(tab.idx[j]), pulp::cast(tab.idx2[j]));
            st(store, j, merge_ps(s, &src, ix, &tab.mask[j]));
        }
    }

    /// `t = N` even, `4 ≤ N < 16`, `f32` records: a record of `N` floats is
    /// `N / 2` 64-bit pairs, so the 16 records are two blocks of 8 records
    /// of `N / 2` 64-bit values, each transposed as [`small_f64`] does;
    /// output pair `j` of both blocks is then split into outputs `2j` and
    /// `2j + 1` by two two-source permutes (even and odd floats). `N²/2`
    /// shuffles against `N(N − 1)` for [`small_f32`] (18 against 30 for
    /// `N = 6`, a `d = 3` factor).
    #[inline(always)]
    fn even_f32<V: Pod, const N: usize>(s: V4, load: &impl Load<V>, store: &mut impl Store<V>) {
        const EVEN: [u32; 16] = {
            let mut e = [0u32; 16];
            let mut r = 0;
            while r < 16 {
                e[r] = 2 * r as u32;
                r += 1;
            }
            e
        };
        let f = s.avx512f;
        let u = N / 2;
        let tab = const { &Tab::new(N / 2, 8) };
        let mut src = [f._mm512_setzero_pd(); 16];
        for (v, x) in src.iter_mut().enumerate().take(N) {
            *x = f._mm512_castps_pd(ld::<_, __m512>(load, v * 16));
        }
        let mut mid = [[f._mm512_setzero_pd(); 8]; 2];
        for (b, out) in mid.iter_mut().enumerate() {
            let blk = &src[b * u..b * u + u];
            for (j, o) in out.iter_mut().enumerate().take(u) {
                let ix = (pulp::cast(tab.idx[j]), pulp::cast(tab.idx2[j]));
                *o = merge_pd(s, blk, ix, &tab.mask[j]);
            }
        }
        let even = pulp::cast(EVEN);
        let odd = f._mm512_add_epi32(even, f._mm512_set1_epi32(1));
        for j in 0..u {
            let lo = f._mm512_castpd_ps(mid[0][j]);
            let hi = f._mm512_castpd_ps(mid[1][j]);
            st(store, 2 * j, f._mm512_permutex2var_ps(lo, even, hi));
            st(store, 2 * j + 1, f._mm512_permutex2var_ps(lo, odd, hi));
        }
    }

    /// 8 `f64` lanes.
    #[inline(always)]
    fn f64x8<V: Pod>(s: V4, t: usize, load: &impl Load<V>, store: &mut impl Store<V>) {
        const L: usize = 8;
        if t < L {
            if t == 4 || t == 6 {
                by_t!(t, even_f64, s, load, store; 4 6);
            } else {
                by_t!(t, small_f64, s, load, store; 1 2 3 5 7);
            }
            return;
        }
        // Whole tiles from column 0 (every output stored, no test), then
        // the one at `t − L`, storing only the outputs from `c0`.
        let mut c0 = 0;
        while c0 + L <= t {
            let mut r = [s.avx512f._mm512_setzero_pd(); L];
            for (l, x) in r.iter_mut().enumerate() {
                *x = ld(load, l * t + c0);
            }
            net_f64(s, &mut r);
            for (i, x) in r.iter().enumerate() {
                st(store, c0 + i, *x);
            }
            c0 += L;
        }
        if c0 < t {
            let c1 = t - L;
            let mut r = [s.avx512f._mm512_setzero_pd(); L];
            for (l, x) in r.iter_mut().enumerate() {
                *x = ld(load, l * t + c1);
            }
            net_f64(s, &mut r);
            for (i, x) in r.iter().enumerate().skip(c0 - c1) {
                st(store, c1 + i, *x);
            }
        }
    }

    /// The tables of [`even_f64`] for `u` 128-bit fields at 4 lanes: for
    /// output field `j`, the `f64` permute index over one source vector
    /// (`idx`), over source vectors 0 and 1 (`idx2`), and the `f64` lanes
    /// taken from source vector `v` (`mask[j][v]`).
    #[allow(clippy::type_complexity)]
    const fn pair_tab(u: usize) -> ([[u64; 8]; 8], [[u64; 8]; 8], [[u16; 8]; 8]) {
        let mut idx = [[0u64; 8]; 8];
        let mut idx2 = [[0u64; 8]; 8];
        let mut mask = [[0u16; 8]; 8];
        let mut j = 0;
        while j < u {
            let mut l = 0;
            while l < 4 {
                let e = l * u + j;
                let (v, w) = (e / 4, e % 4);
                let mut h = 0;
                while h < 2 {
                    let lane = 2 * l + h;
                    idx[j][lane] = (2 * w + h) as u64;
                    idx2[j][lane] = (2 * w + h + if v == 1 { 8 } else { 0 }) as u64;
                    mask[j][v] |= 1 << lane;
                    h += 1;
                }
                l += 1;
            }
            j += 1;
        }
        (idx, idx2, mask)
    }

    /// `t = N ∈ {4, 6}` `f64` records: a record is `N / 2` 128-bit pairs of
    /// `f64`, so the 8 records are two blocks of 4 records of `N / 2`
    /// 128-bit values, each transposed at 4 lanes (a two-source permute of
    /// vectors 0 and 1, a merge-masked one for vector 2), each output pair
    /// then split into outputs `2j`, `2j + 1` by two two-source permutes
    /// (even and odd `f64`): 8 and 18 shuffles against 12 and 30 for
    /// [`small_f64`].
    #[inline(always)]
    fn even_f64<V: Pod, const N: usize>(s: V4, load: &impl Load<V>, store: &mut impl Store<V>) {
        let f = s.avx512f;
        let u = N / 2;
        let (idx, idx2, mask) = const { pair_tab(N / 2) };
        let mut src = [f._mm512_setzero_pd(); 8];
        for (v, x) in src.iter_mut().enumerate().take(N) {
            *x = ld(load, v * 8);
        }
        let mut mid = [[f._mm512_setzero_pd(); 4]; 2];
        for (b, out) in mid.iter_mut().enumerate() {
            let blk = &src[b * u..b * u + u];
            for (j, o) in out.iter_mut().enumerate().take(u) {
                let ix = (pulp::cast(idx[j]), pulp::cast(idx2[j]));
                *o = merge_pd(s, blk, ix, &mask[j]);
            }
        }
        let even: [u64; 8] = [0, 2, 4, 6, 8, 10, 12, 14];
        let odd: [u64; 8] = [1, 3, 5, 7, 9, 11, 13, 15];
        let (even, odd) = (pulp::cast(even), pulp::cast(odd));
        for j in 0..u {
            st(
                store,
                2 * j,
                f._mm512_permutex2var_pd(mid[0][j], even, mid[1][j]),
            );
            st(
                store,
                2 * j + 1,
                f._mm512_permutex2var_pd(mid[0][j], odd, mid[1][j]),
            );
        }
    }

    /// `t = N < 8` `f64` records: vectors 0 and 1 by one two-source
    /// permute, one merge-masked permute per further source vector.
    #[inline(always)]
    fn small_f64<V: Pod, const N: usize>(s: V4, load: &impl Load<V>, store: &mut impl Store<V>) {
        let f = s.avx512f;
        let tab = const { &Tab::new(N, 8) };
        let mut src = [f._mm512_setzero_pd(); N];
        for (v, x) in src.iter_mut().enumerate() {
            *x = ld(load, v * 8);
        }
        for j in 0..N {
            let ix = (pulp::cast(tab.idx[j]), pulp::cast(tab.idx2[j]));
            st(store, j, merge_pd(s, &src, ix, &tab.mask[j]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Get, Load, Put, Store, transpose, untranspose};
    use crate::real::Real;
    use crate::simd::{Level, Simd};
    use pulp::WithSimd;
    use pulp::bytemuck::cast_slice;
    use std::vec;
    use std::vec::Vec;

    /// Transposes `lanes` records of `t` distinct values at `level`; returns
    /// whether the shuffle path ran and whether every output lane is right.
    struct Check<T>(usize, core::marker::PhantomData<T>);
    impl<T: Real> WithSimd for Check<T> {
        type Output = (bool, bool);
        fn with_simd<S: Simd>(self, s: S) -> (bool, bool) {
            let (t, lanes) = (self.0, T::lanes::<S>());
            let src: Vec<T> = (0..t * lanes).map(T::from_usize).collect();
            struct Src<'a, T, S>(&'a [T], usize, core::marker::PhantomData<S>);
            impl<T: Real, S: Simd> Load<T::V<S>> for Src<'_, T, S> {
                fn load(&self, off: usize) -> T::V<S> {
                    T::as_simd::<S>(&self.0[off..off + self.1])[0]
                }
            }
            struct Dst<T>(Vec<Option<Vec<T>>>, Vec<usize>);
            impl<T: Real, V: pulp::bytemuck::Pod> Store<V> for Dst<T> {
                fn store(&mut self, j: usize, v: V) {
                    self.1.push(j);
                    self.0[j] = Some(cast_slice::<V, T>(&[v]).to_vec());
                }
            }
            let mut dst = Dst::<T>(vec![None; t], Vec::new());
            let src_ld = Src::<T, S>(&src, lanes, core::marker::PhantomData);
            let hit = transpose::<T, S>(s, t, &src_ld, &mut dst);
            let (got, order) = (dst.0, dst.1);
            let ok = (0..t).all(|j| {
                got[j]
                    .as_ref()
                    .is_some_and(|v| (0..lanes).all(|l| v[l] == src[l * t + j]))
            }) && order == (0..t).collect::<Vec<_>>();
            // The inverse: input j holds value j of every record; every
            // scalar of the block must be delivered exactly once, right.
            struct Ins<'a, T, S>(&'a [T], usize, core::marker::PhantomData<S>);
            impl<T: Real, S: Simd> Get<T::V<S>> for Ins<'_, T, S> {
                fn get(&mut self, j: usize) -> T::V<S> {
                    T::as_simd::<S>(&self.0[j * self.1..(j + 1) * self.1])[0]
                }
            }
            struct Out<T>(Vec<T>, Vec<usize>);
            impl<T: Real, V: pulp::bytemuck::Pod> Put<V> for Out<T> {
                fn put(&mut self, off: usize, v: V, skip: usize) {
                    let v = cast_slice::<V, T>(&[v]).to_vec();
                    for (m, x) in v.iter().enumerate().skip(skip) {
                        if let Some(o) = self.0.get_mut(off + m) {
                            *o = *x;
                            self.1[off + m] += 1;
                        } else {
                            self.1.push(usize::MAX); // out of the block
                        }
                    }
                }
            }
            let lane_major: Vec<T> = (0..t * lanes)
                .map(|f| src[(f % lanes) * t + f / lanes])
                .collect();
            let mut ins = Ins::<T, S>(&lane_major, lanes, core::marker::PhantomData);
            let mut out = Out(vec![T::ZERO; t * lanes], vec![0; t * lanes]);
            let hit_inv = untranspose::<T, S>(s, t, &mut ins, &mut out);
            let ok_inv = out.0 == src && out.1.iter().all(|&c| c == 1);
            (hit && hit_inv, (ok && ok_inv) || (!hit && !hit_inv))
        }
    }

    fn every_t<T: Real>() {
        for level in [Level::Avx512, Level::Avx2, Level::Scalar] {
            for t in 1..=160 {
                let Some((hit, ok)) = level.dispatch(Check::<T>(t, core::marker::PhantomData))
                else {
                    continue;
                };
                assert!(ok, "{level:?} t={t}");
                // The shuffle path exists at AVX-512 only (for now).
                assert_eq!(hit, level == Level::Avx512, "{level:?} t={t}");
            }
        }
    }

    #[test]
    fn transposes_and_inverts_every_t_exactly_f32() {
        every_t::<f32>();
    }

    #[test]
    fn transposes_and_inverts_every_t_exactly_f64() {
        every_t::<f64>();
    }
}
