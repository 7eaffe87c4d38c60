"""Translation lines: a number whose caller is bridged to a second party, an interpreter each way.

A number configured through the admin API answers with its agent (the interpreter of the
caller's speech, party A). With a `TranslationLine` on it, the number does not talk to the caller:
Parley reaches party B and bridges the two (`agent.bridge_dial`). The line says how B is reached
(`dial`: a `fixed` `callee_number`, or `dtmf`: A keys B's number in, ended by `#` or
`dtmf_timeout_s` without a key), which numbers may be dialled at all (`allow`, a
`telephony.dialplan.DialPolicy`: the toll-fraud guard, checked again by the transport before any
INVITE), the interpreter of B's speech (`callee_agent`, which must interpret back the number's
agent), how loud each party hears the other's own voice under the interpreter (`ducking_db`, for
both directions; null: the interpreter alone), and how long B may ring (`ring_timeout_s`).

Only the shape and ranges are checked here; that the agents exist and mirror each other is the
admin API's check (and the gateway's again, per call).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.config import PHONE, SLUG
from telephony.dialplan import DialPolicy
from telephony.mix import MAX_DUCKING_DB

MIN_RING_S, MAX_RING_S = 5.0, 120.0
MIN_DTMF_S, MAX_DTMF_S = 1.0, 30.0


class TranslationLine(BaseModel):
    """How a translation number reaches its second party (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    callee_agent: str = Field(
        pattern=SLUG,
        max_length=40,
        description="The interpreter of party B's speech; it must interpret back the number's agent "
        "(translate-es-en for a number answered by translate-en-es).",
    )
    dial: Literal["fixed", "dtmf"] = Field(
        description="fixed: always call `callee_number`; dtmf: the caller keys B's number in "
        "(international, with or without a leading 00), ended by # or `dtmf_timeout_s`."
    )
    callee_number: str | None = Field(
        None, pattern=PHONE, description="With dial=fixed: the number to call, E.164; it must be allowed."
    )
    allow: DialPolicy = Field(
        default_factory=DialPolicy,
        description="The only numbers this line may dial (numbers, prefixes, anchored patterns); "
        "empty: none.",
    )
    ducking_db: float | None = Field(
        18.0,
        ge=0.0,
        le=MAX_DUCKING_DB,
        description="Each party hears the other's own voice this many dB under the interpreter; "
        "null: the interpreter alone. Overrides the agents' bridge_ducking_db on this line.",
    )
    ring_timeout_s: float = Field(
        30.0, ge=MIN_RING_S, le=MAX_RING_S, description="B not answering within this long ends the call."
    )
    dtmf_timeout_s: float = Field(
        5.0,
        ge=MIN_DTMF_S,
        le=MAX_DTMF_S,
        description="With dial=dtmf: the number ends after this long without a key (or at #).",
    )

    @model_validator(mode="after")
    def _dial_mode(self) -> TranslationLine:
        if self.dial == "fixed":
            if self.callee_number is None:
                raise ValueError("dial 'fixed' needs callee_number")
            refusal = self.allow.check(self.callee_number)
            if refusal is not None:
                raise ValueError(f"callee_number is not allowed by `allow`: {refusal.reason}")
        elif self.callee_number is not None:
            raise ValueError("callee_number is only for dial 'fixed' (with 'dtmf' the caller keys it in)")
        return self
