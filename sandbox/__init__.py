"""Fake peers (Telegram Bot API, Gemini API) for the demo, the tests and the benchmarks; not installed.

Both fakes share one API: ``SandboxTelegram`` / ``SandboxGemini`` are aiohttp servers used with
``async with`` (``base_url``, ``script(...)``, the recorded ``messages`` / ``requests``), and each module's
``run_in_thread(**options)`` serves one from a daemon thread, wrapped in :class:`ServerThread`, which offers
the same names to synchronous code. ``python -m sandbox.telegram`` / ``python -m sandbox.gemini`` run them by hand.
"""

from sandbox._thread import ServerThread

__all__ = ["ServerThread"]
