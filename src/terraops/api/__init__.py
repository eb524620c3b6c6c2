"""terraops api layer."""
