"""Reading models' answers: tolerant JSON extraction and validation against the extraction schema."""

from __future__ import annotations

import json

import pytest

from vexrun.providers.llm.cascade import InvalidAnswer
from vexrun.stages.extract import FACT_TYPES, SCHEMA, find_json, validate

GOOD = {
    "facts": [
        {
            "id": "f1",
            "chunk": "c1",
            "fact": "Dana prefers PostgreSQL over MySQL.",
            "type": "preference",
            "importance": 0.8,
            "entities": ["Dana", "PostgreSQL", "MySQL"],
            "tags": ["database", "postgres"],
            "potential": ["Which database does Dana prefer?", "What does Dana think of MySQL?", "Why PostgreSQL?"],
            "attributed_to": "user",
        }
    ],
    "relations": [],
}


def fact(**changes: object) -> dict[str, object]:
    f = dict(GOOD["facts"][0])  # type: ignore[index]
    f.update(changes)
    return {k: v for k, v in f.items() if v is not None}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(GOOD),
        "```json\n" + json.dumps(GOOD, indent=2) + "\n```",
        "```\n" + json.dumps(GOOD) + "\n```",
        "Here are the facts:\n\n" + json.dumps(GOOD) + "\n\nHope this helps! {not json}",
        "Sure { let me think } ... " + json.dumps(GOOD),
        json.dumps(GOOD, indent=1).replace('"user"\n', '"user",\n'),  # a trailing comma
        json.dumps(GOOD["facts"]),  # a bare list
    ],
    ids=["plain", "fenced", "fence-no-lang", "prose", "prose-with-braces", "trailing-comma", "bare-list"],
)
def test_json_is_found_wherever_it_is(text: str) -> None:
    parsed = validate(find_json(text), ["c1"])
    assert [f.fact for f in parsed.facts] == ["Dana prefers PostgreSQL over MySQL."]


def test_braces_inside_strings_do_not_confuse_the_scanner() -> None:
    tricky = dict(GOOD)
    tricky["facts"] = [fact(fact='The user wrote "} {" in a regex.')]
    assert validate(find_json("note: " + json.dumps(tricky) + " end"), ["c1"]).facts[0].fact.startswith("The user")


@pytest.mark.parametrize("text", ["", "   ", "I could not find any facts.", '{"facts": [', "```json\n{oops}\n```"])
def test_no_json_is_an_invalid_answer(text: str) -> None:
    with pytest.raises(InvalidAnswer):
        validate(find_json(text), ["c1"])


def test_unambiguous_deviations_are_fixed() -> None:
    raw = {
        "facts": [
            fact(importance="0.9", type="Preferences", tags=["DB", "Postgres", "db", "sql", "ops", "x"]),
            fact(fact="  Dana   lives in Lisbon. ", importance=7, type="fact", chunk=None, tags="home"),
            fact(
                fact="Dana is the user's manager.",
                importance="high",
                type="relationship",
                potential=["a?", "b?", "c?", "d?"],
                attributed_to="User",
                entities="Dana",
            ),
        ],
        "relations": [{"from": "f2", "to": "f1"}, {"cause": "f9", "effect": "f1"}, "nonsense"],
    }
    raw["facts"][1]["id"] = "f2"  # type: ignore[index]
    raw["facts"][2]["id"] = "f3"  # type: ignore[index]
    parsed = validate(raw, ["c1"])
    a, b, c = parsed.facts
    assert (a.importance, a.type, a.tags) == (0.9, "preference", ["db", "postgres", "sql", "ops"])
    assert (b.fact, b.importance, b.chunk, b.tags) == ("Dana lives in Lisbon.", 0.7, "c1", ["home"])
    assert (c.importance, c.potential, c.attributed_to, c.entities) == (0.8, ["a?", "b?", "c?"], "user", ["Dana"])
    assert parsed.relations == [("f2", "f1")]


def test_problems_are_listed_for_the_repair_request() -> None:
    raw = {
        "facts": [
            fact(potential=["only one?"]),
            fact(chunk="c9"),
            fact(fact=""),
            fact(attributed_to="system", tags=[]),
            fact(type="opinion", importance=None),
        ]
    }
    with pytest.raises(InvalidAnswer) as exc:
        validate(raw, ["c1", "c2"])
    text = str(exc.value)
    assert "facts[0].potential must hold exactly 3 questions (got 1)" in text
    assert "facts[1].chunk must be one of c1, c2 (got 'c9')" in text
    assert 'facts[2] has no "fact" text' in text
    assert "facts[3].tags must hold 1 to 4 keywords" in text and "facts[3].attributed_to" in text
    assert "facts[4].type must be one of" in text and "facts[4].importance must be a number" in text


def test_the_answer_must_be_an_object_with_facts() -> None:
    for bad in ({"items": []}, 42, "facts", {"facts": "none"}):
        with pytest.raises(InvalidAnswer, match='"facts" list'):
            validate(bad, ["c1"])
    assert validate({"facts": []}, ["c1"]).facts == []


def test_the_schema_is_strict_enough_for_openai_structured_outputs() -> None:
    item = SCHEMA["properties"]["facts"]["items"]
    assert item["additionalProperties"] is False and set(item["required"]) == set(item["properties"])
    assert item["properties"]["type"]["enum"] == list(FACT_TYPES)
    rel = SCHEMA["properties"]["relations"]["items"]
    assert rel["additionalProperties"] is False and set(rel["required"]) == set(rel["properties"])
