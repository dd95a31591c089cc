"""nova-deploy: VAR image generators from a PyTorch checkpoint to per-scale graphs and engines,
accelerated by NOVA entropy-guided token pruning.

Importing the package is cheap and has no side effects; heavy submodules load on use.
"""

__version__ = "0.1.0"
