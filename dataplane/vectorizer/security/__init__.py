"""Security without aiohttp: credentials, roles and permissions, rate limits, audit, TLS.

The server's middlewares (``server/middlewares/``) are the only callers that know HTTP;
everything here is plain Python so it can be unit-tested on its own.
"""
