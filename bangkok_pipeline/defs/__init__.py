"""Dagster definitions by domain; `bangkok_pipeline.definitions` assembles them.

Partitioned asset checks (preview) and explicit backfill policies (beta) are used on purpose in
Dagster 1.13: their warnings would repeat on every import, in every run and step process.
"""

import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

# Who answers for every asset (shown in the UI and searchable): the pipeline's team.
OWNERS = ["team:data-engineering"]
