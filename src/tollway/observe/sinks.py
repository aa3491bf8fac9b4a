"""Where ``CallFinished`` events go: ``Sinks``, the hub every finished call is handed to
(``Runtime.sinks``), and the ``Sink`` protocol an observer implements. ``LogSink`` — the request
log — is the first sink; metrics, traces and dashboards attach the same way (``Sinks.add``).

A sink's ``emit`` runs on the request path, once per call: it must not block, await or raise —
queue the event and do the work elsewhere, as the log's batch writer does.

``Sinks.emit`` is rebound whenever the set of sinks changes: with one sink it *is* that sink's
``emit`` (for the log, ``LogWriter.enqueue`` itself), so the common case costs no loop and no extra
call; with none it does nothing; only with several does it loop."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

from .events import CallFinished

log = logging.getLogger("tollway.observe")

if TYPE_CHECKING:
    from ..store.writer import LogWriter

Emit = Callable[[CallFinished], None]


class Sink(Protocol):
    @property
    def emit(self) -> Emit:
        """Take one finished call; never blocks, never raises."""


class LogSink:
    """The request log: each event is one row, queued for the batch writer (``store.writer``)."""

    __slots__ = ("emit", "writer")

    def __init__(self, writer: LogWriter) -> None:
        self.writer = writer
        self.emit: Emit = writer.enqueue  # the row is the event: queued as it is


def _nothing(event: CallFinished) -> None:
    return None


class Sinks:
    __slots__ = ("_sinks", "emit")

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self._sinks: list[Sink] = list(sinks)
        self.emit: Emit = _nothing
        self._bind()

    def add(self, sink: Sink) -> None:
        self._sinks.append(sink)
        self._bind()

    def remove(self, sink: Sink) -> None:
        self._sinks.remove(sink)
        self._bind()

    def __iter__(self) -> Iterator[Sink]:
        return iter(self._sinks)

    def _bind(self) -> None:
        emits = tuple(s.emit for s in self._sinks)
        if not emits:
            self.emit = _nothing
        elif len(emits) == 1:
            self.emit = emits[0]
        else:

            def emit(event: CallFinished) -> None:
                for each in emits:
                    try:
                        each(event)
                    except Exception:  # one broken observer must not cost the others their event
                        log.exception("a sink failed to take a finished call")

            self.emit = emit
