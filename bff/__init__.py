"""bff: a backend-for-frontend for embedded vendor analytics dashboards."""

__version__ = "0.1.0"
