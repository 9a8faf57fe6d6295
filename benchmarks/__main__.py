"""``python -m benchmarks``: run the benchmark scenarios and print the table."""

import sys

from .core import main

sys.exit(main())
