from tests.optimize.inputs_world import long_world, no_work  # noqa: F401
