"""Stream records (``records``) and the backend's database schema (``db``)."""
