"""SQL per feature (asyncpg), migrations and the embedded PostgreSQL."""
