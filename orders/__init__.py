"""Orders from every channel: the signed ingest API, One-ID matching, attribution and commission."""
