"""Cut the embedded real-MNIST sample from the MNIST test set (run once; output is committed).

    python scripts/make_sample.py ../shared/data/mnist xpcnn/datasets/sample

Takes the first PER_CLASS images of each digit, in file order, from t10k-*-idx*-ubyte.gz and
writes them, in that order, as sample-images-idx3-ubyte.gz / sample-labels-idx1-ubyte.gz.
"""

import hashlib
import sys
from pathlib import Path

import numpy as np

from xpcnn.datasets.idx import read_idx_pair, write_idx

PER_CLASS = 200

if __name__ == "__main__":
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    images, labels = read_idx_pair(src / "t10k-images-idx3-ubyte.gz", src / "t10k-labels-idx1-ubyte.gz")
    keep = np.sort(np.concatenate([np.flatnonzero(labels == d)[:PER_CLASS] for d in range(10)]))
    dst.mkdir(parents=True, exist_ok=True)
    write_idx(dst / "sample-images-idx3-ubyte.gz", images[keep])
    write_idx(dst / "sample-labels-idx1-ubyte.gz", labels[keep])
    for name in ("sample-images-idx3-ubyte.gz", "sample-labels-idx1-ubyte.gz"):
        data = (dst / name).read_bytes()
        print(f"{name}  {len(data)} bytes  sha256 {hashlib.sha256(data).hexdigest()}")
