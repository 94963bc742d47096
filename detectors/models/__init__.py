"""Anomaly models (PyOD style): fit on history, then score; higher = more unusual; the
threshold is explicit in the config. Each returns findings and the fitted artefact."""
