"""Translation lines through the real admin process: a number configured as a line (fixed and
dial-by-DTMF), strict validation with the field named, the line kept or replaced or removed, and
the agents' pairing checked whenever the number or its line changes."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)

LINE = {
    "callee_agent": "translate-es-en",
    "dial": "fixed",
    "callee_number": "+34911234567",
    "allow": {"numbers": ["+34911234567"], "prefixes": ["+3493"], "patterns": [r"^\+44[0-9]{10}$"]},
    "ducking_db": 12,
    "ring_timeout_s": 20,
}


def test_a_translation_number_is_created_read_changed_and_made_plain(admin, admin_key):
    with admin.client(admin_key) as api:
        r = api.post(
            "/v1/numbers", json={"number": "+15555550160", "agent": "translate-en-es", "translation": LINE}
        )
        assert r.status_code == 201, r.text
        line = r.json()["translation"]
        assert line["callee_number"] == "+34911234567" and line["ducking_db"] == 12
        assert line["dtmf_timeout_s"] == 5.0 and line["allow"]["prefixes"] == ["+3493"]
        assert api.get("/v1/numbers/+15555550160").json()["translation"] == line
        # relabelling keeps the line; a new line replaces it whole
        assert api.patch("/v1/numbers/+15555550160", json={"label": "Madrid"}).json()["translation"] == line
        keyed = {"callee_agent": "translate-es-en", "dial": "dtmf", "allow": {"prefixes": ["+34"]}}
        r = api.patch("/v1/numbers/+15555550160", json={"translation": keyed})
        assert r.status_code == 200, r.text
        assert r.json()["translation"]["dial"] == "dtmf" and r.json()["translation"]["ducking_db"] == 18.0
        # the line must fit the number's agent: support does not interpret
        r = api.patch("/v1/numbers/+15555550160", json={"agent": "support"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "agent"], r.text
        # null makes it a plain number again, which support may then answer
        r = api.patch("/v1/numbers/+15555550160", json={"translation": None})
        assert r.status_code == 200 and r.json()["translation"] is None
        assert api.patch("/v1/numbers/+15555550160", json={"agent": "support"}).status_code == 200
        plain = api.post("/v1/numbers", json={"number": "+15555550161", "agent": "support"}).json()
        assert plain["translation"] is None
        assert api.delete("/v1/numbers/+15555550160").status_code == 204
        assert api.delete("/v1/numbers/+15555550161").status_code == 204


@pytest.mark.parametrize(
    "change,field,words",
    [
        (
            {"callee_number": "+34931234567", "allow": {"numbers": ["+34911234567"]}},
            "translation",
            "not allowed",
        ),
        ({"allow": {}}, "translation", "no number"),
        ({"callee_number": "0034911234567"}, "callee_number", "pattern"),
        ({"callee_number": "+3491123456789012"}, "callee_number", "pattern"),
        ({"allow": {"patterns": [".*"]}}, "patterns", "anchored"),
        ({"allow": {"prefixes": ["34"]}}, "prefixes", "E.164 prefix"),
        ({"ring_timeout_s": 0}, "ring_timeout_s", "greater than or equal"),
        ({"ring_timeout_s": 3600}, "ring_timeout_s", "less than or equal"),
        ({"ducking_db": 100}, "ducking_db", "less than or equal"),
        ({"dial": "dtmf"}, "translation", "only for dial 'fixed'"),
        ({"dial": "anyone"}, "dial", "'fixed' or 'dtmf'"),
    ],
)
def test_bad_lines_get_422_naming_the_field(admin, admin_key, change, field, words):
    with admin.client(admin_key) as api:
        body = {"number": "+15555550162", "agent": "translate-en-es", "translation": {**LINE, **change}}
        r = api.post("/v1/numbers", json=body)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"][0]
        assert field in [str(x) for x in detail["loc"]] and words in detail["msg"], detail
        assert api.get("/v1/numbers/+15555550162").status_code == 404


@pytest.mark.parametrize(
    "agent,callee,field,words",
    [
        ("support", "translate-es-en", "agent", "does not interpret"),
        ("translate-en-es", "nobody", "translation.callee_agent", "create it first"),
        ("translate-en-es", "translate-en-es", "translation.callee_agent", "does not interpret back"),
        ("translate-en-es", "support", "translation.callee_agent", "does not interpret back"),
    ],
)
def test_the_agents_must_pair_up(admin, admin_key, agent, callee, field, words):
    with admin.client(admin_key) as api:
        body = {"number": "+15555550163", "agent": agent, "translation": {**LINE, "callee_agent": callee}}
        r = api.post("/v1/numbers", json=body)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"][0]
        assert detail["loc"] == ["body", *field.split(".")] and words in detail["msg"], detail
        assert api.get("/v1/numbers/+15555550163").status_code == 404
