"""Ingestion: read each input, map it to the input contract, validate it, land its new row versions."""
