"""terraops adapters layer."""
