//! The interop adapters against the core API on the same numbers: every
//! result must agree bit for bit (the adapters only re-plumb memory; a
//! wrong stride would change the numbers, not just the last bit), for
//! row-major, column-major and strided inputs, in f32 and f64; wrong shapes
//! and layouts give the crate's `Error` naming the argument, never a panic.
#![cfg(all(feature = "nalgebra", feature = "faer", feature = "ndarray"))]

use gaussian_kl::interop::{faer as fa, nalgebra as na, ndarray as nd};
use gaussian_kl::{
    DiagGaussians, DiagGradMut, Error, Exec, Gaussian, Gaussians, GradMut, Grads, MatRef, Scale,
    batch, diag, full,
};
use ndarray::{Array1, Array2, Array3, ShapeBuilder, s};

/// A deterministic stream of numbers in [-1, 1).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

/// A row-major `d × d` lower factor (diagonal in [0.5, 1.5]) with junk above
/// the diagonal (never read), and a mean.
fn pair(d: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut r = Lcg(seed);
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            l[i * d + j] = match j {
                j if j < i => 0.4 * r.next(),
                j if j == i => 1.0 + 0.5 * r.next(),
                _ => 7.0,
            };
        }
    }
    let m = (0..d).map(|_| r.next()).collect();
    (m, l)
}

