"""The register table: layout rules, hashing, encoding, exports."""

import json

import pytest
from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.registers import core_regmap
from tbqkd.hdl.regmap import MAGIC, Field, Register, RegisterMap, RegisterMapError


def test_id_and_version_at_fixed_offsets():
    regmap = core_regmap(TaggerConfig())
    assert regmap["ID"].offset == 0 and regmap["VERSION"].offset == 4
    assert regmap["VERSION"].decode(regmap["VERSION"].reset)["magic"] == MAGIC


def test_no_overlaps_and_alignment():
    regmap = core_regmap(TaggerConfig())
    words = {}
    for reg in regmap:
        assert reg.offset % (8 if reg.width == 64 else 4) == 0
        for w in range(reg.words):
            assert reg.offset + 4 * w not in words
            words[reg.offset + 4 * w] = reg.name


def test_hash_depends_on_every_parameter():
    base = core_regmap(TaggerConfig()).hash
    assert core_regmap(TaggerConfig()).hash == base
    assert core_regmap(TaggerConfig(n_channels=6)).hash != base
    assert core_regmap(TaggerConfig(period_num=4001)).hash != base
    assert core_regmap(TaggerConfig(frontend="oversampling", word_width=8)).hash != base


def test_encode_decode_signed_and_ranges():
    regmap = core_regmap(TaggerConfig())
    delay = regmap["CH1_DELAY"]
    assert delay.decode(delay.encode(ps=-1234)) == {"ps": -1234}
    with pytest.raises(RegisterMapError):
        delay.encode(ps=1 << 31)
    with pytest.raises(RegisterMapError):
        regmap["CAL_ADDR"].encode(code=256)
    with pytest.raises(RegisterMapError):
        regmap["CAL_ADDR"].encode(nonsense=1)


def test_builder_rejects_bad_tables():
    with pytest.raises(RegisterMapError):
        Register("X", 2, "rw", "misaligned")
    with pytest.raises(RegisterMapError):
        Register("X", 0, "rw", "overlap", fields=(Field("a", 0, 4), Field("b", 3, 2)))
    with pytest.raises(RegisterMapError):
        Register("X", 0, "xx", "bad access")
    builder = RegisterMap.Builder()
    builder.add("A", "rw", "a")
    with pytest.raises(RegisterMapError):
        builder.add("A", "rw", "again")


def test_exports():
    regmap = core_regmap(TaggerConfig())
    doc = json.loads(regmap.to_json())
    assert doc["hash"] == regmap.hash
    assert [r["name"] for r in doc["registers"]] == [r.name for r in regmap]
    md = regmap.to_markdown()
    for reg in regmap:
        assert f"`{reg.name}`" in md


def test_register_doc_is_current():
    from tbqkd.hdl.build import REGISTERS_DOC, registers_markdown
    assert REGISTERS_DOC.read_text() == registers_markdown(), \
        "docs/REGISTERS.md is stale: run `python -m tbqkd.hdl.build --docs`"
