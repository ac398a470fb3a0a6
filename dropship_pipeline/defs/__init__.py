"""The Dagster layer: assets, checks, schedules and resources wired over the domain modules."""
