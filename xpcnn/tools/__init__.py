"""Tools around a model: gradient checks, its summary table, and timing.

* :mod:`.gradcheck`: :func:`gradcheck` (layers and models) and :func:`gradcheck_loss`, the one
  finite-difference checker (the tests and ``xpcnn-doctor`` use it);
* :mod:`.summary`: the table ``model.summary()`` prints;
* :mod:`.timing`: throughput and the statistics of interleaved rounds, for ``scripts/bench.py`` and the doctor;
* :mod:`.benchmark`: the benchmarks' workloads and contenders (xpcnn, per-sample, PyTorch), one
  configuration timed into result rows;
* :mod:`.roofline`: a network's matrix FLOPs against the machine's matrix-product peak;
* :mod:`.verdicts`: ratios between contenders, verdicts against ``benchmarks/targets.json``, and
  ``scripts/bench.py``'s printout;
* :mod:`.scaling`: ``scripts/bench_dist.py``'s data-parallel speed-ups.
"""

from .gradcheck import gradcheck, gradcheck_loss

__all__ = ["gradcheck", "gradcheck_loss"]
