//! Diagonal agreement: every way the crate computes `KL(Q‖D)` and the Eq. 10
//! score of diagonal Gaussians agrees with every other and with an f64
//! reference, and top-k retrieval returns exactly the full sort.
//!
//! Input: `nq, nd ∈ 0..=16` queries and documents in `k ∈ 0..=64`
//! dimensions, each batch given by variances or log-variances (chosen per
//! batch, so mixed scales occur), some documents exact copies of earlier ones
//! (ties); means `m/128 · 2^e` (`e ∈ −4..=4`), variances `(b+1)/32 · 2^e`
//! (`e ∈ −4..=4`), log-variances `m/128 · 2^e` (`e ∈ −2..=3`, `|·| ≤ 8`):
//! exact in f32 and f64, so each case runs in both precisions.
//!
//! Reference, per pair, in f64 from the exact inputs, with the terms
//! `ℓ_Dp = log σ²_Dp`, `ℓ_Qp = log σ²_Qp`, `rₚ = (σ²_Qp + (μ_Qp − μ_Dp)²)/σ²_Dp`:
//! `KL = ½(Σℓ_D − Σℓ_Q + Σr − k)`, `eq10 = −(Σℓ_D + Σr)`, and the magnitude
//! `A = Σ|ℓ_D| + Σ|ℓ_Q| + Σr + k`.
//!
//! Checks, for `T` ∈ {f32, f64}, `eps = eps_T`, and the reference's own
//! error counted as the same bound with `eps_f64`:
//! - bit-identical: `kl_all_pairs` / `eq10_all_pairs` entries and the
//!   single-pair `kl` / `eq10` (any scales), and the values `kl_grad` /
//!   `eq10_grad` return; `search::scores` at the default `Exec`, at an
//!   available `Level` (one drawn per case) and with `Par::Rayon(2)`;
//!   `search::top_k` hits for the same three policies and the first
//!   `min(top, nd)` of a full sort of `scores` (larger Eq. 10 / smaller KL
//!   first, ties by smaller index).
//! - `kl_std_normal` of each query against `½ Σ(μ² + σ² − 1 − ℓ)` in f64,
//!   `|v − ref| ≤ 4 (k + 4) eps · (Σ μ² + Σ σ² + k + Σ|ℓ|)`.
//! - direct sums (`kl_all_pairs`, `eq10_all_pairs`, and the identity
//!   `KL = ½(−eq10 − k − Σℓ_Q)` applied to `pairwise_eq10`):
//!   `|v − ref| ≤ 4 (k + 4) eps · A`: at most three roundings per term
//!   (difference, square-add, division; or one `exp`/`ln` within 1 ulp), a
//!   recursive sum of `k` terms (`(k − 1) eps Σ|terms|` to first order), and
//!   the final combination; the factor 4 covers the rest.
//! - full-rank on `L = diag(σ)` (up to four pairs per case; `σ = √σ²` as a plain diagonal, or
//!   `log σ = ½ log σ²` as a log diagonal, packed; and a dense `MatRef` when
//!   both are variances; `full::kl`): the full-rank bound `8 (k+1)^{3/2} eps κ_S S`
//!   with `κ_S(diag) = 1` and `S = ‖y‖² + ‖M‖²_F + 2Σ|log σ| + k = A`.
//! - dot products (`query_vectors · doc_vectors` for all four `Rep`s, summed
//!   in `T`; `kl_from_dot` for the `…Kl` ones; `search::scores`, both metrics):
//!   `|v − ref| ≤ 4 (n + 4) eps · P`, `n` the vector length, `P = Σ|ℓ_D| +
//!   Σ μ²_D/σ²_D + Σ|ℓ_Q| + Σ(σ²_Q + μ²_Q + 2|μ_Q μ_D|)/σ²_D + k ≥ Σ|qᵢ dᵢ| + k`:
//!   each entry is within two roundings, a recursive (or fused) dot product
//!   of `n` terms errs by at most `n eps Σ|qᵢ dᵢ|`. The error is absolute,
//!   about the cancelling terms, as the `diag::Rep` docs say.
//! - ranking against the exact values: for every query, each hit is no
//!   worse than any document ranked after it, up to the two documents'
//!   tolerances (`ref_h + tol_h ≥ ref_j − tol_j` for Eq. 10).
#![no_main]

