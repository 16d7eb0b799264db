"""Experiments on the toy model: config, world, model, training, results, command line."""
