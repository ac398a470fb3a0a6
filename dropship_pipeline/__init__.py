"""dropship-pipeline: the iQmetrix Dropship feed in, ERP files out, status updates back."""

__version__ = "0.1.0"
