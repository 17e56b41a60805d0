"""Dynamic supervision of a joint clustering + power model (elu-cosformer Sect. V-B, Algorithm 1).

Every training step, for a batch of noisy, normalized positions:

1. the model gives mask scores M [B, L, K] (eq. (15)) and normalized powers p~ [B, K, 2];
2. the clusters D = cluster_mask(M) (top-tau_p UEs per AP, threshold ξ, eq. (16); every UE kept
   served, ``cfmimo.models.cluster_models.cluster_mask``);
3. the sample's channels are regenerated from its stored (scenario, seed, index): large-scale
   quantities once per run (``NetworkCache``), small-scale realizations and MMSE estimates per
   step, and the UatF statistics of the MMSE combiners/precoders for the clusters D;
4. the labels p* are the exact max-min UL/DL powers for D (the closed form,
   ``MaxMinClosedForm``), normalized with the run's global ``PowerScaler``;
5. loss (32): MSE(p~, p*~) - λ (min_k SE_k^UL + min_k SE_k^DL), with the SEs of the *predicted*
   powers (rescaled by eqs. (19)-(21)) under the exact statistics of D.

The SE term is differentiable in the predicted powers. The hard mask is not, and the paper does
not say how its head is trained (the labels p* are constants of the loss, so without a choice here
the mask head gets no gradient at all). Two estimators are implemented (``DynamicConfig``):

``mask_gradient="gain_rank"`` (default): the loss is (32) + w L_mask (w = ``mask_weight``), with
labels recomputed every step from the same large-scale state as p*:

* eq. (16) makes two decisions per AP: which UEs are its top tau_p (a ranking) and which of those
  pass ξ (a level). The book's user-centric rule is that an AP serves the UEs it hears best
  (Sect. 4.4: per pilot, the strongest UE), so the ranking target is the AP's order of its UEs by
  large-scale gain β_lk, and the level target is "serve your tau_p strongest" (at K <= tau_p:
  every UE, i.e. Optimal CF, which is the max-min optimum when the limit does not bind);
* L_mask = BCE(z_lk, 1[k in top-tau_p(β_l)]) + MSE(z_lk - mean_k z_lk, (β_lk - mean_k β_lk) / 10 dB)
  per AP (``mask_ranking_loss``), β in dB: the BCE sets the level, the centered regression the
  order, and is what teaches the order when K <= tau_p, where every BCE target is 1. The paper
  trains on K <= tau_p only, so without it nothing in training says which UEs to keep when the
  limit binds at test. (A pairwise RankNet term in place of the regression learned the order far
  more slowly: Spearman 0.27 against 0.71 after 600 steps, ``docs/learning.md``.)

``mask_gradient="mr_ste"``: the gradient of the SE term itself, through a physical proxy:

* the UatF SE of centralized MR with a relaxed mask (``cfmimo.sim.relaxed``), in which a link's
  weight d_lk enters smoothly; ∂SE/∂d_lk is the marginal value of link (l, k);
* straight-through at the hard clusters on the logits z (Bengio et al. 2013):
  d = D + σ'(0) (z - z.detach()), so the value is exact and the gradient does not vanish when the
  sigmoid saturates;
* the gradient is centered over each AP's UEs (``center_mask_gradient``): eq. (16) keeps the top
  tau_p UEs *per AP*, so only how an AP ranks its UEs matters; uncentered, the common part drove
  the mask head's per-AP bias and switched off the same 4 of 16 AP *indices* for every UE (APs
  are exchangeable, so that is pure loss);
* the proxy's min over UEs is smoothed (``softmin_temperature`` 0.1 b/s/Hz, log-sum-exp) so that
  more than one UE per sample informs the gradient.

The proxy is added and subtracted, so the loss *value* is exactly (32). What each achieves is
measured, not assumed (docs/learning.md): with "mr_ste" and the paper's training sizes K in
{5, 10} <= tau_p the scores do not rank UEs by their gains (Spearman ~0: at K <= tau_p max-min
asks every AP to favour its *weakest* UEs, the opposite of what the limit needs at larger K);
"gain_rank" learns the ranking.

Validation logs the same loss per (K, L) and its average (``val_loss``, the checkpoint monitor),
plus the mean per-sample min SE of the predicted allocation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from cfmimo.data.spec import DatasetSpec
from cfmimo.data.transforms import PowerScaler, PrepareBatch, rescale_predictions
from cfmimo.learn.config import DynamicConfig, TrainConfig
from cfmimo.learn.supervised import SupervisedPowerModule, gain_input, masked_softmin, masked_squared_error
from cfmimo.models import model_uses_gains
from cfmimo.models.cluster_models import output_clusters
from cfmimo.policies.classical.power import MaxMinClosedForm
from cfmimo.problems.clustering_power import ClusteringInstance
from cfmimo.problems.maxmin_power import PowerInstance
from cfmimo.sim.estimation import hermitian_sqrt
from cfmimo.sim.network import (
    SETUP_TENSORS,
    ChannelState,
    Network,
    network_to,
    networks_from_positions,
    sample_channel_state,
    take_setups,
)
from cfmimo.sim.relaxed import mr_traces, relaxed_mr_se
from cfmimo.sim.uatf import downlink_sinr, spectral_efficiency, uplink_sinr

__all__ = [
    "DynamicSupervisionModule",
    "NetworkCache",
    "cluster_labels",
    "dynamic_features",
    "mask_ranking_loss",
]

#: Gain difference (dB) per logit of the mask-ranking target (``mask_ranking_loss``).
GAIN_LOGIT_SCALE_DB = 10.0

#: What the dynamic-supervision loaders carry per sample.
DYNAMIC_KEYS = ("sample_index", "ue_positions", "ap_positions", "ue_features", "ap_features")


class NetworkCache:
    """Large-scale state of every sample of a dataset, rebuilt once from its stored true positions
    and (scenario, seed, index): the same gains, correlation matrices and pilots as at generation.

    Shapes per group (K, L), n samples: gain_db [n, L, K], correlation and its Hermitian square
    root [n, L, K, N, N], pilot/master [n, K], distance [n, L, K].
    """

    def __init__(self, spec: DatasetSpec, groups: Mapping[tuple[int, int], Mapping[str, torch.Tensor]]):
        self.spec = spec
        self._groups: dict[tuple[int, int], tuple[Network, torch.Tensor, torch.Tensor]] = {}
        for (K, L), g in groups.items():
            scenario, seed = spec.group_scenario(K, L), spec.group_seed(K, L)
            index = g["sample_index"].long()
            parts = [
                networks_from_positions(
                    scenario,
                    g["ap_positions"][start : start + 256].float(),
                    g["ue_positions"][start : start + 256].float(),
                    seed=seed,
                    indices=[int(i) for i in index[start : start + 256]],
                )
                for start in range(0, len(index), 256)
            ]
            cat = {name: torch.cat([getattr(n, name) for n in parts]) for name in SETUP_TENSORS}
            net = Network(scenario, seed, tuple(int(i) for i in index), **cat)
            row = torch.full((int(index.max()) + 1,), -1, dtype=torch.long)  # sample index -> row
            row[index] = torch.arange(len(index))
            self._groups[(K, L)] = (net, hermitian_sqrt(net.correlation), row)

    def networks(
        self, K: int, L: int, sample_index: torch.Tensor, device: torch.device | str = "cpu"
    ) -> tuple[Network, torch.Tensor]:
        """The cached networks of the given samples and their R^(1/2).

        Shapes: sample_index [B] -> (Network of B setups, r_sqrt [B, L, K, N, N])."""
        if (K, L) not in self._groups:
            raise ValueError(f"no cached group (K, L) = ({K}, {L}); cached: {sorted(self._groups)}")
        net, r_sqrt, row = self._groups[(K, L)]
        idx = sample_index.cpu().long()
        if int(idx.max()) >= len(row) or bool((row[idx] < 0).any()):
            raise ValueError(f"sample indices {idx.tolist()} are not all in group ({K}, {L})")
        rows = row[idx]
        return network_to(take_setups(net, rows), device), r_sqrt[rows].to(device)


def channel_state(net: Network, r_sqrt: torch.Tensor, realizations: int | None = None) -> ChannelState:
    """Realizations and estimates of cached networks (the streams of ``sample_channel_state``)."""
    return sample_channel_state(net, realizations, r_sqrt)


def cluster_labels(
    net: Network, state: ChannelState, serving: torch.Tensor, config: DynamicConfig
) -> tuple[PowerInstance, torch.Tensor, torch.Tensor]:
    """Statistics of the clusters ``serving`` [B, L, K] (``ClusteringInstance.for_clusters``,
    pilots per ``config.pilots``) and their exact max-min powers (p_ul*, p_dl* [B, K], mW)."""
    clustering = ClusteringInstance(net, state, net.scenario.tau_p, config.combiner, pilots=config.pilots)
    inst = clustering.for_clusters(serving)
    opt = MaxMinClosedForm()(inst)
    return inst, opt.p_ul, opt.p_dl


def dynamic_features(
    groups: Mapping[tuple[int, int], Mapping[str, torch.Tensor]], prepare: PrepareBatch
) -> dict:
    """Noisy, normalized positions of every sample (noise fixed per sample), plus what the cache
    needs to find the sample. Shapes: as ``cfmimo.learn.data.prepare_features`` without labels."""
    out = {}
    for (K, L), g in groups.items():
        n = int(g["sample_index"].shape[0])
        batch = {k: g[k] for k in ("sample_index", "ue_positions", "ap_positions")}
        batch["K"] = torch.full((n,), K, dtype=torch.int64)
        batch["L"] = torch.full((n,), L, dtype=torch.int64)
        prepared = prepare(batch)
        out[(K, L)] = {k: prepared[k] for k in DYNAMIC_KEYS}
        if "gain_db" in g:  # gain-aware models (cfmimo.models.gain_aware): stored gains, unchanged
            out[(K, L)]["gain_db"] = g["gain_db"]
    return out


def fit_dynamic_scaler(
    cache: NetworkCache, groups: Mapping[tuple[int, int], Mapping[str, torch.Tensor]], config: DynamicConfig
) -> PowerScaler:
    """Global min-max power normalization ("UL and DL powers are normalized globally") from the
    optimal powers of the first ``scaler_samples`` samples per size with all APs serving (the
    clusters of an untrained mask head, whose scores all start near 0.5 > ξ)."""
    p_ul, p_dl = [], []
    with torch.no_grad():
        for (K, L), g in groups.items():
            index = g["sample_index"][: config.scaler_samples]
            for start in range(0, len(index), 64):
                net, r_sqrt = cache.networks(K, L, index[start : start + 64])
                state = channel_state(net, r_sqrt, config.realizations)
                _, ul, dl = cluster_labels(net, state, torch.ones_like(net.serving), config)
                p_ul.append(ul.flatten())
                p_dl.append(dl.flatten())
    return PowerScaler().fit(torch.cat(p_ul), torch.cat(p_dl))


def mask_ranking_loss(
    logits: torch.Tensor, gain_db: torch.Tensor, tau_p: int, scale_db: float = GAIN_LOGIT_SCALE_DB
) -> torch.Tensor:
    """L_mask of ``mask_gradient="gain_rank"`` (module docstring), per AP l:
    BCE(z_lk, 1[k among the tau_p strongest]) + MSE(z_lk - mean_k z_lk, (β_lk - mean_k β_lk) / s),
    β in dB, s = ``scale_db`` (one logit per 10 dB). The centered regression carries the order (and
    is blind to the level the BCE sets).

    Shapes: logits [B, L, K], gain_db [B, L, K] -> scalar.
    """
    z, g = logits.float(), gain_db.float()
    top = min(tau_p, z.shape[-1])
    target = torch.zeros_like(z).scatter_(-1, g.topk(top, dim=-1).indices, 1.0)
    bce = F.binary_cross_entropy_with_logits(z, target)
    zc = z - z.mean(-1, keepdim=True)
    gc = (g - g.mean(-1, keepdim=True)) / scale_db
    return bce + F.mse_loss(zc, gc)


class _CenterPerAP(torch.autograd.Function):
    """Identity forward; backward subtracts, at every AP, the mean gradient over the UEs. The
    per-AP top-tau_p selection (eq. (16)) depends only on how an AP ranks its UEs, so the common
    part of a gradient across an AP's UEs carries no clustering information, while it alone can
    move the mask head's per-AP bias (which, uncentered, learned to switch off fixed AP *indices*
    for every UE, although APs are exchangeable). Shapes: [B, L, K]."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad - grad.mean(dim=-1, keepdim=True)


