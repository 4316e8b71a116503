"""Response caching: exact answers by the canonical request, and semantic answers by meaning.

- ``canonical``: the canonical form of requests and stored answers (both caches build on it);
- ``exact``: the cache the Orchestrator asks (``ResponseCache``), its index rows and purges;
- ``semantic``: answers to questions that mean the same, scoped by model, prompt and parameters;
- ``embedders``: the local embedding model, or a provider's through the Orchestrator;
- ``nearmiss``: the guard that refuses "the capital of France" for "the capital of Spain".

Nothing here imports the Orchestrator: it hands the cache what it needs (an embedding function).
"""
