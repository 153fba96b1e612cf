"""A LangGraph agent that recalls from the quickstart store (`make demo` builds out/quickstart/memory.db).

python examples/agents/langgraph_recall.py "when is the half marathon" [STORE.db | RECIPE.yaml]
"""

import sys
from pathlib import Path
from typing import TypedDict

from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime

from vexrun.errors import VexrunError
from vexrun.integrations.langgraph import VexrunStore


class State(TypedDict, total=False):
    question: str
    recalled: list[str]


def recall(state: State, runtime: Runtime) -> State:
    items = runtime.store.search((), query=state["question"], limit=3)  # () = every namespace
    return {"recalled": [f"[{'/'.join(item.namespace)}] {' '.join(item.value['text'].split())}" for item in items]}


question = sys.argv[1] if len(sys.argv) > 1 else "when is the half marathon"
store_path = sys.argv[2] if len(sys.argv) > 2 else Path(__file__).parents[2] / "out/quickstart/memory.db"
try:
    store = VexrunStore.from_store(store_path)
except VexrunError as exc:
    sys.exit(f"error: {exc} (build the quickstart store with `make demo`, or name a store)")
with store:
    graph = StateGraph(State).add_node(recall).add_edge(START, "recall").compile(store=store)
    for line in graph.invoke({"question": question})["recalled"]:
        print("-", line[:110])
