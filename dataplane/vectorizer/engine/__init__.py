"""The storage engine: collections, indexes, filters, write-ahead log and snapshots.

Nothing in here imports aiohttp: the engine is driven by the server, the tests and
the benchmarks alike.
"""
