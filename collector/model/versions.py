"""What a reader does with a record's ``schema_version`` (docs/schema.md, "Schema versions").

``SCHEMA_VERSION`` (collector/model/records.py) is bumped when a field is removed or renamed or
changes meaning or unit; a new optional field does not bump it. Older records are read as they
are; a newer one is refused, since its fields may not mean what this build thinks.
"""

from __future__ import annotations

from collector.model.errors import SchemaVersionError
from collector.model.records import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "check_schema_version"]


def check_schema_version(rec: dict, where: object) -> None:
    """Raise SchemaVersionError for a record of a newer schema_version than this build reads.
    Records without one, or of an older one, pass."""
    v = rec.get("schema_version")
    if type(v) is int and v > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where}: a {rec.get('record_type')!r} record has schema_version {v}; this collector reads "
            f"schema_version <= {SCHEMA_VERSION}. Upgrade the collector to read it (docs/schema.md)"
        )
