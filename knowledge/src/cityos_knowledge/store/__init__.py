"""The knowledge stores: schema, tenants, history layout and the database handle."""
