"""Case files in: the case model, YAML nodes with their locations, the YAML checker and the case schema, matrices, patterns, inputs."""
