"""``ClusterWatch`` (blocking ``GET /v1/cluster``): wakes on an applied entry past the caller's index
or a change of role, leader (or its usability), term or connected peers; not on a sample that
changes nothing."""

from __future__ import annotations

import asyncio
import dataclasses

from raftreg.node.cluster_watch import ClusterWatch
from raftreg.raft.status import STOPPED, RaftStatus

BASE = dataclasses.replace(STOPPED, state="follower", leader="127.0.0.1:1", term=3, applied_index=10,
                           connected=frozenset({"127.0.0.1:1", "127.0.0.1:2"}))


async def parked(watch: ClusterWatch, after: int, timeout: float = 5.0) -> asyncio.Task[bool]:
    task = asyncio.create_task(watch.wait(after, timeout))
    await asyncio.sleep(0)  # let it park
    assert watch.waiting == 1
    return task


async def test_an_index_already_passed_answers_at_once() -> None:
    watch = ClusterWatch()
    watch.on_status(BASE)
    assert await watch.wait(9, 5.0) is True
    assert watch.waiting == 0


async def test_a_sample_that_changes_nothing_keeps_it_parked_until_the_timeout() -> None:
    watch = ClusterWatch()
    watch.on_status(BASE)
    task = await parked(watch, 10, timeout=0.1)
    watch.on_status(dataclasses.replace(BASE, last_contact=0.5, commit_index=10))
    await asyncio.sleep(0)
    assert not task.done()
    assert await task is False
    assert watch.waiting == 0


async def test_an_applied_entry_past_the_index_wakes_it() -> None:
    watch = ClusterWatch()
    watch.on_status(BASE)
    task = await parked(watch, 10)
    watch.on_status(dataclasses.replace(BASE, applied_index=11))
    assert await task is True


def changes() -> list[RaftStatus]:
    return [dataclasses.replace(BASE, leader=None), dataclasses.replace(BASE, term=4),
            dataclasses.replace(BASE, state="candidate"), dataclasses.replace(BASE, connected=frozenset())]


async def test_a_change_of_role_leader_term_or_peers_wakes_it() -> None:
    for changed in changes():
        watch = ClusterWatch()
        watch.on_status(BASE)
        task = await parked(watch, 10)
        watch.on_status(changed)
        assert await task is True, changed


async def test_a_leader_that_stops_being_usable_wakes_it() -> None:
    """An isolated follower keeps naming its dead leader: only its usability changes."""
    watch = ClusterWatch()
    watch.on_status(BASE, True)
    task = await parked(watch, 10)
    watch.on_status(dataclasses.replace(BASE, last_contact=30.0), False)
    assert await task is True


async def test_release_all_answers_every_parked_query() -> None:
    watch = ClusterWatch()
    watch.on_status(BASE)
    task = await parked(watch, 10)
    watch.release_all()
    assert await task is False
    assert watch.waiting == 0


async def test_a_change_of_the_extra_watched_value_wakes_it() -> None:
    """The node passes the mass-expiry guard's state: no entry or Raft status shows it."""
    guard = [False]
    watch = ClusterWatch(also=lambda: guard[0])
    watch.on_status(BASE)
    task = await parked(watch, 10)
    watch.on_status(BASE)
    await asyncio.sleep(0)
    assert not task.done()
    guard[0] = True
    watch.on_status(BASE)
    assert await task is True
