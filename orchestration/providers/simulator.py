"""The provider simulator (``orchestration.simulator``) in its OpenAI wire format.

It is a real HTTP server, so this is the OpenAI adapter unchanged; only ``simulated`` differs,
which the UI uses to label the replies as not coming from a real model.
"""

from __future__ import annotations

from orchestration.providers.openai import OpenAIProvider


class SimulatorProvider(OpenAIProvider):
    kind = "simulator"
    simulated = True
    default_base_url = "http://127.0.0.1:9100/v1"
