"""One run measured, not the node: measure, track(), the run file, report, MLflow."""