use arbitrary::{Result, Unstructured};
use gaussian_kl::diag::{self, Rep};
use gaussian_kl::search::{self, DocIndex, Hits, Metric};
use gaussian_kl::simd::Level;
use gaussian_kl::{
    DiagGaussian, DiagGaussians, DiagGradMut, Diagonal, Error, Exec, Gaussian, Grads, Layout,
    MatRef, PackedTril, Par, Real, Scale, full,
};
use gaussian_kl_fuzz::{assert_same, scaled};
use libfuzzer_sys::fuzz_target;

const REPS: [Rep; 4] = [Rep::Wide, Rep::WideKl, Rep::Compact, Rep::CompactKl];

/// The search functions take the crate-internal element trait (`f32`,
/// `f64`); the generic checks reach them through this one.
trait Elem: Real {
    fn top_k(
        index: &DocIndex<Self>,
        q: &DiagGaussians<'_, Self>,
        k: usize,
        metric: Metric,
        exec: &Exec,
    ) -> Result<Hits<Self>, Error>;
    fn scores(
        index: &DocIndex<Self>,
        q: &DiagGaussians<'_, Self>,
        metric: Metric,
        out: &mut [Self],
        exec: &Exec,
    ) -> Result<(), Error>;
    fn index(docs: &DiagGaussians<'_, Self>) -> Result<DocIndex<Self>, Error>;
}

macro_rules! elem {
    ($t:ty) => {
        impl Elem for $t {
            fn top_k(
                index: &DocIndex<$t>,
                q: &DiagGaussians<'_, $t>,
                k: usize,
                metric: Metric,
                exec: &Exec,
            ) -> Result<Hits<$t>, Error> {
                search::top_k(index, q, k, metric, exec)
            }
            fn scores(
                index: &DocIndex<$t>,
                q: &DiagGaussians<'_, $t>,
                metric: Metric,
                out: &mut [$t],
                exec: &Exec,
            ) -> Result<(), Error> {
                search::scores(index, q, metric, out, exec)
            }
            fn index(docs: &DiagGaussians<'_, $t>) -> Result<DocIndex<$t>, Error> {
                DocIndex::new(docs)
            }
        }
    };
}
elem!(f32);
elem!(f64);

/// The view of `n × k` means and spreads in `scale`.
fn view<'a, T: Real>(
    n: usize,
    k: usize,
    m: &'a [T],
    s: &'a [T],
    scale: Scale,
) -> DiagGaussians<'a, T> {
    match scale {
        Scale::Var => DiagGaussians::var(n, k, m, s),
        Scale::LogVar => DiagGaussians::log_var(n, k, m, s),
    }
    .expect("well-formed case")
}

/// One batch of diagonal Gaussians, exact in f32 and f64.
#[derive(Debug)]
struct Batch {
    n: usize,
    mean: Vec<f64>,
    spread: Vec<f64>,
    scale: Scale,
}

impl Batch {
    fn generate(u: &mut Unstructured<'_>, n: usize, k: usize, dups: bool) -> Result<Batch> {
        let scale = if u.arbitrary()? {
            Scale::LogVar
        } else {
            Scale::Var
        };
        let e_mean = u.int_in_range(-4..=4i32)?;
        let e_spread = match scale {
            Scale::Var => u.int_in_range(-4..=4i32)?,
            Scale::LogVar => u.int_in_range(-2..=3i32)?,
        };
        let (mut mean, mut spread) = (Vec::with_capacity(n * k), Vec::with_capacity(n * k));
        for i in 0..n {
            if dups && i > 0 && u.ratio(1, 6)? {
                // An exact copy of an earlier row: a tie.
                let src = u.int_in_range(0..=i - 1)?;
                mean.extend_from_within(src * k..(src + 1) * k);
                spread.extend_from_within(src * k..(src + 1) * k);
                continue;
            }
            for _ in 0..k {
                mean.push(scaled(u, e_mean)?);
                spread.push(match scale {
                    Scale::Var => {
                        (f64::from(u.arbitrary::<u8>()?) + 1.0) / 32.0 * 2f64.powi(e_spread)
                    }
                    Scale::LogVar => scaled(u, e_spread)?,
                });
            }
        }
        Ok(Batch {
            n,
            mean,
            spread,
            scale,
        })
    }

