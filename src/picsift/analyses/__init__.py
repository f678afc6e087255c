"""Corpus-level work on stored features (copies, search, sort, clusters, ...)."""
