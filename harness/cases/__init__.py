"""Case files in: the case model, YAML nodes with their locations, schema checks, matrices, patterns, inputs."""
