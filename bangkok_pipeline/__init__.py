"""bangkok_pipeline: the CU-BEMS smart-building dataset, loaded into PostgreSQL by Dagster."""
