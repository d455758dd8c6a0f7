"""The image's entry point: ``scripts/train.py`` on the GPU unless told otherwise.

    docker run --gpus all xpcnn                      train.py --device cuda
    docker run --gpus all xpcnn --epochs 5           train.py --device cuda --epochs 5
    docker run xpcnn --device cpu                    train.py --device cpu
    docker run --gpus all xpcnn doctor               xpcnn-doctor --device cuda (checks the GPU setup)
    docker run --gpus all xpcnn doctor --json /runs/doctor.json
    docker run --gpus all xpcnn python -m pytest -m gpu /opt/xpcnn/tests
                                                     any command that is not an option runs as is

``--device cuda`` is added only when the arguments name no device (for ``doctor`` too: in the
image a missing ``--gpus all`` should fail, not quietly check the CPU), so passing other
arguments keeps the GPU default (a plain ``CMD`` would be replaced by them).
"""

import os
import sys

TRAIN = "/opt/xpcnn/scripts/train.py"


def _on_cuda(args: "list[str]") -> "list[str]":
    if not any(a == "--device" or a.startswith("--device=") for a in args):
        return ["--device", "cuda", *args]
    return args


def command(args: "list[str]") -> "list[str]":
    """The command line to run for the container's arguments."""
    if args and args[0] == "doctor":
        return [sys.executable, "-m", "xpcnn.doctor", *_on_cuda(args[1:])]
    if args and not args[0].startswith("-"):
        return args
    return [sys.executable, TRAIN, *_on_cuda(args)]


if __name__ == "__main__":
    argv = command(sys.argv[1:])
    os.execvp(argv[0], argv)
