"""Tools around a model: gradient checks, its summary table, and timing.

* :mod:`.gradcheck`: :func:`gradcheck` (layers and models) and :func:`gradcheck_loss`, the one
  finite-difference checker (the tests and ``xpcnn-doctor`` use it);
* :mod:`.summary`: the table ``model.summary()`` prints;
* :mod:`.timing`: throughput and its statistics, for ``scripts/bench.py`` and the doctor.
"""

from .gradcheck import gradcheck, gradcheck_loss

__all__ = ["gradcheck", "gradcheck_loss"]
