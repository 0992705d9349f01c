// The firmware's inputs, shared by the firmware (f32, on the target) and by
// build.rs (the same f32 numbers widened exactly to f64, on the host). No
// dependency, no attribute: this file is `include!`d by both.

/// A full-rank pair, d = 3: means and packed factors in row-major
/// (PyTorch `tril_indices`) order with a raw log diagonal (`Lᵢᵢ = exp(raw)`).
pub struct FullCase {
    pub mean_p: [f32; 3],
    pub raw_p: [f32; 6],
    pub mean_q: [f32; 3],
    pub raw_q: [f32; 6],
}

/// A diagonal pair, d = 8: `p` is the query, `q` the document; variances.
pub struct DiagCase {
    pub mean_p: [f32; 8],
    pub var_p: [f32; 8],
    pub mean_q: [f32; 8],
    pub var_q: [f32; 8],
}

pub const FULL: [FullCase; 3] = [
    // Independent p and q, moderate spreads.
    FullCase {
        mean_p: [0.5, -1.25, 2.0],
        raw_p: [0.3, 0.8, -0.2, -0.5, 0.25, 0.1],
        mean_q: [-0.75, 0.4, 1.5],
        raw_q: [-0.1, 0.6, 0.35, 0.3, -0.7, -0.25],
    },
    // q the standard normal; p wide, strongly correlated.
    FullCase {
        mean_p: [1.0, 0.0, -2.0],
        raw_p: [1.2, -1.5, 0.4, 0.9, 2.0, -0.6],
        mean_q: [0.0, 0.0, 0.0],
        raw_q: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    },
    // p close to q: a small KL (cancellation: the relative error grows like S / KL).
    FullCase {
        mean_p: [0.1, 0.2, 0.3],
        raw_p: [-0.5, 0.3, -0.4, 0.1, -0.2, -0.3],
        mean_q: [0.125, 0.1875, 0.25],
        raw_q: [-0.45, 0.25, -0.375, 0.125, -0.25, -0.3125],
    },
];

pub const DIAG: [DiagCase; 2] = [
    DiagCase {
        mean_p: [0.2, 0.7, -0.1, 0.4, 1.5, -2.0, 0.0, 0.3],
        var_p: [0.5, 0.9, 0.3, 0.8, 1.2, 2.5, 0.05, 1.0],
        mean_q: [1.1, 1.3, 0.2, 0.6, 2.0, -1.0, 0.5, 0.0],
        var_q: [1.5, 2.0, 1.0, 1.2, 1.1, 1.4, 0.2, 3.0],
    },
    DiagCase {
        mean_p: [-0.3, 0.25, 0.6, -1.2, 0.9, 0.0, 0.45, -0.8],
        var_p: [0.01, 4.0, 0.6, 0.35, 2.2, 1.0, 0.75, 0.125],
        mean_q: [-0.25, 0.0, 0.75, -1.0, 1.0, 0.1, 0.4, -0.5],
        var_q: [0.02, 3.0, 0.5, 0.4, 2.0, 1.0, 0.8, 0.25],
    },
];
