"""Importing this module registers every model of the zoo."""

from urbanst.models import stid  # noqa: F401
from urbanst.models import promptst  # noqa: F401
from urbanst.models.baselines import ha, naive, ridge  # noqa: F401
from urbanst.models.unist import model as unist_model  # noqa: F401
from urbanst.models.baselines import events  # noqa: F401
from urbanst.models.baselines import impute as impute_baselines  # noqa: F401
from urbanst.models import llm4hrs  # noqa: F401
from urbanst.models import st_llm  # noqa: F401
from urbanst.models.urbangpt import model as urbangpt_model  # noqa: F401
from urbanst.models.airgpt import model as airgpt_model  # noqa: F401
from urbanst.models import urbanmind  # noqa: F401
