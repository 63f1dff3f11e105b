"""The owner app's Requests page: footage requests listed with the clips in their window,
approved or denied with the same code as ``doorward owner requests`` (agent.owner.requests).

Wiring (agent.owner.app.server)::

    api = RequestsApi(service)
    api.listing(device_id)                         # {"requests": [...], "counted": {...}}
    api.approve(device_id, request_id, clips, days)
    api.deny(device_id, request_id, reason)
"""

from __future__ import annotations

from typing import Any

from agent.errors import DoorwardError
from agent.owner import requests as owner_requests
from agent.owner.app.service import OwnerService
from agent.owner.uplink_cli import _manifests


class RequestsApi:
    def __init__(self, service: OwnerService) -> None:
        self.service = service

    def _prefix(self) -> str:
        return self.service.bucket.prefix if self.service.bucket else "doorward"

    def listing(self, device_id: str | None) -> dict[str, Any]:
        device = self.service.device(device_id)
        manifests = None
        if self.service.bucket is not None:
            manifests = _manifests(self.service.store(), self._prefix(), device)[0]
        listed, counted = owner_requests.list_requests(
            self.service.ring, device, self.service.broker(device), manifests,
            self.service.timeout)
        return {"requests": [x.to_json() for x in listed], "counted": counted,
                "clips_checked": manifests is not None}

    def approve(self, device_id: str | None, request_id: str, clips: list[str] | None,
                days: int) -> dict[str, Any]:
        device = self.service.device(device_id)
        grant = owner_requests.approve(
            self.service.ring, device, self.service.broker(device), self.service.store(),
            self._prefix(), request_id, clips, days, timeout=self.service.timeout)
        return {"approved": request_id, "clips": grant.clip_ids(),
                "expires_at": grant.expires_at, "requester": grant.requester}

    def deny(self, device_id: str | None, request_id: str, reason: str | None) -> dict[str, Any]:
        device = self.service.device(device_id)
        if reason is not None and len(reason) > 1000:
            raise DoorwardError("the reason is limited to 1000 characters")
        owner_requests.deny(self.service.ring, device, self.service.broker(device), request_id,
                            reason, timeout=self.service.timeout)
        return {"denied": request_id}
