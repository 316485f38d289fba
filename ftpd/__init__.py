"""ftpd: a fork-per-client LAN file server speaking FTPD/1."""

__version__ = "0.1.0"
