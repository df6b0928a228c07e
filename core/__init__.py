"""Shared infrastructure: the database session, Redis, the job queue, time helpers."""
