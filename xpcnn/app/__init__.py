"""The command-line program ``xpcnn-train`` (``python scripts/train.py``): what one run does.

* :mod:`.cli`: the arguments, and one-line errors with a non-zero exit;
* :mod:`.settings`: a run's settings, one typed object built once (with a checkpoint's);
* :mod:`.run`: the data, the model, training, the test pass and the reports;
* :mod:`.ranks`: the same run on every rank of an ``mpiexec`` job;
* :mod:`.reporting`: progress, the metrics JSON, the confusion matrix and the plot.
"""
