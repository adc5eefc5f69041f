"""Benchmarks of the clickstream worker against the naive baseline (issue 6).

Run everything with ``python -m bench.run`` (``--quick`` for a ~3 minute pass); results go
to ``bench/results/``. Benchmarks are deliberately not part of the pytest suite.
"""
