"""The processing benchmark stays runnable (a very short run; the figures are not checked)."""

from __future__ import annotations

from benchmarks.processing import bench_engine, bench_pipeline


async def test_the_processing_benchmark_runs_and_keeps_one_window_per_key() -> None:
    engine = bench_engine(0.05)
    pipeline = await bench_pipeline(0.05, 0.02)
    assert engine["open_windows"] == pipeline["open_windows"] == 1_000
    assert engine["events"] > 0 and pipeline["events"] == 2_000
