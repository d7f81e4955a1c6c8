"""Decoders for conditional text generation (``decoder=gru|transformer``) and their search.

``base.Decoder`` is the contract, ``gru`` and ``transformer`` the two decoders (built from
``conf/decoder/<name>.yaml`` with ``mmrun.components.build``), and ``search`` greedy decoding
and beam search over any of them.
"""
