"""One module per client protocol: how a client that speaks it is understood and answered.

``base.ClientProtocol`` is the interface; ``openai`` and ``anthropic`` implement it; ``registry``
lists them by name. Everything else in the gateway asks ``call.protocol`` instead of testing which
protocol it is, so a third client protocol is one module here, its translator (``translate/``) and
its endpoint (``ingress/``).

This package's ``__init__`` imports nothing: ``call.py`` imports ``base``, and the protocol modules
import translators that import ``call.py``.
"""
