"""Figures (matplotlib is the optional ``plot`` extra; imported lazily)."""

from __future__ import annotations

import os
from pathlib import Path

from cfmimo.sim.network import Network


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise RuntimeError("plotting needs matplotlib: pip install 'cfmimo[plot]'") from err
    return plt


def plot_layout(net: Network, path: str | os.PathLike, index: int = 0) -> Path:
    """Save the layout of setup ``index``: APs, UEs and serving links (atomic write)."""
    plt = _pyplot()
    ap = net.ap_positions[index].cpu().double()
    ue = net.ue_positions[index].cpu().double()
    d = net.serving[index].cpu()
    fig, ax = plt.subplots(figsize=(6, 6))
    for l, k in d.nonzero().tolist():
        ax.plot([ap[l, 0], ue[k, 0]], [ap[l, 1], ue[k, 1]], color="0.75", lw=0.7, zorder=1)
    ax.scatter(ap[:, 0], ap[:, 1], marker="^", s=70, c="tab:red", label=f"APs (L={ap.shape[0]})", zorder=3)
    ax.scatter(ue[:, 0], ue[:, 1], marker="o", s=22, c="tab:blue", label=f"UEs (K={ue.shape[0]})", zorder=3)
    side = net.scenario.area_side_m
    ax.set(
        xlim=(0, side),
        ylim=(0, side),
        xlabel="x [m]",
        ylabel="y [m]",
        aspect="equal",
        title=f"{net.scenario.name}: serving links ({net.scenario.clustering.kind})",
    )
    ax.legend(loc="upper right", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path
