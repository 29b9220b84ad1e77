"""`python -m tessera.core.cli`: the `tessera` command, as the server's supervisor starts its
workers (`app.serving`) with the same interpreter, whatever the `tessera` script's path."""

import sys

from tessera.core.cli import main

sys.exit(main())
