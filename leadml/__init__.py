"""leadml: lead-conversion and customer-lifetime-value prediction service."""

__version__ = "0.1.0"
