"""sen.bench: benchmarks that measure real work and print their figures."""
