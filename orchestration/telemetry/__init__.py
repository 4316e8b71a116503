"""What operators watch Switchyard with: OpenTelemetry traces (``tracing``, ``genai``), JSON logs
(``logs``) and the live state behind ``/metrics`` (``exposition``). The LLM counters themselves are
``orchestration.metrics``."""
