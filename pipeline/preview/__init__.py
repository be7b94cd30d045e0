"""Before spending: per-stage dry runs, stage-order plans and the samples they run on."""
