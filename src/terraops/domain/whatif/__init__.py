"""What-if scenarios: interventions drawn as polygons, applied to a scene's inputs."""
