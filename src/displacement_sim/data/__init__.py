"""Port reference data (``ports.yaml``), shipped with the package."""
