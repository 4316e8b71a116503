"""A provider simulator: a real HTTP server speaking the OpenAI, Anthropic and Gemini wire formats.

Run it with ``manage.py simulator [--host H] [--port 9100]`` (or ``python -m
orchestration.simulator``, which does not load Django). Any API key is accepted.

Wire formats
    OpenAI: ``POST /v1/chat/completions`` (``stream``, ``stream_options.include_usage``, tools,
    ``response_format``), ``POST /v1/embeddings``, ``GET /v1/models[/{id}]``.
    Anthropic: ``POST /v1/messages`` (``max_tokens`` required, as upstream),
    ``POST /v1/messages/count_tokens``.
    Gemini: ``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent``
    (``?alt=sse`` for SSE, otherwise a streamed JSON array), ``:countTokens``, ``:embedContent``,
    ``:batchEmbedContents``; ``GET /v1beta/models``. The same paths answer under ``/v1/``.

Replies
    Deterministic: the words come from a PRNG seeded with the model name and every text of the
    request, so the same request gets the same reply in every wire format, streamed or not. A
    token is a word with its leading space; the natural length is 20..40 tokens, cut by the
    request's max tokens (finish reason "length") or a stop sequence. Usage: prompt tokens are
    the whitespace-separated words of every text in the request; completion tokens are the
    tokens sent, plus, per tool call, one for its name and one per 8-character piece of its
    arguments JSON. Embeddings are unit vectors (256 dimensions unless asked otherwise) from
    hashed words and word pairs, so texts with the same words are near-identical and texts that
    differ in one content word are not.

Behaviour per upstream model (``PUT /_sim/models/{upstream}``, merged; ``"*"`` is the default)
    ``latency_ms`` before the response headers; ``ttft_ms`` after them, before the first chunk;
    ``tokens_per_s`` paces the tokens of a stream (a whole reply waits ttft + tokens / rate).
    ``error_status`` fails every call with that status, or only a share with ``error_rate``
    (exactly floor(n * rate) of the first n calls since the model's behaviour last changed).
    ``error_kind`` "context_window" or "content_policy" shapes the error as the provider does
    (status 400 unless ``error_status`` says otherwise; Gemini reports a blocked prompt in a 200
    with ``promptFeedback.blockReason``). ``retry_after`` / ``retry_after_ms`` are sent as
    ``Retry-After`` / ``retry-after-ms`` on 429 and 503. ``hang`` accepts the call and never
    answers. ``drop_after_tokens`` closes the connection after that many tokens (a whole reply:
    without any answer); ``malformed_after_tokens`` sends a broken chunk there and ends the
    stream without its closing events (a whole reply: a truncated JSON body). ``reply`` fixes the
    text; ``max_tokens_default`` replaces the natural length; ``script`` is a list of turns, turn
    i answering the request with i assistant messages, the last turn repeating beyond the end:
    ``{"content": "..."}`` and/or ``{"tool_calls": [{"name": "...", "arguments": {...}}]}``.
    ``stream_omits_usage`` leaves the usage out of an OpenAI-wire stream even when
    ``stream_options.include_usage`` asks for it, as some OpenAI-compatible servers do.
    A null value restores a knob's default; unknown knobs or bad values get a 400.

Per request, as the providers do: ``tool_choice`` (each wire's own form) "none" answers in text even
over a scripted call; "required" (Anthropic ``any``, Gemini ``ANY``) or a named tool calls it (the
first tool, for "required") with arguments made from its JSON Schema, unless the turn already does.
``logprobs`` / ``top_logprobs`` (OpenAI wire) add deterministic per-token logprobs, whole and streamed.
``response_format`` (OpenAI wire) ``json_object`` answers ``{"answer": "..."}``; ``json_schema`` answers a
document made from its schema (unless a turn is scripted), as structured outputs promise.

Control
    ``GET /_sim/health``; ``GET /_sim/models[/{upstream}]``; ``PUT /_sim/models/{upstream}``;
    ``DELETE /_sim/models[/{upstream}]``; ``GET /_sim/stats`` ->
    ``{"models": {upstream: {"requests", "completed", "disconnects", "in_flight"}}}``;
    ``POST /_sim/stats/reset``. ``completed``: the simulator finished its answer (error answers
    included); ``disconnects``: the client went away first; a deliberate drop counts as neither.
"""
