"""Qdrant-compatible REST routes under ``/qdrant`` (for the official ``qdrant-client``).

``routes`` is the route table; ``views`` are thin handlers; ``schemas`` the request bodies;
``models`` turns bodies into engine arguments; ``responses`` shapes Qdrant's results;
``errors`` maps domain errors to Qdrant's statuses and wording.
"""
