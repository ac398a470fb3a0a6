"""DuckDB: schema and migrations, the inbox (events, orders, lines) and what builds on it."""
