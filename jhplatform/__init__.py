"""jhplatform: a GPU-aware, PSS-restricted platform bundle for Zero-to-JupyterHub 4.4."""

__version__ = "0.1.0"
