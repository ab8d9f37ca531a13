"""Benchmarks that report ratios against a baseline run in the same process on the same data (`make bench`)."""
