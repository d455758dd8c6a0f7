"""MNIST / Fashion-MNIST loading (xpcnn/datasets/mnist.py, load.py, registry.py).

A tiny fake dataset (four small IDX files with their digests) stands in for the real ones, so
the search order, the checksums and the offline error are tested without any download. The
one real download test serves files from a loopback HTTP server: nothing leaves the machine.
"""

import functools
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from xpcnn.datasets import DATASETS, DataNotFoundError, load_dataset, load_mnist, load_split, search_places
from xpcnn.errors import DataError
from xpcnn.datasets import mnist as mnist_module
from xpcnn.datasets.idx import write_idx
from xpcnn.datasets.registry import DatasetInfo, IdxFile

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
REAL_DOWNLOAD = mnist_module._download  # the pooch one, before any test replaces it
NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def make_files(folder: Path) -> "dict[str, bytes]":
    """Four small IDX files (.gz) in ``folder``; returns their bytes by name."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        NAMES[0]: rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        NAMES[1]: np.array([0, 1, 2, 0, 1, 2], dtype=np.uint8),
        NAMES[2]: rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        NAMES[3]: np.array([2, 1, 0], dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(folder / name, array)
    return {name: (folder / name).read_bytes() for name in arrays}


def info_for(raw: "dict[str, bytes]", mirrors=("http://mirror.invalid/",), system_dirs=(), content=True):
    def entry(name):
        data = raw[name]
        return IdxFile(name, hashlib.sha256(data).hexdigest(),
                       hashlib.sha256(gzip.decompress(data)).hexdigest() if content else None)

    splits = {"train": (entry(NAMES[0]), entry(NAMES[1])), "test": (entry(NAMES[2]), entry(NAMES[3]))}
    return DatasetInfo("fake", splits,
                       tuple(mirrors), tuple(str(d) for d in system_dirs), install_hint="apt install fake")


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A fake dataset registered as ``fake``, an empty cache, no $XPCNN_DATA, downloads that fail."""
    originals = make_files(tmp_path / "originals")
    monkeypatch.delenv("XPCNN_DATA", raising=False)
    monkeypatch.delenv("XPCNN_OFFLINE", raising=False)
    monkeypatch.setattr(mnist_module, "cache_dir", lambda name: tmp_path / "cache" / name)
    calls = []

    def offline_download(url, sha256, folder, fname, progress):
        calls.append(url)
        raise ConnectionError(f"cannot reach {url}")

    monkeypatch.setattr(mnist_module, "_download", offline_download)
    info = info_for(originals, system_dirs=[tmp_path / "system"])
    monkeypatch.setitem(DATASETS, "fake", info)

    class Env:
        root, raw, downloads = tmp_path, originals, calls

        def place(self, folder: Path, names=NAMES, gunzip=False):
            folder.mkdir(parents=True, exist_ok=True)
            for name in names:
                if gunzip:
                    (folder / name[:-3]).write_bytes(gzip.decompress(originals[name]))
                else:
                    (folder / name).write_bytes(originals[name])
            return folder

    return Env()


def test_search_order_is_data_dir_env_cache_system(env, monkeypatch):
    monkeypatch.setenv("XPCNN_DATA", str(env.root / "envdata"))
    places = search_places("fake", env.root / "mine")
    assert [label for label, _ in places] == ["data_dir", "data_dir", "$XPCNN_DATA", "$XPCNN_DATA",
                                              "user cache", "system folder"]
    assert places[1][1] == env.root / "mine" / "fake" and places[3][1] == env.root / "envdata" / "fake"
    assert places[4][1] == env.root / "cache" / "fake" and places[5][1] == env.root / "system"


def test_each_place_is_used_when_the_earlier_ones_are_empty(env, monkeypatch):
    system = env.place(env.root / "system")
    assert load_split("fake", "train").sources[0] == str(system / NAMES[0])
    cache = env.place(env.root / "cache" / "fake")
    assert load_split("fake", "train").sources[0] == str(cache / NAMES[0])
    envdata = env.place(env.root / "envdata" / "fake")  # the <dataset> subfolder of $XPCNN_DATA
    monkeypatch.setenv("XPCNN_DATA", str(env.root / "envdata"))
    assert load_split("fake", "train").sources[0] == str(envdata / NAMES[0])
    mine = env.place(env.root / "mine")
    split = load_split("fake", "train", data_dir=mine)
    assert split.sources == [str(mine / NAMES[0]), str(mine / NAMES[1])]
    assert split.images.shape == (6, 28, 28) and split.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert env.downloads == []


