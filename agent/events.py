"""The text of events injected into a call's model session (tool results, errors, timers).

One function, shared by the live call path (agent.session) and the training data
(model.data.render), so the model reads in a call exactly the payloads it was trained on.
Standard library only: the gateway process must stay free of torch and model/.
"""

from __future__ import annotations

import json


def event_json(value: object) -> str:
    """An event payload as the model reads it: compact JSON, non-ASCII kept as UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
