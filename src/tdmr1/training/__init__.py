"""Training run machinery shared by every trainer: state, logs, RNG, processes, stops, EMA."""
