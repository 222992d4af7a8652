"""dsml-platform: a data science and machine learning platform built on JupyterHub."""

__version__ = "0.1.0"
