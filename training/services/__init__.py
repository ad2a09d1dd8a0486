"""Writes of the training app: dataset ingestion and training jobs."""
