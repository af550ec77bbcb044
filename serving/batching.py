"""Dynamic micro-batching: concurrent requests share one model call.

A scikit-learn call costs far more per call than per row, so scoring eight single-row requests
together costs about what scoring one does. Requests that arrive while a batch is being scored
form the next batch; with `wait` > 0 a batch also waits that long for company.

A request is handed its predictions (or the error that refused its rows) through a callback,
so that the server's direct lane (serving/protocol.py) can answer from the batch's own turn of
the event loop without a task or a future per request; `predict` is the awaitable form.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import numpy as np

from serving.model import Predictions, Predictor

Deliver = Callable[[Predictions | Exception], None]
"""Told a request's predictions, or the exception the model raised on its rows."""


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
        self.pending: deque[tuple[np.ndarray, Deliver]] = deque()
        self.scheduled = False

    async def predict(self, rows: np.ndarray) -> Predictions:
        """Predictions for `rows`, awaited."""
        future: asyncio.Future[Predictions] = asyncio.get_running_loop().create_future()

        def deliver(result: Predictions | Exception) -> None:
            if future.done():  # the awaiting request was cancelled
                return
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

        self.submit(rows, deliver)
        return await future

    def submit(self, rows: np.ndarray, deliver: Deliver) -> None:
        """Score `rows` with the next batch and call `deliver` with the outcome. A request
        larger than `max_rows` is scored in chunks, one at a time, so that requests arriving
        meanwhile are scored between them instead of waiting for the whole of it."""
        if len(rows) <= self.max_rows:
            self._queue(rows, deliver)
            return
        parts: list[Predictions] = []

        def next_chunk(result: Predictions | Exception) -> None:
            if isinstance(result, Exception):
                deliver(result)
                return
            parts.append(result)
            start = len(parts) * self.max_rows
            if start < len(rows):
                self._queue(rows[start : start + self.max_rows], next_chunk)
            else:
                deliver(_joined(parts))

        self._queue(rows[: self.max_rows], next_chunk)

    def _queue(self, rows: np.ndarray, deliver: Deliver) -> None:
        self.pending.append((rows, deliver))
        if not self.scheduled:
            self.scheduled = True
            loop = asyncio.get_running_loop()
            if self.wait_seconds > 0:
                loop.call_later(self.wait_seconds, self._flush)
            else:
                loop.call_soon(self._flush)

    def _flush(self) -> None:
        taken: list[tuple[np.ndarray, Deliver]] = []
        rows = 0
        while self.pending and (not taken or rows + len(self.pending[0][0]) <= self.max_rows):
            item = self.pending.popleft()
            taken.append(item)
            rows += len(item[0])
        if self.pending:
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self.scheduled = False
        self._score(taken)

    def _score(self, taken: list[tuple[np.ndarray, Deliver]]) -> None:
        matrix = taken[0][0] if len(taken) == 1 else np.concatenate([item[0] for item in taken])
        try:
            result = self.predictor.predict(matrix)
        except Exception as error:  # noqa: BLE001 (one bad request must not fail its batch)
            if len(taken) == 1:
                taken[0][1](error)
                return
            for item in taken:
                self._score([item])
            return
        if self.on_batch is not None:
            self.on_batch(matrix, result)
        start = 0
        probabilities = result.probabilities
        for part, deliver in taken:
            end = start + len(part)
            deliver(
                Predictions(
                    result.labels[start:end],
                    None if probabilities is None else probabilities[start:end],
                )
            )
            start = end


def _joined(parts: list[Predictions]) -> Predictions:
    labels = np.concatenate([part.labels for part in parts])
    if parts[0].probabilities is None:
        return Predictions(labels, None)
    return Predictions(
        labels,
        np.concatenate([part.probabilities for part in parts if part.probabilities is not None]),
    )
