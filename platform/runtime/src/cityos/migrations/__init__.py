"""Migration histories owned by the runtime itself (the ``platform`` history)."""
