"""The run folder's report: markdown tables plus matplotlib PNGs."""

from supernas.report.markdown import trust_verdict, write_report

__all__ = ["trust_verdict", "write_report"]
