"""The key of a chunk of a toy sweep (`cpi.sims.chunks.chunk_hash`) names the chunk's file in a
sweep's groups/ folder, so that a resumed sweep finds the chunks it saved before: it must not
change when code is renamed."""

from cpi.sims import config as cfg
from cpi.sims.chunks import chunk_hash


def test_chunk_keys_are_those_of_sweeps_saved_before_the_config_sections_were_renamed():
    base = cfg.Config()
    other = cfg.with_values(base, {"train.lr": 0.5, "world.n_subjects": 12})
    assert chunk_hash([base, other], "full", 1, True) == "db4db478a2a76c24"
    assert chunk_hash([other], "reduced", 5, False) == "f945fe776a4e9062"
