"""Reconcile decisions (pure functions, no kopf) and the pass that carries them out."""
