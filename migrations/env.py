"""Alembic environment: the URL comes from the Flask app (see core/cli.py), the schema from models."""
from alembic import context
from sqlalchemy import create_engine, pool

import models

config = context.config
url = config.attributes["database_url"]
if url.startswith("postgresql://"):
    url = "postgresql+psycopg://" + url[len("postgresql://"):]

engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=models.Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
