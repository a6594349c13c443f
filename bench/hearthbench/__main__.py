"""`python3 -m hearthbench`: the whole benchmark (see `run.main`)."""

import sys

from .run import main

sys.exit(main())
