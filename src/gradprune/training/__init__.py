"""Training: optimizers and learning-rate schedules, checkpoints, and the loop that prunes."""
