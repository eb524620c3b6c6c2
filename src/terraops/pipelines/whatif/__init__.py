"""What-if runs: a scenario applied to a scene, predicted before and after, compared."""
