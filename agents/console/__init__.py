"""The operator console: one server-rendered page at ``/ops/`` over what the worker keeps."""
