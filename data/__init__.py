"""The data layer: tasks and their registry, generators and loaders, training, evaluation jobs and the archive."""
