"""The torchrun entry point Dagster launches: `training.pretrain`'s main, rank 0 reporting through Dagster Pipes.

    torchrun --nproc-per-node N -m pipelines.pretrain_job RUN.json

The training library knows nothing of Dagster; this module hands it the Pipes context (from the
dependency-free `dagster-pipes` package) when Dagster launched the process. Run by hand, outside
Dagster, it trains exactly as `python -m training.pretrain RUN.json` does.
"""
from __future__ import annotations

from training.pretrain import main as pretrain_main


def open_pipes():
    """The Dagster Pipes context when Dagster launched this process (and dagster-pipes is installed), else None."""
    try:
        from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes
    except ImportError:
        return None
    if not PipesEnvVarParamsLoader().is_dagster_pipes_process():
        return None
    return open_dagster_pipes()


def main(argv: list[str] | None = None) -> None:
    pretrain_main(argv, open_reporter=open_pipes)


if __name__ == "__main__":
    main()
