"""Fake LLM providers for tests, the demo and benchmarks (``tollway mock``), with fault injection.

One aiohttp server answers every wire format tollway speaks to upstreams; see ``server`` for the
control endpoints and ``faults`` for the fault, quirk and directive syntax.
"""

from tollway.mock.faults import Fault, Quirks
from tollway.mock.server import RunningMock, build_app, run, start_mock
from tollway.mock.state import MockOptions

__all__ = ["Fault", "MockOptions", "Quirks", "RunningMock", "build_app", "run", "start_mock"]
