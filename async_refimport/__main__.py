"""``refimport`` (and ``python -m async_refimport``): hands each command to its shell.

``worker`` goes to :mod:`._worker`, ``emulator`` to :mod:`.emulator`, everything else to
:mod:`._cli`. The shells never import each other; this dispatcher is the only module above them.
"""

from __future__ import annotations

import importlib.util
import sys

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``refimport``; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else None
    if command == "emulator":
        try:
            from .emulator._cli import main as emulator_main
        except ImportError as exc:
            sys.stderr.write(
                "error: the emulator needs the 'emulator' extra "
                f"(pip install 'async-refimport[emulator]'): {exc}\n"
            )
            return EXIT_USAGE
        return int(emulator_main(args[1:]) or 0)
    if command == "worker":
        if importlib.util.find_spec("async_refimport._worker") is None:
            sys.stderr.write("error: the worker is not part of this installation\n")
            return EXIT_USAGE
        from ._worker import main as worker_main

        return int(worker_main(args[1:]) or 0)
    from ._cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
