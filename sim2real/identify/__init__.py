"""System identification (`sim2real identify`): fit the task's dynamics parameters to a deployment log."""