def test_gunzipped_files_are_recognised_by_their_content_checksum(env):
    folder = env.place(env.root / "plain", gunzip=True)
    data = load_mnist("fake", data_dir=folder)
    assert data["test"].sources == [str(folder / "t10k-images-idx3-ubyte"), str(folder / "t10k-labels-idx1-ubyte")]
    assert data["test"].labels.tolist() == [2, 1, 0]


def test_recompressed_gzip_is_accepted_through_its_content(env):
    folder = env.root / "recompressed"
    folder.mkdir()
    for name in NAMES:  # a different gzip stream (another level, no name): new bytes, same IDX content
        (folder / name).write_bytes(gzip.compress(gzip.decompress(env.raw[name]), compresslevel=1, mtime=1))
        assert (folder / name).read_bytes() != env.raw[name]
    assert load_split("fake", "test", data_dir=folder).sources[0] == str(folder / NAMES[2])


def test_a_file_that_fails_its_checksum_is_an_error_naming_it_never_replaced_from_elsewhere(env):
    mine = env.place(env.root / "mine")
    tampered = bytearray(gzip.decompress(env.raw[NAMES[1]]))
    tampered[-1] ^= 1  # a valid IDX file, one label changed
    bad = gzip.compress(bytes(tampered))
    (mine / NAMES[1]).write_bytes(bad)
    env.place(env.root / "cache" / "fake")  # a good copy elsewhere must not be taken instead
    with pytest.raises(DataError) as info:
        load_split("fake", "train", data_dir=mine)
    text = str(info.value)
    assert f"{mine / NAMES[1]}: checksum mismatch: SHA-256 {hashlib.sha256(bad).hexdigest()}" in text
    assert hashlib.sha256(env.raw[NAMES[1]]).hexdigest() in text and "\n" not in text
    assert not isinstance(info.value, DataNotFoundError) and env.downloads == []


def test_a_folder_missing_one_file_is_an_error_not_completed_from_elsewhere(env):
    mine = env.place(env.root / "mine", names=NAMES[:3])
    env.place(env.root / "cache" / "fake")
    assert load_split("fake", "train", data_dir=mine).sources == [str(mine / NAMES[0]), str(mine / NAMES[1])]
    with pytest.raises(DataError, match=rf"data_dir {mine} holds .* but not {NAMES[3]}.*never mixes"):
        load_split("fake", "test", data_dir=mine)


def test_train_and_test_come_from_the_same_folder(env, monkeypatch):
    env.place(env.root / "cache" / "fake")
    system = env.place(env.root / "system")
    data = load_mnist("fake")
    assert all(str(env.root / "cache") in p for split in data.values() for p in split.sources)
    assert not any(str(system) in p for split in data.values() for p in split.sources)


def test_a_missing_data_dir_is_an_error_not_a_silent_download(env):
    with pytest.raises(DataError, match=r"data_dir .*nope: no such folder"):
        load_split("fake", "train", data_dir=env.root / "nope")
    assert env.downloads == []


def test_a_damaged_file_in_the_user_cache_is_downloaded_again(env, monkeypatch):
    cache = env.place(env.root / "cache" / "fake")
    (cache / NAMES[1]).write_bytes(b"\x1f\x8b damaged")

    def fake_download(url, sha256, folder, fname, progress):
        (folder / fname).write_bytes(env.raw[fname])
        return str(folder / fname)

    monkeypatch.setattr(mnist_module, "_download", fake_download)
    assert load_split("fake", "train").labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert (cache / NAMES[1]).read_bytes() == env.raw[NAMES[1]]


def test_without_a_content_checksum_only_the_published_gzip_counts(env, monkeypatch):
    monkeypatch.setitem(DATASETS, "fake", info_for(env.raw, content=False))
    folder = env.place(env.root / "plain", gunzip=True)
    with pytest.raises(DataError, match=r"checksum mismatch: SHA-256 [0-9a-f]{64}, expected [0-9a-f]{64} "
                                        r"\(the published .gz\)\. "):
        load_split("fake", "train", data_dir=folder)


def test_offline_error_lists_every_place_tried_and_how_to_provide_the_files(env):
    (env.root / "mine").mkdir()
    with pytest.raises(DataNotFoundError) as info:
        load_mnist("fake", data_dir=env.root / "mine")
    text = str(info.value)
    assert "\n" not in text
    for expected in (f"data_dir {env.root / 'mine'} (no train-images-idx3-ubyte.gz or train-images-idx3-ubyte)",
                     "$XPCNN_DATA (not set)", f"user cache {env.root / 'cache' / 'fake'}",
                     f"system folder {env.root / 'system'}",
                     "download http://mirror.invalid/train-images-idx3-ubyte.gz (failed: cannot connect",
                     "set XPCNN_DATA", "--data-dir", "apt install fake"):
        assert expected in text
    assert env.downloads == ["http://mirror.invalid/train-images-idx3-ubyte.gz"]


