"""Contract tests: the same assertions against an in-memory fake and the real adapter."""
