"""What the gateway tells observers: one ``CallFinished`` event per finished call (``events``), handed
to every attached sink (``sinks``) — the request log first; metrics, traces and dashboards attach
there too, never on the request path."""
