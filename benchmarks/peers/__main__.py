"""``python -m benchmarks.peers [--quick] [--json PATH] [--python PATH]``."""

import sys

from . import main

sys.exit(main())
