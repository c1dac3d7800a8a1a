"""TDM distillation: the few-step system, its losses, the distillation loop and student export."""
