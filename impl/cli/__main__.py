"""``python -m impl.cli`` (what ``torchrun -m impl.cli`` runs): the ``iddpm`` entry point."""

import sys

from impl.cli import main

sys.exit(main())
