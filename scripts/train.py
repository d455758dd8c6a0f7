#!/usr/bin/env python3
"""Train an xpcnn network: ``python scripts/train.py --help`` (same as the ``xpcnn-train`` command)."""

import sys

from xpcnn.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
