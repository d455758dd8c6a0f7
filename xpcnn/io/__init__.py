"""What goes to and from files: checkpoints, safe writes, and models for other libraries.

* :mod:`.checkpoint`: :func:`save_checkpoint` / :func:`load_checkpoint` (``.npz``, no pickle):
  the layers, parameters, buffers, optimizer state, schedule, loss and history;
* :mod:`.files`: :func:`check_output_path` and :func:`atomic_write`: an output is written to a
  temporary file and renamed, so a crash never leaves half a file, and a file the user gave as
  input is never written over;
* :mod:`.export`: ONNX graphs and safetensors weights (the ``export`` extra).
"""

from .checkpoint import load_checkpoint, load_model, read_metadata, save_checkpoint
from .files import atomic_write, check_output_path

__all__ = ["save_checkpoint", "load_checkpoint", "load_model", "read_metadata", "atomic_write", "check_output_path"]
