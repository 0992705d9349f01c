//! The execution policy of the batched operations: threads, SIMD level and
//! kernel (feature `std`).
//!
//! Every batched operation (`batch::kl`, `batch::kl_grad`, `search::top_k`,
//! …) takes an [`Exec`]. The default runs on the calling thread with the
//! best SIMD level the CPU has and the kernel the operation picks for `d`.
//! Everything can be forced, for tests and benchmarks; a setting that the
//! operation cannot honour is an [`Error`], never silently ignored.
//!
//! ```
//! use gaussian_kl::{Exec, Kernel, Par};
//! use gaussian_kl::simd::Level;
//! let exec = Exec::new().level(Level::Scalar).kernel(Kernel::Lanes).par(Par::Seq);
//! assert_eq!(exec.resolved_level()?, Level::Scalar);
//! # Ok::<(), gaussian_kl::Error>(())
//! ```

use crate::error::Error;
use crate::simd::Level;

/// How many threads an operation runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Par {
    /// The calling thread only (the default).
    #[default]
    Seq,
    /// Split across `n` tasks on rayon's current pool (`0`: one per thread
    /// of the pool). Results are bit-identical to [`Par::Seq`]. Feature `rayon`.
    #[cfg(feature = "rayon")]
    Rayon(usize),
}

/// Which kernel computes a batch of full-rank pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kernel {
    /// The operation's choice for `d` (the default): lockstep for small
    /// `d`, blocked above where the operation has a blocked kernel.
    #[default]
    Auto,
    /// The scalar reference kernels, one pair at a time.
    Scalar,
    /// The lockstep kernel: one pair per SIMD lane.
    Lanes,
    /// The register-blocked kernel: one pair at a time, rows vectorized.
    Blocked,
}

/// Threads, SIMD level and kernel for a batched operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Exec {
    pub(crate) par: Par,
    pub(crate) level: Option<Level>,
    pub(crate) kernel: Kernel,
}

impl Exec {
    /// The defaults: one thread, the best level the CPU has, [`Kernel::Auto`].
    pub const fn new() -> Self {
        Exec {
            par: Par::Seq,
            level: None,
            kernel: Kernel::Auto,
        }
    }

    /// Threads.
    pub const fn par(self, par: Par) -> Self {
        Exec { par, ..self }
    }

    /// Forces a SIMD level. An operation given a level the host lacks
    /// returns [`Error::LevelUnavailable`].
    pub const fn level(self, level: Level) -> Self {
        Exec {
            level: Some(level),
            ..self
        }
    }

    /// Forces a kernel. An operation that has no such kernel returns
    /// [`Error::Unsupported`].
    pub const fn kernel(self, kernel: Kernel) -> Self {
        Exec { kernel, ..self }
    }

    /// The threading setting.
    pub const fn get_par(&self) -> Par {
        self.par
    }

    /// The forced kernel, or [`Kernel::Auto`].
    pub const fn get_kernel(&self) -> Kernel {
        self.kernel
    }

    /// The level that will run: the forced one if the host has it, else the
    /// best detected.
    ///
    /// # Errors
    /// [`Error::LevelUnavailable`] for a forced level the host lacks.
    pub fn resolved_level(&self) -> Result<Level, Error> {
        match self.level {
            None => Ok(Level::detect()),
            Some(level) if level.is_available() => Ok(level),
            Some(level) => Err(Error::LevelUnavailable { level }),
        }
    }

    /// The number of tasks a batch is split into (`1` for [`Par::Seq`]).
    pub fn tasks(&self) -> usize {
        match self.par {
            Par::Seq => 1,
            #[cfg(feature = "rayon")]
            Par::Rayon(0) => rayon::current_num_threads().max(1),
            #[cfg(feature = "rayon")]
            Par::Rayon(n) => n,
        }
    }
}
