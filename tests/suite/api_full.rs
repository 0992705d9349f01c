//! Regression tests of the 0.2 `full` API: the defects of issue 12 that the
//! pre-0.2 API had (each test here fails or does not compile there).
//!
//! - column-major input read as row-major (a silent wrong KL);
//! - errors that blame the wrong argument;
//! - outputs half-written before an error;
//! - no way to accumulate gradients.

use crate::common::*;
use gaussian_kl::{
    Diagonal, Error, Gaussian, GradMut, Grads, Layout, MatRef, Mode, PackedTril, full,
};

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `L = [[1, 0], [5, 1]]` given column by column, against `N(0, I)`:
/// `KL = ½(‖L‖²_F − 2 Σ log Lᵢᵢ − d) = ½(1 + 25 + 1 − 0 − 2) = 12.5`. The
/// pre-0.2 `kl_dense` read the same buffer as row-major and returned 0.
#[test]
fn column_major_factor_is_read_as_column_major() {
    let zero = [0.0f64; 2];
    let eye = [1.0, 0.0, 0.0, 1.0];
    let i = Gaussian::new(&zero, MatRef::row_major(2, &eye).unwrap()).unwrap();
    let col = [1.0, 5.0, 0.0, 1.0];
    let l = Gaussian::new(&zero, MatRef::col_major(2, &col).unwrap()).unwrap();
    let mut work = [0.0; full::kl_scratch(2)];
    assert_eq!(full::kl(&l, &i, &mut work), Ok(12.5));
    assert_eq!(full::kl_std_normal(&l), Ok(12.5));

    // Row-major, column-major, transposed and strided-sub-view inputs, and
    // the packed forms (plain and log diagonal), all give the same bits.
    let packed_plain = [1.0, 5.0, 1.0];
    let packed_log = [0.0, 5.0, 0.0];
    let pl = PackedTril::with_layout(2, &packed_plain, Layout::RowMajor, Diagonal::Plain).unwrap();
    let want = full::kl(&Gaussian::new(&zero, pl).unwrap(), &i, &mut work).unwrap();
    assert_eq!(want, 12.5);
    let log = Gaussian::packed(&zero, &packed_log).unwrap();
    assert_eq!(
        full::kl(&log, &i, &mut work).unwrap().to_bits(),
        want.to_bits()
    );
    let row = [1.0, f64::NAN, 5.0, 1.0]; // the upper triangle is ignored
    for form in dense_forms(2, &row, 3) {
        let g = Gaussian::new(&zero, form_view(2, &form)).unwrap();
        let got = full::kl(&g, &i, &mut work).unwrap();
        assert_eq!(got.to_bits(), want.to_bits(), "{}", form.0);
        assert_eq!(
            full::kl_std_normal(&g).unwrap().to_bits(),
            12.5f64.to_bits()
        );
        // The same factor on the q side.
        let back = full::kl(&i, &g, &mut work).unwrap();
        let back_packed = full::kl(&i, &Gaussian::new(&zero, pl).unwrap(), &mut work).unwrap();
        assert_eq!(back.to_bits(), back_packed.to_bits(), "q side, {}", form.0);
    }

    // kl_cov: Σ = L Lᵀ = [[1, 5], [5, 26]], only the lower triangle stored
    // column by column (LAPACK's 'L'), NaN where the upper one would be:
    // ½(tr Σ − d − ln det Σ) = ½(27 − 2 − 0) = 12.5.
    let cov = [1.0, 5.0, f64::NAN, 26.0];
    let c = MatRef::col_major(2, &cov).unwrap();
    let e = MatRef::row_major(2, &eye).unwrap();
    let mut work = [0.0; full::kl_cov_scratch(2)];
    assert_eq!(full::kl_cov(&zero, c, &zero, e, &mut work), Ok(12.5));
}

