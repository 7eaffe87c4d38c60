"""`python -m parley`: the same command line as the `parley` script."""

import sys

from parley.cli import main

sys.exit(main())
