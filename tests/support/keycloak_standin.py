"""A loopback HTTP stand-in for the parts of Keycloak's admin REST API cityos reads.

Keycloak cannot run on the build machines, so the users' roles summary is tested against
this real HTTP server, driven by the real ``python-keycloak`` client. It answers what
Keycloak 26 answers to those calls (paths, query parameters, JSON shapes): the admin
token (password grant of ``admin-cli`` in the ``master`` realm), paged ``users``,
``clients?clientId=``, and each user's composite realm and client role mappings. Every
admin call must carry the token it issued; anything else is a 401 or a 404.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class StandInUser:
    username: str
    realm_roles: list[str]
    client_roles: list[str] = field(default_factory=list)
    tenants: list[str] = field(default_factory=list)
    federated: bool = False
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


class KeycloakStandIn:
    """One realm with users, one platform client, and the master realm's admin account."""

    def __init__(
        self,
        *,
        realm: str = "cityos",
        client_id: str = "cityos",
        admin_password: str = "admin-secret",
    ) -> None:
        self.realm = realm
        self.client_id = client_id
        self.client_uuid = str(uuid.uuid4())
        self.admin_password = admin_password
        self.users: list[StandInUser] = []
        self.requests: list[str] = []
        self._tokens: set[str] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _user_json(self, user: StandInUser) -> dict[str, Any]:
        found: dict[str, Any] = {
            "id": user.id,
            "username": user.username,
            "enabled": True,
            "emailVerified": False,
            "createdTimestamp": 1763800000000,
            "attributes": {"tenants": user.tenants} if user.tenants else {},
        }
        if user.federated:
            found["federationLink"] = "3f1c0e52-ldap"
        return found

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        form: dict[str, list[str]],
        authorization: str,
    ) -> tuple[int, Any]:
        if method == "POST" and path == "/realms/master/protocol/openid-connect/token":
            good = (
                form.get("grant_type") == ["password"]
                and form.get("client_id") == ["admin-cli"]
                and form.get("username") == ["admin"]
                and form.get("password") == [self.admin_password]
            )
            if not good:
                return 401, {
                    "error": "invalid_grant",
                    "error_description": "Invalid user credentials",
                }
            token = uuid.uuid4().hex
            self._tokens.add(token)
            return 200, {
                "access_token": token,
                "expires_in": 60,
                "refresh_expires_in": 1800,
                "refresh_token": uuid.uuid4().hex,
                "token_type": "Bearer",
                "scope": "profile email",
            }
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or token not in self._tokens:
            return 401, {"error": "HTTP 401 Unauthorized"}
        prefix = f"/admin/realms/{self.realm}"
        if method != "GET" or not path.startswith(prefix):
            return 404, {"error": "Not found"}
        rest = path[len(prefix) :].strip("/").split("/")
        if rest == ["users"]:
            first = int(query.get("first", ["0"])[0])
            most = int(query.get("max", ["100"])[0])
            return 200, [self._user_json(u) for u in self.users[first : first + most]]
        if rest == ["clients"]:
            wanted = query.get("clientId", [None])[0]
            clients = [{"id": self.client_uuid, "clientId": self.client_id}]
            return 200, [c for c in clients if wanted in (None, c["clientId"])]
        by_id = {user.id: user for user in self.users}
        if (
            len(rest) >= 4
            and rest[0] == "users"
            and rest[1] in by_id
            and rest[2] == "role-mappings"
        ):
            user = by_id[rest[1]]
            if rest[3:] == ["realm", "composite"]:
                names = user.realm_roles
            elif rest[3:] == ["clients", self.client_uuid, "composite"]:
                names = user.client_roles
            else:
                return 404, {"error": "Not found"}
            return 200, [
                {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, n)), "name": n, "composite": False}
                for n in names
            ]
        return 404, {"error": "Not found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                standin.requests.append(f"{method} {parts.path}")
                status, answer = standin._answer(
                    method,
                    parts.path,
                    parse_qs(parts.query),
                    parse_qs(body),
                    self.headers.get("Authorization", ""),
                )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
