"""The Vectorizer operator (kopf). Named so that it does not shadow the stdlib ``operator``."""