def test_xpcnn_offline_disables_downloads(env, monkeypatch):
    monkeypatch.setenv("XPCNN_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match=r"download \(disabled: \$XPCNN_OFFLINE is set\)"):
        load_split("fake", "test")
    assert env.downloads == []


def test_a_mirror_that_failed_is_not_tried_again_for_the_other_files(env, monkeypatch):
    monkeypatch.setitem(DATASETS, "fake", info_for(env.raw, mirrors=("http://a.invalid/", "http://b.invalid/")))
    with pytest.raises(DataNotFoundError, match=r"download http://a.invalid/train-images-idx3-ubyte.gz "
                                                r"\(failed.*http://b.invalid/train-images"):
        load_mnist("fake")
    assert env.downloads == ["http://a.invalid/train-images-idx3-ubyte.gz",
                             "http://b.invalid/train-images-idx3-ubyte.gz"]


def test_downloaded_files_land_in_the_cache_and_are_verified(env, monkeypatch):
    def fake_download(url, sha256, folder, fname, progress):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / fname).write_bytes(env.raw[fname])
        return str(folder / fname)

    monkeypatch.setattr(mnist_module, "_download", fake_download)
    data = load_mnist("fake")
    assert data["train"].sources[0] == str(env.root / "cache" / "fake" / NAMES[0])
    assert sorted(p.name for p in (env.root / "cache" / "fake").iterdir()) == sorted(NAMES)


@pytest.fixture
def loopback_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "www"`` (no network involved)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_pooch_download_checks_sha256_and_discards_a_bad_file(env, monkeypatch, loopback_server):
    pytest.importorskip("pooch")
    www, url = loopback_server
    monkeypatch.setattr(mnist_module, "_download", REAL_DOWNLOAD)
    monkeypatch.setitem(DATASETS, "fake", info_for(env.raw, mirrors=(url,)))
    env.place(www)
    (www / NAMES[3]).write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07"))  # served, but wrong
    split = load_split("fake", "train", progress=False)
    assert split.sources[0] == str(env.root / "cache" / "fake" / NAMES[0])
    with pytest.raises(DataNotFoundError, match=r"t10k-labels-idx1-ubyte.gz \(failed: ValueError"):
        load_split("fake", "test", progress=False)
    assert not (env.root / "cache" / "fake" / NAMES[3]).exists()


def test_sample_splits_into_disjoint_halves_of_each_class():
    data = load_dataset("sample")
    assert data.name == "sample" and "embedded" in data.source
    assert np.bincount(data.train.labels).tolist() == [100] * 10
    assert np.bincount(data.test.labels).tolist() == [100] * 10
    train = {img.tobytes() for img in data.train.images}
    assert not any(img.tobytes() in train for img in data.test.images)


def test_unknown_dataset_and_split_are_value_errors():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        load_split("mnist", "valid")


def test_registry_holds_a_sha256_for_every_published_file():
    for info in (DATASETS["mnist"], DATASETS["fashion-mnist"]):
        assert sorted(f.name for f in info.files()) == sorted(NAMES)
        assert all(len(f.sha256) == 64 for f in info.files()) and info.mirrors
    assert DATASETS["fashion-mnist"].system_dirs == ("/usr/share/datasets/fashion-mnist",)


def test_real_mnist_test_files_pass_their_published_checksums(monkeypatch, tmp_path, mnist_test_dir):
    monkeypatch.setattr(mnist_module, "cache_dir", lambda name: tmp_path / name)
    split = load_split("mnist", "test", data_dir=mnist_test_dir, download=False)
    assert split.images.shape == (10000, 28, 28) and split.sources[0] == str(mnist_test_dir / NAMES[2])


@pytest.mark.skipif(not (DEBIAN_FASHION / NAMES[3]).exists(),
                    reason="Debian's dataset-fashion-mnist is not installed (apt-get install it; .ci/run does)")
def test_debian_fashion_mnist_is_found_in_its_system_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("XPCNN_DATA", raising=False)
    monkeypatch.setattr(mnist_module, "cache_dir", lambda name: tmp_path / name)
    split = load_split("fashion-mnist", "test", download=False)
    assert split.sources[1] == str(DEBIAN_FASHION / NAMES[3])
    assert np.bincount(split.labels).tolist() == [1000] * 10
