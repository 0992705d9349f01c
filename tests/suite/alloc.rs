//! Proof that the `no_std` kernels never allocate: a counting global
//! allocator (wrapping `System`, counting per thread so that tests running in
//! parallel do not see each other's allocations) and every public kernel run
//! on prepared inputs with the count checked around each call.
//!
//! To cover a new kernel, add one line to [`kernels`].

use crate::common::*;
use gaussian_kl::{
    Diagonal, Error, Factor, Gaussian, GradMut, Grads, Layout, MatRef, Mode, PackedTril, Real, full,
};
use std::hint::black_box;

use crate::counting::allocations_during;

/// Dimension of the runtime kernels' inputs, and `D` of the fixed ones.
const D: usize = 8;

/// Everything the kernels read, prepared (allocated) before any measurement.
struct Inputs<T> {
    mean_p: Vec<T>,
    mean_q: Vec<T>,
    /// Row-major packed, log diagonal.
    raw_p: Vec<T>,
    raw_q: Vec<T>,
    /// ColMajor / DiagFirst reorderings of `raw_p`, `raw_q`.
    col_p: Vec<T>,
    col_q: Vec<T>,
    diag_first_p: Vec<T>,
    diag_first_q: Vec<T>,
    /// Row-major packed, plain diagonal.
    plain_p: Vec<T>,
    plain_q: Vec<T>,
    /// Dense row-major factors (plain diagonal) and covariances.
    dense_p: Vec<T>,
    dense_q: Vec<T>,
    cov_p: Vec<T>,
    cov_q: Vec<T>,
    /// `cov_p` with its last diagonal entry negative.
    indefinite: Vec<T>,
    /// Fixed-size copies.
    arr_mean_p: [T; D],
    arr_mean_q: [T; D],
    arr_p: [[T; D]; D],
    arr_q: [[T; D]; D],
    /// Buffers the kernels write.
    work: Vec<T>,
    grad_work: Vec<T>,
    /// Gradient buffers: means, and factors as long as a dense `D × D`.
    g: [Vec<T>; 4],
    out: Vec<T>,
    chol_dense: Vec<T>,
    chol_packed: Vec<T>,
}

impl<T: Real> Inputs<T> {
    fn new(seed: u64) -> Self {
        let c = Case::random(&mut rng(seed), D).round::<T>();
        let plain_p = log_to_plain(D, &c.raw_p);
        let plain_q = log_to_plain(D, &c.raw_q);
        let dense_p = packed_to_dense(D, &plain_p, T::ZERO);
        let dense_q = packed_to_dense(D, &plain_q, T::ZERO);
        let cov = |dense: &[T]| -> Vec<T> { round(&gram(D, &widen(dense))) };
        let arr = |dense: &[T]| -> [[T; D]; D] {
            core::array::from_fn(|i| core::array::from_fn(|j| dense[i * D + j]))
        };
        let mut indefinite = cov(&dense_p);
        indefinite[D * D - 1] = -T::ONE;
        Inputs {
            indefinite,
            arr_mean_p: c.mean_p.clone().try_into().unwrap(),
            arr_mean_q: c.mean_q.clone().try_into().unwrap(),
            arr_p: arr(&dense_p),
            arr_q: arr(&dense_q),
            col_p: to_layout(D, &c.raw_p, Layout::ColMajor),
            col_q: to_layout(D, &c.raw_q, Layout::ColMajor),
            diag_first_p: to_layout(D, &c.raw_p, Layout::DiagFirst),
            diag_first_q: to_layout(D, &c.raw_q, Layout::DiagFirst),
            cov_p: cov(&dense_p),
            cov_q: cov(&dense_q),
            work: vec![T::ZERO; full::kl_scratch(D)],
            grad_work: vec![T::ZERO; full::kl_grad_scratch(D)],
            g: [
                vec![T::ZERO; D],
                vec![T::ZERO; D * D],
                vec![T::ZERO; D],
                vec![T::ZERO; D * D],
            ],
            out: vec![T::ZERO; D * D],
            chol_dense: vec![T::ZERO; D * D],
            chol_packed: vec![T::ZERO; tril(D)],
            mean_p: c.mean_p,
            mean_q: c.mean_q,
            raw_p: c.raw_p,
            raw_q: c.raw_q,
            plain_p,
            plain_q,
            dense_p,
            dense_q,
        }
    }

