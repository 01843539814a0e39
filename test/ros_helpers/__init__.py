"""Helper processes and observers for the node tests (publisher, recorder)."""
