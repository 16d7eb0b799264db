"""Pure mathematics of the one-layer toy model: closed forms, exact reduced dynamics,
asymptotics. Explicit numeric arguments only; never imports `sims`."""
