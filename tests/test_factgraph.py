"""The fact graph: temporal, tag, entity and causal edges with weights, bounded memory across batches."""

from __future__ import annotations

from vexrun.stages.factgraph import FactGraphStage
from vexrun.stages.settings_extract import FactGraphSettings
from vexrun.vmig import Batch, Record


def fact(
    fid: str, conv: str = "c1", tags: list[str] | None = None, ents: list[str] | None = None, **m: object
) -> Record:
    meta: dict[str, object] = {"conversation_id": conv, "tags": tags or [], "entities": ents or []}
    meta.update(m)
    return Record(id=fid, text=fid, metadata=meta)  # type: ignore[arg-type]


def edges_of(
    stage: FactGraphStage, *records: Record, exclude: tuple[str, ...] = ()
) -> set[tuple[str, str, str, float]]:
    return {(e.src, e.dst, e.type, e.weight) for e in stage.link(Batch(records=list(records)), exclude=exclude)}


def test_temporal_edges_follow_each_conversation_across_batches() -> None:
    g = FactGraphStage(FactGraphSettings(tag=False, entity=False))
    assert edges_of(g, fact("a"), fact("x", conv="c2"), fact("b")) == {("a", "b", "temporal", 1.0)}
    assert edges_of(g, fact("c"), fact("y", conv="c2")) == {("b", "c", "temporal", 1.0), ("x", "y", "temporal", 1.0)}


def test_tag_edges_are_weighted_by_overlap() -> None:
    g = FactGraphStage(FactGraphSettings(temporal=False, entity=False, min_tag_weight=0.3))
    got = edges_of(
        g,
        fact("a", tags=["db", "postgres"]),
        fact("b", tags=["db", "postgres", "ops"]),
        fact("c", tags=["DB", "travel", "food", "lisbon"]),
    )
    assert got == {("a", "b", "tag", round(2 / 3, 4))}  # b–c (1/6) and a–c (1/5) are lighter than 0.3
    g2 = FactGraphStage(FactGraphSettings(temporal=False, entity=False, min_tag_weight=0.1))
    got2 = edges_of(g2, fact("a", tags=["db", "postgres"]), fact("c", tags=["db", "travel", "food", "lisbon"]))
    assert got2 == {("a", "c", "tag", 0.2)}


def test_entity_edges_name_the_shared_entities() -> None:
    g = FactGraphStage(FactGraphSettings(temporal=False, tag=False))
    (edge,) = g.link(Batch(records=[fact("a", ents=["Anna", "Berlin"]), fact("b", conv="c9", ents=["anna"])]))
    assert (edge.src, edge.dst, edge.type, edge.weight) == ("a", "b", "entity", 0.5)
    assert edge.metadata == {"entities": ["anna"]}


def test_causal_edges_from_caused_by() -> None:
    g = FactGraphStage(FactGraphSettings(temporal=False))
    (edge,) = g.link(Batch(records=[fact("reason"), fact("decision", caused_by=["reason"])]))
    assert (edge.src, edge.dst, edge.type, edge.weight, edge.metadata) == (
        "reason",
        "decision",
        "causal",
        1.0,
        {"relation": "because"},
    )


def test_facts_sent_again_get_no_new_edges() -> None:
    g = FactGraphStage(FactGraphSettings())
    edges_of(g, fact("a", tags=["x"]))
    assert edges_of(g, fact("b", conv="c2", tags=["y"]), fact("a", tags=["x"]), exclude=("a",)) == set()


def test_memory_is_bounded_and_survives_a_restore() -> None:
    s = FactGraphSettings(temporal=False, entity=False, links_per_key=3, memory_facts=100)
    g = FactGraphStage(s)
    for i in range(300):
        g.link(Batch(records=[fact(f"f{i}", tags=["common", f"t{i % 7}"])]))
    assert len(g.recent) == 100
    # a new fact with the common tag links to at most links_per_key recent facts per tag
    new = g.link(Batch(records=[fact("new", tags=["common"])]))
    assert 1 <= len(new) <= 3 and all(e.src in g.recent for e in new)
    state = g.state()
    assert len(state["recent"]) == 100
    h = FactGraphStage(s)
    h.restore(state)
    assert [e.src for e in h.link(Batch(records=[fact("n2", tags=["t3"])]))] == [
        e.src for e in g.link(Batch(records=[fact("n2", tags=["t3"])]))
    ]
