"""Benchmarks of fastapi-streaming against what a FastAPI user would otherwise run.

Run ``python -m benchmarks --quick`` or ``--full`` (``make bench-quick`` / ``make bench``); see
``benchmarks/README.md``.
"""
