"""urbanst: universal urban spatio-temporal prediction with pretrained language models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("urbanst")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

from urbanst.errors import UrbanstError

__all__ = ["UrbanstError", "__version__"]
