"""cfmimo: learning-based resource allocation for cell-free massive MIMO.

Layers (imports point one way, left to right; see docs/architecture.md):
``sim`` (batched physics) -> ``problems`` -> ``policies`` -> ``learn`` -> ``experiments`` -> ``cli``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cfmimo")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