/// Every error names the argument the caller got wrong.
#[test]
fn errors_name_the_argument() {
    let (m2, m3) = ([0.0f64; 2], [0.0f64; 3]);
    let (f3, f6) = ([0.0f64; 3], [0.0f64; 6]);
    // The mean against the factor: "mean", whatever the factor's form.
    assert_eq!(
        Gaussian::new(&m2, PackedTril::new(3, &f6).unwrap()),
        Err(Error::LengthMismatch {
            what: "mean",
            expected: 3,
            found: 2
        })
    );
    assert_eq!(
        Gaussian::new(&m3, MatRef::col_major(2, &[1.0, 0.0, 0.0, 1.0]).unwrap()),
        Err(Error::LengthMismatch {
            what: "mean",
            expected: 2,
            found: 3
        })
    );
    // The factor against the mean: "factor".
    assert_eq!(
        Gaussian::packed(&m3, &f3),
        Err(Error::LengthMismatch {
            what: "factor",
            expected: 6,
            found: 3
        })
    );
    // q against p: "q", expected p's dimension.
    let p = Gaussian::packed(&m3, &f6).unwrap();
    let q = Gaussian::packed(&m2, &f3).unwrap();
    let mut work = vec![0.0; full::kl_grad_scratch(3)];
    let q_dim = Err(Error::DimensionMismatch {
        what: "q",
        expected: 3,
        found: 2,
    });
    assert_eq!(full::kl(&p, &q, &mut work), q_dim);
    let (mut a, mut b, mut c, mut d) = ([0.0; 3], [0.0; 6], [0.0; 2], [0.0; 3]);
    let g = Grads::new(GradMut::new(&mut a, &mut b), GradMut::new(&mut c, &mut d));
    assert_eq!(full::kl_grad(&p, &q, 1.0, g, &mut work), q_dim);
    // The workspace: "work" (its own variant).
    let q = Gaussian::packed(&m3, &f6).unwrap();
    assert_eq!(
        full::kl(&p, &q, &mut work[..14]),
        Err(Error::WorkspaceTooSmall {
            expected: 15,
            found: 14
        })
    );
    assert_eq!(
        Error::WorkspaceTooSmall {
            expected: 15,
            found: 14
        }
        .to_string(),
        "work: expected length at least 15, found 14"
    );
    // The gradient buffers, each by name.
    for (k, name) in [
        "grad.p.mean",
        "grad.p.factor",
        "grad.q.mean",
        "grad.q.factor",
    ]
    .into_iter()
    .enumerate()
    {
        let mut bufs = [vec![0.0; 3], vec![0.0; 6], vec![0.0; 3], vec![0.0; 6]];
        bufs[k].push(0.0);
        let want = bufs[k].len() - 1;
        let [a, b, c, d] = &mut bufs;
        let g = Grads::new(GradMut::new(a, b), GradMut::new(c, d));
        assert_eq!(
            full::kl_grad(&p, &q, 1.0, g, &mut work),
            Err(Error::LengthMismatch {
                what: name,
                expected: want,
                found: want + 1
            })
        );
    }
    let (mut a, mut b) = ([0.0; 3], [0.0; 5]);
    assert_eq!(
        full::kl_std_normal_grad(&p, 1.0, GradMut::new(&mut a, &mut b)),
        Err(Error::LengthMismatch {
            what: "grad.factor",
            expected: 6,
            found: 5
        })
    );
    let (mut a, mut b) = ([0.0; 2], [0.0; 6]);
    assert_eq!(
        full::kl_std_normal_grad(&p, 1.0, GradMut::new(&mut a, &mut b)),
        Err(Error::LengthMismatch {
            what: "grad.mean",
            expected: 3,
            found: 2
        })
    );
    // A dense factor's gradient buffer is as long as the input's data
    // (here a 2 × 2 block of a 3-wide array: 3 + 2 = 5 numbers).
    let data = [1.0, 0.0, 9.0, 0.5, 2.0];
    let l = MatRef::from_strides(2, &data, 3, 1).unwrap();
    let pd = Gaussian::new(&m2, l).unwrap();
    let (mut a, mut b) = ([0.0; 2], [0.0; 4]);
    assert_eq!(
        full::kl_std_normal_grad(&pd, 1.0, GradMut::new(&mut a, &mut b)),
        Err(Error::LengthMismatch {
            what: "grad.factor",
            expected: 5,
            found: 4
        })
    );
}

