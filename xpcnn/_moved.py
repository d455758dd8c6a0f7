"""Where modules moved when the package was laid out by job (0.1): the old import paths still work.

``from xpcnn.checkpoint import save_checkpoint`` keeps working, with a ``DeprecationWarning``
that names the new path (``xpcnn.io.checkpoint``). Nothing is imported until an old path is
asked for: a finder on ``sys.meta_path`` answers only for the names in :data:`MOVED`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old module -> new module
MOVED = {
    "xpcnn.checkpoint": "xpcnn.io.checkpoint",
    "xpcnn.outputs": "xpcnn.io.files",
    "xpcnn.export": "xpcnn.io.export",
    "xpcnn.optimizers": "xpcnn.optim.optimizers",
    "xpcnn.schedules": "xpcnn.optim.schedules",
    "xpcnn.early_stopping": "xpcnn.train.early_stopping",
    "xpcnn.training": "xpcnn.train",
    "xpcnn.parallel": "xpcnn.distributed.data_parallel",
    "xpcnn.comm_backend": "xpcnn.distributed.world",
    "xpcnn.summary": "xpcnn.tools.summary",
    "xpcnn.timing": "xpcnn.tools.timing",
    "xpcnn.validation": "xpcnn._checks",
    "xpcnn.cli": "xpcnn.app.cli",
    "xpcnn.run": "xpcnn.app.run",
    "xpcnn.settings": "xpcnn.app.settings",
    "xpcnn.reporting": "xpcnn.app.reporting",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec):
        module = importlib.import_module(self.new)
        self.spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = self.spec  # the import machinery gave the module the old name's spec: undo that


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        new = MOVED.get(name)
        if new is None:
            return None
        warnings.warn(f"{name} moved to {new}; import it from there", DeprecationWarning, stacklevel=3)
        return importlib.util.spec_from_loader(name, _Alias(new))


if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedFinder())