    fn var(&self, at: usize) -> f64 {
        match self.scale {
            Scale::Var => self.spread[at],
            Scale::LogVar => self.spread[at].exp(),
        }
    }

    fn log_var(&self, at: usize) -> f64 {
        match self.scale {
            Scale::Var => self.spread[at].ln(),
            Scale::LogVar => self.spread[at],
        }
    }
}

/// The f64 reference of one pair and its error magnitudes.
#[derive(Clone, Copy, Debug)]
struct Ref {
    kl: f64,
    eq10: f64,
    /// `Σℓ_Q`.
    log_det_q: f64,
    /// `A`: magnitude of the direct sums.
    a: f64,
    /// `P`: magnitude of the dot products.
    p: f64,
}

fn reference(k: usize, q: &Batch, i: usize, d: &Batch, j: usize) -> Ref {
    let (mut ld, mut lq, mut r) = (0.0, 0.0, 0.0);
    let (mut abs_ld, mut abs_lq, mut dot_extra) = (0.0f64, 0.0f64, 0.0);
    for p in 0..k {
        let (a, b) = (i * k + p, j * k + p);
        let (mq, md) = (q.mean[a], d.mean[b]);
        let (vq, vd) = (q.var(a), d.var(b));
        let (lqp, ldp) = (q.log_var(a), d.log_var(b));
        let delta = mq - md;
        ld += ldp;
        lq += lqp;
        r += (vq + delta * delta) / vd;
        abs_ld += ldp.abs();
        abs_lq += lqp.abs();
        dot_extra += (md * md + vq + mq * mq + 2.0 * (mq * md).abs()) / vd;
    }
    let kf = k as f64;
    Ref {
        kl: 0.5 * ((ld - lq) + r - kf),
        eq10: -(ld + r),
        log_det_q: lq,
        a: abs_ld + abs_lq + r + kf,
        p: abs_ld + abs_lq + dot_extra + kf,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(case) = generate(&mut u) else {
        return;
    };
    let top = pick_top(&mut u, case.2.n).unwrap_or(1);
    // One level per case (the emulated ones are slow): all of them over a run.
    let level = *u.choose(Level::all()).unwrap_or(&Level::Scalar);
    check::<f32>(&case, top, level);
    check::<f64>(&case, top, level);
});

fn generate(u: &mut Unstructured<'_>) -> Result<(usize, Batch, Batch)> {
    let k = u.int_in_range(0..=64usize)?;
    let nq = u.int_in_range(0..=16usize)?;
    let nd = u.int_in_range(0..=16usize)?;
    let q = Batch::generate(u, nq, k, false)?;
    let d = Batch::generate(u, nd, k, true)?;
    Ok((k, q, d))
}

fn pick_top(u: &mut Unstructured<'_>, nd: usize) -> Result<usize> {
    Ok(if u.ratio(1, 8)? {
        usize::MAX
    } else {
        u.int_in_range(0..=nd + 2)?
    })
}

/// `c · (n + 4) · eps · magnitude`, the bounds of the module docs.
fn tol(n: usize, eps: f64, magnitude: f64) -> f64 {
    4.0 * (n + 4) as f64 * eps * magnitude
}

#[track_caller]
fn assert_near(got: f64, want: f64, tol: f64, what: &str) {
    let err = (got - want).abs();
    assert!(
        err <= tol,
        "{what}: got {got:e}, reference {want:e}, |error| {err:e} > tolerance {tol:e}"
    );
}

