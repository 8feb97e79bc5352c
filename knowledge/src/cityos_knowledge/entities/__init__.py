"""NGSI-LD entities and attributes: their rows, validation and the SQL that writes them."""
