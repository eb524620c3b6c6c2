"""Training a service: cross-validated fitting, MLflow run, registration, real-city evaluation."""
