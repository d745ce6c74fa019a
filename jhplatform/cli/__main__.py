"""``python -m jhplatform.cli``: the same as the ``jhplatform`` command."""

import sys

from . import main

sys.exit(main())
