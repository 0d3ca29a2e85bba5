"""``python -m lukittu_release``: the same as the ``lukittu-release`` command."""

import sys

from lukittu_release.cli import main

sys.exit(main())
