"""The study's experiments: Lipschitz bounds (01), the grid of protocols (07), the width (08) and the mechanism (09),
with the protocols, probes, saturation curves and pipelines they share, Table 1's fingerprint, and the models a
profile describes."""
