#!/usr/bin/env python3
"""Train an xpcnn network: ``python scripts/train.py --help`` (same as the ``xpcnn-train`` command)."""

import sys

if __name__ == "__main__":
    try:  # importing xpcnn takes a moment; Ctrl-C then is one line, as during the run
        from xpcnn.app.cli import main
    except KeyboardInterrupt:
        sys.exit(print("error: interrupted while starting; nothing was trained or written", file=sys.stderr) or 130)
    sys.exit(main())
