"""Typer CLI: thin entry points over the pipelines."""
