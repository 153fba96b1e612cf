"""Pipeline stages: each takes a batch and returns a batch, vectorised where it can be. A stage that
remembers something across batches exposes it through ``state()`` / ``restore()`` for the checkpoint."""
