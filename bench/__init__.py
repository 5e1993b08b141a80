"""Benchmarks run on demand: real trees, transfers and listings, each against a baseline."""
