"""Monitoring: drift reports, data-quality suites, feedback and live error, SLO checks."""
