"""Benchmarks and trust: rank metrics, tabular benchmarks, table-driven search, trust."""

from supernas.bench.anytime import anytime_trajectory, oneshot_ranking, sample_archs
from supernas.bench.metrics import kendall_tau, rank_report, spearman_rho, top_k_overlap
from supernas.bench.table import (
    ColumnConstraint,
    Table,
    TableEstimator,
    load_tables,
    parse_column_constraint,
    seed_values,
)
from supernas.bench.table_search import table_search
from supernas.bench.trust import create_estimator, noise_ceiling, trust_metrics, verdict
from supernas.bench.tune import SEARCH_SPACES, tune

__all__ = [
    "SEARCH_SPACES",
    "ColumnConstraint",
    "Table",
    "TableEstimator",
    "anytime_trajectory",
    "create_estimator",
    "kendall_tau",
    "load_tables",
    "noise_ceiling",
    "oneshot_ranking",
    "parse_column_constraint",
    "rank_report",
    "sample_archs",
    "seed_values",
    "spearman_rho",
    "table_search",
    "top_k_overlap",
    "trust_metrics",
    "tune",
    "verdict",
]
