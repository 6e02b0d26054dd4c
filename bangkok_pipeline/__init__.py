"""bangkok_pipeline: the CU-BEMS Bangkok smart-building dataset, loaded into PostgreSQL by Dagster."""
