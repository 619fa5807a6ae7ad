"""Alembic environment: runs against the engine handed over by phip.store.db.upgrade."""

from alembic import context

from phip.schema import Base  # every area's tables, for autogenerate

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` command line: build from the environment
    from phip.config import get_settings
    from phip.store.db import make_engine

    engine = make_engine(get_settings().database_url)

# engine.begin(): one transaction, begun as a write (on SQLite IMMEDIATE: a second process
# upgrading at the same moment waits, then finds the schema current); Alembic runs inside it
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
