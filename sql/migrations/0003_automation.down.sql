DROP TABLE run_failures;