/// A random pair at `d` with `p` packed (log diagonal, column-major packed)
/// and `q` dense in a strided sub-view, plus the buffers' lengths.
struct Pair {
    mp: Vec<f64>,
    lp: Vec<f64>,
    mq: Vec<f64>,
    lq: Vec<f64>,
    d: usize,
    w: usize,
}

impl Pair {
    fn new(seed: u64, d: usize) -> Pair {
        let c = Case::random(&mut rng(seed), d);
        let dq = packed_to_dense(d, &log_to_plain(d, &c.raw_q), f64::NAN);
        let forms = dense_forms(d, &dq, 2);
        let sub = forms
            .into_iter()
            .find(|f| f.0 == "strided sub-view")
            .unwrap();
        Pair {
            lp: to_layout(d, &c.raw_p, Layout::ColMajor),
            mp: c.mean_p,
            mq: c.mean_q,
            lq: sub.1,
            d,
            w: sub.2,
        }
    }

    fn p(&self) -> Gaussian<'_, f64> {
        let l = PackedTril::with_layout(self.d, &self.lp, Layout::ColMajor, Diagonal::Log);
        Gaussian::new(&self.mp, l.unwrap()).unwrap()
    }

    fn q(&self) -> Gaussian<'_, f64> {
        let l = MatRef::from_strides(self.d, &self.lq, self.w, 1).unwrap();
        Gaussian::new(&self.mq, l).unwrap()
    }

    /// Gradient buffers of the right shapes, filled with `v`.
    fn bufs(&self, v: f64) -> [Vec<f64>; 4] {
        [
            vec![v; self.d],
            vec![v; self.lp.len()],
            vec![v; self.d],
            vec![v; self.lq.len()],
        ]
    }
}

fn grads(b: &mut [Vec<f64>; 4], mode: Mode) -> Grads<GradMut<'_, f64>> {
    let [a, b, c, d] = b;
    Grads::new(GradMut::new(a, b).mode(mode), GradMut::new(c, d).mode(mode))
}

/// On every error, every output buffer keeps its contents.
#[test]
fn kl_grad_leaves_outputs_untouched_on_error() {
    const S: f64 = -7.25; // sentinel
    let pair = Pair::new(3, 4);
    let (p, q) = (pair.p(), pair.q());
    let need = full::kl_grad_scratch(4);
    for mode in [Mode::Overwrite, Mode::Accumulate] {
        // Each buffer one too long, one too short.
        for k in 0..4 {
            for delta in [1isize, -1] {
                let mut b = pair.bufs(S);
                let len = (b[k].len() as isize + delta) as usize;
                b[k].resize(len, S);
                let mut work = vec![0.0; need];
                let r = full::kl_grad(&p, &q, 1.0, grads(&mut b, mode), &mut work);
                assert!(matches!(r, Err(Error::LengthMismatch { .. })), "{r:?}");
                assert!(b.iter().flatten().all(|&x| x.to_bits() == S.to_bits()));
            }
        }
        // Work too short (every length below the need).
        for len in [0, 1, need - 1] {
            let mut b = pair.bufs(S);
            let mut work = vec![0.0; len];
            let r = full::kl_grad(&p, &q, 1.0, grads(&mut b, mode), &mut work);
            assert_eq!(
                r,
                Err(Error::WorkspaceTooSmall {
                    expected: need,
                    found: len
                })
            );
            assert!(b.iter().flatten().all(|&x| x.to_bits() == S.to_bits()));
        }
        // q of another dimension.
        let other = Pair::new(4, 3);
        let mut b = pair.bufs(S);
        let mut work = vec![0.0; need];
        let r = full::kl_grad(&p, &other.q(), 1.0, grads(&mut b, mode), &mut work);
        assert!(matches!(r, Err(Error::DimensionMismatch { what: "q", .. })));
        assert!(b.iter().flatten().all(|&x| x.to_bits() == S.to_bits()));
        // kl_std_normal_grad with a wrong factor buffer.
        let (mut a, mut f) = (vec![S; 4], vec![S; pair.lq.len() + 1]);
        let g = GradMut::new(&mut a, &mut f).mode(mode);
        let r = full::kl_std_normal_grad(&q, 1.0, g);
        assert!(matches!(
            r,
            Err(Error::LengthMismatch {
                what: "grad.factor",
                ..
            })
        ));
        assert!(a.iter().chain(&f).all(|&x| x.to_bits() == S.to_bits()));
        // The fixed-dimension entry point.
        let mut b = pair.bufs(S);
        b[3] = vec![S; 10];
        b[1].push(S);
        let m: [f64; 4] = pair.mp.clone().try_into().unwrap();
        let lp = PackedTril::new(4, &pair.lp).unwrap();
        let r = full::kl_grad_packed_fixed(&m, lp, &m, lp, 1.0, grads(&mut b, mode));
        assert!(matches!(
            r,
            Err(Error::LengthMismatch {
                what: "grad.p.factor",
                ..
            })
        ));
        assert!(b.iter().flatten().all(|&x| x.to_bits() == S.to_bits()));
    }
}

