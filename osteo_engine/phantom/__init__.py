"""Synthetic hand-radiograph cohort with a physiological disease model, and its oracle."""

from .cohort import PhantomConfig, PhantomSubject, generate_subject, write_cohort
from .oracle import OracleResult, run_oracle

__all__ = ["OracleResult", "PhantomConfig", "PhantomSubject", "generate_subject", "run_oracle", "write_cohort"]