fn check<T: Elem>(case: &(usize, Batch, Batch), top: usize, level: Level) {
    let (k, q, d) = (case.0, &case.1, &case.2);
    let (nq, nd) = (q.n, d.n);
    let eps = T::EPSILON.to_f64();
    let eps64 = f64::EPSILON;
    let conv = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
    let (mq, sq, md, sd) = (
        conv(&q.mean),
        conv(&q.spread),
        conv(&d.mean),
        conv(&d.spread),
    );
    let qb = view(nq, k, &mq, &sq, q.scale);
    let db = view(nd, k, &md, &sd, d.scale);
    let refs: Vec<Ref> = (0..nq * nd)
        .map(|x| reference(k, q, x / nd.max(1), d, x % nd.max(1)))
        .collect();
    let direct = |r: &Ref| tol(k, eps, r.a) + tol(k, eps64, r.a);

    // Direct matrices, single pairs and the values the gradients return.
    let mut kl_mat = vec![T::NAN; nq * nd];
    let mut eq_mat = vec![T::NAN; nq * nd];
    diag::kl_all_pairs(&qb, &db, &mut kl_mat).expect("well-formed case");
    diag::eq10_all_pairs(&qb, &db, &mut eq_mat).expect("well-formed case");
    let mut g = [
        vec![T::NAN; k],
        vec![T::NAN; k],
        vec![T::NAN; k],
        vec![T::NAN; k],
    ];
    for i in 0..nq {
        let p = qb.get(i).expect("in range");
        for j in 0..nd {
            let x = i * nd + j;
            let dj = db.get(j).expect("in range");
            let r = &refs[x];
            assert_same(kl_mat[x], diag::kl(&p, &dj).unwrap(), "kl");
            assert_same(eq_mat[x], diag::eq10(&p, &dj).unwrap(), "eq10");
            let [a, b, c, e] = &mut g;
            let grads = Grads::new(DiagGradMut::new(a, b), DiagGradMut::new(c, e));
            let v = diag::kl_grad(&p, &dj, T::ONE, grads).unwrap();
            assert_same(kl_mat[x], v, "kl_grad value");
            let grads = Grads::new(DiagGradMut::new(a, b), DiagGradMut::new(c, e));
            let v = diag::eq10_grad(&p, &dj, T::ONE, grads).unwrap();
            assert_same(eq_mat[x], v, "eq10_grad value");
            assert_near(kl_mat[x].to_f64(), r.kl, direct(r), "kl_all_pairs");
            assert_near(eq_mat[x].to_f64(), r.eq10, direct(r), "eq10_all_pairs");
            // KL from the Eq. 10 score: ½(−eq10 − k − Σℓ_Q).
            let from_eq = 0.5 * (-eq_mat[x].to_f64() - k as f64 - r.log_det_q);
            assert_near(from_eq, r.kl, direct(r), "KL from eq10");
        }
        check_std_normal(k, q, i, &p, eps);
    }

    // Full-rank kernels on L = diag(σ).
    check_full_rank::<T>(k, q, d, &refs);
    check_reps(k, (&qb, &db), &refs, eps);
    check_search(k, (&qb, &db), &refs, (&eq_mat, direct), top, level);
}

/// `kl_std_normal` of query `i` against the f64 reference.
fn check_std_normal<T: Real>(k: usize, q: &Batch, i: usize, p: &DiagGaussian<'_, T>, eps: f64) {
    let (mut want, mut mag) = (0.0, k as f64);
    for c in i * k..(i + 1) * k {
        let (m, v, l) = (q.mean[c], q.var(c), q.log_var(c));
        want += 0.5 * (m * m + v - 1.0 - l);
        mag += m * m + v + l.abs();
    }
    let got = diag::kl_std_normal(p).unwrap().to_f64();
    let t = tol(k, eps, mag) + tol(k, f64::EPSILON, mag);
    assert_near(got, want, t, "kl_std_normal");
}

