"""Telemetry of the service: OpenTelemetry tracing (``otel``, ``provider``) and its log lines (``logs``)."""
