"""The engine: one Importer, one lane per store, each keeping its store busy with one job at a time.

* :mod:`~async_refimport.engine.importer`: :class:`~async_refimport.Importer`, the public face
  (submit, wait, subscribe, plan, status), which owns the lanes;
* :mod:`~async_refimport.engine.lane`: one store's loop (pack, write ahead, start, watch, settle,
  recover), with what every lane shares in :mod:`~async_refimport.engine.deps`;
* :mod:`~async_refimport.engine.start`: getting a job id; ``classify(error) -> StartAction`` is
  the one pure decision on a failed Start;
* :mod:`~async_refimport.engine.setup`: a store's first call, telling a set-up mistake
  (:class:`~async_refimport.SetupError`) from a data problem;
* :mod:`~async_refimport.engine.status` and :mod:`~async_refimport.engine.waiting`: what an
  Importer shows of itself, and waiting for rows to become final.
"""
