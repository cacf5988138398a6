"""The stage entry points: parse the config, build the graph from transforms, run it."""
