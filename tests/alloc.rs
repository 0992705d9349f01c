//! Proof that the `no_std` kernels never allocate: a counting global
//! allocator (wrapping `System`, counting per thread so that tests running in
//! parallel do not see each other's allocations) and every public kernel run
//! on prepared inputs with the count checked around each call.
//!
//! To cover a new kernel, add one line to [`kernels`].

mod common;

use common::*;
use gaussian_kl::{Diagonal, Error, Layout, PackedTril, Real, full};
use std::hint::black_box;

mod counting;

use counting::allocations_during;

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
            work: vec![T::ZERO; full::workspace_len(D)],
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
        PackedTril::new(D, data).layout(layout).diagonal(diagonal)
    }
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
            sink(full::kl(&x.mean_p, p, &x.mean_q, q, &mut x.work))
        }),
        ("full::kl ColMajor/Log", |x| {
            let (p, q) = (
                x.packed(&x.col_p, ColMajor, Log),
                x.packed(&x.col_q, ColMajor, Log),
            );
            sink(full::kl(&x.mean_p, p, &x.mean_q, q, &mut x.work))
        }),
        ("full::kl DiagFirst/Log", |x| {
            let (p, q) = (
                x.packed(&x.diag_first_p, DiagFirst, Log),
                x.packed(&x.diag_first_q, DiagFirst, Log),
            );
            sink(full::kl(&x.mean_p, p, &x.mean_q, q, &mut x.work))
        }),
        ("full::kl RowMajor/Plain", |x| {
            let (p, q) = (
                x.packed(&x.plain_p, RowMajor, Plain),
                x.packed(&x.plain_q, RowMajor, Plain),
            );
            sink(full::kl(&x.mean_p, p, &x.mean_q, q, &mut x.work))
        }),
        ("full::kl_dense", |x| {
            sink(full::kl_dense(
                &x.mean_p,
                &x.dense_p,
                &x.mean_q,
                &x.dense_q,
                &mut x.work,
            ))
        }),
        ("full::kl_cov", |x| {
            sink(full::kl_cov(
                &x.mean_p,
                &x.cov_p,
                &x.mean_q,
                &x.cov_q,
                &mut x.work,
            ))
        }),
        ("full::kl_std_normal", |x| {
            sink(full::kl_std_normal(
                &x.mean_p,
                x.packed(&x.raw_p, RowMajor, Log),
            ))
        }),
        ("full::kl_std_normal_dense", |x| {
            sink(full::kl_std_normal_dense(&x.mean_p, &x.dense_p))
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
        ("full::workspace_len", |_| {
            sink(Ok(full::workspace_len(black_box(D))))
        }),
    ]
}

/// Error paths must not allocate either (an `Error` is plain data).
fn failing_kernels<T: Real>() -> Vec<(&'static str, Kernel<T>)> {
    vec![
        ("full::kl, workspace too small", |x| {
            let (p, q) = (PackedTril::new(D, &x.raw_p), PackedTril::new(D, &x.raw_q));
            sink(full::kl(&x.mean_p, p, &x.mean_q, q, &mut x.work[..1]))
        }),
        ("full::kl, short mean", |x| {
            let (p, q) = (PackedTril::new(D, &x.raw_p), PackedTril::new(D, &x.raw_q));
            sink(full::kl(&x.mean_p[1..], p, &x.mean_q, q, &mut x.work))
        }),
        ("full::kl_cov, not positive definite", |x| {
            sink(full::kl_cov(
                &x.mean_p,
                &x.cov_p,
                &x.mean_q,
                &x.indefinite,
                &mut x.work,
            ))
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
