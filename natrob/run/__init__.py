"""Running the study: the notebook runner (``python -m natrob.run.runner``, what ``run_all.sh`` runs), each notebook's
setup call, the notebook kernels, the cost model and the GPU check."""
