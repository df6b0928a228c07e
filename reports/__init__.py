"""Leaderboards (live in Redis, rebuilt from the database), the report CLI and the manager page."""
