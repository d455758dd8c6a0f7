"""Output files (xpcnn/io/files.py): checked before work, written whole or not at all, errors naming
the user's path and never a temporary one."""

import os
import stat

import pytest

import xpcnn as xc
from xpcnn.io.files import atomic_write, check_output_path
from xpcnn.app.reporting import write_json


def files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_good_path_passes_and_leaves_nothing(tmp_path):
    assert check_output_path(tmp_path / "m.json", "--metrics-json") == tmp_path / "m.json"
    assert files(tmp_path) == []


@pytest.mark.parametrize("name, fragment", [
    ("", "the path is empty"), ("no/such/m.json", "the folder {d}/no/such does not exist"),
    (".", "is a folder"),
])
def test_bad_paths_are_output_errors_naming_the_path(tmp_path, name, fragment):
    path = "" if name == "" else tmp_path / name
    with pytest.raises(xc.OutputError, match=fragment.format(d=tmp_path)) as info:
        check_output_path(path, "--metrics-json")
    assert isinstance(info.value, OSError) and ".tmp" not in str(info.value)


def test_read_only_files_are_respected_even_by_root(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("old")
    path.chmod(stat.S_IRUSR)
    with pytest.raises(xc.OutputError, match="m.json: the file is read-only"):
        check_output_path(path, "--metrics-json")
    with pytest.raises(xc.OutputError, match="read-only"):
        write_json(path, {"a": 1})
    assert path.read_text() == "old" and files(tmp_path) == ["m.json"]


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt(), ValueError("bug")])
def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path, failure):
    path = tmp_path / "m.bin"
    path.write_bytes(b"old")

    def write(f):
        f.write(b"half")
        raise failure

    with pytest.raises(type(failure)) as info:
        atomic_write(path, write, "--save")
    if isinstance(failure, OSError):
        assert isinstance(info.value, xc.OutputError)
        assert str(info.value) == f"--save {path}: cannot write (No space left on device)"
    assert path.read_bytes() == b"old" and files(tmp_path) == ["m.bin"]


def test_a_new_file_gets_the_usual_permissions(tmp_path):
    atomic_write(tmp_path / "m.bin", lambda f: f.write(b"x"), "--save")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "m.bin").stat().st_mode) == 0o666 & ~umask


def test_a_path_ending_in_a_separator_names_a_folder_and_is_refused_naming_a_file_to_give(tmp_path):
    from xpcnn.errors import OutputError
    from xpcnn.io.files import check_output_path

    with pytest.raises(OutputError, match=r"--save .*new/: ends with a folder separator; give a file name, "
                                          r"e\.g\. .*new/model\.npz"):
        check_output_path(f"{tmp_path}/new/", "--save")
    assert not (tmp_path / "new").exists()