class DynamicSupervisionModule(SupervisedPowerModule):
    """Loss (32) with labels computed on the fly for the model's own clusters (module docstring).

    Same hyperparameters, model building and optimizer as ``SupervisedPowerModule``; batches hold
    "ue_features" [B, K, 2], "ap_features" [B, L, 2], "sample_index" [B], "K", "L"; one (K, L) per
    batch. The cache is attached after construction (``attach``): it is rebuilt from the dataset,
    never stored in a checkpoint.
    """

    def __init__(
        self,
        config: dict[str, Any],
        scaler: dict[str, float],
        val_sizes: list[list[int]],
        seed: int,
        cfmimo_version: str,
        position_frame: dict[str, float] | None = None,
    ) -> None:
        super().__init__(config, scaler, val_sizes, seed, cfmimo_version, position_frame)
        if self.config.dynamic is None:
            raise ValueError("DynamicSupervisionModule needs config.dynamic")
        self.dyn = self.config.dynamic
        self.scaler = PowerScaler.from_dict(scaler)
        self.cache: NetworkCache | None = None

    def attach(self, cache: NetworkCache) -> DynamicSupervisionModule:
        self.cache = cache
        return self

    def forward(self, batch: Mapping[str, torch.Tensor]) -> Any:
        return self.model(batch["ue_features"], batch["ap_features"], **gain_input(batch))

    def step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss (32) and its parts for one same-size batch (module docstring)."""
        if self.cache is None:
            raise RuntimeError("attach a NetworkCache before training (DynamicSupervisionModule.attach)")
        out = self(batch)
        K, L = batch["ue_features"].shape[1], batch["ap_features"].shape[1]
        with torch.no_grad():
            net, r_sqrt = self.cache.networks(K, L, batch["sample_index"], device=self.device)
            tau_p = self.dyn.tau_p or net.scenario.tau_p
            serving = output_clusters(out, tau_p, self.dyn.threshold)  # [B, L, K] bool
            state = channel_state(net, r_sqrt, self.dyn.realizations)
            inst, p_ul_opt, p_dl_opt = cluster_labels(net, state, serving, self.dyn)
            t_ul, t_dl = self.scaler.normalize(p_ul_opt.float(), p_dl_opt.float())
        ue_mask = torch.ones(out.power.shape[:2], dtype=torch.bool, device=self.device)
        sse, count = masked_squared_error(out.power, torch.stack([t_ul, t_dl], dim=-1), ue_mask)
        mse = sse / count
        sc = net.scenario
        budget = sc.dl_power_per_ap_mw * L
        p_ul, p_dl = rescale_predictions(out.power[..., 0], out.power[..., 1], self.scaler, budget)
        se_ul = spectral_efficiency(uplink_sinr(inst.uplink, p_ul), sc.prelog_ul)  # [B, K]
        se_dl = spectral_efficiency(downlink_sinr(inst.downlink, p_dl), sc.prelog_dl)
        fairness = se_ul.amin(-1) + se_dl.amin(-1)  # [B]
        if self.dyn.mask_gradient == "mr_ste" and self.training:
            b, t = mr_traces(state.estimate_cov, net.correlation)
            # identity straight-through on the logits (Bengio et al. 2013): value D, and
            # ∂/∂z_lk = σ'(0) ∂proxy/∂d_lk whatever z, so saturated scores keep learning
            z = out.mask_logits.to(b.dtype)
            if self.dyn.center_mask_gradient:
                z = _CenterPerAP.apply(z)
            d = serving.to(b.dtype) + 0.25 * (z - z.detach())
            mr_ul, mr_dl = relaxed_mr_se(d, b, t, p_ul.detach(), p_dl.detach(), sc.prelog_ul, sc.prelog_dl)
            tau = self.dyn.softmin_temperature
            proxy = masked_softmin(mr_ul, None, tau) + masked_softmin(mr_dl, None, tau)  # [B]
            fairness = fairness + (proxy - proxy.detach())
        loss = mse - self.dyn.lam * fairness.mean().to(mse.dtype)
        mask_loss = torch.zeros((), device=self.device)
        if self.dyn.mask_gradient == "gain_rank":
            mask_loss = mask_ranking_loss(out.mask_logits, net.gain_db, tau_p)
            loss = loss + self.dyn.mask_weight * mask_loss.to(loss.dtype)
        return {
            "loss": loss,
            "mask_loss": mask_loss.detach(),
            "mse": mse.detach(),
            "min_se_ul": se_ul.amin(-1).mean().detach(),
            "min_se_dl": se_dl.amin(-1).mean().detach(),
            "aps_per_ue": serving.sum(1).double().mean().detach(),
        }

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        parts = self.step(batch)
        n = len(batch["K"])
        self.log("train_loss_step", parts["loss"], prog_bar=True)
        self.log("train_loss", parts["loss"], on_step=False, on_epoch=True, sync_dist=True, batch_size=n)
        for name in ("mse", "mask_loss", "min_se_ul", "min_se_dl", "aps_per_ue"):
            self.log(
                f"train_{name}",
                parts[name].float(),
                on_step=False,
                on_epoch=True,
                sync_dist=True,
                batch_size=n,
            )
        return parts["loss"]

    def on_validation_epoch_start(self) -> None:
        # per size: [sum of losses x batch size, samples, sum of min SE UL, sum of min SE DL]
        self._val_sums = torch.zeros(len(self.val_sizes), 4, dtype=torch.float64, device=self.device)

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        parts = self.step(batch)
        n = len(batch["K"])
        size = (batch["ue_features"].shape[1], batch["ap_features"].shape[1])
        row = torch.stack(
            [
                parts["loss"].detach() * n,
                torch.tensor(float(n), device=self.device),
                parts["min_se_ul"] * n,
                parts["min_se_dl"] * n,
            ]
        ).double()
        self._val_sums[self._size_index[size]] += row

    def on_validation_epoch_end(self) -> None:
        sums = self.trainer.strategy.reduce(self._val_sums, reduce_op="sum")
        seen = sums[:, 1] > 0
        count = sums[:, 1].clamp_min(1.0)
        for (K, L), row, ok in zip(self.val_sizes, sums, seen.tolist(), strict=True):
            if ok:
                self.log(f"val_loss/K={K},L={L}", (row[0] / row[1]).float(), sync_dist=True)
        if seen.any():
            self.log("val_loss", (sums[seen, 0] / count[seen]).mean().float(), prog_bar=True, sync_dist=True)
            self.log("val_min_se_ul", (sums[seen, 2] / count[seen]).mean().float(), sync_dist=True)
            self.log("val_min_se_dl", (sums[seen, 3] / count[seen]).mean().float(), sync_dist=True)


def load_dynamic_data(
    config: TrainConfig, scaler: PowerScaler | None = None, frame: Any = None
) -> dict[str, Any]:
    """Unlabelled training/validation samples with noisy normalized positions, the network cache
    of both, and the global power scaler (fitted on the training samples unless given)."""
    from cfmimo.data.storage import load_dataset
    from cfmimo.data.transforms import PositionFrame
    from cfmimo.learn.data import split_validation
    from cfmimo.rng import stream_seed

    d, seed = config.data, config.trainer.seed
    content = load_dataset(d.train, verify=d.verify)
    spec = DatasetSpec.model_validate(content.manifest["spec"])
    keys = ("sample_index", "ue_positions", "ap_positions")
    if model_uses_gains(config.model.name):
        keys += ("gain_db",)
    groups = {k: {n: g[n] for n in keys} for k, g in content.groups.items()}
    if d.val is not None:
        raise ValueError(
            "data.val: dynamic supervision validates on the held-out data.val_fraction of data.train "
            "(its channels are regenerated from that dataset's seeds); leave data.val unset"
        )
    train_groups, val_groups = split_validation(groups, d.val_fraction)
    if frame is None and d.position_frame == "global":
        frame = PositionFrame.fit(train_groups)
    cache = NetworkCache(spec, groups)  # train and validation samples have distinct indices
    if scaler is None:
        scaler = fit_dynamic_scaler(cache, train_groups, config.dynamic)

    def prepare(name: str) -> PrepareBatch:
        return PrepareBatch(
            sigma_ue_m=d.sigma_ue_m, sigma_ap_m=d.sigma_ap_m, seed=stream_seed(seed, name), frame=frame
        )

    return {
        "train": dynamic_features(train_groups, prepare("training_noise")),
        "val": dynamic_features(val_groups, prepare("validation_noise")),
        "scaler": scaler,
        "frame": frame,
        "cache": cache,
    }
