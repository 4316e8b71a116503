"""Access: who may call, what they may use, how fast and for how much (one package; nothing else checks a key).

- ``models``: ``ApiKey`` and ``AccessPolicy`` (a person's limits in the browser).
- ``keys``: making, finding and revoking API keys.
- ``credentials``: reading the key a request or connection presents.
- ``keycache``: the cached key lookup of the async doors, kept current by ``revocation``.
- ``revocation``: key and account changes published through Redis to every process, and the
  open sessions and streams that must stop when their key or account does.
- ``policy``: the limits of a person without a key (defaults in settings, overrides in the admin).
- ``limits`` and ``budgets``: requests and tokens per minute, and monthly budgets with
  reservations, atomic in Redis.
- ``admission``: the one pipeline every door calls: authenticate, model access, RPM/TPM, budget
  reservation; then settle usage and cost.
"""
