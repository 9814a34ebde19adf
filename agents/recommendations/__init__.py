"""Daily recommendations: per-user advice from Gemini, cached in Redis."""
