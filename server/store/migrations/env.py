"""Alembic environment: runs on the connection handed over by `Database.migrate`."""

from alembic import context

from server.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `immune-core migrate` (Database.migrate)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
