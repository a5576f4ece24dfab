"""Foundations every stage imports: the sample/latent schema, errors, the registry, provenance, profile names, hashing and audio I/O."""
