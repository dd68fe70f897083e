"""``RaftFiles``: one node's pysyncobj files, and the wipe that keeps the vote.

pysyncobj keeps the log in ``raft.journal``, a full dump (snapshot) in ``raft.dump`` and Raft's
persistent ``currentTerm`` and ``votedForNodeId`` (with a lazily saved commit index) in
``raft.journal.meta``. A wipe-and-resync must drop the log, the dump and the commit index but
keep the term and the vote: a node that forgot it voted in term T could vote again in T for
another candidate and help elect two leaders in one term (Raft's election-safety rule).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from pysyncobj.journal import MetaStorer

log = logging.getLogger("raftreg.raft")

TERM_KEY, VOTE_KEY = "currentTerm", "votedForNodeId"


class RaftFiles:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.journal = data_dir / "raft.journal"
        self.dump = data_dir / "raft.dump"
        self.meta = data_dir / "raft.journal.meta"

    def term_and_vote(self) -> tuple[int, str | None]:
        """The persisted ``(currentTerm, votedForNodeId)``; ``(0, None)`` when there is none."""
        meta = MetaStorer(str(self.meta)).getMeta() if self.meta.exists() else {}
        return int(meta.get(TERM_KEY, 0)), meta.get(VOTE_KEY)

    def wipe_keeping_vote(self) -> tuple[int, str | None]:
        """Delete the log, the dump, their temporaries and the commit index; rewrite the meta
        with the persisted term and vote only. Call only while no SyncObj uses these files.
        Returns the term and vote kept."""
        term, vote = self.term_and_vote()
        for path in (self.journal, self.meta, self.dump, self.data_dir / "raft.dump.tmp",
                     self.data_dir / "raft.journal.meta.tmp"):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.data_dir / "tmp", ignore_errors=True)
        if term or vote is not None:
            MetaStorer(str(self.meta)).storeMeta({TERM_KEY: term, VOTE_KEY: vote})
        log.warning("event=raft_files_wiped kept_term=%d kept_vote=%s", term, vote)
        return term, vote