/// `Mode::Accumulate` adds exactly the `Mode::Overwrite` result to what the
/// buffers hold; `Overwrite` writes `0` wherever the KL does not read the
/// dense input (upper triangle, the gaps of a sub-view) and `Accumulate`
/// leaves those entries alone.
#[test]
fn accumulate_adds_exactly_the_overwrite_result() {
    for d in [1usize, 2, 5, 12] {
        let pair = Pair::new(10 + d as u64, d);
        let (p, q) = (pair.p(), pair.q());
        let mut work = vec![f64::NAN; full::kl_grad_scratch(d)];
        let mut over = pair.bufs(f64::NAN);
        let kl_o = full::kl_grad(&p, &q, 0.75, grads(&mut over, Mode::Overwrite), &mut work);
        // The unread entries of q's dense buffer are zero, the rest finite.
        let w = pair.w;
        for (k, &v) in over[3].iter().enumerate() {
            let (i, j) = (k / w, k % w);
            if i < d && j <= i {
                assert!(v.is_finite());
            } else {
                assert_eq!(
                    v.to_bits(),
                    0.0f64.to_bits(),
                    "entry {k} not read by the KL"
                );
            }
        }
        let start: [Vec<f64>; 4] = core::array::from_fn(|k| {
            let mut r = rng(99 + k as u64);
            (0..over[k].len()).map(|_| normal(&mut r)).collect()
        });
        let mut acc = start.clone();
        let kl_a = full::kl_grad(&p, &q, 0.75, grads(&mut acc, Mode::Accumulate), &mut work);
        assert_eq!(kl_o.unwrap().to_bits(), kl_a.unwrap().to_bits());
        for k in 0..4 {
            let want: Vec<f64> = start[k].iter().zip(&over[k]).map(|(s, g)| s + g).collect();
            assert_eq!(bits(&acc[k]), bits(&want), "buffer {k}, d = {d}");
        }
        // kl_std_normal_grad, on the dense side.
        let mut o = [vec![f64::NAN; d], vec![f64::NAN; pair.lq.len()]];
        let [a, b] = &mut o;
        let kl1 = full::kl_std_normal_grad(&q, 2.0, GradMut::new(a, b)).unwrap();
        let mut s = [start[2].clone(), start[3].clone()];
        let [a, b] = &mut s;
        let kl2 = full::kl_std_normal_grad(&q, 2.0, GradMut::new(a, b).mode(Mode::Accumulate));
        assert_eq!(kl1.to_bits(), kl2.unwrap().to_bits());
        for k in 0..2 {
            let want: Vec<f64> = start[k + 2].iter().zip(&o[k]).map(|(s, g)| s + g).collect();
            assert_eq!(bits(&s[k]), bits(&want), "std normal buffer {k}, d = {d}");
        }
    }
}