/// The dot-product representations against the reference.
fn check_reps<T: Real>(
    k: usize,
    (qb, db): (&DiagGaussians<'_, T>, &DiagGaussians<'_, T>),
    refs: &[Ref],
    eps: f64,
) {
    let (nq, nd) = (qb.len(), db.len());
    for rep in REPS {
        let len = rep.len(k);
        let mut qr = vec![T::NAN; nq * len];
        let mut dr = vec![T::NAN; nd * len];
        diag::query_vectors(rep, qb, &mut qr).expect("well-formed case");
        diag::doc_vectors(rep, db, &mut dr).expect("well-formed case");
        for i in 0..nq {
            for j in 0..nd {
                let r = &refs[i * nd + j];
                let mut dot = T::ZERO;
                for (&a, &b) in qr[i * len..(i + 1) * len]
                    .iter()
                    .zip(&dr[j * len..(j + 1) * len])
                {
                    dot += a * b;
                }
                let t = tol(len, eps, r.p) + tol(len, f64::EPSILON, r.p);
                if rep.is_kl() {
                    let v = diag::kl_from_dot(dot, k).to_f64();
                    assert_near(v, r.kl, t, &format!("kl_from_dot {rep:?}"));
                } else {
                    assert_near(dot.to_f64(), r.eq10, t, &format!("dot {rep:?}"));
                }
            }
        }
    }
}

/// The fused kernel: `DocIndex`, `search::scores` and `search::top_k` at the
/// default policy, a forced level and on two rayon tasks.
fn check_search<T: Elem>(
    k: usize,
    (qb, db): (&DiagGaussians<'_, T>, &DiagGaussians<'_, T>),
    refs: &[Ref],
    (eq_mat, direct): (&[T], impl Fn(&Ref) -> f64),
    top: usize,
    level: Level,
) {
    let (nq, nd) = (qb.len(), db.len());
    let eps = T::EPSILON.to_f64();
    let index = T::index(db).expect("well-formed case");
    assert_eq!(
        (index.len(), index.dim(), index.is_empty()),
        (nd, k, nd == 0)
    );
    let mut policies = vec![Exec::new().par(Par::Rayon(2))];
    if level.is_available() {
        policies.push(Exec::new().level(level));
    }
    for metric in [Metric::Eq10, Metric::Kl] {
        let mut sc = vec![T::NAN; nq * nd];
        T::scores(&index, qb, metric, &mut sc, &Exec::new()).expect("well-formed case");
        for exec in &policies {
            let mut other = vec![T::NAN; nq * nd];
            T::scores(&index, qb, metric, &mut other, exec).unwrap();
            for (&a, &b) in sc.iter().zip(&other) {
                assert_same(a, b, &format!("scores {exec:?}"));
            }
        }
        let n_dot = 2 * k + 2;
        let tol_of = |x: usize| tol(n_dot, eps, refs[x].p) + tol(n_dot, f64::EPSILON, refs[x].p);
        let exact = |x: usize| match metric {
            Metric::Eq10 => refs[x].eq10,
            Metric::Kl => refs[x].kl,
        };
        for x in 0..nq * nd {
            assert_near(sc[x].to_f64(), exact(x), tol_of(x), "search::scores");
            if metric == Metric::Eq10 {
                // The kernel against the direct matrix.
                let t = tol_of(x) + direct(&refs[x]);
                let (a, b) = (sc[x].to_f64(), eq_mat[x].to_f64());
                assert_near(a, b, t, "scores vs eq10_all_pairs");
            }
        }

        // Top-k: the full sort of `scores`, bit for bit.
        let hits = T::top_k(&index, qb, top, metric, &Exec::new()).expect("well-formed case");
        let per = top.min(nd);
        assert_eq!(hits.per_query, per);
        assert_eq!(hits.len(), if per == 0 { 0 } else { nq });
        assert_eq!(hits.is_empty(), per == 0 || nq == 0);
        // key: larger is better.
        let key = |x: usize| match metric {
            Metric::Eq10 => sc[x].to_f64(),
            Metric::Kl => -sc[x].to_f64(),
        };
        for i in 0..nq {
            let mut order: Vec<usize> = (0..nd).collect();
            order.sort_by(|&a, &b| {
                key(i * nd + b)
                    .partial_cmp(&key(i * nd + a))
                    .expect("finite scores")
                    .then(a.cmp(&b))
            });
            let (idx, val) = hits.row(i);
            assert_eq!(idx, &order[..per], "top_k order, query {i}");
            for (&j, &v) in idx.iter().zip(val) {
                assert_same(v, sc[i * nd + j], "top_k value");
            }
            // Against the exact values: a hit is no worse than any document
            // ranked after it, up to both tolerances.
            let sign = if metric == Metric::Eq10 { 1.0 } else { -1.0 };
            for (pos, &h) in order.iter().enumerate() {
                for &j in &order[pos + 1..] {
                    let (xh, xj) = (i * nd + h, i * nd + j);
                    assert!(
                        sign * exact(xh) + tol_of(xh) >= sign * exact(xj) - tol_of(xj),
                        "rank of {h} before {j} contradicts the exact values"
                    );
                }
            }
        }
        assert!(hits.row(nq).0.is_empty());
        for exec in &policies {
            let other = T::top_k(&index, qb, top, metric, exec).unwrap();
            assert_eq!(hits, other, "top_k {exec:?}");
        }
    }
}

