"""``python -m xpcnn.doctor``: the same as the ``xpcnn-doctor`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
