"""Who may do what: principals and roles, API keys, wallet sign-in sessions.

* :mod:`.principal` — :class:`Principal` (who a request acts as) and :class:`Role`.
* :mod:`.credentials` — bearer credentials: generation, hashing, parsing.
* :mod:`.api_keys` — create, list, revoke API keys.
* :mod:`.sessions` — issue, revoke sessions; :func:`authenticate` for any bearer.
"""
