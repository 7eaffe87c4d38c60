"""AgentConfig, the shipped agents, the rendered prefix and the registry."""

import pytest
from pydantic import ValidationError

from agent.config import (
    BUILTIN_AGENTS,
    ESSENTIALS_BUDGET,
    SHIPPED_AGENTS,
    AgentConfig,
    StaticAgentRegistry,
    UnknownAgent,
    get_agent,
    mirror_problem,
    render_prefix,
)


def agent(**kw) -> AgentConfig:
    fields = dict(name="demo", languages=("en",), instructions="Be brief.")
    fields.update(kw)
    return AgentConfig(**fields)


def test_shipped_agents():
    support, translate = get_agent("support"), get_agent("translate-en-es")
    assert {"lookup_order", "create_return", "search_faq", "book_callback", "transfer", "end_call"} == set(
        support.tools
    )
    assert support.handoff_number == "+15555550100" and "returns" in support.instructions.lower()
    assert translate.translation_target == "es" and translate.languages == ("en",)
    assert [a.name for a in SHIPPED_AGENTS] == ["support", "translate-en-es", "translate-es-en"]


def test_the_shipped_interpreters_mirror_each_other_and_nothing_else_does():
    en_es, es_en = get_agent("translate-en-es"), get_agent("translate-es-en")
    assert es_en.languages == ("es",) and es_en.translation_target == "en"
    assert mirror_problem(en_es, es_en) is None and mirror_problem(es_en, en_es) is None
    assert "does not interpret back" in mirror_problem(en_es, en_es)
    assert "does not interpret" in mirror_problem(get_agent("support"), es_en)
    assert mirror_problem(en_es, get_agent("support")) == (
        "agent 'support' (en>?) does not interpret back the room's 'translate-en-es' (en>es)"
    )


def test_bridge_ducking_is_for_interpreters_and_within_60_db():
    assert agent(translation_target="es", bridge_ducking_db=0).bridge_ducking_db == 0
    with pytest.raises(ValidationError, match="only interpreters bridge"):
        agent(bridge_ducking_db=12)
    for bad in (-1, 61):
        with pytest.raises(ValidationError):
            agent(translation_target="es", bridge_ducking_db=bad)


@pytest.mark.parametrize("a", SHIPPED_AGENTS, ids=lambda a: a.name)
def test_prefix_puts_the_essentials_first_within_budget(a):
    prefix = render_prefix(a)
    name, langs, tools, instructions = prefix.split("|", 3)
    assert name == a.name and tools == ",".join(a.tools)
    assert len(f"{name}|{langs}|{tools}|".encode()) <= ESSENTIALS_BUDGET
    assert instructions.startswith(" ".join(a.instructions.split())[:40])
    assert "\n" not in prefix


def test_prefix_formats():
    assert render_prefix(get_agent("translate-en-es")).startswith(
        "translate-en-es|en>es|end_call|You are a live interpreter"
    )
    assert render_prefix(get_agent("support")).startswith(
        "support|en|lookup_order,create_return,search_faq,book_callback,transfer,end_call|You answer"
    )
    cut = render_prefix(agent(instructions="é" * 100), max_bytes=12)
    assert cut.encode() == b"demo|en||" + "é".encode() and len(cut.encode()) <= 12  # never mid-character


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": "Support Line"}, "name"),
        ({"languages": ("english",)}, "ISO 639"),
        ({"languages": ()}, "languages"),
        ({"tools": ("Lookup-Order",)}, "lowercase identifier"),
        ({"tools": ("a", "a")}, "listed twice"),
        ({"tools": ("transfer",)}, "handoff_number is not set"),
        ({"handoff_number": "555-0100"}, "handoff_number"),
        ({"translation_target": "en"}, "translation_target 'en' is also in languages"),
        ({"tools": tuple(f"tool_number_{i}" for i in range(8))}, f"at most {ESSENTIALS_BUDGET} fit"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_invalid_agents_name_the_field(fields, message):
    with pytest.raises(ValidationError, match=message):
        agent(**fields)


def test_agents_are_frozen():
    with pytest.raises(ValidationError):
        get_agent("support").name = "x"


async def test_unknown_agent_names_the_known_ones():
    with pytest.raises(
        UnknownAgent, match="unknown agent 'nope'; known agents: support, translate-en-es, translate-es-en"
    ):
        get_agent("nope")
    with pytest.raises(UnknownAgent) as info:
        await BUILTIN_AGENTS.get("x" * 500)
    assert len(str(info.value)) < 200 and isinstance(info.value, LookupError)
    assert await BUILTIN_AGENTS.names() == ["support", "translate-en-es", "translate-es-en"]
    assert (await StaticAgentRegistry([agent()]).get("demo")).name == "demo"
    with pytest.raises(ValueError, match="two agents are called 'demo'"):
        StaticAgentRegistry([agent(), agent()])
