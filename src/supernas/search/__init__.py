"""Search strategies: ask/tell objects that see a space, numbers and constraints, never a model.

Importing this package registers the built-in strategies: random, exhaustive, evolution,
local_search; on Optuna's samplers tpe, gp, nsga2, nsga3, greedy_pool; the policies
reinforce and ppo; and, in the MULTIFIDELITY registry, successive_halving and hyperband.
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
    Value,
    as_value,
    get_strategy,
    list_strategies,
    register_strategy,
    run_search,
    score_key,
)
from supernas.search.evolution import RegularizedEvolution
from supernas.search.exhaustive import Exhaustive
from supernas.search.local import LocalSearch
from supernas.search.multifidelity import (
    MULTIFIDELITY,
    FidelityObjective,
    FidelityStrategy,
    Hyperband,
    Job,
    MultiFidelityResult,
    Run,
    SuccessiveHalving,
    extrapolate_curve,
    get_multifidelity,
    list_multifidelity,
    register_multifidelity,
    run_multifidelity,
)
from supernas.search.optuna_samplers import GP, NSGA2, NSGA3, TPE, GreedyPool, OptunaStrategy
from supernas.search.pareto import dominates, hypervolume, non_dominated, non_dominated_ranks
from supernas.search.policy import PPO, PolicyStrategy, Reinforce
from supernas.search.random import RandomSearch

__all__ = [
    "GP",
    "MULTIFIDELITY",
    "NSGA2",
    "NSGA3",
    "PPO",
    "STRATEGIES",
    "TPE",
    "Exhaustive",
    "FidelityObjective",
    "FidelityStrategy",
    "GreedyPool",
    "Hyperband",
    "Job",
    "LocalSearch",
    "MultiFidelityResult",
    "OptunaStrategy",
    "PolicyStrategy",
    "RandomSearch",
    "RegularizedEvolution",
    "Reinforce",
    "Run",
    "SearchResult",
    "Strategy",
    "SuccessiveHalving",
    "Trial",
    "Value",
    "as_value",
    "dominates",
    "extrapolate_curve",
    "get_multifidelity",
    "get_strategy",
    "hypervolume",
    "list_multifidelity",
    "list_strategies",
    "non_dominated",
    "non_dominated_ranks",
    "register_multifidelity",
    "register_strategy",
    "run_multifidelity",
    "run_search",
    "score_key",
]
