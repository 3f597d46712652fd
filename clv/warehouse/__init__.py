"""The warehouse: the embedded DuckDB file, PostgreSQL and Redshift, and the run lock."""
