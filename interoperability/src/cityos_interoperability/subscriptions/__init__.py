"""NGSI-LD subscriptions and notifications (GS CIM 009 5.8, 5.2.12-5.2.14, 5.3.1).

- :mod:`.model`: a subscription document checked and read into typed values (pure).
- :mod:`.tables` / :mod:`.store`: the ``cityos_interop.subscriptions`` table.
- :mod:`.registry`: the subscriptions the notifier matches against, compiled and cached.
- :mod:`.matcher`: which notification triggers a change fires for a subscription (pure).
- :mod:`.rendering`: the notification body (entities compacted, changes shown).
- :mod:`.dispatcher`: the ``knowledge.entities.changed.v1`` consumer and the periodic runs.
- :mod:`.notifier` / :mod:`.transports`: delivery over HTTP and MQTT, one queue per endpoint.
"""

from __future__ import annotations
