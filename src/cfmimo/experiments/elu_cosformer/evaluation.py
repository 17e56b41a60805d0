"""Evaluation of the ELU-CosFormer reproduction: every scheme on the test setups, curves, mask diagnostics."""

from __future__ import annotations

import time
from typing import Any

import torch

from cfmimo.config import Clustering
from cfmimo.experiments.elu_cosformer.config import (
    GAIN_MODEL,
    MAIN,
    OWN_CLUSTERS_OPTIMUM,
    PAPER,
    REFERENCE,
    SCHEMES,
    EluCosFormerConfig,
    _activation_run,
    _scenario,
    _test_seed,
)
from cfmimo.policies.classical.clustering import BookPilotsOverCap, StrongestPerAPMaxMin
from cfmimo.policies.classical.power import MaxMinClosedForm
from cfmimo.policies.neural import ClusterPowerPolicy, model_features
from cfmimo.problems.base import Allocation
from cfmimo.problems.clustering_power import ClusteringPower
from cfmimo.rng import stream_seed


def _evaluation_plan(config: EluCosFormerConfig) -> dict[str, tuple[str, float]]:
    """Scheme name -> (training run, input noise σ) of every model-based curve."""
    plan = {"predicted_uc_cf": (MAIN, config.eval_sigma_m)}
    plan.update({f"variant={n}": (n, config.eval_sigma_m) for n in config.models})
    plan.update({f"activation={a}": (_activation_run(a), config.eval_sigma_m) for a in config.activations})
    plan.update({f"sigma={s:g}": (MAIN, s) for s in config.noise_sigmas_m})
    return plan


def _summary(m: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per-sample metrics of a batch -> sums over samples (averaged later)."""
    se_ul, se_dl = m["se_ul"].double(), m["se_dl"].double()
    return {
        "mean_se_ul": se_ul.mean(-1).sum().item(),
        "mean_se_dl": se_dl.mean(-1).sum().item(),
        "min_se_ul": se_ul.amin(-1).sum().item(),
        "min_se_dl": se_dl.amin(-1).sum().item(),
        "connections": m["connections"].double().sum().item(),
        "aps_per_ue": m["aps_per_ue"].double().sum().item(),
        "unserved_ues": m["unserved_ues"].double().sum().item(),
        "max_ues_per_ap": m["ues_per_ap_max"].double().sum().item(),
        "nonfinite": float((~torch.isfinite(se_ul)).sum().item() + (~torch.isfinite(se_dl)).sum().item()),
        # share of the setups scored with the book's estimator (over-cap references, per_ap_orthogonal)
        "book_pilots": float(m["book_pilots"].sum().item()) if "book_pilots" in m else 0.0,
    }


def mask_diagnostics(config: EluCosFormerConfig, tm: Any, samples: int = 32) -> list[dict[str, float]]:
    """Does the mask head rank UEs by their gains? Per test K, on noise-free inputs: the Spearman
    correlation, at each AP, between the model's scores and the UEs' gains (averaged over APs and
    setups; 1 = perfect ranking, 0 = unrelated), and the share of the model's top-tau_p UEs per AP
    that are among the AP's tau_p strongest (chance level: tau_p / K for K > tau_p)."""
    from cfmimo.sim.network import sample_networks

    rows = []
    for K in config.test_K:
        net = sample_networks(_scenario(config, K), samples, seed=_test_seed(config, K))
        with torch.no_grad():
            out = tm.model.eval()(*model_features(net.ue_positions, net.ap_positions, tm.frame))
        # the logits: same order as the scores, without float32 saturation ties
        scores = (out.mask if out.mask_logits is None else out.mask_logits).double()  # [B, L, K]
        gain = net.gain_db.double()
        rank_s = scores.argsort(-1).argsort(-1).double()
        rank_g = gain.argsort(-1).argsort(-1).double()
        rank_s, rank_g = rank_s - rank_s.mean(-1, keepdim=True), rank_g - rank_g.mean(-1, keepdim=True)
        rho = (rank_s * rank_g).sum(-1) / (rank_s.norm(dim=-1) * rank_g.norm(dim=-1)).clamp_min(1e-12)
        tau_p = net.scenario.tau_p
        top = min(tau_p, K)
        model_top = torch.zeros_like(scores, dtype=torch.bool).scatter_(
            -1, scores.topk(top, -1).indices, True
        )
        gain_top = torch.zeros_like(gain, dtype=torch.bool).scatter_(-1, gain.topk(top, -1).indices, True)
        agree = (model_top & gain_top).sum(-1).double() / top
        rows.append({"K": K, "spearman": rho.mean().item(), "top_tau_p_agreement": agree.mean().item()})
    return rows


def optimal_for_clusters(predicted: Allocation) -> Allocation:
    """Optimal UC-CF: the closed-form max-min powers for the clusters of a Predicted UC-CF
    allocation, reusing its statistics (equal to ``ClusterPowerPolicy(..., optimal_powers=True)``,
    which would recompute them)."""
    pinst = predicted.info["power_instance"]
    powers = MaxMinClosedForm(rtol=1e-12)(pinst)
    return Allocation(
        serving=predicted.serving,
        p_ul=powers.p_ul,
        p_dl=powers.p_dl,
        info={**powers.info, "power_instance": pinst},
    )


def eval_device(config: EluCosFormerConfig) -> torch.device:
    """The evaluation device: ``config.eval_device``, "auto" = CUDA when present; ValueError for
    "cuda" on a machine without one."""
    if config.eval_device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if config.eval_device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "eval_device='cuda' but no CUDA GPU is available on this machine; use 'cpu' or 'auto'"
        )
    return torch.device(config.eval_device)


