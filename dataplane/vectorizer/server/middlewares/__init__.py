"""Middlewares, one per module. Order (outermost first) is set in ``app.create_app``."""
