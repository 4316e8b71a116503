"""The edge: how a request or connection enters Switchyard, before any domain code runs.

- ``router``: the ASGI app for HTTP. ``/v1`` and the API-key calls of routes that offer a fast
  path go to the lean handler; everything else to Django's full stack.
- ``handler``: the lean handler (request ids, allowed hosts, then the view; no thread per request).
- ``middleware``: request ids, allowed hosts, and domain errors answered in the one shape.
- ``auth`` and ``errors``: DRF's adapters to the access pipeline and to the error shape.
- ``websocket``: who a WebSocket belongs to (an API key or the session), and its origin check.
"""
