"""Benchmarks and trust: rank metrics of any estimator against ground truth."""

from supernas.bench.metrics import kendall_tau, rank_report, spearman_rho, top_k_overlap

__all__ = ["kendall_tau", "rank_report", "spearman_rho", "top_k_overlap"]
