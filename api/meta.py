"""What every API model shares: the base model, Kubernetes timestamps and quantities, and object metadata."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_serializer


class ApiModel(BaseModel):
    """Base of every model: Kubernetes JSON in and out, nothing lost.

    * Python names are snake_case; each camelCase JSON name is given as the field's alias, spelled out (no alias
      generator: `uniqueID` and `instanceUUID` are not what a camel-case converter would produce).
    * Unknown fields are kept (extra="allow") and written back: the objects carry fields we do not model (other
      controllers' status, managedFields, fields of newer API versions), and a status or spec we write must not drop
      them. Typos in user input are caught by the CRD, which prunes unknown spec fields.
    * Enumerations are stored as plain strings so dumps are plain JSON/YAML types.
    * `model_validate(obj)` then `model_dump(exclude_none=True)` gives `obj` back: absent fields are None, not
      empty defaults.
    """

    model_config = ConfigDict(
        extra="allow",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_enum_values=True,
    )

    def to_kube(self) -> dict[str, Any]:
        """The Kubernetes JSON form (camelCase, absent fields omitted)."""
        return self.model_dump(by_alias=True, exclude_none=True)


def kube_time(moment: datetime) -> datetime:
    """`moment` as Kubernetes stores times (metav1.Time): UTC, whole seconds. A naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def kube_time_from(text: str | None) -> datetime:
    """A metav1.Time string ("2025-10-27T14:55:26Z") as an aware datetime; the epoch when absent."""
    if not text:
        return datetime.fromtimestamp(0, UTC)
    return kube_time(datetime.fromisoformat(text.replace("Z", "+00:00")))


def format_kube_time(moment: datetime) -> str:
    return kube_time(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


# A metav1.Time field: parsed from RFC 3339, always written back as "2025-10-27T14:55:26Z" (also by a plain
# model_dump(), so dumps compare equal to the JSON they came from).
KubeTime = Annotated[datetime, PlainSerializer(format_kube_time, return_type=str)]


def _quantity_text(value: object) -> object:
    # int-or-string in the schema: a client may send 1024 where Kubernetes itself would write "1024".
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# A resource.Quantity kept as its text ("25Gi", "12226581330"); api.quantity parses and formats it.
QuantityText = Annotated[str, BeforeValidator(_quantity_text)]


class OwnerReference(ApiModel):
    api_version: str = Field(alias="apiVersion")
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = Field(default=None, alias="blockOwnerDeletion")


class ObjectMeta(ApiModel):
    name: str | None = None
    generate_name: str | None = Field(default=None, alias="generateName")
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    generation: int | None = None
    creation_timestamp: KubeTime | None = Field(default=None, alias="creationTimestamp")
    deletion_timestamp: KubeTime | None = Field(default=None, alias="deletionTimestamp")
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    finalizers: list[str] | None = None
    owner_references: list[OwnerReference] | None = Field(default=None, alias="ownerReferences")

    @property
    def is_being_deleted(self) -> bool:
        return self.deletion_timestamp is not None

    def label(self, key: str) -> str | None:
        return (self.labels or {}).get(key)

    def annotation(self, key: str) -> str | None:
        return (self.annotations or {}).get(key)

    def has_finalizer(self, finalizer: str) -> bool:
        return finalizer in (self.finalizers or [])


class KubeObject(ApiModel):
    """What both kinds share: API version, kind, metadata, and the dump rules for status."""

    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @model_serializer(mode="wrap")
    def _omit_empty_status(self, handler: Any) -> dict[str, Any]:
        # An object without status dumps without one (as Kubernetes would show it), not with `status: {}`.
        data: dict[str, Any] = handler(self)
        if data.get("status") == {}:
            del data["status"]
        return data

    @property
    def name(self) -> str | None:
        return self.metadata.name

    @property
    def namespace(self) -> str | None:
        return self.metadata.namespace

