"""``xpcnn-doctor``: does xpcnn work on this machine, and how fast? (``python -m xpcnn.doctor``)."""
