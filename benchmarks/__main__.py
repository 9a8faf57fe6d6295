"""``python -m benchmarks``: run the benchmark scenarios and print the table."""

import sys

from .cli import main

sys.exit(main())
