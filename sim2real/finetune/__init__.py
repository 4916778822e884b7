"""RL fine-tuning of the distilled student (`sim2real finetune`)."""
