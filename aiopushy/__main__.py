"""``python -m aiopushy``: the same program as the ``aiopushy`` command."""

import sys

from .cli import main

sys.exit(main())
