"""supernas: one-shot neural architecture search, with a trust report in every run.

The public API in one place; each name lives in the domain package named beside it.
"""

from supernas.bench import kendall_tau, rank_report, spearman_rho, top_k_overlap
from supernas.config import RunConfig
from supernas.data import Dataset, list_datasets, load_data
from supernas.errors import SupernasError
from supernas.estimate import (
    Estimator,
    FlopsEstimator,
    ParamsEstimator,
    SupernetEstimator,
    TrainFromScratch,
    train_arch,
)
from supernas.hardware import ArchCost, count_flops, count_params, parse_constraint
from supernas.nn import LayerChoice, ValueChoice, as_supernet, register_model, space_of
from supernas.pipeline import Run, load_model
from supernas.proxies import get_proxy, list_proxies, register_proxy
from supernas.search import (
    SearchResult,
    Strategy,
    Trial,
    get_strategy,
    list_strategies,
    register_strategy,
    run_search,
)
from supernas.space import Arch, Choice, SearchSpace, get_space, list_spaces, register_space
from supernas.supernet import (
    Supernet,
    build_network,
    build_supernet,
    recalibrate_bn,
    register_supernet,
)
from supernas.train import (
    Recipe,
    SPOSTrainer,
    get_trainer,
    list_trainers,
    load_supernet,
    register_trainer,
    train_model,
)

__version__ = "0.1.0"

__all__ = [
    "Arch",
    "ArchCost",
    "Choice",
    "Dataset",
    "Estimator",
    "FlopsEstimator",
    "LayerChoice",
    "ParamsEstimator",
    "Recipe",
    "Run",
    "RunConfig",
    "SPOSTrainer",
    "SearchResult",
    "SearchSpace",
    "Strategy",
    "SupernasError",
    "Supernet",
    "SupernetEstimator",
    "TrainFromScratch",
    "Trial",
    "ValueChoice",
    "__version__",
    "as_supernet",
    "build_network",
    "build_supernet",
    "count_flops",
    "count_params",
    "get_proxy",
    "get_space",
    "get_strategy",
    "get_trainer",
    "kendall_tau",
    "list_datasets",
    "list_proxies",
    "list_spaces",
    "list_strategies",
    "list_trainers",
    "load_data",
    "load_model",
    "load_supernet",
    "parse_constraint",
    "rank_report",
    "recalibrate_bn",
    "register_model",
    "register_proxy",
    "register_space",
    "register_strategy",
    "register_supernet",
    "register_trainer",
    "run_search",
    "space_of",
    "spearman_rho",
    "top_k_overlap",
    "train_arch",
    "train_model",
]
