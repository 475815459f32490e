"""``python -m bench``: run the suite and print the table (see bench.runner)."""

import sys

from bench.runner import main

sys.exit(main())
