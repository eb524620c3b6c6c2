"""terraops domain layer."""
