"""Registration load from ``wrk`` (Debian's C load generator): paced or flat out, answers counted.

The Python clients of the harness cost more CPU per request than a node spends refusing one, so on
a 2-core machine they cannot offer a cluster several times the rate it sustains. ``wrk`` costs
~18 µs per request here. ``WrkLoad`` runs one ``wrk`` per target URL (one thread each) with
``LOAD_LUA``: every request registers a new instance (``/v1/services/ol-NNN/instances/<prefix>
<thread>-<n>``, ~300-byte body, over 100 services), and the answers are counted as accepted
(2xx), refused (503) or other.

Pacing: with ``rate`` > 0 each ``wrk`` keeps a schedule of ``rate`` requests/s (LuaJIT's FFI reads
the monotonic clock); a connection that is free takes the next slot, waiting until it is due, and
slots that found every connection busy are sent as soon as one frees (an open loop whose client
population is the connection count). ``rate`` 0: every connection sends again as soon as it is
answered (a closed loop).

For the durability check: ``sent - refused`` bounds from above the instances these requests may
have created (a 503 applies nothing), ``accepted`` from below.
"""

from __future__ import annotations

import dataclasses
import re
import resource
import subprocess
import tempfile
import time
from pathlib import Path

LOAD_LUA = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } rr_timespec;
int clock_gettime(int clk_id, rr_timespec *tp);
]]
local ts = ffi.new("rr_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

sent, accepted, refused, other, slots = 0, 0, 0, 0, 0
local prefix, rate, started = "w", 0, nil
local body = '{"address":"10.0.0.1","port":8080,"meta":{"payload":"' .. string.rep("x", 220) .. '"}}'
local headers = {["Content-Type"] = "application/json"}

function init(args)
  prefix = args[1]
  rate = tonumber(args[2])
end

function delay()
  if rate <= 0 then return 0 end
  local now = now_ms()
  if started == nil then started = now end
  local due = started + slots * 1000.0 / rate
  slots = slots + 1
  if due <= now then return 0 end
  return due - now
end

function request()
  sent = sent + 1
  local path = string.format("/v1/services/ol-%03d/instances/%s%d-%d", sent % 100, prefix, tid, sent)
  return wrk.format("PUT", path, headers, body)
end

function response(status, hdrs, b)
  if status >= 200 and status < 300 then accepted = accepted + 1
  elseif status == 503 then refused = refused + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("RESULT sent=%d accepted=%d refused=%d other=%d\n",
      t:get("sent"), t:get("accepted"), t:get("refused"), t:get("other")))
  end
end
"""

ID_PREFIX = "w"  # every instance id LOAD_LUA registers starts with it (the harness's own use "i")
_RESULT = re.compile(r"RESULT sent=(\d+) accepted=(\d+) refused=(\d+) other=(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclasses.dataclass
class WrkCounts:
    """Requests sent and answers by kind, summed over the ``wrk`` processes of one run."""

    seconds: float = 0.0
    sent: int = 0
    accepted: int = 0
    refused: int = 0
    other: int = 0
    socket_errors: int = 0
    cpu_s: float = 0.0  # the wrk processes' CPU (this process's reaped children meanwhile)

    def add(self, other: WrkCounts) -> None:
        for f in dataclasses.fields(self):
            if f.name != "seconds":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def per_s(self, n: int) -> float:
        return n / self.seconds if self.seconds else 0.0


class WrkLoad:
    """One ``wrk`` per URL for ``duration`` seconds, started by ``start`` (non-blocking); ``wait``
    returns the counts. ``rate``: requests/s per URL (0: flat out); ``cpus``: a ``taskset -c``
    list to run them on, or None."""

    def __init__(self, urls: list[str], *, connections: int, duration: float, prefix: str, rate: float = 0.0,
                 timeout: float = 10.0, cpus: str | None = None) -> None:
        self.urls, self.connections, self.duration = urls, connections, duration
        self.prefix, self.rate, self.timeout, self.cpus = prefix, rate, timeout, cpus
        self._procs: list[subprocess.Popen[str]] = []
        self._script: Path | None = None
        self._t0 = 0.0

    def start(self) -> WrkLoad:
        fd, name = tempfile.mkstemp(prefix="wrk-load-", suffix=".lua")
        with open(fd, "w") as f:
            f.write(LOAD_LUA)
        self._script = Path(name)
        pin = ["taskset", "-c", self.cpus] if self.cpus else []
        self._t0 = time.monotonic()
        for k, url in enumerate(self.urls):
            cmd = [*pin, "wrk", "-t1", f"-c{self.connections}", f"-d{self.duration:g}s", f"--timeout={self.timeout:g}s",
                   "-s", name, url, "--", f"{ID_PREFIX}{self.prefix}{k}x", f"{self.rate:g}"]
            self._procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        return self

    def wait(self) -> WrkCounts:
        total = WrkCounts(seconds=self.duration)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            for proc in self._procs:
                out, _ = proc.communicate(timeout=self.duration + 60)
                results = _RESULT.findall(out)
                if not results:
                    raise RuntimeError(f"wrk printed no counts:\n{out}")
                for sent, accepted, refused, other in results:
                    total.add(WrkCounts(sent=int(sent), accepted=int(accepted), refused=int(refused),
                                        other=int(other)))
                sock = _SOCKET.search(out)
                if sock:
                    total.socket_errors += sum(int(x) for x in sock.groups())
        finally:
            self.kill()
            if self._script is not None:
                self._script.unlink(missing_ok=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        total.cpu_s = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)
        return total

    def kill(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
