"""Studies: a grid of encoders x decoders x conditions x latent sizes x seeds, each cell
trained and measured the same way, with a comparison table, plots and an index of reports
(``lmvae grid STUDY.toml --out study/``)."""

from lmvae.grid.runner import collect_results, run_grid
from lmvae.grid.study import Cell, Study, load_study
from lmvae.grid.summary import write_summary

__all__ = ["Cell", "Study", "collect_results", "load_study", "run_grid", "write_summary"]
