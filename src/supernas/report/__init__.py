"""The run folder's report: markdown tables, matplotlib PNGs, and one self-contained HTML."""

from supernas.report.html import refresh_report, render_html, write_html_report
from supernas.report.markdown import trust_verdict, write_report

__all__ = ["refresh_report", "render_html", "trust_verdict", "write_html_report", "write_report"]
