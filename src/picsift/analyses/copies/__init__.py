"""Copy detection: total and partial copies found with SIFT, FAISS, geometric checks, graphs."""

from picsift.analyses.copies.options import CopiesOptions
from picsift.analyses.copies.pipeline import CopiesResult, run_copies

__all__ = ["CopiesOptions", "CopiesResult", "run_copies"]
