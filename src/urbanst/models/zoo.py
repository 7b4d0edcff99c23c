"""Importing this module registers every model of the zoo."""

from urbanst.models import stid  # noqa: F401
from urbanst.models import promptst  # noqa: F401
from urbanst.models.baselines import ha, naive, ridge  # noqa: F401
