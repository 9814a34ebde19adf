"""Fake peers (Telegram Bot API, Gemini API) for tests, benchmarks and the demo: shipped code."""
