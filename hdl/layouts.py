"""Amaranth layouts built from the shared record definitions in :mod:`tbqkd.hdl.records`."""

from __future__ import annotations

from amaranth.lib import data

from .records import RecordLayout

__all__ = ["struct_layout"]


def struct_layout(record: RecordLayout) -> data.StructLayout:
    """A ``StructLayout`` with the record's fields (LSB first) padded to its full width."""
    fields = dict(record.fields)
    used = sum(fields.values())
    if used < record.width:
        fields["_padding"] = record.width - used
    return data.StructLayout(fields)
