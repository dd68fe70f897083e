"""Judge a replica's health from its Raft status, not from pysyncobj's ``isReady()``.

pysyncobj can wedge a replica while it still reports ready (research/pysyncobj.md §4.1): a
restarted ex-leader that livelocks catching up, or a follower left with an empty log. ``Judge``
is pure (fed samples and times) so it is unit-tested; ``Watchdog`` runs it on the loop and asks
the Raft glue to wipe and resync the node when it is wedged while a leader exists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from raftreg.raft import RaftStatus

log = logging.getLogger("raftreg.watchdog")


@dataclass
class Verdict:
    wedged: bool
    reason: str = ""


class Judge:
    """Decides whether a replica is wedged.

    Wedged means, while this node follows a leader it hears from:
    - its Raft log is empty after it has applied entries (the empty-log wedge), or
    - the leader's commit index is ahead of what it applied and its applied index has not moved
      for ``stuck_after`` seconds (the catch-up livelock), or
    - it has been a candidate, term racing upward, for ``stuck_after`` seconds while it can reach
      a quorum (peers that have a leader keep rejecting it).
    """

    def __init__(self, stuck_after: float = 15.0) -> None:
        self.stuck_after = stuck_after
        self._last_applied = -1
        self._applied_moved_at = 0.0
        self._candidate_since: float | None = None
        self._candidate_term = 0

    def observe(self, st: RaftStatus, now: float) -> Verdict:
        behind = st.leader_commit_index is not None and st.leader_commit_index > st.applied_index
        # An idle replica that is caught up is not stuck: restart the clock whenever it is not behind.
        if st.applied_index != self._last_applied or not behind:
            self._last_applied = st.applied_index
            self._applied_moved_at = now
        if st.state == "candidate":
            if self._candidate_since is None:
                self._candidate_since, self._candidate_term = now, st.term
        else:
            self._candidate_since = None

        following = st.state == "follower" and st.leader is not None and st.last_contact < 2.0
        if following and st.log_len == 0 and st.applied_index > 0:
            return Verdict(True, "empty raft log")
        if (
            following
            and behind
            and now - self._applied_moved_at > self.stuck_after
        ):
            return Verdict(True, f"applied index stuck at {st.applied_index} < leader commit {st.leader_commit_index}")
        if (
            self._candidate_since is not None
            and st.has_quorum
            and now - self._candidate_since > self.stuck_after
            and st.term - self._candidate_term > 5
        ):
            return Verdict(True, f"candidate with quorum for {now - self._candidate_since:.0f}s, term {st.term}")
        return Verdict(False)

    def reset(self, now: float) -> None:
        self._applied_moved_at = now
        self._candidate_since = None


class Watchdog:
    """Samples status every ``period`` seconds; on a wedge calls ``recover`` (at most once per
    ``cooldown`` seconds, or sooner after ``retry_in``).

    The loop never dies: a pass that raises (sampling, judging, or ``recover``) is logged and the
    next pass runs. ``wedges`` counts the wedges acted on; whether a recovery happened is the
    ``recover`` callback's business (it may refuse, see ``raftreg.node.recovery``).
    """

    def __init__(
        self,
        sample: Callable[[], RaftStatus],
        recover: Callable[[str], None],
        *,
        judge: Judge | None = None,
        period: float = 1.0,
        cooldown: float = 60.0,
    ) -> None:
        self._sample = sample
        self._recover = recover
        self.judge = judge or Judge()
        self._period = period
        self._cooldown = cooldown
        self._last_attempt = float("-inf")
        self.wedges = 0
        self.failed_passes = 0

    def retry_in(self, seconds: float) -> None:
        """Allow the next recovery attempt ``seconds`` from now (after a refused one)."""
        self._last_attempt = asyncio.get_running_loop().time() - self._cooldown + seconds

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._period)
            try:
                self._pass(loop.time())
            except Exception:
                self.failed_passes += 1
                log.exception("event=watchdog_pass_failed: going on")

    def _pass(self, now: float) -> None:
        verdict = self.judge.observe(self._sample(), now)
        if verdict.wedged and now - self._last_attempt > self._cooldown:
            log.error("event=replica_wedged reason=%r action=wipe_and_resync", verdict.reason)
            self._last_attempt = now
            self.wedges += 1
            self.judge.reset(now)
            self._recover(verdict.reason)