    /// Refills the buffers the Cholesky kernels factor in place.
    fn reset(&mut self) {
        self.chol_dense.copy_from_slice(&self.cov_p);
        for i in 0..D {
            for j in 0..=i {
                self.chol_packed[rm(i, j)] = self.cov_p[i * D + j];
            }
        }
    }

    fn packed<'a>(&self, data: &'a [T], layout: Layout, diagonal: Diagonal) -> PackedTril<'a, T> {
        PackedTril::with_layout(D, data, layout, diagonal).unwrap()
    }
}

/// `full::kl` of two (mean, factor) pairs, the views built inside the
/// measured call.
fn kl<'a, T: Real>(
    mp: &'a [T],
    lp: impl Into<Factor<'a, T>>,
    mq: &'a [T],
    lq: impl Into<Factor<'a, T>>,
    work: &mut [T],
) -> Result<T, Error> {
    full::kl(&Gaussian::new(mp, lp)?, &Gaussian::new(mq, lq)?, work)
}

/// `full::kl_grad` of the packed row-major pair (`n` = factor length).
fn grad_packed<T: Real>(x: &mut Inputs<T>, mode: Mode) -> Result<T, Error> {
    let t = tril(D);
    let p = Gaussian::packed(&x.mean_p, &x.raw_p)?;
    let q = Gaussian::packed(&x.mean_q, &x.raw_q)?;
    let [a, b, c, e] = &mut x.g;
    let g = Grads::new(
        GradMut::new(a, &mut b[..t]).mode(mode),
        GradMut::new(c, &mut e[..t]).mode(mode),
    );
    full::kl_grad(&p, &q, T::ONE, g, &mut x.grad_work)
}

/// A kernel call on prepared inputs; its result is passed through `black_box`.
type Kernel<T> = fn(&mut Inputs<T>) -> Result<(), Error>;

fn sink<V>(r: Result<V, Error>) -> Result<(), Error> {
    r.map(|v| {
        black_box(v);
    })
}

