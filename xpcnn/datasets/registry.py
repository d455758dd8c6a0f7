"""Where MNIST and Fashion-MNIST live and what their files must hash to.

Each file has two SHA-256 digests:

* ``sha256``: the ``.gz`` file as published on the mirrors (what a download must match);
* ``content_sha256``: the uncompressed IDX bytes, so a local copy that was re-compressed
  (Debian's ``dataset-fashion-mnist`` strips the name from the gzip header) or gunzipped is
  recognised too. ``None`` where no trusted copy was at hand to compute it (MNIST's training
  files): then only the published ``.gz`` is accepted.

A local file that matches neither digest is never used.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IdxFile:
    """One published IDX file: its ``.gz`` name and digests."""

    name: str
    sha256: str
    content_sha256: "str | None" = None

    @property
    def stem(self) -> str:
        """The uncompressed file name (``train-images-idx3-ubyte``)."""
        return self.name[:-3] if self.name.endswith(".gz") else self.name


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset of four IDX files: ``splits[split] = (images, labels)``."""

    name: str
    splits: "dict[str, tuple[IdxFile, IdxFile]]"
    mirrors: "tuple[str, ...]"
    system_dirs: "tuple[str, ...]" = ()
    class_names: "tuple[str, ...]" = tuple(str(d) for d in range(10))
    install_hint: str = ""

    def files(self) -> "list[IdxFile]":
        return [f for pair in self.splits.values() for f in pair]


MNIST = DatasetInfo(
    name="mnist",
    splits={
        "train": (
            IdxFile("train-images-idx3-ubyte.gz",
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            IdxFile("train-labels-idx1-ubyte.gz",
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        ),
        "test": (
            IdxFile("t10k-images-idx3-ubyte.gz",
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
            IdxFile("t10k-labels-idx1-ubyte.gz",
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        ),
    },
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
)

FASHION_MNIST = DatasetInfo(
    name="fashion-mnist",
    splits={
        "train": (
            IdxFile("train-images-idx3-ubyte.gz",
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
            IdxFile("train-labels-idx1-ubyte.gz",
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        ),
        "test": (
            IdxFile("t10k-images-idx3-ubyte.gz",
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
            IdxFile("t10k-labels-idx1-ubyte.gz",
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        ),
    },
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    install_hint="on Debian/Ubuntu: apt install dataset-fashion-mnist",
)

#: Datasets by name (tests swap in small fakes).
DATASETS: "dict[str, DatasetInfo]" = {"mnist": MNIST, "fashion-mnist": FASHION_MNIST}
