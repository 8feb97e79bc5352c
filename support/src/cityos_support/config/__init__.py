"""The configuration repository: versioned settings in PostgreSQL, broadcast on change."""
