"""``python -m async_refimport.emulator``: run the emulator until SIGINT/SIGTERM."""

import sys

from ._cli import main

sys.exit(main())
