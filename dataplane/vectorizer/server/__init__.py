"""The HTTP server: aiohttp app, middlewares, native and Qdrant-compatible routes."""
