"""The OpenAI Responses API (``/v1/responses``), translated to and from the internal chat request.

``wire`` parses requests and writes OpenAI's objects and stream events, ``models`` keeps stored
responses, ``services`` and ``selectors`` write and read them, ``generation`` runs one response
over the Orchestrator, ``events`` keeps a background response's events in Redis, ``jobs`` is the
RQ job of background mode and ``apis`` the views.
"""
