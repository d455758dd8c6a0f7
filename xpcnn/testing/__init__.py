"""The oracles: what xpcnn is checked against, by the tests, ``xpcnn-doctor`` and the benchmark.

Each is independent of the code it checks:

* :mod:`.derivation`: the derivation's loops (one sample, one channel pair at a time, with
  ``scipy.signal``), and the strided convolution one output position at a time;
* :mod:`.textbook`: the optimizers' update rules as their papers write them;
* :mod:`.torch_twins`: the same network in PyTorch with a copy of the weights;
* :mod:`.parity`: every layer, loss, optimizer and engine on a device against NumPy float64 on
  the host, and every gradient against finite differences (:func:`xpcnn.tools.gradcheck`).

NumPy, SciPy and PyTorch are allowed here (and only here, the backend, files and the doctor):
an oracle lives on the host, in float64.
"""
