"""Loaders for public benchmark data sets, each returning a canonical `Dataset`.

The data itself is never shipped with tfrec (licences forbid it); point the loaders at a local copy.
"""

from tfrec.data.public.amazon import load_amazon_sequences
from tfrec.data.public.movielens import load_movielens

__all__ = ["load_amazon_sequences", "load_movielens"]
