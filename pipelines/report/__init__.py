"""The run record's parts: what the report stage reads, its tables, figures and tests."""
