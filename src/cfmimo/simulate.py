"""One-setup SE report behind ``cfmimo simulate``: per-UE UL/DL SE for several combiners.

UL: every UE at full power (scenario.ul_power_mw); combiners designed at that power.
DL: equal powers. With per-realization normalization (the papers' sum constraint) each UE gets
sum_l P_l / K. With the book's average normalization (per-AP limits) each UE gets the same
rho, the largest for which no AP exceeds P_l: rho = min_l P_l / sum_k E{||w_kl||^2}.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from cfmimo.config import Scenario
from cfmimo.sim.network import Network, network_statistics, sample_channel_state, sample_networks
from cfmimo.sim.uatf import downlink_sinr, equal_downlink_power, spectral_efficiency, uplink_sinr

DEFAULT_COMBINERS = ("mmse", "pmmse", "mr")


@dataclass(frozen=True)
class SetupReport:
    """Per-UE SEs (bit/s/Hz) of one setup; ``ul``/``dl`` map combiner name -> list of K values."""

    scenario: Scenario
    seed: int
    network: Network
    ul: dict[str, list[float]]
    dl: dict[str, list[float]]
    seconds: float

    def to_dict(self) -> dict:
        n = self.network
        return {
            "scenario": self.scenario.model_dump(mode="json"),
            "seed": self.seed,
            "ap_positions_m": n.ap_positions[0].tolist(),
            "ue_positions_m": n.ue_positions[0].tolist(),
            "pilot": n.pilot[0].tolist(),
            "serving_aps": [
                n.serving[0, :, k].nonzero().squeeze(1).tolist() for k in range(n.serving.shape[2])
            ],
            "se_ul": self.ul,
            "se_dl": self.dl,
            "seconds": self.seconds,
        }


def simulate_setup(
    scenario: Scenario, seed: int, combiner_names: tuple[str, ...] = DEFAULT_COMBINERS
) -> SetupReport:
    """Sample one setup (sample index 0 of ``seed``) and report per-UE UL and DL SE per combiner."""
    start = time.perf_counter()
    net = sample_networks(scenario, 1, seed=seed, dtype=torch.float64)
    state = sample_channel_state(net)
    p = torch.full(net.pilot.shape, scenario.ul_power_mw, dtype=torch.float64)
    ul_se, dl_se = {}, {}
    for name in combiner_names:
        ul, dl = network_statistics(net, state, name, design_power=p)
        ul_se[name] = spectral_efficiency(uplink_sinr(ul, p), scenario.prelog_ul)[0].tolist()
        rho = equal_downlink_power(dl, scenario.dl_normalization, scenario.dl_power_per_ap_mw)
        dl_se[name] = spectral_efficiency(downlink_sinr(dl, rho), scenario.prelog_dl)[0].tolist()
    return SetupReport(scenario, seed, net, ul_se, dl_se, time.perf_counter() - start)
