"""Interoperability: exchange setups, channels and statistics with other tools.

``matlab``: the array conventions of the book (Demir, Björnson, Sanguinetti 2021) in .mat/.npz files.
"""

from cfmimo.interop.matlab import (
    BOOK_FIELDS,
    REQUIRED_FIELDS,
    book_spectral_efficiency,
    channels_from_book,
    check_book_arrays,
    load_mat,
    load_npz,
    network_from_book,
    save_mat,
    save_npz,
    state_from_book,
    to_book,
    uatf_spectral_efficiency,
)

__all__ = [
    "BOOK_FIELDS",
    "REQUIRED_FIELDS",
    "book_spectral_efficiency",
    "channels_from_book",
    "check_book_arrays",
    "load_mat",
    "load_npz",
    "network_from_book",
    "save_mat",
    "save_npz",
    "state_from_book",
    "to_book",
    "uatf_spectral_efficiency",
]
