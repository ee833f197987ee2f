"""Vectorizer: a durable vector database with a Qdrant-compatible API."""

__version__ = "0.1.0"
