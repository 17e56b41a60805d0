"""Datasets: specs, parallel generation, sharded HDF5 storage, transforms and loaders."""