/// The gradient of a dense factor, in every storage order, holds at each
/// lower-triangle entry exactly the gradient of the same factor packed with
/// a plain diagonal.
#[test]
fn dense_gradient_uses_the_input_strides() {
    for d in [1usize, 3, 8] {
        let c = Case::random(&mut rng(40 + d as u64), d);
        let (rp, rq) = (log_to_plain(d, &c.raw_p), log_to_plain(d, &c.raw_q));
        let plain = |x| PackedTril::with_layout(d, x, Layout::RowMajor, Diagonal::Plain).unwrap();
        let pp = Gaussian::new(&c.mean_p, plain(&rp)).unwrap();
        let pq = Gaussian::new(&c.mean_q, plain(&rq)).unwrap();
        let mut work = vec![0.0; full::kl_grad_scratch(d)];
        let t = tril(d);
        let mut want = [vec![0.0; d], vec![0.0; t], vec![0.0; d], vec![0.0; t]];
        let kl =
            full::kl_grad(&pp, &pq, 1.0, grads(&mut want, Mode::Overwrite), &mut work).unwrap();
        let (dp, dq) = (
            packed_to_dense(d, &rp, f64::NAN),
            packed_to_dense(d, &rq, f64::NAN),
        );
        for (fp, fq) in dense_forms(d, &dp, 1)
            .iter()
            .zip(dense_forms(d, &dq, 2).iter().rev())
        {
            let (vp, vq) = (form_view(d, fp), form_view(d, fq));
            let p = Gaussian::new(&c.mean_p, vp).unwrap();
            let q = Gaussian::new(&c.mean_q, vq).unwrap();
            let mut got = [
                vec![0.0; d],
                vec![9.0; fp.1.len()],
                vec![0.0; d],
                vec![9.0; fq.1.len()],
            ];
            let k2 = full::kl_grad(&p, &q, 1.0, grads(&mut got, Mode::Overwrite), &mut work);
            assert_eq!(k2.unwrap().to_bits(), kl.to_bits());
            assert_eq!(bits(&got[0]), bits(&want[0]));
            assert_eq!(bits(&got[2]), bits(&want[2]));
            for (g, w, v) in [(&got[1], &want[1], vp), (&got[3], &want[3], vq)] {
                let (rs, cs) = v.strides();
                for i in 0..d {
                    for j in 0..=i {
                        let at = i * rs + j * cs;
                        assert_eq!(
                            g[at].to_bits(),
                            w[rm(i, j)].to_bits(),
                            "({i}, {j}) {}/{}",
                            fp.0,
                            fq.0
                        );
                    }
                }
            }
        }
    }
}

/// Overlapping strides (a broadcast matrix): the gradient with respect to a
/// shared element is the sum of the derivatives of the entries that read it.
#[test]
fn broadcast_factor_gradient_sums_its_entries() {
    // Every entry is data[0] = 2: L = [[2, 0], [2, 2]].
    let data = [2.0f64];
    let l = MatRef::from_strides(2, &data, 0, 0).unwrap();
    let mean = [0.3, -0.4];
    let p = Gaussian::new(&mean, l).unwrap();
    let packed = [2.0, 2.0, 2.0];
    let pl = PackedTril::with_layout(2, &packed, Layout::RowMajor, Diagonal::Plain).unwrap();
    let pp = Gaussian::new(&mean, pl).unwrap();
    let (mut a, mut g) = ([0.0; 2], [f64::NAN; 1]);
    let kl = full::kl_std_normal_grad(&p, 1.0, GradMut::new(&mut a, &mut g)).unwrap();
    let (mut a2, mut g3) = ([0.0; 2], [0.0; 3]);
    let kl2 = full::kl_std_normal_grad(&pp, 1.0, GradMut::new(&mut a2, &mut g3)).unwrap();
    assert_eq!(kl.to_bits(), kl2.to_bits());
    let sum = g3[0] + g3[1] + g3[2];
    assert!(
        (g[0] - sum).abs() <= 4.0 * f64::EPSILON * sum.abs(),
        "{} vs {sum}",
        g[0]
    );
    // Against a central difference of the KL in the shared element.
    let f = |x: f64| {
        let data = [x];
        let l = MatRef::from_strides(2, &data, 0, 0).unwrap();
        full::kl_std_normal(&Gaussian::new(&mean, l).unwrap()).unwrap()
    };
    let h = 1e-6;
    let fd = (f(2.0 + h) - f(2.0 - h)) / (2.0 * h);
    assert!((fd - g[0]).abs() < 1e-8, "{fd} vs {}", g[0]);
}

