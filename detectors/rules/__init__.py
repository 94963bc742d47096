"""One file per rule; the explicit list of all detectors is detectors/registry.py."""
