"""The ``refimport`` command line, one module per command (like pip's ``commands/``).

- :mod:`.main`: the dispatcher (``build_parser``, ``main``), and the exit code of an error no
  command handled;
- :mod:`.import_`, :mod:`.status`, :mod:`.report`, :mod:`.journal`, :mod:`.events`,
  :mod:`.demo`: each builds its own parser (``add_parser(sub)``) and runs (``run(args)``);
- :mod:`.outcome`: an import run's exit code (one pure function) and its closing lines;
- :mod:`.common`: what the commands share (options, AWS defaults, the journal, error lines).

Nothing is imported here: ``from async_refimport.cli import main`` is the dispatcher module.
"""
