"""The base of every JSON request body of the API.

A body with a key its model does not define is rejected with a 400 problem
that names the key and lists the valid ones, as `PATCH /settings` does.
Ignoring the key would lose what the client meant without a word: a token
created with `"expires"` instead of `"expires_in_days"` would never expire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from strongroom.base.validation import keys_holding_nul, nul_message, unknown_keys_message


class RequestBody(BaseModel):
    """A JSON request body that rejects unknown keys and text with U+0000.

    Aliases and field names both count as known keys.
    """

    # `forbid` also publishes `additionalProperties: false` in the OpenAPI document.
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _check_keys_and_text(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        accepted = accepted_keys(cls)
        unknown = [str(key) for key in data if key not in accepted]
        if unknown:
            # Raised here rather than left to `forbid`, whose message cannot list the valid keys.
            detail = unknown_keys_message(unknown, public_keys(cls))
            raise PydanticCustomError("unknown_field", "{detail}", {"detail": detail})
        holding_nul = keys_holding_nul(data)
        if holding_nul:
            raise PydanticCustomError(
                "nul_character", "{detail}", {"detail": nul_message(holding_nul)}
            )
        return data


def public_keys(model: type[BaseModel]) -> list[str]:
    """Return the keys the OpenAPI document gives the model: each field's alias, or its name."""
    return [info.alias or name for name, info in model.model_fields.items()]


def accepted_keys(model: type[BaseModel]) -> set[str]:
    """Return the keys a body may have: the public keys, and field names where the model allows them."""
    keys = set(public_keys(model))
    if model.model_config.get("populate_by_name") or model.model_config.get("validate_by_name"):
        keys.update(model.model_fields)
    return keys
