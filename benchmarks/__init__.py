"""The benchmark suite: ``python -m benchmarks [--quick]`` (``make bench`` / ``make bench-quick``).

Each module measures one thing and returns :class:`~benchmarks._common.Figure` objects; ``__main__``
runs them, then writes ``benchmarks/RESULTS.md`` and the PNG charts in ``benchmarks/charts/``.

- :mod:`benchmarks.peers`: this project against the scripts people write (boto3 + stock waiter,
  packed, packed + 1 s polling), on the emulator, same workload, same run.
- :mod:`benchmarks.throughput`: lane utilization, calls per reference and makespan against the
  service's lower bound, for thousands of references over several stores, with and without faults
  (throttling shared with a noisy neighbour, ambiguous 408s).
- :mod:`benchmarks.overhead`: CPU, memory, journal write throughput, resume time and scaling from
  1k to 100k rows and 1 to 50 stores, with a fake service at the gateway seam.
"""
