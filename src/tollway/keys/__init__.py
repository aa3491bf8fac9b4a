"""Virtual keys and tenants (pipeline stage 1): stored hashed in the log database, checked against an
in-memory ``KeyCache`` (``cache.py``) by ``auth.authenticate``; managed by ``tollway keys …``
(``cli/keys.py``) and the admin API (``ingress/admin_api.py``)."""
