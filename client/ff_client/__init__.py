"""ff_client: ffctl and the importable API behind it (plan, local run, analysis, tables, plots)."""
