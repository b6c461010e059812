"""The one contract every pool keeps: ``run(jobs)`` yields results in job and chunk order.

A *job* is ``(kind_name, files, chunks)``: the files of one data kind (``Network.spec()``) and its
planned :class:`gpuprune.plan.Chunk`\\ s.  ``run`` yields ``(kind_name, chunk, ChunkResult)`` for
every chunk of every job, in order, so the output never depends on how (or where) the chunks ran.

Pools that prune one chunk per task derive from :class:`SubmitPool` and implement ``submit``; pools
that schedule themselves (the local process pool's runs of chunks) implement ``run`` directly.
"""

import collections
from collections.abc import Iterator
from typing import Protocol, runtime_checkable


@runtime_checkable
class Pool(Protocol):
    """Runs chunk tasks; see the module docstring."""

    workers: int

    def run(self, jobs) -> Iterator[tuple]:
        """Yield ``(kind_name, chunk, ChunkResult)`` for every chunk of ``jobs``, in order."""

    def shutdown(self) -> None:
        """Stop the workers and remove what the pool made (temporary files, threads)."""


class SubmitPool(Pool):
    """A pool of one task per chunk: ``submit`` returns a future; ``run`` keeps a bounded window in flight."""

    workers = 1
    #: tasks in flight per worker
    IN_FLIGHT_PER_WORKER = 2

    def submit(self, files, kind_name, chunk):  # pragma: no cover - the subclasses' job
        raise NotImplementedError

    def shutdown(self):
        pass

    def run(self, jobs, in_flight=None):
        in_flight = in_flight or max(2, self.IN_FLIGHT_PER_WORKER * self.workers)
        tasks = ((kind_name, files, chunk) for kind_name, files, chunks in jobs for chunk in chunks)
        pending = collections.deque()

        def submit(task):
            kind_name, files, chunk = task
            pending.append((kind_name, chunk, self.submit(files, kind_name, chunk)))

        for task in tasks:
            submit(task)
            if len(pending) >= in_flight:
                break
        while pending:
            kind_name, chunk, fut = pending.popleft()
            result = fut.result()
            nxt = next(tasks, None)
            if nxt is not None:
                submit(nxt)
            yield kind_name, chunk, result