/// Every public `no_std` kernel, one line each: its name and a call.
fn kernels<T: Real>() -> Vec<(&'static str, Kernel<T>)> {
    use Diagonal::{Log, Plain};
    use Layout::{ColMajor, DiagFirst, RowMajor};
    vec![
        ("full::kl RowMajor/Log", |x| {
            let (p, q) = (
                x.packed(&x.raw_p, RowMajor, Log),
                x.packed(&x.raw_q, RowMajor, Log),
            );
            sink(kl(&x.mean_p, p, &x.mean_q, q, &mut x.work))
        }),
        ("full::kl ColMajor/Log", |x| {
            let (p, q) = (
                x.packed(&x.col_p, ColMajor, Log),
                x.packed(&x.col_q, ColMajor, Log),
            );
            sink(kl(&x.mean_p, p, &x.mean_q, q, &mut x.work))
        }),
        ("full::kl DiagFirst/Log", |x| {
            let (p, q) = (
                x.packed(&x.diag_first_p, DiagFirst, Log),
                x.packed(&x.diag_first_q, DiagFirst, Log),
            );
            sink(kl(&x.mean_p, p, &x.mean_q, q, &mut x.work))
        }),
        ("full::kl RowMajor/Plain", |x| {
            let (p, q) = (
                x.packed(&x.plain_p, RowMajor, Plain),
                x.packed(&x.plain_q, RowMajor, Plain),
            );
            sink(kl(&x.mean_p, p, &x.mean_q, q, &mut x.work))
        }),
        ("full::kl, dense row-major", |x| {
            let (p, q) = (
                MatRef::row_major(D, &x.dense_p)?,
                MatRef::row_major(D, &x.dense_q)?,
            );
            sink(kl(&x.mean_p, p, &x.mean_q, q, &mut x.work))
        }),
        ("full::kl, dense column-major and strided", |x| {
            let p = MatRef::col_major(D, &x.dense_p)?.transpose();
            let q = MatRef::from_strides(D, &x.dense_q, D, 1)?;
            sink(kl(&x.mean_q, p, &x.mean_p, q, &mut x.work))
        }),
        ("full::kl_cov", |x| {
            let (p, q) = (
                MatRef::row_major(D, &x.cov_p)?,
                MatRef::col_major(D, &x.cov_q)?,
            );
            sink(full::kl_cov(&x.mean_p, p, &x.mean_q, q, &mut x.work))
        }),
        ("full::kl_std_normal", |x| {
            let p = Gaussian::new(&x.mean_p, x.packed(&x.raw_p, RowMajor, Log))?;
            sink(full::kl_std_normal(&p))
        }),
        ("full::kl_std_normal, dense", |x| {
            let p = Gaussian::new(&x.mean_p, MatRef::row_major(D, &x.dense_p)?)?;
            sink(full::kl_std_normal(&p))
        }),
        ("full::kl_grad, packed", |x| {
            sink(grad_packed(x, Mode::Overwrite))
        }),
        ("full::kl_grad, packed, accumulate", |x| {
            sink(grad_packed(x, Mode::Accumulate))
        }),
        ("full::kl_grad, dense column-major", |x| {
            let p = Gaussian::new(&x.mean_p, MatRef::col_major(D, &x.dense_p)?)?;
            let q = Gaussian::new(&x.mean_q, MatRef::row_major(D, &x.dense_q)?)?;
            let [a, b, c, e] = &mut x.g;
            let g = Grads::new(GradMut::new(a, b), GradMut::new(c, e));
            sink(full::kl_grad(&p, &q, T::ONE, g, &mut x.grad_work))
        }),
        ("full::kl_std_normal_grad", |x| {
            let p = Gaussian::new(&x.mean_p, x.packed(&x.col_p, ColMajor, Log))?;
            let [a, b, ..] = &mut x.g;
            sink(full::kl_std_normal_grad(
                &p,
                T::ONE,
                GradMut::new(a, &mut b[..tril(D)]),
            ))
        }),
        ("full::kl_std_normal_grad, dense", |x| {
            let p = Gaussian::new(&x.mean_p, MatRef::row_major(D, &x.dense_p)?)?;
            let [a, b, ..] = &mut x.g;
            sink(full::kl_std_normal_grad(&p, T::ONE, GradMut::new(a, b)))
        }),
        ("full::kl_grad_fixed", |x| {
            sink(full::kl_grad_fixed(
                &x.arr_mean_p,
                &x.arr_p,
                &x.arr_mean_q,
                &x.arr_q,
                T::ONE,
            ))
        }),
        ("full::kl_grad_packed_fixed", |x| {
            let (p, q) = (
                x.packed(&x.plain_p, RowMajor, Plain),
                x.packed(&x.plain_q, RowMajor, Plain),
            );
            let t = tril(D);
            let [a, b, c, e] = &mut x.g;
            let g = Grads::new(GradMut::new(a, &mut b[..t]), GradMut::new(c, &mut e[..t]));
            sink(full::kl_grad_packed_fixed(
                &x.arr_mean_p,
                p,
                &x.arr_mean_q,
                q,
                T::ONE,
                g,
            ))
        }),
        ("full::kl_fixed", |x| {
            sink(full::kl_fixed(
                &x.arr_mean_p,
                &x.arr_p,
                &x.arr_mean_q,
                &x.arr_q,
            ))
        }),
        ("full::kl_packed_fixed", |x| {
            let (p, q) = (
                x.packed(&x.col_p, ColMajor, Log),
                x.packed(&x.col_q, ColMajor, Log),
            );
            sink(full::kl_packed_fixed(&x.arr_mean_p, p, &x.arr_mean_q, q))
        }),
        ("full::cholesky_in_place", |x| {
            sink(full::cholesky_in_place(D, &mut x.chol_dense))
        }),
        ("full::cholesky_packed_in_place", |x| {
            sink(full::cholesky_packed_in_place(D, &mut x.chol_packed))
        }),
        ("PackedTril::expand_dense", |x| {
            sink(
                x.packed(&x.diag_first_p, DiagFirst, Log)
                    .expand_dense(&mut x.out),
            )
        }),
        ("full::kl_scratch, kl_grad_scratch, kl_cov_scratch", |_| {
            sink(Ok(full::kl_scratch(black_box(D))
                + full::kl_grad_scratch(black_box(D))
                + full::kl_cov_scratch(black_box(D))))
        }),
    ]
}

