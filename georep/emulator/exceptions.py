"""ARM errors the emulator can raise: one class per wire error code, with its HTTP status on the class.

The rules in models.py raise these; responses.py renders them once as the common-types v6 ErrorResponse
(``{"error": {"code", "message", "target"?}}``). Keeping status and code together means a handler can never
pair the wrong status with a code.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ArmError(Exception):
    STATUS: ClassVar[int] = 400
    CODE: ClassVar[str] = "BadRequest"

    def __init__(
        self,
        message: str,
        *,
        target: str | None = None,
        retry_after: int | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status: int = status or self.STATUS
        self.code: str = code or self.CODE
        self.target = target
        #: only 429/503 and explicitly retryable faults carry Retry-After: azure-core retries *any* error with it.
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            err["target"] = self.target
        return {"error": err}


class InvalidRequestContent(ArmError):
    CODE = "InvalidRequestContent"


class LocationRequired(ArmError):
    CODE = "LocationRequired"


class InvalidResourceName(ArmError):
    CODE = "InvalidResourceName"


class MissingApiVersionParameter(ArmError):
    CODE = "MissingApiVersionParameter"


class InvalidApiVersionParameter(ArmError):
    CODE = "InvalidApiVersionParameter"


class LocationNotAvailableForResourceType(ArmError):
    CODE = "LocationNotAvailableForResourceType"


class ZoneRedundancyNotSupported(ArmError):
    """Emulator choice: no public source says what ACR answers to zoneRedundancy=Enabled in a region without
    availability zones. Refusing is the safe reading (documented in ARCHITECTURE.md)."""

    CODE = "ZoneRedundancyNotSupported"


class PropertyChangeNotAllowed(ArmError):
    CODE = "PropertyChangeNotAllowed"


class RegistrySkuNotSupported(ArmError):
    """No public code exists; the message is the Azure CLI's for the same rule."""

    CODE = "RegistrySkuNotSupported"


class HomeReplicationCannotBeDeleted(ArmError):
    CODE = "HomeReplicationCannotBeDeleted"


class ResourceNotFound(ArmError):
    STATUS = 404
    CODE = "ResourceNotFound"


class ResourceGroupNotFound(ArmError):
    STATUS = 404
    CODE = "ResourceGroupNotFound"


class SubscriptionNotFound(ArmError):
    STATUS = 404
    CODE = "SubscriptionNotFound"


class InvalidResourceLocation(ArmError):
    STATUS = 409
    CODE = "InvalidResourceLocation"


class AnotherOperationInProgress(ArmError):
    STATUS = 409
    CODE = "AnotherOperationInProgress"


class TooManyInFlightOperations(ArmError):
    STATUS = 409
    CODE = "TooManyInFlightOperations"


class Conflict(ArmError):
    """The recreate race: a PUT of a name whose delete finished moments ago (azure-rest-api-specs#18934)."""

    STATUS = 409
    CODE = "Conflict"


class AuthenticationFailed(ArmError):
    STATUS = 401
    CODE = "AuthenticationFailed"


class InvalidAuthenticationToken(ArmError):
    STATUS = 401
    CODE = "InvalidAuthenticationToken"


class ExpiredAuthenticationToken(ArmError):
    STATUS = 401
    CODE = "ExpiredAuthenticationToken"


class SubscriptionRequestsThrottled(ArmError):
    STATUS = 429
    CODE = "SubscriptionRequestsThrottled"


class InjectedFault(ArmError):
    """A fault chosen through the control API: status and code come from the fault plan, not the class."""
