"""``refimport worker``: a long-lived process importing what its intakes receive.

The package, shell first:

* :mod:`.main`: the shell; ``main(argv)`` parses the flags, runs the worker under the signal
  handlers (two-step shutdown) and returns the exit code (``python -m async_refimport.worker.main``);
* :mod:`.config`: :class:`~.config.WorkerConfig` and the parser;
* :mod:`.app`: :class:`~.app.Worker`, the intakes and the journal's maintenance around one Importer;
* :mod:`.intake`: the :class:`~.intake.Intake` shape, what an intake is built from, the factories;
* ``intakes/``: the spool directory, the HTTP API and the SQS intake, independent of each other.

The entry point is ``async_refimport.worker.main:main``; it is not re-exported here, because a
function named ``main`` in this package would hide the module of that name.
"""
