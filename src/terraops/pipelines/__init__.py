"""terraops pipelines layer."""
