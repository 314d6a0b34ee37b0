"""Order book recorder for prediction markets. The core knows nothing about Prefect."""

__version__ = "0.1.0"
