"""SensorySync training: the torch side (model library, datasets, training, export)."""
