"""Cheap processes for the streaming benchmark: an upstream, a bare relay (the floor) and a load client.

They are written against raw asyncio protocols on uvloop so that, pinned to one core together,
they leave the server under test as the only thing measured (``tests/bench/streaming.py``).
"""
