"""NGSI-LD context operations (current state): writes, reads, batches, discovery."""
