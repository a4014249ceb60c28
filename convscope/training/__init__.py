"""Training as the papers describe: recipes (config), the loop (train), optimiser (optim), evaluation, DDP (dist),
metrics and the speed guide."""
