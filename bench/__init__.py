"""Benchmarks; run each as ``python -m bench.NAME``. Not part of the test suite."""