/// `full::kl_grad` with a broadcast (zero-stride) factor on each side: each
/// shared element's gradient is the sum over the lower-triangle entries
/// that read it, checked against the packed gradient summed and against a
/// central difference; `Mode::Overwrite` first clears the element.
#[test]
fn broadcast_factor_kl_grad_sums_its_entries() {
    let d = 3;
    let (mp, mq) = ([0.2, -0.1, 0.4], [-0.3, 0.5, 0.0]);
    let (vp, vq) = ([1.5f64], [0.8f64]);
    let t = tril(d);
    let plain = |v: f64| vec![v; t];
    let (pp, pq) = (plain(vp[0]), plain(vq[0]));
    let mut work = vec![0.0; full::kl_grad_scratch(d)];
    let mut want = [vec![0.0; d], vec![0.0; t], vec![0.0; d], vec![0.0; t]];
    let kl_packed = full::kl_grad(
        &Gaussian::new(&mp, plain_tril(d, &pp)).unwrap(),
        &Gaussian::new(&mq, plain_tril(d, &pq)).unwrap(),
        1.0,
        grads(&mut want, Mode::Overwrite),
        &mut work,
    )
    .unwrap();
    let bp = MatRef::from_strides(d, &vp, 0, 0).unwrap();
    let bq = MatRef::from_strides(d, &vq, 0, 0).unwrap();
    let (p, q) = (
        Gaussian::new(&mp, bp).unwrap(),
        Gaussian::new(&mq, bq).unwrap(),
    );
    let mut got = [
        vec![0.0; d],
        vec![f64::NAN; 1],
        vec![0.0; d],
        vec![f64::NAN; 1],
    ];
    let kl = full::kl_grad(&p, &q, 1.0, grads(&mut got, Mode::Overwrite), &mut work).unwrap();
    assert_eq!(kl.to_bits(), kl_packed.to_bits());
    for k in [1, 3] {
        let sum: f64 = want[k].iter().sum();
        let scale: f64 = want[k].iter().map(|x| x.abs()).sum();
        assert!((got[k][0] - sum).abs() <= 8.0 * f64::EPSILON * scale, "{k}");
    }
    let h = 1e-6;
    let f = |a: f64, b: f64| {
        let (a, b) = ([a], [b]);
        let p = Gaussian::new(&mp, MatRef::from_strides(d, &a, 0, 0).unwrap()).unwrap();
        let q = Gaussian::new(&mq, MatRef::from_strides(d, &b, 0, 0).unwrap()).unwrap();
        full::kl(&p, &q, &mut vec![0.0; full::kl_scratch(d)]).unwrap()
    };
    let fd_p = (f(vp[0] + h, vq[0]) - f(vp[0] - h, vq[0])) / (2.0 * h);
    let fd_q = (f(vp[0], vq[0] + h) - f(vp[0], vq[0] - h)) / (2.0 * h);
    assert!((fd_p - got[1][0]).abs() < 1e-7, "{fd_p} vs {}", got[1][0]);
    assert!((fd_q - got[3][0]).abs() < 1e-7, "{fd_q} vs {}", got[3][0]);
}

fn plain_tril(d: usize, x: &[f64]) -> PackedTril<'_, f64> {
    PackedTril::with_layout(d, x, Layout::RowMajor, Diagonal::Plain).unwrap()
}
