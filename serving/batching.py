"""Dynamic micro-batching: concurrent requests share one model call.

A scikit-learn call costs far more per call than per row, so scoring eight single-row requests
together costs about what scoring one does. Requests that arrive while a batch is being scored
form the next batch; with `wait` > 0 a batch also waits that long for company.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import numpy as np

from serving.model import Predictions, Predictor


class MicroBatcher:
    """Collects rows from concurrent requests, scores them together, hands each its share."""

    def __init__(
        self,
        predictor: Predictor,
        max_rows: int,
        wait_seconds: float = 0.0,
        on_batch: Callable[[np.ndarray, Predictions], None] | None = None,
    ) -> None:
        self.predictor = predictor
        self.max_rows = max_rows
        self.wait_seconds = wait_seconds
        self.on_batch = on_batch
        """Told each batch the model scored (not one it refused) and its predictions, for the
        metrics: counted once a batch, not once a request."""
        self.pending: deque[tuple[np.ndarray, asyncio.Future[Predictions]]] = deque()
        self.scheduled = False

    async def predict(self, rows: np.ndarray) -> Predictions:
        """Predictions for `rows`; a request larger than `max_rows` is scored in chunks, one
        at a time, so requests that arrive meanwhile are scored between them instead of
        waiting for the whole of it."""
        if len(rows) <= self.max_rows:
            return await self._queued(rows)
        parts = [
            await self._queued(rows[start : start + self.max_rows])
            for start in range(0, len(rows), self.max_rows)
        ]
        labels = np.concatenate([part.labels for part in parts])
        if parts[0].probabilities is None:
            return Predictions(labels, None)
        return Predictions(
            labels,
            np.concatenate(
                [part.probabilities for part in parts if part.probabilities is not None]
            ),
        )

    async def _queued(self, rows: np.ndarray) -> Predictions:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Predictions] = loop.create_future()
        self.pending.append((rows, future))
        if not self.scheduled:
            self.scheduled = True
            if self.wait_seconds > 0:
                loop.call_later(self.wait_seconds, self._flush)
            else:
                loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        taken: list[tuple[np.ndarray, asyncio.Future[Predictions]]] = []
        rows = 0
        while self.pending and (not taken or rows + len(self.pending[0][0]) <= self.max_rows):
            item = self.pending.popleft()
            taken.append(item)
            rows += len(item[0])
        if self.pending:
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self.scheduled = False
        self._score(taken, rows)

    def _score(
        self, taken: list[tuple[np.ndarray, asyncio.Future[Predictions]]], rows: int
    ) -> None:
        matrix = taken[0][0] if len(taken) == 1 else np.concatenate([item[0] for item in taken])
        try:
            result = self.predictor.predict(matrix)
        except Exception as error:  # noqa: BLE001 (one bad request must not fail its batch)
            if len(taken) == 1:
                if not taken[0][1].done():
                    taken[0][1].set_exception(error)
                return
            for item in taken:
                self._score([item], len(item[0]))
            return
        if self.on_batch is not None:
            self.on_batch(matrix, result)
        start = 0
        for part, future in taken:
            end = start + len(part)
            if not future.done():
                future.set_result(
                    Predictions(
                        result.labels[start:end],
                        None if result.probabilities is None else result.probabilities[start:end],
                    )
                )
            start = end
