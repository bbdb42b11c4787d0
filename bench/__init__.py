"""Benchmarks: `python -m bench` runs the `main()` of every `bench/*_bench.py` module."""
