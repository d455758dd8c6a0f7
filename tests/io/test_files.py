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


# -- what stands at the path: links, streams, devices, and what a killed writer leaves ------------

def test_a_symlink_is_followed_its_target_replaced_atomically_and_the_link_kept(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "m.json"
    target.write_text("old")
    link = tmp_path / "m.json"
    link.symlink_to(os.path.join("real", "m.json"))  # relative, as ln -s makes them
    assert check_output_path(link, "--metrics-json") == link
    write_json(link, {"a": 1}, "--metrics-json")
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", "m.json")
    assert '"a": 1' in target.read_text()
    assert files(tmp_path) == ["m.json", "real"] and files(tmp_path / "real") == ["m.json"]


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "m.bin"
    link.symlink_to(tmp_path / "new.bin")
    atomic_write(link, lambda f: f.write(b"x"), "--save")
    assert link.is_symlink() and (tmp_path / "new.bin").read_bytes() == b"x"


def test_a_read_only_symlink_target_is_refused_naming_the_users_path(tmp_path):
    target = tmp_path / "t.json"
    target.write_text("old")
    target.chmod(stat.S_IRUSR)
    link = tmp_path / "m.json"
    link.symlink_to(target)
    with pytest.raises(xc.OutputError, match=f"^--metrics-json {link}: the file is read-only"):
        write_json(link, {"a": 1}, "--metrics-json")
    assert target.read_text() == "old"


def test_a_fifos_reader_gets_every_byte(tmp_path):
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    try:
        import time
        deadline = time.monotonic() + 10
        while True:  # the reader opens the FIFO when its thread runs
            try:
                atomic_write(fifo, lambda f: f.write(b"x" * 200_000), "--metrics-json")
                break
            except xc.OutputError as exc:
                assert "has no reader" in str(exc) and time.monotonic() < deadline
                time.sleep(0.01)
    finally:
        reader.join(10)
    assert got == [b"x" * 200_000] and stat.S_ISFIFO(fifo.stat().st_mode) and files(tmp_path) == ["pipe"]
    assert check_output_path(fifo, "--metrics-json") == fifo  # checked without opening it (no wait for a reader)


def test_a_fifo_without_a_reader_is_refused_in_one_line_without_waiting(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(xc.OutputError, match=f"^--metrics-json {fifo}: the FIFO has no reader; start the reader "
                                             f"first$"):
        write_json(fifo, {"a": 1}, "--metrics-json")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def _device(tmp_path, name, minor):
    """A private copy of /dev/null (minor 3) or /dev/full (minor 7): these tests must never risk the real
    nodes (run on broken code, as root, they would be replaced). Needs root's mknod, as in CI."""
    path = tmp_path / name
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except (PermissionError, AttributeError):
        pytest.skip("mknod needs root")
    return path


def test_a_null_device_is_written_and_stays_a_device(tmp_path):
    null = _device(tmp_path, "null", 3)
    atomic_write(null, lambda f: f.write(b"x"), "--metrics-json")
    assert stat.S_ISCHR(null.stat().st_mode) and files(tmp_path) == ["null"]


def test_a_full_device_is_one_line_and_never_replaced_even_by_root(tmp_path):
    """As root, rename() may replace a device node; the issue saw --metrics-json /dev/full do it."""
    full = _device(tmp_path, "full", 7)
    before = full.stat()
    with pytest.raises(xc.OutputError, match=f"^--metrics-json {full}: cannot write \\(No space left on device\\)$"):
        write_json(full, {"a": 1}, "--metrics-json")
    after = full.stat()
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert files(tmp_path) == ["full"]


def test_a_socket_is_refused_in_one_line(tmp_path):
    import socket

    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        for call in (lambda: check_output_path(path, "--save"), lambda: atomic_write(path, print, "--save")):
            with pytest.raises(xc.OutputError, match=f"^--save {path}: is neither a regular file nor a character "
                                                     f"device or FIFO; give a file name$"):
                call()
        assert stat.S_ISSOCK(path.stat().st_mode)


WRITE_TO = """
import sys
from xpcnn.io.files import atomic_write
for path in sys.argv[1:]:
    print("before", flush=False)
    atomic_write(path, lambda f: f.write(path + "\\n"), "--metrics-json", binary=False)
    print("after")
"""


@pytest.mark.parametrize("into", ["pipe", "file"])
def test_descriptor_paths_write_to_the_processs_stdout_in_order(tmp_path, into):
    """/dev/fd/1 and /proc/self/fd/1 (broken code fails on these without harm; /dev/stdout, which broken code
    run as root would replace, only once they and its mapping pass)."""
    import subprocess
    import sys

    from xpcnn.io.files import open_descriptor

    paths = [p for p in ("/dev/fd/1", "/proc/self/fd/1") if os.path.exists(p)]
    if open_descriptor("/dev/stdout") == 1 and open_descriptor("/dev/fd/1") == 1:
        paths.append("/dev/stdout")
    command = [sys.executable, "-c", WRITE_TO, *paths]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    if into == "pipe":
        out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120).stdout
    else:  # a shell's > file: the file must not be renamed over nor truncated
        log = tmp_path / "out.log"
        with open(log, "w") as f:
            subprocess.run(command, stdout=f, env=env, timeout=120)
        out = log.read_text()
        assert files(tmp_path) == ["out.log"]
    assert out == "".join(f"before\n{p}\nafter\n" for p in paths) and "/dev/stdout" in paths


def test_descriptor_paths_name_the_descriptor():
    from xpcnn.io.files import open_descriptor

    assert [open_descriptor(p) for p in ("/dev/stdout", "/dev/stderr", "/dev/fd/1", "/proc/self/fd/2",
                                         f"/proc/{os.getpid()}/fd/7", "//dev/stdout")] == [1, 2, 1, 2, 7, 1]
    assert [open_descriptor(p) for p in ("/dev/null", "/dev/fd/x", "stdout", "/tmp/dev/stdout")] == [None] * 4


def test_check_output_path_takes_descriptor_paths_and_devices_without_probing_their_folder():
    for path in ("/dev/stdout", "/dev/stderr", "/dev/null"):
        assert str(check_output_path(path, "--metrics-json")) == path


def _dead_pid():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_write_removes_the_temporaries_of_killed_writers_of_that_file_only(tmp_path):
    path = tmp_path / "model.npz"
    dead = tmp_path / f".model.npz.xpcnn-{_dead_pid()}-abc123.tmp"
    live = tmp_path / f".model.npz.xpcnn-{os.getpid()}-def456.tmp"  # a writer still at work
    other = tmp_path / f".other.npz.xpcnn-{_dead_pid()}-abc123.tmp"
    for p in (dead, live, other):
        p.write_bytes(b"half")
    atomic_write(path, lambda f: f.write(b"x"), "--save")
    assert files(tmp_path) == sorted([live.name, other.name, "model.npz"])


KILLED_WRITER = """
import os, sys, time
from xpcnn.io.files import atomic_write
def write(f):
    f.write(b"half")
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
atomic_write(sys.argv[1], write, "--save")
"""


def test_sigkill_mid_write_leaves_a_recognisable_temporary_that_the_next_write_removes(tmp_path):
    import signal
    import subprocess
    import sys

    path = tmp_path / "model.npz"
    path.write_bytes(b"good")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert proc.stdout.readline() == b"writing\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    left = [name for name in files(tmp_path) if name != "model.npz"]
    assert len(left) == 1 and left[0].startswith(f".model.npz.xpcnn-{proc.pid}-") and left[0].endswith(".tmp")
    assert path.read_bytes() == b"good"
    atomic_write(path, lambda f: f.write(b"new"), "--save")
    assert files(tmp_path) == ["model.npz"] and path.read_bytes() == b"new"
