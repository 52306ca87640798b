"""`python -m cnnjax.cli ...`: the same as the `cnnjax` command."""

import sys

from cnnjax.cli import run

sys.exit(run())
