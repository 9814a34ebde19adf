"""One package per capability: its agents and the integrations it owns."""
