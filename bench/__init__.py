"""Benchmarks: one command each, results in bench/README.md (not part of the test suite)."""
