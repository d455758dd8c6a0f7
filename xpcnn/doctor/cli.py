"""``xpcnn-doctor [--device cpu|cuda[:N]|torch:cpu|torch:cuda[:N]|torch:mps] [--json PATH] [--quick]``: does
xpcnn work here, and how fast?

Prints the environment, one line per correctness check (ok or FAILED, with the worst relative
error), the derivation's experiment, the throughputs, then one summary line. Exit status: 0 when
every check passes, 1 otherwise (or on an error, in one line), 2 for a bad flag, 130 after Ctrl-C.
A run stopped by SIGTERM (``timeout``) or Ctrl-C still writes ``--json``, marked interrupted.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import signal
import sys
import time

from .. import _startup, backend
from ..engines import auto
from ..errors import XpcnnError
from ..io.files import check_output_path
from . import checks, environment, report, speed

PROG = "xpcnn-doctor"


class Interrupted(BaseException):
    """SIGTERM: stop like Ctrl-C, so the report still gets written."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description="Does xpcnn work on this machine, and how fast? Checks "
                                "every layer, loss, optimizer and convolution engine on the device against "
                                "NumPy float64, trains the derivation's experiment, and times the networks.",
                                epilog="Run it first on a new machine; attach the --json report to an issue.")
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (CuPy), torch:cpu, torch:cuda[:N] or torch:mps (PyTorch tensors) "
                        "(default: cuda when CuPy sees a GPU, else cpu)")
    p.add_argument("--json", dest="json_path", default=None, metavar="PATH",
                   help="write everything (environment, every check, throughputs) to this JSON file")
    p.add_argument("--quick", action="store_true",
                   help="shorter timings (same checks); under a minute on a 2-core CPU")
    p.add_argument("--no-speed", action="store_true", help="correctness only: skip the throughput measurements")
    return p.parse_args(argv)


def default_device() -> backend.Device:
    """``cuda`` when CuPy is installed and sees a GPU, else ``cpu``."""
    if importlib.util.find_spec("cupy") is not None:
        try:
            return backend.get_device("cuda")
        except XpcnnError:
            pass
    return backend.CPU


def _fail(message: str, status: int = 1) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return status


def main(argv=None) -> int:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        json_path = check_output_path(args.json_path, "--json") if args.json_path is not None else None
        device = backend.get_device(args.device) if args.device is not None else default_device()
    except XpcnnError as exc:
        return _fail(str(exc).splitlines()[0])
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    _startup.release()  # Ctrl-C is KeyboardInterrupt again: the report says what was checked
    try:
        return run(device, args, json_path)
    except XpcnnError as exc:
        return _fail(str(exc).splitlines()[0])
    finally:
        signal.signal(signal.SIGTERM, previous)


def _on_sigterm(signum, frame):
    raise Interrupted("SIGTERM")


def measure_speed(device: backend.Device, quick: bool, done: list) -> dict:
    """The throughputs; a crash there is one FAILED check (with its message), not a lost report."""
    try:
        return speed.measure(device, speed.QUICK if quick else speed.SpeedPlan(),
                             say=lambda line: print(line, flush=True))
    except Exception as exc:  # noqa: BLE001 - reported as a failed check, with the error's first line
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        check = checks.Check("speed: the throughput measurements", ok=False, worst=float("inf"), problems=[message])
        done.append(check)
        print(report.check_line(check), flush=True)
        return {"error": message}


def run(device: backend.Device, args: argparse.Namespace, json_path) -> int:
    started = time.perf_counter()
    out: dict = {"schema": report.SCHEMA, "tool": PROG, "argv": args.argv,
                 "started_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "device": device.name, "quick": args.quick}
    done: "list[checks.Check]" = []
    interrupted = None
    status = 0
    try:
        env = out["environment"] = environment.collect(device)
        print(f"{PROG}: checking xpcnn on {device.name}" + (" (quick)" if args.quick else ""))
        for line in environment.describe(env):
            print(f"  {line}")
        print("correctness (on the device against NumPy float64 on the host; gradients against finite differences):")
        for check in checks.correctness(device):
            done.append(check)  # kept before it is printed: an interruption still reports it
            print(report.check_line(check), flush=True)
        training, details = checks.check_training(device)
        done.append(training)
        out["training"] = details
        print(report.check_line(training), flush=True)
        if not args.no_speed:
            print("speed (float32, samples/s, median of interleaved runs; first step timed apart):")
            out["speed"] = measure_speed(device, args.quick, done)
    except KeyboardInterrupt:
        interrupted, status = "Ctrl-C", 130
    except Interrupted:
        interrupted = "SIGTERM"
    seconds = time.perf_counter() - started
    out["checks"] = [c.to_json() for c in done]
    out["auto_choices"] = auto.choices()  # what engine="auto" measured and chose, per layer shape
    out["verdict"] = report.verdict(done)
    if interrupted:
        out["verdict"]["passed"], out["interrupted"] = False, interrupted
    out["seconds"] = round(seconds, 2)
    out["load_average_end"] = environment.load_average()
    line = report.summary_line(out["verdict"], device.name, seconds, interrupted)
    if json_path is not None:
        report.write_json(json_path, out)
        line += f"; report in {json_path}"
    print(line)
    return status or (0 if out["verdict"]["passed"] else 1)
