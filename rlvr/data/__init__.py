"""Verifiable-prompt datasets: schema, validation, curation, importers (see SCHEMA.md)."""
