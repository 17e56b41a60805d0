"""Generation -> storage -> loader -> transforms -> rescaling, end to end on a small dataset."""

import torch

from cfmimo.config import preset
from cfmimo.data.generation import run_generation
from cfmimo.data.loaders import fit_power_scaler, make_loader
from cfmimo.data.spec import DatasetSpec
from cfmimo.data.storage import load_dataset
from cfmimo.data.transforms import PrepareBatch, rescale_predictions


def test_generated_dataset_feeds_the_loaders(tmp_path):
    spec = DatasetSpec(
        scenario=preset("tree-transformer", realizations=10),
        sizes=[(2, 16), (4, 16), (6, 9)],
        samples=12,
        shard_size=5,
        seed=3,
    )
    run_generation(spec, tmp_path, scheduler="sync")
    groups = load_dataset(tmp_path).groups
    scaler = fit_power_scaler(groups)
    prepare = PrepareBatch(scaler=scaler, sigma_ue_m=5.0)
    seen = []
    for mixed in (False, True):
        loader = make_loader(groups, 8, shuffle=True, seed=0, mixed_sizes=mixed)
        for batch in loader:
            batch = prepare(batch)
            assert batch["ue_features"].min() >= 0 and batch["ue_features"].max() <= 1
            for key in ("p_ul_norm", "p_dl_norm"):
                real = batch[key][batch["ue_mask"]]
                assert real.min() >= -1e-6 and real.max() <= 1 + 1e-6
            # rescaling the normalized labels returns the labels, and the DL budget holds exactly
            budget = 200.0 * batch["L"].double()
            p_ul, p_dl = rescale_predictions(
                batch["p_ul_norm"], batch["p_dl_norm"], scaler, budget, batch["ue_mask"]
            )
            real = batch["ue_mask"]
            assert torch.allclose(p_ul[real], batch["p_ul"][real], rtol=1e-4, atol=1e-4)
            assert torch.allclose(p_dl[real], batch["p_dl"][real], rtol=1e-4, atol=1e-2)
            assert torch.allclose(p_dl.double().sum(1), budget, rtol=1e-6)
            if not mixed:
                assert len(set(zip(batch["K"].tolist(), batch["L"].tolist(), strict=True))) == 1
            seen += list(zip(batch["K"].tolist(), batch["sample_index"].tolist(), strict=True))
    assert len(seen) == 2 * 36 and len(set(seen)) == 36  # every sample once per pass
