"""The NGSI-LD temporal API's own logic (GS CIM 009 5.6.11-5.6.16, 5.7.3-5.7.4, 6.3.10).

- :mod:`.documents`: temporal entities and fragments a client sends → expanded form;
  expanded temporal answers from the knowledge facade → what the client reads.
- :mod:`.paging`: the per-attribute instance cap with the ``Content-Range`` / 206 answer.
"""

from __future__ import annotations
