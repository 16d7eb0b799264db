"""The `cpi` command: `main` is the entry point, `execute` parses and runs one command line
(the commands live in `cpi.commands`, one module each; what they share in `cpi.arguments`).

The entry point is the one place that configures the process, before NumPy and JAX
initialise: one BLAS thread (NumPy's work here is small matrices, which several BLAS threads
slow down by up to 100x on a busy machine; a value already in the environment wins), one
host device per CPU core (so that sweeps shard their points over the cores; a flag already
in XLA_FLAGS wins), XLA's own CPU reductions instead of YNNPACK's and its elemental emitter
instead of the slower-compiling MLIR one (`SPEED_FLAGS`) and a persistent compilation
cache, so that a second `cpi run` of a config does not compile again. The cache lives in
$CPI_COMPILATION_CACHE_DIR, else $XDG_CACHE_HOME/cpi/jax (~/.cache/cpi/jax);
CPI_COMPILATION_CACHE=0 turns it off.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def compilation_cache_dir() -> Path | None:
    """Where compiled programs are kept between processes (None: the cache is off)."""
    from cpi.core.cache_dirs import user_cache_dir

    return user_cache_dir("jax", "CPI_COMPILATION_CACHE_DIR", "CPI_COMPILATION_CACHE")


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

SPEED_FLAGS = {
    "--xla_cpu_experimental_ynn_fusion_type": "-LIBRARY_FUSION_TYPE_REDUCE",
    "--xla_cpu_use_fusion_emitters": "false",
}
"""XLA flags that make the engine faster on jaxlib 0.10 (CHANGELOG.md has the measurements):
the CPU backend hands reductions to YNNPACK, slower on the engine's small reductions (over 3
slots and a few output classes per example) than XLA's own loops, and it emits its loop fusions
through MLIR, which compiles the sweep's program more slowly than XLA's elemental emitter, for
the same speed of stepping and bit-identical results."""
SPEED_FLAG_JAXLIB = ("0.10.",)
"""jaxlib releases on which those flags are known to exist (XLA aborts on an unknown flag)."""


def xla_flags_for_speed() -> list[str]:
    """`SPEED_FLAGS` as XLA_FLAGS words on the jaxlib releases that know them, else empty."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        jaxlib = version("jaxlib")
    except PackageNotFoundError:
        return []
    return [f"{k}={v}" for k, v in SPEED_FLAGS.items()] if jaxlib.startswith(SPEED_FLAG_JAXLIB) else []


DETERMINISTIC_FLAG = "--xla_gpu_deterministic_ops=true"
"""On a GPU, XLA may add with atomics in any order, so two runs of one seed can differ in the
last bits and then diverge (measured on an H100: two fresh `cpi bridge` pretrainings of one
seed wrote different metrics). This flag makes GPU reruns byte-identical; a CPU ignores it."""


def set_jax_option(name: str, value) -> None:
    """Set JAX's option `name`: through its environment variable (JAX reads it at import) when
    JAX is not imported yet, so that commands that never compute (`cpi --version`, `--help`,
    `cpi config`) do not pay for importing it; else through `jax.config`."""
    if "jax" in sys.modules:
        sys.modules["jax"].config.update(name, value)
    else:
        os.environ[name.upper()] = str(value)


def configure_numerics() -> None:
    """Matrix products at the full precision of their dtype: on a GPU, JAX would otherwise run
    float32 products in TF32 (a 10-bit mantissa): on an H100 a float32 sweep then strayed 1.3e-3
    from the same float32 run, and 4 bridge tests failed against their NumPy references. A CPU
    computes the same either way."""
    set_jax_option("jax_default_matmul_precision", "highest")


def configure_arithmetic() -> None:
    """One BLAS thread, `SPEED_FLAGS`, deterministic GPU reductions and
    full-precision products, unless XLA_FLAGS already chooses them; the part of
    `configure_process` that the test configuration shares. Call before JAX starts."""
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    flags = os.environ.get("XLA_FLAGS", "")
    chosen = [f for f in xla_flags_for_speed() if f.split("=")[0] not in flags]
    flags = " ".join([flags, *chosen]).strip()
    if DETERMINISTIC_FLAG.split("=")[0] not in flags:
        flags = f"{flags} {DETERMINISTIC_FLAG}".strip()
    os.environ["XLA_FLAGS"] = flags
    configure_numerics()


def configure_process() -> None:
    """`configure_arithmetic`, one host device per core and the compilation cache; call
    before anything imports NumPy or JAX."""
    flags = os.environ.get("XLA_FLAGS", "")
    if DEVICE_COUNT_FLAG not in flags:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        os.environ["XLA_FLAGS"] = f"{flags} {DEVICE_COUNT_FLAG}={cores}".strip()
    configure_arithmetic()
    cache = compilation_cache_dir()
    if cache is not None:
        set_jax_option("jax_compilation_cache_dir", str(cache))
        set_jax_option("jax_persistent_cache_min_compile_time_secs", 0.0)
        set_jax_option("jax_persistent_cache_min_entry_size_bytes", 0)


def version() -> str:
    """The installed version of the cpi-sim package (from its metadata)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("cpi-sim")
    except PackageNotFoundError:
        return "unknown (not installed; `pip install -e .` records it)"


EPILOG = """\
config keys: every command that trains or predicts takes --config FILE.toml and repeatable
  --set section.key=value; `cpi config` lists every key with its default, allowed values and
  meaning.
where results go: cpi run -> runs/<config hash>/ (config.toml, metrics.npz, summary.json);
  cpi sweep -> sweeps/<hash>/ (sweep.npz, summary.csv, summary.json, groups/); cpi figures ->
  results/figures/ (PNG, PDF, data/); cpi plot -> DIR/plot.png; cpi explore -> DIR/explore.html;
  cpi export -> standard output.
  --out chooses another place; an --out holding a different run or sweep is refused unless --force.
exit status: 0 done, 2 bad input (nothing written), 1 failure, 130 interrupted.
`cpi COMMAND --help` describes each command."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every `cpi` command."""
    from .commands import COMMANDS

    parser = argparse.ArgumentParser(
        prog="cpi",
        description="Simulate context-parametric inversion (Goyal et al., ICLR 2025) in the paper's "
                    "one-layer attention model: train it, predict it exactly, sweep it, draw it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cpi {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def execute(argv: list[str] | None = None) -> int:
    """Parse and run one `cpi` command line in this process as it is (no process setup);
    returns the exit status."""
    from cpi.core.errors import ConfigError, SimulationError

    from .arguments import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_INTERRUPTED

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"cpi {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SimulationError as err:
        print(f"cpi {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"\ncpi {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """The `cpi` entry point: configure the process, then `execute`."""
    configure_process()
    return execute(argv)


def entry() -> None:
    """The `cpi` console script: `main`, then the end of the process without the interpreter's
    teardown of its modules and of JAX's runtime, which has nothing left to save (what that
    buys is measured in CHANGELOG.md). The ending is the
    first exit function registered, so it runs last, after every other (JAX's, logging's):
    it flushes the standard streams and ends the process with the command's status. An
    exception (including argparse's exit for --help) ends the process the ordinary way."""
    import atexit

    from .arguments import end_process

    finished: list[int] = []
    atexit.register(lambda: finished and end_process(finished[0]))
    status = main() or 0
    finished.append(status)
    sys.exit(status)


if __name__ == "__main__":
    entry()
