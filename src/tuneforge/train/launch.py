"""One run over several processes from inside a program (the worker): rank 0 here, the other ranks as children.

``torchrun --nproc_per_node N -m tuneforge tune …`` does the same from a shell. Here rank 0 is the calling process,
so its callbacks (the job store's progress and metrics) and its ``should_stop`` (cancellation) work unchanged; the
other ranks run ``python -m tuneforge.train.launch CONFIG`` and follow rank 0 (``distributed.World.agree``).
If a child rank dies, rank 0 stops at its next step and the run fails with that rank's exit code; the checkpoints
written so far let a rerun resume.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tuneforge import storage
from tuneforge.settings import Settings
from tuneforge.train.config import TuningConfig
from tuneforge.train.distributed import leave_world
from tuneforge.train.recipes.sft import run_sft

_RANK_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Have Linux kill this process when the thread that started it ends (a worker killed outright, a rank 0 that
    died): nothing of a run outlives what owns it. Elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_sft_processes(
    config: TuningConfig,
    processes: int,
    *,
    settings: Settings,
    callbacks=None,
    should_stop: Callable[[], bool] | None = None,
    access: storage.Access | None = None,
):
    """``run_sft`` over ``processes`` ranks on this machine (FULL tuning sharded with FSDP2); rank 0 reads the
    images with ``access`` (and stops the run when one is refused)."""
    base = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": str(processes)}
    with tempfile.TemporaryDirectory(prefix="tuneforge-ranks-") as tmp:
        spec = Path(tmp) / "run.json"
        spec.write_text(
            json.dumps({"config": config.model_dump(mode="json"), "settings": settings.model_dump(mode="json")})
        )
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "tuneforge.train.launch", str(spec)],
                env={**os.environ, **base, "RANK": str(r), "LOCAL_RANK": str(r)},
            )
            for r in range(1, processes)
        ]
        saved = {k: os.environ.get(k) for k in _RANK_ENV}
        os.environ.update({**base, "RANK": "0", "LOCAL_RANK": "0"})

        def stop() -> bool:
            return any(c.poll() not in (None, 0) for c in children) or (should_stop is not None and should_stop())

        try:
            result = run_sft(config, settings=settings, callbacks=callbacks, should_stop=stop, access=access)
        finally:
            leave_world()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            codes = []
            for child in children:
                try:
                    codes.append(child.wait(timeout=120))
                except subprocess.TimeoutExpired:
                    child.kill()
                    codes.append(child.wait())
        failed = [(r, c) for r, c in enumerate(codes, start=1) if c != 0]
        if failed:
            raise RuntimeError(
                f"rank {failed[0][0]} of {processes} exited with code {failed[0][1]}; rerun to resume "
                "from the last checkpoint"
            )
        return result


def _rank_main(spec_path: str) -> None:
    """A child rank: the same run, no callbacks (rank 0 reports); it dies with rank 0."""
    die_with_parent()
    spec = json.loads(Path(spec_path).read_text())
    try:
        run_sft(TuningConfig(**spec["config"]), settings=Settings(**spec["settings"]))
    finally:
        leave_world()


if __name__ == "__main__":
    _rank_main(sys.argv[1])
