"""The training loop, a component of its own (Keras's ``Trainer``): it drives a model through its
public API and imports no model class.

* :mod:`.trainer`: :class:`Trainer`, mixed into :class:`xpcnn.Sequential`: ``compile``, ``fit``,
  ``evaluate``, ``predict``, ``train_step``;
* :mod:`.loop`: the epochs of ``fit`` and the evaluation batches;
* :mod:`.batches`: each batch moved to the model's device and dtype;
* :mod:`.data_checks`: what is checked before any work, and how batches are cut;
* :mod:`.metrics`: right answers (:func:`output_classes`) and the epoch's running loss;
* :mod:`.step_guard`: every step's loss checked without a host synchronisation;
* :mod:`.early_stopping`: :class:`EarlyStopping`.
"""

from .early_stopping import EarlyStopping
from .metrics import correct_count, output_classes, predict_classes
from .trainer import Trainer

__all__ = ["Trainer", "EarlyStopping", "output_classes", "correct_count", "predict_classes"]
