"""The framework every scenario runs in: the catalogue, parameters, the registry and its
context, results and the folders they go to, the memory guard, sweeps, their store and reports,
and the parameter groups and training that several scenarios share. It imports no scenario."""
