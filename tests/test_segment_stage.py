"""The segmentation stage: seg and n_words for Chinese documents only, config checks, no rejections."""
from __future__ import annotations

import polars as pl
import pytest

from corpusslim.config import load_config
from corpusslim.errors import ConfigError
from corpusslim.stages.segment import SegmentConfig, SegmentStage
from tests.conftest import write_config


def test_segments_chinese_only():
    batch = pl.DataFrame({"text": ["我爱北京天安门。", "hello world", "  ", "今天 天气\n很好"],
                          "lang": ["zh", "en", "zh", "zh"]})
    kept, rejected = SegmentStage(SegmentConfig()).process(batch)
    assert rejected.height == 0 and kept["text"].to_list() == batch["text"].to_list()
    assert kept["seg"].to_list() == ["我 爱 北京 天安门 。", None, "", "今天 天气 很 好"]
    assert kept["n_words"].to_list() == [5, None, 0, 4]


def test_user_dict_relative_to_config(tmp_path):
    (tmp_path / "words.txt").write_text("扎西次仁 10 nr\n", encoding="utf-8")
    stages = [{"kind": "lid"}, {"kind": "segment", "user_dict": "words.txt"}]
    cfg = load_config(write_config(tmp_path, stages=stages))
    stage = SegmentStage(cfg.stages[1])
    kept, _ = stage.process(pl.DataFrame({"text": ["扎西次仁来了"], "lang": ["zh"]}))
    assert "扎西次仁" in kept["seg"][0].split(" ")


@pytest.mark.parametrize("stages, message", [
    ([{"kind": "segment"}], "stages[0]: 'segment' needs lid earlier"),
    ([{"kind": "lid"}, {"kind": "segment", "user_dict": "missing.txt"}], "stages[1].user_dict: no such file"),
    ([{"kind": "lid"}, {"kind": "lid"}], "appears more than once"),
])
def test_stage_config_errors(tmp_path, stages, message):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, stages=stages))
    assert message in str(err.value)