def _evaluate(
    config: EluCosFormerConfig, trained: dict[str, Any], plan: dict[str, tuple[str, float]], log
) -> tuple[list[dict[str, Any]], dict[str, list[torch.Tensor]]]:
    """Rows (scheme, K, means over the test samples) and the powers of Fig. 9 (on the CPU).

    Runs on ``eval_device(config)``: each batch of ``eval_batch`` test setups is sampled there
    (the same setups on any device: the random streams are CPU generators), and the models, the
    statistics, the clusterings and the closed forms all run there in batched ops; the models
    return to the CPU afterwards. Per-sample results do not depend on ``eval_batch`` (per-sample
    streams), so a GPU run may use large batches."""
    device = eval_device(config)
    used = {key for key, _ in plan.values()}
    for key in used:
        trained[key].model.to(device)
    try:
        return _evaluate_on(config, trained, plan, log, device)
    finally:
        for key in used:
            trained[key].model.to("cpu")


def _evaluate_on(
    config: EluCosFormerConfig,
    trained: dict[str, Any],
    plan: dict[str, tuple[str, float]],
    log,
    device: torch.device,
) -> tuple[list[dict[str, Any]], dict[str, list[torch.Tensor]]]:
    prob = ClusteringPower()
    # under per_ap_orthogonal, the setups where CF / DCC break the tau_p cap get the book's
    # estimator (BookPilotsOverCap); under the book's pilots these are ClusteredMaxMin
    baselines = {
        "optimal_cf": BookPilotsOverCap(Clustering(kind="all")),
        "dcc": BookPilotsOverCap(Clustering(kind="q_strongest", q=config.dcc_q)),
        REFERENCE: StrongestPerAPMaxMin(),
    }
    noise_seed = stream_seed(config.seed, f"{PAPER}/eval-noise")
    policies = {
        (key, sigma): ClusterPowerPolicy(
            trained[key].model,
            trained[key].scaler,
            trained[key].frame,
            threshold=config.threshold,
            sigma_ue_m=sigma,
            sigma_ap_m=sigma,
            seed=noise_seed,
        )
        for key, sigma in set(plan.values())
    }
    names = [*SCHEMES, REFERENCE, *(s for s in plan if s != "predicted_uc_cf")]
    if (GAIN_MODEL, config.eval_sigma_m) in policies:
        names.append(OWN_CLUSTERS_OPTIMUM[GAIN_MODEL])
    powers: dict[str, list[torch.Tensor]] = {"pred_ul": [], "pred_dl": [], "opt_ul": [], "opt_dl": []}
    rows = []
    for K in config.test_K:
        t0 = time.perf_counter()
        sums: dict[str, dict[str, float]] = {}
        scenario, seed = _scenario(config, K), _test_seed(config, K)
        for first in range(0, config.test_samples, config.eval_batch):
            n = min(config.eval_batch, config.test_samples - first)
            inst = prob.sample(scenario, n, seed=seed, first_index=first, device=device)
            got: dict[str, dict[str, torch.Tensor]] = {}
            for name, policy in baselines.items():
                alloc = policy(inst)
                got[name] = prob.metrics(inst, alloc)
                if "book_pilots" in alloc.info:  # [B] setups scored with the book's estimator
                    got[name]["book_pilots"] = alloc.info["book_pilots"]
            by_policy: dict[tuple[str, float], dict[str, torch.Tensor]] = {}
            for pk, policy in policies.items():
                alloc = policy(inst)
                by_policy[pk] = prob.metrics(inst, alloc)
                if pk == (GAIN_MODEL, config.eval_sigma_m):  # the study's power-only reference
                    got[OWN_CLUSTERS_OPTIMUM[GAIN_MODEL]] = prob.metrics(inst, optimal_for_clusters(alloc))
                if pk == (MAIN, config.eval_sigma_m):
                    opt = optimal_for_clusters(alloc)
                    got["optimal_uc_cf"] = prob.metrics(inst, opt)
                    powers["pred_ul"].append(alloc.p_ul.flatten().double().cpu())
                    powers["pred_dl"].append(alloc.p_dl.flatten().double().cpu())
                    powers["opt_ul"].append(opt.p_ul.flatten().double().cpu())
                    powers["opt_dl"].append(opt.p_dl.flatten().double().cpu())
            for scheme, pk in plan.items():
                got[scheme] = by_policy[pk]
            for scheme, m in got.items():
                acc = sums.setdefault(scheme, {})
                for k, v in _summary(m).items():
                    acc[k] = acc.get(k, 0.0) + v
        for scheme in names:
            acc = sums[scheme]
            rows.append(
                {
                    "scheme": scheme,
                    "K": K,
                    "samples": config.test_samples,
                    **{k: v if k == "nonfinite" else v / config.test_samples for k, v in acc.items()},
                }
            )
        log(f"  K = {K}: {time.perf_counter() - t0:.1f} s on {device}")
    return rows, powers


def _curves(rows: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """scheme -> {"K": [...], metric: [...]} (K ascending)."""
    out: dict[str, dict[str, list[float]]] = {}
    for r in sorted(rows, key=lambda r: (r["scheme"], r["K"])):
        c = out.setdefault(r["scheme"], {})
        for k, v in r.items():
            if k not in ("scheme", "samples"):
                c.setdefault(k, []).append(v)
    return out


def _power_gap(pred_ul, pred_dl, opt_ul, opt_dl) -> dict[str, float]:
    """Mean absolute and relative gaps between predicted and optimal powers (for the model's clusters)."""
    return {
        "mean_abs_gap_ul_mw": (pred_ul - opt_ul).abs().mean().item(),
        "mean_abs_gap_dl_mw": (pred_dl - opt_dl).abs().mean().item(),
        "mean_p_ul_opt_mw": opt_ul.mean().item(),
        "mean_p_dl_opt_mw": opt_dl.mean().item(),
    }
