"""Search strategies: ask/tell objects that see a space, numbers and constraints, never a model.

Importing this package registers the built-in strategies: random, exhaustive, evolution,
local_search.
"""

from supernas.search import (  # noqa: F401  (registration)
    evolution,
    exhaustive,
    local,
    multifidelity,
    optuna_samplers,
    policy,
    random,
)
from supernas.search.base import (
    STRATEGIES,
    SearchResult,
    Strategy,
    Trial,
    get_strategy,
    list_strategies,
    register_strategy,
    run_search,
    score_key,
)
from supernas.search.evolution import RegularizedEvolution
from supernas.search.exhaustive import Exhaustive
from supernas.search.local import LocalSearch
from supernas.search.random import RandomSearch

__all__ = [
    "STRATEGIES",
    "Exhaustive",
    "LocalSearch",
    "RandomSearch",
    "RegularizedEvolution",
    "SearchResult",
    "Strategy",
    "Trial",
    "get_strategy",
    "list_strategies",
    "register_strategy",
    "run_search",
    "score_key",
]
