"""ResponseCache, distill's teacher cache, is a resumable output file: it writes through
``quillrl.data.ResumableJsonl``, so a crash mid-line resumes as every other verb's output does."""

from __future__ import annotations

import json

import pytest

from quillrl.backends.cache import ResponseCache
from quillrl.errors import ConfigError, DataError


def test_a_cache_cut_mid_line_is_resumed_and_resumed_again(tmp_path):
    path = tmp_path / "teacher.cache.jsonl"
    cache = ResponseCache(path, "genrm:t", "genrm-1")
    cache.put("k1", "generate", {"text": "one"})
    cache.close()
    with path.open("ab") as fh:
        fh.write(b'{"key": "k2", "teacher": "genrm:t", "templ')  # SIGKILL mid-write
    cache = ResponseCache(path, "genrm:t", "genrm-1")
    assert cache.entries == {"k1": {"text": "one"}}  # the cut answer is asked again
    cache.put("k2", "generate", {"text": "two"})
    cache.close()
    again = ResponseCache(path, "genrm:t", "genrm-1")  # the cut line did not swallow k2's
    assert again.entries == {"k1": {"text": "one"}, "k2": {"text": "two"}}
    again.close()
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == ["k1", "k2"]


def test_another_teacher_or_a_foreign_file_is_refused_untouched(tmp_path):
    path = tmp_path / "c.jsonl"
    cache = ResponseCache(path, "genrm:t", "genrm-1")
    cache.put("k1", "choice_probs", [[0.5, 0.5]])
    cache.close()
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="response cache was written with teacher='genrm:t', "
                                          "this run asks for teacher='genrm:u'.*--cache"):
        ResponseCache(path, "genrm:u", "genrm-1")
    other = tmp_path / "other.jsonl"
    other.write_text("not json\n" + json.dumps({"key": "k"}) + "\n")
    with pytest.raises(DataError) as err:
        ResponseCache(other, "genrm:t", "genrm-1")
    assert err.value.line == 1
    assert path.read_bytes() == before and other.read_text().startswith("not json")
