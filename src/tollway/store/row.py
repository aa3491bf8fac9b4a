"""One row of the request log: what ``store`` writes and ``tollway logs`` reads. It is the
``CallFinished`` event itself (``observe/events.py``): the log writes what every sink sees."""

from __future__ import annotations

from ..observe.events import CallFinished as LogRow

__all__ = ["LogRow"]
