"""Routing across a model's deployments (strategies, in-flight counts, quotas, latency estimates)
and the assignment of calls to experiment variants."""
