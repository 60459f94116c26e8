"""The Prefect-free engine: plan, work, executor, catalog, documents and rollups."""
