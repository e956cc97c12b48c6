"""What runs inside a graded run, not in the grader: the pytest plugin, the guard cells' module and the model
inspector. Nothing here imports the rest of the engine at module level."""
