//! Benchmarks of gaussian-kl against its peers: see `benches/` and `examples/`.
//!
//! The library part holds what every report shares: [`probe`] (the machine's
//! FMA peak per SIMD level and its streaming-read bandwidth at a working-set
//! size) and [`report`] (the roofline rows, their table and JSON).

pub mod probe;
pub mod report;
