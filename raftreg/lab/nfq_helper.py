"""``DelayHolder``: starts and stops the NFQUEUE delay process (``raftreg.lab.nfq_delay``) in a
lab host's namespace, recording its pid in the lab's state so ``lab down`` removes it after a
crash too."""

from __future__ import annotations

import contextlib
import select
import subprocess
import sys

from raftreg.lab.netns import LabError, exec_prefix
from raftreg.lab.topology import LabState

READY_TIMEOUT = 10.0


class DelayHolder:
    """Holds every packet of NFQUEUE ``queue`` in namespace ``ns`` for ``delay_ms``."""

    def __init__(self, ns: str, queue: int, delay_ms: float, state: LabState) -> None:
        self.ns, self.queue, self.delay_ms, self.state = ns, queue, delay_ms, state
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the holder and wait until it is bound to its queue (it prints ``ready``)."""
        cmd = [*exec_prefix(self.ns), sys.executable, "-m", "raftreg.lab.nfq_delay", "--queue", str(self.queue),
               "--delay-ms", f"{self.delay_ms:.0f}", "--lab", self.state.prefix]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.state.helpers.append(self.proc.pid)
        self.state.save()
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], READY_TIMEOUT)
        line = self.proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            err = b""
            if self.proc.poll() is not None and self.proc.stderr is not None:
                err = self.proc.stderr.read()
            self.stop()
            detail = err.decode(errors="replace")[-500:]
            raise LabError(f"the NFQUEUE delay holder did not start in {self.ns}: {detail}")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        with contextlib.suppress(ValueError):
            self.state.helpers.remove(self.proc.pid)
        self.state.save()
        self.proc = None