/// Error paths must not allocate either (an `Error` is plain data).
fn failing_kernels<T: Real>() -> Vec<(&'static str, Kernel<T>)> {
    vec![
        ("full::kl, workspace too small", |x| {
            let (p, q) = (PackedTril::new(D, &x.raw_p)?, PackedTril::new(D, &x.raw_q)?);
            sink(kl(&x.mean_p, p, &x.mean_q, q, &mut x.work[..1]))
        }),
        ("Gaussian::new, short mean", |x| {
            let p = PackedTril::new(D, &x.raw_p)?;
            sink(Gaussian::new(&x.mean_p[1..], p))
        }),
        ("full::kl, q of another dimension", |x| {
            let p = Gaussian::packed(&x.mean_p, &x.raw_p)?;
            let q = Gaussian::packed(&x.mean_q[1..], &x.raw_q[..tril(D - 1)])?;
            sink(full::kl(&p, &q, &mut x.work))
        }),
        ("full::kl_grad, short gradient buffer", |x| {
            let p = Gaussian::packed(&x.mean_p, &x.raw_p)?;
            let [a, b, c, e] = &mut x.g;
            let g = Grads::new(GradMut::new(a, &mut b[..3]), GradMut::new(c, e));
            sink(full::kl_grad(&p, &p, T::ONE, g, &mut x.grad_work))
        }),
        ("MatRef::row_major, short data", |x| {
            sink(MatRef::row_major(D, &x.dense_p[1..]))
        }),
        (
            "PackedTril::with_layout, non-positive plain diagonal",
            |_| {
                let zeros = [T::ZERO; D * (D + 1) / 2];
                sink(PackedTril::with_layout(
                    D,
                    &zeros,
                    Layout::RowMajor,
                    Diagonal::Plain,
                ))
            },
        ),
        ("full::kl_cov, not positive definite", |x| {
            let (p, q) = (
                MatRef::row_major(D, &x.cov_p)?,
                MatRef::row_major(D, &x.indefinite)?,
            );
            sink(full::kl_cov(&x.mean_p, p, &x.mean_q, q, &mut x.work))
        }),
        ("full::cholesky_in_place, not positive definite", |x| {
            x.chol_dense.copy_from_slice(&x.indefinite);
            sink(full::cholesky_in_place(D, &mut x.chol_dense))
        }),
    ]
}

fn no_allocations<T: Real>() {
    let mut x = Inputs::<T>::new(42);
    for (name, kernel) in kernels::<T>() {
        x.reset();
        let mut result = Ok(());
        let n = allocations_during(|| result = kernel(&mut x));
        assert_eq!(result, Ok(()), "{name} failed on valid inputs");
        assert_eq!(
            n,
            0,
            "{name} ({}) allocated {n} times",
            core::any::type_name::<T>()
        );
    }
    for (name, kernel) in failing_kernels::<T>() {
        x.reset();
        let mut result = Ok(());
        let n = allocations_during(|| result = kernel(&mut x));
        assert!(result.is_err(), "{name} should have failed");
        assert_eq!(
            n,
            0,
            "{name} ({}) allocated {n} times",
            core::any::type_name::<T>()
        );
    }
}

#[test]
fn kernels_do_not_allocate_f64() {
    no_allocations::<f64>();
}

#[test]
fn kernels_do_not_allocate_f32() {
    no_allocations::<f32>();
}

/// The counter itself works, so the tests above can fail.
#[test]
fn the_counter_sees_allocations() {
    let n = allocations_during(|| {
        black_box(Vec::<u8>::with_capacity(black_box(16)));
    });
    assert_eq!(n, 1);
}
