"""Training with Lightning: tasks and losses, data modules, the module and ``fit``, YAML recipes."""
