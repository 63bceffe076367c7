"""``python -m limbseg`` = the ``limbseg`` command (also what ``torchrun -m limbseg`` launches)."""

import sys

from limbseg.cli import main

sys.exit(main())
