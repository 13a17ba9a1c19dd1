"""Persistence: SQLAlchemy models, migrations, evidence files and the services that write them."""
