"""A provider simulator: a real HTTP server speaking the OpenAI, Anthropic and Gemini wire formats.

Its replies are deterministic and its behaviour (latency, errors, hangs, drops, broken chunks,
scripted tool calls) is set per upstream model name at run time through ``/_sim/``.
"""
