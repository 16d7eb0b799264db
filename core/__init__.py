"""cpi.core: what every layer above theory shares, written once: grids, sweep directories and
their manifests, resumable chunks and shards, the keyed store, progress, errors."""