macro_rules! suite {
    ($modname:ident, $t:ty) => {
        mod $modname {
            use super::*;
            type T = $t;

            fn conv(v: &[f64]) -> Vec<T> {
                v.iter().map(|&x| x as T).collect()
            }

            /// The reference: the core API on row-major copies.
            fn reference(d: usize) -> (Vec<T>, Vec<T>, Vec<T>, Vec<T>) {
                let (mp, lp) = pair(d, 1);
                let (mq, lq) = pair(d, 2);
                (conv(&mp), conv(&lp), conv(&mq), conv(&lq))
            }

            fn core_kl(d: usize, mp: &[T], lp: &[T], mq: &[T], lq: &[T]) -> (T, T) {
                let p = Gaussian::new(mp, MatRef::row_major(d, lp).unwrap()).unwrap();
                let q = Gaussian::new(mq, MatRef::row_major(d, lq).unwrap()).unwrap();
                let mut work = vec![0.0; full::kl_scratch(d)];
                (full::kl(&p, &q, &mut work).unwrap(), full::kl_std_normal(&p).unwrap())
            }

            fn kl_of(p: &Gaussian<'_, T>, q: &Gaussian<'_, T>) -> (T, T) {
                let mut work = vec![0.0; full::kl_scratch(p.dim())];
                (full::kl(p, q, &mut work).unwrap(), full::kl_std_normal(p).unwrap())
            }

            fn same(a: (T, T), b: (T, T)) {
                assert_eq!((a.0.to_bits(), a.1.to_bits()), (b.0.to_bits(), b.1.to_bits()), "{a:?} vs {b:?}");
            }

            #[test]
            fn nalgebra_dense_static_cholesky_view_cov() {
                let d = 3;
                let (mp, lp, mq, lq) = reference(d);
                let want = core_kl(d, &mp, &lp, &mq, &lq);
                // DMatrix and Matrix3 (column-major storage)
                let (lp_n, lq_n) = (nalgebra::DMatrix::from_row_slice(d, d, &lp), nalgebra::DMatrix::from_row_slice(d, d, &lq));
                let (mp_n, mq_n) = (nalgebra::DVector::from_column_slice(&mp), nalgebra::DVector::from_column_slice(&mq));
                same(kl_of(&na::gaussian(&mp_n, &lp_n).unwrap(), &na::gaussian(&mq_n, &lq_n).unwrap()), want);
                let (lp3, lq3) = (nalgebra::Matrix3::from_row_slice(&lp), nalgebra::Matrix3::from_row_slice(&lq));
                let (mp3, mq3) = (nalgebra::Vector3::from_column_slice(&mp), nalgebra::Vector3::from_column_slice(&mq));
                same(kl_of(&na::gaussian(&mp3, &lp3).unwrap(), &na::gaussian(&mq3, &lq3).unwrap()), want);
                // a strided sub-block, copied by pack_lower
                let mut big = nalgebra::Matrix4::<T>::from_element(5.0);
                big.fixed_view_mut::<3, 3>(1, 1).copy_from(&lp3);
                let mut buf = [0.0; 6];
                let p = Gaussian::new(&mp, na::pack_lower(&big.fixed_view::<3, 3>(1, 1), &mut buf).unwrap()).unwrap();
                same(kl_of(&p, &na::gaussian(&mq3, &lq3).unwrap()), want);
                // Cholesky: l_dirty (covariance above the diagonal) vs the clean l()
                let cov = lp3 * lp3.transpose();
                let chol = cov.cholesky().unwrap();
                let clean: Vec<T> = chol.l().transpose().as_slice().to_vec(); // row-major
                let want_c = core_kl(d, &mp, &clean, &mq, &lq);
                same(kl_of(&na::cholesky_gaussian(&mp3, &chol).unwrap(), &na::gaussian(&mq3, &lq3).unwrap()), want_c);
                // covariances for kl_cov
                let cq = lq3 * lq3.transpose();
                let mut work = vec![0.0; full::kl_cov_scratch(d)];
                let got = full::kl_cov(&mp, na::mat_ref(&cov).unwrap(), &mq, na::mat_ref(&cq).unwrap(), &mut work).unwrap();
                let (cov_r, cq_r): (Vec<T>, Vec<T>) = (cov.transpose().as_slice().to_vec(), cq.transpose().as_slice().to_vec());
                let want_cov = full::kl_cov(&mp, MatRef::row_major(d, &cov_r).unwrap(), &mq, MatRef::row_major(d, &cq_r).unwrap(), &mut work).unwrap();
                assert_eq!(got.to_bits(), want_cov.to_bits());
            }

            #[test]
            fn nalgebra_grad_and_errors() {
                let d = 3;
                let (mp, lp, _, _) = reference(d);
                let (l3, m3) = (nalgebra::Matrix3::from_row_slice(&lp), nalgebra::Vector3::from_column_slice(&mp));
                let (mut gm, mut gl) = (nalgebra::Vector3::<T>::zeros(), nalgebra::Matrix3::<T>::zeros());
                let v = full::kl_std_normal_grad(&na::gaussian(&m3, &l3).unwrap(), 0.7, na::grad_mut(&mut gm, &mut gl)).unwrap();
                // core: the same matrix as a column-major slice, gradient with the same strides
                let colmajor: Vec<T> = l3.as_slice().to_vec();
                let (mut rm, mut rl) = (vec![0.0; d], vec![0.0; d * d]);
                let p = Gaussian::new(&mp, MatRef::col_major(d, &colmajor).unwrap()).unwrap();
                let w = full::kl_std_normal_grad(&p, 0.7, GradMut::new(&mut rm, &mut rl)).unwrap();
                assert_eq!(v.to_bits(), w.to_bits());
                assert_eq!(gm.as_slice(), &rm[..]);
                assert!(gl.as_slice().iter().zip(&rl).all(|(a, b)| a.to_bits() == b.to_bits()));
                let rect = nalgebra::DMatrix::<T>::zeros(3, 2);
                assert_eq!(na::gaussian(&m3, &rect).unwrap_err(), Error::DimensionMismatch { what: "factor", expected: 3, found: 2 });
                let short = nalgebra::Vector2::<T>::zeros();
                assert_eq!(na::gaussian(&short, &l3).unwrap_err(), Error::LengthMismatch { what: "mean", expected: 3, found: 2 });
                let mut buf = [9.0; 5];
                assert_eq!(na::pack_lower(&l3, &mut buf).unwrap_err(), Error::LengthMismatch { what: "buf", expected: 6, found: 5 });
                assert_eq!(buf, [9.0; 5], "buf untouched on error");
            }

            #[test]
            fn faer_strides_llt_and_errors() {
                let d = 4;
                let (mp, lp, mq, lq) = reference(d);
                let want = core_kl(d, &mp, &lp, &mq, &lq);
                let lpf = faer::Mat::<T>::from_fn(d, d, |i, j| lp[i * d + j]);
                let mpf = faer::Col::<T>::from_fn(d, |i| mp[i]);
                let q = Gaussian::new(&mq, MatRef::row_major(d, &lq).unwrap()).unwrap();
                let mut buf = vec![0.0; 10];
                same(kl_of(&fa::gaussian(mpf.as_ref(), lpf.as_ref(), &mut buf).unwrap(), &q), want);
                // transposed storage (row stride ≠ 1) and negative row strides
                let lt = faer::Mat::<T>::from_fn(d, d, |i, j| lp[j * d + i]);
                same(kl_of(&fa::gaussian(mpf.as_ref(), lt.as_ref().transpose(), &mut buf).unwrap(), &q), want);
                let rev = faer::Mat::<T>::from_fn(d, d, |i, j| lp[(d - 1 - i) * d + j]);
                same(kl_of(&fa::gaussian(mpf.as_ref(), rev.as_ref().reverse_rows(), &mut buf).unwrap(), &q), want);
                // Llt: its L() against the same numbers materialized row-major
                let cov = &lpf * lpf.transpose();
                let llt = cov.llt(faer::Side::Lower).unwrap();
                let l = llt.L();
                let lr: Vec<T> = (0..d * d).map(|k| if k % d <= k / d { l[(k / d, k % d)] } else { 0.0 }).collect();
                same(kl_of(&fa::llt_gaussian(mpf.as_ref(), &llt, &mut buf).unwrap(), &q), core_kl(d, &mp, &lr, &mq, &lq));
                // errors
                let row = lpf.row(0).transpose();
                assert!(matches!(fa::gaussian(row, lpf.as_ref(), &mut buf), Err(Error::Unsupported { what: "mean", .. })));
                let mut short = [3.0; 9];
                assert_eq!(fa::pack_lower(lpf.as_ref(), &mut short).unwrap_err(), Error::LengthMismatch { what: "buf", expected: 10, found: 9 });
                assert_eq!(short, [3.0; 9]);
                assert_eq!(fa::copy_dense(lpf.as_ref().subcols(0, 3), &mut [0.0; 16]).unwrap_err(), Error::DimensionMismatch { what: "matrix", expected: 4, found: 3 });
                let neg = faer::Mat::<T>::from_fn(d, d, |i, j| if i == j { -1.0 } else { 0.0 });
                assert!(matches!(fa::pack_lower(neg.as_ref(), &mut buf), Err(Error::NonPositiveDiagonal { what: "factor", index: 0, .. })));
            }

            #[test]
            fn ndarray_single_every_layout() {
                let d = 5;
                let (mp, lp, mq, lq) = reference(d);
                let want = core_kl(d, &mp, &lp, &mq, &lq);
                let q = Gaussian::new(&mq, MatRef::row_major(d, &lq).unwrap()).unwrap();
                let c = Array2::from_shape_vec((d, d), lp.clone()).unwrap();
                let f = Array2::from_shape_vec((d, d).f(), c.t().iter().copied().collect()).unwrap();
                assert_eq!(c, f);
                let m = Array1::from(mp.clone());
                same(kl_of(&nd::gaussian(&m, &c).unwrap(), &q), want);
                same(kl_of(&nd::gaussian(&m, &f).unwrap(), &q), want);
                let ct = c.t().to_owned(); // transposed storage read through .t()
                same(kl_of(&nd::gaussian(&m, ct.t()).unwrap(), &q), want);
                // a sub-block and a stepped slice: refused by mat_ref, copied by mat_ref_or_copy
                let mut big = Array2::<T>::from_elem((d + 2, 2 * d), 3.0);
                big.slice_mut(s![1..d + 1, ..;2]).assign(&c);
                let view = big.slice(s![1..d + 1, ..;2]);
                assert!(matches!(nd::gaussian(&m, view), Err(Error::Unsupported { what: "factor", .. })));
                let mut buf = vec![0.0; d * d];
                let p = Gaussian::new(&mp, nd::mat_ref_or_copy(view, &mut buf).unwrap()).unwrap();
                same(kl_of(&p, &q), want);
                // negative strides: an error from mat_ref, a copy from mat_ref_or_copy
                let flipped = Array2::from_shape_fn((d, d), |(i, j)| c[[d - 1 - i, j]]);
                let neg = flipped.slice(s![..;-1, ..]);
                let r = nd::mat_ref(neg);
                assert!(matches!(r, Err(Error::Unsupported { what: "matrix", .. })), "{:?} {:?}", r, neg.strides());
                let p = Gaussian::new(&mp, nd::mat_ref_or_copy(neg, &mut buf).unwrap()).unwrap();
                same(kl_of(&p, &q), want);
                // shapes
                let rect = Array2::<T>::zeros((d, d - 1));
                assert_eq!(nd::gaussian(&m, &rect).unwrap_err(), Error::DimensionMismatch { what: "factor", expected: d, found: d - 1 });
                assert_eq!(nd::mat_ref_or_copy(view, &mut buf[..3]).unwrap_err(), Error::LengthMismatch { what: "buf", expected: d * d, found: 3 });
                let stepped_mean = Array1::<T>::zeros(2 * d);
                assert!(matches!(nd::gaussian(stepped_mean.slice(s![..;2]), &c), Err(Error::Unsupported { what: "mean", .. })));
            }

            /// `n` Gaussians, packed (row-major tril, raw log diagonal) and dense.
            fn batch_data(n: usize, d: usize, seed: u64) -> (Vec<T>, Vec<T>, Vec<T>) {
                let t = d * (d + 1) / 2;
                let mut r = Lcg(seed);
                let means: Vec<T> = (0..n * d).map(|_| r.next() as T).collect();
                let packed: Vec<T> = (0..n * t).map(|_| (0.3 * r.next()) as T).collect();
                let mut dense = vec![0.0 as T; n * d * d];
                for k in 0..n {
                    let g = Gaussians::new(n, d, &means, &packed).unwrap();
                    if let gaussian_kl::Factor::Packed(l) = g.get(k).unwrap().factor() {
                        l.expand_dense(&mut dense[k * d * d..(k + 1) * d * d]).unwrap();
                    }
                }
                (means, packed, dense)
            }

            #[test]
            fn ndarray_packed_batch_all_pairs_and_grad() {
                let (n, d) = (7, 3);
                let t = d * (d + 1) / 2;
                let (means, packed, _) = batch_data(n, d, 3);
                let core = Gaussians::new(n, d, &means, &packed).unwrap();
                let exec = Exec::new();
                let mut work = vec![0.0; batch::kl_scratch::<T>(d, &exec).unwrap()];
                let mut want = vec![0.0; n * n];
                batch::kl(&core, batch::Pairs::All(&core), &mut want, &exec, &mut work).unwrap();
                let (ma, fa_) = (Array2::from_shape_vec((n, d), means.clone()).unwrap(), Array2::from_shape_vec((n, t), packed.clone()).unwrap());
                let p = nd::gaussians(&ma, &fa_).unwrap();
                let mut out = Array2::<T>::from_elem((n, n), T::NAN);
                batch::kl(&p, batch::Pairs::All(&p), nd::out_matrix(&mut out, n, n).unwrap(), &exec, &mut work).unwrap();
                assert!(out.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
                // a contiguous sub-batch is borrowed
                let sub = nd::gaussians(ma.slice(s![2..5, ..]), fa_.slice(s![2..5, ..])).unwrap();
                assert_eq!(sub.means(), &means[2 * d..5 * d]);
                // the prior's gradient into arrays shaped as the inputs
                let up = vec![0.5 as T; n];
                let (mut rm, mut rl, mut rout) = (vec![0.0; n * d], vec![0.0; n * t], vec![0.0; n]);
                batch::kl_std_normal_grad(&core, &up, &mut rout, GradMut::new(&mut rm, &mut rl), &exec, &mut []).unwrap();
                let (mut gm, mut gl, mut o) = (Array2::zeros((n, d)), Array2::zeros((n, t)), Array1::zeros(n));
                let g = nd::grad_mut(&p, &mut gm, &mut gl).unwrap();
                batch::kl_std_normal_grad(&p, &up, nd::out_vector(&mut o, n).unwrap(), g, &exec, &mut []).unwrap();
                assert_eq!((gm.as_slice().unwrap(), gl.as_slice().unwrap(), o.as_slice().unwrap()), (&rm[..], &rl[..], &rout[..]));
                // layouts and shapes
                let mut ff = Array2::<T>::zeros((n, t).f()); // Fortran order
                ff.assign(&fa_);
                assert!(matches!(nd::gaussians(&ma, &ff), Err(Error::Unsupported { what: "factors", .. })));
                assert_eq!(nd::gaussians(&ma, fa_.slice(s![.., ..t - 1])).unwrap_err(), Error::LengthMismatch { what: "factors.cols", expected: t, found: t - 1 });
                assert_eq!(nd::gaussians(&ma, fa_.slice(s![..n - 1, ..])).unwrap_err(), Error::LengthMismatch { what: "factors.rows", expected: n, found: n - 1 });
                assert_eq!(nd::out_matrix(&mut out, n, n - 1).unwrap_err(), Error::LengthMismatch { what: "out.cols", expected: n - 1, found: n });
                let mut wide = Array2::<T>::zeros((n, 2 * n));
                assert!(matches!(nd::out_matrix(wide.slice_mut(s![.., ..n]), n, n), Err(Error::Unsupported { what: "out", .. })));
                assert_eq!(nd::grad_mut(&p, gm.view_mut().reversed_axes(), &mut gl).unwrap_err(), Error::LengthMismatch { what: "grad.mean.rows", expected: n, found: d });
            }

            #[test]
            fn ndarray_dense_batch_c_fortran_permuted() {
                let (n, d) = (6, 4);
                let (means, _, dense) = batch_data(n, d, 4);
                let (qmeans, _, qdense) = batch_data(1, d, 5);
                let mut work = vec![0.0; full::kl_scratch(d)];
                let want: Vec<(T, T)> = (0..n)
                    .map(|k| {
                        let p = Gaussian::new(&means[k * d..(k + 1) * d], MatRef::row_major(d, &dense[k * d * d..(k + 1) * d * d]).unwrap()).unwrap();
                        let q = Gaussian::new(&qmeans, MatRef::row_major(d, &qdense).unwrap()).unwrap();
                        (full::kl(&p, &q, &mut work).unwrap(), full::kl_std_normal(&p).unwrap())
                    })
                    .collect();
                let ma = Array2::from_shape_vec((n, d), means.clone()).unwrap();
                let c = Array3::from_shape_vec((n, d, d), dense.clone()).unwrap();
                let f = {
                    let mut f = Array3::<T>::zeros((n, d, d).f());
                    f.assign(&c);
                    f
                };
                // (n, d, d) holding Lᵀ per item, read through permuted axes
                let lt = c.clone().permuted_axes([0, 2, 1]).as_standard_layout().to_owned();
                let permuted = lt.view().permuted_axes([0, 2, 1]);
                let (qm_a, ql_a) = (Array2::from_shape_vec((1, d), qmeans.clone()).unwrap(), Array3::from_shape_vec((1, d, d), qdense.clone()).unwrap());
                let q = nd::DenseGaussians::new(&qm_a, &ql_a).unwrap();
                for fac in [c.view(), f.view(), permuted] {
                    let p = nd::DenseGaussians::new(&ma, fac).unwrap();
                    let mut out = Array1::<T>::from_elem(2 * n, T::NAN);
                    nd::kl_dense(&p, &q, out.slice_mut(s![..;2]), &mut work).unwrap();
                    let mut prior = Array1::<T>::zeros(n);
                    nd::kl_dense_std_normal(&p, &mut prior).unwrap();
                    for k in 0..n {
                        same((out[2 * k], prior[k]), want[k]);
                    }
                    // q broadcast on the p side too
                    let mut back = Array1::<T>::zeros(n);
                    nd::kl_dense(&q, &p, &mut back, &mut work).unwrap();
                    assert!(back.iter().all(|v| v.is_finite()));
                }
                // errors, outputs untouched
                let mut out = Array1::<T>::from_elem(n, 9.0);
                let p = nd::DenseGaussians::new(&ma, &c).unwrap();
                assert_eq!(nd::kl_dense(&p, &q, &mut out, &mut work[..3]).unwrap_err(), Error::WorkspaceTooSmall { expected: full::kl_scratch(d), found: 3 });
                assert_eq!(nd::kl_dense(&p, &q, out.slice_mut(s![..n - 1]), &mut work).unwrap_err(), Error::LengthMismatch { what: "out", expected: n, found: n - 1 });
                let two = nd::DenseGaussians::new(ma.slice(s![..2, ..]), c.slice(s![..2, .., ..])).unwrap();
                assert_eq!(nd::kl_dense(&p, &two, &mut out, &mut work).unwrap_err(), Error::BatchMismatch { what: "q", expected: n, found: 2 });
                assert_eq!(out, Array1::from_elem(n, 9.0));
                let gaps = c.slice(s![.., ..;2, ..;2]);
                assert!(matches!(nd::DenseGaussians::new(&Array2::<T>::zeros((n, d / 2)), gaps), Err(Error::Unsupported { what: "factors", .. })));
                assert!(matches!(nd::DenseGaussians::new(&ma, c.slice(s![..;-1, .., ..])), Err(Error::Unsupported { what: "factors", .. })));
                assert_eq!(nd::DenseGaussians::new(&ma, c.slice(s![.., .., 1..])).unwrap_err(), Error::LengthMismatch { what: "factors.cols", expected: d, found: d - 1 });
                let mut bad = c.clone();
                bad[[3, 1, 1]] = 0.0;
                assert!(matches!(nd::DenseGaussians::new(&ma, &bad), Err(Error::NonPositiveDiagonal { what: "factors", item: Some(3), index: 1, .. })));
            }

            #[test]
            fn ndarray_dense_batch_gradients() {
                let (n, d) = (5, 3);
                let (means, _, dense) = batch_data(n, d, 7);
                let (qmeans, _, qdense) = batch_data(1, d, 8);
                let up: Vec<T> = (0..n).map(|k| 0.25 + k as T * 0.5).collect();
                // the core: row-major factors, accumulating into zeroed buffers, pair by pair
                let mut work = vec![0.0; full::kl_grad_scratch(d)];
                let (mut rpm, mut rpl, mut rqm, mut rql) = (vec![0.0; n * d], vec![0.0; n * d * d], vec![0.0; d], vec![0.0; d * d]);
                let mut rout = vec![0.0; n];
                let (mut spm, mut spl, mut sout) = (vec![0.0; n * d], vec![0.0; n * d * d], vec![0.0; n]);
                let q = Gaussian::new(&qmeans, MatRef::row_major(d, &qdense).unwrap()).unwrap();
                for k in 0..n {
                    let p = Gaussian::new(&means[k * d..(k + 1) * d], MatRef::row_major(d, &dense[k * d * d..(k + 1) * d * d]).unwrap()).unwrap();
                    let acc = gaussian_kl::Mode::Accumulate;
                    let g = Grads::new(
                        GradMut::new(&mut rpm[k * d..(k + 1) * d], &mut rpl[k * d * d..(k + 1) * d * d]).mode(acc),
                        GradMut::new(&mut rqm, &mut rql).mode(acc),
                    );
                    rout[k] = full::kl_grad(&p, &q, up[k], g, &mut work).unwrap();
                    let g = GradMut::new(&mut spm[k * d..(k + 1) * d], &mut spl[k * d * d..(k + 1) * d * d]).mode(acc);
                    sout[k] = full::kl_std_normal_grad(&p, up[k], g).unwrap();
                }
                let ma = Array2::from_shape_vec((n, d), means.clone()).unwrap();
                let c = Array3::from_shape_vec((n, d, d), dense.clone()).unwrap();
                let mut f = Array3::<T>::zeros((n, d, d).f());
                f.assign(&c);
                let (qma, qla) = (Array2::from_shape_vec((1, d), qmeans.clone()).unwrap(), Array3::from_shape_vec((1, d, d), qdense.clone()).unwrap());
                let qd = nd::DenseGaussians::new(&qma, &qla).unwrap();
                let bits = |a: &[T], b: &[T]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                for (fac, fortran) in [(c.view(), false), (f.view(), true)] {
                    let p = nd::DenseGaussians::new(&ma, fac).unwrap();
                    let shape = if fortran { (n, d, d).f() } else { (n, d, d).into_shape_with_order() };
                    let (mut gpm, mut gpl) = (Array2::<T>::from_elem((n, d), 9.0), Array3::<T>::from_elem(shape, 9.0));
                    let (mut gqm, mut gql) = (Array2::<T>::zeros((1, d)), Array3::<T>::zeros((1, d, d)));
                    let mut out = Array1::<T>::zeros(n);
                    let grad = Grads::new(nd::DenseGradMut::new(&p, &mut gpm, &mut gpl).unwrap(), nd::DenseGradMut::new(&qd, &mut gqm, &mut gql).unwrap());
                    nd::kl_dense_grad(&p, &qd, &up, &mut out, grad, &mut work).unwrap();
                    assert!(bits(out.as_slice().unwrap(), &rout));
                    assert!(bits(gpm.as_slice().unwrap(), &rpm));
                    let gpl_c: Vec<T> = gpl.iter().copied().collect(); // logical (C) order
                    assert!(bits(&gpl_c, &rpl));
                    assert!(bits(gqm.as_slice().unwrap(), &rqm) && bits(gql.as_slice().unwrap(), &rql));
                    let (mut hm, mut hl) = (Array2::<T>::zeros((n, d)), Array3::<T>::zeros(shape));
                    let mut out = Array1::<T>::zeros(n);
                    nd::kl_dense_std_normal_grad(&p, &up, &mut out, nd::DenseGradMut::new(&p, &mut hm, &mut hl).unwrap()).unwrap();
                    let hl_c: Vec<T> = hl.iter().copied().collect();
                    assert!(bits(out.as_slice().unwrap(), &sout) && bits(hm.as_slice().unwrap(), &spm) && bits(&hl_c, &spl));
                    // errors: other strides; wrong upstream leaves every output untouched
                    let other = if fortran { (n, d, d).into_shape_with_order() } else { (n, d, d).f() };
                    let mut wrong = Array3::<T>::zeros(other);
                    assert!(matches!(nd::DenseGradMut::new(&p, &mut hm, &mut wrong), Err(Error::Unsupported { what: "grad.factor", .. })));
                    hm.fill(7.0);
                    let mut out = Array1::<T>::from_elem(n, 7.0);
                    let e = nd::kl_dense_std_normal_grad(&p, &up[1..], &mut out, nd::DenseGradMut::new(&p, &mut hm, &mut hl).unwrap());
                    assert_eq!(e.unwrap_err(), Error::LengthMismatch { what: "upstream", expected: n, found: n - 1 });
                    assert!(hm.iter().chain(out.iter()).all(|&v| v == 7.0));
                    // outputs built for another batch
                    let g = nd::DenseGradMut::new(&qd, &mut gqm, &mut gql).unwrap();
                    assert!(matches!(nd::kl_dense_std_normal_grad(&p, &up, &mut out, g), Err(Error::Unsupported { what: "grad", .. })));
                }
            }

            #[test]
            fn ndarray_diag_scores_and_grads() {
                let (np, nq, d) = (3, 5, 4);
                let mut r = Lcg(6);
                let mut draw = |len: usize, pos: bool| -> Vec<T> { (0..len).map(|_| { let v = r.next(); (if pos { 1.2 + v } else { v }) as T }).collect() };
                let (pm, pv, qm, qv) = (draw(np * d, false), draw(np * d, true), draw(nq * d, false), draw(nq * d, true));
                let (cp, cq) = (DiagGaussians::var(np, d, &pm, &pv).unwrap(), DiagGaussians::log_var(nq, d, &qm, &qv).unwrap());
                let a = |n, v: &Vec<T>| Array2::from_shape_vec((n, d), v.clone()).unwrap();
                let (apm, apv, aqm, aqv) = (a(np, &pm), a(np, &pv), a(nq, &qm), a(nq, &qv));
                let p = nd::diag_gaussians(&apm, &apv, Scale::Var).unwrap();
                let q = nd::diag_gaussians(&aqm, &aqv, Scale::LogVar).unwrap();
                for eq10 in [false, true] {
                    let f = if eq10 { diag::eq10_all_pairs::<T> } else { diag::kl_all_pairs::<T> };
                    let mut want = vec![0.0; np * nq];
                    f(&cp, &cq, &mut want).unwrap();
                    let mut out = Array2::<T>::zeros((np, nq));
                    f(&p, &q, nd::out_matrix(&mut out, np, nq).unwrap()).unwrap();
                    assert!(out.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()));
                }
                let up = draw(np * nq, false);
                let mut bufs = [vec![0.0; np * d], vec![0.0; np * d], vec![0.0; nq * d], vec![0.0; nq * d]];
                let [b0, b1, b2, b3] = &mut bufs;
                diag::kl_all_pairs_grad(&cp, &cq, &up, Grads::new(DiagGradMut::new(b0, b1), DiagGradMut::new(b2, b3))).unwrap();
                let (mut g0, mut g1, mut g2, mut g3) = (Array2::zeros((np, d)), Array2::zeros((np, d)), Array2::zeros((nq, d)), Array2::zeros((nq, d)));
                let grad = Grads::new(nd::diag_grad_mut(&p, &mut g0, &mut g1).unwrap(), nd::diag_grad_mut(&q, &mut g2, &mut g3).unwrap());
                diag::kl_all_pairs_grad(&p, &q, &up, grad).unwrap();
                for (g, b) in [(&g0, &bufs[0]), (&g1, &bufs[1]), (&g2, &bufs[2]), (&g3, &bufs[3])] {
                    assert_eq!(g.as_slice().unwrap(), &b[..]);
                }
                assert!(matches!(nd::diag_gaussians(apm.t(), apv.t(), Scale::Var), Err(Error::Unsupported { what: "means", .. }) | Err(Error::LengthMismatch { .. })));
                assert!(matches!(nd::diag_gaussians(&apm, apv.slice(s![.., ..;2]), Scale::Var), Err(Error::LengthMismatch { what: "spread.cols", .. })));
                let mut neg = apv.clone();
                neg[[1, 2]] = -1.0;
                assert!(matches!(nd::diag_gaussians(&apm, &neg, Scale::Var), Err(Error::NonPositiveVariance { what: "var", item: Some(1), index: 2, .. })));
                assert_eq!(nd::diag_grad_mut(&p, &mut g0, &mut g2).unwrap_err(), Error::LengthMismatch { what: "grad.spread.rows", expected: np, found: nq });
            }
        }
    };
}

suite!(f32_suite, f32);
suite!(f64_suite, f64);

/// Degenerate shapes: empty batches and d = 0 never panic.
#[test]
fn empty_and_zero_dimension() {
    let e = Array2::<f64>::zeros((0, 3));
    let ef = Array2::zeros((0, 6));
    let g = nd::gaussians(&e, &ef).unwrap();
    assert!(g.is_empty());
    let (zm, zl) = (Array2::<f64>::zeros((2, 0)), Array3::zeros((2, 0, 0)));
    let z = nd::DenseGaussians::new(&zm, &zl).unwrap();
    let mut out = Array1::from_elem(2, 1.0);
    nd::kl_dense_std_normal(&z, &mut out).unwrap();
    assert_eq!(out, Array1::<f64>::zeros(2));
    assert_eq!(nd::mat_ref(&Array2::<f32>::zeros((0, 0))).unwrap().dim(), 0);
    let m = nalgebra::DMatrix::<f64>::zeros(0, 0);
    assert_eq!(na::mat_ref(&m).unwrap().dim(), 0);
}
