//! Benchmarks of gaussian-kl against its peers: see `benches/` and `examples/`.
