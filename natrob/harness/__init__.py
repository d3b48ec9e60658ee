"""The evaluation harness: one evaluation of one model at one radius (:mod:`.evaluate`), the attack runs it is made of,
predictions and per-sample solves, the evaluation store that caches finished evaluations, and float16 autocast
as a GPU computes it."""