/// `full::kl` on `L = diag(σ)` (packed, and dense when both sides are
/// variances) against the reference.
fn check_full_rank<T: Real>(k: usize, q: &Batch, d: &Batch, refs: &[Ref]) {
    let (nq, nd) = (q.n, d.n);
    let eps = T::EPSILON.to_f64();
    // Packed row-major diagonal factor: plain σ = √σ², or log σ = ½ log σ².
    let factor = |b: &Batch, row: usize| -> (Vec<T>, Diagonal) {
        let mut f = vec![T::ZERO; k * (k + 1) / 2];
        let diagonal = match b.scale {
            Scale::Var => Diagonal::Plain,
            Scale::LogVar => Diagonal::Log,
        };
        for p in 0..k {
            let s = T::from_f64(b.spread[row * k + p]);
            f[Layout::RowMajor.index(k, p, p)] = match b.scale {
                Scale::Var => s.sqrt(),
                Scale::LogVar => T::HALF * s,
            };
        }
        (f, diagonal)
    };
    let dense = |b: &Batch, row: usize| -> Vec<T> {
        let mut f = vec![T::ZERO; k * k];
        for p in 0..k {
            f[p * k + p] = T::from_f64(b.spread[row * k + p]).sqrt();
        }
        f
    };
    let conv = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
    let mut work = vec![T::NAN; full::kl_scratch(k)];
    // O(k³) per pair: pairs (i, i mod nd) for the first four queries only.
    for i in 0..nq.min(4) {
        let mq = conv(&q.mean[i * k..(i + 1) * k]);
        let (fq, diag_q) = factor(q, i);
        for j in (i % nd.max(1)..nd).take(1) {
            let md = conv(&d.mean[j * k..(j + 1) * k]);
            let (fd, diag_d) = factor(d, j);
            let r = &refs[i * nd + j];
            let t = gaussian_kl_fuzz::dd::tolerance(k, eps, 1.0, r.a)
                + gaussian_kl_fuzz::dd::tolerance(k, f64::EPSILON, 1.0, r.a);
            let packed = |m, f, diag| {
                let l = PackedTril::with_layout(k, f, Layout::RowMajor, diag).expect("well-formed");
                Gaussian::new(m, l).expect("well-formed")
            };
            let (p, g) = (packed(&mq, &fq, diag_q), packed(&md, &fd, diag_d));
            let v = full::kl(&p, &g, &mut work).expect("well-formed case");
            assert_near(v.to_f64(), r.kl, t, "full::kl on diag(σ)");
            if q.scale == Scale::Var && d.scale == Scale::Var {
                let (dq, dd) = (dense(q, i), dense(d, j));
                let p = Gaussian::new(&mq, MatRef::row_major(k, &dq).expect("d²")).expect("ok");
                let g = Gaussian::new(&md, MatRef::row_major(k, &dd).expect("d²")).expect("ok");
                let w = full::kl(&p, &g, &mut work).expect("well-formed");
                assert_same(v, w, "full::kl on a dense diag(σ)");
            }
        }
    }
}
