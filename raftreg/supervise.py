"""Start and stop node processes: each in its own process group (session), so a kill reaches
pysyncobj's forked snapshot child too (research/pysyncobj.md §2.3)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO


class NodeProcess:
    """One ``raftreg serve`` child process. Signals go to its whole process group."""

    def __init__(
        self,
        name: str,
        *,
        config_path: Path,
        data_dir: Path,
        secret: str,
        log_path: Path | None = None,
        secret_env: str = "RAFTREG_SECRET",
        extra_env: dict[str, str] | None = None,
        log_format: str | None = None,
        wrapper: list[str] | None = None,
    ) -> None:
        self.name = name
        self.wrapper = wrapper or []  # argv prefix, e.g. ``ip netns exec <ns>`` (raftreg.lab); it must exec
        self.config_path = config_path
        self.data_dir = data_dir
        self.log_path = log_path
        self._secret = secret
        self._secret_env = secret_env
        self._extra_env = extra_env or {}
        self.log_format = log_format  # ``--log-format`` of the child; None: its config decides
        self.extra_args: list[str] = []  # more ``raftreg serve`` options for the next start (--replace-identity)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        """Spawn the node (no-op if it is running)."""
        if self.alive():
            return
        env = dict(os.environ, **self._extra_env)
        env[self._secret_env] = self._secret
        env.setdefault("PYTHONUNBUFFERED", "1")
        stdout: int | IO[bytes] = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
            self._log_file.write(f"==== start {time.strftime('%H:%M:%S')}\n".encode())
            self._log_file.flush()
            stdout = self._log_file
        cmd = [*self.wrapper, sys.executable, "-m", "raftreg", "serve", "--config", str(self.config_path),
               "--node", self.name, "--data-dir", str(self.data_dir)]
        if self.log_format is not None:
            cmd += ["--log-format", self.log_format]
        cmd += self.extra_args
        self.proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """kill -9 the node and everything in its process group, and reap it."""
        if self.proc is None:
            return
        self.signal_group(signal.SIGKILL)
        self.proc.wait()
        self._close_log()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal_group(signal.SIGCONT)
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        self.kill()

    def pause(self) -> None:
        self.signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal_group(signal.SIGCONT)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
