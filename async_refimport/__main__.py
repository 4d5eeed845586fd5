"""``refimport`` (and ``python -m async_refimport``): hands each command to its shell.

``worker`` goes to :mod:`async_refimport.worker.main`, ``emulator`` to
:mod:`async_refimport.emulator._cli`, ``completion`` to :mod:`async_refimport._shell_completion`,
everything else to :mod:`async_refimport.cli.main`. The shells never import each other; this
dispatcher is the only module above them, and it imports a shell only once it is chosen (a
command starts without loading the others).
"""

from __future__ import annotations

import importlib.util
import sys

from async_refimport._logconfig import guard_standard_streams

#: The exit code of a usage error (``ExitCode.INVALID_INPUT``, not imported: it would load rich).
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``refimport``: hand the command line to the shell of its command.

    Args:
        argv: The arguments after the program's name (default: ``sys.argv[1:]``).

    Returns:
        The exit code of the shell, or 2 when the shell is not installed.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    guard_standard_streams()  # started with 2>&- or >&-: no file opened takes their place
    try:
        return _dispatch(args)
    except ImportError as exc:
        # The emulator's extra (moto) is imported only when an emulator starts: the demo, the
        # emulator command. Without it, one line says what to install instead of a traceback.
        hint = _missing_extra_hint(exc)
        if hint is None:
            raise
        sys.stderr.write(f"error: {hint}\n")
        return EXIT_USAGE


def _dispatch(args: list[str]) -> int:
    command = args[0] if args else None
    if command == "emulator":
        from .emulator._cli import main as emulator_main

        return int(emulator_main(args[1:]) or 0)
    if command == "worker":
        if importlib.util.find_spec("async_refimport.worker.main") is None:
            sys.stderr.write("error: the worker is not part of this installation\n")
            return EXIT_USAGE
        from async_refimport.worker.main import main as worker_main

        return int(worker_main(args[1:]) or 0)
    if command == "completion":
        from async_refimport._shell_completion import main as completion_main

        return completion_main(args[1:])
    from async_refimport.cli.main import main as cli_main

    return cli_main(args)


def _missing_extra_hint(error: ImportError) -> str | None:
    try:
        from .emulator import missing_extra_hint
    except ImportError:  # pragma: no cover - the emulator package itself is part of the library
        return None
    return missing_extra_hint(error)


if __name__ == "__main__":
    sys.exit(main())
